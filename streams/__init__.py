"""Stream processing: the Faust app, per-visitor state and the aggregates derived from it."""
