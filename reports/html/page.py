"""The HTML page: a section per report, each chart drawn by :mod:`reports.html.svg`.

Chart names (``data-chart``), ``F`` a funnel, ``E`` an experiment, ``C`` a currency:
``funnel-steps/F``, ``funnel-breakdown/F`` (its configured breakdown),
``funnel-channels/F``, ``time-to-convert/F``, ``conversion-over-time``, ``retention``,
``lifecycle-stages``, ``lifecycle-sizes``, ``lifecycle-flows``, ``lifecycle-triggers``,
``experiment/E``, ``roas-by-channel``, ``cost-revenue/C``, ``dead-letters``,
``late-events``. A section or chart without data is a ``<p class="no-data">`` saying
so, never an empty chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Final

from reports.attribution import MODELS, SHARE_UNIT, ChannelRoas
from reports.experiment_readout import ExperimentReadout, MetricReadout
from reports.html import svg
from reports.html.data import (
    AttributionData,
    Bucket,
    FunnelData,
    LifecycleData,
    ReportData,
    RetentionData,
)
from reports.html.fmt import NumberFormat
from reports.html.svg import Datum, Interval, Series, esc
from reports.queries import STAGE_ORDER
from streams.experiments import FunnelStepMetric

MAX_VALUES: Final = 8  # breakdown values drawn per funnel; the rest are counted below


def no_data(section: str, text: str) -> str:
    return f'<p class="no-data" data-section="{esc(section)}">No data: {esc(text)}</p>'


def _figure(chart: str, caption: str = "") -> str:
    note = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart">{chart}{note}</figure>'


def _section(key: str, title: str, body: Sequence[str], intro: str = "") -> str:
    lead = f'<p class="intro">{esc(intro)}</p>' if intro else ""
    return (
        f'<section id="{esc(key)}" data-section="{esc(key)}"><h2>{esc(title)}</h2>{lead}'
        + "\n".join(body)
        + "</section>"
    )


def _problem(data: ReportData, name: str) -> str | None:
    reason = data.problems.get(name)
    return None if reason is None else f"cannot read it ({reason})"


def _bucket_label(fmt: NumberFormat, bucket: Bucket, at: datetime) -> str:
    return fmt.hour(at) if bucket == "hour" else fmt.day(at)


# -- overview ---------------------------------------------------------------------------------


def overview(data: ReportData, fmt: NumberFormat) -> str:
    problem = _problem(data, "overview")
    if problem:
        return _section("overview", "Overview", [no_data("overview", problem)])
    body = []
    if data.kpis:
        rows = "".join(
            "<tr>"
            f'<th scope="row">{esc(k.currency)}</th><td>{esc(fmt.count(k.orders))}</td>'
            f"<td>{esc(_money(fmt, k.gmv_minor, k.currency))}</td>"
            f"<td>{esc('-' if k.aov_minor is None else _money(fmt, k.aov_minor, k.currency))}</td>"
            f"<td>{esc(fmt.count(k.refunds))}</td>"
            f"<td>{esc(_money(fmt, k.refunded_minor, k.currency))}</td>"
            f"<td>{esc(fmt.count(k.coupon_orders))}</td>"
            f"<td>{esc(fmt.count(k.first_orders))} / {esc(fmt.count(k.repeat_orders))}</td>"
            f"<td>{esc(fmt.count(k.payment_failures))}</td>"
            "</tr>"
            for k in data.kpis
        )
        body.append(
            '<table class="kpis" data-table="kpis"><caption>Orders and money per currency '
            "(each in its own minor units)</caption><thead><tr><th>currency</th><th>orders"
            "</th><th>GMV</th><th>AOV</th><th>refunds</th><th>refunded</th><th>coupon orders"
            "</th><th>first / repeat</th><th>payment failures</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        body.append(no_data("kpis", "no orders yet"))
    if data.pipeline:
        items = "".join(
            f"<li>{esc(label)}: <b>{esc(fmt.count(n))}</b></li>"
            for label, n in data.pipeline.items()
        )
        body.append(f'<ul class="pipeline" data-table="pipeline">{items}</ul>')
    return _section("overview", "Overview", body)


def _money(fmt: NumberFormat, amount_minor: float | int | Decimal, currency: str) -> str:
    return fmt.money(amount_minor, currency)


# -- funnels ----------------------------------------------------------------------------------


def _ttc_label(upper: float) -> str:
    if math.isinf(upper):
        return "> 1d"
    seconds = int(upper)
    if seconds < 60:
        return f"≤ {seconds}s"
    if seconds < 3600:
        return f"≤ {seconds // 60}m"
    if seconds < 86400:
        return f"≤ {seconds // 3600}h"
    return f"≤ {seconds // 86400}d"


def _values_label(values: tuple[str, ...]) -> str:
    return " / ".join(v or "(none)" for v in values)


def funnel_charts(f: FunnelData, fmt: NumberFormat) -> list[str]:
    out = []
    steps = [
        Datum(
            r.step_name,
            r.entered,
            fmt.count(r.entered)
            + (
                ""
                if r.conversion_from_first is None
                else f" ({fmt.percent(r.conversion_from_first)})"
            ),
            {
                "step": str(r.step),
                "from-first": svg.num(r.conversion_from_first or 0.0),
            },
        )
        for r in f.steps
    ]
    out.append(
        _figure(
            svg.bar_chart(
                f"funnel-steps/{f.name}",
                f"{f.name}: entities entering each step",
                steps,
                x_label="step",
                y_label="entities",
                tick=fmt.count,
            ),
            "in brackets: conversion from the first step",
        )
    )
    names = [r.step_name for r in f.steps]
    if f.breakdown is not None:
        label = ", ".join(f.breakdown.dimensions)
        out.append(
            _breakdown_chart(
                f"funnel-breakdown/{f.name}",
                f"{f.name} by {label} ({f.breakdown.attribution})",
                label,
                [(_values_label(v), counts) for v, counts in f.by_breakdown],
                names,
                fmt,
            )
            if f.by_breakdown
            else no_data(f"funnel-breakdown/{f.name}", f"no {label} values for {f.name} yet")
        )
    out.append(
        _breakdown_chart(
            f"funnel-channels/{f.name}",
            f"{f.name} by channel",
            "channel",
            f.by_channel,
            names,
            fmt,
        )
        if f.by_channel
        else no_data(f"funnel-channels/{f.name}", f"no channel rows for {f.name}")
    )
    if f.ttc:
        o = f.overall
        caption = (
            f"{fmt.count(o.entities)} converted; median {fmt.duration(o.median_s)}, "
            f"mean {fmt.duration(o.avg_s)} (exact, from funnel_attempts)"
        )
        bars = [Datum(_ttc_label(le), n, fmt.count(n), {"le": svg.num(le)}) for le, n in f.ttc]
        out.append(
            _figure(
                svg.bar_chart(
                    f"time-to-convert/{f.name}",
                    f"{f.name}: time to convert",
                    bars,
                    x_label="time from the first to the last step",
                    y_label="converted entities",
                    tick=fmt.count,
                ),
                caption,
            )
        )
    else:
        out.append(no_data(f"time-to-convert/{f.name}", f"no converted entity in {f.name} yet"))
    return out


def _breakdown_chart(
    name: str,
    title: str,
    label: str,
    rows: Sequence[tuple[str, list[int]]],
    steps: Sequence[str],
    fmt: NumberFormat,
) -> str:
    """Horizontal bars: for each value (the largest first) its entities per step; the
    last step's text has the value's conversion."""
    shown = list(rows[:MAX_VALUES])
    series = []
    for k, step in enumerate(steps):
        values: list[Datum | None] = []
        for value, counts in shown:
            padded = list(counts) + [0] * (len(steps) - len(counts))
            n = padded[k]
            text = fmt.count(n)
            if k == len(steps) - 1 and padded[0]:
                text += f" ({fmt.percent(n / padded[0])})"
            values.append(Datum(value, n, text, {"step": str(k + 1)}))
        series.append(Series(step, values))
    rest = rows[MAX_VALUES:]
    caption = "in brackets: conversion from the first to the last step"
    if rest:
        entities = sum(counts[0] for _, counts in rest if counts)
        caption += (
            f"; {fmt.count(len(rest))} more values with {fmt.count(entities)} entities "
            "(terminal: funnel report funnel)"
        )
    return _figure(
        svg.grouped_bar_chart(
            name,
            title,
            [value for value, _ in shown],
            series,
            x_label=label,
            y_label="entities entering the step",
            tick=fmt.count,
            horizontal=True,
        ),
        caption,
    )


def conversion_chart(data: ReportData, fmt: NumberFormat) -> str:
    buckets = sorted({p.bucket for points in data.conversion.values() for p in points})
    if not buckets:
        return no_data("conversion-over-time", "no funnel entities yet")
    index = {at: i for i, at in enumerate(buckets)}
    series = []
    for funnel, points in data.conversion.items():
        values: list[Datum | None] = [None] * len(buckets)
        for p in points:
            if p.rate is None:
                continue
            values[index[p.bucket]] = Datum(
                _bucket_label(fmt, data.bucket, p.bucket),
                p.rate,
                f"{fmt.percent(p.rate)} ({fmt.count(p.converted)} of {fmt.count(p.entered)})",
                {"entered": str(p.entered), "converted": str(p.converted)},
            )
        series.append(Series(funnel, values))
    return _figure(
        svg.line_chart(
            "conversion-over-time",
            f"Conversion from the first to the last step, per {data.bucket}",
            [_bucket_label(fmt, data.bucket, at) for at in buckets],
            series,
            x_label=f"{data.bucket} of step 1 (UTC)",
            y_label="conversion",
            tick=lambda v: fmt.percent(v, 0),
        ),
        "each entity counts in the time bucket of its first step",
    )


def funnels_section(data: ReportData, fmt: NumberFormat) -> str:
    problem = _problem(data, "funnels")
    if problem or not data.funnels:
        text = problem or "no funnel rows yet: run `funnel worker` and `funnel simulate`"
        return _section("funnels", "Funnels", [no_data("funnels", text)])
    body = [conversion_chart(data, fmt)]
    for f in data.funnels:
        body.append(f'<h3 id="funnel-{esc(f.name)}">{esc(f.name)}</h3>')
        body.extend(funnel_charts(f, fmt))
    return _section(
        "funnels",
        "Funnels",
        body,
        "Entities credited once per funnel (docs/semantics.md section 3), over all stored windows.",
    )


# -- retention --------------------------------------------------------------------------------


def retention_section(data: ReportData, fmt: NumberFormat) -> str:
    r = data.retention
    problem = _problem(data, "retention")
    if problem or r is None or not r.cohorts:
        text = problem or "no retention cohorts yet"
        return _section("retention", "Retention", [no_data("retention", text)])
    return _section("retention", "Retention", [_figure(retention_chart(r, fmt))])


def _cohort_label(fmt: NumberFormat, granularity: str, day: date) -> str:
    return fmt.month(day) if granularity == "month" else fmt.day(day)


def retention_chart(r: RetentionData, fmt: NumberFormat) -> str:
    width = min(max(len(c.users) for c in r.cohorts), 15)
    unit = r.granularity[0].upper()
    columns = [f"{unit}{n}" for n in range(width)]
    cells = [
        [
            Datum(
                _cohort_label(fmt, r.granularity, c.cohort_start),
                rate,
                fmt.percent(rate, 0),
                {"users": str(c.users[n]), "period": str(n)},
            )
            if n < len(c.users) and (rate := c.rate(n)) is not None
            else None
            for n in range(width)
        ]
        for c in r.cohorts
    ]
    later = [d.value for row in cells for d in row[1:] if d is not None]
    return svg.heatmap(
        "retention",
        f"Retention: {r.cohort_kind} cohorts by {r.granularity}, share with a {r.activity} "
        "in period N",
        [_cohort_label(fmt, r.granularity, c.cohort_start) for c in r.cohorts],
        columns,
        cells,
        x_label=f"{r.granularity}s since the cohort's own (N)",
        y_label=f"cohort ({r.granularity} starting)",
        row_notes=[f"n={fmt.count(c.cohort_size)}" for c in r.cohorts],
        # Period 0 is 100% by definition: the shades tell the later periods apart.
        full=max(later, default=0.0) or None,
    )


# -- lifecycle --------------------------------------------------------------------------------


def lifecycle_section(data: ReportData, fmt: NumberFormat) -> str:
    life = data.lifecycle
    problem = _problem(data, "lifecycle")
    if problem or life is None:
        return _section("lifecycle", "Lifecycle", [no_data("lifecycle", problem or "nothing read")])
    return _section(
        "lifecycle",
        "Lifecycle stages and flows",
        lifecycle_charts(life, fmt),
        "Buyers by RFM lifecycle stage (docs/semantics.md sections 7-8).",
    )


def lifecycle_charts(life: LifecycleData, fmt: NumberFormat) -> list[str]:
    out = []
    rfm = life.rfm
    if rfm.stages:
        as_of = "" if rfm.as_of is None else f", as of {fmt.timestamp(rfm.as_of)} UTC"
        out.append(
            _figure(
                svg.bar_chart(
                    "lifecycle-stages",
                    f"Buyers per lifecycle stage ({fmt.count(rfm.buyers)} buyers{as_of})",
                    [
                        Datum(
                            s.stage,
                            s.buyers,
                            f"{fmt.count(s.buyers)} ({fmt.percent(s.share)})",
                            {"share": svg.num(s.share)},
                        )
                        for s in rfm.stages
                    ],
                    x_label="stage",
                    y_label="buyers",
                    tick=fmt.count,
                )
            )
        )
    else:
        out.append(no_data("lifecycle-stages", "no buyers yet"))
    if life.daily:
        stages = [s for s in STAGE_ORDER if any(d.sizes.get(s) for d in life.daily)] or list(
            STAGE_ORDER
        )
        days = [fmt.day(d.day) for d in life.daily]
        out.append(
            _figure(
                svg.line_chart(
                    "lifecycle-sizes",
                    "Buyers per stage at the end of each day with a change",
                    days,
                    [
                        Series(
                            stage,
                            [
                                Datum(
                                    label,
                                    d.sizes[stage],
                                    fmt.count(d.sizes[stage]),
                                    {"day": d.day.isoformat()},
                                )
                                for label, d in zip(days, life.daily, strict=True)
                            ],
                        )
                        for stage in stages
                    ],
                    x_label="day (UTC)",
                    y_label="buyers",
                    tick=fmt.count,
                )
            )
        )
    else:
        out.append(no_data("lifecycle-sizes", "no stage transitions yet"))
    if life.flows:
        out.append(
            _figure(
                svg.bar_chart(
                    "lifecycle-flows",
                    "Flows between stages (buyers moved, all stored time)",
                    [
                        Datum(f"{a} → {b}", n, fmt.count(n), {"from": a, "to": b})
                        for a, b, n in life.flows
                    ],
                    x_label="from → to",
                    y_label="transitions",
                    tick=fmt.count,
                    horizontal=True,
                    color=svg.PALETTE[2],
                ),
                "prospect: not a buyer yet; forgotten: the buyer's state expired",
            )
        )
    else:
        out.append(no_data("lifecycle-flows", "no stage transitions yet"))
    if life.triggers:
        out.append(
            _figure(
                svg.bar_chart(
                    "lifecycle-triggers",
                    "Marketing triggers sent",
                    [Datum(kind, n, fmt.count(n)) for kind, n in life.triggers.items()],
                    x_label="trigger",
                    y_label="triggers",
                    tick=fmt.count,
                    horizontal=True,
                    color=svg.PALETTE[3],
                )
            )
        )
    else:
        out.append(no_data("lifecycle-triggers", "no triggers sent yet"))
    return out


# -- experiments ------------------------------------------------------------------------------


def metric_label(r: ExperimentReadout, m: MetricReadout) -> str:
    cuped = " (CUPED)" if m.metric.endswith("_cuped") else ""
    if m.metric.startswith("revenue_per_user"):
        return f"revenue/user {m.currency}{cuped}"
    if m.metric.startswith("primary") and isinstance(r.exp.primary, FunnelStepMetric):
        return f"{r.exp.primary.funnel}: {r.exp.primary.label}{cuped}"
    return m.metric


def experiment_intervals(
    r: ExperimentReadout, fmt: NumberFormat
) -> tuple[list[Interval], list[str]]:
    """The drawn intervals (relative lift, always-valid interval) and the labels of the
    metrics without a lift (the control's mean is 0)."""
    drawn, missing = [], []
    for variant, metrics in r.metrics.items():
        for m in metrics:
            av = m.always_valid
            label = f"{variant}: {metric_label(r, m)}"
            if av.relative_lift is None or av.relative_ci is None:
                missing.append(label)
                continue
            ci = av.relative_ci
            drawn.append(
                Interval(
                    label,
                    av.relative_lift,
                    ci.low,
                    ci.high,
                    f"{fmt.signed_percent(av.relative_lift)} "
                    f"[{fmt.signed_percent(ci.low)}, {fmt.signed_percent(ci.high)}], "
                    f"p {fmt.pvalue(av.p_value)}",
                    series=variant,
                    attrs={
                        "metric": m.metric,
                        "currency": m.currency,
                        "control-mean": svg.num(av.control_mean),
                        "treatment-mean": svg.num(av.treatment_mean),
                        "p-value": svg.num(av.p_value),
                    },
                )
            )
    return drawn, missing


def experiment_block(r: ExperimentReadout, fmt: NumberFormat) -> str:
    exp = r.exp
    counts = r.sums.counts()
    split = ", ".join(f"{v}: {fmt.count(counts[v])}" for v in exp.variant_names)
    level = fmt.percent(1 - float(exp.alpha), 0)
    drawn, missing = experiment_intervals(r, fmt)
    name = f"experiment/{exp.name}"
    parts = [
        f'<h3 id="{esc(name)}">{esc(exp.name)}</h3>',
        f'<p class="intro">{esc(exp.description)}</p>' if exp.description else "",
        f'<p class="facts">exposed {esc(split)}; sample ratio p '
        f"{esc(fmt.pvalue(r.srm_sequential.p_value))} (sequential); decision now: "
        f'<b class="verdict" data-verdict="{esc(r.decision.verdict.value)}">'
        f"{esc(r.decision.verdict.value)}</b> ({esc(r.decision.reason)})</p>",
    ]
    if drawn:
        caption = (
            f"point: relative lift over {exp.control}; band: {level} always-valid interval "
            "(mSPRT, safe to watch); arrow: the interval goes on beyond the axis"
        )
        if missing:
            caption += f"; no lift (control mean 0): {', '.join(missing)}"
        parts.append(
            _figure(
                svg.interval_plot(
                    name,
                    f"{exp.name}: lift of each variant over {exp.control}",
                    drawn,
                    x_label=f"relative lift over {exp.control}",
                    y_label="variant: metric",
                    tick=lambda v: fmt.signed_percent(v, 0),
                ),
                caption,
            )
        )
    else:
        parts.append(no_data(name, f"no exposed visitors with a lift for {exp.name} yet"))
    return "".join(parts)


def experiments_section(data: ReportData, fmt: NumberFormat) -> str:
    body = [experiment_block(r, fmt) for r in data.experiments]
    body += [
        no_data(name, f"cannot read it ({reason})")
        for name, reason in data.problems.items()
        if name.startswith("experiment ")
    ]
    if not body:
        body = [no_data("experiments", "no experiments configured (funnel experiments check)")]
    return _section("experiments", "Experiments", body)


# -- attribution ------------------------------------------------------------------------------


def attribution_section(data: ReportData, fmt: NumberFormat) -> str:
    a = data.attribution
    problem = _problem(data, "attribution")
    if problem or a is None or a.days is None or not a.roas:
        text = problem or "no attributed orders or costs yet"
        return _section("attribution", "Attribution and ROAS", [no_data("attribution", text)])
    return _section(
        "attribution",
        "Attribution and ROAS",
        attribution_charts(a, fmt),
        f"{a.days.start.isoformat()} .. {a.days.end.isoformat()} (UTC, both included); net "
        "attributed revenue = revenue - refunds (docs/semantics.md section 10).",
    )


def _channel_label(r: ChannelRoas, mixed: bool) -> str:
    return f"{r.channel} ({r.currency})" if mixed else r.channel


def attribution_charts(a: AttributionData, fmt: NumberFormat) -> list[str]:
    out = []
    costed = [r for r in a.roas if r.has_cost and r.cost_minor]
    if costed:
        mixed = len({r.currency for r in costed}) > 1
        labels = [_channel_label(r, mixed) for r in costed]
        series = [
            Series(
                model,
                [
                    None
                    if (roas := r.roas(model)) is None
                    else Datum(label, roas, fmt.ratio(roas), {"currency": r.currency})
                    for label, r in zip(labels, costed, strict=True)
                ],
            )
            for model in MODELS
        ]
        out.append(
            _figure(
                svg.grouped_bar_chart(
                    "roas-by-channel",
                    "ROAS per channel under each attribution model",
                    labels,
                    series,
                    x_label="channel",
                    y_label="ROAS (net attributed revenue / cost)",
                    tick=fmt.ratio,
                    horizontal=True,
                ),
                "in the cost's currency; channels without cost have no ROAS",
            )
        )
    else:
        out.append(no_data("roas-by-channel", "no marketing cost imported (funnel costs import)"))
    with_cost = sorted({r.currency for r in costed})
    for currency in with_cost:
        rows = [r for r in a.roas if r.currency == currency]
        revenue_label = f"net revenue ({a.model})"
        cost = Series(
            "cost",
            [
                Datum(r.channel, r.cost_minor, fmt.money(r.cost_minor, currency))
                if r.has_cost
                else None
                for r in rows
            ],
        )
        revenue = Series(
            revenue_label,
            [
                Datum(
                    r.channel,
                    net / SHARE_UNIT,
                    fmt.money(Decimal(net).scaleb(-6), currency),
                    {"micro": str(net)},
                )
                for r in rows
                for net in [r.net_revenue_micro.get(a.model, 0)]
            ],
        )
        out.append(
            _figure(
                svg.grouped_bar_chart(
                    f"cost-revenue/{currency}",
                    f"Cost and net attributed revenue per channel, {currency}",
                    [r.channel for r in rows],
                    [cost, revenue],
                    x_label="channel",
                    y_label=f"amount ({currency})",
                    tick=_money_tick(fmt, currency),
                    horizontal=True,
                    colors=(svg.PALETTE[5], svg.PALETTE[2]),
                )
            )
        )
    others = [r for r in a.roas if r.currency not in with_cost]
    if others:
        rows_html = "".join(
            f'<tr><th scope="row">{esc(r.channel)}</th><td>{esc(r.currency)}</td>'
            f"<td>{esc(fmt.money(Decimal(net).scaleb(-6), r.currency))}</td></tr>"
            for r in others
            for net in [r.net_revenue_micro.get(a.model, 0)]
        )
        out.append(
            '<table class="kpis" data-table="revenue-without-cost"><caption>Net attributed '
            f"revenue ({esc(a.model)}) in currencies without cost</caption><thead><tr>"
            "<th>channel</th><th>currency</th><th>net revenue</th></tr></thead>"
            f"<tbody>{rows_html}</tbody></table>"
        )
    return out


def _money_tick(fmt: NumberFormat, currency: str) -> svg.Formatter:
    return lambda minor: fmt.money(minor, currency)


# -- data quality -----------------------------------------------------------------------------


def quality_section(data: ReportData, fmt: NumberFormat) -> str:
    body = []
    problem = _problem(data, "dead letters")
    if data.dead_letters:
        body.append(
            _figure(
                svg.bar_chart(
                    "dead-letters",
                    "Dead letters per reason",
                    [Datum(reason, n, fmt.count(n)) for reason, n in data.dead_letters],
                    x_label="reason",
                    y_label="records",
                    tick=fmt.count,
                    horizontal=True,
                    color=svg.PALETTE[5],
                ),
                "records that could not be decoded or validated, or rows ClickHouse refused",
            )
        )
    else:
        body.append(no_data("dead-letters", problem or "no dead letters"))
    problem = _problem(data, "late events")
    if data.late_events:
        labels = [_bucket_label(fmt, data.bucket, at) for at, _ in data.late_events]
        body.append(
            _figure(
                svg.line_chart(
                    "late-events",
                    f"Late events per {data.bucket} of their event time",
                    labels,
                    [
                        Series(
                            "late events",
                            [
                                Datum(label, n, fmt.count(n), {"at": at.isoformat()})
                                for label, (at, n) in zip(labels, data.late_events, strict=True)
                            ],
                        )
                    ],
                    x_label=f"{data.bucket} of event time (UTC)",
                    y_label="late events",
                    tick=fmt.count,
                ),
                "events that arrived after the allowed lateness: stored, not counted",
            )
        )
    else:
        body.append(no_data("late-events", problem or "no late events"))
    return _section("quality", "Dead letters and late events", body)


# -- the page ---------------------------------------------------------------------------------

STYLE: Final = """
:root { color-scheme: light; }
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header, main { max-width: 1600px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 16px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 18px; border-bottom: 2px solid #0072B2; padding-bottom: 4px; margin-top: 28px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta, .intro, figcaption, .facts { color: #555; font-size: 13px; }
section { display: flex; flex-wrap: wrap; gap: 8px 20px; align-items: flex-start; }
section > h2, section > h3, section > .intro, section > .facts, section > ul {
  flex-basis: 100%; }
section > p { margin: 4px 0; }
figure.chart { margin: 6px 0 14px; background: #fff; border: 1px solid #e3e3e3;
               border-radius: 6px; padding: 10px; flex: 0 1 calc(50% - 32px);
               min-width: 480px; max-width: 780px; }
svg.chart { max-width: 100%; height: auto; display: block; }
svg .tick, svg .note, svg .legend-item { fill: #555; font-size: 11px; }
svg .value { fill: #333; font-size: 10px; }
svg .axis-label { fill: #333; font-size: 12px; font-weight: 600; }
.no-data { flex-basis: 100%; background: #fff8e1; border-left: 4px solid #E69F00;
           padding: 8px 12px; margin: 6px 0; }
table.kpis { border-collapse: collapse; background: #fff; font-size: 13px; }
table.kpis th, table.kpis td { border: 1px solid #e3e3e3; padding: 4px 8px; text-align: right; }
table.kpis caption { text-align: left; color: #555; font-size: 13px; padding-bottom: 4px; }
ul.pipeline { list-style: none; padding: 0; display: flex; gap: 24px; font-size: 13px; }
nav a { margin-right: 12px; font-size: 13px; }
"""

SECTIONS: Final = (
    ("overview", "Overview"),
    ("funnels", "Funnels"),
    ("retention", "Retention"),
    ("lifecycle", "Lifecycle"),
    ("experiments", "Experiments"),
    ("attribution", "Attribution"),
    ("quality", "Dead letters and late events"),
)


def render(data: ReportData, fmt: NumberFormat) -> str:
    """The whole page: self-contained HTML, no script, no external resource."""
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title in SECTIONS)
    sections = [
        overview(data, fmt),
        funnels_section(data, fmt),
        retention_section(data, fmt),
        lifecycle_section(data, fmt),
        experiments_section(data, fmt),
        attribution_section(data, fmt),
        quality_section(data, fmt),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="{esc(fmt.tag)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # No network: nothing may be loaded from anywhere, not even from this file's folder.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        "<title>Shop funnel report</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>Shop funnel report</h1>\n"
        f'<p class="meta">source: <span data-source>{esc(data.source)}</span> · generated '
        f"{esc(fmt.timestamp(data.generated_at))} UTC · locale {esc(fmt.tag)} · time "
        f"buckets per {esc(data.bucket)} (UTC)</p>\n<nav>{nav}</nav>\n</header>\n<main>\n"
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )
