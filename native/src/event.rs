//! The decoded, validated form of an input event: the Rust twin of `schemas/model.py`.
//!
//! `validation::build_event` builds these from a decoded record; the per-event modules
//! read them. Money is integer minor units of `currency`, times are epoch milliseconds
//! (UTC), as in the Python dataclasses. Dicts (`experiments`, `properties`) are kept as
//! (key, value) lists in insertion order, as Python dicts keep it.

use crate::json::Json;

/// The input topics (`StreamKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    Clickstream,
    Cart,
    Orders,
}

impl Stream {
    pub const ALL: [Stream; 3] = [Stream::Clickstream, Stream::Cart, Stream::Orders];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Clickstream => "clickstream",
            Stream::Cart => "cart",
            Stream::Orders => "orders",
        }
    }

    pub fn parse(name: &str) -> Option<Stream> {
        match name {
            "clickstream" => Some(Stream::Clickstream),
            "cart" => Some(Stream::Cart),
            "orders" => Some(Stream::Orders),
            _ => None,
        }
    }

    /// `EVENTS_BY_STREAM[stream]`, sorted by code point (as Python's `sorted`).
    pub fn events(self) -> &'static [&'static str] {
        match self {
            Stream::Clickstream => CLICKSTREAM_EVENTS,
            Stream::Cart => CART_EVENTS,
            Stream::Orders => ORDER_EVENTS,
        }
    }

    /// Whether `event_type` is one of this stream's built-in event types.
    pub fn allows(self, event_type: &str) -> bool {
        self.events().binary_search(&event_type).is_ok()
    }
}

/// `CLICKSTREAM_EVENTS`, sorted.
pub const CLICKSTREAM_EVENTS: &[&str] = &[
    "add_to_wishlist",
    "login",
    "page_view",
    "review_submitted",
    "search",
    "select_item",
    "select_promotion",
    "session_start",
    "share",
    "sign_up",
    "view_item",
    "view_item_list",
    "view_promotion",
];
/// `CART_EVENTS`, sorted.
pub const CART_EVENTS: &[&str] = &[
    "add_payment_info",
    "add_shipping_info",
    "add_to_cart",
    "begin_checkout",
    "remove_from_cart",
    "view_cart",
];
/// `ORDER_EVENTS`, sorted.
pub const ORDER_EVENTS: &[&str] = &["order_cancelled", "payment_failed", "purchase", "refund"];

/// `PLATFORMS`, in the model's order (details list them in it).
pub const PLATFORMS: [&str; 3] = ["web", "app", "mini_program"];

/// `STREAM_OF_EVENT.get(event_type)`: the stream a built-in event type belongs on.
pub fn stream_of_event(event_type: &str) -> Option<Stream> {
    Stream::ALL.iter().copied().find(|s| s.allows(event_type))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub item_id: String,
    pub price_minor: i64,
    pub quantity: i64,
    pub item_name: Option<String>,
    pub item_category: Option<String>,
    pub item_brand: Option<String>,
    pub item_variant: Option<String>,
    pub coupon: Option<String>,
    pub discount_minor: i64,
}

impl Item {
    /// `Item(item_id, price_minor)` with the dataclass defaults for the rest.
    pub fn new(item_id: String, price_minor: i64) -> Item {
        Item {
            item_id,
            price_minor,
            quantity: 1,
            item_name: None,
            item_category: None,
            item_brand: None,
            item_variant: None,
            coupon: None,
            discount_minor: 0,
        }
    }

    /// The fields in the dataclass's order, as an object.
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("item_id".into(), Json::s(&self.item_id)),
            ("price_minor".into(), Json::Int(self.price_minor)),
            ("quantity".into(), Json::Int(self.quantity)),
            ("item_name".into(), opt_s(&self.item_name)),
            ("item_category".into(), opt_s(&self.item_category)),
            ("item_brand".into(), opt_s(&self.item_brand)),
            ("item_variant".into(), opt_s(&self.item_variant)),
            ("coupon".into(), opt_s(&self.coupon)),
            ("discount_minor".into(), Json::Int(self.discount_minor)),
        ])
    }
}

/// One input event after decoding and validation (any of the three topics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub stream: Stream,
    /// A built-in type, or `custom:<event_name>` for a custom event.
    pub event_type: String,
    pub event_id: String,
    pub event_time_ms: i64,
    pub sent_time_ms: i64,
    pub anonymous_id: String,
    pub session_id: String,
    pub user_id: Option<String>,
    pub platform: String,
    pub device: String,
    pub country: String,
    pub page_url: Option<String>,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_content: Option<String>,
    pub utm_term: Option<String>,
    /// Experiment name -> variant, in insertion order.
    pub experiments: Vec<(String, String)>,
    pub referral_code: Option<String>,
    pub search_term: Option<String>,
    // Commerce (cart and orders topics; empty/None elsewhere).
    pub items: Vec<Item>,
    pub cart_id: Option<String>,
    pub transaction_id: Option<String>,
    pub currency: Option<String>,
    pub value_minor: Option<i64>,
    pub tax_minor: Option<i64>,
    pub shipping_minor: Option<i64>,
    pub coupon: Option<String>,
    pub discount_minor: Option<i64>,
    pub payment_type: Option<String>,
    pub refund_reason: Option<String>,
    pub payment_error_code: Option<String>,
    /// Clickstream only (schema v3): custom event properties, in insertion order.
    pub properties: Vec<(String, String)>,
}

