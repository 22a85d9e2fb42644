"""Shop funnel: real-time e-commerce analytics on Kafka, Faust, ClickHouse and Prometheus."""

__version__ = "0.1.0"
