"""Differential test of native/src/attribution.rs against streams/attribution.py and the
attribution part of streams/visitor.py's contributions (issue #16).

Every ported function is called through ``shopfunnel_core.probe`` with the same inputs as
the Python one: hypothesis-generated (ties in time and session, windows at their exact
boundaries, every model, extreme integers, unicode, URL-ish referrers) and the arguments
the Python core receives while it processes simulator data. Where Python raises, the Rust
must answer "raises"; where Python returns an integer outside i64 (it has big integers),
"out of range"; otherwise exactly what Python returns.
"""

from __future__ import annotations

import random
import struct
import unicodedata
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock
from urllib.parse import urlsplit

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import streams.attribution as attribution
import streams.visitor as visitor
from schemas.model import Event
from streams.attribution import (
    MODELS,
    SHARE_UNIT,
    AttributionRules,
    Touch,
    apportion,
    order_touches,
    prune_touches,
    record_touch,
    shares,
    source_of,
    touch_of,
    weights,
)
from streams.state import OrderLine, VisitorState, decode_state, encode_state

DAY = 86_400_000
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
EVENT_FIELDS = (
    "event_time_ms",
    "session_id",
    "event_id",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_content",
)


# -- calling the Rust ----------------------------------------------------------------------


def rust(name: str, **args: Any) -> tuple[str, Any]:
    """("ok", result) or ("err", message)."""
    try:
        return "ok", orjson.loads(shopfunnel_core.probe(f"attribution.{name}", orjson.dumps(args)))
    except ValueError as e:
        return "err", str(e)


