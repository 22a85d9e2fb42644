"""Today's ROAS per channel in Prometheus (issue #15, docs/semantics.md §10).

Every ``attribution_eval_seconds`` the worker that holds input partition 0 reads, from
the ClickHouse views (:func:`reports.attribution.today`), "today"'s net attributed
revenue per channel and model and its marketing cost per channel, and sets the gauges
``shopfunnel_attribution_roas{channel,model}``,
``shopfunnel_attribution_revenue_today{channel,model}`` and
``shopfunnel_marketing_cost_today{channel}``.

*Today* is the UTC day of the newest ``order_time`` in ``order_attribution``: event time,
not the wall clock, so a replay of last year shows last year's days as they go by. Money
is in major units of one currency, the cost's: the ``currency`` given, else the currency
of the day's costs (the largest in major units when there are several), else, on a day
without cost, the currency of the largest net revenue. Revenue in another currency is in
ClickHouse (``v_attribution_daily``), not in the gauges.

The numbers are exactly the views' (this only reads them); the gauges are as live as the
writer's flush interval plus the evaluation interval. An evaluation's SQL reads the
attribution table: the next one waits at least :attr:`AttributionMonitor.BACKOFF` times
as long as the last took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reports.attribution import MODELS, SHARE_UNIT, Today, today
from schemas.iso4217 import MINOR_UNIT_EXPONENT
from sinks.metrics import PipelineMetrics

log = logging.getLogger(__name__)


def _major(amount_minor: Decimal, currency: str) -> float:
    return float(amount_minor.scaleb(-MINOR_UNIT_EXPONENT.get(currency, 0)))


def gauge_currency(day: Today, currency: str | None = None) -> str | None:
    """The currency the gauges are in (see the module's docstring); None: nothing today."""
    if currency is not None:
        return currency
    cost: dict[str, Decimal] = {}
    for (_, cur), value in day.cost_minor.items():
        cost[cur] = cost.get(cur, Decimal(0)) + Decimal(value)
    if cost:
        return max(sorted(cost), key=lambda c: _major(cost[c], c))
    revenue: dict[str, Decimal] = {}
    for (_, _, cur), value in day.net_revenue_micro.items():
        revenue[cur] = revenue.get(cur, Decimal(0)) + Decimal(value).scaleb(-6)
    if revenue:
        return max(sorted(revenue), key=lambda c: _major(revenue[c], c))
    return None


def gauge_values(
    day: Today, currency: str
) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """``(net revenue per (channel, model), cost per channel)`` of ``day`` in
    ``currency``'s major units."""
    revenue: dict[tuple[str, str], float] = {}
    for (model, channel, cur), net_micro in day.net_revenue_micro.items():
        if cur == currency:
            minor = Decimal(net_micro) / Decimal(SHARE_UNIT)
            revenue[(channel, model)] = _major(minor, currency)
    cost = {
        channel: _major(Decimal(value), currency)
        for (channel, cur), value in day.cost_minor.items()
        if cur == currency
    }
    return revenue, cost


@dataclass
class AttributionMonitor:
    """``AttributionMonitor(reader, metrics).evaluate()``.

    ``reader``: a clickhouse-connect client of its own (a read handle, so the query runs
    while the agent keeps processing when ``evaluate`` is called in a thread), or a
    function ``(sql, parameters) -> rows`` (or -> a result with ``result_rows``)."""

    reader: Callable[[str, dict[str, Any]], Any] | Any
    metrics: PipelineMetrics
    currency: str | None = None  # the gauges' currency (default: the day's cost currency)
    models: Sequence[str] = MODELS
    BACKOFF = 9.0  # the next evaluation waits at least this many times the last one's time
    _next_at: float = 0.0  # monotonic seconds

    @classmethod
    def from_factory(
        cls, factory: Callable[[], Any], metrics: PipelineMetrics, **options: Any
    ) -> AttributionMonitor:
        """A monitor whose client is opened by ``factory`` at the first evaluation (in
        the evaluating thread), then kept: ``from_factory(lambda: open_client(t), m)``."""
        clients: list[Any] = []

        def query(sql: str, parameters: dict[str, Any]) -> Any:
            if not clients:
                clients.append(factory())
            return clients[0].query(sql, parameters=parameters)

        return cls(query, metrics, **options)

    def due(self) -> bool:
        """Whether the back-off since the last evaluation has passed."""
        return time.monotonic() >= self._next_at

    def evaluate(self) -> None:
        """Read today's numbers and set the gauges (a failure is logged and counted; the
        gauges keep their last values and the next evaluation tries again). Blocking: call
        it in a thread from the event loop (``await asyncio.to_thread(m.evaluate)``)."""
        started = time.monotonic()
        try:
            day = today(self.reader)
            self._observe(day)
            self.metrics.attribution_last_evaluation.set(time.time())
        except Exception:
            self.metrics.attribution_evaluation_failures.inc()
            log.exception("attribution evaluation failed; trying again at the next one")
        finally:
            self._next_at = time.monotonic() + self.BACKOFF * (time.monotonic() - started)

    def _observe(self, day: Today | None) -> None:
        currency = gauge_currency(day, self.currency) if day is not None else None
        if day is None or currency is None:
            self.metrics.set_attribution_today({}, {}, self.models)
            return
        revenue, cost = gauge_values(day, currency)
        self.metrics.set_attribution_today(revenue, cost, self.models)
        log.debug("attribution today %s (%s): cost %s", day.day.isoformat(), currency, cost)
