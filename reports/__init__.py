"""Reports: read-side queries over the ClickHouse tables and views (``funnel report``)."""
