"""Funnel definitions (config, not code): the model, and loading with validation.

docs/semantics.md section 3 defines what each field means; ``streams/funnels.yaml``
shows the file format. Every problem in a funnel file is a :class:`FunnelConfigError`
that names the funnel, the field and the fix: the worker refuses to start rather than
count something else than the analyst wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from schemas.properties import (
    EXPERIMENT_PREFIX,
    NUMERIC_PROPERTIES,
    event_type_problem,
    is_known_property,
)
from streams.errors import FunnelConfigError

Scope = Literal["session", "user"]
Mode = Literal["ordered", "strict", "unordered"]
FilterOp = Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte"]
MODES: Final = ("ordered", "strict", "unordered")
FILTER_OPS: Final = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte")
NUMERIC_OPS: Final = frozenset({"gt", "gte", "lt", "lte"})
# Breakdown dimensions besides property names (schemas/properties.py) and experiments.
DIMENSION_NAMES: Final = ("channel", "campaign", "device", "platform", "country")
DIMENSION_ALIASES: Final = {"tier": "properties.membership_tier"}
MAX_STEPS: Final = 20
MAX_BREAKDOWN: Final = 3

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
# A number, for gt/gte/lt/lte (values and bounds): an optional sign, decimal digits with
# an optional fraction, an optional exponent. Not what Decimal() also takes (spaces,
# underscores, "Infinity", "NaN": comparing a NaN raises), so "not a number" means the
# same to every implementation of docs/semantics.md section 3.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# How an integer property (NUMERIC_PROPERTIES) is written on an event: str(int).
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
# Package data (pyproject.toml: [tool.setuptools.package-data] streams), so an installed
# wheel finds it too.
DEFAULT_FUNNELS: Final[Traversable] = files("streams") / "funnels.yaml"
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_FUNNEL_KEYS = frozenset({"name", "steps", "scope", "window", "mode", "exclusions", "breakdown"})
_STEP_KEYS = frozenset({"event", "where", "within", "label"})
_EXCLUSION_KEYS = frozenset({"event", "where", "from_step", "to_step"})


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    """``property op values``: true when any of the event's values of ``prop`` satisfies
    it (``ne`` and ``not_in``: when none equals)."""

    prop: str
    op: FilterOp
    values: tuple[str, ...]

    def matches(self, event_values: tuple[str, ...]) -> bool:
        op = self.op
        if op == "eq" or op == "in":
            return any(v in self.values for v in event_values)
        if op == "ne" or op == "not_in":
            return not any(v in self.values for v in event_values)
        bound = as_number(self.values[0])
        if bound is None:
            return False
        for value in event_values:
            number = as_number(value)
            if number is None:
                continue
            if (
                (op == "gt" and number > bound)
                or (op == "gte" and number >= bound)
                or (op == "lt" and number < bound)
                or (op == "lte" and number <= bound)
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class EventMatcher:
    """An event type (built-in, or ``custom:<name>``) with property filters (all must hold)."""

    event: str
    filters: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class StepDef:
    event: str
    filters: tuple[PropertyFilter, ...] = ()
    within_ms: int | None = None  # at most this long after the previous step's event
    label: str = ""

    @property
    def matcher(self) -> EventMatcher:
        return EventMatcher(self.event, self.filters)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """An event matching ``event``/``filters`` strictly between the attempt's events of
    steps ``from_step`` and ``to_step`` (1-based) disqualifies the attempt."""

    event: str
    from_step: int
    to_step: int
    filters: tuple[PropertyFilter, ...] = ()

    @property
    def matcher(self) -> EventMatcher:
        return EventMatcher(self.event, self.filters)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Per-funnel breakdown: dimension names, valued at the attributed step's event."""

    dimensions: tuple[str, ...]
    attribution: str = "first_touch"  # first_touch | last_touch | step:N

    @property
    def attributed_step(self) -> int | None:
        """The 1-based step for ``step:N``; None for first/last touch."""
        if self.attribution.startswith("step:"):
            return int(self.attribution[5:])
        return None


