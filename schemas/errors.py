"""Errors raised by the schemas package; all derive from :class:`funnel.errors.FunnelError`.

Bad *input records* never raise: :meth:`schemas.codec.EventCodec.decode` returns a
:class:`schemas.reasons.Rejection` for them. These exceptions are for bad schema files,
registries, rule files and for values a producer tries to encode that the schema cannot carry.
"""

from funnel.errors import ConfigError, FunnelError


class SchemaError(FunnelError):
    """A schema file or the schema registry is invalid; the message names the file and the fix."""


class CompatibilityError(SchemaError):
    """A schema version cannot read data of its neighbour version (or the reverse)."""


class EncodeError(SchemaError):
    """A value does not fit its Avro schema (wrong type, out of range); fix the producer."""


class ChannelRulesError(ConfigError):
    """``channels.yaml`` is invalid; the message names the file, the line and the fix."""


class DecodeError(SchemaError):
    """Bytes on one of our output topics are not the record they should be."""
