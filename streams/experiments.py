"""Experiment definitions (config, not code): the model, and loading with validation.

``streams/experiments.yaml`` shows the file format; each experiment names its variants
and intended split, its control, a primary metric (a step of a funnel from the funnel
definitions, or revenue per user), guardrails, alpha, an optional minimum detectable
effect, how a visitor is exposed and an optional CUPED covariate. Every problem in the
file is an :class:`ExperimentConfigError` that names the experiment, the field and the
fix: the worker refuses to start rather than read out something else than the analyst
wrote.

Numbers (``weight``, ``alpha``, ``mde``, ``threshold``) are read from the text as written:
a fraction (``0.05``, ``.05``, ``1``) or a percentage (``5%``, ``12.5%``), nothing else
(no sign, exponent, ``_`` or ``NaN``), and kept exact as :class:`~fractions.Fraction`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Literal, get_args

import yaml

from schemas.iso4217 import is_active_currency
from schemas.properties import event_type_problem
from streams.errors import FunnelConfigError
from streams.funnels import FunnelDef, TextLoader, parse_duration_ms

GuardrailMetric = Literal["payment_failure_rate", "refund_rate", "checkout_error_rate"]
Direction = Literal["increase", "any"]
Covariate = Literal["pre_exposure_revenue", "pre_exposure_activity"]
GUARDRAIL_METRICS: Final[tuple[GuardrailMetric, ...]] = get_args(GuardrailMetric)
DIRECTIONS: Final[tuple[Direction, ...]] = get_args(Direction)
COVARIATES: Final[tuple[Covariate, ...]] = get_args(Covariate)
REVENUE_PER_USER: Final = "revenue_per_user"
FIRST_EVENT: Final = "first_event"
# What each guardrail counts, from the visitor's exposure on (docs: "Defining experiments").
# checkout_error_rate has no built-in event type: its numerator is the guardrail's
# ``event`` (a custom event by default).
DEFAULT_CHECKOUT_ERROR_EVENT: Final = "custom:checkout_error"
GUARDRAIL_EVENTS: Final[dict[GuardrailMetric, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # (numerator event types, denominator event types)
    "payment_failure_rate": (("payment_failed",), ("payment_failed", "purchase")),
    "refund_rate": (("refund",), ("purchase",)),
    "checkout_error_rate": ((DEFAULT_CHECKOUT_ERROR_EVENT,), ("begin_checkout",)),
}
# Bounds: every (experiment, variant) is a label value of the readout metrics and rows, and
# every experiment is one more SQL evaluation of the stored events per readout; 20 x 10
# keeps a readout family at most 200 series per metric (the primary and three guardrails:
# 800).
MAX_EXPERIMENTS: Final = 20
MAX_VARIANTS: Final = 10
MAX_DESCRIPTION: Final = 200
# The longest pre-exposure lookback the CUPED covariate reads.
MAX_CUPED_LOOKBACK_MS: Final = 30 * 86_400_000
DEFAULT_CUPED_LOOKBACK: Final = "14d"
DEFAULT_ALPHA: Final = Fraction(1, 20)
# The names producers send in an event's ``experiments`` map (schemas/model.py). Safe as
# Prometheus label values, in PromQL selectors and in a funnel's ``experiment:<name>``.
EXPERIMENT_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")
VARIANT_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
# A fraction or a percentage, as written: 0.05, .05, 1, 5%, 12.5%.
_NUMBER: Final = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<percent>%?)")
# Package data (pyproject.toml: [tool.setuptools.package-data] streams = ["*.yaml"]).
DEFAULT_EXPERIMENTS: Final[Traversable] = files("streams") / "experiments.yaml"
_TOP_KEYS: Final = frozenset({"experiments"})
_EXPERIMENT_KEYS: Final = frozenset(
    {
        "name",
        "description",
        "variants",
        "control",
        "primary",
        "guardrails",
        "alpha",
        "mde",
        "exposure",
        "cuped",
    }
)
_VARIANT_KEYS: Final = frozenset({"name", "weight"})
_FUNNEL_METRIC_KEYS: Final = frozenset({"funnel", "step"})
_REVENUE_METRIC_KEYS: Final = frozenset({"metric", "currency"})
_GUARDRAIL_KEYS: Final = frozenset({"metric", "direction", "threshold", "event"})
_EXPOSURE_KEYS: Final = frozenset({"event"})
_CUPED_KEYS: Final = frozenset({"covariate", "lookback"})


class ExperimentConfigError(FunnelConfigError):
    """An experiment definition file is invalid; the message names the file, experiment,
    field and fix. A :class:`FunnelConfigError` (so a ``ConfigError``): whoever refuses a
    bad funnel file refuses a bad experiment file the same way."""


@dataclass(frozen=True, slots=True)
class VariantDef:
    name: str
    weight: Fraction  # the intended share of exposed visitors; the weights sum to 1


@dataclass(frozen=True, slots=True)
class FunnelStepMetric:
    """Share of exposed visitors with an attempt of ``funnel`` that starts at or after
    their exposure and reaches step ``step`` (1-based) within the funnel's window."""

    funnel: str
    step: int
    label: str

    @property
    def kind(self) -> Literal["funnel_step"]:
        return "funnel_step"


