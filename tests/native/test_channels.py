"""Differential test of native/src/channels.rs against schemas/channels.py (issue #16).

The Rust gets the rules as JSON built from the loaded Python object (``channel_rules_json``
reads the predicates' closures, not the YAML) and must classify every input exactly as
``ChannelRules.classify`` does: the simulator's traffic (recorded while the Python core
runs), every literal of schemas/channels.yaml with case, whitespace and URL variants,
hypothesis text and URL-ish referrers, and a rules file using the other features
(internal hosts, source regexes, empty ``any`` options). The regex subset the Rust
implements is compared with ``re.search`` on generated patterns.

The YAML loader and its validation are not ported (the Rust reads the JSON); the Rust
refuses JSON it cannot evaluate exactly (unsupported regex syntax or flags).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
import shopfunnel_core
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.channels import ChannelRules, SourceGroup, _host_of

Case = tuple[str | None, str | None, str | None]

# -- the rules as JSON, from the Python object ---------------------------------------------


def _closure(fn: Callable[..., Any]) -> dict[str, Any]:
    cells = fn.__closure__ or ()
    return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in cells), strict=True))


def _params(fn: Callable[..., Any]) -> tuple[str, ...]:
    return fn.__code__.co_varnames[: fn.__code__.co_argcount]


def group_json(group: SourceGroup) -> dict[str, Any]:
    return {
        "names": sorted(group.names),
        "domains": sorted(group.domains),
        "wildcard_labels": sorted(group.wildcard_labels),
    }


def _condition_json(predicate: Callable[..., Any]) -> list[dict[str, Any]]:
    env = _closure(predicate)
    if set(env) != {"checks"}:
        raise TypeError(f"not a condition predicate: {env}")
    return [_check_json(check) for check in env["checks"]]


def _check_json(check: Callable[..., Any]) -> dict[str, Any]:
    env = _closure(check)
    on_source = _params(check) == ("source", "_medium")
    if not on_source and _params(check) not in (("_source", "medium"), ("source", "medium")):
        raise TypeError(f"unknown check parameters {_params(check)}")
    if set(env) == {"options"}:
        return {"any": [_condition_json(option) for option in env["options"]]}
    if set(env) == {"groups"}:
        return {"source_in": [group_json(g) for g in env["groups"]]}
    if set(env) == {"accepted"}:
        return {"source_is" if on_source else "medium_is": sorted(env["accepted"])}
    if set(env) == {"pattern"}:
        pattern: re.Pattern[str] = env["pattern"]
        key = "source_matches" if on_source else "medium_matches"
        return {key: {"pattern": pattern.pattern, "flags": int(pattern.flags)}}
    raise TypeError(f"unknown check closure {sorted(env)}")


def channel_rules_json(rules: ChannelRules) -> dict[str, Any]:
    """The JSON ``ChannelRules::from_json`` reads, from the loaded rules object."""
    return {
        "internal": group_json(rules._internal),
        "rules": [
            {"channel": channel, "all": _condition_json(predicate)}
            for channel, predicate in rules._rules
        ],
    }


def _json_classify(spec: dict[str, Any], source: str, medium: str) -> str:
    """The JSON evaluated in Python (proves the JSON describes the object's rules)."""

    def group(g: dict[str, Any]) -> SourceGroup:
        return SourceGroup(
            frozenset(g["names"]), frozenset(g["domains"]), frozenset(g["wildcard_labels"])
        )

    def holds(checks: list[dict[str, Any]]) -> bool:
        return all(check(c) for c in checks)

    def check(c: dict[str, Any]) -> bool:
        ((key, arg),) = c.items()
        if key == "any":
            return any(holds(option) for option in arg)
        if key == "source_in":
            return any(group(g).matches(source) for g in arg)
        if key in ("source_is", "medium_is"):
            return (source if key == "source_is" else medium) in arg
        text = source if key == "source_matches" else medium
        return re.compile(arg["pattern"], arg["flags"]).search(text) is not None

    for rule in spec["rules"]:
        if holds(rule["all"]):
            return str(rule["channel"])
    return "unassigned"


# -- calling the Rust ----------------------------------------------------------------------


def rust(name: str, **args: Any) -> Any:
    return orjson.loads(shopfunnel_core.probe(f"channels.{name}", orjson.dumps(args)))


def compare(rules: ChannelRules, cases: Iterable[Case]) -> int:
    """Rust == Python on every case: classify (plain and memoised) and source_medium."""
    cases = list(dict.fromkeys(cases))
    spec = channel_rules_json(rules)
    # What production hands the compiled core (the parser's record of the rules) is
    # what the predicates it built do.
    assert rules.spec() == spec
    expected = [rules.classify(*c) for c in cases]
    pairs = [list(rules.source_medium(*c)) for c in cases]
    for name, want in (
        ("classify", expected),
        ("classify_cached", expected),
        ("source_medium", pairs),
    ):
        got = rust(name, rules=spec, cases=cases)
        assert len(got) == len(cases)
        bad = [(c, g, w) for c, g, w in zip(cases, got, want, strict=True) if g != w]
        assert not bad, f"{name}: {len(bad)} differ, e.g. {bad[:5]}"
    step = max(1, len(cases) // 2_000)  # a sample: the JSON evaluated in Python is slow
    json_got = [_json_classify(spec, s, m) for s, m in pairs[::step]]
    assert json_got == expected[::step]
    return len(cases)


@pytest.fixture(scope="module")
def default_rules() -> ChannelRules:
    return ChannelRules.load()


# -- literals of channels.yaml -------------------------------------------------------------

REGEX_SAMPLES = (
    "cpc", "cpm", "cpv", "cpa", "cps", "xcpx", "ppc", "ppcx", "retargeting", "paid",
    "paid_social", "paidsearch", "kol", "koc", "kol_x", "kol-x", "kol x", "kolx", "koc_",
    "influencer", "influencers", "influencersx", "creator", "creators", "creators-a b",
    "video", "short_video", "videos", "c\np", "cpc\n", "kol\n", "a\ncpc",
)  # fmt: skip
SPECIALS = ("(not set)", "(direct)", "(none)", "none", "direct", "referral", "organic")


def yaml_literals(spec: dict[str, Any]) -> list[str]:
    """Every string the rules compare with, and hosts built from the wildcard labels."""
    out: list[str] = []

    def group(g: dict[str, Any]) -> None:
        out.extend(g["names"])
        out.extend(g["domains"])
        for label in g["wildcard_labels"]:
            out.extend([label, f"{label}.com", f"{label}.co.jp", f"{label}.a.b.c"])

    def checks(cs: list[dict[str, Any]]) -> None:
        for c in cs:
            ((key, arg),) = c.items()
            if key == "any":
                for option in arg:
                    checks(option)
            elif key == "source_in":
                for g in arg:
                    group(g)
            elif key in ("source_is", "medium_is"):
                out.extend(arg)

    group(spec["internal"])
    for rule in spec["rules"]:
        checks(rule["all"])
    return list(dict.fromkeys([*out, *REGEX_SAMPLES, *SPECIALS]))


def variants(value: str) -> list[str]:
    return [
        value,
        value.upper(),
        value.title(),
        f" {value} ",
        f"\t{value}\n",
        f"\u3000{value}\x1c",
        f"\u200b{value}",  # not whitespace for str.strip()
        f"x{value}",
        f"www.{value}.",
    ]


EMPTY: tuple[str | None, ...] = (None, "", " ", "\x1f", "\u3000\n")
MEDIUMS = (None, "", "cpc", "organic", "kol", "referral", "email", "(none)")
SOURCES = (None, "", "google", "taobao", "mail.google.com", "(direct)", "unknownsrc",
           "Baidu.COM.")  # fmt: skip


def url_forms(host: str) -> list[str]:
    return [
        f"https://{host}/",
        host,
        f"http://www.{host}:8080/p?q=1#f",
        f"HTTPS://{host.upper()}./x",
        f"//{host}",
        f"{host}.",
        f" https://user:pw@{host}/ ",
        f"https://{host}.evil.example/",
        f"https://evil{host}/",
        f"https://[{host}]/",
        f"{host}/path//x",
    ]


def literal_cases(spec: dict[str, Any]) -> list[Case]:
    literals = yaml_literals(spec)
    cases: list[Case] = []
    for value in literals:
        for v in variants(value):
            cases.extend((v, m, None) for m in MEDIUMS)
            cases.extend((s, v, None) for s in SOURCES)
            cases.append((v, None, "https://www.google.com/"))
    for value in literals:
        for ref in url_forms(value):
            cases.extend(((None, None, ref), ("", " ", ref), (" ", "", ref)))
    cases.extend((a, b, c) for a in EMPTY for b in EMPTY for c in EMPTY)
    return cases


def test_default_rules_literals(default_rules: ChannelRules) -> None:
    spec = channel_rules_json(default_rules)
    assert len(spec["rules"]) >= 10
    n = compare(default_rules, literal_cases(spec))
    assert n > 10_000
    # every channel the rules name is reached
    reached = {default_rules.classify(*c) for c in literal_cases(spec)}
    assert {r["channel"] for r in spec["rules"]} | {"unassigned"} <= reached


# -- the simulator's traffic ---------------------------------------------------------------


def test_simulator_traffic(default_rules: ChannelRules) -> None:
    import bench.state_memory as state_memory
    from simulator.catalog import LAUNCH_SOURCE, TRAFFIC_SOURCES

    calls: list[Case] = []
    original = ChannelRules.classify

    def spy(self: ChannelRules, s: str | None, m: str | None, r: str | None) -> str:
        calls.append((s, m, r))
        return original(self, s, m, r)

    records = state_memory.partition_zero(1_500, 1)
    with mock.patch.object(ChannelRules, "classify", spy):
        state_memory.run_core(records, 0)
    assert len(calls) > 500
    distinct = set(calls)
    assert len(distinct) > 10
    catalog = [(s.utm_source, s.utm_medium, s.referrer) for s in (*TRAFFIC_SOURCES, LAUNCH_SOURCE)]
    compare(default_rules, [*distinct, *catalog])
    # the simulator's mix reaches many channels, unassigned included
    assert len({default_rules.classify(*c) for c in catalog}) >= 8


# -- another rules file: internal hosts, source regexes, empty options --------------------

OTHER_RULES = """\
internal_hosts: [Shop.Example, shop-cdn.example, "weird.*", 127.0.0.1]
groups:
  search:
    names: [google, "360", 百度]
    domains: [google.*, baidu.com, co.uk]
  tiny:
    names: []
    domains: [a.b]
rules:
  - channel: direct
    source_is: ["(direct)"]
  - channel: paid_search
    source_in: [search, tiny]
    medium_matches: '^(c[p-q]c|ppc|[^a-z]+)$'
  - channel: kol
    source_matches: '(?:^kol|[._-]kol)(s|\\.|\\-)?$'
  - channel: display
    medium_matches: 'ban+er?|dis.lay|^$|\\n'
  - channel: affiliates
    any:
      - source_is: [aff]
        medium_is: [CPS]
      - {}
    medium_is: [cps, affiliate]
  - channel: email
    any:
      - source_matches: '[]@]'
  - channel: referral
    medium_matches: ^referral$
"""


def test_other_rules(tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    path.write_text(OTHER_RULES, encoding="utf-8")
    rules = ChannelRules.load(path)
    spec = channel_rules_json(rules)
    assert spec["internal"]["domains"] == sorted(
        ["shop.example", "shop-cdn.example", "weird.*", "127.0.0.1"]
    )
    literals = [
        *yaml_literals(spec), "kol", "x.kol", "a-kols", "kol.", "kol-", "xkol", "banner", "baner",
        "bannnner", "display", "dis\nlay", "cpc", "cqc", "123", "12a", "aff", "cps", "a@b",
        "]", "weird.com", "weird", "sub.shop.example", "shop.example.com", "google.co.uk",
    ]  # fmt: skip
    cases: list[Case] = []
    for value in literals:
        for v in variants(value):
            cases.extend((v, m, None) for m in (*MEDIUMS, "CPS", "affiliate", "\n", "12"))
            cases.extend((s, v, None) for s in (*SOURCES, "aff", "a.b", "x.a.b"))
            cases.extend((None, None, ref) for ref in url_forms(v))
    assert compare(rules, cases) > 5_000
    got = {rules.classify(*c) for c in cases}
    assert {"direct", "paid_search", "kol", "display", "affiliates", "email", "referral"} <= got


def test_refuses_what_it_cannot_evaluate(default_rules: ChannelRules) -> None:
    spec = channel_rules_json(default_rules)
    regex_rule = spec["rules"][1]["all"][0]
    assert regex_rule["medium_matches"]["flags"] == re.UNICODE
    for pattern, flags in (("a{2}", re.UNICODE), (r"\d", re.UNICODE), ("a", re.I | re.UNICODE)):
        regex_rule["medium_matches"] = {"pattern": pattern, "flags": int(flags)}
        with pytest.raises(ValueError):
            rust("classify", rules=spec, cases=[["a", "b", None]])
    for broken in ({}, {"internal": {}, "rules": [{"channel": "x", "all": [{"nope": 1}]}]}):
        with pytest.raises(ValueError):
            rust("classify", rules=broken, cases=[])


# -- hypothesis ----------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
OPT_TEXT = st.one_of(st.none(), TEXT)
HOSTS = [
    "google.com", "www.google.co.jp", "baidu.com", "mail.google.com", "weixin.qq.com",
    "t.co", "amazon", "pinterest", "yahoo", "mail.yahoo.com", "so.com", "3.cn", "x.com",
    "xhslink.com", "search.brave.com", "shop.example", "localhost", "例子.中国", "ǅ.com",
]  # fmt: skip


@st.composite
def url_ish(draw: st.DrawFn) -> str:
    scheme = draw(
        st.sampled_from(["", "http://", "https://", "HTTP://", "//", "ftp:", "a b:", "x:"])
    )
    user = draw(st.sampled_from(["", "u@", "u:p@", "@", "a@b@"]))
    labels = draw(
        st.lists(st.sampled_from(["www", "m", "a-b", "WWW", "", "mail", "co"]), max_size=2)
    )
    host = draw(st.one_of(st.sampled_from(HOSTS), TEXT))
    tld = draw(st.sampled_from(["", ".com", ".co.uk", ".a.b.c", ".", "..", ".COM."]))
    port = draw(st.sampled_from(["", ":80", ":", ":abc", ":99999"]))
    path = draw(st.sampled_from(["", "/", "/p?q=1", "?x", "#f", "/a//b", "\\x"]))
    pad = draw(st.sampled_from(["", " ", "\t", "\n", "\x1c", "\u3000"]))
    text = f"{pad}{scheme}{user}{'.'.join([*labels, host])}{tld}{port}{path}{pad}"
    return draw(st.sampled_from([text, text.upper(), text.lower(), f"[{text}]"]))


# Loaded once: classify's memo does not change its answers.
_DEFAULT = ChannelRules.load()


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(OPT_TEXT, OPT_TEXT, OPT_TEXT), min_size=1, max_size=20))
def test_hypothesis_text(cases: list[Case]) -> None:
    compare(_DEFAULT, cases)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["", " "]), url_ish()),
            st.one_of(st.none(), st.sampled_from(["", "cpc", "kol_a", " Organic"]), TEXT),
            st.one_of(st.none(), url_ish()),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_hypothesis_urls(cases: list[Case]) -> None:
    compare(_DEFAULT, cases)
    values = [c[2] for c in cases if c[2] is not None] + [c[0] for c in cases if c[0]]
    assert rust("host_of", values=values) == [_host_of(v) for v in values]


