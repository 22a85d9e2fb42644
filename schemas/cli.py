"""``funnel schemas ...``: check the Avro contract, try the channel rules.

Mounted by ``funnel/cli.py`` as a sub-app (``app.add_typer(schemas_app, name="schemas")``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from schemas.channels import ChannelRules
from schemas.compat import CompatResult, check_all
from schemas.errors import ChannelRulesError, SchemaError
from schemas.registry import SchemaRegistry

app = typer.Typer(help="Avro event contract: compatibility checks and channel rules.")


@app.callback()
def _schemas() -> None:
    """Avro event contract: compatibility checks and channel rules."""


@app.command()
def check(
    schema_dir: Annotated[
        Path | None,
        typer.Option(
            "--schema-dir",
            help="Folder of <name>.v<N>.avsc files (default: the shipped schemas; then "
            "registry.json is checked too).",
        ),
    ] = None,
) -> None:
    """Check that each schema version reads its predecessor's data and vice versa."""
    console = Console()
    try:
        results = check_all(schema_dir)
        if schema_dir is None:
            SchemaRegistry.load()
    except SchemaError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(_table(results))
    problems = [problem for result in results for problem in result.problems]
    if problems:
        err = Console(stderr=True)
        for problem in problems:
            err.print(f"[red]incompatible:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"all {len(results)} schemas compatible", highlight=False)


@app.command()
def channel(
    source: Annotated[str | None, typer.Option("--source", help="utm_source")] = None,
    medium: Annotated[str | None, typer.Option("--medium", help="utm_medium")] = None,
    referrer: Annotated[str | None, typer.Option("--referrer", help="referrer URL")] = None,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="channels.yaml (default: the shipped one)")
    ] = None,
) -> None:
    """Print the channel that the rules give a source / medium / referrer."""
    try:
        channel_rules = ChannelRules.load(rules)
    except ChannelRulesError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    typer.echo(channel_rules.classify(source, medium, referrer))


def _table(results: list[CompatResult]) -> Table:
    table = Table(title="Avro schema compatibility")
    for column in ("stream", "versions", "backward", "forward"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.stream,
            result.versions,
            _verdict(result.backward),
            _verdict(result.forward),
        )
    return table


def _verdict(value: bool | None) -> str:
    if value is None:
        return "n/a (one version)"
    return "[green]ok[/green]" if value else "[red]BROKEN[/red]"
