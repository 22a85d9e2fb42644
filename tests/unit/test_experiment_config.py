"""Experiment files (README "Defining experiments"): what parses, and how a bad file is
refused.

Every refusal must name the experiment, the field (as a path like
``guardrails[2].threshold``) and the fix, so each error test checks all three in the
message.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.catalog import EXPERIMENTS
from simulator.population import assign_variant
from streams.errors import FunnelConfigError
from streams.experiments import (
    DEFAULT_EXPERIMENTS,
    MAX_EXPERIMENTS,
    MAX_VARIANTS,
    CupedRule,
    ExperimentConfigError,
    ExperimentDef,
    ExposureRule,
    FunnelStepMetric,
    Guardrail,
    RevenuePerUser,
    VariantDef,
    dump_experiments,
    load_experiments,
    parse_experiments,
    parse_fraction,
)
from streams.funnels import FunnelDef, load_funnels, parse_funnels

DAY = 86_400_000
FUNNELS = load_funnels()
# A user-scope funnel whose two steps share a label, for the ambiguous-step case.
EXTRA_FUNNELS = parse_funnels(
    """
funnels:
  - name: browse
    scope: user
    window: 7d
    steps: [view_item, add_to_cart, view_item]
"""
)
ALL_FUNNELS: tuple[FunnelDef, ...] = (*FUNNELS, *EXTRA_FUNNELS)

# The full example of the README section "Defining experiments", as written there.
DOC_EXAMPLE = """
experiments:
  - name: checkout_button
    description: One-tap pay button on the payment page
    variants:                       # names as events carry them, with the intended split
      - {name: A, weight: 50%}      # all percentages summing to 100%,
      - {name: B, weight: 30%}      # or all fractions summing to 1 (0.5, 0.3, 0.2)
      - {name: C, weight: 20%}
    control: A
    primary: {funnel: checkout, step: purchase}    # a step label or number (4)
    guardrails:
      - payment_failure_rate                       # direction increase, no threshold
      - {metric: refund_rate, direction: any, threshold: 10%}
      - {metric: checkout_error_rate, event: custom:checkout_error, threshold: 5%}
    alpha: 0.05                     # or 5%                              (default 0.05)
    mde: 5%                         # relative lift worth detecting      (optional)
    exposure: {event: begin_checkout}              # default: first_event
    cuped: {covariate: pre_exposure_activity, lookback: 14d}
  - name: free_shipping_banner
    variants: [control, treatment]                 # names only: an equal split
    control: control
    primary: {metric: revenue_per_user, currency: CNY}
    cuped: {covariate: pre_exposure_revenue, lookback: 7d}