def fits(value: Any) -> bool:
    """Every integer in ``value`` is an i64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return I64_MIN <= value <= I64_MAX
    if isinstance(value, (list, tuple)):
        return all(fits(v) for v in value)
    if isinstance(value, dict):
        return all(fits(v) for v in value.values())
    raise TypeError(type(value))


def same(name: str, python: Callable[[], Any], **args: Any) -> None:
    """The Rust probe ``name`` on ``args`` answers what ``python()`` does."""
    try:
        want = python()
    except (ValueError, ZeroDivisionError, OverflowError) as e:
        kind, got = rust(name, **args)
        assert kind == "err" and ": raises: " in got, (name, args, repr(e), got)
        return
    kind, got = rust(name, **args)
    if not fits(want):
        assert kind == "err" and ": out of range: " in got, (name, args, want, got)
        return
    assert kind == "ok", (name, args, want, got)
    assert got == want, (name, args)


def tj(touches: list[Touch]) -> list[list[Any]]:
    return [list(t) for t in touches]


def rj(rules: AttributionRules) -> dict[str, int]:
    return {
        "lookback_ms": rules.lookback_ms,
        "half_life_ms": rules.half_life_ms,
        "max_touches": rules.max_touches,
    }


def ej(event: Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in EVENT_FIELDS}


def shares_json(result: dict[Any, int]) -> list[list[Any]]:
    return [[list(key), value] for key, value in result.items()]


# -- the checks, one per function (hypothesis and recorded calls use them) ---------------


def check_record_touch(touches: list[Touch], candidate: Touch, rules: AttributionRules) -> None:
    def python() -> Any:
        after = list(touches)
        record_touch(after, candidate, rules)
        return tj(after)

    same("record_touch", python, touches=tj(touches), candidate=list(candidate), rules=rj(rules))


def check_prune(touches: list[Touch], oldest: int, rules: AttributionRules) -> None:
    def python() -> Any:
        after = list(touches)
        prune_touches(after, oldest, rules)
        return tj(after)

    same("prune_touches", python, touches=tj(touches), oldest_order_t=oldest, rules=rj(rules))


def check_order_touches(touches: list[Touch], order_t: int, rules: AttributionRules) -> None:
    same(
        "order_touches",
        lambda: tj(order_touches(touches, order_t, rules)),
        touches=tj(touches),
        order_t=order_t,
        rules=rj(rules),
    )


def check_weights_and_shares(
    model: str, touches: list[Touch], order_t: int, rules: AttributionRules
) -> None:
    args = {"model": model, "touches": tj(touches), "order_t": order_t, "rules": rj(rules)}
    same("weights", lambda: weights(model, touches, order_t, rules), **args)
    same("shares", lambda: shares_json(shares(model, touches, order_t, rules)), **args)


def check_apportion(w: list[int], total: int) -> None:
    same("apportion", lambda: apportion(w, total), weights=w, total=total)


def check_event(event: Event, channel: str, campaign: str) -> None:
    same("source_of", lambda: source_of(event), event=ej(event))
    same(
        "touch_of",
        lambda: list(touch_of(event, channel, campaign)),
        event=ej(event),
        channel=channel,
        campaign=campaign,
    )


def python_split(url: str) -> dict[str, Any]:
    try:
        split = urlsplit(url)
        return {"scheme": split.scheme, "netloc": split.netloc, "hostname": split.hostname}
    except ValueError:
        return {"error": True}


def check_urls(urls: list[str]) -> None:
    kind, got = rust("urlsplit", urls=urls)
    assert kind == "ok", got
    assert len(got) == len(urls)
    for url, answer in zip(urls, got, strict=True):
        want = python_split(url)
        if "error" in want:
            assert "error" in answer, (url, answer)
        else:
            assert answer == want, url


def python_contributions(
    state: VisitorState, window_ms: int, thresholds: dict[str, int], rules: AttributionRules
) -> list[list[Any]]:
    core_rules = SimpleNamespace(attribution=rules, window_of=lambda t: t - t % window_ms)
    out: dict[Any, int] = {}
    visitor._attribution_contributions(state, cast(Any, core_rules), thresholds, out)
    return [[list(key[:13]), value] for key, value in out.items()]


def check_contributions(
    raw: bytes,
    anonymous_id: str,
    window_ms: int,
    kpi: int,
    rules: AttributionRules,
    want: Callable[[], list[list[Any]]],
) -> None:
    same(
        "contributions",
        want,
        state=raw.decode(),
        anonymous_id=anonymous_id,
        window_ms=window_ms,
        kpi_threshold=kpi,
        rules=rj(rules),
    )


# -- strategies ------------------------------------------------------------------------------

i64s = st.integers(I64_MIN, I64_MAX)
texts = st.text(st.characters(codec="utf-8"), max_size=5)
session_ids = st.sampled_from(["", "s1", "s2", "s3", "é", "😀"]) | texts
channels = st.sampled_from(["direct", "kol", "organic_search", "(none)", "", "Direct"]) | texts
small_texts = st.sampled_from(["", "a", "b", "ü", "日本"]) | texts
rules_st = st.builds(
    AttributionRules,
    lookback_ms=st.sampled_from([0, 1, 1000, DAY, 30 * DAY])
    | st.integers(-10, 10)
    | st.integers(-(2**62), 2**62),
    half_life_ms=st.sampled_from([1, 7, 1000, DAY, 7 * DAY, -DAY, 0, 3]) | i64s,
    max_touches=st.integers(-3, 6) | st.sampled_from([50, 2**62, I64_MIN, I64_MAX]),
)


def clamp(t: int) -> int:
    return max(I64_MIN, min(I64_MAX, t))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Touch], int, AttributionRules, Touch]:
    """Touchpoints around an order (at, just inside and just outside its lookback, after
    it, tied in time and session), the order's time, rules, and a new candidate."""
    rules = draw(rules_st)
    order_t = draw(st.sampled_from([0, 1_700_000_000_000, -5, I64_MAX, I64_MIN]) | i64s)
    lb = rules.lookback_ms
    offsets = st.sampled_from([0, -1, 1, -lb, -lb - 1, -lb + 1, -2 * lb, -7 * DAY]) | st.integers(
        -3, 3
    )
    times = st.one_of(offsets.map(lambda o: clamp(order_t + o)), i64s)

    def touch() -> Touch:
        return Touch(
            draw(times),
            draw(session_ids),
            draw(st.sampled_from(["e1", "e2", ""]) | texts),
            draw(channels),
            draw(small_texts),
            draw(small_texts),
            draw(small_texts),
            draw(small_texts),
        )

    n = draw(st.integers(0, 8))
    candidates = [touch() for _ in range(n)]
    if draw(st.booleans()):  # as the core builds them
        touches: list[Touch] = []
        for c in candidates:
            record_touch(touches, c, rules)
    elif draw(st.booleans()):
        touches = sorted(candidates)
    else:
        touches = candidates  # any order: the same probes as bisect's
    return touches, order_t, rules, touch()


