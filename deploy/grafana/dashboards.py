"""The Grafana dashboards, one list of panels each (rendered by deploy/grafana/build.py).

Prometheus panels may only use metrics that ``PipelineMetrics`` exports and the recording
rules of ``deploy/prometheus/alert_rules.py``; ClickHouse panels only tables and views that
the migrations create. ``tests/unit/test_grafana.py`` checks both (it runs every ClickHouse
query against the migrated schema), so a panel is added by adding one entry here.

Money is stored in minor units; panels divide each currency by 10^(its ISO 4217 exponent):
ClickHouse panels with :data:`CH_MINOR_PER_MAJOR`, Prometheus panels with the worker's
``shopfunnel_currency_minor_units_per_major`` gauge (JPY and KRW by 1, KWD by 1000).
"""

from __future__ import annotations

from typing import Final

from deploy.grafana.alerting import Dashboard, Panel, PromQuery, Row, SqlQuery, Variable
from deploy.prometheus.alert_rules import (
    FUNNEL_DASHBOARD_UID,
    KPI_DASHBOARD_UID,
    PIPELINE_DASHBOARD_UID,
)
from schemas.iso4217 import MINOR_UNIT_EXPONENT
from streams.attribution import MODELS as ATTRIBUTION_MODELS

_NOT_TWO = sorted((code, e) for code, e in MINOR_UNIT_EXPONENT.items() if e != 2)
# Minor units per major unit of the row's ``currency`` (ISO 4217, schemas/iso4217.py).
CH_MINOR_PER_MAJOR: Final = (
    "pow(10, transform(currency, ["
    + ", ".join(f"'{code}'" for code, _ in _NOT_TWO)
    + "], ["
    + ", ".join(str(e) for _, e in _NOT_TWO)
    + "], 2))"
)
PROM_MINOR_PER_MAJOR: Final = (
    "on(currency) max by (currency) (shopfunnel_currency_minor_units_per_major)"
)

RETENTION_DASHBOARD_UID: Final = "shopfunnel-retention"

FUNNEL_VARIABLE: Final = Variable(
    "funnel", "Funnel", "label_values(shopfunnel:funnel_step_conversion:ratio_rate5m, funnel)"
)
CHANNEL_VARIABLE: Final = Variable(
    "channel", "Channel", "label_values(shopfunnel_funnel_step_entries_total, channel)", multi=True
)
EXPERIMENT_VARIABLE: Final = Variable(
    "experiment", "Experiment", "label_values(shopfunnel_experiment_exposed_users, experiment)"
)
RATIO: Final = "percentunit"


def _finite(column: str) -> str:
    # An interval without information yet is unbounded (+-inf): no point instead.
    return f"if(isFinite({column}), {column}, NULL)"


# Rows of the selected experiment's primary metric in experiment_readouts (migration 0008).
_EXPERIMENT_PRIMARY: Final = (
    "FROM experiment_readouts\nWHERE experiment = '${experiment}' AND metric = 'primary'"
)

