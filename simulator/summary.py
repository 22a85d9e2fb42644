"""The table printed at the end of ``funnel simulate``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from rich.table import Table

from schemas.iso4217 import MINOR_UNIT_EXPONENT
from simulator.config import SimConfig
from simulator.produce import ProduceReport
from simulator.truth_model import Truth


@dataclass(frozen=True)
class RunFacts:
    """What the CLI measured around generation (the truth holds the rest)."""

    generate_seconds: float
    truth_seconds: float
    json_records: int
    first_event_ms: int | None
    last_event_ms: int | None
    truth_path: Path
    costs_path: Path


def format_money(minor: int, currency: str) -> str:
    exponent = MINOR_UNIT_EXPONENT.get(currency, 2)
    major = Decimal(minor).scaleb(-exponent)
    return f"{major:,.{exponent}f} {currency}"


def _utc(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def summary_table(
    config: SimConfig, truth: Truth, facts: RunFacts, report: ProduceReport | None
) -> Table:
    stats = truth.stats
    table = Table(title="Simulation summary", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")

    def row(what: str, value: object, note: str = "") -> None:
        table.add_row(what, str(value), note)

    scenario = "none"
    window = config.scenario_window_ms()
    if config.scenario and window:
        scenario = f"{config.scenario} {_utc(window[0])} -> {_utc(window[1])}"
    row("seed / users / days", f"{config.seed} / {config.users} / {config.days:g}")
    row("scenario", scenario)
    row("simulated time", f"{_utc(facts.first_event_ms)} -> {_utc(facts.last_event_ms)}",
        "event times of valid records")  # fmt: skip
    row("records", f"{stats.get('records', 0):,}")
    for stream in ("clickstream", "cart", "orders"):
        row(
            f"  {stream}",
            f"{stats.get(f'records_{stream}', 0):,}",
            f"partitions: {config.partitions}",
        )
    row("  sent as JSON", f"{facts.json_records:,}", f"--json-pct {config.json_pct:g}")
    row("visitors", f"{stats.get('visitors', 0):,}", "with a counted event")
    row("sessions", f"{stats.get('sessions', 0):,}",
        f"{stats.get('session_segments', 0):,} segments after the "
        f"{truth.session_timeout_ms // 60_000}-min split")  # fmt: skip
    row("orders", f"{stats.get('orders', 0):,}", "counted purchases")
    for currency, minor in truth.gmv_by_currency.items():
        if minor:
            row(f"  GMV {currency}", format_money(minor, currency))
    row("buyers", f"{stats.get('buyers', 0):,}",
        f"{stats.get('transitions', 0):,} lifecycle transitions up to the watermark")  # fmt: skip
    triggers = {
        k.removeprefix("triggers_"): v for k, v in stats.items() if k.startswith("triggers_")
    }
    row("triggers", f"{sum(triggers.values()):,}",
        ", ".join(f"{kind} {count:,}" for kind, count in sorted(triggers.items())))  # fmt: skip
    row("duplicates sent", f"{stats.get('flagged_duplicates', 0):,}",
        f"dropped: {stats.get('duplicates_dropped', 0):,} by event_id, "
        f"{stats.get('purchase_duplicates_dropped', 0):,} by transaction_id")  # fmt: skip
    row("out-of-order", f"{stats.get('flagged_out_of_order', 0):,}", "delayed within the lateness")
    row("late", f"{stats.get('late', 0):,}",
        f"intended {stats.get('intended_late', 0):,}, "
        f"mismatches {stats.get('intended_late_mismatches', 0):,}")  # fmt: skip
    row("malformed", f"{stats.get('malformed', 0):,}", "dead letters")
    by_reason: dict[str, int] = {}
    for dead in truth.dead_letters:
        by_reason[dead.reason] = by_reason.get(dead.reason, 0) + dead.records
    for reason, count in sorted(by_reason.items()):
        row(f"  {reason}", f"{count:,}")
    row(
        "generation",
        f"{facts.generate_seconds:.2f} s",
        _rate(stats.get("records", 0), facts.generate_seconds),
    )
    row("ground truth", f"{facts.truth_seconds:.2f} s", str(facts.truth_path))
    row("campaign costs", "", str(facts.costs_path))
    if report is None:
        row("produce", "skipped", "--dry-run")
    else:
        row("produce wall time", f"{report.wall_seconds:.2f} s",
            _rate(report.records, report.wall_seconds))  # fmt: skip
        row("  bytes sent", f"{report.bytes:,}")
        if report.max_behind_seconds > 0:
            row("  most behind its pace", f"{report.max_behind_seconds * 1000:,.0f} ms",
                "the latest a record went out against its schedule (a pause, or a rate "
                "the broker could not take)")  # fmt: skip
    return table


def _rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f} records/s" if seconds > 0 else ""
