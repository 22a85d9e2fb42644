"""Marketing spend of the run's paid sources, per UTC day, for ROAS and CPA.

Spend is the source's daily budget, varied +-15% per day (deterministically from the
seed) and prorated to the part of the day the run covers; the launch campaign spends
only from its launch. Written as CSV beside the truth file.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from schemas.channels import ChannelRules
from simulator.catalog import LAUNCH_SOURCE, TRAFFIC_SOURCES, TrafficSource
from simulator.config import SimConfig
from simulator.errors import TruthFileError

_DAY_MS: Final = 86_400_000
COST_CURRENCY: Final = "CNY"
COLUMNS: Final = (
    "day", "channel", "utm_source", "utm_medium", "campaign", "cost_minor", "currency"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CostRow:
    day: str
    channel: str
    utm_source: str
    utm_medium: str
    campaign: str
    cost_minor: int
    currency: str = COST_CURRENCY


def _spend_window(config: SimConfig, source: TrafficSource) -> tuple[int, int] | None:
    if source is LAUNCH_SOURCE:
        window = config.scenario_window_ms()
        if config.scenario != "campaign-launch" or window is None:
            return None
        return (window[0], config.end_ms)
    return (config.start_ms, config.end_ms)


def campaign_costs(config: SimConfig, rules: ChannelRules | None = None) -> list[CostRow]:
    """Daily spend of every paid source active in the run, sorted by day and campaign."""
    channels = rules or ChannelRules.load()
    rows = []
    for source in (*TRAFFIC_SOURCES, LAUNCH_SOURCE):
        window = _spend_window(config, source)
        if not source.daily_cost_fen or window is None:
            continue
        channel = channels.classify(source.utm_source, source.utm_medium, source.referrer)
        begin, end = window
        day = begin // _DAY_MS
        while day * _DAY_MS < end:
            covered = min(end, (day + 1) * _DAY_MS) - max(begin, day * _DAY_MS)
            rng = random.Random(f"{config.seed}:cost:{source.name}:{day}")
            spend = source.daily_cost_fen * rng.uniform(0.85, 1.15) * covered / _DAY_MS
            rows.append(
                CostRow(
                    day=_day_text(day),
                    channel=channel,
                    utm_source=source.utm_source or "",
                    utm_medium=source.utm_medium or "",
                    campaign=source.utm_campaign or "",
                    cost_minor=round(spend),
                )
            )
            day += 1
    rows.sort(key=lambda r: (r.day, r.campaign))
    return rows


def _day_text(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat()


def write_costs(rows: list[CostRow], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow(
                    (row.day, row.channel, row.utm_source, row.utm_medium, row.campaign,
                     row.cost_minor, row.currency)
                )  # fmt: skip
    except OSError as exc:
        raise TruthFileError(
            f"cannot write campaign costs to {path}: {exc}; choose a writable --truth-out"
        ) from exc
