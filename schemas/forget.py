"""Forget requests: forget one visitor's events, for its whole life or a time range (issue 17).

A request travels on the ``shop.forget`` topic (``TopicNames.forget``) as a JSON object,
keyed by the visitor's ``anonymous_id`` so that Kafka's default partitioner puts it on the
partition of that visitor's events (docs/forget.md). ``funnel forget`` writes them; so may
the shop's own automation::

    {"v": 1, "request_id": "gdpr-2026-0042", "anonymous_id": "a-7f3c...",
     "from": 1793664000000, "to": null}

- ``v``: the format version, 1.
- ``request_id``: the requester's reference, 1-64 characters of ``A-Z a-z 0-9 . _ : -``.
  It is kept in the audit table, so it must carry no personal data (no e-mail address).
- ``anonymous_id``: the visitor to forget, a valid event id (``schemas/validation.py``
  :func:`~schemas.validation.id_problem`: not blank, no control character, at most 256
  characters).
- ``from``, ``to``: event time in epoch milliseconds UTC, ``[from, to)``; ``null`` (or
  absent) is open: both null forgets the whole life.

:func:`decode_forget` never raises on bad input: it returns a :class:`ForgetRequest` or a
:class:`~schemas.reasons.Rejection` for the dead-letter topic, with the reason
``payload_too_large`` (above :data:`MAX_FORGET_RECORD_BYTES`) or ``invalid_forget_request``
and a detail naming the field and the fix. JSON, not Avro: it is an operations topic that
people and scripts write by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from schemas.errors import EncodeError
from schemas.reasons import ForgetReason, Reason, Rejection
from schemas.validation import id_problem

FORGET_FORMAT_VERSION: Final = 1
# A valid request is at most ~1.2 KB (a 256-character id of 4-byte characters); the limit
# leaves room for whitespace a hand-written record may have.
MAX_FORGET_RECORD_BYTES: Final = 4096
MAX_REQUEST_ID_CHARS: Final = 64
REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Bounds of from/to: epoch milliseconds of 1970-01-01 .. 2100-01-01 (UTC).
MIN_FORGET_TIME_MS: Final = 0
MAX_FORGET_TIME_MS: Final = 4_102_444_800_000
FIELDS: Final = ("v", "request_id", "anonymous_id", "from", "to")
_DETAIL_LIMIT: Final = 400


@dataclass(frozen=True, slots=True)
class ForgetRequest:
    """Forget ``anonymous_id``'s events with event time in ``[from_ms, to_ms)``.

    ``None`` bounds are open; with both ``None`` the visitor's whole life is forgotten.
    """

    request_id: str  # the requester's reference; no personal data
    anonymous_id: str  # the visitor to forget
    from_ms: int | None = None  # event time, inclusive; None: from the beginning
    to_ms: int | None = None  # event time, exclusive; None: to the end

    def covers(self, event_time_ms: int) -> bool:
        """Whether an event at ``event_time_ms`` is to be forgotten."""
        if self.from_ms is not None and event_time_ms < self.from_ms:
            return False
        return self.to_ms is None or event_time_ms < self.to_ms

    @property
    def whole_life(self) -> bool:
        """Both bounds open: everything of the visitor, its state included."""
        return self.from_ms is None and self.to_ms is None


# -- the checks, one field at a time (shared with `funnel forget`) --------------------------


def shown(value: str) -> str:
    """A value for an error message: quoted, escaped, at most 40 characters."""
    return ascii(value if len(value) <= 40 else value[:40] + "...")


def request_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid request id (a phrase naming the fix), or None."""
    if REQUEST_ID_PATTERN.fullmatch(value):
        return None
    if not value:
        return "is empty; give the requester's reference (e.g. a ticket number)"
    if len(value) > MAX_REQUEST_ID_CHARS:
        return (
            f"is {len(value)} characters long; at most {MAX_REQUEST_ID_CHARS} characters of "
            "A-Z a-z 0-9 . _ : -"
        )
    bad = next(c for c in value if not REQUEST_ID_PATTERN.fullmatch(c))
    return (
        f"{shown(value)} contains {bad!a}; use only A-Z a-z 0-9 . _ : - (a ticket "
        "number, never personal data such as an e-mail address)"
    )