"""

EXPECTED_DOC = (
    ExperimentDef(
        name="checkout_button",
        description="One-tap pay button on the payment page",
        variants=(
            VariantDef("A", Fraction(1, 2)),
            VariantDef("B", Fraction(3, 10)),
            VariantDef("C", Fraction(1, 5)),
        ),
        control="A",
        primary=FunnelStepMetric("checkout", 4, "purchase"),
        guardrails=(
            Guardrail("payment_failure_rate"),
            Guardrail("refund_rate", "any", Fraction(1, 10)),
            Guardrail("checkout_error_rate", "increase", Fraction(1, 20), "custom:checkout_error"),
        ),
        alpha=Fraction(1, 20),
        mde=Fraction(1, 20),
        exposure=ExposureRule("begin_checkout"),
        cuped=CupedRule("pre_exposure_activity", 14 * DAY),
    ),
    ExperimentDef(
        name="free_shipping_banner",
        variants=(
            VariantDef("control", Fraction(1, 2)),
            VariantDef("treatment", Fraction(1, 2)),
        ),
        control="control",
        primary=RevenuePerUser("CNY"),
        cuped=CupedRule("pre_exposure_revenue", 7 * DAY),
    ),
)


def minimal(**fields: Any) -> dict[str, Any]:
    """A valid experiment, with ``fields`` replacing (or, as None, removing) fields."""
    raw: dict[str, Any] = {
        "name": "exp1",
        "variants": [{"name": "A", "weight": "0.5"}, {"name": "B", "weight": "0.5"}],
        "control": "A",
        "primary": {"funnel": "checkout", "step": "purchase"},
    }
    for key, value in fields.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def document(*experiments: dict[str, Any]) -> str:
    return yaml.safe_dump({"experiments": list(experiments)}, sort_keys=False)


def refused(text: str, funnels: tuple[FunnelDef, ...] = ALL_FUNNELS) -> str:
    with pytest.raises(ExperimentConfigError) as info:
        parse_experiments(text, "exp.yaml", funnels)
    return str(info.value)


# -- what parses ----------------------------------------------------------------------


def test_the_packaged_default_describes_exactly_the_simulators_experiments() -> None:
    defaults = load_experiments(None, FUNNELS)
    assert [e.name for e in defaults] == [e.name for e in EXPERIMENTS]
    for defined, simulated in zip(defaults, EXPERIMENTS, strict=True):
        assert defined.variant_names == simulated.variants
        # assign_variant is a 50/50 split by one hash bit: the intended split is equal.
        assert [v.weight for v in defined.variants] == [Fraction(1, 2)] * 2
        assert defined.control == simulated.variants[0]
        assert defined.exposure == ExposureRule()  # the simulator tags every event
    # assign_variant yields every declared variant (not some other spelling).
    seen = {assign_variant(f"visitor-{i}", "checkout_button", ("A", "B")) for i in range(64)}
    assert seen == {"A", "B"}


def test_the_packaged_default_primaries_are_the_simulated_effects() -> None:
    by_name = {e.name: e for e in load_experiments(None, FUNNELS)}
    # checkout_button multiplies P(purchase | begin_checkout); the banner the cart step.
    assert by_name["checkout_button"].primary == FunnelStepMetric("checkout", 4, "purchase")
    assert by_name["free_shipping_banner"].primary == FunnelStepMetric("shop", 3, "add_to_cart")
    assert DEFAULT_EXPERIMENTS.name == "experiments.yaml"


def test_the_documented_full_example_parses_field_by_field() -> None:
    assert parse_experiments(DOC_EXAMPLE, "doc", FUNNELS) == EXPECTED_DOC


def test_dump_reads_back_equal() -> None:
    dumped = dump_experiments(EXPECTED_DOC)
    assert parse_experiments(dumped, "dumped", FUNNELS) == EXPECTED_DOC
    defaults = load_experiments(None, FUNNELS)
    assert parse_experiments(dump_experiments(defaults), "d", FUNNELS) == defaults


def test_a_mapping_parses_as_the_text_does() -> None:
    # yaml.safe_load makes 0.05 a float: it is read as written, exactly 1/20.
    mapping = yaml.safe_load(DOC_EXAMPLE)
    assert parse_experiments(mapping, "doc", FUNNELS) == EXPECTED_DOC


def test_defaults() -> None:
    (exp,) = parse_experiments(document(minimal()), "x", FUNNELS)
    assert exp.alpha == Fraction(1, 20)
    assert exp.mde is None
    assert exp.guardrails == ()
    assert exp.exposure == ExposureRule(None)
    assert exp.exposure.kind == "first_event"
    assert exp.cuped is None
    assert exp.description == ""
    assert exp.treatments == ("B",)
    assert exp.weight_of("B") == Fraction(1, 2)


def test_an_empty_list_means_no_experiments() -> None:
    assert parse_experiments("experiments: []\n", "x", FUNNELS) == ()


@pytest.mark.parametrize(
    ("primary", "expected"),
    [
        ({"funnel": "checkout", "step": 4}, FunnelStepMetric("checkout", 4, "purchase")),
        ({"funnel": "shop", "step": "view_item"}, FunnelStepMetric("shop", 2, "view_item")),
        ({"funnel": "browse", "step": 1}, FunnelStepMetric("browse", 1, "view_item")),
        ("revenue_per_user", RevenuePerUser(None)),
        ({"metric": "revenue_per_user"}, RevenuePerUser(None)),
        ({"metric": "revenue_per_user", "currency": "USD"}, RevenuePerUser("USD")),
    ],
)
def test_primary_forms(primary: Any, expected: Any) -> None:
    (exp,) = parse_experiments(document(minimal(primary=primary)), "x", ALL_FUNNELS)
    assert exp.primary == expected


def test_equal_split_and_three_variants() -> None:
    (exp,) = parse_experiments(
        document(minimal(variants=["A", "B", "C"], control="C")), "x", FUNNELS
    )
    assert exp.variants == tuple(VariantDef(n, Fraction(1, 3)) for n in "ABC")
    assert exp.treatments == ("A", "B")
    # 1/3 has no decimal: the dump writes the equal split as names and reads back equal.
    assert parse_experiments(dump_experiments((exp,)), "d", FUNNELS) == (exp,)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.05", Fraction(1, 20)),
        (".05", Fraction(1, 20)),
        ("5%", Fraction(1, 20)),
        ("12.5%", Fraction(1, 8)),
        ("1", Fraction(1)),
        (1, Fraction(1)),
        (0.1, Fraction(1, 10)),  # the float's repr, not its binary value
        ("0.3333", Fraction(3333, 10000)),
        ("-0.05", None),
        ("5 %", None),
        ("1e-2", None),
        ("NaN", None),
        ("0,05", None),
        ("", None),
        (True, None),
        (None, None),
    ],
)
def test_numbers_are_read_exactly_as_written(text: Any, value: Fraction | None) -> None:
    assert parse_fraction(text) == value


RAW = """
experiments:
  - name: exp1
    variants: [{name: A, weight: 0.5}, {name: B, weight: 0.5}]
    control: A
    primary: revenue_per_user
    alpha: {alpha}