# The Experiments row of the funnel dashboard (issue #14, docs/semantics.md section 3b):
# readouts the worker's experiment monitor writes to ClickHouse at every evaluation.
EXPERIMENT_ITEMS: Final[tuple[Panel | Row, ...]] = (
    Row("Experiments (live readouts)"),
    Panel(
        "Experiment verdicts",
        "stat",
        (
            PromQuery(
                "max by (experiment, verdict) (shopfunnel_experiment_verdict) == 1",
                "{{experiment}}: {{verdict}}",
                instant=True,
            ),
        ),
        width=6,
        height=6,
        base_colour="blue",
        description="Each experiment's current verdict (none, win, lose, guardrail_breach, "
        "srm) from the worker's gauges; alerts fire on guardrail_breach, srm, win and lose.",
    ),
    Panel(
        "Experiment status (latest evaluation)",
        "table",
        (
            SqlQuery(
                "SELECT experiment, evaluated_at, exposed, mixed, unknown,\n"
                "       srm_chi_square_p, srm_sequential_p,\n"
                "       verdict, verdict_variant, verdict_metric, reason\n"
                "FROM experiment_status\n"
                "ORDER BY experiment, evaluated_at DESC\n"
                "LIMIT 1 BY experiment",
                table=True,
            ),
        ),
        width=18,
        height=6,
        description="The newest experiment_status row of every experiment: exposed visitors, "
        "mixed and unknown-variant visitors (excluded), the sample-ratio p-values (chi-square: "
        "one look only; sequential: always valid) and the decision.",
    ),
    Panel(
        "Exposed visitors per variant",
        "timeseries",
        (
            SqlQuery(
                "SELECT $__timeInterval(evaluated_at) AS time, variant,\n"
                "       argMax(n, evaluated_at) AS exposed\n"
                f"{_EXPERIMENT_PRIMARY}\n"
                "  AND $__timeFilter(evaluated_at)\n"
                "GROUP BY time, variant\nORDER BY time"
            ),
        ),
        description="Exposed, non-mixed visitors of each variant of $experiment at each "
        "evaluation; the lines should keep the configured split.",
    ),
    Panel(
        "Relative lift of the primary metric (always-valid interval)",
        "timeseries",
        (
            SqlQuery(
                "SELECT $__timeInterval(evaluated_at) AS time, variant,\n"
                f"       {_finite('argMax(relative_lift, evaluated_at)')} AS lift,\n"
                f"       {_finite('argMax(ci_low, evaluated_at)')} AS ci_low,\n"
                f"       {_finite('argMax(ci_high, evaluated_at)')} AS ci_high\n"
                f"{_EXPERIMENT_PRIMARY} AND is_control = 0\n"
                "  AND $__timeFilter(evaluated_at)\n"
                "GROUP BY time, variant\nORDER BY time"
            ),
        ),
        unit=RATIO,
        description="Each treatment against the control: mean_B / mean_A - 1, between the "
        "always-valid (mSPRT) interval, intersected over every evaluation so it only narrows. "
        "Decided when the interval leaves 0.",
    ),
    Panel(
        "Primary metric p-values: always valid vs fixed horizon",
        "timeseries",
        (
            SqlQuery(
                "SELECT $__timeInterval(evaluated_at) AS time, variant,\n"
                "       min(p_always_valid) AS p_always_valid,\n"
                "       min(p_fixed_horizon) AS p_fixed_horizon\n"
                f"{_EXPERIMENT_PRIMARY} AND is_control = 0\n"
                "  AND $__timeFilter(evaluated_at)\n"
                "GROUP BY time, variant\nORDER BY time"
            ),
        ),
        max_value=1,
        description="The always-valid p-value may be read at every evaluation. The "
        "fixed-horizon p-value is valid at one planned look only: peeked at like this it dips "
        "below alpha (0.05 by default) by chance in about half of A/A tests "
        "(docs/semantics.md section 3b); never decide on it.",
    ),
    Panel(
        "Latest readout per variant and metric",
        "table",
        (
            SqlQuery(
                "SELECT variant, metric, currency, n, total, denominator,\n"
                f"       relative_lift, {_finite('ci_low')} AS ci_low,\n"
                f"       {_finite('ci_high')} AS ci_high,\n"
                "       p_always_valid, p_fixed_horizon, evaluated_at\n"
                "FROM v_experiment_readouts_latest\n"
                "WHERE experiment = '${experiment}'\n"
                "ORDER BY metric, currency, is_control DESC, variant",
                table=True,
            ),
        ),
        description="The newest evaluation of $experiment: the sufficient statistics "
        "(n visitors; total and denominator per metric, see migration 0008) and the lift of "
        "each treatment over the control (empty on the control's rows).",
    ),
)

# The Attribution and ROI row of the KPI dashboard (issue #15, docs/semantics.md section
# 10): today's gauges of the worker's attribution monitor, and the views of migration 0011.
ATTRIBUTION_MODEL: Final = "last_non_direct"
# v_attribution_daily per (day, model, channel, campaign, currency): a campaign's cost is on
# each of its KOL rows, so it is taken once here before summing over campaigns.
_CAMPAIGN_DAYS: Final = (
    "SELECT day, model, channel, campaign, currency,\n"
    "           sum(net_revenue_micro) AS net_revenue_micro,\n"
    "           any(cost_minor) AS campaign_cost_minor, max(has_cost) AS campaign_has_cost\n"
    "    FROM v_attribution_daily\n"
    "    WHERE $__dateFilter(day)\n"
    "    GROUP BY day, model, channel, campaign, currency"
)

