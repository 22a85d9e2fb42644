"""Fuzzing of the decoder, the validators and the processing core (issue 18, items 3 and 4).

Hostile records (``tests/fuzzing.py``: random bytes; truncated, bit-flipped, spliced and
mis-framed Confluent Avro; schema-legal but absurd Avro values; JSON with wrong types,
deep nesting, huge strings, NaN/Infinity, numbers beyond 64 bits, odd unicode and broken
structure) must never make :meth:`EventCodec.decode` raise; every rejection carries a
:class:`Reason` and a detail and its dead letter encodes; every accepted record goes
through the real :class:`PartitionProcessor` (state read back with ``decode_state``,
rows with valid UTF-8 and 64-bit integers) without an exception.

Hypothesis runs derandomized (the same examples on every run, so CI is reproducible);
the large run is ``python -m bench.fuzz --inputs 100000`` (same generators).
"""

from __future__ import annotations

import dataclasses
import random

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import EventCodec
from schemas.model import Event, Item
from schemas.reasons import Reason, Rejection
from streams.outputs.raw_events import TABLE as EVENTS_RAW
from streams.records import Record
from tests.fuzzing import (
    KINDS,
    TOPICS,
    FuzzInput,
    LaterStages,
    UnexpectedError,
    decode_checked,
    default_source,
    fuzz_inputs,
    json_records,
)

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return default_source().codec


# -- decode never raises ----------------------------------------------------------------------


@settings(FUZZ, max_examples=3000)
@given(fuzz_input=fuzz_inputs())
def test_decode_never_raises_and_every_rejection_has_a_reason(
    codec: EventCodec, fuzz_input: FuzzInput
) -> None:
    decode_checked(codec, fuzz_input)  # raises UnexpectedError with the input in hex


@settings(FUZZ, max_examples=400)
@given(
    prefix=st.sampled_from([b"", b"\x00", b"{", b" {", b"\x00\x00\x00\x00\x65", b"\x00\x00\x00"]),
    body=st.binary(max_size=400),
    stream=st.sampled_from(["clickstream", "cart", "orders"]),
)
def test_random_bytes_are_rejected_with_a_reason(
    codec: EventCodec, prefix: bytes, body: bytes, stream: str
) -> None:
    fuzz_input = FuzzInput("random_bytes", stream, prefix + body, 1_793_491_200_000)  # type: ignore[arg-type]
    result = decode_checked(codec, fuzz_input)
    assert isinstance(result, Rejection), result


@settings(FUZZ, max_examples=250)
@given(fuzz_input=json_records())
def test_json_with_arbitrary_values_never_raises(codec: EventCodec, fuzz_input: FuzzInput) -> None:
    decode_checked(codec, fuzz_input)


def test_every_kind_with_a_fixed_seed(codec: EventCodec) -> None:
    """The plain generator the bench uses, 200 inputs of each kind: no exception; every
    kind gets rejections, and the valid kinds (and those that break values, not bytes)
    also accepted records, which the processing core then takes."""
    source = default_source()
    rng = random.Random(18)
    seen: dict[str, set[str]] = {kind: set() for kind in KINDS}
    later = LaterStages()
    accepted: list[FuzzInput] = []
    for fuzz_input in source.stream(rng, 200 * len(KINDS)):
        result = decode_checked(codec, fuzz_input)
        outcome = result.reason.value if isinstance(result, Rejection) else "accepted"
        seen[fuzz_input.kind].add(outcome)
        if outcome == "accepted":
            accepted.append(fuzz_input)
    later.feed(accepted)
    later.finish()
    assert later.rows_checked > len(accepted)
    for kind, outcomes in seen.items():
        assert outcomes - {"accepted"}, f"{kind} never rejected"
    for kind in ("random_bytes", "avro_truncated"):
        assert seen[kind] & {"accepted"} == set(), kind
    for kind in ("avro_valid", "json_valid", "avro_values", "avro_bitflip", "json_unicode"):
        assert "accepted" in seen[kind], kind
    rejected = set().union(*seen.values()) - {"accepted"}
    # The generators reach most reasons; the rest have targeted tests elsewhere.
    assert len(rejected) >= 15, sorted(rejected)


# -- accepted records go through the processing core --------------------------------------------


@settings(FUZZ, max_examples=250)
@given(inputs=st.lists(fuzz_inputs(), min_size=1, max_size=40))
def test_accepted_inputs_are_processed_without_an_exception(
    codec: EventCodec, inputs: list[FuzzInput]
) -> None:
    later = LaterStages(codec)
    for fuzz_input in inputs:
        decode_checked(codec, fuzz_input)
    # Rejected ones too: the processor dead-letters them in the same batch.
    later.feed(inputs)
    later.finish()


@settings(FUZZ, max_examples=80)
@given(inputs=st.lists(fuzz_inputs(["avro_values", "json_unicode", "json_big_int"]), max_size=40))
def test_absurd_but_legal_values_are_processed_or_rejected(
    codec: EventCodec, inputs: list[FuzzInput]
) -> None:
    later = LaterStages(codec)
    later.feed(inputs)
    later.finish()


