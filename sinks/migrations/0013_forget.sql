-- Forgetting a person (issue #17, GDPR).
--
-- events_raw keeps every field of the event it stores, so that a person's corrections
-- can be recomputed from the stored events alone: the search term, and each item's name,
-- category, brand and variant ('' when none), index-aligned with item_ids. Rows written
-- before this migration read as '' and [] (no search term, no item details).
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS search_term String DEFAULT '';
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS item_names Array(String) DEFAULT [];
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS item_categories Array(String) DEFAULT [];
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS item_brands Array(String) DEFAULT [];
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS item_variants Array(String) DEFAULT [];

-- The audit trail of forget requests: one row per request and Kafka partition, per phase
-- (started, corrected, done; the newest version wins). It holds no personal data: the
-- request id is the requester's reference, not the person's id, and the counts say how
-- much was forgotten, never what. `thresholds` is the JSON {finality group: ms} of the
-- partition's checkpoint as of `base_version`, the version the corrections start from.
CREATE TABLE IF NOT EXISTS forget_audit
(
    request_id        String,
    partition         UInt16,
    phase             LowCardinality(String),   -- started | corrected | done
    requested_at      DateTime64(3, 'UTC'),
    processed_at      DateTime64(3, 'UTC'),
    range_from        Nullable(DateTime64(3, 'UTC')),
    range_to          Nullable(DateTime64(3, 'UTC')),
    base_version      UInt64,
    thresholds        String,                   -- JSON {finality group: ms} as of base_version
    events_forgotten  UInt32,
    rows_corrected    UInt32,
    rows_deleted      UInt64,
    duration_ms       UInt32,
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (request_id, partition);