# -- hypothesis tests ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_touchpoints(scenario: tuple[list[Touch], int, AttributionRules, Touch]) -> None:
    touches, order_t, rules, candidate = scenario
    check_record_touch(touches, candidate, rules)
    check_prune(touches, order_t, rules)
    check_order_touches(touches, order_t, rules)
    same(
        "rules",
        lambda: {
            **rj(rules),
            "kept_touches": rules.kept_touches if fits(rules.kept_touches) else None,
        },
        rules=rj(rules),
    )


def wide_touches(times: list[int]) -> list[Touch]:
    return [Touch(t, f"s{i}", "e", f"c{i % 3}", "", "", "", "") for i, t in enumerate(times)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([*MODELS, "nope", ""]), st.booleans())
# time-decay weights past i64 (touchpoints many half-lives after the order): exact shares
@example(
    (wide_touches([31]), 0, AttributionRules(0, 1, 0), wide_touches([0])[0]), "time_decay", False
)
@example(
    (wide_touches([31, 992]), 0, AttributionRules(0, 1, 1), wide_touches([0])[0]),
    "time_decay",
    False,
)
@example(
    (wide_touches([40, 40, 0, 41]), 0, AttributionRules(0, 1, 5), wide_touches([0])[0]),
    "time_decay",
    False,
)
@example(
    (
        wide_touches([900, 33, -5, 62, 63, 64, 899]),
        0,
        AttributionRules(0, 1, 9),
        wide_touches([0])[0],
    ),
    "time_decay",
    False,
)
@example(
    (wide_touches([300, 300, 300]), 0, AttributionRules(0, 3, 9), wide_touches([0])[0]),
    "time_decay",
    False,
)
def test_weights_and_shares(
    scenario: tuple[list[Touch], int, AttributionRules, Touch], model: str, chosen: bool
) -> None:
    touches, order_t, rules, _ = scenario
    if chosen:  # what the core passes: the order's own touchpoints
        touches = order_touches(touches, order_t, rules)
    check_weights_and_shares(model, touches, order_t, rules)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(-100, 1_000) | st.sampled_from([30, 31, 32, 62, 63, 64]), max_size=7),
    st.sampled_from([1, 2]) | st.integers(1, 40),
)
def test_wide_time_decay(times: list[int], half_life: int) -> None:
    """Touchpoints after the order: weights up to 2**1024, shares exactly."""
    touches = wide_touches(times)
    check_weights_and_shares("time_decay", touches, 0, AttributionRules(0, half_life, 9))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 10) | st.sampled_from([0, 1, 20, 2**32, I64_MAX]) | i64s, max_size=8),
    st.just(SHARE_UNIT) | st.integers(-5, 5) | i64s,
)
@example([0, 0, 0], SHARE_UNIT)
@example([], SHARE_UNIT)
@example([0, 3, 0], SHARE_UNIT)
@example([1, 1, 1], SHARE_UNIT)
@example([I64_MAX, I64_MAX, 1], I64_MAX)
@example([5, -3], SHARE_UNIT)
def test_apportion(w: list[int], total: int) -> None:
    check_apportion(w, total)