impl Event {
    /// `Event(stream, event_type, event_id, event_time_ms, sent_time_ms, anonymous_id,
    /// session_id)` with the dataclass defaults for the rest.
    pub fn new(
        stream: Stream,
        event_type: String,
        event_id: String,
        event_time_ms: i64,
        sent_time_ms: i64,
        anonymous_id: String,
        session_id: String,
    ) -> Event {
        Event {
            stream,
            event_type,
            event_id,
            event_time_ms,
            sent_time_ms,
            anonymous_id,
            session_id,
            user_id: None,
            platform: "web".into(),
            device: "desktop".into(),
            country: String::new(),
            page_url: None,
            referrer: None,
            utm_source: None,
            utm_medium: None,
            utm_campaign: None,
            utm_content: None,
            utm_term: None,
            experiments: Vec::new(),
            referral_code: None,
            search_term: None,
            items: Vec::new(),
            cart_id: None,
            transaction_id: None,
            currency: None,
            value_minor: None,
            tax_minor: None,
            shipping_minor: None,
            coupon: None,
            discount_minor: None,
            payment_type: None,
            refund_reason: None,
            payment_error_code: None,
            properties: Vec::new(),
        }
    }

    /// The fields in the dataclass's order, as an object (dicts as objects in their
    /// order, items as a list of objects).
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("stream".into(), Json::s(self.stream.as_str())),
            ("event_type".into(), Json::s(&self.event_type)),
            ("event_id".into(), Json::s(&self.event_id)),
            ("event_time_ms".into(), Json::Int(self.event_time_ms)),
            ("sent_time_ms".into(), Json::Int(self.sent_time_ms)),
            ("anonymous_id".into(), Json::s(&self.anonymous_id)),
            ("session_id".into(), Json::s(&self.session_id)),
            ("user_id".into(), opt_s(&self.user_id)),
            ("platform".into(), Json::s(&self.platform)),
            ("device".into(), Json::s(&self.device)),
            ("country".into(), Json::s(&self.country)),
            ("page_url".into(), opt_s(&self.page_url)),
            ("referrer".into(), opt_s(&self.referrer)),
            ("utm_source".into(), opt_s(&self.utm_source)),
            ("utm_medium".into(), opt_s(&self.utm_medium)),
            ("utm_campaign".into(), opt_s(&self.utm_campaign)),
            ("utm_content".into(), opt_s(&self.utm_content)),
            ("utm_term".into(), opt_s(&self.utm_term)),
            ("experiments".into(), pairs(&self.experiments)),
            ("referral_code".into(), opt_s(&self.referral_code)),
            ("search_term".into(), opt_s(&self.search_term)),
            (
                "items".into(),
                Json::List(self.items.iter().map(Item::to_json).collect()),
            ),
            ("cart_id".into(), opt_s(&self.cart_id)),
            ("transaction_id".into(), opt_s(&self.transaction_id)),
            ("currency".into(), opt_s(&self.currency)),
            ("value_minor".into(), Json::opt_i(self.value_minor)),
            ("tax_minor".into(), Json::opt_i(self.tax_minor)),
            ("shipping_minor".into(), Json::opt_i(self.shipping_minor)),
            ("coupon".into(), opt_s(&self.coupon)),
            ("discount_minor".into(), Json::opt_i(self.discount_minor)),
            ("payment_type".into(), opt_s(&self.payment_type)),
            ("refund_reason".into(), opt_s(&self.refund_reason)),
            ("payment_error_code".into(), opt_s(&self.payment_error_code)),
            ("properties".into(), pairs(&self.properties)),
        ])
    }
}

fn opt_s(value: &Option<String>) -> Json {
    value.as_deref().map_or(Json::Null, Json::s)
}

fn pairs(entries: &[(String, String)]) -> Json {
    Json::Object(
        entries
            .iter()
            .map(|(k, v)| (k.clone(), Json::s(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_are_sorted() {
        for stream in Stream::ALL {
            let events = stream.events();
            assert!(events.windows(2).all(|w| w[0] < w[1]), "{:?}", stream);
        }
        assert_eq!(stream_of_event("purchase"), Some(Stream::Orders));
        assert_eq!(stream_of_event("view_cart"), Some(Stream::Cart));
        assert_eq!(stream_of_event("custom"), None);
    }
}
