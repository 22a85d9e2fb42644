-- Live experiment readouts (issue #14, docs/semantics.md section 3b), written by the
-- worker's experiment monitor (streams/experiment_monitor.py) at every evaluation.
--
-- experiment_readouts: one row per evaluation, experiment, variant and metric. The
-- sufficient statistics the readout was computed from (recomputable at any time by the SQL
-- of reports/experiment_readout.py over events_raw and funnel_attempts), and what the
-- statistics engine (streams/experiment_stats.py) made of them against the control.
--   metric: primary (conversions of a funnel step: total = converted visitors),
--           step_1 .. step_k (total = visitors whose credited attempt of the primary's
--           funnel, started at or after their exposure, reached that step),
--           revenue_per_user (per currency, minor units: total, total_sq per visitor;
--           denominator = purchases in that currency, so total / denominator is the AOV),
--           orders (total = purchases), or a guardrail name (total = numerator events,
--           denominator = denominator events, with per-visitor squares and cross products),
--           or primary_cuped / revenue_per_user_cuped (CUPED: total, total_sq = the primary's
--           per-visitor value y; denominator, denominator_sq = the pre-exposure covariate x;
--           cross_products = sum of x * y).
--   n: the variant's exposed, non-mixed visitors. Lift columns are relative to the
--   control and NULL on the control's rows; ci_low/ci_high are the always-valid (mSPRT)
--   interval of the relative lift, intersected over every evaluation so far.
CREATE TABLE IF NOT EXISTS experiment_readouts
(
    evaluated_at     DateTime64(3, 'UTC'),
    experiment       LowCardinality(String),
    variant          LowCardinality(String),
    is_control       UInt8,
    metric           LowCardinality(String),
    currency         LowCardinality(String),
    n                UInt64,
    total            Int128,
    total_sq         Int128,
    denominator      Int128,
    denominator_sq   Int128,
    cross_products   Int128,
    relative_lift    Nullable(Float64),
    ci_low           Nullable(Float64),
    ci_high          Nullable(Float64),
    p_always_valid   Nullable(Float64),
    p_fixed_horizon  Nullable(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (experiment, evaluated_at, variant, metric, currency);

-- (ReplacingMergeTree like every table here: a row written twice counts once.)

-- One row per evaluation and experiment: exclusions, the sample-ratio checks and the
-- decision (verdict: none | win | lose | guardrail_breach | srm).
CREATE TABLE IF NOT EXISTS experiment_status
(
    evaluated_at        DateTime64(3, 'UTC'),
    experiment          LowCardinality(String),
    exposed             UInt64,
    mixed               UInt64,
    unknown             UInt64,
    srm_chi_square_p    Float64,
    srm_sequential_p    Float64,
    verdict             LowCardinality(String),
    verdict_variant     String,
    verdict_metric      String,
    reason              String,
    -- What the always-valid results were computed with: a restarted worker folds the
    -- newest readout into its running p-values and intervals only if these are unchanged.
    alpha               Float64,
    mixing_tau2         Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (experiment, evaluated_at);

-- Decisions published on the triggers topic, once each: (experiment, verdict, variant).
-- triggers_offset is where the trigger landed in the triggers topic's partition 0.
CREATE TABLE IF NOT EXISTS experiment_decisions
(
    decided_at       DateTime64(3, 'UTC'),
    experiment       LowCardinality(String),
    verdict          LowCardinality(String),
    variant          String,
    metric           String,
    reason           String,
    triggers_offset  Int64
)
ENGINE = ReplacingMergeTree(decided_at)
ORDER BY (experiment, verdict, variant);

-- The newest readout of every experiment, variant, metric and currency.
CREATE VIEW IF NOT EXISTS v_experiment_readouts_latest AS
SELECT *
FROM experiment_readouts
WHERE (experiment, evaluated_at) IN (
    SELECT experiment, max(evaluated_at) FROM experiment_readouts GROUP BY experiment
);
