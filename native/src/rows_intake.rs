//! The rows the intake emits: `streams/outputs/raw_events.py`, `late_events.py` and
//! `dead_letters.py` (`build_row`), one struct per table with the columns in the
//! TableSpec's order. `to_json` gives the row as the probe's JSON list (the Python tuple
//! with dicts as objects in insertion order).

use crate::deadletter::{hex, DeadLetter};
use crate::event::Event;
use crate::json::Json;
use crate::row_binary::{Cell, RowCells};

/// `raw_events.TABLE.name`.
pub const RAW_EVENTS_TABLE: &str = "events_raw";
/// `late_events.TABLE.name`.
pub const LATE_EVENTS_TABLE: &str = "late_events";
/// `dead_letters.TABLE.name`.
pub const DEAD_LETTERS_TABLE: &str = "dead_letters";

/// `late_events.BEYOND_LATENESS`: older than its input's allowed lateness.
pub const BEYOND_LATENESS: &str = "beyond_lateness";
/// `late_events.WINDOW_CLOSED`: behind the partition's watermark.
pub const WINDOW_CLOSED: &str = "window_closed";

fn or_empty(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// One row of `events_raw`: every decoded event as received (on time or late).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEventRow {
    pub event_id: String,
    pub event_type: String,
    pub stream: String,
    pub event_time: i64,
    pub sent_time: i64,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub session_id: String,
    pub platform: String,
    pub device: String,
    pub country: String,
    pub channel: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_content: String,
    pub utm_term: String,
    pub referrer: String,
    pub page_url: String,
    pub referral_code: String,
    pub experiments: Vec<(String, String)>,
    pub item_ids: Vec<String>,
    pub item_prices_minor: Vec<i64>,
    pub item_quantities: Vec<i64>,
    pub cart_id: String,
    pub transaction_id: String,
    pub currency: String,
    pub value_minor: Option<i64>,
    pub tax_minor: Option<i64>,
    pub shipping_minor: Option<i64>,
    pub discount_minor: Option<i64>,
    pub coupon: String,
    pub payment_type: String,
    pub refund_reason: String,
    pub payment_error_code: String,
    /// 1 when late, else 0.
    pub is_late: i64,
    pub source_topic: String,
    pub source_partition: i64,
    pub source_offset: i64,
    pub ingested_at: i64,
    /// 0 when late, else 1: an on-time copy replaces a late copy of the same event.
    pub version: i64,
    pub properties: Vec<(String, String)>,
    pub item_coupons: Vec<String>,
    pub item_discounts_minor: Vec<i64>,
    pub search_term: String,
    pub item_names: Vec<String>,
    pub item_categories: Vec<String>,
    pub item_brands: Vec<String>,
    pub item_variants: Vec<String>,
}

impl RawEventRow {
    /// `raw_events.build_row(event, channel, is_late, topic, partition, offset, now_ms)`.
    pub fn build(
        event: &Event,
        channel: &str,
        is_late: bool,
        topic: &str,
        partition: i64,
        offset: i64,
        now_ms: i64,
    ) -> RawEventRow {
        let items = &event.items;
        RawEventRow {
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            stream: event.stream.as_str().to_owned(),
            event_time: event.event_time_ms,
            sent_time: event.sent_time_ms,
            anonymous_id: event.anonymous_id.clone(),
            user_id: event.user_id.clone(),
            session_id: event.session_id.clone(),
            platform: event.platform.clone(),
            device: event.device.clone(),
            country: event.country.clone(),
            channel: channel.to_owned(),
            utm_source: or_empty(&event.utm_source),
            utm_medium: or_empty(&event.utm_medium),
            utm_campaign: or_empty(&event.utm_campaign),
            utm_content: or_empty(&event.utm_content),
            utm_term: or_empty(&event.utm_term),
            referrer: or_empty(&event.referrer),
            page_url: or_empty(&event.page_url),
            referral_code: or_empty(&event.referral_code),
            experiments: event.experiments.clone(),
            item_ids: items.iter().map(|i| i.item_id.clone()).collect(),
            item_prices_minor: items.iter().map(|i| i.price_minor).collect(),
            item_quantities: items.iter().map(|i| i.quantity).collect(),
            cart_id: or_empty(&event.cart_id),
            transaction_id: or_empty(&event.transaction_id),
            currency: or_empty(&event.currency),
            value_minor: event.value_minor,
            tax_minor: event.tax_minor,
            shipping_minor: event.shipping_minor,
            discount_minor: event.discount_minor,
            coupon: or_empty(&event.coupon),
            payment_type: or_empty(&event.payment_type),
            refund_reason: or_empty(&event.refund_reason),
            payment_error_code: or_empty(&event.payment_error_code),
            is_late: if is_late { 1 } else { 0 },
            source_topic: topic.to_owned(),
            source_partition: partition,
            source_offset: offset,
            ingested_at: now_ms,
            version: if is_late { 0 } else { 1 },
            properties: event.properties.clone(),
            item_coupons: items.iter().map(|i| or_empty(&i.coupon)).collect(),
            item_discounts_minor: items.iter().map(|i| i.discount_minor).collect(),
            search_term: or_empty(&event.search_term),
            item_names: items.iter().map(|i| or_empty(&i.item_name)).collect(),
            item_categories: items.iter().map(|i| or_empty(&i.item_category)).collect(),
            item_brands: items.iter().map(|i| or_empty(&i.item_brand)).collect(),
            item_variants: items.iter().map(|i| or_empty(&i.item_variant)).collect(),
        }
    }

    /// The row as JSON, in column order (`cells`, the one list of its columns).
    pub fn to_json(&self) -> Json {
        Json::List(self.cells().into_iter().map(Cell::to_json).collect())
    }
}