# -- the regex subset ----------------------------------------------------------------------

ALPHABET = "abc-_ .\n]"


@st.composite
def pattern(draw: st.DrawFn, depth: int = 0) -> str:
    branches = []
    for _ in range(draw(st.integers(1, 3 if depth == 0 else 2))):
        items = []
        for _ in range(draw(st.integers(0, 4))):
            kinds = ["lit", "lit", "any", "esc", "set", "anchor"] + (["group"] if depth < 2 else [])
            kind = draw(st.sampled_from(kinds))
            if kind == "anchor":
                items.append(draw(st.sampled_from(["^", "$"])))
                continue
            if kind == "lit":
                atom = draw(st.sampled_from("abc-_ ]}é"))
            elif kind == "any":
                atom = "."
            elif kind == "esc":
                atom = draw(
                    st.sampled_from([r"\.", r"\n", r"\-", r"\\", r"\]", r"\(", r"\t", r"\é"])
                )
            elif kind == "set":
                first = draw(st.sampled_from(["", "^"]))
                body = draw(
                    st.lists(
                        st.sampled_from(["a", "b-c", "a-c", r"\n", "-", " ", "_", r"\]", ".", "$"]),
                        min_size=1,
                        max_size=3,
                    )
                )
                atom = "[" + first + draw(st.sampled_from(["", "]"])) + "".join(body) + "]"
            else:
                atom = draw(st.sampled_from(["(", "(?:"])) + draw(pattern(depth + 1)) + ")"
            atom += draw(st.sampled_from(["", "", "*", "+", "?", "*?", "+?", "??"]))
            items.append(atom)
        branches.append("".join(items))
    return "|".join(branches)