URL_PIECES = [
    "http", "https", "HTTP", "ftp", "a+b-c.d", "1a", "mailto", "",
    ":", "//", "/", "@", "[", "]", "?", "#", "%", ".", ":80", ":-1", ":65536", ":x",
    "::1", "::", "fe80::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "::ffff:1.2.3.4",
    "1.2.3.4", "01.2.3.4", "256.1.1.1", "v1.x", "v", "vF.", "v1.", "%eth0", "%25",
    "www.", "WWW.Example.COM", "user:pw@", "u@h@", "ΑΣ", "Σ", "ΣΑ", "İ", "ß", "K",
    "\t", "\n", "\r", " ", "\x00", "\x1f", "\x7f", "\u0345", "\u00ad",
    "\u2100", "\uff0f", "\uff1a", "\ufe56", "\u2048", "é", "日本", "😀", "Ⅻ",
]  # fmt: skip
HOST_TOKENS = [
    "", "0", "1", "00", "ff", "FFFF", "0db8", "fffff", "12345", "g", "G", "é", "١",
    ":", "::", ":::", ".", "..", "1.2.3.4", "01.2.3.4", "0.0.0.0", "255.255.255.255",
    "256.0.0.1", "1.2.3", "1.2.3.4.5", "1.2.3.00", "1.2.3.4 ", "%", "%eth0", "%%", "%25",
    "v", "V", "v1", "vA", "vg", "x", "/",
]  # fmt: skip
pieces = st.sampled_from(URL_PIECES) | texts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(pieces, max_size=8).map("".join), min_size=1, max_size=40),
    st.lists(texts, max_size=10),
    st.lists(
        st.tuples(
            st.sampled_from(["//", "http://", "//u@"]),
            st.lists(st.sampled_from(HOST_TOKENS) | texts, max_size=8).map("".join),
            st.sampled_from(["]", "]:1", ""]),
        ).map(lambda p: p[0] + "[" + p[1] + p[2]),
        max_size=10,
    ),
)
def test_urlsplit_hypothesis(built: list[str], arbitrary: list[str], hosts: list[str]) -> None:
    check_urls(built + arbitrary + hosts)


def test_urlsplit_combinations() -> None:
    """Every pair and a random sample of longer strings of the pieces, and each non-ASCII
    character NFKC changes inside a netloc (urlsplit's _checknetloc)."""
    urls = [a + b for a in URL_PIECES for b in URL_PIECES]
    urls += ["//" + a + b for a in URL_PIECES for b in URL_PIECES]
    rng = random.Random(16)
    urls += ["".join(rng.choices(URL_PIECES, k=rng.randint(3, 9))) for _ in range(20_000)]
    changed = [
        chr(c)
        for c in range(0x80, 0x110000)
        if not 0xD800 <= c < 0xE000 and not unicodedata.is_normalized("NFKC", chr(c))
    ]
    urls += ["http://a" + c + "b:1/" for c in changed]
    urls += ["//[" + c + "]" for c in changed[::7]]
    urls += bracketed_hosts(random.Random(6), 20_000)
    check_urls(urls)


def bracketed_hosts(rng: random.Random, n: int) -> list[str]:
    """URLs with a bracketed host built from IPv6 / IPv4 / IPvFuture pieces (urlsplit's
    _check_bracketed_host: ipaddress's parsers and the IPvFuture pattern)."""
    urls = []
    for _ in range(n):
        host = "".join(rng.choices(HOST_TOKENS, k=rng.randint(1, 10)))
        if rng.random() < 0.3:  # a well-formed start
            host = rng.choice(["::", "1:2:3:4:5:6:7:", "fe80::", "v1.", "::ffff:", "1::"]) + host
        pre = rng.choice(["//", "http://", "https://u:p@", "//a@b@", "x:"])
        post = rng.choice(["]", "]:80", "]/p", "]x", "", "]]"])
        urls.append(pre + "[" + host + post)
    return urls


def test_lower_every_code_point() -> None:
    """str.lower() of every code point, and sigma in and out of final position."""
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 and c != 0x3A3)
    assert rust("lower", text=text) == ("ok", text.lower())


@settings(max_examples=50, deadline=None)
@given(
    st.text(
        st.sampled_from("ΣσςAa.'\u0345\u00ad\u0300 1İ") | st.characters(codec="utf-8"),
        max_size=8,
    )
)
def test_lower_sigma(text: str) -> None:
    assert rust("lower", text=text) == ("ok", text.lower())


@st.composite
def events(draw: st.DrawFn) -> Event:
    referrers = st.none() | st.just("") | st.lists(pieces, max_size=6).map("".join)
    return Event(
        stream="clickstream",
        event_type="page_view",
        event_id=draw(st.sampled_from(["e1", ""]) | texts),
        event_time_ms=draw(i64s),
        sent_time_ms=0,
        anonymous_id="a",
        session_id=draw(session_ids),
        referrer=draw(referrers),
        utm_source=draw(st.none() | small_texts),
        utm_medium=draw(st.none() | small_texts),
        utm_content=draw(st.none() | small_texts),
    )