ATTRIBUTION_ITEMS: Final[tuple[Panel | Row, ...]] = (
    Row("Attribution and ROI"),
    Panel(
        f"ROAS by channel today ({ATTRIBUTION_MODEL})",
        "bargauge",
        (
            PromQuery(
                f'max by (channel) (shopfunnel_attribution_roas{{model="{ATTRIBUTION_MODEL}"}})',
                "{{channel}}",
                instant=True,
            ),
        ),
        width=8,
        base_colour="red",
        thresholds=((1, "orange"), (2, "green")),
        description="Net attributed revenue / marketing cost of the worker's 'today' (the UTC "
        "day of the newest attributed order: event time), in the cost's currency; a channel "
        "that spent and sold nothing shows 0. From the attribution monitor's gauges.",
    ),
    Panel(
        f"Net attributed revenue and cost today ({ATTRIBUTION_MODEL})",
        "timeseries",
        (
            PromQuery(
                "max by (channel) (shopfunnel_attribution_revenue_today"
                f'{{model="{ATTRIBUTION_MODEL}"}})',
                "revenue {{channel}}",
            ),
            PromQuery(
                "max by (channel) (shopfunnel_marketing_cost_today)",
                "cost {{channel}}",
            ),
        ),
        width=16,
        description="Today's net attributed revenue (revenue - refunds) and marketing cost per "
        "channel, in major units of the cost's currency. Both restart at the next day.",
    ),
    Panel(
        "ROAS by channel and attribution model",
        "table",
        (
            SqlQuery(
                "SELECT channel, currency,\n"
                f"       any(cost_minor) / {CH_MINOR_PER_MAJOR} AS cost,\n"
                + ",\n".join(
                    f"       sumIf(net_revenue_micro, model = '{m}') / 1000000\n"
                    f"           / nullIf(any(cost_minor), 0) AS {m}"
                    for m in ATTRIBUTION_MODELS
                )
                + "\nFROM (\n"
                "    SELECT model, channel, currency,\n"
                "           sum(net_revenue_micro) AS net_revenue_micro,\n"
                "           sum(campaign_cost_minor) AS cost_minor,\n"
                "           max(campaign_has_cost) AS has_cost\n"
                f"    FROM ({_CAMPAIGN_DAYS})\n"
                "    GROUP BY model, channel, currency\n"
                ")\n"
                "WHERE has_cost = 1\n"
                "GROUP BY channel, currency\n"
                "ORDER BY cost DESC",
                table=True,
            ),
        ),
        width=24,
        description="Over the dashboard's days: net attributed revenue (revenue - refunds, "
        "refunds on the day of the refund) / cost, per channel, under each model, for the "
        "channels with a cost, in the cost's currency (v_attribution_daily). Compare the "
        "columns: first touch credits discovery, last non-direct the closing channel.",
    ),
    Panel(
        "Cost vs net attributed revenue per day",
        "timeseries",
        (
            SqlQuery(
                "SELECT toDateTime(day) AS time, currency,\n"
                f"       sum(campaign_cost_minor) / {CH_MINOR_PER_MAJOR} AS cost,\n"
                f"       sum(net_revenue_micro) / 1000000 / {CH_MINOR_PER_MAJOR}"
                " AS net_revenue\n"
                f"FROM ({_CAMPAIGN_DAYS})\n"
                f"WHERE model = '{ATTRIBUTION_MODEL}'\n"
                "GROUP BY time, currency\nORDER BY time"
            ),
        ),
        description="All channels' cost and net attributed revenue per UTC day and currency "
        "(the total is the same under every model: shares sum to the order).",
    ),
    Panel(
        f"LTV by acquisition channel ({ATTRIBUTION_MODEL})",
        "table",
        (
            SqlQuery(
                "SELECT channel, currency,\n"
                "       sum(customers_micro) / 1000000 AS customers,\n"
                "       sum(revenue_d7_micro) / nullIf(sum(customers_micro), 0)"
                f" / {CH_MINOR_PER_MAJOR} AS ltv_d7,\n"
                "       sum(revenue_d30_micro) / nullIf(sum(customers_micro), 0)"
                f" / {CH_MINOR_PER_MAJOR} AS ltv_d30\n"
                "FROM v_acquisition_ltv\n"
                f"WHERE model = '{ATTRIBUTION_MODEL}' AND $__dateFilter(cohort_day)\n"
                "GROUP BY channel, currency\nORDER BY customers DESC",
                table=True,
            ),
        ),
        description="Customers acquired in the dashboard's days (first orders, weighted by "
        "their shares) and their revenue per customer within 7 and 30 days of the first order "
        "(v_acquisition_ltv); young cohorts have not had their 30 days yet.",
    ),
)

# The first and last step of the selected funnel, for whole-funnel conversion.
_FUNNEL_BOUNDS: Final = (
    "(SELECT min(step) AS first_step, max(step) AS last_step FROM v_funnel_steps_day "
    "WHERE funnel = '${funnel}') AS bounds"
)

