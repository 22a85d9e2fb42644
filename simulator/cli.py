"""``funnel simulate``: generate shop traffic, write the ground truth, send it to Kafka.

Mount with ``app.add_typer(simulator.cli.app)`` or ``app.command("simulate")(simulate)``.
Settings are built here, at the entry point, and nowhere else in the simulator.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from funnel.errors import FunnelError
from funnel.settings import Settings, load_settings
from simulator.config import SimConfig
from simulator.costs import campaign_costs, write_costs
from simulator.generate import generate
from simulator.produce import ProduceReport, ensure_topics, produce
from simulator.records import SimRecord
from simulator.scenarios import ScenarioEffects
from simulator.summary import RunFacts, summary_table
from simulator.truth import compute_truth, write_truth
from simulator.truth_model import LifecycleParams

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Simulate shop traffic with an exact ground truth.",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DEFAULT_START_TEXT: Final = "2026-11-01T00:00:00Z"


class Scenario(StrEnum):
    checkout_outage = "checkout-outage"
    payment_degraded = "payment-degraded"
    tracking_broken = "tracking-broken"
    traffic_spike = "traffic-spike"
    campaign_launch = "campaign-launch"
    experiment_lift = "experiment-lift"
    experiment_payment_failures = "experiment-payment-failures"
    experiment_srm = "experiment-srm"


def parse_duration_ms(text: str) -> int:
    """``90``/``90s`` seconds, ``500ms``, ``30m``, ``2h``, ``1.5d`` -> milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 90s, 30m, 2h or 1d")
    return int(float(match[1]) * _UNIT_MS[match[2] or "s"])


def parse_start_ms(text: str, now_ms: int | None = None) -> int:
    """ISO 8601 (zone required), epoch milliseconds, ``now`` or ``now-<duration>``."""
    value = text.strip()
    if value.startswith("now"):
        current = now_ms if now_ms is not None else int(time.time() * 1000)
        rest = value[3:].strip()
        if not rest:
            return current
        if rest.startswith("-"):
            return current - parse_duration_ms(rest[1:])
        raise typer.BadParameter(f"{text!r}: use now or now-<duration> such as now-1d")
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} is not a time; use ISO 8601 with a zone (2026-11-01T00:00:00Z), "
            "epoch milliseconds, now or now-1d"
        )
    return int(moment.timestamp() * 1000)


def _percent(help_text: str) -> Any:
    return typer.Option(min=0.0, max=100.0, help=help_text)


