-- A buyer's life forgotten after the buyer TTL now ends with a transition to 'forgotten'
-- (docs/semantics.md section 7): it leaves its last stage instead of staying there, so a
-- buyer who comes back (a new life, prospect -> new) is counted once, not twice.
CREATE OR REPLACE VIEW v_segment_sizes_daily AS
SELECT day, stage, sum(delta) OVER (PARTITION BY stage ORDER BY day ROWS UNBOUNDED PRECEDING) AS users
FROM
(
    SELECT day, stage, sum(delta) AS delta
    FROM
    (
        SELECT toDate(at) AS day, to_stage AS stage, toInt64(1) AS delta
        FROM segment_transitions FINAL WHERE to_stage != 'forgotten'
        UNION ALL
        SELECT toDate(at) AS day, from_stage AS stage, toInt64(-1) AS delta
        FROM segment_transitions FINAL WHERE from_stage != 'prospect'
    )
    GROUP BY day, stage
);
