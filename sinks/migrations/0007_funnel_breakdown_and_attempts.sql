-- Per-funnel breakdowns and exact time to convert (docs/semantics.md section 3).
-- `breakdown` holds a funnel's breakdown values (empty for a funnel without one). A new
-- column can join a sorting key only in the ALTER that adds it, and only at the end.

ALTER TABLE funnel_steps_minute
    ADD COLUMN IF NOT EXISTS breakdown Array(LowCardinality(String)) AFTER country,
    MODIFY ORDER BY (funnel, window_start, channel, campaign, device, platform, country, step, partition, breakdown);

ALTER TABLE funnel_outcomes_minute
    ADD COLUMN IF NOT EXISTS breakdown Array(LowCardinality(String)) AFTER country,
    MODIFY ORDER BY (funnel, window_start, channel, campaign, device, platform, country, outcome, partition, breakdown);

ALTER TABLE funnel_ttc_minute
    ADD COLUMN IF NOT EXISTS breakdown Array(LowCardinality(String)) AFTER country,
    MODIFY ORDER BY (funnel, window_start, channel, campaign, device, platform, country, le_seconds, partition, breakdown);

-- One row per credited entity: read with FINAL and attempts > 0 (a superseded credit is
-- a row with attempts = 0).
CREATE TABLE IF NOT EXISTS funnel_attempts
(
    funnel         LowCardinality(String),
    window_start   DateTime('UTC'),
    channel        LowCardinality(String),
    campaign       String,
    device         LowCardinality(String),
    platform       LowCardinality(String),
    country        LowCardinality(String),
    breakdown      Array(LowCardinality(String)),
    anonymous_id   String,
    entity         String,
    start_event_id String,
    outcome        LowCardinality(String),
    level          UInt8,
    step_times     Array(DateTime64(3, 'UTC')),
    partition      UInt16,
    attempts       UInt64,
    is_final       UInt8,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (funnel, window_start, channel, campaign, device, platform, country, anonymous_id, entity, start_event_id, outcome, level, step_times, partition, breakdown);
