-- Retention cohorts, RFM lifecycle and marketing triggers (docs/semantics.md 6-8).
-- Absolute values per Kafka partition with a version, like the minute tables.

CREATE TABLE IF NOT EXISTS retention_cohorts
(
    cohort_kind  LowCardinality(String),
    granularity  LowCardinality(String),
    cohort_start Date,
    activity     LowCardinality(String),
    period       UInt16,
    channel      LowCardinality(String),
    platform     LowCardinality(String),
    partition    UInt16,
    users        UInt64,
    is_final     UInt8,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(cohort_start)
ORDER BY (cohort_kind, granularity, cohort_start, activity, period, channel, platform, partition);

CREATE TABLE IF NOT EXISTS order_gaps_daily
(
    day          Date,
    channel      LowCardinality(String),
    le_days      Float64,
    partition    UInt16,
    orders       UInt64,
    is_final     UInt8,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, channel, le_days, partition);

CREATE TABLE IF NOT EXISTS user_rfm
(
    anonymous_id      String,
    user_id           Nullable(String),
    stage             LowCardinality(String),
    first_purchase_at DateTime64(3, 'UTC'),
    last_purchase_at  DateTime64(3, 'UTC'),
    frequency         UInt32,
    monetary_minor    Int64,
    currency          LowCardinality(String),
    channel           LowCardinality(String),
    as_of             DateTime64(3, 'UTC'),
    partition         UInt16,
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY anonymous_id;

CREATE TABLE IF NOT EXISTS segment_transitions
(
    anonymous_id String,
    at           DateTime64(3, 'UTC'),
    from_stage   LowCardinality(String),
    to_stage     LowCardinality(String),
    partition    UInt16,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(at)
ORDER BY (anonymous_id, at, to_stage);

CREATE TABLE IF NOT EXISTS triggers
(
    trigger_id       String,
    trigger_type     LowCardinality(String),
    anonymous_id     String,
    user_id          Nullable(String),
    occurred_at      DateTime64(3, 'UTC'),
    emitted_at       DateTime64(3, 'UTC'),
    cart_value_minor Nullable(Int64),
    currency         LowCardinality(String),
    channel          LowCardinality(String),
    segment          LowCardinality(String),
    previous_segment LowCardinality(String),
    partition        UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY trigger_id;

-- The classic triangle: share of the cohort active in period N.
CREATE VIEW IF NOT EXISTS v_retention_triangle AS
SELECT r.cohort_kind AS cohort_kind, r.granularity AS granularity, r.cohort_start AS cohort_start,
       r.activity AS activity, r.period AS period, r.users AS users, s.cohort_size AS cohort_size,
       r.users / nullIf(s.cohort_size, 0) AS rate
FROM
(
    SELECT cohort_kind, granularity, cohort_start, activity, period, sum(users) AS users
    FROM retention_cohorts FINAL
    GROUP BY cohort_kind, granularity, cohort_start, activity, period
) AS r
INNER JOIN
(
    SELECT cohort_kind, granularity, cohort_start, sum(users) AS cohort_size
    FROM retention_cohorts FINAL
    WHERE period = 0 AND activity = if(cohort_kind = 'first_visit', 'visit', 'purchase')
    GROUP BY cohort_kind, granularity, cohort_start
) AS s
ON r.cohort_kind = s.cohort_kind AND r.granularity = s.granularity AND r.cohort_start = s.cohort_start;

-- Segment sizes at the end of each day with a transition (carry forward between them).
CREATE VIEW IF NOT EXISTS v_segment_sizes_daily AS
SELECT day, stage, sum(delta) OVER (PARTITION BY stage ORDER BY day ROWS UNBOUNDED PRECEDING) AS users
FROM
(
    SELECT day, stage, sum(delta) AS delta
    FROM
    (
        SELECT toDate(at) AS day, to_stage AS stage, toInt64(1) AS delta FROM segment_transitions FINAL
        UNION ALL
        SELECT toDate(at) AS day, from_stage AS stage, toInt64(-1) AS delta
        FROM segment_transitions FINAL WHERE from_stage != 'prospect'
    )
    GROUP BY day, stage
);

-- RFM quintile scores over all buyers (5 = most recent / most frequent / highest spend).
-- Rank-based, so buyers with equal values always get the same score.
CREATE VIEW IF NOT EXISTS v_rfm_scores AS
SELECT anonymous_id, stage, recency_days, frequency, monetary_minor, currency,
       toUInt8(1 + least(4, floor(percent_rank() OVER (ORDER BY recency_days DESC) * 5))) AS r_score,
       toUInt8(1 + least(4, floor(percent_rank() OVER (ORDER BY frequency ASC) * 5))) AS f_score,
       toUInt8(1 + least(4, floor(
           percent_rank() OVER (PARTITION BY currency ORDER BY monetary_minor ASC) * 5))) AS m_score
FROM
(
    SELECT anonymous_id, stage, frequency, monetary_minor, currency,
           dateDiff('day', last_purchase_at, (SELECT max(as_of) FROM user_rfm)) AS recency_days
    FROM user_rfm FINAL
);
