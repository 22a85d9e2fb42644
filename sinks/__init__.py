"""Sinks: the ClickHouse writer with its migrations, and the Prometheus exporter."""
