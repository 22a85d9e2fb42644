"""Funnel files (docs/semantics.md section 3): what parses, and how a bad file is refused.

Every refusal must name the funnel, the field (as a path like ``steps[2].where.coupon``)
and the fix, so each test checks all three in the message.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from streams.errors import FunnelConfigError
from streams.funnels import (
    DEFAULT_FUNNELS,
    MAX_STEPS,
    Breakdown,
    Exclusion,
    FunnelDef,
    PropertyFilter,
    StepDef,
    load_funnels,
    parse_funnels,
)

MIN = 60_000
HOUR = 60 * MIN
THREE = ["view_item", "add_to_cart", "purchase"]

# The full definition of docs/semantics.md section 3, as written there.
DOC_EXAMPLE = """
funnels:
- name: shoes
  scope: session            # session | user                 (default session)
  mode: ordered             # ordered | strict | unordered   (default ordered)
  window: 1h                # from the step-1 event, inclusive (default 1h)
  steps:
    - view_item
    - event: add_to_cart
      where:                          # every condition must hold
        item_category: shoes          # equals
        price_minor: {gte: 5000}      # gt gte lt lte: numbers
        coupon: [SALE10, SALE20]      # in (also {in: [...]}, {not_in: [...]}, {ne: x})
      within: 10m                     # at most 10 min after the previous step's event
      label: add_shoes                # the step's name in rows and metrics
    - custom:size_guide_opened
    - purchase
  exclusions:
    - {event: remove_from_cart, from_step: 2, to_step: 4}
  breakdown:
    dimensions: [channel, experiment:checkout_button]   # 1 to 3
    attribution: first_touch          # first_touch | last_touch | step:N
"""


def document(*funnels: dict[str, Any]) -> str:
    return yaml.safe_dump({"funnels": list(funnels)}, sort_keys=False)


def shoes(**fields: Any) -> dict[str, Any]:
    """A valid three-step funnel named ``shoes``, with ``fields`` replaced or added."""
    out: dict[str, Any] = {"name": "shoes", "steps": list(THREE)}
    out.update(fields)
    return out


def refused(*funnels: dict[str, Any] | str) -> str:
    text = funnels[0] if isinstance(funnels[0], str) else document(*funnels)  # type: ignore[arg-type]
    with pytest.raises(FunnelConfigError) as caught:
        parse_funnels(text, "shop.yaml")
    return str(caught.value)


def assert_names(message: str, field: str, *hints: str, funnel: str = "shoes") -> None:
    assert message.startswith("shop.yaml: "), message
    assert f"funnel {funnel}," in message, message
    assert f"field '{field}'" in message, message
    for hint in hints:
        assert hint in message, (hint, message)


def only(text: str) -> FunnelDef:
    (funnel,) = parse_funnels(text, "shop.yaml")
    return funnel


# -- what parses --------------------------------------------------------------------------


def test_the_documented_full_definition_parses_field_by_field() -> None:
    funnel = only(DOC_EXAMPLE)
    assert (funnel.name, funnel.scope, funnel.mode, funnel.window_ms) == (
        "shoes",
        "session",
        "ordered",
        HOUR,
    )
    assert funnel.steps == ("view_item", "add_shoes", "custom:size_guide_opened", "purchase")
    assert funnel.step_defs == (
        StepDef("view_item", label="view_item"),
        StepDef(
            "add_to_cart",
            (
                PropertyFilter("item_category", "eq", ("shoes",)),
                PropertyFilter("price_minor", "gte", ("5000",)),
                PropertyFilter("coupon", "in", ("SALE10", "SALE20")),
            ),
            10 * MIN,
            "add_shoes",
        ),
        StepDef("custom:size_guide_opened", label="custom:size_guide_opened"),
        StepDef("purchase", label="purchase"),
    )
    assert funnel.exclusions == (Exclusion("remove_from_cart", 2, 4),)
    assert funnel.breakdown == Breakdown(("channel", "experiment:checkout_button"), "first_touch")
    assert funnel.breakdown.attributed_step is None
    # What the worker must keep per event for this funnel.
    assert funnel.property_names == {
        "item_category",
        "price_minor",
        "coupon",
        "experiment:checkout_button",
    }
    assert funnel.event_types == {
        "view_item",
        "add_to_cart",
        "custom:size_guide_opened",
        "purchase",
        "remove_from_cart",
    }
    assert funnel.steps_of_type == {
        "view_item": (0,),
        "add_to_cart": (1,),
        "custom:size_guide_opened": (2,),
        "purchase": (3,),
    }


def test_defaults_are_session_ordered_one_hour_and_no_extras() -> None:
    funnel = only(document({"name": "shoes", "steps": ["view_item", "purchase"]}))
    assert (funnel.scope, funnel.mode, funnel.window_ms) == ("session", "ordered", HOUR)
    assert (funnel.exclusions, funnel.breakdown, funnel.needs_all_events) == ((), None, False)
    assert funnel.step_defs == (
        StepDef("view_item", label="view_item"),
        StepDef("purchase", label="purchase"),
    )


@pytest.mark.parametrize(
    ("condition", "op", "values"),
    [
        ("shoes", "eq", ("shoes",)),
        (["shoes", "hats"], "in", ("shoes", "hats")),
        ({"eq": "shoes"}, "eq", ("shoes",)),
        ({"in": ["shoes"]}, "in", ("shoes",)),
        ({"not_in": ["shoes", "hats"]}, "not_in", ("shoes", "hats")),
        ({"ne": "shoes"}, "ne", ("shoes",)),
    ],
)
def test_condition_forms(condition: Any, op: str, values: tuple[str, ...]) -> None:
    funnel = only(
        document(
            shoes(
                steps=["view_item", {"event": "add_to_cart", "where": {"item_category": condition}}]
            )
        )
    )
    assert funnel.step_defs[1].filters == (PropertyFilter("item_category", op, values),)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_numeric_operators_keep_the_number_as_written(op: str) -> None:
    text = f"""