def anonymous_id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid visitor id, or None (the events' rule)."""
    if not value:
        return "is empty; give the visitor's anonymous_id"
    problem = id_problem(value)
    return None if problem is None else f"{shown(value)} {problem}"


def time_problem(value: int) -> str | None:
    """Why ``value`` is not a valid bound (epoch milliseconds UTC), or None."""
    if MIN_FORGET_TIME_MS <= value <= MAX_FORGET_TIME_MS:
        return None
    return (
        f"{value} is outside 1970-01-01..2100-01-01; it is epoch milliseconds UTC "
        "(e.g. 1793664000000 for 2026-11-03)"
    )


def forget_problem(request: ForgetRequest) -> str | None:
    """The first problem of ``request`` as ``<field> <what is wrong; the fix>``, or None."""
    problem = request_id_problem(request.request_id)
    if problem is not None:
        return f"request_id {problem}"
    problem = anonymous_id_problem(request.anonymous_id)
    if problem is not None:
        return f"anonymous_id {problem}"
    for name, value in (("from", request.from_ms), ("to", request.to_ms)):
        if value is not None:
            problem = time_problem(value)
            if problem is not None:
                return f"{name} {problem}"
    lo, hi = request.from_ms, request.to_ms
    if lo is not None and hi is not None and lo >= hi:
        return (
            f"from {lo} ({utc_text(lo)}) is not before to {hi} ({utc_text(hi)}); the range "
            "is [from, to): give a later to, or null for no end"
        )
    return None


# -- the wire format --------------------------------------------------------------------------


def encode_forget(request: ForgetRequest) -> bytes:
    """The JSON record of ``request``; raises :class:`EncodeError` if it is not valid."""
    problem = forget_problem(request)
    if problem is not None:
        raise EncodeError(f"forget request not sent: {problem}")
    return orjson.dumps(
        {
            "v": FORGET_FORMAT_VERSION,
            "request_id": request.request_id,
            "anonymous_id": request.anonymous_id,
            "from": request.from_ms,
            "to": request.to_ms,
        }
    )


def decode_forget(raw: bytes) -> ForgetRequest | Rejection:
    """The checked request, or why ``raw`` belongs on the dead-letter topic. Never raises."""
    if len(raw) > MAX_FORGET_RECORD_BYTES:
        return Rejection(
            Reason.PAYLOAD_TOO_LARGE,
            f"forget request is {len(raw)} bytes; the limit is {MAX_FORGET_RECORD_BYTES}: "
            "send only the fields v, request_id, anonymous_id, from, to",
        )
    try:
        obj = orjson.loads(raw)
    except ValueError as exc:  # orjson.JSONDecodeError, invalid UTF-8, depth limit
        return _invalid(
            f"record is not JSON ({exc}); send a JSON object such as "
            '{"v": 1, "request_id": "R", "anonymous_id": "ID", "from": null, "to": null}'
        )
    if type(obj) is not dict:
        return _invalid(
            f"record is a JSON {_json_type(obj)}, not an object; send "
            '{"v": 1, "request_id": ..., "anonymous_id": ..., "from": ..., "to": ...}'
        )
    return _request(obj)


def _request(obj: Mapping[str, Any]) -> ForgetRequest | Rejection:
    unknown = sorted(k for k in obj if k not in FIELDS)
    if unknown:
        return _invalid(
            f"{shown(unknown[0])} is not a field of a forget request; the fields are "
            f"{', '.join(FIELDS)} (from/to are epoch milliseconds)"
        )
    version = obj.get("v")
    if version is None:
        return _invalid(f'v is missing; send "v": {FORGET_FORMAT_VERSION}')
    if type(version) is not int or version != FORGET_FORMAT_VERSION:
        return _invalid(
            f"v {_value(version)} is not a supported version; send "
            f'"v": {FORGET_FORMAT_VERSION} (or upgrade the worker)'
        )
    texts: dict[str, str] = {}
    for name in ("request_id", "anonymous_id"):
        value = obj.get(name)
        if value is None:
            return _invalid(f"{name} is missing; send it as a JSON string")
        if type(value) is not str:
            return _invalid(f"{name} is a JSON {_json_type(value)}; send it as a JSON string")
        texts[name] = value
    bounds: dict[str, int | None] = {}
    for name in ("from", "to"):
        value = obj.get(name)
        if value is not None and type(value) is not int:
            return _invalid(
                f"{name} {_value(value)} is not whole epoch milliseconds (a JSON "
                f"{_json_type(value)}); send an integer such as 1793664000000, or null"
            )
        bounds[name] = value
    request = ForgetRequest(
        request_id=texts["request_id"],
        anonymous_id=texts["anonymous_id"],
        from_ms=bounds["from"],
        to_ms=bounds["to"],
    )
    problem = forget_problem(request)
    return request if problem is None else _invalid(problem)


def _invalid(detail: str) -> Rejection:
    return Rejection(ForgetReason.INVALID_FORGET_REQUEST, _clip(detail))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _value(value: object) -> str:
    text = orjson.dumps(value).decode() if isinstance(value, bool | int | float | str) else ""
    return shown(text) if len(text) > 40 else text or _json_type(value)


def utc_text(t_ms: int) -> str:
    """``t_ms`` as an ISO UTC time (for messages)."""
    try:
        return datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def _clip(text: str) -> str:
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."
