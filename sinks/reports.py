"""Read-side queries over the ClickHouse views (used by `funnel report`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FunnelStepRow:
    funnel: str
    step: int
    step_name: str
    entered: int
    conversion_from_previous: float | None
    conversion_from_first: float | None


@dataclass(frozen=True, slots=True)
class KpiRow:
    currency: str
    orders: int
    gmv_minor: int
    aov_minor: float | None
    refunds: int
    refunded_minor: int
    coupon_orders: int
    first_orders: int
    repeat_orders: int
    payment_failures: int


def funnel_steps(
    client: Any, funnel: str | None = None, channel: str | None = None
) -> list[FunnelStepRow]:
    """Entered per step over all stored windows, with step conversion."""
    where, params = [], {}
    if funnel:
        where.append("funnel = {funnel:String}")
        params["funnel"] = funnel
    if channel:
        where.append("channel = {channel:String}")
        params["channel"] = channel
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = client.query(
        f"""
        SELECT funnel, step, any(step_name), sum(entered) AS entered
        FROM funnel_steps_minute FINAL {clause}
        GROUP BY funnel, step ORDER BY funnel, step
        """,
        parameters=params,
    ).result_rows
    out: list[FunnelStepRow] = []
    first: dict[str, int] = {}
    previous: dict[str, int] = {}
    for name, step, step_name, entered in rows:
        entered = int(entered)
        if step == 1:
            first[name] = entered
        prev = previous.get(name)
        out.append(
            FunnelStepRow(
                name,
                int(step),
                step_name,
                entered,
                entered / prev if step > 1 and prev else None,
                entered / first[name] if step > 1 and first.get(name) else None,
            )
        )
        previous[name] = entered
    return out


def funnel_by_channel(client: Any, funnel: str) -> list[tuple[str, list[int]]]:
    rows = client.query(
        """
        SELECT channel, step, sum(entered) FROM funnel_steps_minute FINAL
        WHERE funnel = {funnel:String} GROUP BY channel, step ORDER BY channel, step
        """,
        parameters={"funnel": funnel},
    ).result_rows
    by_channel: dict[str, list[int]] = {}
    for channel, step, entered in rows:
        steps = by_channel.setdefault(channel, [])
        while len(steps) < step:
            steps.append(0)
        steps[step - 1] = int(entered)
    return sorted(by_channel.items(), key=lambda item: -(item[1][0] if item[1] else 0))


def kpis(client: Any) -> list[KpiRow]:
    rows = client.query(
        """
        SELECT currency, sum(orders), sum(gmv_minor), sum(refunds), sum(refunded_minor),
               sum(coupon_orders), sum(first_orders), sum(repeat_orders), sum(payment_failures)
        FROM kpi_minute FINAL GROUP BY currency ORDER BY sum(gmv_minor) DESC
        """
    ).result_rows
    return [
        KpiRow(
            currency or "-",
            int(o),
            int(g),
            (int(g) / int(o)) if o else None,
            int(r),
            int(rv),
            int(c),
            int(f),
            int(rp),
            int(pf),
        )
        for currency, o, g, r, rv, c, f, rp, pf in rows
    ]


def pipeline_counts(client: Any) -> dict[str, int]:
    queries = {
        "events (raw, unique)": "SELECT count() FROM events_raw FINAL",
        "late events": "SELECT count() FROM late_events FINAL",
        "dead letters": "SELECT count() FROM dead_letters FINAL",
    }
    return {label: int(client.query(sql).result_rows[0][0]) for label, sql in queries.items()}