@app.command("simulate")
def simulate(
    users: Annotated[
        int, typer.Option(min=1, help="Distinct visitors (new users arriving over the run).")
    ] = 1000,
    days: Annotated[
        float, typer.Option(min=0.0001, help="Simulated days of traffic (0.05 = 72 minutes).")
    ] = 1.0,
    start: Annotated[
        str,
        typer.Option(
            help="Simulated start: ISO 8601 with zone, epoch ms, 'now' or 'now-1d'. The fixed "
            "default keeps runs reproducible; workers reject events older than "
            "FUNNEL_MAX_PAST_SECONDS unless FUNNEL_REPLAY=1.",
        ),
    ] = DEFAULT_START_TEXT,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and options, same bytes.")] = 42,
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1, help="Partitions of each input topic.", show_default="FUNNEL_PARTITIONS or 4"
        ),
    ] = None,
    duplicate_pct: Annotated[
        float,
        _percent(
            "Percent of records re-sent as exact copies (purchases also re-sent with a new "
            "event_id and the same transaction_id)."
        ),
    ] = 0.0,
    out_of_order_pct: Annotated[
        float,
        _percent("Percent of records delayed by up to half the allowed lateness (still on time)."),
    ] = 0.0,
    late_pct: Annotated[
        float,
        _percent("Percent of records sent later than the allowed lateness + 2 min (late)."),
    ] = 0.0,
    malformed_pct: Annotated[
        float,
        _percent(
            "Percent of records replaced by malformed ones, covering every dead-letter reason."
        ),
    ] = 0.0,
    json_pct: Annotated[float, _percent("Percent of records sent as JSON instead of Avro.")] = 0.0,
    include_too_old: Annotated[
        bool,
        typer.Option(
            "--include-too-old",
            help="Also produce event_time_too_old dead letters (timestamps sent in seconds).",
        ),
    ] = False,
    scenario: Annotated[
        Scenario | None, typer.Option(help="Time-boxed incident or campaign to simulate.")
    ] = None,
    scenario_start: Annotated[
        str | None,
        typer.Option(
            help="Scenario start, counted from the simulated start: 30m, 2h.",
            show_default="40% into the run",
        ),
    ] = None,
    scenario_duration: Annotated[
        str | None,
        typer.Option(help="Scenario length, e.g. 20m.", show_default="20% of the run"),
    ] = None,
    checkout_lift: Annotated[
        float,
        typer.Option(
            help="True relative lift of checkout_button variant B on P(purchase | begin_checkout)."
        ),
    ] = 0.15,
    rate: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Send at most this many records per second.",
            show_default="no limit",
        ),
    ] = None,
    speedup: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Simulated seconds per real second (1 = real time).",
            show_default="as fast as possible",
        ),
    ] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap servers.",
            show_default="KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092",
        ),
    ] = None,
    truth_out: Annotated[
        Path | None,
        typer.Option(
            help="Ground-truth JSON file; costs.csv goes beside it.",
            show_default="<data_dir>/sim/truth.json",
        ),
    ] = None,
    create_topics: Annotated[
        bool, typer.Option(help="Create missing input topics with --partitions partitions.")
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Generate and write the truth, but send nothing."),
    ] = False,
) -> None:
    """Generate realistic shop traffic, write its exact ground truth, and produce it to Kafka."""
    console = Console()
    errors = Console(stderr=True)
    # aiokafka logs each failed connection attempt; the error below says it once, with the fix.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    logging.getLogger("aiokafka").propagate = False
    try:
        settings = load_settings()
        config = SimConfig(
            seed=seed,
            users=users,
            days=days,
            start_ms=parse_start_ms(start),
            partitions=partitions or settings.partitions,
            duplicate_pct=duplicate_pct,
            out_of_order_pct=out_of_order_pct,
            late_pct=late_pct,
            malformed_pct=malformed_pct,
            json_pct=json_pct,
            include_too_old=include_too_old,
            scenario=scenario.value if scenario else None,
            scenario_start_s=_seconds(scenario_start),
            scenario_duration_s=_seconds(scenario_duration),
            lateness_ms=settings.allowed_lateness_ms,
            session_timeout_ms=settings.session_timeout_ms,
            window_ms=settings.window_ms,
            max_payload_bytes=settings.max_payload_bytes,
            max_future_ms=settings.max_future_seconds * 1000,
            max_past_ms=settings.max_past_seconds * 1000,
            checkout_button_lift=checkout_lift,
        )
        delivery = Delivery(
            bootstrap=bootstrap or settings.bootstrap_servers,
            rate=rate,
            speedup=speedup,
            create_topics=create_topics,
            dry_run=dry_run,
        )
        truth_path = truth_out or settings.data_dir / "sim" / "truth.json"
        _run(config, settings, delivery, truth_path, console, errors)
    except FunnelError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None


def _seconds(text: str | None) -> float | None:
    return None if text is None else parse_duration_ms(text) / 1000.0


@dataclass(frozen=True)
class Delivery:
    """Where and how fast the records go."""

    bootstrap: str
    rate: float | None
    speedup: float | None
    create_topics: bool
    dry_run: bool


