"""Hostile inputs for the decoder and validators (issue 18, item 4), and the checks on them.

:class:`FuzzSource` turns a ``random.Random`` into one :class:`FuzzInput` of a given kind
(:data:`KINDS`). It starts from real simulator events encoded as the producers do
(Confluent Avro of any registered version, or JSON) and breaks them: truncated,
bit-flipped, spliced, with the framing broken, with schema-legal but absurd values, and
JSON with wrong types, deep nesting, huge strings, NaN/Infinity, big numbers and odd
unicode. The same generator serves the hypothesis tests
(``tests/unit/test_fuzz_inputs.py``: :func:`fuzz_inputs` draws the ``Random`` from
hypothesis, so runs are reproducible and shrink), the broker test
(``tests/integration/test_fuzz_accepted_e2e.py``) and the large run (``python -m
bench.fuzz``), so all exercise the same mutation kinds.

:class:`LaterStages` pushes the accepted records through the real processing core
(:class:`~streams.processor.PartitionProcessor` with the real codec and channel rules)
and checks what a worker would then write: state that ``decode_state`` reads back,
triggers and dead letters that encode to Avro, and rows whose strings are valid UTF-8
and whose integers fit 64 bits.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from collections.abc import Callable, Iterator, Sequence
from io import BytesIO
from typing import Any, Final

import fastavro
import orjson
from fastavro.validation import validate
from hypothesis import strategies as st

from schemas.channels import ChannelRules
from schemas.codec import INPUT_STREAMS, EventCodec, event_to_record
from schemas.deadletter import DeadLetter
from schemas.errors import EncodeError
from schemas.model import Event, StreamKind
from schemas.reasons import Reason, Rejection
from schemas.registry import RegisteredSchema, strip_logical_types
from schemas.validation import ValidationBounds
from simulator.config import SimConfig
from simulator.generate import generate
from streams.batch import BatchResult
from streams.checkpoint import META_PREFIX
from streams.funnels import load_funnels
from streams.processor import PartitionProcessor
from streams.records import Record
from streams.state import decode_state, encode_state
from streams.visitor import Rules

KINDS: Final = (
    "random_bytes",
    "avro_valid",
    "avro_truncated",
    "avro_bitflip",
    "avro_splice",
    "avro_framing",
    "avro_values",
    "json_valid",
    "json_wrong_type",
    "json_deep_nesting",
    "json_huge_string",
    "json_nonfinite",
    "json_big_int",
    "json_unicode",
    "json_structure",
)
MIN_MS: Final = 60_000
TOPICS: Final = {"clickstream": "fuzz.clickstream", "cart": "fuzz.cart", "orders": "fuzz.orders"}

# Strings a tracker bug, a hostile client or an encoding accident produces.
ODD_STRINGS: Final = (
    "",
    " ",
    "   ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\u200b",
    "\ufeff\u200d",
    "\u2060",
    "\u3164",
    "\u202eevil\u202c",  # RTL override
    "\u200f\u200e",  # RTL / LTR marks
    "e\u0301\u0301\u0301\u0301",  # combining acute accents
    "Z\u0351\u0354\u0317\u0353\u0300\u0301",  # zalgo
    "\U0001f600\U0001f4a9",
    "用户-名",
    "ﾟ･✿ヾ╲(｡◕‿◕｡)╱✿･ﾟ",
    "\x7f\x85\x9f",
    "\ufffd",
    "\U0010ffff",
    "x" * 257,
    "Narnia",
    "ZZ",
    "de",
    "custom",
    "custom:x",
    "purchase",
    "web",
    "CNY",
    "usd",
    "1e5",
    "null",
    "'; DROP TABLE events_raw; --",
    "%s%s%n",
    "..\\..\\etc\\passwd",
)
# JSON string bodies (between the quotes) that orjson may or may not take.
ODD_JSON_ESCAPES: Final = (
    b"\\ud800",  # lone high surrogate
    b"\\udc00",  # lone low surrogate
    b"a\\ud800b",
    b"\\ud83d\\ude00",  # a valid pair
    b"\\u0000",
    b"\\u202e",
    b"\\u200f",
    b"e\\u0301\\u0301",
    b"\\ufeff",
    b"\\uffff",
    b"\xff\xfe",  # invalid UTF-8
    b"\xc0\x80",  # overlong NUL
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    b"\xe2\x80",  # cut multi-byte sequence
    b"\t",  # raw control character
    b"\\x41",  # not a JSON escape
    b"\\u12",
)
ODD_LONGS: Final = (
    -(2**63),
    2**63 - 1,
    -1,
    0,
    1,
    2**31,
    2**32,
    2**53 + 1,
    2**62,
    10**13,
    10**13 + 1,
    10**15,
    6 * 10**18,
    1_700_000_000,  # seconds where milliseconds belong
    1_700_000_000_000_000,  # microseconds
)
ODD_INTS: Final = (-(2**31), 2**31 - 1, -1, 0, 1, 1_000_000, 1_000_001, 65536)
# Number literals JSON does not allow, or that do not fit a double or a long.
NONFINITE_LITERALS: Final = (
    b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e400", b"-1e999", b"1e-400",
    b"1.7976931348623157e308", b"0.0", b"-0", b"1E2", b"0x10", b"+1", b"01", b".5", b"1.",
)  # fmt: skip
WRONG_TYPES: Final[tuple[Any, ...]] = (
    1.5,
    12.99,
    -0.0,
    1e300,
    "12",
    "",
    True,
    False,
    None,
    [],
    [1, 2],
    {},
    {"a": 1},
    0,
    2**63,
    2**64 - 1,
)


@dataclasses.dataclass(frozen=True, slots=True)
class FuzzInput:
    """One record for ``stream``'s topic, decoded at worker clock ``now_ms``."""

    kind: str
    stream: StreamKind
    raw: bytes
    now_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Seed:
    """A real event and the clock it is valid at."""

    event: Event
    now_ms: int