@settings(max_examples=50, deadline=None)
@given(events(), channels, small_texts)
def test_events(event: Event, channel: str, campaign: str) -> None:
    check_event(event, channel, campaign)


@st.composite
def states(draw: st.DrawFn) -> tuple[VisitorState, int, dict[str, int], AttributionRules]:
    touches, order_t, rules, _ = draw(scenarios())
    rules = AttributionRules(
        draw(st.sampled_from([DAY, 30 * DAY, 1]) | st.just(rules.lookback_ms)),
        draw(st.sampled_from([7 * DAY, DAY]) | st.just(rules.half_life_ms)),
        draw(st.sampled_from([50, 2, 1]) | st.just(rules.max_touches)),
    )
    state = VisitorState(0, draw(st.sampled_from(["anon", ""]) | texts))
    state.dims.append(("direct", "", "desktop", "web", "CN"))
    state.touches = touches
    times = st.sampled_from([order_t, clamp(order_t + 1), clamp(order_t - 60_000)]) | i64s
    transactions = st.sampled_from(["t1", "t2", ""]) | texts
    for _ in range(draw(st.integers(0, 4))):
        state.orders.append(
            OrderLine(
                draw(times),
                draw(st.sampled_from(["o1", "o2"])),
                draw(st.sampled_from(["purchase", "purchase", "refund", "payment_failed"])),
                draw(transactions),
                draw(st.integers(0, 10**6) | i64s),
                1,
                False,
                0,
                0,
                draw(st.sampled_from(["CNY", "USD"])),
            )
        )
    choice = draw(st.integers(0, 3))
    if choice == 1 and state.orders:
        first = draw(st.sampled_from(state.orders))
        state.first_purchase = (first.t, first.transaction_id)
    elif choice == 2 and state.orders:  # an order's time, maybe another transaction
        state.first_purchase = (draw(st.sampled_from(state.orders)).t, draw(transactions))
    elif choice == 3:
        state.first_purchase = (draw(times), draw(transactions))
    window_ms = draw(st.sampled_from([60_000, 1, 7, DAY]) | st.integers(-5, 5))
    thresholds = draw(
        st.just({}) | times.map(lambda t: {"kpi": t}) | st.just({"kpi": 0, "funnel:x": 5})
    )
    return state, window_ms, thresholds, rules


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states())
def test_contributions(case: tuple[VisitorState, int, dict[str, int], AttributionRules]) -> None:
    state, window_ms, thresholds, rules = case
    check_contributions(
        encode_state(state),
        state.anonymous_id,
        window_ms,
        thresholds.get("kpi", 0),
        rules,
        lambda: python_contributions(state, window_ms, thresholds, rules),
    )


# The case hypothesis found: an order at i64 max (its window, with a window of -2 ms, is
# one past an i64), its only touch kept out by max_touches -1.
_WINDOW_PAST_I64 = (
    b'[2,0,[["direct","","desktop","web","CN"]],[],[],[[9223372036854775807,"o1","purchase",'
    b'"t1",0,1,false,0,0,"CNY"]],[],null,null,null,null,{},[],0,[],[],[],"prospect",null,{},'
    b'[[9223372036854775807,"","e1","direct","","","",""]],[]]'
)


def test_an_order_with_no_credit_never_needs_its_window() -> None:
    """An order that credits no touchpoint adds nothing in Python, whatever its window;
    the core used to refuse it as out of range before looking at the credits."""
    state = decode_state(_WINDOW_PAST_I64, "anon")
    rules = AttributionRules(DAY, 1, -1)
    want = python_contributions(state, -2, {}, rules)
    assert want == []
    check_contributions(_WINDOW_PAST_I64, "anon", -2, 0, rules, lambda: want)


def bits(x: float) -> str:
    return str(struct.unpack("<Q", struct.pack("<d", x))[0])


def python_decay(order_t: int, t: int, half_life: int) -> Any:
    """The floats of a time-decay weight, as ``weights`` computes them."""
    try:
        x = -(order_t - t) / half_life
        return [bits(x), bits(2.0**x * attribution._DECAY_SCALE)]
    except (ZeroDivisionError, OverflowError):
        return "error"