funnels:
- name: shoes
  steps: [view_item, {{event: purchase, where: {{value_minor: {{{op}: 49.90}}}}}}]
"""
    assert only(text).step_defs[1].filters == (PropertyFilter("value_minor", op, ("49.90",)),)  # type: ignore[arg-type]


def test_filter_values_stay_the_text_the_analyst_wrote() -> None:
    # YAML 1.1 would read NO as false, 010 as 8, 1.10 as 1.1 and 1:30 as 90.
    text = """
funnels:
- name: shoes
  steps:
    - view_item
    - event: purchase
      where:
        country: [NO, SE]
        coupon: 010
        properties.app_version: 1.10
        properties.slot: 1:30
        properties.member: true
        quantity: -2
"""
    assert only(text).step_defs[1].filters == (
        PropertyFilter("country", "in", ("NO", "SE")),
        PropertyFilter("coupon", "eq", ("010",)),
        PropertyFilter("properties.app_version", "eq", ("1.10",)),
        PropertyFilter("properties.slot", "eq", ("1:30",)),
        PropertyFilter("properties.member", "eq", ("true",)),
        PropertyFilter("quantity", "eq", ("-2",)),
    )


def test_exclusion_range_defaults_to_the_whole_funnel_and_takes_a_where() -> None:
    funnel = only(
        document(
            shoes(
                exclusions=[
                    {"event": "remove_from_cart"},
                    {"event": "view_item", "where": {"item_category": "hats"}, "from_step": 1},
                ]
            )
        )
    )
    assert funnel.exclusions == (
        Exclusion("remove_from_cart", 1, 3),
        Exclusion("view_item", 1, 3, (PropertyFilter("item_category", "eq", ("hats",)),)),
    )


def test_breakdown_shorthand_list_means_first_touch_and_tier_is_an_alias() -> None:
    funnel = only(document(shoes(breakdown=["channel", "tier", "item_category"])))
    assert funnel.breakdown == Breakdown(
        ("channel", "properties.membership_tier", "item_category"), "first_touch"
    )
    # Only properties are read from events; channel is a dimension.
    assert funnel.property_names == {"properties.membership_tier", "item_category"}


@pytest.mark.parametrize(("attribution", "step"), [("last_touch", None), ("step:3", 3)])
def test_breakdown_attribution(attribution: str, step: int | None) -> None:
    funnel = only(document(shoes(breakdown={"dimensions": ["device"], "attribution": attribution})))
    assert funnel.breakdown == Breakdown(("device",), attribution)
    assert funnel.breakdown.attributed_step == step


def test_user_scope_strict_and_unordered_modes_parse() -> None:
    text = document(
        shoes(scope="user", mode="strict", window="7d"),
        shoes(name="any_order", mode="unordered", window="90s", exclusions=[]),
    )
    strict, unordered = parse_funnels(text, "shop.yaml")
    assert (strict.scope, strict.mode, strict.window_ms, strict.needs_all_events) == (
        "user",
        "strict",
        7 * 24 * HOUR,
        True,
    )
    assert (unordered.mode, unordered.window_ms, unordered.exclusions) == ("unordered", 90_000, ())


def test_within_equal_to_the_window_is_allowed() -> None:
    funnel = only(
        document(shoes(window="30m", steps=["view_item", {"event": "purchase", "within": "30m"}]))
    )
    assert funnel.step_defs[1].within_ms == funnel.window_ms == 30 * MIN


def test_the_same_event_type_may_be_two_steps() -> None:
    funnel = only(document(shoes(steps=["view_item", "view_item", "purchase"])))
    assert funnel.steps_of_type == {"view_item": (0, 1), "purchase": (2,)}


def test_the_packaged_default_file_parses_to_the_two_documented_funnels() -> None:
    text = DEFAULT_FUNNELS.read_text("utf-8")
    for funnels in (parse_funnels(text, "streams/funnels.yaml"), load_funnels()):
        assert [(f.name, f.steps, f.scope, f.mode, f.window_ms) for f in funnels] == [
            (
                "shop",
                ("session_start", "view_item", "add_to_cart", "begin_checkout", "purchase"),
                "session",
                "ordered",
                HOUR,
            ),
            (
                "checkout",
                ("begin_checkout", "add_shipping_info", "add_payment_info", "purchase"),
                "session",
                "ordered",
                HOUR,
            ),
        ]
        assert all(not f.exclusions and f.breakdown is None for f in funnels)


# -- what is refused: the funnel --------------------------------------------------------------


def test_unknown_funnel_field() -> None:
    assert_names(refused(shoes(windw="1h")), "windw", "unknown field", "'window'")


@pytest.mark.parametrize("name", ["Shoes", "1shoes", "shoes-2", "x" * 64])
def test_bad_name(name: str) -> None:
    assert_names(refused(shoes(name=name)), "name", "lower_snake_case", funnel=name)


def test_missing_name_says_unnamed() -> None:
    message = refused({"steps": THREE})
    assert_names(message, "name", "lower_snake_case", funnel="<unnamed>")


@pytest.mark.parametrize("mode", ["sequential", "Ordered", None])
def test_bad_mode(mode: Any) -> None:
    assert_names(refused(shoes(mode=mode)), "mode", "'ordered', 'strict', 'unordered'")


@pytest.mark.parametrize("scope", ["visitor", "session ", None])
def test_bad_scope(scope: Any) -> None:
    assert_names(refused(shoes(scope=scope)), "scope", "'session' or 'user'")


@pytest.mark.parametrize(
    ("window", "hint"),
    [
        ("0m", "longer than zero"),
        ("soon", "like 30s, 30m, 1h or 7d"),
        (60, "like 30s, 30m, 1h or 7d"),
        ("1.5h", "like 30s, 30m, 1h or 7d"),
        ("-1h", "like 30s, 30m, 1h or 7d"),
    ],
)
def test_bad_window(window: Any, hint: str) -> None:
    assert_names(refused(shoes(window=window)), "window", hint)


def test_duplicate_names() -> None:
    message = refused(shoes(), shoes(steps=["view_item", "purchase"]))
    assert_names(message, "name", "must be unique", "rename")


@pytest.mark.parametrize("steps", [None, "view_item", ["view_item"], []])
def test_too_few_steps(steps: Any) -> None:
    assert_names(refused(shoes(steps=steps)), "steps", "at least two steps")


def test_too_many_steps() -> None:
    message = refused(shoes(steps=["view_item"] * (MAX_STEPS + 1)))
    assert_names(message, "steps", f"at most {MAX_STEPS} steps")


def test_funnel_that_is_not_a_mapping() -> None:
    message = refused(document("shoes"))  # type: ignore[arg-type]
    assert "shop.yaml" in message and "must be a mapping with name, steps" in message


@pytest.mark.parametrize(
    "text", ["funnels: {shoes: 1}", "- name: shoes", "funnels:\n  - [unclosed"]
)
def test_not_a_funnel_file(text: str) -> None:
    message = refused(text)
    assert message.startswith("shop.yaml: ")
    assert "'funnels:' list" in message or "fix the syntax" in message


# -- steps ------------------------------------------------------------------------------------


def test_unknown_step_event_suggests_custom() -> None:
    message = refused(shoes(steps=["view_item", "add_to_crat", "purchase"]))
    assert_names(message, "steps[2]", "no schema can produce event 'add_to_crat'")
    assert "custom:add_to_crat" in message and "add_to_cart" in message


def test_unknown_step_event_in_mapping_form() -> None:
    message = refused(shoes(steps=["view_item", {"event": "purchse"}]))
    assert_names(message, "steps[2].event", "custom:purchse")


@pytest.mark.parametrize(
    "event",
    [
        "custom:",
        "custom:size guide",
        "custom:1size",
        "custom:size-guide",
        "custom:" + "s" * 41,
        "custom:purchase",  # a built-in type is not a custom event
    ],
)
def test_invalid_custom_event_name(event: str) -> None:
    message = refused(shoes(steps=["view_item", {"event": event}]))
    assert_names(message, "steps[2].event", "not a valid custom event", "event_name")


def test_step_without_event() -> None:
    message = refused(shoes(steps=["view_item", {"label": "cart"}]))
    assert_names(message, "steps[2].event", "must name an event type")


def test_step_that_is_neither_a_type_nor_a_mapping() -> None:
    message = refused(shoes(steps=["view_item", ["add_to_cart"]]))
    assert_names(message, "steps[2]", "event type or a mapping with 'event'")


def test_unknown_step_field() -> None:
    message = refused(shoes(steps=["view_item", {"event": "purchase", "filter": {"coupon": "x"}}]))
    assert_names(message, "steps[2].filter", "unknown field", "'where'")


@pytest.mark.parametrize("label", ["add shoes", "", "x" * 65, 7])
def test_bad_label(label: Any) -> None:
    message = refused(shoes(steps=["view_item", {"event": "purchase", "label": label}]))
    assert_names(message, "steps[2].label", "1-64 letters")


def test_within_on_step_one() -> None:
    message = refused(shoes(steps=[{"event": "view_item", "within": "5m"}, "purchase"]))
    assert_names(message, "steps[1].within", "no previous step", "remove it")


def test_within_longer_than_the_window() -> None:
    message = refused(
        shoes(window="30m", steps=["view_item", {"event": "purchase", "within": "31m"}])
    )
    assert_names(message, "steps[2].within", "longer than the funnel's window", "lengthen")


def test_within_in_unordered_mode() -> None:
    message = refused(
        shoes(mode="unordered", steps=["view_item", {"event": "purchase", "within": "5m"}])
    )
    assert_names(message, "steps[2].within", "need an order", "ordered or strict")


@pytest.mark.parametrize("within", ["0m", "later"])
def test_bad_within_duration(within: str) -> None:
    message = refused(shoes(steps=["view_item", {"event": "purchase", "within": within}]))
    assert_names(message, "steps[2].within", "duration")


# -- where ------------------------------------------------------------------------------------


def where(condition: dict[str, Any], step: int = 2) -> str:
    steps: list[Any] = list(THREE)
    steps[step - 1] = {"event": THREE[step - 1], "where": condition}
    return refused(shoes(steps=steps))


def test_unknown_property() -> None:
    message = where({"item_categry": "shoes"})
    assert_names(message, "steps[2].where.item_categry", "unknown property", "properties.<key>")


@pytest.mark.parametrize("prop", ["properties.", "experiment:", "membership_tier"])
def test_property_shapes_that_are_not_properties(prop: str) -> None:
    assert_names(where({prop: "x"}), f"steps[2].where.{prop}", "unknown property")


def test_where_must_be_a_non_empty_mapping() -> None:
    assert_names(where({}), "steps[2].where", "map property names")
    message = refused(shoes(steps=["view_item", {"event": "purchase", "where": ["coupon"]}]))
    assert_names(message, "steps[2].where", "map property names")


def test_unknown_operator() -> None:
    message = where({"price_minor": {"ge": 5000}})
    assert_names(message, "steps[2].where.price_minor", "unknown operator 'ge'", "'gte'")


def test_two_operators_in_one_condition() -> None:
    message = where({"price_minor": {"gte": 1, "lte": 9}})
    assert_names(message, "steps[2].where.price_minor", "one operator")


@pytest.mark.parametrize(
    "bound",  # as written in the YAML file
    ["cheap", "''", "5_000", "' 5'", "1e", "Infinity", "NaN", ".inf", "-.inf", ".nan", "yes"],
)
def test_numeric_operator_with_a_non_number(bound: str) -> None:
    text = f"""