@dataclass(frozen=True, slots=True)
class FunnelDef:
    """One funnel. ``steps`` are the step labels (the event type unless labelled)."""

    name: str
    steps: tuple[str, ...]
    scope: Scope
    window_ms: int
    mode: Mode = "ordered"
    step_defs: tuple[StepDef, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    breakdown: Breakdown | None = None
    # Derived: the property names its filters and breakdown read; per event type, the
    # steps (0-based) it may fill.
    property_names: frozenset[str] = field(init=False, compare=False, repr=False)
    steps_of_type: dict[str, tuple[int, ...]] = field(init=False, compare=False, repr=False)
    plain: bool = field(init=False, compare=False, repr=False)  # no step has filters

    def __post_init__(self) -> None:
        if not self.step_defs:
            # Plain form (tests, older callers): each step is an event type.
            defs = tuple(StepDef(step, label=step) for step in self.steps)
            object.__setattr__(self, "step_defs", defs)
        names: set[str] = set()
        for matcher in self.matchers:
            names.update(f.prop for f in matcher.filters)
        if self.breakdown is not None:
            names.update(d for d in self.breakdown.dimensions if d not in DIMENSION_NAMES)
        object.__setattr__(self, "property_names", frozenset(names))
        by_type: dict[str, list[int]] = {}
        for index, step in enumerate(self.step_defs):
            by_type.setdefault(step.event, []).append(index)
        object.__setattr__(self, "steps_of_type", {k: tuple(v) for k, v in by_type.items()})
        object.__setattr__(self, "plain", not any(s.filters for s in self.step_defs))

    @property
    def matchers(self) -> tuple[EventMatcher, ...]:
        return (*(s.matcher for s in self.step_defs), *(x.matcher for x in self.exclusions))

    @property
    def event_types(self) -> frozenset[str]:
        """Event types any step or exclusion of this funnel can match."""
        return frozenset(m.event for m in self.matchers)

    @property
    def needs_all_events(self) -> bool:
        """Strict order looks at every event of the entity, not only the steps' types."""
        return self.mode == "strict"


def as_number(text: str) -> Decimal | None:
    """``text`` as a decimal, or None when it is not a (finite, plainly written) number.

    A number beyond the decimal context's exponents (``1e1000000000000000000``) is not a
    number either: ``Decimal`` raises on it, and a property value a producer sends must
    never stop the worker.
    """
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def parse_duration_ms(text: str) -> int:
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"duration {text!r} is not like 30s, 30m, 1h or 7d")
    value = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if value <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return value