class FuzzSource:
    """``make(kind, rng)``: one hostile input of ``kind`` (see the module doc)."""

    def __init__(self, codec: EventCodec, seeds: Sequence[Seed]) -> None:
        self.codec = codec
        self.seeds = tuple(seeds)
        self._by_stream = {s: [x for x in self.seeds if x.event.stream == s] for s in INPUT_STREAMS}
        self._parsed: dict[int, Any] = {}
        self._makers: dict[str, Callable[[random.Random], FuzzInput]] = {
            kind: getattr(self, f"_{kind}") for kind in KINDS
        }

    @classmethod
    def from_simulator(cls, codec: EventCodec | None = None, seed: int = 18) -> FuzzSource:
        """Seeds from a short simulator run (every event type of the default traffic)."""
        config = SimConfig(seed=seed, users=60, days=0.05, partitions=1)
        seeds = []
        for record in generate(config):
            if record.event is not None and not record.is_duplicate:
                event = record.event
                seeds.append(Seed(event, max(event.event_time_ms, event.sent_time_ms) + 1000))
        return cls(codec or EventCodec(), seeds)

    def make(self, kind: str, rng: random.Random) -> FuzzInput:
        return self._makers[kind](rng)

    def stream(self, rng: random.Random, count: int) -> Iterator[FuzzInput]:
        """``count`` inputs, kinds in turn (each kind gets the same share)."""
        for n in range(count):
            yield self.make(KINDS[n % len(KINDS)], rng)

    # -- helpers ------------------------------------------------------------------------

    def _seed(self, rng: random.Random, stream: StreamKind | None = None) -> Seed:
        pool = self._by_stream[stream] if stream else self.seeds
        return rng.choice(pool)

    def _schema(self, rng: random.Random, stream: str) -> RegisteredSchema:
        return rng.choice(self.codec.registry.versions(stream))

    def _avro(self, rng: random.Random, seed: Seed) -> bytes:
        """The seed event as Avro of a random registered version (latest if it needs it)."""
        schema = self._schema(rng, seed.event.stream)
        try:
            return self.codec.encode_avro(seed.event, version=schema.version)
        except EncodeError:
            return self.codec.encode_avro(seed.event)

    def _json_obj(self, seed: Seed) -> dict[str, Any]:
        obj: dict[str, Any] = orjson.loads(self.codec.encode_json(seed.event))
        return obj

    def _out(self, kind: str, seed: Seed, raw: bytes, rng: random.Random) -> FuzzInput:
        # Mostly the seed's own clock; sometimes any clock (then time checks decide).
        now = seed.now_ms + rng.choice((0, 0, 0, rng.randint(-10 * MIN_MS, 10 * MIN_MS)))
        return FuzzInput(kind, seed.event.stream, raw, now)

    def _parsed_schema(self, schema: RegisteredSchema) -> Any:
        parsed = self._parsed.get(schema.schema_id)
        if parsed is None:
            parsed = fastavro.parse_schema(strip_logical_types(schema.definition), {})
            self._parsed[schema.schema_id] = parsed
        return parsed

    @staticmethod
    def _json_paths(obj: dict[str, Any]) -> list[tuple[Any, Any]]:
        """(container, key) of every value in the record: top level, items, maps."""
        paths: list[tuple[Any, Any]] = [(obj, k) for k in obj]
        items = obj.get("items")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                paths.extend((item, k) for k in item)
        for name in ("experiments", "properties"):
            inner = obj.get(name)
            if isinstance(inner, dict):
                paths.extend((inner, k) for k in inner)
        return paths

    @staticmethod
    def _field_names(obj: dict[str, Any]) -> list[str]:
        names = list(obj)
        # Fields left out because they were null are worth setting too.
        names.extend(("user_id", "currency", "value", "discount", "country", "items", "sent_time"))
        return names

    def _with_placeholder(self, rng: random.Random, seed: Seed, text: bytes) -> bytes:
        """The seed's JSON with one value (top level, item or map) replaced by ``text`` (raw
        JSON, not checked); a string may become a key instead."""
        obj = self._json_obj(seed)
        marker = "\x01FUZZ\x01"
        if text[:1] == b'"' and rng.random() < 0.2:
            # A string as a key of a map or of the record itself.
            target = rng.choice(("experiments", "properties", None))
            container = obj if target is None else obj.setdefault(target, {})
            container[marker] = "v"
            raw = orjson.dumps(obj)
            return raw.replace(b'"\\u0001FUZZ\\u0001"', text, 1)
        if rng.random() < 0.3:
            obj["items"] = obj.get("items") or [{"item_id": "SKU-1", "price": 100, "quantity": 1}]
            obj.setdefault("currency", "CNY")
        paths = self._json_paths(obj)
        container, key = rng.choice(paths)
        if rng.random() < 0.3:
            container, key = obj, rng.choice(self._field_names(obj))
        container[key] = marker
        return orjson.dumps(obj).replace(b'"\\u0001FUZZ\\u0001"', text, 1)

    # -- one maker per kind -------------------------------------------------------------------

    def _random_bytes(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        size = rng.choice((0, 1, 4, 5, 6, rng.randint(0, 64), rng.randint(0, 1024)))
        body = rng.randbytes(size)
        prefix = rng.choice(
            (
                b"",
                b"",
                b"\x00",
                b"{",
                b" \n{",
                self._schema(rng, seed.event.stream).header,  # a valid frame, random body
                self._schema(rng, seed.event.stream).header,
            )
        )
        if rng.random() < 0.02:
            body = rng.randbytes(self.codec.bounds.max_payload_bytes + rng.randint(-8, 8))
        return self._out("random_bytes", seed, prefix + body, rng)

    def _avro_valid(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        return self._out("avro_valid", seed, self._avro(rng, seed), rng)

    def _avro_truncated(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        raw = self._avro(rng, seed)
        cut = rng.choice((0, 1, 4, 5, 6, len(raw) - 1, rng.randrange(len(raw))))
        return self._out("avro_truncated", seed, raw[:cut], rng)

    def _avro_bitflip(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        raw = bytearray(self._avro(rng, seed))
        start = 5 if rng.random() < 0.9 else 0  # mostly the body: the header has its own kind
        for _ in range(rng.choice((1, 1, 2, 3, 8, 32))):
            position = rng.randrange(start, len(raw))
            if rng.random() < 0.7:
                raw[position] ^= 1 << rng.randrange(8)
            else:
                raw[position] = rng.randrange(256)
        return self._out("avro_bitflip", seed, bytes(raw), rng)

    def _avro_splice(self, rng: random.Random) -> FuzzInput:
        first, second = self._seed(rng), self._seed(rng)
        a, b = self._avro(rng, first), self._avro(rng, second)
        way = rng.randrange(5)
        if way == 0:  # two records in one Kafka value
            raw = a + b
        elif way == 1:  # a cut record followed by the rest of another
            raw = a[: rng.randrange(5, len(a))] + b[rng.randrange(5, len(b)) :]
        elif way == 2:  # one header, two bodies
            raw = a + b[5:]
        elif way == 3:  # the other record's header on this body
            raw = b[:5] + a[5:]
        else:  # a middle slice of one record pasted into another
            i = rng.randrange(5, len(a))
            j = rng.randrange(5, len(b))
            raw = a[:i] + b[j : j + rng.randint(1, 40)] + a[i:]
        return self._out("avro_splice", first, raw, rng)

    def _avro_framing(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        raw = self._avro(rng, seed)
        body = raw[5:]
        way = rng.randrange(6)
        if way == 0:  # another magic byte
            raw = bytes([rng.randrange(1, 256)]) + raw[1:]
        elif way == 1:  # a random schema id
            raw = b"\x00" + rng.randrange(2**32).to_bytes(4, "big") + body
        elif way == 2:  # an id of a schema that is not this topic's
            others = [
                s.schema_id
                for name in ("clickstream", "cart", "orders", "deadletter", "trigger")
                if name != seed.event.stream
                for s in self.codec.registry.versions(name)
            ]
            raw = b"\x00" + rng.choice(others).to_bytes(4, "big") + body
        elif way == 3:  # this topic's other versions (the body may not match)
            raw = self._schema(rng, seed.event.stream).header + body
        elif way == 4:  # no frame at all
            raw = body
        else:  # a frame twice, or an extra zero byte
            raw = rng.choice((raw[:5] + raw, b"\x00" + raw))
        return self._out("avro_framing", seed, raw, rng)

    def _avro_values(self, rng: random.Random) -> FuzzInput:
        """Well-formed Avro with values the schema allows and the pipeline may not."""
        seed = self._seed(rng)
        schema = self.codec.registry.latest(seed.event.stream)
        parsed = self._parsed_schema(schema)
        record = event_to_record(seed.event)
        record = {k: v for k, v in record.items() if k in schema.field_names}
        if rng.random() < 0.4:
            record["items"] = [dict(i) for i in record["items"]] or [
                {
                    "item_id": "SKU-1",
                    "item_name": None,
                    "item_category": None,
                    "item_brand": None,
                    "item_variant": None,
                    "price": 9900,
                    "quantity": 1,
                    "coupon": None,
                    "discount": 0,
                }
            ]
            record["currency"] = record["currency"] or "CNY"
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            before = dict(record)
            self._mutate_value(rng, record)
            if not validate(record, parsed, raise_errors=False):
                record = before
        out = BytesIO()
        out.write(schema.header)
        fastavro.schemaless_writer(out, parsed, record)
        return self._out("avro_values", seed, out.getvalue(), rng)

    def _mutate_value(self, rng: random.Random, record: dict[str, Any]) -> None:
        name = rng.choice(list(record))
        value = record[name]
        if name == "items" and record["items"]:
            items = [dict(i) for i in record["items"]]
            item = rng.choice(items)
            field = rng.choice(("item_id", "price", "quantity", "discount", "item_name", "coupon"))
            if field in ("price", "discount"):
                item[field] = rng.choice(ODD_LONGS)
            elif field == "quantity":
                item[field] = rng.choice(ODD_INTS)
            else:
                item[field] = rng.choice(ODD_STRINGS)
            if rng.random() < 0.1:
                items = items * rng.choice((2, 50, 201))
            record["items"] = items
        elif name in ("experiments", "properties"):
            record[name] = {rng.choice(ODD_STRINGS): rng.choice(ODD_STRINGS)}
        elif name in ("event_time", "sent_time", "value", "tax", "shipping", "discount"):
            record[name] = rng.choice(
                (*ODD_LONGS, record["event_time"] + rng.choice((1, -1)) * rng.randrange(2**40))
            )
        elif isinstance(value, int):
            record[name] = rng.choice(ODD_LONGS)
        else:
            record[name] = rng.choice(ODD_STRINGS)

    def _json_valid(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        return self._out("json_valid", seed, self.codec.encode_json(seed.event), rng)

    def _json_wrong_type(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        obj = self._json_obj(seed)
        for _ in range(rng.choice((1, 1, 2))):
            if rng.random() < 0.25:
                obj[rng.choice(self._field_names(obj))] = rng.choice(WRONG_TYPES)
            else:
                container, key = rng.choice(self._json_paths(obj))
                container[key] = rng.choice(WRONG_TYPES)
        return self._out("json_wrong_type", seed, orjson.dumps(obj), rng)

    def _json_deep_nesting(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        depth = rng.choice((2, 10, 100, 500, 1023, 1024, 1025, 5000, 10_000, 100_000))
        if rng.random() < 0.5:
            nested = b"[" * depth + b"1" + b"]" * depth
        else:
            nested = b'{"a":' * depth + b'"x"' + b"}" * depth
        if rng.random() < 0.1:
            nested = nested[: rng.randrange(len(nested))]  # unbalanced
        if rng.random() < 0.2:  # the whole document
            return self._out("json_deep_nesting", seed, nested, rng)
        return self._out("json_deep_nesting", seed, self._with_placeholder(rng, seed, nested), rng)

    def _json_huge_string(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        length = rng.choice((300, 1000, 10_000, 30_000, 60_000, 65_000, 70_000))
        alphabet = rng.choice(("x", "用", "\U0001f600", "e\u0301", "\u200b", "ab"))
        text = (alphabet * (length // len(alphabet) + 1))[:length]
        quoted = orjson.dumps(text)
        return self._out("json_huge_string", seed, self._with_placeholder(rng, seed, quoted), rng)

    def _json_nonfinite(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        literal = rng.choice(NONFINITE_LITERALS)
        return self._out("json_nonfinite", seed, self._with_placeholder(rng, seed, literal), rng)

    def _json_big_int(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        number = rng.choice(
            (
                2**63 - 1,
                2**63,
                2**64 - 1,
                2**64,
                -(2**63),
                -(2**63) - 1,
                2**31,
                -(2**31) - 1,
                10**13 + 1,
                6 * 10**18,
                rng.randrange(2**64, 2**200),
                -rng.randrange(2**64, 2**200),
                10**4000,
            )
        )
        text = str(number).encode()
        return self._out("json_big_int", seed, self._with_placeholder(rng, seed, text), rng)

    def _json_unicode(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        if rng.random() < 0.5:
            body = rng.choice(ODD_JSON_ESCAPES)
            if rng.random() < 0.5:
                body = b"id-" + body + b"-1"
        else:
            body = orjson.dumps(rng.choice(ODD_STRINGS))[1:-1]
        text = b'"' + body + b'"'
        return self._out("json_unicode", seed, self._with_placeholder(rng, seed, text), rng)

    def _json_structure(self, rng: random.Random) -> FuzzInput:
        seed = self._seed(rng)
        doc = self.codec.encode_json(seed.event)
        way = rng.randrange(10)
        if way == 0:
            raw = rng.choice((b"[]", b"[" + doc + b"]", b"null", b"true", b"1", b'"{}"'))
        elif way == 1:
            raw = rng.choice((b"{}", b"{ }", b"{", b"}", b'{"":""}'))
        elif way == 2:  # whitespace, BOM, UTF-16
            raw = rng.choice(
                (b" \t\r\n" + doc, b"\xef\xbb\xbf" + doc, doc.decode().encode("utf-16"))
            )
        elif way == 3:  # trailing garbage, two documents
            raw = rng.choice((doc + b"x", doc + doc, doc + b"\x00", doc + b" "))
        elif way == 4:  # truncated
            raw = doc[: rng.randrange(1, len(doc))]
        elif way == 5:  # a duplicate key with another value
            raw = doc[:-1] + b',"event_id":' + orjson.dumps(rng.choice(ODD_STRINGS)) + b"}"
        elif way == 6:  # single quotes, comments, trailing comma
            raw = rng.choice((doc.replace(b'"', b"'"), b"/*x*/" + doc, doc[:-1] + b",}"))
        elif way == 7:  # a required field removed
            obj = self._json_obj(seed)
            obj.pop(rng.choice(list(obj)), None)
            raw = orjson.dumps(obj)
        elif way == 8:  # a byte flipped in the text
            flipped = bytearray(doc)
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            raw = bytes(flipped)
        else:  # ISO-8601 times in odd forms
            obj = self._json_obj(seed)
            obj[rng.choice(("event_time", "sent_time"))] = rng.choice(
                (
                    "2026-11-01T00:00:00Z",
                    "2026-11-01T00:00:00",
                    "2026-11-01",
                    "9999-12-31T23:59:59.999999+14:00",
                    "0001-01-01T00:00:00-14:00",
                    "2026-13-45T99:99:99Z",
                    "",
                    "now",
                )
            )
            raw = orjson.dumps(obj)
        return self._out("json_structure", seed, raw, rng)


@functools.cache
def default_source() -> FuzzSource:
    """The source every test shares (building it runs the simulator once)."""
    return FuzzSource.from_simulator()


def fuzz_inputs(kinds: Sequence[str] = KINDS) -> st.SearchStrategy[FuzzInput]:
    """Inputs of ``kinds``, with hypothesis choosing (and shrinking) the randomness."""
    return st.builds(
        lambda kind, rng: default_source().make(kind, rng),
        st.sampled_from(tuple(kinds)),
        st.randoms(use_true_random=False),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values with odd text and numbers beyond 64 bits."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | st.text(max_size=20)
        | st.sampled_from(ODD_STRINGS)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=max_leaves,
    )


@st.composite
def json_records(draw: st.DrawFn) -> FuzzInput:
    """A real event's JSON with hypothesis-chosen values in some of its fields."""
    source = default_source()
    seed = draw(st.sampled_from(source.seeds))
    obj: dict[str, Any] = orjson.loads(source.codec.encode_json(seed.event))
    names = sorted({*obj, "user_id", "currency", "value", "items", "event_name", "properties"})
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        obj[name] = draw(json_values())
    # The standard library writes integers beyond 64 bits, NaN and Infinity (orjson does not).
    raw = json.dumps(obj, allow_nan=True).encode()
    return FuzzInput("json_hypothesis", seed.event.stream, raw, seed.now_ms)


# -- checks ------------------------------------------------------------------------------------


HEX_SHOWN: Final = 256  # bytes of the input an UnexpectedError message shows


class UnexpectedError(AssertionError):
    """A stage raised (or wrote something a later stage cannot read) for ``fuzz_input``."""

    def __init__(self, stage: str, fuzz_input: FuzzInput, problem: str) -> None:
        shown = fuzz_input.raw[:HEX_SHOWN].hex()
        if len(fuzz_input.raw) > HEX_SHOWN:
            shown += f"... ({len(fuzz_input.raw)} bytes; FuzzInput.raw has them all)"
        super().__init__(
            f"{stage} failed on a {fuzz_input.kind} input for {fuzz_input.stream} at "
            f"now_ms={fuzz_input.now_ms}: {problem}\ninput (hex): {shown}"
        )
        self.stage = stage
        self.fuzz_input = fuzz_input
        self.problem = problem


def check_rejection(codec: EventCodec, fuzz_input: FuzzInput, rejection: Rejection) -> None:
    """A rejection has a Reason and a detail, and its dead letter encodes and decodes."""
    if not isinstance(rejection.reason, Reason):
        raise UnexpectedError("decode", fuzz_input, f"reason {rejection.reason!r} is not a Reason")
    if not isinstance(rejection.detail, str) or not rejection.detail.strip():
        raise UnexpectedError("decode", fuzz_input, f"{rejection.reason} has no detail")
    letter = DeadLetter.from_rejection(
        rejection,
        raw=fuzz_input.raw,
        source_topic=TOPICS[fuzz_input.stream],
        source_partition=0,
        source_offset=0,
        key=None,
        received_at_ms=fuzz_input.now_ms,
    )
    try:
        back = codec.decode_dead_letter(codec.encode_dead_letter(letter))
    except Exception as exc:
        raise UnexpectedError("dead letter", fuzz_input, f"{type(exc).__name__}: {exc}") from exc
    if back != letter:
        raise UnexpectedError("dead letter", fuzz_input, "dead letter does not round-trip")


def decode_checked(codec: EventCodec, fuzz_input: FuzzInput) -> Event | Rejection:
    """``codec.decode``; any exception, or a rejection without reason and detail, fails."""
    try:
        result = codec.decode(fuzz_input.raw, fuzz_input.stream, fuzz_input.now_ms)
    except Exception as exc:
        raise UnexpectedError("decode", fuzz_input, f"{type(exc).__name__}: {exc}") from exc
    if isinstance(result, Rejection):
        check_rejection(codec, fuzz_input, result)
    elif not isinstance(result, Event):
        raise UnexpectedError("decode", fuzz_input, f"returned {type(result).__name__}")
    return result


class _Store:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def keys_in_partition(self, partition: int) -> list[bytes]:
        return list(self.data)


INT_LOW: Final = -(2**63)
UINT64_MAX: Final = 2**64 - 1


class LaterStages:
    """The processing core one worker partition runs, fed the fuzzed records.

    Every record (accepted or not) goes in with its clock as the Kafka timestamp;
    :meth:`feed` checks each batch's output as the runtime would use it.
    """

    def __init__(self, codec: EventCodec | None = None) -> None:
        # Replay: the processor's clock comes from the events, the checks from the inputs.
        self.codec = codec or EventCodec(bounds=ValidationBounds())
        rules = Rules(load_funnels(), lateness_ms=5 * MIN_MS, session_timeout_ms=30 * MIN_MS)
        self.store = _Store()
        decoder: Any = self.codec  # EventCodec.decode takes the StreamKind literal
        self.processor = PartitionProcessor(
            0, rules, decoder, ChannelRules.load(), TOPICS, self.store
        )
        self._offsets = dict.fromkeys(TOPICS, 0)
        self.states_checked = 0
        self.rows_checked = 0

    def feed(self, inputs: Sequence[FuzzInput]) -> None:
        """Process ``inputs`` (one batch per stream, in order); raises UnexpectedError."""
        for stream in INPUT_STREAMS:
            batch = [i for i in inputs if i.stream == stream]
            if not batch:
                continue
            records = []
            for fuzz_input in batch:
                records.append(
                    Record(self._offsets[stream], None, fuzz_input.raw, fuzz_input.now_ms)
                )
                self._offsets[stream] += 1
            try:
                result = self.processor.process(stream, records)
                self._check(result)
            except UnexpectedError:
                raise
            except Exception as exc:
                raise UnexpectedError(
                    "processing", batch[0], f"{type(exc).__name__}: {exc} (batch of {len(batch)})"
                ) from exc

    def finish(self) -> None:
        """The end of a replay: every window closes, every row becomes final."""
        result = self.processor.tick(dict(self._offsets), finished=True)
        self._check(result)

    def _check(self, result: BatchResult) -> None:
        for key, value in result.state_writes.items():
            if value is None:
                self.store.data.pop(key, None)
                continue
            self.store.data[key] = value
            if key.startswith(META_PREFIX):
                continue
            state = decode_state(value, key.decode())
            assert encode_state(state) == value, "state does not round-trip"
            self.states_checked += 1
        if result.meta:
            self.processor.meta_record()
        for trigger in result.triggers:
            assert self.codec.decode_trigger(self.codec.encode_trigger(trigger)) == trigger
        for letter in result.dead_letters:
            self.codec.encode_dead_letter(letter)
        for spec, rows in result.rows.items():
            for row in rows:
                for column, value in zip(spec.columns, row, strict=True):
                    _check_cell(spec.name, column, value)
                self.rows_checked += 1


def _check_cell(table: str, column: str, value: object) -> None:
    if isinstance(value, str):
        value.encode()  # ClickHouse takes UTF-8 only (a lone surrogate raises here)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        assert INT_LOW <= value <= UINT64_MAX, f"{table}.{column}={value} does not fit 64 bits"
    elif isinstance(value, list | tuple):
        for item in value:
            _check_cell(table, column, item)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_cell(table, column, k)
            _check_cell(table, column, v)
