"""What one visitor does in one visit: the events of a session, in event-time order.

Every event of a session carries the session's campaign parameters, referrer, device,
platform and country (trackers copy them). The funnel is
session_start -> view_item -> add_to_cart -> begin_checkout -> add_shipping_info ->
add_payment_info -> purchase, interleaved with browsing. Probabilities are base rates
times the traffic source's multipliers (:class:`simulator.catalog.Funnel`).

Custom events and properties (clickstream schema v3): a visitor looking at clothes or
shoes may open the size guide, ``custom:size_guide_opened`` with properties
``membership_tier`` (gold / silver / none) and ``size_system`` (the country's sizes);
when the visitor goes on to add the product to the cart, the size guide comes between
the view_item and the add_to_cart. Page views sent by the app and the mini program carry
``page_type`` and ``membership_tier``. These draws come from a second random stream of
the visit (seeded by its session id), so every other draw of the run stays the same.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Final, cast

from schemas.model import STREAM_OF_EVENT, Event, Item, StreamKind
from schemas.properties import CUSTOM_EVENT_PREFIX
from simulator.catalog import (
    CHECKOUT_BUTTON,
    COUPONS,
    PAYMENT_ERRORS,
    PRODUCTS,
    REFUND_REASONS,
    SEARCH_TERMS,
    Country,
    Product,
    TrafficSource,
)
from simulator.scenarios import ScenarioEffects

# Base step probabilities (before the source's multipliers).
P_VIEW: Final = 0.62
P_CART: Final = 0.28
P_CUSTOMER_CART: Final = 1.6  # customers come back to buy again: more of them add to cart
P_CHECKOUT: Final = 0.55
P_COMPLETE: Final = 0.55
P_PAYMENT_RETRY: Final = 0.6
MAX_PAYMENT_ATTEMPTS: Final = 3
P_SAME_MS_LANDING: Final = 0.05  # deep link: session_start and view_item in one millisecond
P_BUY_NOW: Final = 0.05  # "buy now": add_to_cart and begin_checkout in one millisecond
P_SECOND_CART: Final = 0.3  # re-enters the funnel: another view, another add_to_cart
P_RESUMED_SESSION: Final = 0.02  # the app keeps the session id across a long pause
P_CANCEL: Final = 0.03
P_REFUND: Final = 0.07
# Custom events: the size guide of clothes and shoes, opened by a share of the visitors
# who view one (more of those who go on to add it to the cart).
SIZE_GUIDE_EVENT: Final = CUSTOM_EVENT_PREFIX + "size_guide_opened"
SIZED_CATEGORIES: Final = ("Apparel/", "Shoes/")
P_SIZE_GUIDE_BEFORE_CART: Final = 0.4
P_SIZE_GUIDE_NO_CART: Final = 0.15
# Membership tier of a visitor (a property; "none": not a member).
MEMBERSHIP_TIERS: Final = (("gold", 0.1), ("silver", 0.2), ("none", 0.7))
_SIZE_SYSTEMS: Final = {"US": "us", "GB": "uk", "JP": "jp", "KR": "kr", "CN": "cn", "HK": "cn"}
# Trackers that send page_view properties (the web tracker does not yet).
PROPERTY_PLATFORMS: Final = frozenset({"app", "mini_program"})
_MINUTE_MS: Final = 60_000
_DAY_MS: Final = 86_400_000


@dataclass(slots=True)
class Visitor:
    """A person on one device: ``anonymous_id`` is stable, ``user_id`` appears at sign-up."""

    index: int
    anonymous_id: str
    country: Country
    platform: str
    device: str
    experiments: dict[str, str]
    acquisition: TrafficSource
    user_id: str | None = None
    orders: int = 0
    sessions: int = 0


@dataclass(slots=True)
class SessionOutcome:
    """What the visit produced: its events (time order) and what the visitor did."""

    events: list[Event] = field(default_factory=list)
    carted: bool = False
    purchased: bool = False
    end_ms: int = 0


def completion_probability(visitor: Visitor, source: TrafficSource, lift: float) -> float:
    """P(the visitor means to pay | begin_checkout). Variant B of checkout_button
    multiplies it by exactly (1 + lift): the experiment's true effect."""
    probability = P_COMPLETE * source.funnel.complete * (1.1 if visitor.orders else 1.0)
    if visitor.experiments.get(CHECKOUT_BUTTON.name) == CHECKOUT_BUTTON.variants[1]:
        probability *= 1.0 + lift
    return probability


