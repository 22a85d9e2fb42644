"""A record that failed decoding or validation, as written to the dead-letter topic."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.reasons import Rejection


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The raw record plus why and where it was rejected (Avro schema ``deadletter.v1``).

    ``reason`` is a :class:`schemas.reasons.Reason` value for decode/validation failures;
    it is a plain string so the worker can add its own reasons without a schema change.
    """

    raw: bytes
    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    received_at_ms: int

    @classmethod
    def from_rejection(
        cls,
        rejection: Rejection,
        *,
        raw: bytes,
        source_topic: str,
        source_partition: int,
        source_offset: int,
        key: bytes | None,
        received_at_ms: int,
    ) -> DeadLetter:
        return cls(
            raw=raw,
            reason=rejection.reason.value,
            detail=rejection.detail,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            key=key,
            received_at_ms=received_at_ms,
        )