funnels:
- name: shoes
  steps: [view_item, {{event: add_to_cart, where: {{price_minor: {{gte: {bound}}}}}}}]
"""
    message = refused(text)
    assert_names(message, "steps[2].where.price_minor", "'gte' compares numbers", "like 5000")


def test_numeric_operator_on_an_experiment() -> None:
    message = where({"experiment:checkout_button": {"gt": 1}})
    assert_names(message, "steps[2].where.experiment:checkout_button", "use eq or in")


@pytest.mark.parametrize("value", ["cheap", "50.0", "050", "1e3", "+5", "5_000"])
def test_equality_on_an_integer_property_needs_an_integer(value: str) -> None:
    message = where({"price_minor": {"in": ["100", value]}})
    assert_names(message, "steps[2].where.price_minor", "is an integer", "like 5000")


@pytest.mark.parametrize("op", ["in", "not_in"])
@pytest.mark.parametrize("value", [[], "shoes", None])
def test_in_needs_a_non_empty_list(op: str, value: Any) -> None:
    message = where({"item_category": {op: value}})
    assert_names(message, "steps[2].where.item_category", f"'{op}' needs a non-empty list")


def test_bare_empty_list_is_an_empty_in() -> None:
    assert_names(where({"coupon": []}), "steps[2].where.coupon", "'in' needs a non-empty list")


@pytest.mark.parametrize("op", ["eq", "ne", "gt"])
@pytest.mark.parametrize("value", [None, ["a"], {"x": 1}])
def test_single_value_operators_need_one_value(op: str, value: Any) -> None:
    message = where({"coupon": {op: value}})
    assert_names(message, "steps[2].where.coupon", f"'{op}' needs one value")


def test_bare_null_is_an_eq_without_value() -> None:
    assert_names(where({"coupon": None}), "steps[2].where.coupon", "'eq' needs one value")


def test_where_on_step_one_is_checked_too() -> None:
    message = where({"coupn": "x"}, step=1)
    assert_names(message, "steps[1].where.coupn", "unknown property")


# -- exclusions -------------------------------------------------------------------------------


def test_exclusions_in_unordered_mode() -> None:
    message = refused(shoes(mode="unordered", exclusions=[{"event": "remove_from_cart"}]))
    assert_names(message, "exclusions", "need an order", "use mode ordered")


def test_exclusions_must_be_a_list() -> None:
    message = refused(shoes(exclusions={"event": "remove_from_cart"}))
    assert_names(message, "exclusions", "must be a list of {event, from_step, to_step}")


def test_exclusion_that_is_not_a_mapping() -> None:
    message = refused(shoes(exclusions=[{"event": "refund"}, "remove_from_cart"]))
    assert_names(message, "exclusions[2]", "must be a mapping")


@pytest.mark.parametrize(
    ("first", "last"),
    [(2, 2), (3, 2), (2, 4), (0, 2), (1, 0), (-1, 3)],
)
def test_exclusion_range_out_of_bounds(first: int, last: int) -> None:
    message = refused(
        shoes(exclusions=[{"event": "remove_from_cart", "from_step": first, "to_step": last}])
    )
    assert_names(message, "exclusions[1]", "out of bounds", "1 <= from_step < to_step <= 3")


@pytest.mark.parametrize("key", ["from_step", "to_step"])
@pytest.mark.parametrize("value", ["2", True, 1.5, None])
def test_exclusion_step_numbers_must_be_integers(key: str, value: Any) -> None:
    message = refused(shoes(exclusions=[{"event": "remove_from_cart", key: value}]))
    assert_names(message, f"exclusions[1].{key}", "must be a step number 1..3")


def test_exclusion_step_numbers_written_true_are_refused() -> None:
    text = """