def membership_tier(visitor: Visitor) -> str:
    """The visitor's loyalty tier (``none``: not a member), drawn once per visitor; the
    shop remembers it on the device, signed in or not."""
    roll = random.Random(f"tier:{visitor.anonymous_id}").random()
    for tier, share in MEMBERSHIP_TIERS:
        if roll < share:
            return tier
        roll -= share
    return "none"


def size_system(country: str) -> str:
    return _SIZE_SYSTEMS.get(country, "eu")


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (reproducible, unlike ``uuid.uuid4``)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def short_id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}{rng.getrandbits(64):016x}"


def gap_ms(rng: random.Random, median_s: float, cap_s: float = 600.0) -> int:
    """Think time between two actions: log-normal, capped so a visit stays one session."""
    seconds = min(cap_s, rng.lognormvariate(math.log(median_s), 0.8))
    return max(1, int(seconds * 1000))


@dataclass(slots=True)
class _CartLine:
    product: Product
    variant: str
    quantity: int


class SessionWriter:
    """Builds the events of one session; copies the session context onto each event."""

    def __init__(
        self,
        visitor: Visitor,
        source: TrafficSource,
        session_id: str,
        rng: random.Random,
    ) -> None:
        self.visitor = visitor
        self.source = source
        self.session_id = session_id
        self.rng = rng
        self.user_id = visitor.user_id
        self.events: list[Event] = []
        country = visitor.country
        self.currency = country.currency
        self.minor_per_fen = country.minor_per_fen
        self._url_base = {
            "web": "https://shop.example.com",
            "app": "app://shop",
            "mini_program": "mp://shop/pages",
        }[visitor.platform]

    def price(self, product: Product) -> int:
        return max(1, round(product.price_fen * self.minor_per_fen))

    def item(self, line: _CartLine, coupon: str | None = None, discount: int = 0) -> Item:
        product = line.product
        return Item(
            item_id=product.item_id,
            price_minor=self.price(product),
            quantity=line.quantity,
            item_name=product.name,
            item_category=product.category,
            item_brand=product.brand,
            item_variant=line.variant,
            coupon=coupon,
            discount_minor=discount,
        )

    def emit(self, event_type: str, time_ms: int, page: str, **commerce: object) -> Event:
        return self.emit_with_id(new_uuid(self.rng), event_type, time_ms, page, commerce)

    def emit_with_id(
        self, event_id: str, event_type: str, time_ms: int, page: str, commerce: dict[str, object]
    ) -> Event:
        """One event of the session (``commerce``: further Event fields, e.g. properties)."""
        source = self.source
        visitor = self.visitor
        if event_type.startswith(CUSTOM_EVENT_PREFIX):
            stream: StreamKind = "clickstream"
        else:
            stream = cast(StreamKind, STREAM_OF_EVENT[event_type])
            if event_type == "page_view" and visitor.platform in PROPERTY_PLATFORMS:
                commerce["properties"] = {
                    "page_type": page.split("/", 1)[0],
                    "membership_tier": membership_tier(visitor),
                }
        event = Event(
            stream=stream,
            event_type=event_type,
            event_id=event_id,
            event_time_ms=time_ms,
            sent_time_ms=time_ms,
            anonymous_id=visitor.anonymous_id,
            session_id=self.session_id,
            user_id=self.user_id,
            platform=visitor.platform,
            device=visitor.device,
            country=visitor.country.code,
            page_url=f"{self._url_base}/{page}",
            referrer=source.referrer,
            utm_source=source.utm_source,
            utm_medium=source.utm_medium,
            utm_campaign=source.utm_campaign,
            utm_content=source.utm_content,
            utm_term=source.utm_term,
            experiments=visitor.experiments,
            **commerce,  # type: ignore[arg-type]
        )
        self.events.append(event)
        return event