REGEXES_TO_SEARCH = [
    "^(.*cp.*|ppc|retargeting|paid.*)$",
    "^(kol|koc|influencers?|creators?)([-_ ].*)?$",
    "^(.*video.*)$",
]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern(), st.lists(st.text(ALPHABET, max_size=6), min_size=1, max_size=12))
def test_regex_subset(p: str, texts: list[str]) -> None:
    # the pattern's characters as a text (short: Python's backtracking can be exponential)
    literal = re.sub(r"[]^$()*+?|[\\:]", "", p)[:6]
    texts = [*texts, literal, literal[:3], "", "\n", "a", "-", "]"]
    texts += [f"{t}\n" for t in texts]  # '$' also matches before a final newline
    got = rust("search", pattern=p, texts=texts)
    # re caches compiled patterns and warns only when it compiles: a pattern seen in an
    # earlier example (hypothesis repeats them while shrinking) would warn nothing.
    re.purge()
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            compiled = re.compile(p)
        except re.error:
            assert "error" in got, p  # invalid in Python: refused
            return
    if warned:  # a possible nested set or set operation: the Rust may refuse it
        assert all(issubclass(w.category, FutureWarning) for w in warned)
        if "error" in got:
            return
    assert got == [compiled.search(t) is not None for t in texts], p


