//! The rows the intake emits: `streams/outputs/raw_events.py`, `late_events.py` and
//! `dead_letters.py` (`build_row`), one struct per table with the columns in the
//! TableSpec's order. `to_json` gives the row as the probe's JSON list (the Python tuple
//! with dicts as objects in insertion order).

use std::sync::Arc;

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

/// One row of `events_raw`: every decoded event as received (on time or late). The row
/// reads the event in place (shared with the visitor update that follows): copying its
/// ~45 values into a row of its own was a tenth of the intake (perf, BENCHMARKS.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEventRow {
    pub event: Arc<Event>,
    pub channel: String,
    pub is_late: bool,
    pub source_topic: Arc<str>,
    pub source_partition: i64,
    pub source_offset: i64,
    pub ingested_at: i64,
}

fn text(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
}

impl RawEventRow {
    /// `raw_events.build_row(event, channel, is_late, topic, partition, offset, now_ms)`.
    pub fn build(
        event: &Arc<Event>,
        channel: &str,
        is_late: bool,
        topic: &Arc<str>,
        partition: i64,
        offset: i64,
        now_ms: i64,
    ) -> RawEventRow {
        RawEventRow {
            event: Arc::clone(event),
            channel: channel.to_owned(),
            is_late,
            source_topic: Arc::clone(topic),
            source_partition: partition,
            source_offset: offset,
            ingested_at: now_ms,
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
        let event = &*self.event;
        let items = &event.items[..];
        // 1 when late, else 0; the version is 0 when late, else 1: an on-time copy
        // replaces a late copy of the same event.
        let (is_late, version) = if self.is_late { (1, 0) } else { (0, 1) };
        vec![
            Cell::Str(&event.event_id),
            Cell::Str(&event.event_type),
            Cell::Str(event.stream.as_str()),
            Cell::Int(event.event_time_ms),
            Cell::Int(event.sent_time_ms),
            Cell::Str(&event.anonymous_id),
            event.user_id.as_deref().map_or(Cell::Null, Cell::Str),
            Cell::Str(&event.session_id),
            Cell::Str(&event.platform),
            Cell::Str(&event.device),
            Cell::Str(&event.country),
            Cell::Str(&self.channel),
            Cell::Str(text(&event.utm_source)),
            Cell::Str(text(&event.utm_medium)),
            Cell::Str(text(&event.utm_campaign)),
            Cell::Str(text(&event.utm_content)),
            Cell::Str(text(&event.utm_term)),
            Cell::Str(text(&event.referrer)),
            Cell::Str(text(&event.page_url)),
            Cell::Str(text(&event.referral_code)),
            Cell::Pairs(&event.experiments),
            Cell::ItemStrs(items, |i| &i.item_id),
            Cell::ItemInts(items, |i| i.price_minor),
            Cell::ItemInts(items, |i| i.quantity),
            Cell::Str(text(&event.cart_id)),
            Cell::Str(text(&event.transaction_id)),
            Cell::Str(text(&event.currency)),
            event.value_minor.map_or(Cell::Null, Cell::Int),
            event.tax_minor.map_or(Cell::Null, Cell::Int),
            event.shipping_minor.map_or(Cell::Null, Cell::Int),
            event.discount_minor.map_or(Cell::Null, Cell::Int),
            Cell::Str(text(&event.coupon)),
            Cell::Str(text(&event.payment_type)),
            Cell::Str(text(&event.refund_reason)),
            Cell::Str(text(&event.payment_error_code)),
            Cell::Int(is_late),
            Cell::Str(&self.source_topic),
            Cell::Int(self.source_partition),
            Cell::Int(self.source_offset),
            Cell::Int(self.ingested_at),
            Cell::Int(version),
            Cell::Pairs(&event.properties),
            Cell::ItemStrs(items, |i| text(&i.coupon)),
            Cell::ItemInts(items, |i| i.discount_minor),
            Cell::Str(text(&event.search_term)),
            Cell::ItemStrs(items, |i| text(&i.item_name)),
            Cell::ItemStrs(items, |i| text(&i.item_category)),
            Cell::ItemStrs(items, |i| text(&i.item_brand)),
            Cell::ItemStrs(items, |i| text(&i.item_variant)),
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
