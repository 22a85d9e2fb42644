-- Multi-touch attribution (docs/semantics.md section 10): one row per counted order,
-- model and touchpoint key. `share_micro` is the key's share of the order in millionths
-- (an order's shares sum to 1,000,000 per model); credited revenue is
-- value_minor * share_micro / 1e6. Read with FINAL and share_micro > 0: a superseded
-- credit (a late touchpoint, an earlier copy of the order) is a row with share_micro = 0.
CREATE TABLE IF NOT EXISTS order_attribution
(
    window_start   DateTime('UTC'),
    anonymous_id   String,
    transaction_id String,
    model          LowCardinality(String),
    channel        LowCardinality(String),
    source         String,
    medium         String,
    campaign       String,
    kol            String,
    order_time     DateTime64(3, 'UTC'),
    currency       LowCardinality(String),
    value_minor    Int64,
    is_first       UInt8,
    partition      UInt16,
    share_micro    UInt64,
    is_final       UInt8,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, anonymous_id, transaction_id, model, channel, source, medium, campaign, kol, order_time, currency, value_minor, is_first, partition);