@dataclass(frozen=True, slots=True)
class RevenuePerUser:
    """Sum of the ``value`` of counted purchases at or after exposure, per exposed visitor
    (every exposed visitor is in the denominator); per currency, or one ``currency``."""

    currency: str | None = None

    @property
    def kind(self) -> Literal["revenue_per_user"]:
        return "revenue_per_user"


MetricRef = FunnelStepMetric | RevenuePerUser


@dataclass(frozen=True, slots=True)
class Guardrail:
    """A rate that must not get worse in a treatment: ``direction`` increase (one-sided)
    or any (two-sided); ``threshold``: the tolerated relative change (None: any
    significant change that way fails). ``event`` (checkout_error_rate only): the event
    type counted as a checkout error."""

    metric: GuardrailMetric
    direction: Direction = "increase"
    threshold: Fraction | None = None
    event: str | None = None

    @property
    def numerator_events(self) -> tuple[str, ...]:
        if self.event is not None:
            return (self.event,)
        return GUARDRAIL_EVENTS[self.metric][0]

    @property
    def denominator_events(self) -> tuple[str, ...]:
        return GUARDRAIL_EVENTS[self.metric][1]


@dataclass(frozen=True, slots=True)
class ExposureRule:
    """``event`` None: the visitor's first counted event that carries the experiment;
    else the first counted event of type ``event`` that carries it."""

    event: str | None = None

    @property
    def kind(self) -> Literal["first_event", "event"]:
        return "first_event" if self.event is None else "event"


@dataclass(frozen=True, slots=True)
class CupedRule:
    """Variance reduction with a pre-exposure covariate over ``lookback_ms`` before the
    visitor's exposure: revenue (the primary's currency) or counted events."""

    covariate: Covariate
    lookback_ms: int


@dataclass(frozen=True, slots=True)
class ExperimentDef:
    name: str
    variants: tuple[VariantDef, ...]
    control: str
    primary: MetricRef
    guardrails: tuple[Guardrail, ...] = ()
    alpha: Fraction = DEFAULT_ALPHA
    mde: Fraction | None = None  # relative to the control's value
    exposure: ExposureRule = ExposureRule()
    cuped: CupedRule | None = None
    description: str = ""

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @property
    def rates(self) -> tuple[Guardrail, ...]:
        """Every rate the readout reports per variant: the guardrails (which decide), then
        the other guardrail metrics with their default events (reported only)."""
        configured = {g.metric for g in self.guardrails}
        others = tuple(Guardrail(m) for m in GUARDRAIL_METRICS if m not in configured)
        return self.guardrails + others

    @property
    def treatments(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants if v.name != self.control)

    def weight_of(self, variant: str) -> Fraction:
        return next(v.weight for v in self.variants if v.name == variant)


