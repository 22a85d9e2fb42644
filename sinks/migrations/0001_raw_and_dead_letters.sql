-- Raw input, late events and dead letters: one row per Kafka record.
-- Re-writing a row after a crash is harmless: ReplacingMergeTree keeps one per key.

CREATE TABLE IF NOT EXISTS events_raw
(
    event_id          String,
    event_type        LowCardinality(String),
    stream            LowCardinality(String),
    event_time        DateTime64(3, 'UTC'),
    sent_time         DateTime64(3, 'UTC'),
    anonymous_id      String,
    user_id           Nullable(String),
    session_id        String,
    platform          LowCardinality(String),
    device            LowCardinality(String),
    country           LowCardinality(String),
    channel           LowCardinality(String),
    utm_source        String,
    utm_medium        String,
    utm_campaign      String,
    utm_content       String,
    utm_term          String,
    referrer          String,
    page_url          String,
    referral_code     String,
    experiments       Map(String, String),
    item_ids          Array(String),
    item_prices_minor Array(Int64),
    item_quantities   Array(UInt32),
    cart_id           String,
    transaction_id    String,
    currency          LowCardinality(String),
    value_minor       Nullable(Int64),
    tax_minor         Nullable(Int64),
    shipping_minor    Nullable(Int64),
    discount_minor    Nullable(Int64),
    coupon            String,
    payment_type      LowCardinality(String),
    refund_reason     String,
    payment_error_code LowCardinality(String),
    is_late           UInt8,
    source_topic      LowCardinality(String),
    source_partition  UInt16,
    source_offset     UInt64,
    ingested_at       DateTime64(3, 'UTC'),
    -- An on-time copy (version 1) wins over a late copy (version 0) of the same event.
    version           UInt8
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_time)
ORDER BY (anonymous_id, event_id);

CREATE TABLE IF NOT EXISTS late_events
(
    event_id          String,
    event_type        LowCardinality(String),
    event_time        DateTime64(3, 'UTC'),
    watermark         DateTime64(3, 'UTC'),
    reason            LowCardinality(String),
    anonymous_id      String,
    session_id        String,
    channel           LowCardinality(String),
    source_topic      LowCardinality(String),
    source_partition  UInt16,
    source_offset     UInt64,
    ingested_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (source_topic, event_id, source_partition, source_offset);

CREATE TABLE IF NOT EXISTS dead_letters
(
    source_topic      LowCardinality(String),
    source_partition  UInt16,
    source_offset     UInt64,
    record_key        String,
    raw               String,
    reason            LowCardinality(String),
    detail            String,
    received_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (source_topic, source_partition, source_offset);
