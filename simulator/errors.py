"""Errors raised by the simulator; all derive from :class:`funnel.errors.FunnelError`."""

from funnel.errors import ConfigError, FunnelError


class SimulatorError(FunnelError):
    """Base class of the simulator's errors."""


class SimConfigError(ConfigError, SimulatorError):
    """A simulation option is out of range; the message names the option and the fix."""


class BrokerUnavailableError(SimulatorError):
    """Kafka could not be reached or refused the records; the message says how to fix it."""


class TopicLayoutError(SimulatorError):
    """An input topic is missing or has a different partition count than the simulation."""


class TruthFileError(SimulatorError):
    """A ground-truth file cannot be written or read back."""