funnels:
- name: shoes
  steps: [view_item, add_to_cart, purchase]
  exclusions: [{event: refund, from_step: 1, to_step: yes}]
"""
    assert_names(refused(text), "exclusions[1].to_step", "must be a step number 1..3")


@pytest.mark.parametrize(("first", "last"), [(1, 3), (2, 3), (1, 2)])
def test_exclusion_event_may_be_an_unfiltered_step_in_range(first: int, last: int) -> None:
    # "Viewed another item before buying": the attempt's own step events never exclude it
    # (docs/semantics.md section 3), only other events of that type between the steps.
    funnel = only(
        document(shoes(exclusions=[{"event": "add_to_cart", "from_step": first, "to_step": last}]))
    )
    assert funnel.exclusions[0].event == "add_to_cart"
    assert (funnel.exclusions[0].from_step, funnel.exclusions[0].to_step) == (first, last)


def test_exclusions_in_strict_mode_are_refused() -> None:
    message = refused(
        shoes(
            mode="strict", exclusions=[{"event": "remove_from_cart", "from_step": 1, "to_step": 2}]
        )
    )
    assert_names(message, "exclusions", "strict mode", "use mode ordered")


def test_exclusion_event_of_a_step_outside_the_range_or_with_a_filter_is_allowed() -> None:
    funnel = only(
        document(
            shoes(
                exclusions=[
                    {"event": "view_item", "from_step": 2, "to_step": 3},
                    {"event": "add_to_cart", "where": {"item_category": "socks"}},
                ]
            )
        )
    )
    assert [(x.event, x.from_step, x.to_step) for x in funnel.exclusions] == [
        ("view_item", 2, 3),
        ("add_to_cart", 1, 3),
    ]


def test_unknown_exclusion_field() -> None:
    message = refused(shoes(exclusions=[{"event": "refund", "between": [1, 2]}]))
    assert_names(message, "exclusions[1].between", "unknown field", "'from_step'")


def test_exclusion_event_is_checked_like_a_step_event() -> None:
    message = refused(shoes(exclusions=[{"event": "remove_from_crat"}]))
    assert_names(message, "exclusions[1].event", "custom:remove_from_crat")


def test_exclusion_where_is_checked_like_a_step_where() -> None:
    message = refused(shoes(exclusions=[{"event": "refund", "where": {"price": 1}}]))
    assert_names(message, "exclusions[1].where.price", "unknown property")


# -- breakdown --------------------------------------------------------------------------------


def test_breakdown_unknown_dimension() -> None:
    message = refused(shoes(breakdown={"dimensions": ["channel", "chanel"]}))
    assert_names(message, "breakdown.dimensions", "unknown dimension 'chanel'", "experiment:<name>")


@pytest.mark.parametrize("dims", [[], ["channel", "device", "country", "platform"], "channel"])
def test_breakdown_needs_one_to_three_dimensions(dims: Any) -> None:
    message = refused(shoes(breakdown={"dimensions": dims}))
    assert_names(message, "breakdown.dimensions", "1 to 3 dimensions")


@pytest.mark.parametrize("dims", [["channel", "channel"], ["tier", "properties.membership_tier"]])
def test_breakdown_repeated_dimension(dims: list[str]) -> None:
    message = refused(shoes(breakdown=dims))
    assert_names(message, "breakdown.dimensions", "listed twice")


@pytest.mark.parametrize("attribution", ["step:0", "step:4", "step:-1"])
def test_breakdown_attribution_step_out_of_range(attribution: str) -> None:
    message = refused(shoes(breakdown={"dimensions": ["channel"], "attribution": attribution}))
    assert_names(message, "breakdown.attribution", "step:N with N in 1..3", repr(attribution))


@pytest.mark.parametrize("attribution", ["first", "last_click", "step:two", "step 2", None])
def test_bad_breakdown_attribution(attribution: Any) -> None:
    message = refused(shoes(breakdown={"dimensions": ["channel"], "attribution": attribution}))
    assert_names(message, "breakdown.attribution", "first_touch, last_touch or step:N")


def test_unknown_breakdown_field() -> None:
    message = refused(shoes(breakdown={"dimensions": ["channel"], "attribute": "last_touch"}))
    assert_names(message, "breakdown.attribute", "unknown field", "attribution")


def test_breakdown_of_the_wrong_shape() -> None:
    message = refused(shoes(breakdown="channel"))
    assert_names(message, "breakdown", "list of dimensions or {dimensions, attribution}")


def test_every_refusal_comes_from_one_funnel_and_spares_the_rest() -> None:
    # The second funnel's error names it, not the first (valid) one.
    message = refused(shoes(), shoes(name="boots", mode="random"))
    assert_names(message, "mode", funnel="boots")
    assert "funnel shoes" not in message


@pytest.mark.parametrize(
    "value", ["1e1000000000000000000", "10e-1999999999999999998", "-1E+1000000000000000000"]
)
def test_a_property_beyond_the_decimal_range_is_not_a_number_and_stops_nothing(
    value: str,
) -> None:
    """Found by the compiled core's differential test: Decimal() raised on these, so one
    custom property value made every numeric filter that saw it raise in the worker."""
    from streams.funnels import as_number

    assert as_number(value) is None
    for op in ("gt", "gte", "lt", "lte"):
        assert PropertyFilter("properties.size", op, ("5",)).matches((value,)) is False  # type: ignore[arg-type]
    assert as_number("1e999999") is not None  # within the range: still a number


def test_an_unparsable_page_url_has_no_page_path_and_stops_nothing() -> None:
    """Found by the compiled core's differential test: urlsplit raised ValueError on an
    invalid IPv6 literal, so a funnel reading page_path raised in the worker."""
    from schemas.model import Event
    from schemas.properties import property_values

    def event(url: str) -> Event:
        return Event("clickstream", "page_view", "e", 1, 1, "a", "s", page_url=url)

    assert property_values(event("http://[x/"), "page_path") == ()
    assert property_values(event("https://shop.example/cart?x=1"), "page_path") == ("/cart",)
