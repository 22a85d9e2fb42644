"""The one root of every error this project raises on purpose.

Each package (schemas, streams, sinks, simulator) has its own ``errors.py`` whose
classes derive from :class:`FunnelError`, so a caller can catch everything ours with
one ``except`` and still tell the layers apart. Every message names the problem and
the fix.
"""


class FunnelError(Exception):
    """Base class of all project errors."""


class ConfigError(FunnelError):
    """Settings or a config file are invalid; the message says which and how to fix it."""