"""


@pytest.mark.parametrize(
    ("alpha", "value"),
    [("0.10", Fraction(1, 10)), ("1_0%", None), ("1e-2", None), ("5%", Fraction(1, 20))],
)
def test_numbers_in_the_file_are_read_as_written(alpha: str, value: Fraction | None) -> None:
    # YAML 1.1 would make 1_0% ... text anyway, but 1e-2 a float 0.01; ours keeps the text.
    text = RAW.replace("{alpha}", alpha)
    if value is None:
        assert "field 'alpha': " in refused(text)
    else:
        assert parse_experiments(text, "x", ())[0].alpha == value


def test_load_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(DOC_EXAMPLE, "utf-8")
    assert load_experiments(path, FUNNELS) == EXPECTED_DOC


def test_a_missing_file_names_the_path_and_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ExperimentConfigError) as info:
        load_experiments(path, FUNNELS)
    assert str(path) in str(info.value)
    assert "FUNNEL_EXPERIMENTS_FILE" in str(info.value)


def test_the_error_is_a_funnel_config_error() -> None:
    # The worker and the CLI already refuse a FunnelConfigError (a ConfigError) cleanly.
    assert issubclass(ExperimentConfigError, FunnelConfigError)


# -- what is refused: experiment, field and fix ----------------------------------------

ONE_PERCENT_VARIANTS = [{"name": "A", "weight": "50%"}, {"name": "B", "weight": "49%"}]

# (experiment fields to replace, field path, the problem, the fix), all in the message.
CASES: list[tuple[dict[str, Any], str, str, str]] = [
    ({"colour": "red"}, "colour", "unknown field", "use alpha, control, cuped"),
    ({"name": "1st"}, "name", "", "a letter, then letters, digits"),
    ({"name": "has space"}, "name", "", "exactly as events carry it"),
    ({"name": "x" * 65}, "name", "", "at most 64"),
    ({"description": "d" * 201}, "description", "", "at most 200"),
    ({"variants": ["A"]}, "variants", "", "list at least two variants"),
    ({"variants": "A, B"}, "variants", "", "list at least two variants"),
    (
        {"variants": [f"v{i}" for i in range(MAX_VARIANTS + 1)]},
        "variants",
        f"{MAX_VARIANTS + 1} variants",
        f"at most {MAX_VARIANTS}",
    ),
    ({"variants": ["A", "B", "A"]}, "variants[3].name", "listed twice", "must be unique"),
    ({"variants": ["A", "b c"]}, "variants[2]", "not a variant name", "exactly as events"),
    ({"variants": ["A", 2]}, "variants[2]", "is text", "quote it: '2'"),
    (
        {"variants": [{"name": "A", "weight": "0.5"}, "B"]},
        "variants[2].weight",
        "missing",
        "give every variant a weight, or none",
    ),
    (
        {"variants": [{"name": "A", "weight": "0.5"}, {"name": "B", "weight": "0"}]},
        "variants[2].weight",
        "not a share in (0, 1]",
        "write a fraction like 0.5 or a percentage like 50%",
    ),
    (
        {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]},
        "variants[1].weight",
        "50 is not a share",
        "or a percentage like 50%",
    ),
    (
        {"variants": [{"name": "A", "weight": "-0.5"}, {"name": "B", "weight": "1.5"}]},
        "variants[1].weight",
        "not a share",
        "write a fraction",
    ),
    (
        {"variants": [{"name": "A", "weight": "0.5"}, {"name": "B", "weight": "50%"}]},
        "variants",
        "mixes fractions and percentages",
        "write every weight one way",
    ),
    (
        {"variants": [{"name": "A", "weight": "0.5"}, {"name": "B", "weight": "0.6"}]},
        "variants",
        "sum to 1.1, not 1",
        "correct them to sum to exactly 1",
    ),
    (
        {"variants": ONE_PERCENT_VARIANTS},
        "variants",
        "sum to 99%, not 100%",
        "sum to exactly 100%",
    ),
    (
        {"variants": [{"name": "A", "weight": "0.5", "share": 1}, "B"]},
        "variants[1].share",
        "unknown field",
        "use name, weight",
    ),
    (
        {"variants": [{"name": "A", "weight": "0.5"}, {"name": "B", "wieght": "0.5"}]},
        "variants[2].wieght",
        "unknown field",
        "use name, weight",
    ),
    ({"control": None}, "control", "missing", "name the control variant"),
    ({"control": "Z"}, "control", "'Z' is not a variant", "use one of ['A', 'B']"),
    ({"primary": None}, "primary", "", "write revenue_per_user"),
    ({"primary": "conversion"}, "primary", "", "{funnel: <name>, step: <label or number>}"),
    (
        {"primary": {"funnel": "nope", "step": 1}},
        "primary.funnel",
        "no funnel 'nope'",
        "use one of ['browse', 'checkout', 'shop'] or define it in the funnel file",
    ),
    (
        {"primary": {"funnel": "checkout", "step": "refund"}},
        "primary.step",
        "funnel checkout has no step 'refund'",
        "or a step number 1..4",
    ),
    (
        {"primary": {"funnel": "checkout", "step": 5}},
        "primary.step",
        "step 5 is not one",
        "steps 1..4",
    ),
    (
        {"primary": {"funnel": "browse", "step": "view_item"}},
        "primary.step",
        "labels steps [1, 3] of funnel browse",
        "write the step number instead",
    ),
    (
        {"primary": {"funnel": "checkout", "step": 1, "metric_name": "x"}},
        "primary.metric_name",
        "unknown field",
        "use funnel, step",
    ),
    (
        {"primary": {"metric": "aov"}},
        "primary.metric",
        "unknown metric 'aov'",
        "use revenue_per_user, or {funnel, step}",
    ),
    (
        {"primary": {"metric": "revenue_per_user", "currency": "cny"}},
        "primary.currency",
        "not an active ISO 4217 code",
        "write it like CNY",
    ),
    (
        {"guardrails": "refund_rate"},
        "guardrails",
        "",
        "must be a list of metrics (payment_failure_rate, refund_rate, checkout_error_rate)",
    ),
    (
        {"guardrails": ["bounce_rate"]},
        "guardrails[1]",
        "unknown guardrail 'bounce_rate'",
        "use one of payment_failure_rate, refund_rate, checkout_error_rate",
    ),
    (
        {"guardrails": ["refund_rate", {"metric": "aov"}]},
        "guardrails[2].metric",
        "unknown guardrail 'aov'",
        "use one of payment_failure_rate",
    ),
    (
        {"guardrails": ["refund_rate", {"metric": "refund_rate"}]},
        "guardrails[2]",
        "refund_rate is listed twice",
        "keep one",
    ),
    (
        {"guardrails": [{"metric": "refund_rate", "direction": "decrease"}]},
        "guardrails[1].direction",
        "refund_rate is bad when it rises",
        "use increase (one-sided) or any (two-sided)",
    ),
    (
        {"guardrails": [{"metric": "refund_rate", "threshold": "0"}]},
        "guardrails[1].threshold",
        "not a tolerated change relative to control",
        "write it like 0.05 or 5%",
    ),
    (
        {"guardrails": [{"metric": "refund_rate", "threshold": "100%"}]},
        "guardrails[1].threshold",
        "below 100%",
        "write it like 0.05 or 5%",
    ),
    (
        {"guardrails": [{"metric": "refund_rate", "event": "refund"}]},
        "guardrails[1].event",
        "refund_rate counts fixed event types (refund)",
        "remove 'event'",
    ),
    (
        {"guardrails": [{"metric": "checkout_error_rate", "event": "checkout_error"}]},
        "guardrails[1].event",
        "no schema can produce event 'checkout_error'",
        "custom:checkout_error",
    ),
    (
        {"guardrails": [{"metric": "refund_rate", "limit": 1}]},
        "guardrails[1].limit",
        "unknown field",
        "use direction, event, metric, threshold",
    ),
    ({"alpha": "0"}, "alpha", "not a significance level in (0, 0.5]", "like 0.05 or 5%"),
    ({"alpha": "0.6"}, "alpha", "not a significance level", "like 0.05 or 5%"),
    ({"alpha": "5"}, "alpha", "'5' is not a significance level", "like 0.05 or 5%"),
    ({"alpha": "five"}, "alpha", "not a significance level", "like 0.05 or 5%"),
    ({"mde": "0"}, "mde", "not a lift worth detecting relative to control", "like 0.05 or 5%"),
    ({"mde": "-5%"}, "mde", "not a lift worth detecting relative to control", "or leave it out"),
    ({"mde": "5"}, "mde", "below 100%", "like 0.05 or 5%"),
    ({"exposure": "on_load"}, "exposure", "", "write first_event"),
    (
        {"exposure": {"event": "experiment_viewed"}},
        "exposure.event",
        "no schema can produce event 'experiment_viewed'",
        "custom:experiment_viewed",
    ),
    (
        {"exposure": {"event": "custom:9bad"}},
        "exposure.event",
        "not a valid custom event",
        "after 'custom:' write the name producers send",
    ),
    (
        {"exposure": {"event": "purchase", "variant": "A"}},
        "exposure.variant",
        "unknown field",
        "use event",
    ),
    (
        {"cuped": {"covariate": "pre_exposure_orders"}},
        "cuped.covariate",
        "'pre_exposure_orders' is unknown",
        "use one of pre_exposure_revenue, pre_exposure_activity",
    ),
    (
        {"cuped": "pre_exposure_revenue"},
        "cuped.covariate",
        "a funnel-step primary has none",
        "use pre_exposure_activity",
    ),
    (
        {"cuped": {"covariate": "pre_exposure_activity", "lookback": "2w"}},
        "cuped.lookback",
        "not like 30s",
        "30m, 1h or 7d",
    ),
    (
        {"cuped": {"covariate": "pre_exposure_activity", "lookback": "31d"}},
        "cuped.lookback",
        "longer than 30d",
        "shorten it",
    ),
    ({"cuped": ["x"]}, "cuped", "", "write {covariate: ..., lookback: 14d}"),
]


@pytest.mark.parametrize(
    ("fields", "field_name", "problem", "fix"),
    CASES,
    ids=[f"{case[1]}-{index}" for index, case in enumerate(CASES)],
)
def test_refusal_names_experiment_field_and_fix(
    fields: dict[str, Any], field_name: str, problem: str, fix: str
) -> None:
    raw = minimal(**copy.deepcopy(fields))
    name = raw.get("name", "exp1")
    shown = name if isinstance(name, str) else "<unnamed>"
    message = refused(document(raw))
    assert message.startswith(f"exp.yaml: experiment {shown}, field '{field_name}': "), message
    assert problem in message, message
    assert fix in message, message


def test_every_case_is_valid_without_its_change() -> None:
    # The refusals above come from the change, not from the base experiment.
    assert parse_experiments(document(minimal()), "x", ALL_FUNNELS)[0].name == "exp1"


def test_missing_name_says_unnamed() -> None:
    message = refused(document(minimal(name=None)))
    assert message.startswith("exp.yaml: experiment <unnamed>, field 'name': "), message
    assert "a letter, then letters, digits" in message


def test_duplicate_experiment_names() -> None:
    message = refused(document(minimal(), minimal(control="B")))
    assert message.startswith("exp.yaml: experiment exp1, field 'name': "), message
    assert "'exp1' names 2 experiments" in message
    assert "rename all but one" in message


def test_too_many_experiments() -> None:
    many = [minimal(name=f"exp{i}") for i in range(MAX_EXPERIMENTS + 1)]
    message = refused(document(*many))
    assert f"{MAX_EXPERIMENTS + 1} experiments; at most {MAX_EXPERIMENTS}" in message
    assert "remove finished experiments" in message
    # The bound itself is allowed.
    assert len(parse_experiments(document(*many[:-1]), "x", FUNNELS)) == MAX_EXPERIMENTS


def test_a_primary_funnel_must_be_in_the_funnels_given() -> None:
    # Validated against the worker's funnels, not a fixed list: drop checkout and it fails.
    shop_only = tuple(f for f in FUNNELS if f.name == "shop")
    message = refused(document(minimal()), shop_only)
    assert "field 'primary.funnel': no funnel 'checkout'" in message
    assert "use one of ['shop']" in message


def test_the_default_file_with_other_funnels_says_to_set_the_experiments_file() -> None:
    with pytest.raises(ExperimentConfigError) as info:
        load_experiments(None, EXTRA_FUNNELS)
    message = str(info.value)
    assert message.startswith("streams/experiments.yaml: experiment checkout_button, ")
    assert "field 'primary.funnel': no funnel 'checkout'" in message
    assert "set FUNNEL_EXPERIMENTS_FILE" in message
    assert "'experiments: []' for none" in message


def test_a_variant_that_is_a_number_must_be_quoted_in_control() -> None:
    message = refused(document(minimal(variants=["1", "2"], control=1)))
    assert "field 'control': a variant name is text; quote it: '1'" in message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("funnels: []\n", "expected a top-level 'experiments:' list"),
        ("experiments: {a: 1}\n", "write 'experiments: []' for none"),
        ("- 1\n", "expected a top-level 'experiments:' list"),
        ("experiments: []\nextra: 1\n", "unknown top-level field 'extra'"),
        ("experiments: [\n", "not valid YAML"),
        ("experiments:\n  - 7\n", "each experiment must be a mapping"),
    ],
)
def test_bad_documents(text: str, hint: str) -> None:
    message = refused(text)
    assert message.startswith("exp.yaml: "), message
    assert hint in message, message


def test_a_key_twice_in_one_mapping_is_refused_with_its_line() -> None:
    text = "experiments:\n  - name: a\n    alpha: 0.05\n    alpha: 0.01\n"
    message = refused(text)
    assert "line 4: key 'alpha' appears twice in one mapping; keep one" in message
    assert "fix the syntax" in message


def test_yaml_1_1_spellings_stay_text() -> None:
    # NO and on are variant names, not booleans; they are what events carry.
    text = RAW.replace("[{name: A, weight: 0.5}, {name: B, weight: 0.5}]", "[NO, on]")
    text = text.replace("control: A", "control: NO").replace("{alpha}", "0.05")
    (exp,) = parse_experiments(text, "x", ())
    assert exp.variant_names == ("NO", "on")
    assert exp.control == "NO"