FUNNEL_OVERVIEW: Final = Dashboard(
    uid=FUNNEL_DASHBOARD_UID,
    title="Shop funnel: overview",
    description="Live step conversion from Prometheus (summed over workers), the last hour "
    "of event time from ClickHouse, and the live experiment readouts.",
    variables=(FUNNEL_VARIABLE, CHANNEL_VARIABLE, EXPERIMENT_VARIABLE),
    items=(
        Row("Live conversion (Prometheus, all workers)"),
        Panel(
            "Step conversion, 5m",
            "timeseries",
            (
                PromQuery(
                    'shopfunnel:funnel_step_conversion:ratio_rate5m{funnel="$funnel"}',
                    "{{from_step}} -> {{step}}",
                ),
            ),
            unit=RATIO,
            max_value=1,
            description="entries(step) / entries(previous step) over 5 minutes of wall time.",
        ),
        Panel(
            "Step conversion vs baseline, 15m",
            "timeseries",
            (
                PromQuery(
                    'shopfunnel:funnel_step_conversion:ratio_rate15m{funnel="$funnel"}',
                    "now {{step}}",
                ),
                PromQuery(
                    'shopfunnel:funnel_step_conversion:baseline_ratio{funnel="$funnel"}',
                    "baseline {{step}}",
                ),
            ),
            unit=RATIO,
            max_value=1,
            description="The baseline is the lower of the trailing hour and the same 15 minutes "
            "last week; FunnelStepConversionDrop fires below half of it.",
        ),
        Panel(
            "Step entries per second",
            "timeseries",
            (PromQuery('shopfunnel:funnel_step_entries:rate5m{funnel="$funnel"}', "{{step}}"),),
            unit="reqps",
        ),
        Panel(
            "Conversion by channel, 15m",
            "timeseries",
            (
                PromQuery(
                    "shopfunnel:funnel_step_conversion_by_channel:ratio_rate15m"
                    '{funnel="$funnel",channel=~"$channel"}',
                    "{{channel}} {{step}}",
                ),
            ),
            unit=RATIO,
            max_value=1,
        ),
        Panel(
            "Checkout -> purchase, 5m",
            "stat",
            (PromQuery("shopfunnel:checkout_purchase_conversion:ratio_rate5m", instant=True),),
            unit=RATIO,
            width=6,
            base_colour="red",
            thresholds=((0.1, "orange"), (0.3, "green")),
            description="CheckoutPurchaseCollapse fires below 10% while checkouts flow.",
        ),
        Panel(
            "Top campaigns entering the funnel, 15m",
            "bargauge",
            (
                PromQuery(
                    "topk(10, sum by (campaign) (rate(shopfunnel_campaign_step_entries_total"
                    '{funnel="$funnel"}[15m])))',
                    "{{campaign}}",
                    instant=True,
                ),
            ),
            unit="reqps",
            width=6,
            description="Campaign labels are bounded per worker: the first 20 seen plus the "
            "configured ones; the rest is 'other'.",
        ),
        Panel(
            "Event-time conversion per worker, 15m",
            "timeseries",
            (
                PromQuery(
                    'shopfunnel_funnel_step_conversion_ratio{funnel="$funnel",window="15m"}',
                    "{{instance}} {{step}}",
                ),
            ),
            unit=RATIO,
            max_value=1,
            description="Each worker's own view over the last 15 minutes of event time "
            "(stays right during replays and backlogs).",
        ),
        Row("Last hour of event time (ClickHouse)"),
        Panel(
            "Funnel now",
            "table",
            (
                SqlQuery(
                    "SELECT step, step_name, entered,\n"
                    "       conversion_from_previous, conversion_from_first\n"
                    "FROM v_funnel_now\nWHERE funnel = '${funnel}'\nORDER BY step",
                    table=True,
                ),
            ),
            width=12,
        ),
        Panel(
            "Step entries per hour",
            "timeseries",
            (
                SqlQuery(
                    "SELECT hour AS time, step_name, sum(entered) AS entered\n"
                    "FROM v_funnel_steps_hour\n"
                    "WHERE funnel = '${funnel}' AND $__timeFilter(hour)\n"
                    "GROUP BY time, step_name\nORDER BY time"
                ),
            ),
        ),
        Panel(
            "Whole-funnel conversion by channel",
            "table",
            (
                SqlQuery(
                    "SELECT channel,\n"
                    "       sumIf(entered, step = bounds.first_step) AS started,\n"
                    "       sumIf(entered, step = bounds.last_step) AS completed,\n"
                    "       completed / nullIf(started, 0) AS conversion\n"
                    f"FROM v_funnel_steps_day\nCROSS JOIN {_FUNNEL_BOUNDS}\n"
                    "WHERE funnel = '${funnel}' AND $__dateFilter(day)\n"
                    "GROUP BY channel\nORDER BY started DESC\nLIMIT 30",
                    table=True,
                ),
            ),
            width=24,
        ),
        *EXPERIMENT_ITEMS,
    ),
)