# -- item 3: records a later stage might not handle ---------------------------------------------

T = 1_793_491_200_000
BASE = Event(
    stream="orders",
    event_type="purchase",
    event_id="e-1",
    event_time_ms=T,
    sent_time_ms=T,
    anonymous_id="a-1",
    session_id="s-1",
    transaction_id="tx-1",
    currency="CNY",
    value_minor=9900,
    items=(Item("SKU-1", price_minor=9900),),
    country="CN",
)


def _item(**changes: object) -> Event:
    return dataclasses.replace(BASE, items=(dataclasses.replace(BASE.items[0], **changes),))  # type: ignore[arg-type]


POISON = [
    ("value overflowing an Int64 sum", dataclasses.replace(BASE, value_minor=6 * 10**18),
     Reason.AMOUNT_OUT_OF_RANGE),
    ("item discount 2**62", _item(price_minor=1, quantity=8, discount_minor=2**62),
     Reason.AMOUNT_OUT_OF_RANGE),
    ("line total beyond 10**13", _item(price_minor=10**12, quantity=11),
     Reason.AMOUNT_OUT_OF_RANGE),
    ("blank event_id", dataclasses.replace(BASE, event_id="  \u200b "), Reason.INVALID_ID),
    ("NUL in anonymous_id", dataclasses.replace(BASE, anonymous_id="a\x00"), Reason.INVALID_ID),
    ("RTL override only", dataclasses.replace(BASE, session_id="\u202e"), Reason.INVALID_ID),
    ("sent_time -2**63", dataclasses.replace(BASE, sent_time_ms=-(2**63)),
     Reason.TIMESTAMP_OUT_OF_RANGE),
    ("sent_time in microseconds", dataclasses.replace(BASE, sent_time_ms=T * 1000),
     Reason.TIMESTAMP_OUT_OF_RANGE),
    ("discount above price", _item(price_minor=100, discount_minor=101),
     Reason.DISCOUNT_EXCEEDS_PRICE),
    ("country not ISO 3166", dataclasses.replace(BASE, country="Narnia"), None),
    ("country with odd unicode", dataclasses.replace(BASE, country="\u202ede\u0301\x00"), None),
    ("country of 10k characters", dataclasses.replace(BASE, country="Z" * 10_000), None),
    ("odd unicode in page_url", dataclasses.replace(BASE, page_url="/\ufeff\U0010ffff\x00"), None),
]  # fmt: skip


@pytest.mark.parametrize(("event", "reason"), [p[1:] for p in POISON], ids=[p[0] for p in POISON])
@pytest.mark.parametrize("as_json", [False, True], ids=["avro", "json"])
def test_each_poison_record_is_rejected_with_its_reason_or_processed(
    codec: EventCodec, event: Event, reason: Reason | None, as_json: bool
) -> None:
    raw = codec.encode_json(event) if as_json else codec.encode_avro(event)
    fuzz_input = FuzzInput("poison", event.stream, raw, T + 1000)
    result = decode_checked(codec, fuzz_input)
    later = LaterStages(codec)
    if reason is not None:
        assert isinstance(result, Rejection)
        assert result.reason is reason, result
        later.feed([fuzz_input])
    else:
        assert result == event
        processed = later.processor.process(event.stream, [Record(0, None, raw, T + 1000)])
        (row,) = processed.rows[EVENTS_RAW]
        assert event.country in row
        assert not processed.dead_letters
    later.finish()


def test_non_iso_country_is_stored_as_sent(codec: EventCodec) -> None:
    """A country is a free dimension (LowCardinality(String)): not validated, stored as sent."""
    event = dataclasses.replace(BASE, country="Narnia \u202e")
    later = LaterStages(codec)
    raw = codec.encode_avro(event)
    result = later.processor.process("orders", [Record(0, None, raw, T + 1000)])
    (row,) = result.rows[EVENTS_RAW]
    assert "Narnia \u202e" in row


# -- found by fuzzing ------------------------------------------------------------------------------


# schemas/jsonshape.py formatted the bad value with !r: a JSON value nested ~1000 deep
# (orjson takes up to 1024) raised RecursionError in decode, which would stop a partition.
@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deeply_nested_value_in_an_integer_field_is_rejected(
    codec: EventCodec, opener: bytes
) -> None:
    closer = b"]" if opener == b"[" else b"}"
    nested = opener * 1000 + b"1" + closer * 1000
    obj = orjson.loads(codec.encode_json(BASE))
    raw = orjson.dumps(obj)[:-1] + b',"value":' + nested + b"}"
    result = codec.decode(raw, "orders", T + 1000)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.WRONG_TYPE


def test_unexpected_error_names_the_input_in_hex() -> None:
    fuzz_input = FuzzInput("random_bytes", "cart", b"\x00\xff", 1)
    assert "00ff" in str(UnexpectedError("decode", fuzz_input, "boom"))
    assert set(TOPICS) == {"clickstream", "cart", "orders"}