def check_decay(cases: list[tuple[int, int, int]]) -> None:
    kind, got = rust("decay_floats", cases=cases)
    assert kind == "ok", got
    for case, answer in zip(cases, got, strict=True):
        want = python_decay(*case)
        if want == "error":
            assert "error" in answer and "raises" in answer["error"], (case, answer)
        else:
            assert answer == want, case


def test_decay_floats() -> None:
    """The exponent (int true division) and 2.0 ** x * 2**32 bit for bit: touchpoints
    inside a lookback of up to 400 days, half-lives of the settings' range."""
    rng = random.Random(10)
    cases = []
    for _ in range(40_000):
        half_life = (
            rng.choice([7 * DAY, DAY, round(2.5 * DAY), round(400 * DAY)])
            if rng.random() < 0.5
            else rng.randint(1, 400 * DAY)
        )
        order_t = rng.randint(1_600_000_000_000, 1_800_000_000_000)
        cases.append((order_t, order_t - rng.randint(0, 400 * DAY), half_life))
    check_decay(cases)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(i64s, i64s, i64s | st.integers(-3, 3) | st.sampled_from([DAY, 7 * DAY])),
        max_size=20,
    )
)
def test_decay_floats_extremes(cases: list[tuple[int, int, int]]) -> None:
    check_decay(cases)


def test_rules_from_json() -> None:
    assert rust("rules", rules={}) == ("ok", {**rj(AttributionRules()), "kept_touches": 100})
    assert rust("rules", rules={"max_touches": 3}) == (
        "ok",
        {**rj(AttributionRules(max_touches=3)), "kept_touches": 6},
    )
    kind, _ = rust("rules", rules={"lookback": 1})  # AttributionRules(lookback=1) raises
    assert kind == "err"


# -- the calls the Python core makes on simulator data ------------------------------------------