def _run(
    config: SimConfig,
    settings: Settings,
    delivery: Delivery,
    truth_path: Path,
    console: Console,
    errors: Console,
) -> None:
    with console.status("generating traffic..."), _collector_paused():
        started = time.perf_counter()
        records = list(generate(config))
        generate_seconds = time.perf_counter() - started
    with console.status("computing the ground truth..."), _collector_paused():
        started = time.perf_counter()
        truth = compute_truth(
            records,
            lateness_ms=config.lateness_ms,
            session_timeout_ms=config.session_timeout_ms,
            window_ms=config.window_ms,
            true_effects={
                "checkout_button": ScenarioEffects(config).checkout_lift(
                    config.checkout_button_lift
                )
            },
            lifecycle=lifecycle_params(settings),
        )
        write_truth(truth, truth_path)
        costs_path = truth_path.with_name("costs.csv")
        write_costs(campaign_costs(config), costs_path)
        truth_seconds = time.perf_counter() - started
    report: ProduceReport | None = None
    if not delivery.dry_run:
        _warn_about_worker_clock(config, settings, delivery.speedup, errors)
        report = _produce_with_progress(records, settings, config, delivery, console)
    event_times = [r.event.event_time_ms for r in records if r.event is not None]
    facts = RunFacts(
        generate_seconds=generate_seconds,
        truth_seconds=truth_seconds,
        json_records=sum(1 for r in records if r.event is not None and r.value[:1] == b"{"),
        first_event_ms=min(event_times, default=None),
        last_event_ms=max(event_times, default=None),
        truth_path=truth_path,
        costs_path=costs_path,
    )
    console.print(summary_table(config, truth, facts, report))


def lifecycle_params(settings: Settings) -> LifecycleParams:
    """The §6-§8 thresholds the workers use (FUNNEL_RFM_*, FUNNEL_*_TTL_DAYS,
    FUNNEL_CART_ABANDON_MINUTES), converted to ms exactly as the workers convert them."""
    ms = settings.lifecycle_ms()
    return LifecycleParams(
        anonymous_ttl_ms=ms["anonymous_ttl_ms"],
        buyer_ttl_ms=ms["buyer_ttl_ms"],
        rfm_new_ms=ms["new_ms"],
        rfm_dormant_ms=ms["dormant_ms"],
        rfm_churn_ms=ms["churn_ms"],
        cart_abandon_ms=ms["cart_abandon_ms"],
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Keeping every record alive makes each full GC pass walk all of them; the records
    hold no reference cycles, so pausing the cycle collector halves generation time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _produce_with_progress(
    records: list[SimRecord],
    settings: Settings,
    config: SimConfig,
    delivery: Delivery,
    console: Console,
) -> ProduceReport:
    bootstrap = delivery.bootstrap
    columns = (
        TextColumn("producing to {task.fields[target]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with console.status(f"checking topics on {bootstrap}..."):
        asyncio.run(
            ensure_topics(
                bootstrap, settings.topics, config.partitions, create=delivery.create_topics
            )
        )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("produce", total=len(records), target=bootstrap)
        return asyncio.run(
            produce(
                records,
                bootstrap,
                settings.topics,
                speedup=delivery.speedup,
                rate=delivery.rate,
                progress=lambda sent: bar.update(task, completed=sent),
            )
        )


def _warn_about_worker_clock(
    config: SimConfig, settings: Settings, speedup: float | None, errors: Console
) -> None:
    """Workers validate event times against their own clock; say so before sending
    a run they would reject wholesale."""
    now_ms = int(time.time() * 1000)
    if not settings.replay and config.start_ms < now_ms - config.max_past_ms:
        errors.print(
            "[yellow]warning:[/] the run starts "
            f"{datetime.fromtimestamp(config.start_ms / 1000, tz=UTC):%Y-%m-%d}, more than "
            f"{config.max_past_ms // 86_400_000} days before now: workers will dead-letter "
            "these events as event_time_too_old unless they run with FUNNEL_REPLAY=1; "
            "use --start now-1d for recent traffic",
            highlight=False,
        )
    # When the last record goes out, the wall clock has advanced span / speedup.
    sending_ms = 0 if speedup is None else int(config.span_ms / speedup)
    if config.end_ms > now_ms + sending_ms + config.max_future_ms:
        errors.print(
            "[yellow]warning:[/] the run's events get ahead of the wall clock: workers will "
            "dead-letter them as event_time_in_future; use --start now-<days> or "
            "--start now --speedup 1",
            highlight=False,
        )


def main() -> None:  # pragma: no cover - console entry for `python -m simulator.cli`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
