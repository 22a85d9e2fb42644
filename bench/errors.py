"""Errors of the benchmark harness; all derive from :class:`funnel.errors.FunnelError`."""

from __future__ import annotations

from funnel.errors import FunnelError


class BenchError(FunnelError):
    """The benchmark could not run; the message names the step and the fix."""


class BrokerStartError(BenchError):
    """The harness's own Kafka broker did not start."""


class PeerFailedError(BenchError):
    """A measured system (peer or worker process) failed or timed out."""