class _FunnelParser:
    """Validates one funnel mapping; every error names funnel, field and fix."""

    def __init__(self, raw: Any, source: str) -> None:
        if not isinstance(raw, dict):
            raise FunnelConfigError(
                f"{source}: each funnel must be a mapping with name, steps, scope and window"
            )
        self.raw = raw
        name = str(raw.get("name", "")).strip()
        self.where = f"{source}: funnel {name or '<unnamed>'}"
        self.name = name

    def fail(self, field_name: str, problem: str) -> FunnelConfigError:
        return FunnelConfigError(f"{self.where}, field '{field_name}': {problem}")

    def parse(self) -> FunnelDef:
        raw = self.raw
        unknown = sorted(set(raw) - _FUNNEL_KEYS)
        if unknown:
            raise self.fail(unknown[0], f"unknown field; use {sorted(_FUNNEL_KEYS)}")
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", self.name):
            raise self.fail("name", "must be lower_snake_case (a-z, 0-9, _), at most 63 long")
        scope = raw.get("scope", "session")
        if scope not in ("session", "user"):
            raise self.fail("scope", f"must be 'session' or 'user', got {scope!r}")
        mode = raw.get("mode", "ordered")
        if mode not in MODES:
            raise self.fail("mode", f"must be one of {list(MODES)}, got {mode!r}")
        window_ms = self.duration("window", raw.get("window", "1h"))
        steps = self.steps(raw.get("steps"), mode, window_ms)
        exclusions = self.exclusions(raw.get("exclusions"), mode, steps)
        breakdown = self.breakdown(raw.get("breakdown"), len(steps))
        return FunnelDef(
            name=self.name,
            steps=tuple(s.label for s in steps),
            scope=scope,
            window_ms=window_ms,
            mode=mode,
            step_defs=steps,
            exclusions=exclusions,
            breakdown=breakdown,
        )

    def duration(self, field_name: str, value: Any) -> int:
        try:
            return parse_duration_ms(value)
        except ValueError as exc:
            raise self.fail(field_name, str(exc)) from exc

    def event(self, field_name: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(field_name, "must name an event type, like view_item")
        problem = event_type_problem(value)
        if problem is not None:
            raise self.fail(field_name, problem)
        return value

    def filters(self, field_name: str, where: Any) -> tuple[PropertyFilter, ...]:
        if where is None:
            return ()
        if not isinstance(where, dict) or not where:
            raise self.fail(field_name, "must map property names to a value, a list or {op: value}")
        out: list[PropertyFilter] = []
        for prop, condition in where.items():
            at = f"{field_name}.{prop}"
            if not isinstance(prop, str) or not is_known_property(prop):
                raise self.fail(
                    at,
                    "unknown property; use a built-in one (schemas/properties.py), "
                    "properties.<key> for a custom property or experiment:<name>",
                )
            out.append(self.condition(at, prop, condition))
        return tuple(out)

    def condition(self, at: str, prop: str, condition: Any) -> PropertyFilter:
        if isinstance(condition, list):
            op, value = "in", condition
        elif isinstance(condition, dict):
            if len(condition) != 1:
                raise self.fail(at, "write one operator, like {gte: 1000}")
            ((op, value),) = condition.items()
        else:
            op, value = "eq", condition
        if op not in FILTER_OPS:
            raise self.fail(at, f"unknown operator {op!r}; use one of {list(FILTER_OPS)}")
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise self.fail(at, f"'{op}' needs a non-empty list of values")
            values = tuple(_scalar(v) for v in value)
        else:
            if isinstance(value, (list, dict)) or value is None:
                raise self.fail(at, f"'{op}' needs one value")
            values = (_scalar(value),)
        if op in NUMERIC_OPS:
            if as_number(values[0]) is None:
                raise self.fail(
                    at, f"'{op}' compares numbers; {value!r} is not one (write it like 5000)"
                )
            if prop.startswith(EXPERIMENT_PREFIX):
                raise self.fail(at, "an experiment variant is not a number; use eq or in")
        elif prop in NUMERIC_PROPERTIES:
            # Equality is on the text, and the event's values are integers (str(int)):
            # 50.0 or 050 would never equal one.
            for text in values:
                if not _INTEGER.fullmatch(text):
                    raise self.fail(
                        at, f"{prop} is an integer; {text!r} is not one (write it like 5000)"
                    )
        return PropertyFilter(prop, op, values)  # type: ignore[arg-type]

    def steps(self, raw: Any, mode: str, window_ms: int) -> tuple[StepDef, ...]:
        if not isinstance(raw, list) or len(raw) < 2:
            raise self.fail("steps", "list at least two steps (event types or {event: ...})")
        if len(raw) > MAX_STEPS:
            raise self.fail("steps", f"at most {MAX_STEPS} steps are supported")
        out: list[StepDef] = []
        for index, step in enumerate(raw):
            at = f"steps[{index + 1}]"
            if isinstance(step, str):
                event = self.event(at, step)
                out.append(StepDef(event, label=event))
                continue
            if not isinstance(step, dict):
                raise self.fail(at, "must be an event type or a mapping with 'event'")
            unknown = sorted(set(step) - _STEP_KEYS)
            if unknown:
                raise self.fail(f"{at}.{unknown[0]}", f"unknown field; use {sorted(_STEP_KEYS)}")
            event = self.event(f"{at}.event", step.get("event"))
            filters = self.filters(f"{at}.where", step.get("where"))
            within = None
            if step.get("within") is not None:
                if index == 0:
                    raise self.fail(f"{at}.within", "step 1 has no previous step; remove it")
                if mode == "unordered":
                    raise self.fail(
                        f"{at}.within", "per-step windows need an order; use mode ordered or strict"
                    )
                within = self.duration(f"{at}.within", step["within"])
                if within > window_ms:
                    raise self.fail(
                        f"{at}.within",
                        "is longer than the funnel's window, so it would never apply; "
                        "shorten it or lengthen 'window'",
                    )
            label = step.get("label", event)
            if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_:.\-]{1,64}", label):
                raise self.fail(f"{at}.label", "use 1-64 letters, digits, _ : . or -")
            out.append(StepDef(event, filters, within, label))
        return tuple(out)

    def exclusions(self, raw: Any, mode: str, steps: tuple[StepDef, ...]) -> tuple[Exclusion, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.fail("exclusions", "must be a list of {event, from_step, to_step}")
        if raw and mode == "unordered":
            raise self.fail("exclusions", "exclusions need an order; use mode ordered")
        if raw and mode == "strict":
            # Strict steps are consecutive events: nothing lies between two of them.
            raise self.fail(
                "exclusions",
                "strict mode has no events between its steps, so an exclusion would never "
                "apply; remove it or use mode ordered",
            )
        out: list[Exclusion] = []
        for index, item in enumerate(raw):
            at = f"exclusions[{index + 1}]"
            if not isinstance(item, dict):
                raise self.fail(at, "must be a mapping {event, from_step, to_step}")
            unknown = sorted(set(item) - _EXCLUSION_KEYS)
            if unknown:
                raise self.fail(
                    f"{at}.{unknown[0]}", f"unknown field; use {sorted(_EXCLUSION_KEYS)}"
                )
            event = self.event(f"{at}.event", item.get("event"))
            filters = self.filters(f"{at}.where", item.get("where"))
            first, last = item.get("from_step", 1), item.get("to_step", len(steps))
            for key, value in (("from_step", first), ("to_step", last)):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise self.fail(f"{at}.{key}", f"must be a step number 1..{len(steps)}")
            if not 1 <= first < last <= len(steps):
                raise self.fail(
                    at,
                    f"from_step {first} .. to_step {last} is out of bounds; need "
                    f"1 <= from_step < to_step <= {len(steps)}",
                )
            out.append(Exclusion(event, first, last, filters))
        return tuple(out)

    def breakdown(self, raw: Any, n_steps: int) -> Breakdown | None:
        if raw is None:
            return None
        if isinstance(raw, list):
            raw = {"dimensions": raw}
        if not isinstance(raw, dict):
            raise self.fail(
                "breakdown", "must be a list of dimensions or {dimensions, attribution}"
            )
        unknown = sorted(set(raw) - {"dimensions", "attribution"})
        if unknown:
            raise self.fail(f"breakdown.{unknown[0]}", "unknown field; use dimensions, attribution")
        dims = raw.get("dimensions")
        if not isinstance(dims, list) or not dims or len(dims) > MAX_BREAKDOWN:
            raise self.fail(
                "breakdown.dimensions",
                f"list 1 to {MAX_BREAKDOWN} dimensions (each one multiplies the funnel's rows)",
            )
        names: list[str] = []
        for dim in dims:
            name = DIMENSION_ALIASES.get(dim, dim) if isinstance(dim, str) else dim
            if not isinstance(name, str) or not (
                name in DIMENSION_NAMES or is_known_property(name)
            ):
                raise self.fail(
                    "breakdown.dimensions",
                    f"unknown dimension {dim!r}; use {', '.join(DIMENSION_NAMES)}, tier, "
                    "experiment:<name>, a built-in property or properties.<key>",
                )
            names.append(name)
        if len(set(names)) != len(names):
            raise self.fail("breakdown.dimensions", "a dimension is listed twice")
        attribution = str(raw.get("attribution", "first_touch"))
        step = re.fullmatch(r"step:(\d+)", attribution)
        if attribution not in ("first_touch", "last_touch") and not (
            step and 1 <= int(step.group(1)) <= n_steps
        ):
            raise self.fail(
                "breakdown.attribution",
                f"must be first_touch, last_touch or step:N with N in 1..{n_steps}, "
                f"got {attribution!r}",
            )
        return Breakdown(tuple(names), attribution)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class TextLoader(yaml.SafeLoader):
    """SafeLoader whose only implicit types are null and plain decimal integers (the
    funnel and experiment files both load with it).

    YAML 1.1 would turn filter values into something else than the analyst wrote, and
    the worker would then count that: ``country: NO`` into "false", ``coupon: 010``
    into "8", ``properties.app_version: 1.10`` into "1.1", ``1:30`` into "90", a
    timestamp into another spelling. Every other plain scalar stays its text (no field
    of a funnel file is a float, a boolean or a date).
    """


_KEPT_TAGS: Final = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "merge", "value", "yaml")
)
TextLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag in _KEPT_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
TextLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)


