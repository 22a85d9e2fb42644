-- Marketing costs (docs/semantics.md section 10, "Marketing cost"), written by the worker's
-- costs agent (streams/costs_agent.py) from the shop.marketing_costs topic: one Avro
-- record per UTC day (schemas/avro/marketing_costs.v1.avsc), which replaces everything
-- known for that day.
--
-- marketing_costs keeps every import: one row per cost row of each day record, plus one
-- marker row per record (channel '', every text column '', cost_minor 0), so a record
-- with no rows still says "this day, as of this import, is empty". A record is identified
-- by (day, imported_at, source_partition, source_offset), all in the sorting key: a
-- record read again (replay, restart before the commit) writes the same rows with the
-- same key and replaces itself, so replaying is harmless.
CREATE TABLE IF NOT EXISTS marketing_costs
(
    day               Date,
    channel           LowCardinality(String),
    utm_source        String,
    utm_medium        String,
    campaign          String,
    currency          LowCardinality(String),
    cost_minor        Int64,
    imported_at       DateTime64(3, 'UTC'),
    origin            String,
    source_partition  UInt16,
    source_offset     UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, imported_at, source_partition, source_offset, channel, utm_source, utm_medium, campaign, currency);

-- The costs in force: for each day, only the rows of its latest record (greatest
-- imported_at; on a tie, the later Kafka position), without the marker row. A re-import
-- with fewer rows drops the missing ones; a record with no rows leaves the day empty;
-- importing the same file again gives the same rows.
CREATE VIEW IF NOT EXISTS v_marketing_costs AS
SELECT day, channel, utm_source, utm_medium, campaign, currency, cost_minor, imported_at, origin
FROM marketing_costs FINAL
WHERE channel != ''
  AND (day, imported_at, source_partition, source_offset) IN (
    SELECT day, latest.1, latest.2, latest.3
    FROM (
        SELECT day, max((imported_at, source_partition, source_offset)) AS latest
        FROM marketing_costs
        GROUP BY day
    )
);
