"""Sinks: the ClickHouse writer and the Prometheus exporter, plus the generators of the
observability config (Prometheus rules, Grafana dashboards) that must match the exporter."""
