"""Forget requests (issue 17, docs/forget.md): the JSON format of the forget topic, its
checks, and the topic's creation co-partitioned with the inputs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnel.settings import TopicNames, load_settings
from schemas.deadletter import DeadLetter
from schemas.errors import EncodeError
from schemas.forget import (
    FIELDS,
    MAX_FORGET_RECORD_BYTES,
    MAX_FORGET_TIME_MS,
    ForgetRequest,
    decode_forget,
    encode_forget,
)
from schemas.reasons import ForgetReason, Reason, Rejection
from streams import topics as topics_module
from streams.topics import TopicSetupError, ensure_topics

T0 = 1_793_664_000_000  # 2026-11-03T00:00:00Z
DAY = 86_400_000
REQUEST = ForgetRequest("gdpr-2026-0042", "a-7f3c9e", T0, T0 + DAY)
FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def record(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "v": 1,
        "request_id": "r-1",
        "anonymous_id": "a-1",
        "from": None,
        "to": None,
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def rejected(raw: bytes) -> Rejection:
    result = decode_forget(raw)
    assert isinstance(result, Rejection), result
    return result


# -- the request ------------------------------------------------------------------------------


def test_covers_is_from_inclusive_to_exclusive() -> None:
    assert not REQUEST.covers(T0 - 1)
    assert REQUEST.covers(T0)
    assert REQUEST.covers(T0 + DAY - 1)
    assert not REQUEST.covers(T0 + DAY)
    assert not REQUEST.whole_life


def test_open_bounds() -> None:
    whole = ForgetRequest("r", "a")
    assert whole.whole_life
    assert whole.covers(0) and whole.covers(2**62)
    since = ForgetRequest("r", "a", from_ms=T0)
    assert not since.whole_life
    assert not since.covers(T0 - 1) and since.covers(2**62)
    until = ForgetRequest("r", "a", to_ms=T0)
    assert until.covers(0) and not until.covers(T0)


# -- the wire format --------------------------------------------------------------------------


def test_encoding_is_the_documented_json() -> None:
    assert orjson.loads(encode_forget(REQUEST)) == {
        "v": 1,
        "request_id": "gdpr-2026-0042",
        "anonymous_id": "a-7f3c9e",
        "from": T0,
        "to": T0 + DAY,
    }
    assert orjson.loads(encode_forget(ForgetRequest("r", "a")))["from"] is None


@pytest.mark.parametrize(
    "request_",
    [
        REQUEST,
        ForgetRequest("r", "a"),
        ForgetRequest("R.1", "visitor-春季", from_ms=0),
        ForgetRequest("x" * 64, "a" * 256, to_ms=MAX_FORGET_TIME_MS),
        ForgetRequest("a:b_c-d.e", "a\u00e9\U0001f600", T0, T0 + 1),
    ],
)
def test_round_trip(request_: ForgetRequest) -> None:
    raw = encode_forget(request_)
    assert decode_forget(raw) == request_
    assert len(raw) <= MAX_FORGET_RECORD_BYTES


def test_the_longest_valid_request_fits_the_size_limit() -> None:
    raw = encode_forget(ForgetRequest("x" * 64, "\U0001f600" * 256, 0, MAX_FORGET_TIME_MS))
    assert len(raw) * 3 <= MAX_FORGET_RECORD_BYTES


def test_hand_written_records_are_accepted() -> None:
    spaced = b'{ "v": 1, "request_id": "t-9",\n  "anonymous_id": "a-1" }\n'
    assert decode_forget(spaced) == ForgetRequest("t-9", "a-1")
    assert decode_forget(record(to=T0)) == ForgetRequest("r-1", "a-1", None, T0)


def test_encoding_refuses_an_invalid_request() -> None:
    with pytest.raises(EncodeError, match=r"from .* is not before to"):
        encode_forget(ForgetRequest("r", "a", T0, T0))
    with pytest.raises(EncodeError, match="request_id"):
        encode_forget(ForgetRequest("me@example.com", "a"))


@pytest.mark.parametrize(
    ("raw", "field", "fix"),
    [
        (b"not json", "record", "send a JSON object"),
        (b"", "record", "send a JSON object"),
        (b"\xff\xfe", "record", "send a JSON object"),
        (b"[1, 2]", "record", "not an object"),
        (b'"a-1"', "record", "not an object"),
        (b"[" * 2000, "record", "send a JSON object"),
        (record(v=...), "v", '"v": 1'),
        (record(v=2), "v", "upgrade the worker"),
        (record(v="1"), "v", '"v": 1'),
        (record(v=True), "v", '"v": 1'),
        (record(from_ms=T0), "'from_ms'", "the fields are"),
        (record(request_id=...), "request_id", "JSON string"),
        (record(request_id=42), "request_id", "JSON string"),
        (record(request_id=""), "request_id", "requester's reference"),
        (record(request_id="me@example.com"), "request_id", "never personal data"),
        (record(request_id="x" * 65), "request_id", "at most 64"),
        (record(anonymous_id=...), "anonymous_id", "JSON string"),
        (record(anonymous_id=["a"]), "anonymous_id", "JSON string"),
        (record(anonymous_id=""), "anonymous_id", "give the visitor's anonymous_id"),
        (record(anonymous_id="a\nb"), "anonymous_id", "control character"),
        (record(anonymous_id="\u200b "), "anonymous_id", "is blank"),
        (record(anonymous_id="a" * 257), "anonymous_id", "at most 256"),
        (record(**{"from": 1.5e12}), "from", "send an integer"),
        (record(**{"from": "2026-11-03"}), "from", "send an integer"),
        (record(**{"from": True}), "from", "send an integer"),
        (record(**{"from": -1}), "from", "epoch milliseconds UTC"),
        (record(to=MAX_FORGET_TIME_MS + 1), "to", "epoch milliseconds UTC"),
        (b'{"v":1,"request_id":"r","anonymous_id":"a","to":1e400}', "record", "JSON"),
        (b'{"v":1,"request_id":"r","anonymous_id":"a","to":99999999999999999999}', "to", "integer"),
        (record(**{"from": T0, "to": T0}), "from", "give a later to"),
        (record(**{"from": T0 + 1, "to": T0}), "from", "give a later to"),
    ],
)
def test_every_rejection_names_its_field_and_the_fix(raw: bytes, field: str, fix: str) -> None:
    rejection = rejected(raw)
    assert rejection.reason is ForgetReason.INVALID_FORGET_REQUEST
    assert rejection.detail.startswith(field), rejection.detail
    assert fix in rejection.detail, rejection.detail


def test_unknown_fields_list_the_real_ones() -> None:
    detail = rejected(record(extra=1)).detail
    assert all(name in detail for name in FIELDS)


def test_an_oversize_record_is_payload_too_large() -> None:
    raw = record(request_id="r" + " " * MAX_FORGET_RECORD_BYTES)
    rejection = rejected(raw)
    assert rejection.reason is Reason.PAYLOAD_TOO_LARGE
    assert str(MAX_FORGET_RECORD_BYTES) in rejection.detail


def test_a_rejection_becomes_a_dead_letter_with_its_reason() -> None:
    rejection = rejected(record(v=7))
    letter = DeadLetter.from_rejection(
        rejection,
        raw=record(v=7),
        source_topic="shop.forget",
        source_partition=1,
        source_offset=9,
        key=b"a-1",
        received_at_ms=T0,
    )
    assert letter.reason == "invalid_forget_request"


@settings(FUZZ, max_examples=500)
@given(raw=st.binary(max_size=600))
def test_decode_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    result = decode_forget(raw)
    assert isinstance(result, ForgetRequest | Rejection)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@settings(FUZZ, max_examples=500)
@given(
    fields=st.dictionaries(
        st.sampled_from([*FIELDS, "other"]),
        _JSON | st.integers(min_value=-(2**70), max_value=2**70),
    )
)
def test_decode_never_raises_on_json_objects(fields: dict[str, Any]) -> None:
    try:
        raw = orjson.dumps(fields)
    except TypeError:  # integers beyond 64 bits: orjson cannot write them
        return
    result = decode_forget(raw)
    if isinstance(result, ForgetRequest):
        assert decode_forget(encode_forget(result)) == result
    else:
        assert result.detail.split(" ", 1)[0].strip("'") in {*FIELDS, "record", "other"}


# -- the topic --------------------------------------------------------------------------------


class FakeAdmin:
    """The kafka-python admin calls ensure_topics makes, over a dict of partition counts."""

    def __init__(self, existing: dict[str, int]) -> None:
        self.topics = dict(existing)
        self.created: list[tuple[str, int]] = []

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def create_topics(self, new: list[Any]) -> None:
        for topic in new:
            self.topics[topic.name] = topic.num_partitions
            self.created.append((topic.name, topic.num_partitions))

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [
            {"topic": n, "partitions": [{"partition": p} for p in range(self.topics[n])]}
            for n in names
        ]

    def close(self) -> None:
        pass


NAMES = TopicNames()


def run_ensure(monkeypatch: pytest.MonkeyPatch, admin: FakeAdmin, partitions: int = 4) -> Any:
    monkeypatch.setattr(topics_module, "_admin", lambda _bootstrap: admin)
    return ensure_topics(load_settings(partitions=partitions))


def test_the_forget_topic_is_created_with_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin({})
    counts = run_ensure(monkeypatch, admin)
    assert NAMES.forget == "shop.forget"
    assert counts[NAMES.forget] == 4
    assert (NAMES.forget, 4) in admin.created


def test_the_forget_topic_follows_inputs_made_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin({name: 8 for name in NAMES.inputs()})
    counts = run_ensure(monkeypatch, admin, partitions=4)
    assert counts[NAMES.forget] == 8


def test_a_forget_topic_with_another_count_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    admin = FakeAdmin({**{name: 4 for name in NAMES.inputs()}, NAMES.forget: 2})
    with pytest.raises(TopicSetupError) as caught:
        run_ensure(monkeypatch, admin)
    message = str(caught.value)
    assert "shop.forget has 2 partitions but the input topics have 4" in message
    assert "kafka-topics.sh --delete --topic shop.forget" in message
    assert "`funnel topics`" in message


def test_deleting_the_pipeline_topics_includes_the_forget_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deleted: list[str] = []

    class Admin(FakeAdmin):
        def delete_topics(self, names: list[str]) -> None:
            deleted.extend(names)
            for name in names:
                del self.topics[name]

    admin = Admin({NAMES.forget: 4, NAMES.clickstream: 4, "other": 1})
    monkeypatch.setattr(topics_module, "_admin", lambda _bootstrap: admin)
    assert NAMES.forget in topics_module.delete_pipeline_topics(load_settings())
    assert "other" not in deleted
