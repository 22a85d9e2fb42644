CREATE TABLE dead_letters
(
    `source_topic` LowCardinality(String),
    `source_partition` UInt16,
    `source_offset` UInt64,
    `record_key` String,
    `raw` String,
    `reason` LowCardinality(String),
    `detail` String,
    `received_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (source_topic, source_partition, source_offset)
SETTINGS index_granularity = 8192;

CREATE TABLE events_raw
(
    `event_id` String,
    `event_type` LowCardinality(String),
    `stream` LowCardinality(String),
    `event_time` DateTime64(3, 'UTC'),
    `sent_time` DateTime64(3, 'UTC'),
    `anonymous_id` String,
    `user_id` Nullable(String),
    `session_id` String,
    `platform` LowCardinality(String),
    `device` LowCardinality(String),
    `country` LowCardinality(String),
    `channel` LowCardinality(String),
    `utm_source` String,
    `utm_medium` String,
    `utm_campaign` String,
    `utm_content` String,
    `utm_term` String,
    `referrer` String,
    `page_url` String,
    `referral_code` String,
    `experiments` Map(String, String),
    `item_ids` Array(String),
    `item_prices_minor` Array(Int64),
    `item_quantities` Array(UInt32),
    `cart_id` String,
    `transaction_id` String,
    `currency` LowCardinality(String),
    `value_minor` Nullable(Int64),
    `tax_minor` Nullable(Int64),
    `shipping_minor` Nullable(Int64),
    `discount_minor` Nullable(Int64),
    `coupon` String,
    `payment_type` LowCardinality(String),
    `refund_reason` String,
    `payment_error_code` LowCardinality(String),
    `is_late` UInt8,
    `source_topic` LowCardinality(String),
    `source_partition` UInt16,
    `source_offset` UInt64,
    `ingested_at` DateTime64(3, 'UTC'),
    `version` UInt8,
    `properties` Map(String, String) DEFAULT map(),
    `item_coupons` Array(String) DEFAULT [],
    `item_discounts_minor` Array(Int64) DEFAULT [],
    `search_term` String DEFAULT '',
    `item_names` Array(String) DEFAULT [],
    `item_categories` Array(String) DEFAULT [],
    `item_brands` Array(String) DEFAULT [],
    `item_variants` Array(String) DEFAULT []
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_time)
ORDER BY (anonymous_id, event_id)
SETTINGS index_granularity = 8192;

CREATE TABLE experiment_decisions
(
    `decided_at` DateTime64(3, 'UTC'),
    `experiment` LowCardinality(String),
    `verdict` LowCardinality(String),
    `variant` String,
    `metric` String,
    `reason` String,
    `triggers_offset` Int64
)
ENGINE = ReplacingMergeTree(decided_at)
ORDER BY (experiment, verdict, variant)
SETTINGS index_granularity = 8192;

CREATE TABLE experiment_readouts
(
    `evaluated_at` DateTime64(3, 'UTC'),
    `experiment` LowCardinality(String),
    `variant` LowCardinality(String),
    `is_control` UInt8,
    `metric` LowCardinality(String),
    `currency` LowCardinality(String),
    `n` UInt64,
    `total` Int128,
    `total_sq` Int128,
    `denominator` Int128,
    `denominator_sq` Int128,
    `cross_products` Int128,
    `relative_lift` Nullable(Float64),
    `ci_low` Nullable(Float64),
    `ci_high` Nullable(Float64),
    `p_always_valid` Nullable(Float64),
    `p_fixed_horizon` Nullable(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (experiment, evaluated_at, variant, metric, currency)
SETTINGS index_granularity = 8192;

CREATE TABLE experiment_status
(
    `evaluated_at` DateTime64(3, 'UTC'),
    `experiment` LowCardinality(String),
    `exposed` UInt64,
    `mixed` UInt64,
    `unknown` UInt64,
    `srm_chi_square_p` Float64,
    `srm_sequential_p` Float64,
    `verdict` LowCardinality(String),
    `verdict_variant` String,
    `verdict_metric` String,
    `reason` String,
    `alpha` Float64,
    `mixing_tau2` Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (experiment, evaluated_at)
SETTINGS index_granularity = 8192;

CREATE TABLE forget_audit
(
    `request_id` String,
    `partition` UInt16,
    `phase` LowCardinality(String),
    `requested_at` DateTime64(3, 'UTC'),
    `processed_at` DateTime64(3, 'UTC'),
    `range_from` Nullable(DateTime64(3, 'UTC')),
    `range_to` Nullable(DateTime64(3, 'UTC')),
    `base_version` UInt64,
    `thresholds` String,
    `events_forgotten` UInt32,
    `rows_corrected` UInt32,
    `rows_deleted` UInt64,
    `duration_ms` UInt32,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (request_id, partition)
SETTINGS index_granularity = 8192;

CREATE TABLE funnel_attempts
(
    `funnel` LowCardinality(String),
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `breakdown` Array(LowCardinality(String)),
    `anonymous_id` String,
    `entity` String,
    `start_event_id` String,
    `outcome` LowCardinality(String),
    `level` UInt8,
    `step_times` Array(DateTime64(3, 'UTC')),
    `partition` UInt16,
    `attempts` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, anonymous_id, entity, start_event_id, outcome, level, step_times, partition, breakdown)
SETTINGS index_granularity = 8192;

CREATE TABLE funnel_outcomes_minute
(
    `funnel` LowCardinality(String),
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `breakdown` Array(LowCardinality(String)),
    `outcome` LowCardinality(String),
    `partition` UInt16,
    `entities` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
PRIMARY KEY (funnel, window_start, channel, campaign, device, platform, country, outcome, partition)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, outcome, partition, breakdown)
SETTINGS index_granularity = 8192;

CREATE TABLE funnel_steps_minute
(
    `funnel` LowCardinality(String),
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `breakdown` Array(LowCardinality(String)),
    `step` UInt8,
    `step_name` LowCardinality(String),
    `partition` UInt16,
    `entered` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
PRIMARY KEY (funnel, window_start, channel, campaign, device, platform, country, step, partition)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, step, partition, breakdown)
SETTINGS index_granularity = 8192;

CREATE TABLE funnel_ttc_minute
(
    `funnel` LowCardinality(String),
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `breakdown` Array(LowCardinality(String)),
    `le_seconds` Float64,
    `partition` UInt16,
    `converted` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
PRIMARY KEY (funnel, window_start, channel, campaign, device, platform, country, le_seconds, partition)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, le_seconds, partition, breakdown)
SETTINGS index_granularity = 8192;

CREATE TABLE kpi_minute
(
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `currency` LowCardinality(String),
    `partition` UInt16,
    `orders` UInt64,
    `gmv_minor` Int64,
    `items` UInt64,
    `coupon_orders` UInt64,
    `discount_minor` Int64,
    `first_orders` UInt64,
    `repeat_orders` UInt64,
    `refunds` UInt64,
    `refunded_minor` Int64,
    `payment_failures` UInt64,
    `cancellations` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, campaign, device, platform, country, currency, partition)
SETTINGS index_granularity = 8192;

CREATE TABLE late_events
(
    `event_id` String,
    `event_type` LowCardinality(String),
    `event_time` DateTime64(3, 'UTC'),
    `watermark` DateTime64(3, 'UTC'),
    `reason` LowCardinality(String),
    `anonymous_id` String,
    `session_id` String,
    `channel` LowCardinality(String),
    `source_topic` LowCardinality(String),
    `source_partition` UInt16,
    `source_offset` UInt64,
    `ingested_at` DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (source_topic, event_id, source_partition, source_offset)
SETTINGS index_granularity = 8192;

CREATE TABLE marketing_costs
(
    `day` Date,
    `channel` LowCardinality(String),
    `utm_source` String,
    `utm_medium` String,
    `campaign` String,
    `currency` LowCardinality(String),
    `cost_minor` Int64,
    `imported_at` DateTime64(3, 'UTC'),
    `origin` String,
    `source_partition` UInt16,
    `source_offset` UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, imported_at, source_partition, source_offset, channel, utm_source, utm_medium, campaign, currency)
SETTINGS index_granularity = 8192;

CREATE TABLE order_attribution
(
    `window_start` DateTime('UTC'),
    `anonymous_id` String,
    `transaction_id` String,
    `model` LowCardinality(String),
    `channel` LowCardinality(String),
    `source` String,
    `medium` String,
    `campaign` String,
    `kol` String,
    `order_time` DateTime64(3, 'UTC'),
    `currency` LowCardinality(String),
    `value_minor` Int64,
    `is_first` UInt8,
    `partition` UInt16,
    `share_micro` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, anonymous_id, transaction_id, model, channel, source, medium, campaign, kol, order_time, currency, value_minor, is_first, partition)
SETTINGS index_granularity = 8192;

CREATE TABLE order_gaps_daily
(
    `day` Date,
    `channel` LowCardinality(String),
    `le_days` Float64,
    `partition` UInt16,
    `orders` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, channel, le_days, partition)
SETTINGS index_granularity = 8192;

CREATE TABLE retention_cohorts
(
    `cohort_kind` LowCardinality(String),
    `granularity` LowCardinality(String),
    `cohort_start` Date,
    `activity` LowCardinality(String),
    `period` UInt16,
    `channel` LowCardinality(String),
    `platform` LowCardinality(String),
    `partition` UInt16,
    `users` UInt64,
    `is_final` UInt8,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(cohort_start)
ORDER BY (cohort_kind, granularity, cohort_start, activity, period, channel, platform, partition)
SETTINGS index_granularity = 8192;

CREATE TABLE segment_transitions
(
    `anonymous_id` String,
    `at` DateTime64(3, 'UTC'),
    `from_stage` LowCardinality(String),
    `to_stage` LowCardinality(String),
    `partition` UInt16,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(at)
ORDER BY (anonymous_id, at, to_stage)
SETTINGS index_granularity = 8192;

CREATE TABLE triggers
(
    `trigger_id` String,
    `trigger_type` LowCardinality(String),
    `anonymous_id` String,
    `user_id` Nullable(String),
    `occurred_at` DateTime64(3, 'UTC'),
    `emitted_at` DateTime64(3, 'UTC'),
    `cart_value_minor` Nullable(Int64),
    `currency` LowCardinality(String),
    `channel` LowCardinality(String),
    `segment` LowCardinality(String),
    `previous_segment` LowCardinality(String),
    `partition` UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY trigger_id
SETTINGS index_granularity = 8192;

CREATE TABLE user_rfm
(
    `anonymous_id` String,
    `user_id` Nullable(String),
    `stage` LowCardinality(String),
    `first_purchase_at` DateTime64(3, 'UTC'),
    `last_purchase_at` DateTime64(3, 'UTC'),
    `frequency` UInt32,
    `monetary_minor` Int64,
    `currency` LowCardinality(String),
    `channel` LowCardinality(String),
    `as_of` DateTime64(3, 'UTC'),
    `partition` UInt16,
    `version` UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY anonymous_id
SETTINGS index_granularity = 8192;

CREATE VIEW v_acquisition_ltv
(
    `cohort_day` Date,
    `model` String,
    `channel` String,
    `campaign` String,
    `kol` String,
    `currency` String,
    `customers_micro` UInt64,
    `customers` Float64,
    `revenue_d7_micro` Int128,
    `revenue_d30_micro` Int128,
    `revenue_d7_minor` Float64,
    `revenue_d30_minor` Float64,
    `ltv_d7_minor` Float64,
    `ltv_d30_minor` Float64
)
AS WITH
    credited AS
    (
        SELECT
            order_time,
            anonymous_id,
            transaction_id,
            currency,
            value_minor,
            is_first,
            model,
            channel,
            campaign,
            kol,
            share_micro
        FROM order_attribution
        FINAL
        WHERE share_micro > 0
    ),
    orders AS
    (
        SELECT
            anonymous_id,
            transaction_id,
            any(order_time) AS order_time,
            any(currency) AS currency,
            any(value_minor) AS value_minor
        FROM credited
        GROUP BY
            anonymous_id,
            transaction_id
    ),
    firsts AS
    (
        SELECT
            anonymous_id,
            transaction_id,
            order_time AS first_time,
            CAST(currency, 'String') AS currency,
            CAST(model, 'String') AS model,
            CAST(channel, 'String') AS channel,
            campaign,
            kol,
            sum(share_micro) AS share_micro
        FROM credited
        WHERE is_first = 1
        GROUP BY
            anonymous_id,
            transaction_id,
            first_time,
            currency,
            model,
            channel,
            campaign,
            kol
    ),
    customer_revenue AS
    (
        SELECT
            anonymous_id,
            transaction_id,
            sumIf(value_minor, gap_ms <= (7 * 86400000)) AS revenue_d7,
            sumIf(value_minor, gap_ms <= (30 * 86400000)) AS revenue_d30
        FROM
        (
            SELECT
                f.anonymous_id AS anonymous_id,
                f.transaction_id AS transaction_id,
                toInt128(o.value_minor) AS value_minor,
                toUnixTimestamp64Milli(o.order_time) - toUnixTimestamp64Milli(f.first_time) AS gap_ms
            FROM
            (
                SELECT DISTINCT
                    anonymous_id,
                    transaction_id,
                    first_time,
                    currency
                FROM firsts
            ) AS f
            INNER JOIN orders AS o ON (o.anonymous_id = f.anonymous_id) AND (o.currency = f.currency)
        )
        WHERE (gap_ms >= 0) AND (gap_ms <= (30 * 86400000))
        GROUP BY
            anonymous_id,
            transaction_id
    )
SELECT
    toDate(f.first_time) AS cohort_day,
    f.model AS model,
    f.channel AS channel,
    f.campaign AS campaign,
    f.kol AS kol,
    f.currency AS currency,
    sum(f.share_micro) AS customers_micro,
    customers_micro / 1000000 AS customers,
    sum(r.revenue_d7 * toInt128(f.share_micro)) AS revenue_d7_micro,
    sum(r.revenue_d30 * toInt128(f.share_micro)) AS revenue_d30_micro,
    revenue_d7_micro / 1000000 AS revenue_d7_minor,
    revenue_d30_micro / 1000000 AS revenue_d30_minor,
    revenue_d7_micro / customers_micro AS ltv_d7_minor,
    revenue_d30_micro / customers_micro AS ltv_d30_minor
FROM firsts AS f
INNER JOIN customer_revenue AS r ON (r.anonymous_id = f.anonymous_id) AND (r.transaction_id = f.transaction_id)
GROUP BY
    cohort_day,
    model,
    channel,
    campaign,
    kol,
    currency;

CREATE VIEW v_attribution_daily
(
    `day` Date,
    `model` String,
    `channel` String,
    `campaign` String,
    `kol` String,
    `currency` String,
    `orders_micro` UInt64,
    `attributed_orders` Float64,
    `revenue_micro` Int128,
    `revenue_minor` Float64,
    `refunded_micro` Int128,
    `refunded_minor` Float64,
    `net_revenue_micro` Int128,
    `net_revenue_minor` Float64,
    `first_orders_micro` UInt64,
    `new_customers` Float64,
    `cost_minor` Int64,
    `has_cost` UInt8,
    `roas` Nullable(Float64),
    `cpa_minor` Nullable(Float64),
    `cac_minor` Nullable(Float64)
)
AS WITH
    credited AS
    (
        SELECT
            order_time,
            anonymous_id,
            transaction_id,
            currency,
            value_minor,
            is_first,
            model,
            channel,
            campaign,
            kol,
            share_micro
        FROM order_attribution
        FINAL
        WHERE share_micro > 0
    ),
    refunds AS
    (
        SELECT
            anonymous_id,
            transaction_id,
            toDate(event_time) AS day,
            CAST(currency, 'String') AS currency,
            ifNull(value_minor, 0) AS value_minor
        FROM events_raw
        FINAL
        WHERE (event_type = 'refund') AND (is_late = 0)
    ),
    models AS
    (
        SELECT arrayJoin(['first_touch', 'last_touch', 'last_non_direct', 'linear', 'position_based', 'time_decay']) AS model
    ),
    parts AS
    (
        SELECT
            toDate(order_time) AS day,
            CAST(model, 'String') AS model,
            CAST(channel, 'String') AS channel,
            campaign,
            kol,
            CAST(currency, 'String') AS currency,
            toUInt64(share_micro) AS orders_micro,
            toInt128(value_minor) * toInt128(share_micro) AS revenue_micro,
            toInt128(0) AS refunded_micro,
            toUInt64(if(is_first = 1, share_micro, 0)) AS first_orders_micro,
            toInt64(0) AS own_cost_minor,
            toUInt8(0) AS own_cost,
            toUInt8(1) AS sold
        FROM credited
        UNION ALL
        SELECT
            r.day,
            CAST(c.model, 'String'),
            CAST(c.channel, 'String'),
            c.campaign,
            c.kol,
            r.currency,
            toUInt64(0),
            toInt128(0),
            toInt128(r.value_minor) * toInt128(c.share_micro),
            toUInt64(0),
            toInt64(0),
            toUInt8(0),
            toUInt8(1)
        FROM refunds AS r
        INNER JOIN credited AS c ON (r.anonymous_id = c.anonymous_id) AND (r.transaction_id = c.transaction_id)
        WHERE r.transaction_id != ''
        UNION ALL
        SELECT
            r.day,
            m.model,
            '(unattributed)',
            '',
            '',
            r.currency,
            toUInt64(0),
            toInt128(0),
            toInt128(r.value_minor) * toInt128(1000000),
            toUInt64(0),
            toInt64(0),
            toUInt8(0),
            toUInt8(1)
        FROM refunds AS r
        CROSS JOIN models AS m
        WHERE (r.transaction_id = '') OR ((r.anonymous_id, r.transaction_id) NOT IN (
            SELECT
                anonymous_id,
                transaction_id
            FROM credited
        ))
        UNION ALL
        SELECT
            k.day,
            m.model,
            k.channel,
            k.campaign,
            '',
            k.currency,
            toUInt64(0),
            toInt128(0),
            toInt128(0),
            toUInt64(0),
            k.cost_minor,
            toUInt8(1),
            toUInt8(0)
        FROM
        (
            SELECT
                day,
                CAST(channel, 'String') AS channel,
                CAST(campaign, 'String') AS campaign,
                CAST(currency, 'String') AS currency,
                toInt64(sum(cost_minor)) AS cost_minor
            FROM v_marketing_costs
            GROUP BY
                day,
                channel,
                campaign,
                currency
        ) AS k
        CROSS JOIN models AS m
    ),
    cells AS
    (
        SELECT
            day,
            model,
            channel,
            campaign,
            kol,
            currency,
            sum(orders_micro) AS orders_micro,
            sum(revenue_micro) AS revenue_micro,
            sum(refunded_micro) AS refunded_micro,
            sum(first_orders_micro) AS first_orders_micro,
            sum(own_cost_minor) AS own_cost_minor,
            max(own_cost) AS own_cost,
            max(sold) AS sold
        FROM parts
        GROUP BY
            day,
            model,
            channel,
            campaign,
            kol,
            currency
    ),
    spread AS
    (
        SELECT
            day,
            model,
            channel,
            campaign,
            kol,
            currency,
            orders_micro,
            revenue_micro,
            refunded_micro,
            first_orders_micro,
            sold,
            sum(own_cost_minor) OVER campaign_day AS cost_minor,
            max(own_cost) OVER campaign_day AS has_cost,
            max(sold) OVER campaign_day AS campaign_sold
        FROM cells
        WINDOW campaign_day AS (PARTITION BY day, model, channel, campaign, currency)
    )
SELECT
    day,
    model,
    channel,
    campaign,
    kol,
    currency,
    orders_micro,
    orders_micro / 1000000 AS attributed_orders,
    revenue_micro,
    revenue_micro / 1000000 AS revenue_minor,
    refunded_micro,
    refunded_micro / 1000000 AS refunded_minor,
    revenue_micro - refunded_micro AS net_revenue_micro,
    (revenue_micro - refunded_micro) / 1000000 AS net_revenue_minor,
    first_orders_micro,
    first_orders_micro / 1000000 AS new_customers,
    cost_minor,
    has_cost,
    if((has_cost = 1) AND (cost_minor != 0), ((revenue_micro - refunded_micro) / 1000000) / cost_minor, NULL) AS roas,
    if((has_cost = 1) AND (orders_micro > 0), (cost_minor * 1000000) / orders_micro, NULL) AS cpa_minor,
    if((has_cost = 1) AND (first_orders_micro > 0), (cost_minor * 1000000) / first_orders_micro, NULL) AS cac_minor
FROM spread
WHERE (sold = 1) OR (campaign_sold = 0);

CREATE VIEW v_experiment_readouts_latest
(
    `evaluated_at` DateTime64(3, 'UTC'),
    `experiment` LowCardinality(String),
    `variant` LowCardinality(String),
    `is_control` UInt8,
    `metric` LowCardinality(String),
    `currency` LowCardinality(String),
    `n` UInt64,
    `total` Int128,
    `total_sq` Int128,
    `denominator` Int128,
    `denominator_sq` Int128,
    `cross_products` Int128,
    `relative_lift` Nullable(Float64),
    `ci_low` Nullable(Float64),
    `ci_high` Nullable(Float64),
    `p_always_valid` Nullable(Float64),
    `p_fixed_horizon` Nullable(Float64)
)
AS SELECT *
FROM experiment_readouts
WHERE (experiment, evaluated_at) IN (
    SELECT
        experiment,
        max(evaluated_at)
    FROM experiment_readouts
    GROUP BY experiment
);

CREATE VIEW v_funnel_now
(
    `funnel` LowCardinality(String),
    `step` UInt8,
    `step_name` String,
    `entered` UInt64,
    `conversion_from_previous` Nullable(Float64),
    `conversion_from_first` Nullable(Float64)
)
AS WITH
    per_step AS
    (
        SELECT
            funnel,
            step,
            any(step_name) AS step_name,
            sum(entered) AS entered
        FROM funnel_steps_minute
        FINAL
        WHERE window_start >= ((
            SELECT max(window_start)
            FROM funnel_steps_minute
        ) - toIntervalHour(1))
        GROUP BY
            funnel,
            step
    )
SELECT
    funnel,
    step,
    step_name,
    entered,
    entered / nullIf(any(entered) OVER w_prev, 0) AS conversion_from_previous,
    entered / nullIf(any(entered) OVER w_all, 0) AS conversion_from_first
FROM per_step
WINDOW
    w_prev AS (PARTITION BY funnel ORDER BY step ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW),
    w_all AS (PARTITION BY funnel ORDER BY step ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
ORDER BY
    funnel ASC,
    step ASC;

CREATE VIEW v_funnel_steps_day
(
    `funnel` LowCardinality(String),
    `day` Date,
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `step` UInt8,
    `step_name` String,
    `entered` UInt64
)
AS SELECT
    funnel,
    toDate(window_start) AS day,
    channel,
    campaign,
    device,
    platform,
    country,
    step,
    any(step_name) AS step_name,
    sum(entered) AS entered
FROM funnel_steps_minute
FINAL
GROUP BY
    funnel,
    day,
    channel,
    campaign,
    device,
    platform,
    country,
    step;

CREATE VIEW v_funnel_steps_hour
(
    `funnel` LowCardinality(String),
    `hour` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `step` UInt8,
    `step_name` String,
    `entered` UInt64
)
AS SELECT
    funnel,
    toStartOfHour(window_start) AS hour,
    channel,
    campaign,
    device,
    platform,
    country,
    step,
    any(step_name) AS step_name,
    sum(entered) AS entered
FROM funnel_steps_minute
FINAL
GROUP BY
    funnel,
    hour,
    channel,
    campaign,
    device,
    platform,
    country,
    step;

CREATE VIEW v_funnel_steps_minute
(
    `funnel` LowCardinality(String),
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `step` UInt8,
    `step_name` String,
    `entered` UInt64
)
AS SELECT
    funnel,
    window_start,
    channel,
    campaign,
    device,
    platform,
    country,
    step,
    any(step_name) AS step_name,
    sum(entered) AS entered
FROM funnel_steps_minute
FINAL
GROUP BY
    funnel,
    window_start,
    channel,
    campaign,
    device,
    platform,
    country,
    step;

CREATE VIEW v_kpi_day
(
    `day` Date,
    `channel` LowCardinality(String),
    `currency` LowCardinality(String),
    `orders` UInt64,
    `gmv_minor` Int64,
    `refunds` UInt64,
    `refunded_minor` Int64,
    `coupon_orders` UInt64,
    `discount_minor` Int64,
    `first_orders` UInt64,
    `repeat_orders` UInt64,
    `payment_failures` UInt64,
    `aov_minor` Nullable(Float64)
)
AS SELECT
    toDate(window_start) AS day,
    channel,
    currency,
    sum(orders) AS orders,
    sum(gmv_minor) AS gmv_minor,
    sum(refunds) AS refunds,
    sum(refunded_minor) AS refunded_minor,
    sum(coupon_orders) AS coupon_orders,
    sum(discount_minor) AS discount_minor,
    sum(first_orders) AS first_orders,
    sum(repeat_orders) AS repeat_orders,
    sum(payment_failures) AS payment_failures,
    gmv_minor / nullIf(orders, 0) AS aov_minor
FROM kpi_minute
FINAL
GROUP BY
    day,
    channel,
    currency;

CREATE VIEW v_kpi_hour
(
    `hour` DateTime('UTC'),
    `channel` LowCardinality(String),
    `currency` LowCardinality(String),
    `orders` UInt64,
    `gmv_minor` Int64,
    `refunds` UInt64,
    `refunded_minor` Int64,
    `coupon_orders` UInt64,
    `discount_minor` Int64,
    `first_orders` UInt64,
    `repeat_orders` UInt64,
    `payment_failures` UInt64,
    `aov_minor` Nullable(Float64)
)
AS SELECT
    toStartOfHour(window_start) AS hour,
    channel,
    currency,
    sum(orders) AS orders,
    sum(gmv_minor) AS gmv_minor,
    sum(refunds) AS refunds,
    sum(refunded_minor) AS refunded_minor,
    sum(coupon_orders) AS coupon_orders,
    sum(discount_minor) AS discount_minor,
    sum(first_orders) AS first_orders,
    sum(repeat_orders) AS repeat_orders,
    sum(payment_failures) AS payment_failures,
    gmv_minor / nullIf(orders, 0) AS aov_minor
FROM kpi_minute
FINAL
GROUP BY
    hour,
    channel,
    currency;

CREATE VIEW v_kpi_minute
(
    `window_start` DateTime('UTC'),
    `channel` LowCardinality(String),
    `campaign` String,
    `device` LowCardinality(String),
    `platform` LowCardinality(String),
    `country` LowCardinality(String),
    `currency` LowCardinality(String),
    `orders` UInt64,
    `gmv_minor` Int64,
    `items` UInt64,
    `coupon_orders` UInt64,
    `discount_minor` Int64,
    `first_orders` UInt64,
    `repeat_orders` UInt64,
    `refunds` UInt64,
    `refunded_minor` Int64,
    `payment_failures` UInt64,
    `cancellations` UInt64,
    `aov_minor` Nullable(Float64)
)
AS SELECT
    window_start,
    channel,
    campaign,
    device,
    platform,
    country,
    currency,
    sum(orders) AS orders,
    sum(gmv_minor) AS gmv_minor,
    sum(items) AS items,
    sum(coupon_orders) AS coupon_orders,
    sum(discount_minor) AS discount_minor,
    sum(first_orders) AS first_orders,
    sum(repeat_orders) AS repeat_orders,
    sum(refunds) AS refunds,
    sum(refunded_minor) AS refunded_minor,
    sum(payment_failures) AS payment_failures,
    sum(cancellations) AS cancellations,
    gmv_minor / nullIf(orders, 0) AS aov_minor
FROM kpi_minute
FINAL
GROUP BY
    window_start,
    channel,
    campaign,
    device,
    platform,
    country,
    currency;

CREATE VIEW v_marketing_costs
(
    `day` Date,
    `channel` LowCardinality(String),
    `utm_source` String,
    `utm_medium` String,
    `campaign` String,
    `currency` LowCardinality(String),
    `cost_minor` Int64,
    `imported_at` DateTime64(3, 'UTC'),
    `origin` String
)
AS SELECT
    day,
    channel,
    utm_source,
    utm_medium,
    campaign,
    currency,
    cost_minor,
    imported_at,
    origin
FROM marketing_costs
FINAL
WHERE (channel != '') AND ((day, imported_at, source_partition, source_offset) IN (
    SELECT
        day,
        latest.1,
        latest.2,
        latest.3
    FROM
    (
        SELECT
            day,
            max((imported_at, source_partition, source_offset)) AS latest
        FROM marketing_costs
        GROUP BY day
    )
));

CREATE VIEW v_retention_triangle
(
    `cohort_kind` LowCardinality(String),
    `granularity` LowCardinality(String),
    `cohort_start` Date,
    `activity` LowCardinality(String),
    `period` UInt16,
    `users` UInt64,
    `cohort_size` UInt64,
    `rate` Nullable(Float64)
)
AS SELECT
    r.cohort_kind AS cohort_kind,
    r.granularity AS granularity,
    r.cohort_start AS cohort_start,
    r.activity AS activity,
    r.period AS period,
    r.users AS users,
    s.cohort_size AS cohort_size,
    r.users / nullIf(s.cohort_size, 0) AS rate
FROM
(
    SELECT
        cohort_kind,
        granularity,
        cohort_start,
        activity,
        period,
        sum(users) AS users
    FROM retention_cohorts
    FINAL
    GROUP BY
        cohort_kind,
        granularity,
        cohort_start,
        activity,
        period
) AS r
INNER JOIN
(
    SELECT
        cohort_kind,
        granularity,
        cohort_start,
        sum(users) AS cohort_size
    FROM retention_cohorts
    FINAL
    WHERE (period = 0) AND (activity = if(cohort_kind = 'first_visit', 'visit', 'purchase'))
    GROUP BY
        cohort_kind,
        granularity,
        cohort_start
) AS s ON (r.cohort_kind = s.cohort_kind) AND (r.granularity = s.granularity) AND (r.cohort_start = s.cohort_start);

CREATE VIEW v_rfm_scores
(
    `anonymous_id` String,
    `stage` LowCardinality(String),
    `recency_days` Nullable(Int64),
    `frequency` UInt32,
    `monetary_minor` Int64,
    `currency` LowCardinality(String),
    `r_score` UInt8,
    `f_score` UInt8,
    `m_score` UInt8
)
AS SELECT
    anonymous_id,
    stage,
    recency_days,
    frequency,
    monetary_minor,
    currency,
    toUInt8(1 + least(4, floor(percentRank() OVER (ORDER BY recency_days DESC) * 5))) AS r_score,
    toUInt8(1 + least(4, floor(percentRank() OVER (ORDER BY frequency ASC) * 5))) AS f_score,
    toUInt8(1 + least(4, floor(percentRank() OVER (PARTITION BY currency ORDER BY monetary_minor ASC) * 5))) AS m_score
FROM
(
    SELECT
        anonymous_id,
        stage,
        frequency,
        monetary_minor,
        currency,
        dateDiff('day', last_purchase_at, (
            SELECT max(as_of)
            FROM user_rfm
        )) AS recency_days
    FROM user_rfm
    FINAL
);

CREATE VIEW v_segment_sizes_daily
(
    `day` Date,
    `stage` LowCardinality(String),
    `users` Int64
)
AS SELECT
    day,
    stage,
    sum(delta) OVER (PARTITION BY stage ORDER BY day ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS users
FROM
(
    SELECT
        day,
        stage,
        sum(delta) AS delta
    FROM
    (
        SELECT
            toDate(at) AS day,
            to_stage AS stage,
            toInt64(1) AS delta
        FROM segment_transitions
        FINAL
        WHERE to_stage != 'forgotten'
        UNION ALL
        SELECT
            toDate(at) AS day,
            from_stage AS stage,
            toInt64(-1) AS delta
        FROM segment_transitions
        FINAL
        WHERE from_stage != 'prospect'
    )
    GROUP BY
        day,
        stage
);