def parse_fraction(value: Any) -> Fraction | None:
    """``0.05``, ``.05``, ``1``, ``5%`` as an exact fraction; None if not written so.

    The file loader gives text and integers only. A float (a mapping built by a caller
    with another loader) is read as its shortest repr, so 0.05 is 1/20, not the binary
    double; ``1e-05`` is refused like any exponent."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _NUMBER.fullmatch(str(value))
    if match is None:
        return None
    number = Fraction(match.group("number"))
    return number / 100 if match.group("percent") else number


def _text(fraction: Fraction) -> str:
    """The shortest plain decimal of ``fraction`` when it has one, else a ratio a/b."""
    denominator = fraction.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1 or fraction < 0:
        return f"{fraction.numerator}/{fraction.denominator}"
    whole, rest = divmod(fraction.numerator, fraction.denominator)
    digits = []
    while rest:
        rest *= 10
        digit, rest = divmod(rest, fraction.denominator)
        digits.append(str(digit))
    return f"{whole}.{''.join(digits)}" if digits else str(whole)


def _percent(fraction: Fraction) -> str:
    return f"{_text(fraction * 100)}%"


class _ExperimentParser:
    """Validates one experiment mapping against the funnels; every error names the
    experiment, the field and the fix."""

    def __init__(self, raw: Any, source: str, funnels: tuple[FunnelDef, ...]) -> None:
        if not isinstance(raw, dict):
            raise ExperimentConfigError(
                f"{source}: each experiment must be a mapping with name, variants, control "
                "and primary"
            )
        self.raw = raw
        name = raw.get("name")
        shown = name.strip() if isinstance(name, str) and name.strip() else "<unnamed>"
        self.where = f"{source}: experiment {shown}"
        self.funnels = {f.name: f for f in funnels}

    def fail(self, field_name: str, problem: str) -> ExperimentConfigError:
        return ExperimentConfigError(f"{self.where}, field '{field_name}': {problem}")

    def unknown_keys(self, at: str, raw: Mapping[Any, Any], allowed: frozenset[str]) -> None:
        unknown = sorted(str(k) for k in set(raw) - allowed)
        if unknown:
            path = f"{at}.{unknown[0]}" if at else unknown[0]
            raise self.fail(path, f"unknown field; use {', '.join(sorted(allowed))}")

    def parse(self) -> ExperimentDef:
        raw = self.raw
        self.unknown_keys("", raw, _EXPERIMENT_KEYS)
        name = raw.get("name")
        if not isinstance(name, str) or not EXPERIMENT_NAME.fullmatch(name):
            raise self.fail(
                "name",
                "write the experiment's key exactly as events carry it in 'experiments': "
                "a letter, then letters, digits, _ . or -, at most 64",
            )
        description = raw.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise self.fail("description", f"must be text of at most {MAX_DESCRIPTION} characters")
        variants = self.variants(raw.get("variants"))
        control = self.control(raw.get("control"), variants)
        primary = self.primary(raw.get("primary"))
        guardrails = self.guardrails(raw.get("guardrails"))
        alpha = self.alpha(raw.get("alpha"))
        mde = self.relative("mde", raw.get("mde"), "a lift worth detecting")
        exposure = self.exposure(raw.get("exposure"))
        cuped = self.cuped(raw.get("cuped"), primary)
        return ExperimentDef(
            name=name,
            variants=variants,
            control=control,
            primary=primary,
            guardrails=guardrails,
            alpha=alpha,
            mde=mde,
            exposure=exposure,
            cuped=cuped,
            description=description,
        )

    def variants(self, raw: Any) -> tuple[VariantDef, ...]:
        if not isinstance(raw, list) or len(raw) < 2:
            raise self.fail(
                "variants",
                "list at least two variants (names for an equal split, or {name, weight})",
            )
        if len(raw) > MAX_VARIANTS:
            raise self.fail(
                "variants",
                f"{len(raw)} variants; at most {MAX_VARIANTS} are supported (each is a "
                "label value of the readout metrics): merge or drop some",
            )
        for index, item in enumerate(raw, start=1):
            if isinstance(item, dict):  # a misspelt 'weight' is unknown, not missing
                self.unknown_keys(f"variants[{index}]", item, _VARIANT_KEYS)
        weighted = [isinstance(item, dict) and "weight" in item for item in raw]
        if any(weighted) and not all(weighted):
            index = weighted.index(False) + 1
            raise self.fail(
                f"variants[{index}].weight",
                "missing; give every variant a weight, or none for an equal split",
            )
        names: list[str] = []
        weights: list[Fraction] = []
        forms: set[bool] = set()
        for index, item in enumerate(raw, start=1):
            at = f"variants[{index}]"
            if isinstance(item, dict):
                names.append(self.variant_name(f"{at}.name", item.get("name")))
                if "weight" in item:
                    weight = parse_fraction(item["weight"])
                    if weight is None or weight <= 0 or weight > 1:
                        raise self.fail(
                            f"{at}.weight",
                            f"{item['weight']!r} is not a share in (0, 1]; write a fraction "
                            "like 0.5 or a percentage like 50%",
                        )
                    forms.add(str(item["weight"]).endswith("%"))
                    weights.append(weight)
            else:
                names.append(self.variant_name(at, item))
        for index, name in enumerate(names, start=1):
            if names.index(name) + 1 != index:
                raise self.fail(
                    f"variants[{index}].name",
                    f"variant {name!r} is listed twice (variants[{names.index(name) + 1}]); "
                    "variant names must be unique",
                )
        if not weights:
            weights = [Fraction(1, len(names))] * len(names)
        else:
            if len(forms) > 1:
                raise self.fail(
                    "variants",
                    "mixes fractions and percentages; write every weight one way "
                    "(0.5, 0.5 or 50%, 50%)",
                )
            total = sum(weights, Fraction(0))
            if total != 1:
                shown = _percent(total) if forms == {True} else _text(total)
                want = "100%" if forms == {True} else "1"
                raise self.fail(
                    "variants",
                    f"the weights sum to {shown}, not {want}; they are the intended split, "
                    f"so correct them to sum to exactly {want}",
                )
        return tuple(VariantDef(n, w) for n, w in zip(names, weights, strict=True))

    def variant_name(self, at: str, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            raise self.fail(at, f"a variant name is text; quote it: '{value}'")
        if not isinstance(value, str) or not VARIANT_NAME.fullmatch(value):
            raise self.fail(
                at,
                f"{value!r} is not a variant name; write the variant exactly as events carry "
                "it: a letter or digit, then letters, digits, _ . or -, at most 32",
            )
        return value

    def control(self, raw: Any, variants: tuple[VariantDef, ...]) -> str:
        names = [v.name for v in variants]
        if raw is None:
            raise self.fail("control", f"missing; name the control variant, one of {names}")
        if isinstance(raw, int) and not isinstance(raw, bool) and str(raw) in names:
            raise self.fail("control", f"a variant name is text; quote it: '{raw}'")
        if raw not in names:
            raise self.fail("control", f"{raw!r} is not a variant; use one of {names}")
        return str(raw)

    def primary(self, raw: Any) -> MetricRef:
        if raw == REVENUE_PER_USER:
            return RevenuePerUser()
        if isinstance(raw, dict) and "metric" in raw:
            self.unknown_keys("primary", raw, _REVENUE_METRIC_KEYS)
            if raw["metric"] != REVENUE_PER_USER:
                raise self.fail(
                    "primary.metric",
                    f"unknown metric {raw['metric']!r}; use revenue_per_user, or "
                    "{funnel, step} for a funnel step",
                )
            currency = raw.get("currency")
            if currency is not None and (
                not isinstance(currency, str) or not is_active_currency(currency)
            ):
                raise self.fail(
                    "primary.currency",
                    f"{currency!r} is not an active ISO 4217 code (schemas/iso4217.py); "
                    "write it like CNY, or leave it out for one readout per currency",
                )
            return RevenuePerUser(currency)
        if isinstance(raw, dict):
            self.unknown_keys("primary", raw, _FUNNEL_METRIC_KEYS)
            return self.funnel_step(raw.get("funnel"), raw.get("step"))
        raise self.fail(
            "primary",
            "write revenue_per_user, {metric: revenue_per_user, currency: CNY} or "
            "{funnel: <name>, step: <label or number>}",
        )

    def funnel_step(self, funnel_name: Any, step: Any) -> FunnelStepMetric:
        if not isinstance(funnel_name, str) or funnel_name not in self.funnels:
            raise self.fail(
                "primary.funnel",
                f"no funnel {funnel_name!r} in the funnel definitions; use one of "
                f"{sorted(self.funnels)} or define it in the funnel file",
            )
        funnel = self.funnels[funnel_name]
        labels = funnel.steps
        if isinstance(step, int) and not isinstance(step, bool):
            if not 1 <= step <= len(labels):
                raise self.fail(
                    "primary.step",
                    f"funnel {funnel.name} has steps 1..{len(labels)}; step {step} is not one",
                )
            return FunnelStepMetric(funnel.name, step, labels[step - 1])
        matches = [n for n, label in enumerate(labels, start=1) if label == step]
        if not matches:
            raise self.fail(
                "primary.step",
                f"funnel {funnel.name} has no step {step!r}; use a step label "
                f"({', '.join(labels)}) or a step number 1..{len(labels)}",
            )
        if len(matches) > 1:
            raise self.fail(
                "primary.step",
                f"{step!r} labels steps {matches} of funnel {funnel.name}; write the step "
                "number instead",
            )
        return FunnelStepMetric(funnel.name, matches[0], labels[matches[0] - 1])

    def guardrails(self, raw: Any) -> tuple[Guardrail, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.fail(
                "guardrails", f"must be a list of metrics ({', '.join(GUARDRAIL_METRICS)})"
            )
        out: list[Guardrail] = []
        for index, item in enumerate(raw, start=1):
            at = f"guardrails[{index}]"
            shorthand = not isinstance(item, dict)
            if shorthand:
                item = {"metric": item}
            else:
                self.unknown_keys(at, item, _GUARDRAIL_KEYS)
            metric = item.get("metric")
            if metric not in GUARDRAIL_METRICS:
                raise self.fail(
                    at if shorthand else f"{at}.metric",
                    f"unknown guardrail {metric!r}; use one of {', '.join(GUARDRAIL_METRICS)}",
                )
            if any(g.metric == metric for g in out):
                raise self.fail(at, f"{metric} is listed twice; keep one")
            direction = item.get("direction", "increase")
            if direction not in DIRECTIONS:
                raise self.fail(
                    f"{at}.direction",
                    f"{direction!r}: {metric} is bad when it rises; use increase "
                    "(one-sided) or any (two-sided)",
                )
            threshold = self.relative(
                f"{at}.threshold", item.get("threshold"), "a tolerated change"
            )
            event = None
            if "event" in item:
                if metric != "checkout_error_rate":
                    raise self.fail(
                        f"{at}.event",
                        f"{metric} counts fixed event types "
                        f"({', '.join(GUARDRAIL_EVENTS[metric][0])}); remove 'event'",
                    )
                event = self.event(f"{at}.event", item["event"])
            out.append(Guardrail(metric, direction, threshold, event))
        return tuple(out)

    def alpha(self, raw: Any) -> Fraction:
        if raw is None:
            return DEFAULT_ALPHA
        alpha = parse_fraction(raw)
        if alpha is None or not 0 < alpha <= Fraction(1, 2):
            raise self.fail(
                "alpha",
                f"{raw!r} is not a significance level in (0, 0.5]; write it like 0.05 or 5%",
            )
        return alpha

    def relative(self, at: str, raw: Any, what: str) -> Fraction | None:
        if raw is None:
            return None
        value = parse_fraction(raw)
        if value is None or not 0 < value < 1:
            raise self.fail(
                at,
                f"{raw!r} is not {what} relative to control, above 0 and below 100%; "
                "write it like 0.05 or 5% (or leave it out)",
            )
        return value

    def event(self, at: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(at, "must name an event type, like begin_checkout")
        problem = event_type_problem(value)
        if problem is not None:
            raise self.fail(at, problem)
        return value

    def exposure(self, raw: Any) -> ExposureRule:
        if raw is None or raw == FIRST_EVENT:
            return ExposureRule()
        if isinstance(raw, dict):
            self.unknown_keys("exposure", raw, _EXPOSURE_KEYS)
            return ExposureRule(self.event("exposure.event", raw.get("event")))
        raise self.fail(
            "exposure",
            "write first_event (the first event carrying the experiment) or "
            "{event: <event type>} for an explicit exposure event",
        )

    def cuped(self, raw: Any, primary: MetricRef) -> CupedRule | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            raw = {"covariate": raw}
        if not isinstance(raw, dict):
            raise self.fail("cuped", "write {covariate: ..., lookback: 14d} or leave it out")
        self.unknown_keys("cuped", raw, _CUPED_KEYS)
        covariate = raw.get("covariate")
        if covariate not in COVARIATES:
            raise self.fail(
                "cuped.covariate", f"{covariate!r} is unknown; use one of {', '.join(COVARIATES)}"
            )
        if covariate == "pre_exposure_revenue" and not isinstance(primary, RevenuePerUser):
            # Money is never summed across currencies, and a funnel step has none.
            raise self.fail(
                "cuped.covariate",
                "pre_exposure_revenue is counted in the primary metric's currency, and a "
                "funnel-step primary has none; use pre_exposure_activity",
            )
        lookback = raw.get("lookback", DEFAULT_CUPED_LOOKBACK)
        try:
            lookback_ms = parse_duration_ms(lookback)
        except ValueError as exc:
            raise self.fail("cuped.lookback", str(exc)) from exc
        if lookback_ms > MAX_CUPED_LOOKBACK_MS:
            raise self.fail(
                "cuped.lookback",
                f"{lookback!r} is longer than 30d, the longest pre-exposure history the "
                "readout reads for CUPED; shorten it",
            )
        return CupedRule(covariate, lookback_ms)


class _DuplicateKeyError(yaml.YAMLError):
    pass


class _ExperimentLoader(TextLoader):
    """SafeLoader whose only implicit types are null and plain decimal integers (as the
    funnel file's): ``alpha: 0.05`` stays the text ``0.05`` and is read exactly by
    :func:`parse_fraction`; a variant ``NO`` stays ``NO``. A key twice in one mapping is
    refused instead of the last one silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int) and key in seen:
                mark = key_node.start_mark
                raise _DuplicateKeyError(
                    f"line {mark.line + 1}: key {key!r} appears twice in one mapping; keep one"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_experiments(
    text_or_mapping: str | Mapping[str, Any],
    source: str = "<experiments>",
    funnels: tuple[FunnelDef, ...] = (),
) -> tuple[ExperimentDef, ...]:
    """Parse and validate an experiment file (its text, or the document as a mapping whose
    scalars are what :class:`_ExperimentLoader` would give) against ``funnels``."""
    if isinstance(text_or_mapping, str):
        try:
            doc = yaml.load(text_or_mapping, Loader=_ExperimentLoader)  # a SafeLoader
        except yaml.YAMLError as exc:
            raise ExperimentConfigError(
                f"{source}: not valid YAML ({exc}); fix the syntax"
            ) from exc
    else:
        doc = text_or_mapping
    if not isinstance(doc, Mapping) or not isinstance(doc.get("experiments"), list):
        raise ExperimentConfigError(
            f"{source}: expected a top-level 'experiments:' list (write 'experiments: []' for none)"
        )
    unknown = sorted(str(k) for k in set(doc) - _TOP_KEYS)
    if unknown:
        raise ExperimentConfigError(
            f"{source}: unknown top-level field {unknown[0]!r}; the file has only 'experiments:'"
        )
    raw_list = doc["experiments"]
    if len(raw_list) > MAX_EXPERIMENTS:
        raise ExperimentConfigError(
            f"{source}: {len(raw_list)} experiments; at most {MAX_EXPERIMENTS} may run at "
            "once (each is a label value of the readout metrics and a per-visitor state "
            "entry): remove finished experiments"
        )
    experiments = tuple(_ExperimentParser(raw, source, funnels).parse() for raw in raw_list)
    names = [e.name for e in experiments]
    for name in names:
        if names.count(name) > 1:
            raise ExperimentConfigError(
                f"{source}: experiment {name}, field 'name': experiment names must be "
                f"unique, and {name!r} names {names.count(name)} experiments; merge them or "
                "rename all but one"
            )
    return experiments


def load_experiments(
    path: Path | None = None, funnels: tuple[FunnelDef, ...] = ()
) -> tuple[ExperimentDef, ...]:
    """Load experiments from ``path`` or the packaged default ``streams/experiments.yaml``,
    validated against ``funnels`` (the worker's loaded funnel definitions)."""
    if path is None:
        try:
            default = DEFAULT_EXPERIMENTS.read_text("utf-8")
        except OSError as exc:
            raise ExperimentConfigError(
                f"cannot read the packaged default experiments {DEFAULT_EXPERIMENTS}: "
                f"{exc.strerror}; reinstall shop-funnel with its package data "
                "(streams/experiments.yaml) or set FUNNEL_EXPERIMENTS_FILE"
            ) from exc
        try:
            return parse_experiments(default, "streams/experiments.yaml", funnels)
        except ExperimentConfigError as exc:
            # The packaged file is fixed: only a funnel file without its funnels fails it.
            raise ExperimentConfigError(
                f"{exc}. The packaged default experiments measure steps of the packaged "
                "default funnels; with another funnel file set FUNNEL_EXPERIMENTS_FILE to "
                "experiments for it (a file with 'experiments: []' for none)"
            ) from exc
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ExperimentConfigError(
            f"cannot read experiment file {path}: {exc.strerror}; fix the path "
            "(FUNNEL_EXPERIMENTS_FILE)"
        ) from exc
    return parse_experiments(text, str(path), funnels)


def dump_experiments(experiments: tuple[ExperimentDef, ...]) -> str:
    """The experiments as a file :func:`parse_experiments` reads back equal (every field
    written out, defaults too): what ``funnel experiments check`` can print."""
    out: list[dict[str, Any]] = []
    for exp in experiments:
        primary: Any
        if isinstance(exp.primary, FunnelStepMetric):
            primary = {"funnel": exp.primary.funnel, "step": exp.primary.step}
        elif exp.primary.currency is None:
            primary = REVENUE_PER_USER
        else:
            primary = {"metric": REVENUE_PER_USER, "currency": exp.primary.currency}
        guardrails: list[dict[str, Any]] = []
        for guard in exp.guardrails:
            item: dict[str, Any] = {"metric": guard.metric, "direction": guard.direction}
            if guard.threshold is not None:
                item["threshold"] = _percent(guard.threshold)
            if guard.event is not None:
                item["event"] = guard.event
            guardrails.append(item)
        entry: dict[str, Any] = {"name": exp.name}
        if exp.description:
            entry["description"] = exp.description
        if len({v.weight for v in exp.variants}) == 1:
            entry["variants"] = list(exp.variant_names)  # an equal split
        else:
            entry["variants"] = [{"name": v.name, "weight": _text(v.weight)} for v in exp.variants]
        entry["control"] = exp.control
        entry["primary"] = primary
        entry["guardrails"] = guardrails
        entry["alpha"] = _text(exp.alpha)
        if exp.mde is not None:
            entry["mde"] = _percent(exp.mde)
        entry["exposure"] = (
            FIRST_EVENT if exp.exposure.event is None else {"event": exp.exposure.event}
        )
        if exp.cuped is not None:
            entry["cuped"] = {
                "covariate": exp.cuped.covariate,
                "lookback": _duration(exp.cuped.lookback_ms),
            }
        out.append(entry)
    return yaml.safe_dump({"experiments": out}, sort_keys=False, allow_unicode=True)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise ValueError(f"{ms} ms is not a whole number of seconds")
