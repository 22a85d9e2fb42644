-- Minute aggregates. Each worker writes the absolute value of its Kafka partition's
-- partial aggregate with a version; ReplacingMergeTree keeps the newest per key, and
-- readers sum over `partition` (the v_* views do this). A replayed write is harmless.

CREATE TABLE IF NOT EXISTS funnel_steps_minute
(
    funnel       LowCardinality(String),
    window_start DateTime('UTC'),
    channel      LowCardinality(String),
    campaign     String,
    device       LowCardinality(String),
    platform     LowCardinality(String),
    country      LowCardinality(String),
    step         UInt8,
    step_name    LowCardinality(String),
    partition    UInt16,
    entered      UInt64,
    is_final     UInt8,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, step, partition);

CREATE TABLE IF NOT EXISTS funnel_outcomes_minute
(
    funnel       LowCardinality(String),
    window_start DateTime('UTC'),
    channel      LowCardinality(String),
    campaign     String,
    device       LowCardinality(String),
    platform     LowCardinality(String),
    country      LowCardinality(String),
    outcome      LowCardinality(String),
    partition    UInt16,
    entities     UInt64,
    is_final     UInt8,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, outcome, partition);

CREATE TABLE IF NOT EXISTS funnel_ttc_minute
(
    funnel       LowCardinality(String),
    window_start DateTime('UTC'),
    channel      LowCardinality(String),
    campaign     String,
    device       LowCardinality(String),
    platform     LowCardinality(String),
    country      LowCardinality(String),
    le_seconds   Float64,
    partition    UInt16,
    converted    UInt64,
    is_final     UInt8,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, le_seconds, partition);

CREATE TABLE IF NOT EXISTS kpi_minute
(
    window_start     DateTime('UTC'),
    channel          LowCardinality(String),
    campaign         String,
    device           LowCardinality(String),
    platform         LowCardinality(String),
    country          LowCardinality(String),
    currency         LowCardinality(String),
    partition        UInt16,
    orders           UInt64,
    gmv_minor        Int64,
    items            UInt64,
    coupon_orders    UInt64,
    discount_minor   Int64,
    first_orders     UInt64,
    repeat_orders    UInt64,
    refunds          UInt64,
    refunded_minor   Int64,
    payment_failures UInt64,
    cancellations    UInt64,
    is_final         UInt8,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, campaign, device, platform, country, currency, partition);
