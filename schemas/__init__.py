"""The event contract: Avro schemas, codec, validation, dead letters and channel grouping.

Data path: raw Kafka bytes -> :class:`schemas.codec.EventCodec.decode` ->
:class:`schemas.model.Event` (valid) or :class:`schemas.reasons.Rejection` (dead letter).
"""