def test_a_pattern_python_compiled_before_still_warns_in_the_subset_test() -> None:
    """``[---]`` warns of a set difference, and the core refuses it; the first version of
    the test above missed the warning once ``re`` had the pattern cached."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # this compile is only to cache it
        re.compile(".a|[---]")  # cached, as an earlier hypothesis example leaves it
    test_regex_subset.hypothesis.inner_test(".a|[---]", [""])  # type: ignore[attr-defined]


@settings(max_examples=75, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(st.sampled_from("cpaidkolvetrgsfnu_- \nx"), max_size=16),
            TEXT,
        ),
        min_size=1,
        max_size=30,
    )
)
def test_shipped_regexes(texts: list[str]) -> None:
    texts = [*texts, *(f"{t}\n" for t in texts)]  # '$' also matches before a final newline
    for p in REGEXES_TO_SEARCH:
        assert rust("search", pattern=p, texts=texts) == [
            re.search(p, t) is not None for t in texts
        ]


def test_regex_refusals() -> None:
    # outside the subset, or invalid in Python: the Rust refuses to compile
    for p in ("a{2}", "a{", r"\d", r"\w", r"\b", r"\x41", r"\1", "(?i)a", "(?P<n>a)",
              "(?=a)", "a*+", "a**", "a*?*", "*a", "^*", "$?", "(a", "a)", "[a", "[z-a]",
              "[[a]", "[a--b]", "a|*", "\\"):  # fmt: skip
        assert "error" in rust("search", pattern=p, texts=["a"]), p
    # valid Python with the supported syntax
    valid = (("[]a]", "]"), ("[^]]", "a"), ("[a-]", "-"), ("", ""), ("(|a)*$", "b"),
             ("a$", "a\n"), ("a$", "a\n\n"), ("^$", "\n"), ("()*", "x"), ("a(^)*", "a"),
             ("(^a|b)+$", "ab"))  # fmt: skip
    for p, t in valid:
        assert rust("search", pattern=p, texts=[t]) == [re.search(p, t) is not None], p


def _all_patterns(rules: ChannelRules) -> Sequence[str]:
    out: list[str] = []

    def walk(checks: list[dict[str, Any]]) -> None:
        for c in checks:
            ((key, arg),) = c.items()
            if key == "any":
                for option in arg:
                    walk(option)
            elif key.endswith("_matches"):
                out.append(arg["pattern"])

    for rule in channel_rules_json(rules)["rules"]:
        walk(rule["all"])
    return out


def test_shipped_patterns_are_the_ones_searched(default_rules: ChannelRules) -> None:
    assert sorted(set(_all_patterns(default_rules))) == sorted(REGEXES_TO_SEARCH)
