"""Errors raised by the sinks (the ClickHouse writer and migrations, the Prometheus exporter)."""

from funnel.errors import FunnelError


class SinkError(FunnelError):
    """A sink was used wrongly or could not do its job; the message says which and the fix."""


class ClickHouseUnavailableError(SinkError):
    """ClickHouse cannot be reached or opened; the message names the DSN and the fix."""


class MigrationError(SinkError):
    """A migration file is misnumbered or failed to apply."""