KPIS: Final = Dashboard(
    uid=KPI_DASHBOARD_UID,
    title="Shop funnel: KPIs",
    description="GMV, orders, AOV, refunds and coupon use (ClickHouse views v_kpi_*), with live "
    "rates from Prometheus; attribution, ROAS and LTV by channel (v_attribution_daily, "
    "v_acquisition_ltv).",
    time_from="now-7d",
    items=(
        Row("Live (Prometheus)"),
        Panel(
            "Orders per minute",
            "stat",
            (PromQuery("shopfunnel:orders:rate5m * 60", instant=True),),
            width=8,
        ),
        Panel(
            "GMV per minute",
            "stat",
            (
                PromQuery(
                    f"shopfunnel:gmv_minor:rate5m * 60 / {PROM_MINOR_PER_MAJOR}",
                    "{{currency}}",
                    instant=True,
                ),
            ),
            width=8,
        ),
        Panel(
            "AOV, 15m",
            "stat",
            (
                PromQuery(
                    f"shopfunnel:aov_minor:ratio_rate15m / {PROM_MINOR_PER_MAJOR}",
                    "{{currency}}",
                    instant=True,
                ),
            ),
            width=8,
        ),
        Row("By event time (ClickHouse)"),
        Panel(
            "GMV per hour",
            "timeseries",
            (
                SqlQuery(
                    f"SELECT hour AS time, currency, sum(gmv_minor) / {CH_MINOR_PER_MAJOR} AS gmv\n"
                    "FROM v_kpi_hour\nWHERE $__timeFilter(hour)\n"
                    "GROUP BY time, currency\nORDER BY time"
                ),
            ),
        ),
        Panel(
            "Orders: first vs repeat",
            "timeseries",
            (
                SqlQuery(
                    "SELECT $__timeInterval(window_start) AS time,\n"
                    "       sum(first_orders) AS first_orders,\n"
                    "       sum(repeat_orders) AS repeat_orders\n"
                    "FROM v_kpi_minute\nWHERE $__timeFilter(window_start)\n"
                    "GROUP BY time\nORDER BY time"
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Average order value",
            "timeseries",
            (
                SqlQuery(
                    "SELECT hour AS time, currency,\n"
                    "       sum(gmv_minor) / nullIf(sum(orders), 0)"
                    f" / {CH_MINOR_PER_MAJOR} AS aov\n"
                    "FROM v_kpi_hour\nWHERE $__timeFilter(hour)\n"
                    "GROUP BY time, currency\nORDER BY time"
                ),
            ),
        ),
        Panel(
            "Refund rate (refunded / GMV)",
            "timeseries",
            (
                SqlQuery(
                    "SELECT hour AS time, currency,\n"
                    "       sum(refunded_minor) / nullIf(sum(gmv_minor), 0) AS refund_rate\n"
                    "FROM v_kpi_hour\nWHERE $__timeFilter(hour)\n"
                    "GROUP BY time, currency\nORDER BY time"
                ),
            ),
            unit=RATIO,
        ),
        Panel(
            "Coupon use",
            "timeseries",
            (
                SqlQuery(
                    "SELECT hour AS time,\n"
                    "       sum(coupon_orders) / nullIf(sum(orders), 0) AS orders_with_coupon,\n"
                    "       sum(discount_minor) / nullIf(sum(gmv_minor) + sum(discount_minor), 0)"
                    " AS discount_share\n"
                    "FROM v_kpi_hour\nWHERE $__timeFilter(hour)\nGROUP BY time\nORDER BY time"
                ),
            ),
            unit=RATIO,
        ),
        Panel(
            "Payment failures and cancellations",
            "timeseries",
            (
                SqlQuery(
                    "SELECT $__timeInterval(window_start) AS time,\n"
                    "       sum(payment_failures) AS payment_failures,\n"
                    "       sum(cancellations) AS cancellations\n"
                    "FROM v_kpi_minute\nWHERE $__timeFilter(window_start)\n"
                    "GROUP BY time\nORDER BY time"
                ),
            ),
        ),
        Panel(
            "Channels",
            "table",
            (
                SqlQuery(
                    "SELECT channel, currency,\n"
                    "       sum(orders) AS order_count,\n"
                    f"       sum(gmv_minor) / {CH_MINOR_PER_MAJOR} AS gmv_major,\n"
                    "       gmv_major / nullIf(order_count, 0) AS aov_major,\n"
                    "       sum(refunds) AS refund_count,\n"
                    "       sum(coupon_orders) / nullIf(order_count, 0) AS coupon_share,\n"
                    "       sum(repeat_orders) / nullIf(order_count, 0) AS repeat_share\n"
                    "FROM v_kpi_day\nWHERE $__dateFilter(day)\n"
                    "GROUP BY channel, currency\nORDER BY gmv_major DESC",
                    table=True,
                ),
            ),
            width=24,
        ),
        *ATTRIBUTION_ITEMS,
    ),
)

RETENTION: Final = Dashboard(
    uid=RETENTION_DASHBOARD_UID,
    title="Shop funnel: retention and segments",
    description="New vs returning customers, time to convert and outcomes; cohort retention "
    "(v_retention_triangle), time between orders, RFM lifecycle segments and marketing "
    "triggers from ClickHouse.",
    time_from="now-90d",
    refresh="5m",
    variables=(FUNNEL_VARIABLE,),
    items=(
        Panel(
            "Orders by new vs returning customers per day",
            "timeseries",
            (
                SqlQuery(
                    "SELECT toDateTime(day) AS time,\n"
                    "       sum(first_orders) AS new_customers, sum(repeat_orders) AS returning\n"
                    "FROM v_kpi_day\nWHERE $__dateFilter(day)\nGROUP BY time\nORDER BY time"
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Repeat purchase share by channel",
            "table",
            (
                SqlQuery(
                    "SELECT channel,\n"
                    "       sum(first_orders) AS first_order_count,\n"
                    "       sum(repeat_orders) AS repeat_order_count,\n"
                    "       repeat_order_count / nullIf(first_order_count + repeat_order_count, 0)"
                    " AS repeat_share\n"
                    "FROM v_kpi_day\nWHERE $__dateFilter(day)\n"
                    "GROUP BY channel\nORDER BY repeat_share DESC",
                    table=True,
                ),
            ),
        ),
        Panel(
            "Time to convert (heatmap)",
            "heatmap",
            (
                SqlQuery(
                    "SELECT $__timeInterval(window_start) AS time, toString(le_seconds) AS le,\n"
                    "       sum(converted) AS converted\n"
                    "FROM funnel_ttc_minute FINAL\n"
                    "WHERE funnel = '${funnel}' AND $__timeFilter(window_start)\n"
                    "GROUP BY time, le\nORDER BY time"
                ),
            ),
            width=24,
            unit="short",
            description="Converted entities per time-to-convert bucket (upper bound, seconds).",
        ),
        Panel(
            "Time between steps (exact mean and median)",
            "table",
            (
                SqlQuery(
                    "SELECT k AS step, count() AS reached,\n"
                    "       round(avg(d) / 1000, 1) AS mean_seconds,\n"
                    "       round(quantileExactInclusive(0.5)(d) / 1000, 1) AS median_seconds\n"
                    "FROM (\n"
                    "    SELECT arrayJoin(arrayEnumerate(step_times)) AS k,\n"
                    "           if(k = 1, 0, toUnixTimestamp64Milli(step_times[k])\n"
                    "                        - toUnixTimestamp64Milli(step_times[k - 1])) AS d\n"
                    "    FROM funnel_attempts FINAL\n"
                    "    WHERE attempts > 0 AND funnel = '${funnel}'"
                    " AND $__timeFilter(window_start)\n"
                    ")\nWHERE k > 1\nGROUP BY k\nORDER BY k",
                    table=True,
                ),
            ),
            width=24,
            description="From step k-1 to step k, over the entities that reached step k "
            "(funnel_attempts, one row per credited session or user attempt group).",
        ),
        Panel(
            "Funnel outcomes per hour",
            "timeseries",
            (
                SqlQuery(
                    "SELECT toStartOfHour(window_start) AS time, outcome,\n"
                    "       sum(entities) AS entities\n"
                    "FROM funnel_outcomes_minute FINAL\n"
                    "WHERE funnel = '${funnel}' AND $__timeFilter(window_start)\n"
                    "GROUP BY time, outcome\nORDER BY time"
                ),
            ),
            stacked=True,
        ),
        Panel(
            "Segments: conversion by device, platform and country",
            "table",
            (
                SqlQuery(
                    "SELECT device, platform, country,\n"
                    "       sumIf(entered, step = bounds.first_step) AS started,\n"
                    "       sumIf(entered, step = bounds.last_step) AS completed,\n"
                    "       completed / nullIf(started, 0) AS conversion\n"
                    f"FROM v_funnel_steps_day\nCROSS JOIN {_FUNNEL_BOUNDS}\n"
                    "WHERE funnel = '${funnel}' AND $__dateFilter(day)\n"
                    "GROUP BY device, platform, country\nORDER BY started DESC\nLIMIT 50",
                    table=True,
                ),
            ),
        ),
        Row("Retention cohorts (semantics.md section 6)"),
        Panel(
            "Weekly retention of first-visit cohorts (heatmap)",
            "heatmap",
            (
                SqlQuery(
                    "SELECT toDateTime(cohort_start) AS time,\n"
                    "       concat('W', leftPad(toString(period), 2, '0')) AS week, rate\n"
                    "FROM v_retention_triangle\n"
                    "WHERE cohort_kind = 'first_visit' AND granularity = 'week'\n"
                    "  AND activity = 'visit' AND $__dateFilter(cohort_start)\n"
                    "ORDER BY time, week"
                ),
            ),
            width=24,
            height=9,
            unit=RATIO,
            description="Share of each ISO-week cohort (by first visit) that visits again in "
            "week N after it (W00 = the cohort week, 100%).",
        ),
        Panel(
            "Buying again: first-purchase cohorts by month",
            "table",
            (
                SqlQuery(
                    "SELECT cohort_start, any(cohort_size) AS buyers,\n"
                    + ",\n".join(f"       maxIf(rate, period = {n}) AS m{n}" for n in range(7))
                    + "\nFROM v_retention_triangle\n"
                    "WHERE cohort_kind = 'first_purchase' AND granularity = 'month'\n"
                    "  AND activity = 'purchase'\n"
                    "GROUP BY cohort_start\nORDER BY cohort_start DESC\nLIMIT 13",
                    table=True,
                ),
            ),
            unit=RATIO,
            description="Share of each month's new buyers that buy again in month N "
            "(m0 = the month of the first purchase).",
        ),
        Panel(
            "Time between orders",
            "barchart",
            (
                SqlQuery(
                    "SELECT if(isInfinite(le_days), '> 180 d', concat('<= ', toString(le_days),"
                    " ' d')) AS gap,\n"
                    "       sum(orders) AS repeat_orders\n"
                    "FROM order_gaps_daily FINAL\nWHERE $__dateFilter(day)\n"
                    "GROUP BY le_days, gap\nORDER BY le_days",
                    table=True,
                ),
            ),
            description="Repeat orders by the time since the buyer's previous order.",
        ),
        Row("Lifecycle segments and triggers (semantics.md sections 7-8)"),
        Panel(
            "Buyers per lifecycle stage",
            "timeseries",
            (
                SqlQuery(
                    "SELECT toDateTime(days.d) AS time, stage, argMax(users, day) AS buyers\n"
                    "FROM v_segment_sizes_daily\n"
                    "CROSS JOIN (SELECT arrayJoin(arrayMap(i -> toDate($__fromTime) + i,\n"
                    "    range(toUInt32(greatest(0, dateDiff('day', toDate($__fromTime),\n"
                    "    toDate($__toTime)) + 1))))) AS d) AS days\n"
                    "WHERE day <= days.d\n"
                    "GROUP BY time, stage\nORDER BY time"
                ),
            ),
            stacked=True,
            description="Buyers in each stage at the end of each day (a stage keeps its size "
            "on days without a transition).",
        ),
        Panel(
            "Buyers per stage now",
            "barchart",
            (
                SqlQuery(
                    "SELECT stage, count() AS buyers\nFROM user_rfm FINAL\n"
                    "GROUP BY stage\n"
                    "ORDER BY indexOf(['new', 'active', 'dormant', 'churned'], stage)",
                    table=True,
                ),
            ),
            width=6,
        ),
        Panel(
            "RFM segments",
            "table",
            (
                SqlQuery(
                    "SELECT multiIf(r_score >= 4 AND f_score >= 4, 'champions',\n"
                    "               r_score >= 3 AND f_score >= 3, 'loyal',\n"
                    "               r_score >= 4, 'promising',\n"
                    "               r_score <= 2 AND f_score >= 3, 'at risk',\n"
                    "               r_score <= 2, 'hibernating', 'needs attention') AS segment,\n"
                    "       count() AS buyers, avg(frequency) AS avg_orders,\n"
                    "       avg(recency_days) AS avg_days_since_order,\n"
                    "       avg(m_score) AS avg_monetary_score\n"
                    "FROM v_rfm_scores\nGROUP BY segment\nORDER BY buyers DESC",
                    table=True,
                ),
            ),
            width=6,
            description="Named from the quintile scores of v_rfm_scores (5 = most recent, most "
            "frequent, highest spend in its currency).",
        ),
        Panel(
            "Recency x frequency scores",
            "table",
            (
                SqlQuery(
                    "SELECT r_score AS recency_score,\n"
                    + ",\n".join(f"       countIf(f_score = {n}) AS f{n}" for n in range(5, 0, -1))
                    + ",\n       count() AS buyers\n"
                    "FROM v_rfm_scores\nGROUP BY r_score\nORDER BY r_score DESC",
                    table=True,
                ),
            ),
            description="Buyers per recency score (rows) and frequency score (columns).",
        ),
        Panel(
            "Marketing triggers per type",
            "timeseries",
            (
                SqlQuery(
                    "SELECT $__timeInterval(occurred_at) AS time, trigger_type,\n"
                    "       count() AS triggers\n"
                    "FROM triggers FINAL\nWHERE $__timeFilter(occurred_at)\n"
                    "GROUP BY time, trigger_type\nORDER BY time"
                ),
            ),
            stacked=True,
            description="Triggers sent to shop.triggers, by the event time they are about.",
        ),
    ),
)

PIPELINE: Final = Dashboard(
    uid=PIPELINE_DASHBOARD_UID,
    title="Shop funnel: pipeline health",
    description="Ingestion, lag, watermarks, dead letters, late events, sink and state.",
    time_from="now-3h",
    items=(
        Row("Ingestion"),
        Panel(
            "Workers up",
            "stat",
            (PromQuery('sum(up{job="shopfunnel-worker"})', instant=True),),
            width=6,
            base_colour="red",
            thresholds=((1, "green"),),
        ),
        Panel(
            "Firing alerts",
            "table",
            (
                PromQuery(
                    'sum by (alertname, category, severity) (ALERTS{alertstate="firing"})',
                    instant=True,
                ),
            ),
            width=18,
            height=6,
        ),
        Panel(
            "Events ingested per second by topic",
            "timeseries",
            (PromQuery("shopfunnel:events_ingested:rate5m", "{{topic}}"),),
            unit="reqps",
        ),
        Panel(
            "Consumer lag by topic",
            "timeseries",
            (
                PromQuery(
                    "sum by (topic) (max by (topic, partition) (shopfunnel_consumer_lag_records))",
                    "{{topic}}",
                ),
            ),
            unit="short",
        ),
        Panel(
            "Watermark delay by partition",
            "timeseries",
            (
                PromQuery(
                    "max by (partition) (shopfunnel_watermark_delay_seconds)",
                    "partition {{partition}}",
                ),
            ),
            unit="s",
            description="Wall clock minus the event-time watermark; grows when a partition "
            "stalls or during a replay.",
        ),
        Panel(
            "Batches: events and duration (p99)",
            "timeseries",
            (
                PromQuery(
                    "histogram_quantile(0.99, sum by (le) "
                    "(rate(shopfunnel_batch_duration_seconds_bucket[$__rate_interval])))",
                    "p99 duration",
                ),
                PromQuery(
                    "histogram_quantile(0.5, sum by (le) "
                    "(rate(shopfunnel_batch_events_bucket[$__rate_interval])))",
                    "median events per batch",
                ),
            ),
            unit="short",
        ),
        Row("Data quality"),
        Panel(
            "Dead letters per second by reason",
            "timeseries",
            (PromQuery("sum by (reason) (shopfunnel:dead_letters:rate5m)", "{{reason}}"),),
            unit="reqps",
            stacked=True,
        ),
        Panel(
            "Dead-letter ratio by topic",
            "timeseries",
            (PromQuery("shopfunnel:dead_letters_by_topic:ratio_rate5m", "{{topic}}"),),
            unit=RATIO,
            thresholds=((0.05, "red"),),
        ),
        Panel(
            "Late events per second by reason",
            "timeseries",
            (
                PromQuery(
                    "sum by (topic, reason) (shopfunnel:late_events:rate5m)", "{{topic}} {{reason}}"
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Duplicates per second by topic",
            "timeseries",
            (
                PromQuery(
                    "sum by (topic) (rate(shopfunnel_duplicate_events_total[$__rate_interval]))",
                    "{{topic}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Dead letters by reason and topic (ClickHouse)",
            "table",
            (
                SqlQuery(
                    "SELECT source_topic, reason, count() AS records,\n"
                    "       max(received_at) AS last_seen,\n"
                    "       any(detail) AS example\n"
                    "FROM dead_letters\nWHERE $__timeFilter(received_at)\n"
                    "GROUP BY source_topic, reason\nORDER BY records DESC\nLIMIT 50",
                    table=True,
                ),
            ),
        ),
        Panel(
            "Late events by reason (ClickHouse)",
            "timeseries",
            (
                SqlQuery(
                    "SELECT $__timeInterval(ingested_at) AS time, reason, count() AS late_events\n"
                    "FROM late_events\nWHERE $__timeFilter(ingested_at)\n"
                    "GROUP BY time, reason\nORDER BY time"
                ),
            ),
        ),
        Row("Sink and state"),
        Panel(
            "Sink batch latency p50 / p99",
            "timeseries",
            (
                PromQuery(
                    "histogram_quantile(0.5, sum by (le, table) "
                    "(rate(shopfunnel_sink_batch_duration_seconds_bucket[$__rate_interval])))",
                    "p50 {{table}}",
                ),
                PromQuery(
                    "histogram_quantile(0.99, sum by (le, table) "
                    "(rate(shopfunnel_sink_batch_duration_seconds_bucket[$__rate_interval])))",
                    "p99 {{table}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Sink rows and failures per second",
            "timeseries",
            (
                PromQuery(
                    "sum by (table) (rate(shopfunnel_sink_rows_total[$__rate_interval]))",
                    "rows {{table}}",
                ),
                PromQuery(
                    "sum by (table) (rate(shopfunnel_sink_failures_total[$__rate_interval]))",
                    "failures {{table}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Sink queue (rows waiting)",
            "timeseries",
            (PromQuery("sum by (instance) (shopfunnel_sink_queue_rows)", "{{instance}}"),),
        ),
        Panel(
            "Catching up: input behind, bulk inserts (1)",
            "timeseries",
            (PromQuery("max by (instance) (shopfunnel_input_behind)", "{{instance}}"),),
        ),
        Panel(
            "State size",
            "timeseries",
            (
                PromQuery("sum by (store) (shopfunnel_state_keys)", "keys {{store}}"),
                PromQuery("sum by (store) (shopfunnel_state_bytes)", "bytes {{store}}"),
            ),
            unit="short",
        ),
        Panel(
            "Worker memory by part (sinks/memory.py)",
            "timeseries",
            (
                PromQuery(
                    'sum by (part) (shopfunnel_memory_bytes{part!="python_blocks"})',
                    "{{part}}",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "ClickHouse disk free",
            "timeseries",
            (
                PromQuery(
                    "min by (instance, disk) (shopfunnel_clickhouse_disk_free_bytes)",
                    "{{disk}} {{instance}}",
                ),
            ),
            unit="bytes",
            description="Free space on ClickHouse's disks (system.disks). ClickHouseDiskLow "
            "fires below 10% of the disk or 2 GiB: inserts and the readouts' spilled "
            "GROUP BYs need it.",
        ),
        Panel(
            "Experiment readout: age and evaluation time",
            "timeseries",
            (
                PromQuery(
                    "time() - max(shopfunnel_experiment_last_evaluation_timestamp_seconds > 0)",
                    "age of the readouts",
                ),
                PromQuery(
                    "max(shopfunnel_experiment_evaluation_seconds)",
                    "last evaluation took (the next starts 9x that later)",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Changelog records per second",
            "timeseries",
            (
                PromQuery(
                    "sum by (instance) (rate(shopfunnel_changelog_records_total"
                    "[$__rate_interval]))",
                    "{{instance}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Triggers per second and delay (p99)",
            "timeseries",
            (
                PromQuery(
                    "sum by (type) (rate(shopfunnel_triggers_total[$__rate_interval]))", "{{type}}"
                ),
                PromQuery(
                    "histogram_quantile(0.99, sum by (le, type) "
                    "(rate(shopfunnel_trigger_delay_seconds_bucket[$__rate_interval])))",
                    "p99 delay {{type}}",
                ),
            ),
            unit="short",
        ),
        Panel(
            "Workers",
            "table",
            (PromQuery("shopfunnel_worker_info", instant=True),),
            width=24,
            height=5,
        ),
    ),
)

DASHBOARDS: Final = (FUNNEL_OVERVIEW, KPIS, RETENTION, PIPELINE)
