"""Event properties that funnel step filters, exclusions and breakdowns may name.

A property name means the same thing to the worker, the simulator's truth and the docs
(docs/semantics.md section 3): this module is the contract. A property has zero or more
string values on an event; an item-level property (``item_category``) has one value per
item, and a filter on it matches when any item matches.

Names:

* built-in fields: see :data:`BUILTIN_PROPERTIES`;
* ``properties.<key>``: a custom property sent in the clickstream ``properties`` map;
* ``experiment:<name>``: the event's variant of experiment ``<name>`` (breakdowns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from schemas.custom import CUSTOM_EVENT_NAME
from schemas.model import STREAM_OF_EVENT, Event

CUSTOM_PREFIX: Final = "properties."
EXPERIMENT_PREFIX: Final = "experiment:"
CUSTOM_EVENT_PREFIX: Final = "custom:"


def event_type_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an event a definition names (a built-in type or
    ``custom:<event_name>``), with the fix; None when it is fine. Funnel and experiment
    files share it, so both explain a bad name the same way."""
    if value.startswith(CUSTOM_EVENT_PREFIX):
        custom = value[len(CUSTOM_EVENT_PREFIX) :]
        if not CUSTOM_EVENT_NAME.fullmatch(custom) or custom in STREAM_OF_EVENT:
            return (
                f"{value!r} is not a valid custom event: after 'custom:' write the name "
                "producers send in event_name (a letter, then letters, digits or _, at "
                "most 40; not a built-in type)"
            )
        return None
    if value not in STREAM_OF_EVENT:
        return (
            f"no schema can produce event {value!r}; use a built-in type "
            f"({', '.join(sorted(STREAM_OF_EVENT))}) or a custom event as custom:{value}"
        )
    return None


def _one(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    return (str(value),)


def _page_path(event: Event) -> tuple[str, ...]:
    if not event.page_url:
        return ()
    try:
        return (urlsplit(event.page_url).path or "/",)
    except ValueError:  # an unparsable page_url (an invalid IPv6 literal) has no path
        return ()


def _coupons(event: Event) -> tuple[str, ...]:
    found = [event.coupon] if event.coupon else []
    found += [item.coupon for item in event.items if item.coupon]
    return tuple(dict.fromkeys(found))


Extractor = Callable[[Event], tuple[str, ...]]

BUILTIN_PROPERTIES: Final[dict[str, Extractor]] = {
    "page_path": _page_path,
    "page_url": lambda e: _one(e.page_url),
    "referrer": lambda e: _one(e.referrer),
    "search_term": lambda e: _one(e.search_term),
    "platform": lambda e: _one(e.platform),
    "device": lambda e: _one(e.device),
    "country": lambda e: _one(e.country),
    "utm_source": lambda e: _one(e.utm_source),
    "utm_medium": lambda e: _one(e.utm_medium),
    "utm_campaign": lambda e: _one(e.utm_campaign),
    "utm_content": lambda e: _one(e.utm_content),
    "utm_term": lambda e: _one(e.utm_term),
    "referral_code": lambda e: _one(e.referral_code),
    "coupon": _coupons,
    "currency": lambda e: _one(e.currency),
    "value_minor": lambda e: _one(e.value_minor),
    "payment_type": lambda e: _one(e.payment_type),
    "item_id": lambda e: tuple(i.item_id for i in e.items),
    "item_name": lambda e: tuple(i.item_name for i in e.items if i.item_name),
    "item_category": lambda e: tuple(i.item_category for i in e.items if i.item_category),
    "item_brand": lambda e: tuple(i.item_brand for i in e.items if i.item_brand),
    "price_minor": lambda e: tuple(str(i.price_minor) for i in e.items),
    "quantity": lambda e: tuple(str(i.quantity) for i in e.items),
}
# Properties whose values are integers, so numeric comparisons are exact.
NUMERIC_PROPERTIES: Final = frozenset({"value_minor", "price_minor", "quantity"})


def is_known_property(name: str) -> bool:
    """A name a filter or breakdown may use (custom keys are checked for shape only)."""
    if name in BUILTIN_PROPERTIES:
        return True
    for prefix in (CUSTOM_PREFIX, EXPERIMENT_PREFIX):
        if name.startswith(prefix) and len(name) > len(prefix):
            return True
    return False


def property_values(event: Event, name: str) -> tuple[str, ...]:
    """The values of property ``name`` on ``event`` (empty when it has none)."""
    extractor = BUILTIN_PROPERTIES.get(name)
    if extractor is not None:
        return extractor(event)
    if name.startswith(CUSTOM_PREFIX):
        return _one(event.properties.get(name[len(CUSTOM_PREFIX) :]))
    if name.startswith(EXPERIMENT_PREFIX):
        return _one(event.experiments.get(name[len(EXPERIMENT_PREFIX) :]))
    raise KeyError(name)