impl RowCells for RawEventRow {
    /// The values of `to_json`, in the same order, borrowed.
    fn cells(&self) -> Vec<Cell<'_>> {
        vec![
            Cell::Str(&self.event_id),
            Cell::Str(&self.event_type),
            Cell::Str(&self.stream),
            Cell::Int(self.event_time),
            Cell::Int(self.sent_time),
            Cell::Str(&self.anonymous_id),
            self.user_id.as_deref().map_or(Cell::Null, Cell::Str),
            Cell::Str(&self.session_id),
            Cell::Str(&self.platform),
            Cell::Str(&self.device),
            Cell::Str(&self.country),
            Cell::Str(&self.channel),
            Cell::Str(&self.utm_source),
            Cell::Str(&self.utm_medium),
            Cell::Str(&self.utm_campaign),
            Cell::Str(&self.utm_content),
            Cell::Str(&self.utm_term),
            Cell::Str(&self.referrer),
            Cell::Str(&self.page_url),
            Cell::Str(&self.referral_code),
            Cell::Pairs(&self.experiments),
            Cell::Strs(&self.item_ids),
            Cell::Ints(&self.item_prices_minor),
            Cell::Ints(&self.item_quantities),
            Cell::Str(&self.cart_id),
            Cell::Str(&self.transaction_id),
            Cell::Str(&self.currency),
            self.value_minor.map_or(Cell::Null, Cell::Int),
            self.tax_minor.map_or(Cell::Null, Cell::Int),
            self.shipping_minor.map_or(Cell::Null, Cell::Int),
            self.discount_minor.map_or(Cell::Null, Cell::Int),
            Cell::Str(&self.coupon),
            Cell::Str(&self.payment_type),
            Cell::Str(&self.refund_reason),
            Cell::Str(&self.payment_error_code),
            Cell::Int(self.is_late),
            Cell::Str(&self.source_topic),
            Cell::Int(self.source_partition),
            Cell::Int(self.source_offset),
            Cell::Int(self.ingested_at),
            Cell::Int(self.version),
            Cell::Pairs(&self.properties),
            Cell::Strs(&self.item_coupons),
            Cell::Ints(&self.item_discounts_minor),
            Cell::Str(&self.search_term),
            Cell::Strs(&self.item_names),
            Cell::Strs(&self.item_categories),
            Cell::Strs(&self.item_brands),
            Cell::Strs(&self.item_variants),
        ]
    }
}

/// One row of `late_events`: an event not counted because its window had closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateEventRow {
    pub event_id: String,
    pub event_type: String,
    pub event_time: i64,
    pub watermark: i64,
    pub reason: String,
    pub anonymous_id: String,
    pub session_id: String,
    pub channel: String,
    pub source_topic: String,
    pub source_partition: i64,
    pub source_offset: i64,
    pub ingested_at: i64,
}

impl LateEventRow {
    /// `late_events.build_row(event, channel, watermark, reason, topic, partition, offset,
    /// now_ms)`.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        event: &Event,
        channel: &str,
        watermark: i64,
        reason: &str,
        topic: &str,
        partition: i64,
        offset: i64,
        now_ms: i64,
    ) -> LateEventRow {
        LateEventRow {
            event_id: event.event_id.clone(),
            event_type: event.event_type.clone(),
            event_time: event.event_time_ms,
            watermark,
            reason: reason.to_owned(),
            anonymous_id: event.anonymous_id.clone(),
            session_id: event.session_id.clone(),
            channel: channel.to_owned(),
            source_topic: topic.to_owned(),
            source_partition: partition,
            source_offset: offset,
            ingested_at: now_ms,
        }
    }

    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::s(&self.event_id),
            Json::s(&self.event_type),
            Json::Int(self.event_time),
            Json::Int(self.watermark),
            Json::s(&self.reason),
            Json::s(&self.anonymous_id),
            Json::s(&self.session_id),
            Json::s(&self.channel),
            Json::s(&self.source_topic),
            Json::Int(self.source_partition),
            Json::Int(self.source_offset),
            Json::Int(self.ingested_at),
        ])
    }
}

/// One row of `dead_letters` for a record that failed decoding or validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub source_topic: String,
    pub source_partition: i64,
    pub source_offset: i64,
    /// The key decoded as UTF-8 with U+FFFD for invalid bytes ('' without a key).
    pub record_key: String,
    /// The record as text when it is valid UTF-8, else as lowercase hex.
    pub raw: String,
    pub reason: String,
    pub detail: String,
    pub received_at: i64,
}

impl DeadLetterRow {
    /// `dead_letters.build_row(dl)`.
    pub fn build(dl: &DeadLetter) -> DeadLetterRow {
        let key: &[u8] = dl.key.as_deref().unwrap_or(&[]);
        DeadLetterRow {
            source_topic: dl.source_topic.clone(),
            source_partition: dl.source_partition,
            source_offset: dl.source_offset,
            // Python's "replace" handler and from_utf8_lossy both put one U+FFFD per
            // maximal invalid subsequence (the Unicode recommended practice).
            record_key: String::from_utf8_lossy(key).into_owned(),
            raw: match std::str::from_utf8(&dl.raw) {
                Ok(text) => text.to_owned(),
                Err(_) => hex(&dl.raw),
            },
            reason: dl.reason.clone(),
            detail: dl.detail.clone(),
            received_at: dl.received_at_ms,
        }
    }

    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::s(&self.source_topic),
            Json::Int(self.source_partition),
            Json::Int(self.source_offset),
            Json::s(&self.record_key),
            Json::s(&self.raw),
            Json::s(&self.reason),
            Json::s(&self.detail),
            Json::Int(self.received_at),
        ])
    }
}