class SessionSimulator:
    """Runs one visit. ``rng`` is private to the visit, so scenarios and knobs elsewhere
    never shift another visit's random draws."""

    def __init__(
        self,
        visitor: Visitor,
        source: TrafficSource,
        start_ms: int,
        rng: random.Random,
        effects: ScenarioEffects,
        end_of_run_ms: int,
        checkout_lift: float,
    ) -> None:
        self.rng = rng
        self.effects = effects
        self.end_of_run_ms = end_of_run_ms
        # The configured lift of checkout_button B, unless an experiment scenario sets it.
        self.checkout_lift = effects.checkout_lift(checkout_lift)
        self.t = start_ms
        self.w = SessionWriter(visitor, source, short_id(rng, "s-"), rng)
        self.cart: list[_CartLine] = []
        self.cart_id = short_id(rng, "cart-")
        self.outcome = SessionOutcome()
        # Custom events draw from their own stream, so the main one is the same with or
        # without them (and every other event of the run keeps its time and id).
        self.extra = random.Random(f"custom:{self.w.session_id}")

    # -- helpers ---------------------------------------------------------------------------

    def _advance(self, median_s: float) -> int:
        self.t += gap_ms(self.rng, median_s)
        return self.t

    def _chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def _cart_items(self) -> tuple[Item, ...]:
        return tuple(self.w.item(line) for line in self.cart)

    def _cart_value(self) -> int:
        return sum(self.w.price(line.product) * line.quantity for line in self.cart)

    def _view(self, product: Product, same_ms: bool = False) -> None:
        if not same_ms:
            self._advance(12)
        line = _CartLine(product, self.rng.choice(product.variants), 1)
        self.w.emit(
            "view_item",
            self.t,
            f"product/{product.item_id}",
            items=(self.w.item(line),),
            currency=self.w.currency,
            value_minor=self.w.price(product),
        )

    def _size_guide(self, product: Product, time_ms: int) -> None:
        visitor = self.w.visitor
        self.w.emit_with_id(
            new_uuid(self.extra),
            SIZE_GUIDE_EVENT,
            time_ms,
            f"product/{product.item_id}/size-guide",
            {
                "properties": {
                    "membership_tier": membership_tier(visitor),
                    "size_system": size_system(visitor.country.code),
                }
            },
        )

    def _add_to_cart(self, product: Product) -> None:
        viewed_ms = self.t
        self._advance(20)
        if (
            product.category.startswith(SIZED_CATEGORIES)
            and self.t - viewed_ms >= 2
            and self.extra.random() < P_SIZE_GUIDE_BEFORE_CART
        ):
            # Strictly between the view and the add_to_cart, which keep their times.
            self._size_guide(product, self.extra.randint(viewed_ms + 1, self.t - 1))
        line = _CartLine(
            product, self.rng.choice(product.variants), self.rng.choice((1, 1, 1, 2, 3))
        )
        self.cart.append(line)
        self.w.emit(
            "add_to_cart",
            self.t,
            f"product/{product.item_id}",
            items=(self.w.item(line),),
            cart_id=self.cart_id,
            currency=self.w.currency,
            value_minor=self.w.price(product) * line.quantity,
        )

    def _commerce(self) -> dict[str, object]:
        return {
            "items": self._cart_items(),
            "cart_id": self.cart_id,
            "currency": self.w.currency,
            "value_minor": self._cart_value(),
        }

    # -- the visit ---------------------------------------------------------------------------

    def run(self) -> SessionOutcome:
        rng = self.rng
        visitor = self.w.visitor
        source = self.w.source
        funnel = source.funnel
        returning = visitor.sessions > 0
        if not returning:
            # Before the visitor's first event: experiment-srm breaks the split.
            self.effects.assign_variants(visitor.anonymous_id, visitor.experiments)
        if visitor.platform in ("app", "mini_program") and visitor.user_id is not None:
            self.w.user_id = visitor.user_id  # apps keep you logged in
        landing = rng.choice(PRODUCTS)
        deep_link = self._chance(source.deep_link)
        self.w.emit(
            "session_start",
            self.t,
            f"product/{landing.item_id}" if deep_link else "home",
            referral_code=short_id(rng, "ref-") if self._chance(0.01) else None,
        )
        if visitor.platform == "mini_program" and self.w.user_id is None and self._chance(0.5):
            self._sign_up()  # WeChat login on first open
            deep_link = False
        views_items = self._chance(min(0.97, P_VIEW * funnel.view * (1.1 if returning else 1.0)))
        if deep_link and views_items:
            self._view(landing, same_ms=self._chance(P_SAME_MS_LANDING))
        else:
            self._advance(3)
            self.w.emit("page_view", self.t, "home")
        self._browse(rng.randint(0, 3))
        if not views_items:
            self._browse(rng.randint(0, 2))
            return self._finish()

        product = landing if deep_link else rng.choice(PRODUCTS)
        if not deep_link:
            self._view(product)
        for _ in range(rng.randint(0, 2)):
            self._browse(1)
            self._view(rng.choice(PRODUCTS))
        p_cart = min(0.95, P_CART * funnel.cart * (P_CUSTOMER_CART if visitor.orders else 1.0))
        if not self._chance(p_cart):
            if (
                product.category.startswith(SIZED_CATEGORIES)
                and self.extra.random() < P_SIZE_GUIDE_NO_CART
            ):
                self.t += gap_ms(self.extra, 8)
                self._size_guide(product, self.t)
            self._browse(rng.randint(0, 2))
            return self._finish()
        self._add_to_cart(product)
        self.outcome.carted = True
        if self._chance(P_SECOND_CART):
            second = rng.choice(PRODUCTS)
            self._view(second)
            self._add_to_cart(second)
        if self._chance(0.1) and len(self.cart) > 1:
            self._advance(15)
            removed = self.cart.pop()
            self.w.emit(
                "remove_from_cart",
                self.t,
                "cart",
                items=(self.w.item(removed),),
                cart_id=self.cart_id,
                currency=self.w.currency,
                value_minor=self.w.price(removed.product) * removed.quantity,
            )
        if self._chance(0.5):
            self._advance(10)
            self.w.emit("view_cart", self.t, "cart", **self._commerce())
        if not self._chance(min(0.95, P_CHECKOUT * funnel.checkout)):
            self._browse(rng.randint(0, 2))
            return self._finish()  # cart abandoned
        self._checkout(returning)
        return self._finish()

    def _browse(self, steps: int) -> None:
        rng = self.rng
        for _ in range(steps):
            self._advance(15)
            roll = rng.random()
            product = rng.choice(PRODUCTS)
            if roll < 0.35:
                self.w.emit("page_view", self.t, f"category/{product.category.lower()}")
            elif roll < 0.55:
                listed = rng.sample(PRODUCTS, 4)
                self.w.emit(
                    "view_item_list",
                    self.t,
                    f"category/{product.category.lower()}",
                    items=tuple(self.w.item(_CartLine(p, p.variants[0], 1)) for p in listed),
                    currency=self.w.currency,
                )
            elif roll < 0.70:
                self.w.emit("search", self.t, "search", search_term=rng.choice(SEARCH_TERMS))
            elif roll < 0.80:
                self.w.emit("view_promotion", self.t, "home")
                if self._chance(0.4):
                    self._advance(5)
                    self.w.emit("select_promotion", self.t, "promo/double11")
            elif roll < 0.87:
                self.w.emit(
                    "select_item",
                    self.t,
                    f"category/{product.category.lower()}",
                    items=(self.w.item(_CartLine(product, product.variants[0], 1)),),
                    currency=self.w.currency,
                )
            elif roll < 0.93:
                self.w.emit(
                    "add_to_wishlist",
                    self.t,
                    f"product/{product.item_id}",
                    items=(self.w.item(_CartLine(product, product.variants[0], 1)),),
                    currency=self.w.currency,
                )
            elif roll < 0.97 or not self.w.visitor.orders:
                self.w.emit("share", self.t, f"product/{product.item_id}")
            else:
                self.w.emit("review_submitted", self.t, f"product/{product.item_id}")

    def _sign_up(self) -> None:
        self._advance(25)
        user_id = short_id(self.rng, "u-")
        self.w.visitor.user_id = user_id
        self.w.user_id = user_id
        self.w.emit("sign_up", self.t, "account/sign_up")

    def _login(self) -> None:
        self._advance(15)
        self.w.user_id = self.w.visitor.user_id
        self.w.emit("login", self.t, "account/login")

    def _checkout(self, returning: bool) -> None:
        rng = self.rng
        visitor = self.w.visitor
        if self._chance(P_RESUMED_SESSION):
            # Same session id after more than the session timeout: the app kept it.
            self.t += rng.randint(31 * _MINUTE_MS, 120 * _MINUTE_MS)
        if self.w.user_id is None:
            if visitor.user_id is not None:
                if self._chance(0.7):
                    self._login()
            elif self._chance(0.55):
                self._sign_up()
        buy_now = self.w.events[-1].event_type == "add_to_cart" and self._chance(P_BUY_NOW)
        if not buy_now:
            self._advance(20)
        self.w.emit("begin_checkout", self.t, "checkout", **self._commerce())

        p_complete = completion_probability(visitor, self.w.source, self.checkout_lift)
        intends_to_pay = self._chance(p_complete)
        drop_roll = rng.random()
        if not intends_to_pay and drop_roll < 0.45:
            return
        self._advance(30)
        self.w.emit("add_shipping_info", self.t, "checkout/shipping", **self._commerce())
        if not intends_to_pay and drop_roll < 0.8:
            return
        payment_type = (
            "wechat_pay"  # the only way to pay inside a WeChat mini program
            if visitor.platform == "mini_program"
            else rng.choice(visitor.country.payment_types)
        )
        self._advance(25)
        self.w.emit(
            "add_payment_info",
            self.t,
            "checkout/payment",
            payment_type=payment_type,
            **self._commerce(),
        )
        if intends_to_pay:
            self._pay(payment_type)

    def _pay(self, payment_type: str) -> None:
        rng = self.rng
        order = self._price_order()
        transaction_id = short_id(rng, "T-")
        for attempt in range(MAX_PAYMENT_ATTEMPTS):
            self._advance(8)
            failure = self.effects.payment_failure_probability(self.t, self.w.visitor.experiments)
            if not self._chance(failure):
                self._purchase(transaction_id, payment_type, order)
                return
            self.w.emit(
                "payment_failed",
                self.t,
                "checkout/payment",
                transaction_id=transaction_id,
                currency=self.w.currency,
                value_minor=order.value,
                payment_type=payment_type,
                payment_error_code=rng.choice(PAYMENT_ERRORS),
            )
            retry = P_PAYMENT_RETRY * self.effects.retry_factor(self.t)
            if attempt + 1 == MAX_PAYMENT_ATTEMPTS or not self._chance(retry):
                return

    def _price_order(self) -> _Order:
        rng = self.rng
        visitor = self.w.visitor
        items = []
        subtotal = 0
        for line in self.cart:
            price = self.w.price(line.product)
            roll = rng.random()
            if roll < 0.1:
                coupon, discount = COUPONS["item"], price * 15 // 100
            elif roll < 0.25:
                coupon, discount = None, price // 10
            else:
                coupon, discount = None, 0
            items.append(self.w.item(line, coupon, discount))
            subtotal += (price - discount) * line.quantity
        order_coupon: str | None = None
        order_discount = 0
        if visitor.orders == 0 and visitor.user_id is not None and self._chance(0.5):
            order_coupon, order_discount = COUPONS["first"], subtotal // 10
        elif self._chance(0.12) and subtotal > round(20_000 * self.w.minor_per_fen):
            order_coupon, order_discount = COUPONS["seasonal"], round(3000 * self.w.minor_per_fen)
        free_over = round(9_900 * self.w.minor_per_fen)
        shipping = 0 if subtotal >= free_over else round(1_000 * self.w.minor_per_fen)
        tax = round((subtotal - order_discount) * visitor.country.tax_rate)
        return _Order(
            items=tuple(items),
            value=subtotal - order_discount + shipping + tax,
            tax=tax,
            shipping=shipping,
            coupon=order_coupon,
            discount=order_discount,
        )

    def _purchase(self, transaction_id: str, payment_type: str, order: _Order) -> None:
        purchase = self.w.emit(
            "purchase",
            self.t,
            "checkout/done",
            items=order.items,
            cart_id=self.cart_id,
            transaction_id=transaction_id,
            currency=self.w.currency,
            value_minor=order.value,
            tax_minor=order.tax,
            shipping_minor=order.shipping,
            coupon=order.coupon,
            discount_minor=order.discount or None,
            payment_type=payment_type,
        )
        self.outcome.purchased = True
        self.w.visitor.orders += 1
        self._advance(5)
        self.w.emit("page_view", self.t, "checkout/confirmation")
        if self._chance(P_CANCEL):
            self._advance(240)
            self.w.emit(
                "order_cancelled",
                self.t,
                "account/orders",
                transaction_id=transaction_id,
                currency=self.w.currency,
                value_minor=order.value,
            )
        elif self._chance(P_REFUND):
            self._refund_later(purchase, order)

    def _refund_later(self, purchase: Event, order: _Order) -> None:
        """A refund days later from the order backend: same visitor and attribution, its
        own session id (it is not part of a browsing session)."""
        rng = self.rng
        refund_time = purchase.event_time_ms + rng.randint(_DAY_MS, 12 * _DAY_MS)
        if refund_time >= self.end_of_run_ms:
            return
        partial = self._chance(0.3) and len(order.items) > 1
        refunded = order.items[:1] if partial else order.items
        amount = (
            sum((i.price_minor - i.discount_minor) * i.quantity for i in refunded)
            if partial
            else order.value
        )
        refund = Event(
            stream="orders",
            event_type="refund",
            event_id=new_uuid(rng),
            event_time_ms=refund_time,
            sent_time_ms=refund_time,
            anonymous_id=purchase.anonymous_id,
            session_id=short_id(rng, "srv-"),
            user_id=purchase.user_id,
            platform=purchase.platform,
            device=purchase.device,
            country=purchase.country,
            page_url=None,
            referrer=purchase.referrer,
            utm_source=purchase.utm_source,
            utm_medium=purchase.utm_medium,
            utm_campaign=purchase.utm_campaign,
            utm_content=purchase.utm_content,
            utm_term=purchase.utm_term,
            experiments=purchase.experiments,
            items=refunded,
            transaction_id=purchase.transaction_id,
            currency=purchase.currency,
            value_minor=amount,
            refund_reason=rng.choice(REFUND_REASONS),
        )
        self.w.events.append(refund)

    def _finish(self) -> SessionOutcome:
        if self._chance(0.3):
            self._advance(20)
            self.w.emit("page_view", self.t, "home")
        self.outcome.events = self.w.events
        self.outcome.end_ms = self.t
        self.w.visitor.sessions += 1
        return self.outcome


@dataclass(frozen=True, slots=True)
class _Order:
    items: tuple[Item, ...]
    value: int
    tax: int
    shipping: int
    coupon: str | None
    discount: int