def parse_funnels(text: str, source: str = "<funnels>") -> tuple[FunnelDef, ...]:
    try:
        doc = yaml.load(text, Loader=TextLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise FunnelConfigError(f"{source}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("funnels"), list):
        raise FunnelConfigError(f"{source}: expected a top-level 'funnels:' list")
    funnels = tuple(_FunnelParser(raw, source).parse() for raw in doc["funnels"])
    names = [f.name for f in funnels]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        name = duplicates[0]
        raise FunnelConfigError(
            f"{source}: funnel {name}, field 'name': funnel names must be unique, and "
            f"{name!r} names {names.count(name)} funnels; rename all but one"
        )
    return funnels


def load_funnels(path: Path | None = None) -> tuple[FunnelDef, ...]:
    """Load funnels from ``path`` or the packaged default ``streams/funnels.yaml``."""
    if path is None:
        try:
            default = DEFAULT_FUNNELS.read_text("utf-8")
        except OSError as exc:
            raise FunnelConfigError(
                f"cannot read the packaged default funnels {DEFAULT_FUNNELS}: {exc.strerror}; "
                "reinstall shop-funnel with its package data (streams/funnels.yaml) or pass "
                "a funnel file (funnel worker --funnels FILE)"
            ) from exc
        return parse_funnels(default, "streams/funnels.yaml")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise FunnelConfigError(f"cannot read funnel file {path}: {exc.strerror}") from exc
    return parse_funnels(text, str(path))
