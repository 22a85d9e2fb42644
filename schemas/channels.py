"""Channel grouping: (utm_source, utm_medium, referrer) -> one of :data:`CHANNELS`.

The rules live in ``schemas/channels.yaml`` (edit that file; its comments document the
defaults, modelled on GA4's default channel grouping plus Chinese platforms, KOL and
marketplace ads). How a visit is turned into a (source, medium) pair before the rules
run, as GA4 does:

* ``utm_source``/``utm_medium`` when either is present (trimmed, lower-cased; the
  missing one becomes ``(not set)``); the referrer is then ignored;
* otherwise the referrer's host as source with medium ``referral`` (hosts listed under
  ``internal_hosts`` count as no referrer);
* otherwise ``(direct)`` / ``(none)``.

The first rule whose conditions all hold gives the channel; no match gives
``unassigned``. :meth:`ChannelRules.classify` is memoised (bounded), so repeated inputs
cost one dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from schemas.errors import ChannelRulesError

CHANNELS: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "organic_social",
    "paid_social",
    "email",
    "affiliates",
    "referral",
    "display",
    "kol",
    "marketplace_ads",
    "direct",
    "unassigned",
)
# Package data (pyproject.toml: [tool.setuptools.package-data] schemas), so an installed
# wheel finds it too.
DEFAULT_RULES_PATH: Final[Traversable] = files("schemas") / "channels.yaml"
UNASSIGNED: Final = "unassigned"
NOT_SET: Final = "(not set)"
CACHE_LIMIT: Final = 65_536

Predicate = Callable[[str, str], bool]
# A condition as data (the compiled core's form, native/src/channels.rs): one dict per check.
CheckSpec = dict[str, Any]
"""``predicate(source, medium)`` on normalised (trimmed, lower-case) values."""

# "definitions" only holds YAML anchors that rules refer to.
_TOP_KEYS: Final = frozenset({"internal_hosts", "groups", "rules", "definitions"})
_GROUP_KEYS: Final = frozenset({"names", "domains"})
_CONDITION_KEYS: Final = frozenset(
    {"source_in", "source_is", "source_matches", "medium_is", "medium_matches", "any"}
)


@dataclass(frozen=True)
class SourceGroup:
    """Sources known by name (``baidu``) or by domain (``baidu.com`` and its subdomains).

    A domain ending in ``.*`` (``google.*``) matches that label under any one- or
    two-label suffix (google.com, google.co.jp).
    """

    names: frozenset[str]
    domains: frozenset[str]
    wildcard_labels: frozenset[str]

    def matches(self, source: str) -> bool:
        if source in self.names:
            return True
        if "." not in source:
            return False
        labels = _host_of(source).split(".")
        for start in range(len(labels)):
            if ".".join(labels[start:]) in self.domains:
                return True
            suffix_len = len(labels) - start - 1
            if labels[start] in self.wildcard_labels and 1 <= suffix_len <= 2:
                return True
        return False


class ChannelRules:
    """Ordered channel rules; build with :meth:`load`, then call :meth:`classify`."""

    def __init__(
        self,
        rules: Iterable[tuple[str, Predicate, list[CheckSpec]]],
        internal_hosts: Iterable[str] = (),
    ) -> None:
        listed = tuple(rules)
        self._rules = tuple((channel, predicate) for channel, predicate, _ in listed)
        self._specs = tuple((channel, spec) for channel, _, spec in listed)
        self._internal = SourceGroup(frozenset(), frozenset(internal_hosts), frozenset())
        self._cache: dict[tuple[str | None, str | None, str | None], str] = {}

    def spec(self) -> dict[str, Any]:
        """The rules as data, for the compiled core (``ChannelRules::from_json``)."""
        return {
            "internal": _group_spec(self._internal),
            "rules": [{"channel": channel, "all": spec} for channel, spec in self._specs],
        }

    @classmethod
    def load(cls, path: Path | None = None) -> ChannelRules:
        """Parse ``channels.yaml`` (default: the packaged file); errors name file and line."""
        rules_path: Traversable = path if path is not None else DEFAULT_RULES_PATH
        try:
            text = rules_path.read_text(encoding="utf-8")
        except OSError as exc:
            fix = (
                "reinstall shop-funnel with its package data (schemas/channels.yaml)"
                if path is None
                else "check the path"
            )
            raise ChannelRulesError(
                f"cannot read channel rules {rules_path}: {exc}; {fix}"
            ) from exc
        try:
            document = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ChannelRulesError(
                f"{rules_path}{line}: invalid YAML ({problem}); fix the syntax"
            ) from exc
        return _RulesParser(rules_path).parse(document)

    def classify(self, utm_source: str | None, utm_medium: str | None, referrer: str | None) -> str:
        key = (utm_source, utm_medium, referrer)
        channel = self._cache.get(key)
        if channel is None:
            channel = self._classify(utm_source, utm_medium, referrer)
            if len(self._cache) >= CACHE_LIMIT:
                # Hostile or high-cardinality input must not grow memory without bound.
                self._cache.clear()
            self._cache[key] = channel
        return channel

    def _classify(
        self, utm_source: str | None, utm_medium: str | None, referrer: str | None
    ) -> str:
        source, medium = self.source_medium(utm_source, utm_medium, referrer)
        for channel, predicate in self._rules:
            if predicate(source, medium):
                return channel
        return UNASSIGNED

    def source_medium(
        self, utm_source: str | None, utm_medium: str | None, referrer: str | None
    ) -> tuple[str, str]:
        """The normalised (source, medium) pair the rules see."""
        source = (utm_source or "").strip().lower()
        medium = (utm_medium or "").strip().lower()
        if source or medium:
            return source or NOT_SET, medium or NOT_SET
        host = _host_of(referrer or "")
        if host and not self._internal.matches(host):
            return host, "referral"
        return "(direct)", "(none)"


def _group_spec(group: SourceGroup) -> dict[str, list[str]]:
    return {
        "names": sorted(group.names),
        "domains": sorted(group.domains),
        "wildcard_labels": sorted(group.wildcard_labels),
    }


def _host_of(value: str) -> str:
    text = value.strip().lower()
    if not text:
        return ""
    if "//" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:  # e.g. an invalid IPv6 literal in a hostile referrer
        return ""
    return host.rstrip(".")


class _LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the line it started on (for error messages)."""

    line: int = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    loader.flatten_mapping(node)
    mapping = _LineDict()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}; keep one", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _RulesParser:
    def __init__(self, path: Traversable) -> None:
        self.path = path
        self.groups: dict[str, SourceGroup] = {}

    def fail(self, node: Any, problem: str) -> ChannelRulesError:
        line = f":{node.line}" if isinstance(node, _LineDict) else ""
        return ChannelRulesError(f"{self.path}{line}: {problem}")

    def parse(self, document: Any) -> ChannelRules:
        if not isinstance(document, _LineDict):
            raise self.fail(document, "expected a mapping with groups, rules, internal_hosts")
        unknown = set(document) - _TOP_KEYS
        if unknown:
            raise self.fail(document, f"unknown top-level keys {sorted(unknown)}")
        for name, group in (document.get("groups") or {}).items():
            self.groups[str(name)] = self.group(group, str(name))
        rules = document.get("rules")
        if not isinstance(rules, list) or not rules:
            raise self.fail(document, "'rules' must be a non-empty list of rules")
        internal = self.strings(document.get("internal_hosts") or [], document, "internal_hosts")
        return ChannelRules((self.rule(rule) for rule in rules), internal)

    def group(self, node: Any, name: str) -> SourceGroup:
        if not isinstance(node, _LineDict) or set(node) - _GROUP_KEYS:
            raise self.fail(node, f"group {name!r} must be a mapping of names: and domains:")
        domains = self.strings(node.get("domains") or [], node, f"{name}.domains")
        return SourceGroup(
            names=frozenset(self.strings(node.get("names") or [], node, f"{name}.names")),
            domains=frozenset(d for d in domains if not d.endswith(".*")),
            wildcard_labels=frozenset(d[:-2] for d in domains if d.endswith(".*")),
        )

    def rule(self, node: Any) -> tuple[str, Predicate, list[CheckSpec]]:
        if not isinstance(node, _LineDict) or "channel" not in node:
            raise self.fail(node, "each rule needs 'channel:' and conditions")
        channel = node["channel"]
        if channel not in CHANNELS:
            raise self.fail(node, f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
        conditions = {k: v for k, v in node.items() if k != "channel"}
        if not conditions:
            raise self.fail(node, f"rule for {channel} has no conditions")
        return (str(channel), *self.condition(conditions, node))

    def condition(self, spec: Mapping[str, Any], node: Any) -> tuple[Predicate, list[CheckSpec]]:
        unknown = set(spec) - _CONDITION_KEYS
        if unknown:
            raise self.fail(
                node,
                f"unknown condition {sorted(unknown)}; use {', '.join(sorted(_CONDITION_KEYS))}",
            )
        parsed = [self.check(key, value, node) for key, value in spec.items()]
        checks = [check for check, _ in parsed]
        predicate: Predicate = lambda source, medium: all(  # noqa: E731
            check(source, medium) for check in checks
        )
        return predicate, [check_spec for _, check_spec in parsed]

    def check(self, key: str, value: Any, node: Any) -> tuple[Predicate, CheckSpec]:
        if key == "any":
            if not isinstance(value, list) or not value:
                raise self.fail(node, "'any' must be a non-empty list of conditions")
            parsed = [self.condition(self.mapping(option), option) for option in value]
            options = [option for option, _ in parsed]
            return (
                lambda source, medium: any(option(source, medium) for option in options),
                {"any": [spec for _, spec in parsed]},
            )
        if key == "source_in":
            groups = [self.known_group(name, node) for name in self.strings(value, node, key)]
            return (
                lambda source, _medium: any(group.matches(source) for group in groups),
                {"source_in": [_group_spec(g) for g in groups]},
            )
        if key in ("source_is", "medium_is"):
            accepted = frozenset(s.lower() for s in self.strings(value, node, key))
            listed: CheckSpec = {key: sorted(accepted)}
            if key == "source_is":
                return (lambda source, _medium: source in accepted), listed
            return (lambda _source, medium: medium in accepted), listed
        pattern = self.regex(value, node, key)
        spec: CheckSpec = {key: {"pattern": pattern.pattern, "flags": int(pattern.flags)}}
        if key == "source_matches":
            return (lambda source, _medium: pattern.search(source) is not None), spec
        return (lambda _source, medium: pattern.search(medium) is not None), spec

    def mapping(self, node: Any) -> Mapping[str, Any]:
        if not isinstance(node, _LineDict):
            raise self.fail(node, f"expected a mapping of conditions, got {node!r}")
        return node

    def known_group(self, name: str, node: Any) -> SourceGroup:
        if name not in self.groups:
            raise self.fail(node, f"unknown group {name!r}; define it under groups:")
        return self.groups[name]

    def regex(self, value: Any, node: Any, key: str) -> re.Pattern[str]:
        if not isinstance(value, str):
            raise self.fail(node, f"{key} must be a regular expression string")
        try:
            return re.compile(value)
        except re.error as exc:
            raise self.fail(node, f"{key} {value!r} is not a valid regex: {exc}") from exc

    def strings(self, value: Any, node: Any, key: str) -> list[str]:
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
            raise self.fail(node, f"{key} must be a string or a list of strings")
        # Unquoted numbers such as 360 are read by YAML as ints; they are names here.
        return [str(v).strip().lower() for v in values]
