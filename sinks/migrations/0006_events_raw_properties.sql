-- Custom event properties (clickstream schema v3, docs/semantics.md section 1a): the
-- event's properties map, empty for events without any and for rows written before.
-- A custom event's name needs no column: event_type holds custom:<event_name>.
-- late_events only points at events (id, type, why late); their properties are here.
ALTER TABLE events_raw ADD COLUMN IF NOT EXISTS properties Map(String, String) DEFAULT map();
