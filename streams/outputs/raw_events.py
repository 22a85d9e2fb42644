"""Raw events: every decoded event as received (on time or late), with its lineage."""

from __future__ import annotations

from schemas.model import Event
from sinks.tables import TableSpec
from streams.outputs.family import Row

TABLE = TableSpec(
    "events_raw",
    (
        "event_id",
        "event_type",
        "stream",
        "event_time",
        "sent_time",
        "anonymous_id",
        "user_id",
        "session_id",
        "platform",
        "device",
        "country",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "referrer",
        "page_url",
        "referral_code",
        "experiments",
        "item_ids",
        "item_prices_minor",
        "item_quantities",
        "cart_id",
        "transaction_id",
        "currency",
        "value_minor",
        "tax_minor",
        "shipping_minor",
        "discount_minor",
        "coupon",
        "payment_type",
        "refund_reason",
        "payment_error_code",
        "is_late",
        "source_topic",
        "source_partition",
        "source_offset",
        "ingested_at",
        "version",
        # Added by migration 0006 (ALTER TABLE ... ADD COLUMN puts it last).
        "properties",
        # Added by migration 0012: each item's coupon ('' when none) and per-unit
        # discount, index-aligned with item_ids (docs/semantics.md section 10a).
        "item_coupons",
        "item_discounts_minor",
        # Added by migration 0013 (forgetting a person, issue #17): the search term ('' when
        # none) and each item's name, category, brand and variant ('' when none),
        # index-aligned with item_ids, so that a stored event can be read back whole
        # (sinks/forget_store.py read_person_events).
        "search_term",
        "item_names",
        "item_categories",
        "item_brands",
        "item_variants",
    ),
    order_by=("anonymous_id", "event_id"),
    version_column="version",
)


def build_row(
    event: Event, channel: str, is_late: bool, topic: str, partition: int, offset: int, now_ms: int
) -> Row:
    # An on-time copy (version 1) replaces a late copy (version 0) of the same event.
    items = event.items
    if items:
        ids = [i.item_id for i in items]
        prices = [i.price_minor for i in items]
        quantities = [i.quantity for i in items]
        coupons = [i.coupon or "" for i in items]
        discounts = [i.discount_minor for i in items]
        names = [i.item_name or "" for i in items]
        categories = [i.item_category or "" for i in items]
        brands = [i.item_brand or "" for i in items]
        variants = [i.item_variant or "" for i in items]
    else:  # most events: nine empty lists, without nine comprehensions
        ids, prices, quantities, coupons, discounts = [], [], [], [], []
        names, categories, brands, variants = [], [], [], []
    return (
        event.event_id,
        event.event_type,
        event.stream,
        event.event_time_ms,
        event.sent_time_ms,
        event.anonymous_id,
        event.user_id,
        event.session_id,
        event.platform,
        event.device,
        event.country,
        channel,
        event.utm_source or "",
        event.utm_medium or "",
        event.utm_campaign or "",
        event.utm_content or "",
        event.utm_term or "",
        event.referrer or "",
        event.page_url or "",
        event.referral_code or "",
        dict(event.experiments),
        ids,
        prices,
        quantities,
        event.cart_id or "",
        event.transaction_id or "",
        event.currency or "",
        event.value_minor,
        event.tax_minor,
        event.shipping_minor,
        event.discount_minor,
        event.coupon or "",
        event.payment_type or "",
        event.refund_reason or "",
        event.payment_error_code or "",
        1 if is_late else 0,
        topic,
        partition,
        offset,
        now_ms,
        0 if is_late else 1,
        dict(event.properties),
        coupons,
        discounts,
        event.search_term or "",
        names,
        categories,
        brands,
        variants,
    )
