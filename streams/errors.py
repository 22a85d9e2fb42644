"""Errors raised by the stream processing layer."""

from funnel.errors import ConfigError, FunnelError


class StreamError(FunnelError):
    """A processing problem that is not the input's fault."""


class FunnelConfigError(ConfigError):
    """A funnel definition file is invalid; the message names the file, funnel and fix."""


class StateCorruptError(StreamError):
    """A stored state record cannot be read back (wrong format version or truncated)."""


class WorkerStartError(StreamError):
    """The worker could not start within the time it was given (``--duration``)."""


class CompiledCoreError(StreamError):
    """The compiled core (``FUNNEL_CORE=compiled``) is missing, or refused its
    configuration or a batch; the message names the problem and the fix."""