class Recorder:
    """Wraps the attribution functions the core calls and keeps each call's arguments
    (copied before the call: the lists are mutated in place) and Python's answer."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[Any, ...]]] = {}
        self.seen: set[Any] = set()

    def keep(self, name: str, *call: Any) -> None:
        self.calls.setdefault(name, []).append(call)

    def patches(self) -> list[Any]:
        # (names streams.visitor imported from streams.attribution)
        orig_touch_of = getattr(visitor, "touch_of")  # noqa: B009
        orig_record = getattr(visitor, "record_touch")  # noqa: B009
        orig_prune = getattr(visitor, "prune_touches")  # noqa: B009
        orig_order_touches = getattr(visitor, "order_touches")  # noqa: B009
        orig_shares = getattr(visitor, "shares")  # noqa: B009
        orig_weights = attribution.weights
        orig_apportion = attribution.apportion
        orig_contrib = visitor._attribution_contributions

        def touch_of_(event: Event, channel: str, campaign: str) -> Touch:
            self.keep("touch_of", event, channel, campaign)
            return cast(Touch, orig_touch_of(event, channel, campaign))

        def record_(touches: list[Touch], candidate: Touch, rules: AttributionRules) -> None:
            self.keep("record_touch", list(touches), candidate, rules)
            orig_record(touches, candidate, rules)

        def prune_(touches: list[Touch], oldest: int, rules: AttributionRules) -> None:
            self.keep("prune_touches", list(touches), oldest, rules)
            orig_prune(touches, oldest, rules)

        def order_touches_(touches: list[Touch], order_t: int, rules: AttributionRules) -> Any:
            self.keep("order_touches", list(touches), order_t, rules)
            return orig_order_touches(touches, order_t, rules)

        def shares_(model: str, touches: list[Touch], order_t: int, rules: Any) -> Any:
            self.keep("shares", model, list(touches), order_t, rules)
            return orig_shares(model, touches, order_t, rules)

        def weights_(model: str, touches: list[Touch], order_t: int, rules: Any) -> Any:
            self.keep("weights", model, list(touches), order_t, rules)
            return orig_weights(model, touches, order_t, rules)

        def apportion_(w: list[int], total: int = SHARE_UNIT) -> list[int]:
            self.keep("apportion", list(w), total)
            return orig_apportion(w, total)

        def contrib_(state: VisitorState, rules: Any, thresholds: Any, out: Any) -> None:
            if any(o.kind == "purchase" for o in state.orders):
                raw = encode_state(state)
                kpi = thresholds.get("kpi", 0)
                if (raw, state.anonymous_id, kpi) not in self.seen:
                    self.seen.add((raw, state.anonymous_id, kpi))
                    fresh: dict[Any, int] = {}
                    orig_contrib(state, rules, thresholds, fresh)
                    want = [[list(key[:13]), value] for key, value in fresh.items()]
                    self.keep(
                        "contributions",
                        raw,
                        state.anonymous_id,
                        rules.window_ms,
                        kpi,
                        rules.attribution,
                        want,
                    )
            orig_contrib(state, rules, thresholds, out)

        return [
            mock.patch.object(visitor, "touch_of", touch_of_),
            mock.patch.object(visitor, "record_touch", record_),
            mock.patch.object(visitor, "prune_touches", prune_),
            mock.patch.object(visitor, "order_touches", order_touches_),
            mock.patch.object(visitor, "shares", shares_),
            mock.patch.object(attribution, "weights", weights_),
            mock.patch.object(attribution, "apportion", apportion_),
            mock.patch.object(visitor, "_attribution_contributions", contrib_),
        ]


# Tight rules: sessions dropped past the kept touchpoints, orders with none in the lookback.
TIGHT = AttributionRules(lookback_ms=600_000, half_life_ms=3_600_000, max_touches=1)


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[tuple[Any, ...]]]:
    import bench.state_memory as state_memory
    from streams.visitor import Rules

    records = state_memory.partition_zero(5_000, 3)
    recorder = Recorder()
    patches = recorder.patches()
    for p in patches:
        p.start()
    try:
        state_memory.run_core(records, 0)  # the worker's default attribution rules
        # and tight ones: touchpoints dropped, orders with more sessions than kept
        with mock.patch.object(
            state_memory, "Rules", lambda funnels: Rules(funnels, attribution=TIGHT)
        ):
            state_memory.run_core(records, 0)
    finally:
        for p in patches:
            p.stop()
    return recorder.calls


def test_recorded_touchpoints(recorded: dict[str, list[tuple[Any, ...]]]) -> None:
    for name in ("touch_of", "record_touch", "prune_touches", "order_touches"):
        assert len(recorded.get(name, [])) > 0, name
    for event, channel, campaign in recorded["touch_of"]:
        check_event(event, channel, campaign)
    for touches, candidate, rules in recorded["record_touch"]:
        check_record_touch(touches, candidate, rules)
    for touches, oldest, rules in recorded["prune_touches"]:
        check_prune(touches, oldest, rules)
    for touches, order_t, rules in recorded["order_touches"]:
        check_order_touches(touches, order_t, rules)
    # the tight rules dropped a session's touchpoint and credited an order to (none)
    assert any(
        len(t) == TIGHT.kept_touches and all(x.session_id != c.session_id for x in t)
        for t, c, r in recorded["record_touch"]
        if r == TIGHT
    )
    assert any(
        order_touches(t, order_t, r)[0].channel == "(none)"
        for t, order_t, r in recorded["order_touches"]
    )


def test_recorded_shares(recorded: dict[str, list[tuple[Any, ...]]]) -> None:
    for name in ("shares", "weights", "apportion"):
        assert len(recorded.get(name, [])) > 0, name
    for model, touches, order_t, rules in recorded["shares"]:
        check_weights_and_shares(model, touches, order_t, rules)
    for model, touches, order_t, rules in recorded["weights"]:
        same(
            "weights",
            partial(weights, model, touches, order_t, rules),
            model=model,
            touches=tj(touches),
            order_t=order_t,
            rules=rj(rules),
        )
    for w, total in recorded["apportion"]:
        check_apportion(w, total)
    assert any(len(touches) > 1 for _, touches, _, _ in recorded["shares"])


def test_recorded_contributions(recorded: dict[str, list[tuple[Any, ...]]]) -> None:
    calls = recorded.get("contributions", [])
    assert len(calls) > 0
    for raw, anonymous_id, window_ms, kpi, rules, want in calls:
        check_contributions(raw, anonymous_id, window_ms, kpi, rules, partial(list, want))
    assert any(want for *_, want in calls)
