//! Validate a decoded record and build the `Event` (hot path): the Rust twin of
//! `schemas/validation.py` (with the parts of `schemas/custom.py`, `schemas/iso4217.py`,
//! `schemas/properties.py` and `schemas/reasons.py` it uses).
//!
//! Input is the record the Avro reader (or the JSON converter) produced, a
//! `records::ReaderRecord` (its fields in field order; nested records and maps as `Json`
//! objects, arrays as lists, null as `Null`); the checks read it in place, then the
//! Event takes its strings. `build_event` gives the `Event` or the first `Rejection` that
//! applies, with the same reason and, byte for byte, the same detail as the Python; the
//! checks and their order are described in the Python module's docstring. A record whose shape no reader
//! produces (a missing field, a string where an integer belongs) is an `Err`, where the
//! Python would raise.
//!
//! Python semantics kept on purpose: lengths count code points, not bytes; money sums
//! are exact (i128, never overflowing, where Python's ints are unbounded); `str.isspace`,
//! `str.isprintable` and `unicodedata.category` come from tables generated from Python's
//! own unicodedata (the block at the end of this file); `repr`/`ascii` of a string in a
//! detail are Python's (`py_repr`).

use crate::event::{stream_of_event, Event, Item, Stream, PLATFORMS};
use std::cell::Cell;

use crate::json::{Json, JsonError, JsonResult};
use crate::records::ReaderRecord;

pub const EARLIEST_EVENT_TIME_MS: i64 = 946_684_800_000; // 2000-01-01T00:00:00Z
pub const EARLIEST_REPLAY_EVENT_TIME_MS: i64 = 31_536_000_000; // 1971-01-01T00:00:00Z
/// The Avro `int`; beyond it is WRONG_TYPE.
pub const MAX_QUANTITY: i64 = 2_147_483_647;
/// Every money amount of one event (10^13 minor units).
pub const MAX_MONEY_MINOR: i64 = 10_000_000_000_000;
/// Units of one line and of one event (all lines together).
pub const MAX_ITEM_UNITS: i64 = 1_000_000;
pub const MAX_ID_LENGTH: usize = 256;
/// On the wire; the Event says `custom:<event_name>`.
pub const CUSTOM_EVENT_TYPE: &str = "custom";
/// `schemas.properties.CUSTOM_EVENT_PREFIX`.
pub const CUSTOM_EVENT_PREFIX: &str = "custom:";
/// `schemas.custom`: at most this many properties, values of at most this many characters.
pub const MAX_PROPERTIES: usize = 25;
pub const MAX_PROPERTY_VALUE_CHARS: usize = 100;
/// The last millisecond Python's `datetime` can show (9999-12-31T23:59:59.999Z): a
/// rejection's detail names `earliest_ms` as a date, so it may not be later.
pub const MAX_DATE_MS: i64 = 253_402_300_799_999;

const MAX_MONEY_WIDE: i128 = MAX_MONEY_MINOR as i128;
const MAX_UNITS_WIDE: i128 = MAX_ITEM_UNITS as i128;
const ORDER_MONEY_FIELDS: [&str; 4] = ["value", "tax", "shipping", "discount"];
const OPTIONAL_IDS: [&str; 3] = ["user_id", "cart_id", "transaction_id"];
const NAME_RULE: &str = "a letter, then at most 39 letters, digits or underscores \
                         (CUSTOM_EVENT_NAME [A-Za-z][A-Za-z0-9_]{0,39})";
const KEY_RULE: &str = "a letter, then at most 39 letters, digits or underscores \
                        (PROPERTY_KEY [A-Za-z][A-Za-z0-9_]{0,39})";
/// Rendered as nothing besides the Cf characters (`_INVISIBLE`): sorted.
const INVISIBLE: &[u32] = &[
    0x034F, 0x115F, 0x1160, 0x2800, 0x3164, 0xFE00, 0xFE01, 0xFE02, 0xFE03, 0xFE04, 0xFE05, 0xFE06,
    0xFE07, 0xFE08, 0xFE09, 0xFE0A, 0xFE0B, 0xFE0C, 0xFE0D, 0xFE0E, 0xFE0F, 0xFFA0,
];

/// `schemas.iso4217.ACTIVE_CODES`, sorted.
pub const ACTIVE_CODES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
    "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD",
    "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT",
    "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
    "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP",
    "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
    "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST",
    "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// `is_active_currency`: an upper-case active ISO 4217 code with a minor unit.
pub fn is_active_currency(code: &str) -> bool {
    ACTIVE_CODES.binary_search(&code).is_ok()
}

// -- reasons ------------------------------------------------------------------------------

/// Dead-letter reason codes of input events (`schemas.reasons.Reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Undecodable,
    UnknownSchemaId,
    MissingField,
    WrongType,
    UnknownEventType,
    NegativePrice,
    NegativeQuantity,
    InvalidCurrency,
    InvalidPlatform,
    TooManyItems,
    PayloadTooLarge,
    EventTimeInFuture,
    EventTimeTooOld,
    InvalidId,
    TimestampOutOfRange,
    AmountOutOfRange,
    QuantityOutOfRange,
    DiscountExceedsPrice,
    InvalidCustomEvent,
    InvalidProperties,
}

impl Reason {
    pub const ALL: [Reason; 20] = [
        Reason::Undecodable,
        Reason::UnknownSchemaId,
        Reason::MissingField,
        Reason::WrongType,
        Reason::UnknownEventType,
        Reason::NegativePrice,
        Reason::NegativeQuantity,
        Reason::InvalidCurrency,
        Reason::InvalidPlatform,
        Reason::TooManyItems,
        Reason::PayloadTooLarge,
        Reason::EventTimeInFuture,
        Reason::EventTimeTooOld,
        Reason::InvalidId,
        Reason::TimestampOutOfRange,
        Reason::AmountOutOfRange,
        Reason::QuantityOutOfRange,
        Reason::DiscountExceedsPrice,
        Reason::InvalidCustomEvent,
        Reason::InvalidProperties,
    ];

    /// The stable value dashboards and ClickHouse rows use.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Undecodable => "undecodable",
            Reason::UnknownSchemaId => "unknown_schema_id",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::UnknownEventType => "unknown_event_type",
            Reason::NegativePrice => "negative_price",
            Reason::NegativeQuantity => "negative_quantity",
            Reason::InvalidCurrency => "invalid_currency",
            Reason::InvalidPlatform => "invalid_platform",
            Reason::TooManyItems => "too_many_items",
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::EventTimeInFuture => "event_time_in_future",
            Reason::EventTimeTooOld => "event_time_too_old",
            Reason::InvalidId => "invalid_id",
            Reason::TimestampOutOfRange => "timestamp_out_of_range",
            Reason::AmountOutOfRange => "amount_out_of_range",
            Reason::QuantityOutOfRange => "quantity_out_of_range",
            Reason::DiscountExceedsPrice => "discount_exceeds_price",
            Reason::InvalidCustomEvent => "invalid_custom_event",
            Reason::InvalidProperties => "invalid_properties",
        }
    }
}

/// A record that must go to the dead-letter topic; `detail` names the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: Reason, detail: String) -> Rejection {
        Rejection { reason, detail }
    }

    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("reason".into(), Json::s(self.reason.as_str())),
            ("detail".into(), Json::Str(self.detail.clone())),
        ])
    }
}

// -- bounds -------------------------------------------------------------------------------

/// Limits applied to every input record; `replay` lifts the `max_past_ms` bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationBounds {
    pub max_payload_bytes: i64,
    pub max_items: i64,
    pub max_future_ms: i64,
    pub max_past_ms: i64,
    pub replay: bool,
    /// The oldest `event_time`/`sent_time` accepted in any mode (resolved: never < 0).
    pub earliest_ms: i64,
}

impl Default for ValidationBounds {
    fn default() -> Self {
        ValidationBounds {
            max_payload_bytes: 65536,
            max_items: 200,
            max_future_ms: 300_000,
            max_past_ms: 7 * 86_400_000,
            replay: false,
            earliest_ms: EARLIEST_EVENT_TIME_MS,
        }
    }
}

impl ValidationBounds {
    /// The bounds from a JSON object with any of the dataclass's fields (the others take
    /// their defaults). As `__post_init__`, a negative `earliest_ms` means the mode's
    /// default (2000-01-01, 1971-01-01 with replay). An `earliest_ms` after
    /// 9999-12-31 is an error here (Python's datetime cannot show it, so the Python would
    /// raise at the first record older than it).
    pub fn from_json(value: &Json) -> JsonResult<ValidationBounds> {
        let mut bounds = ValidationBounds::default();
        let mut earliest: i64 = -1;
        for (key, item) in value.object("bounds")? {
            let what = format!("bounds.{}", key);
            match key.as_str() {
                "max_payload_bytes" => bounds.max_payload_bytes = item.int(&what)?,
                "max_items" => bounds.max_items = item.int(&what)?,
                "max_future_ms" => bounds.max_future_ms = item.int(&what)?,
                "max_past_ms" => bounds.max_past_ms = item.int(&what)?,
                "replay" => bounds.replay = item.boolean(&what)?,
                "earliest_ms" => earliest = item.int(&what)?,
                other => return Err(JsonError(format!("bounds has no field {:?}", other))),
            }
        }
        bounds.earliest_ms = if earliest >= 0 {
            earliest
        } else if bounds.replay {
            EARLIEST_REPLAY_EVENT_TIME_MS
        } else {
            EARLIEST_EVENT_TIME_MS
        };
        if bounds.earliest_ms > MAX_DATE_MS {
            return Err(JsonError(format!(
                "bounds.earliest_ms {} is after 9999-12-31",
                bounds.earliest_ms
            )));
        }
        Ok(bounds)
    }

    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            (
                "max_payload_bytes".into(),
                Json::Int(self.max_payload_bytes),
            ),
            ("max_items".into(), Json::Int(self.max_items)),
            ("max_future_ms".into(), Json::Int(self.max_future_ms)),
            ("max_past_ms".into(), Json::Int(self.max_past_ms)),
            ("replay".into(), Json::Bool(self.replay)),
            ("earliest_ms".into(), Json::Int(self.earliest_ms)),
        ])
    }
}

// -- reading the record -------------------------------------------------------------------

/// `rec[name]` and `rec.get(name)` over a reader's record or item, with the reader's types.
trait Lookup<'a> {
    /// What the fields belong to, for errors ("the record", "an item").
    fn what(&self) -> &str;

    /// The value of field `name`, null included; None when the field is absent.
    fn find(&self, name: &str) -> Option<&'a Json>;

    /// `rec.get(name)`: None when the field is absent or null.
    fn get(&self, name: &str) -> Option<&'a Json> {
        match self.find(name) {
            Some(Json::Null) | None => None,
            Some(value) => Some(value),
        }
    }

    /// `rec[name]`: an error when the field is absent.
    fn field(&self, name: &str) -> JsonResult<&'a Json> {
        match self.find(name) {
            Some(value) => Ok(value),
            None => Err(JsonError(format!(
                "{} has no field {:?}",
                self.what(),
                name
            ))),
        }
    }

    fn str(&self, name: &str) -> JsonResult<&'a str> {
        self.field(name)?.str(name)
    }

    fn opt_str(&self, name: &str) -> JsonResult<Option<&'a str>> {
        self.field(name)?.opt_str(name)
    }

    fn int(&self, name: &str) -> JsonResult<i64> {
        self.field(name)?.int(name)
    }

    fn opt_int(&self, name: &str) -> JsonResult<Option<i64>> {
        self.field(name)?.opt_int(name)
    }

    fn owned_opt_str(&self, name: &str) -> JsonResult<Option<String>> {
        Ok(self.opt_str(name)?.map(str::to_owned))
    }
}

/// A decoded item (a JSON object).
struct Fields<'a> {
    what: &'a str,
    entries: &'a [(String, Json)],
}

impl<'a> Fields<'a> {
    fn of(value: &'a Json, what: &'a str) -> JsonResult<Fields<'a>> {
        Ok(Fields {
            what,
            entries: value.object(what)?,
        })
    }
}

impl<'a> Lookup<'a> for Fields<'a> {
    fn what(&self) -> &str {
        self.what
    }

    fn find(&self, name: &str) -> Option<&'a Json> {
        self.entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// The record being checked: its fields found from where the last one was.
struct RecordFields<'a, 'r> {
    record: &'a ReaderRecord<'r>,
    next: Cell<usize>,
}

impl<'a, 'r> RecordFields<'a, 'r> {
    fn of(record: &'a ReaderRecord<'r>) -> Self {
        RecordFields {
            record,
            next: Cell::new(0),
        }
    }
}

impl<'a, 'r> Lookup<'a> for RecordFields<'a, 'r> {
    fn what(&self) -> &str {
        RECORD
    }

    fn find(&self, name: &str) -> Option<&'a Json> {
        let index = self.record.position(name, self.next.get())?;
        self.next.set(index + 1);
        Some(self.record.value(index))
    }
}

/// The checked record's text fields, moved into the Event rather than copied.
struct Taker<'r> {
    record: ReaderRecord<'r>,
    next: usize,
}

impl<'r> Taker<'r> {
    fn index(&mut self, name: &str) -> JsonResult<usize> {
        match self.record.position(name, self.next) {
            Some(index) => {
                self.next = index + 1;
                Ok(index)
            }
            None => Err(JsonError(format!("{} has no field {:?}", RECORD, name))),
        }
    }

    fn opt_string(&mut self, name: &str) -> JsonResult<Option<String>> {
        let index = self.index(name)?;
        self.record.value(index).opt_str(name)?; // the look's type check and message
        Ok(match self.record.take(index) {
            Json::Str(text) => Some(text),
            _ => None,
        })
    }

    fn string(&mut self, name: &str) -> JsonResult<String> {
        let index = self.index(name)?;
        self.record.value(index).str(name)?;
        Ok(match self.record.take(index) {
            Json::Str(text) => text,
            _ => String::new(),
        })
    }

    /// An Avro map of strings, in insertion order.
    fn string_map(&mut self, name: &str) -> JsonResult<Vec<(String, String)>> {
        let index = self.index(name)?;
        for (_, value) in self.record.value(index).object(name)? {
            value.str(name)?;
        }
        Ok(match self.record.take(index) {
            Json::Object(entries) => entries
                .into_iter()
                .map(|(k, v)| match v {
                    Json::Str(text) => (k, text),
                    _ => (k, String::new()),
                })
                .collect(),
            _ => Vec::new(),
        })
    }
}

const RECORD: &str = "the record";

/// An Avro map of strings, in insertion order.
fn string_map(value: &Json, what: &str) -> JsonResult<Vec<(String, String)>> {
    value
        .object(what)?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.str(what)?.to_owned())))
        .collect()
}

// -- build_event --------------------------------------------------------------------------

/// What the checks keep for the Event besides the record's text fields.
struct Checked {
    event_type: String,
    event_time: i64,
    sent_time: i64,
    value: Option<i64>,
    tax: Option<i64>,
    shipping: Option<i64>,
    discount: Option<i64>,
    items: Vec<Item>,
    properties: Vec<(String, String)>,
}

/// The validated Event for `record`, or the first Rejection that applies; `Err` when
/// `record` is not shaped as a reader's record.
pub fn build_event(
    record: ReaderRecord<'_>,
    stream: Stream,
    now_ms: i64,
    bounds: &ValidationBounds,
) -> JsonResult<Result<Event, Rejection>> {
    let checked = match check(&record, stream, now_ms, bounds)? {
        Ok(checked) => checked,
        Err(rejection) => return Ok(Err(rejection)),
    };
    // The text fields move out of the record, in the order the Event lists them.
    let mut rec = Taker { record, next: 0 };
    Ok(Ok(Event {
        stream,
        event_type: checked.event_type,
        event_id: rec.string("event_id")?,
        event_time_ms: checked.event_time,
        sent_time_ms: checked.sent_time,
        anonymous_id: rec.string("anonymous_id")?,
        session_id: rec.string("session_id")?,
        user_id: rec.opt_string("user_id")?,
        platform: rec.string("platform")?,
        device: rec.string("device")?,
        country: rec.string("country")?,
        page_url: rec.opt_string("page_url")?,
        referrer: rec.opt_string("referrer")?,
        utm_source: rec.opt_string("utm_source")?,
        utm_medium: rec.opt_string("utm_medium")?,
        utm_campaign: rec.opt_string("utm_campaign")?,
        utm_content: rec.opt_string("utm_content")?,
        utm_term: rec.opt_string("utm_term")?,
        experiments: rec.string_map("experiments")?,
        referral_code: rec.opt_string("referral_code")?,
        search_term: rec.opt_string("search_term")?,
        items: checked.items,
        cart_id: rec.opt_string("cart_id")?,
        transaction_id: rec.opt_string("transaction_id")?,
        currency: rec.opt_string("currency")?,
        value_minor: checked.value,
        tax_minor: checked.tax,
        shipping_minor: checked.shipping,
        coupon: rec.opt_string("coupon")?,
        discount_minor: checked.discount,
        payment_type: rec.opt_string("payment_type")?,
        refund_reason: rec.opt_string("refund_reason")?,
        payment_error_code: rec.opt_string("payment_error_code")?,
        properties: checked.properties,
    }))
}

/// The checks of `build_event`, in the Python's order: what the Event keeps of them, or
/// the first Rejection.
fn check(
    record: &ReaderRecord<'_>,
    stream: Stream,
    now_ms: i64,
    bounds: &ValidationBounds,
) -> JsonResult<Result<Checked, Rejection>> {
    let rec = RecordFields::of(record);
    let event_id = rec.str("event_id")?;
    let anonymous_id = rec.str("anonymous_id")?;
    let session_id = rec.str("session_id")?;
    if event_id.is_empty() || anonymous_id.is_empty() || session_id.is_empty() {
        return Ok(Err(empty_ids(event_id, anonymous_id, session_id)));
    }
    let user_id = rec.opt_str("user_id")?;
    let cart_id = rec.opt_str("cart_id")?;
    let transaction_id = rec.opt_str("transaction_id")?;
    let ids = [
        ("event_id", Some(event_id)),
        ("anonymous_id", Some(anonymous_id)),
        ("session_id", Some(session_id)),
        (OPTIONAL_IDS[0], user_id),
        (OPTIONAL_IDS[1], cart_id),
        (OPTIONAL_IDS[2], transaction_id),
    ];
    // The common path: every id printable ASCII without spaces and short. Otherwise the
    // exact check, in field order (a plain id has no problem, so it finds the same one).
    for (name, value) in ids.iter() {
        if let Some(value) = value {
            if !value.is_empty() && !plain_id(value) {
                if let Some(problem) = id_problem(value) {
                    return Ok(Err(invalid_id(name, value, &problem)));
                }
            }
        }
    }
    let wire_type = rec.str("event_type")?;
    // Only clickstream v3 records have these two keys (v1/v2, cart and orders do not).
    let event_name = match rec.get("event_name") {
        Some(value) => Some(value.str("event_name")?),
        None => None,
    };
    let event_type: String;
    if !stream.allows(wire_type) {
        if wire_type != CUSTOM_EVENT_TYPE || stream != Stream::Clickstream {
            return Ok(Err(wrong_event_type(wire_type, stream)));
        }
        match event_name {
            Some(name) if stream_of_event(name).is_none() && is_custom_name(name) => {
                event_type = format!("{}{}", CUSTOM_EVENT_PREFIX, name);
            }
            _ => return Ok(Err(bad_custom_event(event_name))),
        }
    } else if let Some(name) = event_name {
        return Ok(Err(event_name_not_custom(wire_type, name)));
    } else {
        event_type = wire_type.to_owned();
    }
    let properties = match rec.get("properties") {
        Some(value) => string_map(value, "properties")?,
        None => Vec::new(),
    };
    if !properties.is_empty() {
        if let Some(rejection) = bad_properties(&properties) {
            return Ok(Err(rejection));
        }
    }
    let platform = rec.str("platform")?;
    if !PLATFORMS.contains(&platform) {
        return Ok(Err(wrong_platform(platform)));
    }
    let now = now_ms as i128;
    let future = bounds.max_future_ms as i128;
    let earliest = bounds.earliest_ms as i128;
    let event_time = rec.int("event_time")?;
    let t = event_time as i128;
    if t > now + future || t < earliest || (!bounds.replay && t < now - bounds.max_past_ms as i128)
    {
        return Ok(Err(bad_time(event_time, now_ms, bounds)));
    }
    let sent_time = rec.int("sent_time")?;
    let sent = sent_time as i128;
    if sent < earliest || sent > now + future {
        return Ok(Err(bad_sent_time(sent_time, now_ms, bounds)));
    }
    let value = rec.opt_int("value")?;
    let tax = rec.opt_int("tax")?;
    let shipping = rec.opt_int("shipping")?;
    let discount = rec.opt_int("discount")?;
    let money = [value, tax, shipping, discount];
    let has_money = money.iter().any(Option::is_some);
    let in_range = |amount: &Option<i64>| (0..=MAX_MONEY_MINOR).contains(&amount.unwrap_or(0));
    if has_money && !money.iter().all(in_range) {
        return Ok(Err(bad_money(&money)));
    }
    let raw_items = rec.field("items")?.list("items")?;
    let mut items: Vec<Item> = Vec::new();
    if !raw_items.is_empty() {
        match build_items(raw_items, bounds.max_items, discount.unwrap_or(0))? {
            Ok(built) => items = built,
            Err(rejection) => return Ok(Err(rejection)),
        }
    }
    let currency = rec.opt_str("currency")?;
    let active = currency.map_or(false, is_active_currency);
    if !active && (currency.is_some() || !items.is_empty() || has_money) {
        return Ok(Err(bad_currency(currency)));
    }
    Ok(Ok(Checked {
        event_type,
        event_time,
        sent_time,
        value,
        tax,
        shipping,
        discount,
        items,
        properties,
    }))
}

fn empty_ids(event_id: &str, anonymous_id: &str, session_id: &str) -> Rejection {
    let empty: Vec<&str> = [
        ("event_id", event_id),
        ("anonymous_id", anonymous_id),
        ("session_id", session_id),
    ]
    .iter()
    .filter(|(_, value)| value.is_empty())
    .map(|(name, _)| *name)
    .collect();
    Rejection::new(
        Reason::MissingField,
        format!("{} must not be empty", empty.join(", ")),
    )
}

/// Printable ASCII without the space and at most `MAX_ID_LENGTH` long: valid, no lookup.
fn plain_id(value: &str) -> bool {
    value.len() <= MAX_ID_LENGTH && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Why a non-empty id is invalid (a phrase naming the fix), or None if it is valid.
pub fn id_problem(value: &str) -> Option<String> {
    let length = value.chars().count();
    if length > MAX_ID_LENGTH {
        return Some(format!(
            "is {} characters long; ids are at most {} characters (a UUID is 36): send the \
             id, not a payload",
            length, MAX_ID_LENGTH
        ));
    }
    for (position, c) in value.chars().enumerate() {
        if in_table(CATEGORY_CC_CS, c) {
            return Some(format!(
                "contains the control character U+{:04X} at position {}; ids must not contain \
                 NUL, tabs, newlines or other control characters: fix the producer's id \
                 generation",
                c as u32, position
            ));
        }
    }
    let blank = value.chars().all(|c| {
        in_table(PY_ISSPACE, c)
            || INVISIBLE.binary_search(&(c as u32)).is_ok()
            || in_table(CATEGORY_CF, c)
    });
    if blank {
        return Some(
            "is blank: only whitespace or invisible characters (such as U+200B zero-width \
             space or U+FEFF); send the real id"
                .to_owned(),
        );
    }
    None
}

fn invalid_id(field: &str, value: &str, problem: &str) -> Rejection {
    Rejection::new(
        Reason::InvalidId,
        format!("{} {} {}", field, shown(value), problem),
    )
}

fn wrong_event_type(event_type: &str, stream: Stream) -> Rejection {
    let hint = if let Some(home) = stream_of_event(event_type) {
        format!("it belongs on the {} stream", home.as_str())
    } else if event_type == CUSTOM_EVENT_TYPE {
        "custom events belong on the clickstream stream".to_owned()
    } else if event_type.starts_with(CUSTOM_EVENT_PREFIX) && stream == Stream::Clickstream {
        format!(
            "send event_type 'custom' with event_name {} instead",
            shown(&event_type[CUSTOM_EVENT_PREFIX.len()..])
        )
    } else {
        let mut allowed: Vec<&str> = stream.events().to_vec();
        if stream == Stream::Clickstream {
            allowed.push("custom (with event_name)");
        }
        format!("allowed: {}", allowed.join(", "))
    };
    Rejection::new(
        Reason::UnknownEventType,
        format!(
            "event_type {} is not a {} event; {}",
            shown(event_type),
            stream.as_str(),
            hint
        ),
    )
}

/// `value` quoted for a detail: ASCII-escaped (`ascii()`), cut after 40 characters.
pub fn shown(value: &str) -> String {
    match value.char_indices().nth(40) {
        None => py_repr(value, true),
        Some((cut, _)) => py_repr(&format!("{}...", &value[..cut]), true),
    }
}

/// `CUSTOM_EVENT_NAME.fullmatch` (and `PROPERTY_KEY`, the same pattern):
/// `[A-Za-z][A-Za-z0-9_]{0,39}`.
fn is_custom_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest.len() <= 39
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

fn bad_custom_event(event_name: Option<&str>) -> Rejection {
    let detail = match event_name {
        None => format!(
            "event_type 'custom' needs event_name (the custom event's name): {}",
            NAME_RULE
        ),
        Some(name) if stream_of_event(name).is_some() => format!(
            "event_name {} is a built-in event type; send event_type {} for it, or give the \
             custom event a name of its own",
            py_repr(name, false),
            py_repr(name, false)
        ),
        Some(name) => format!(
            "event_name {} is not a valid custom event name: {}",
            shown(name),
            NAME_RULE
        ),
    };
    Rejection::new(Reason::InvalidCustomEvent, detail)
}

fn event_name_not_custom(event_type: &str, event_name: &str) -> Rejection {
    Rejection::new(
        Reason::InvalidCustomEvent,
        format!(
            "event_name {} is set on a {} event; event_name is only for event_type 'custom' \
             (leave it null otherwise)",
            shown(event_name),
            py_repr(event_type, false)
        ),
    )
}

/// Why `properties` break a bound (the first key that does), or None.
fn bad_properties(properties: &[(String, String)]) -> Option<Rejection> {
    if properties.len() > MAX_PROPERTIES {
        return Some(Rejection::new(
            Reason::InvalidProperties,
            format!(
                "properties has {} keys; at most {} are allowed (MAX_PROPERTIES): send fewer \
                 properties",
                properties.len(),
                MAX_PROPERTIES
            ),
        ));
    }
    for (key, value) in properties {
        if !is_custom_name(key) {
            return Some(Rejection::new(
                Reason::InvalidProperties,
                format!(
                    "properties key {} is not a valid property key: {}",
                    shown(key),
                    KEY_RULE
                ),
            ));
        }
        let length = value.chars().count();
        if length > MAX_PROPERTY_VALUE_CHARS {
            return Some(Rejection::new(
                Reason::InvalidProperties,
                format!(
                    "properties.{} is {} characters long; values are at most {} characters \
                     (MAX_PROPERTY_VALUE_CHARS): send a short label, not a payload",
                    key, length, MAX_PROPERTY_VALUE_CHARS
                ),
            ));
        }
        // [\x00-\x1f\x7f-\x9f\ud800-\udfff] (a Rust string holds no surrogates)
        let control = value
            .chars()
            .enumerate()
            .find(|(_, c)| matches!(*c as u32, 0x00..=0x1f | 0x7f..=0x9f | 0xd800..=0xdfff));
        if let Some((position, c)) = control {
            return Some(Rejection::new(
                Reason::InvalidProperties,
                format!(
                    "properties.{} contains the control character U+{:04X} at position {}; \
                     property values must not contain NUL, tabs, newlines or other control \
                     characters",
                    key, c as u32, position
                ),
            ));
        }
    }
    None
}

fn wrong_platform(platform: &str) -> Rejection {
    Rejection::new(
        Reason::InvalidPlatform,
        format!(
            "platform {} is not one of {}",
            py_repr(platform, false),
            PLATFORMS.join(", ")
        ),
    )
}

fn bad_time(event_time: i64, now_ms: i64, bounds: &ValidationBounds) -> Rejection {
    let t = event_time as i128;
    let now = now_ms as i128;
    if t > now + bounds.max_future_ms as i128 {
        return Rejection::new(
            Reason::EventTimeInFuture,
            format!(
                "event_time {} is {} ms ahead of the worker clock (limit {} ms); fix the client \
                 clock or the time unit",
                event_time,
                t - now,
                bounds.max_future_ms
            ),
        );
    }
    if event_time < bounds.earliest_ms {
        return Rejection::new(
            Reason::EventTimeTooOld,
            format!(
                "event_time {} is before {}; send epoch milliseconds, not seconds (history \
                 older than that: set FUNNEL_EARLIEST_EVENT_TIME_MS)",
                event_time,
                utc_date(bounds.earliest_ms)
            ),
        );
    }
    Rejection::new(
        Reason::EventTimeTooOld,
        format!(
            "event_time {} is {} ms behind the worker clock (limit {} ms); run with replay \
             enabled to load history",
            event_time,
            now - t,
            bounds.max_past_ms
        ),
    )
}

fn bad_sent_time(sent_time: i64, now_ms: i64, bounds: &ValidationBounds) -> Rejection {
    if sent_time < bounds.earliest_ms {
        return Rejection::new(
            Reason::TimestampOutOfRange,
            format!(
                "sent_time {} is before {}; send the tracker's send time in epoch milliseconds \
                 UTC (or leave it out in JSON to use event_time)",
                sent_time,
                utc_date(bounds.earliest_ms)
            ),
        );
    }
    Rejection::new(
        Reason::TimestampOutOfRange,
        format!(
            "sent_time {} is {} ms ahead of the worker clock (limit {} ms); fix the tracker \
             clock or the time unit",
            sent_time,
            sent_time as i128 - now_ms as i128,
            bounds.max_future_ms
        ),
    )
}

fn too_much(what: &str, amount: impl std::fmt::Display) -> Rejection {
    Rejection::new(
        Reason::AmountOutOfRange,
        format!(
            "{}={} is above the limit of {} minor units (10^13); money is integer minor units \
             (1299 for 12.99): fix the unit or the amount",
            what, amount, MAX_MONEY_MINOR
        ),
    )
}

/// `money` is value, tax, shipping, discount: some is negative or above the limit.
fn bad_money(money: &[Option<i64>; 4]) -> Rejection {
    for (name, amount) in ORDER_MONEY_FIELDS.iter().zip(money.iter()) {
        if let Some(amount) = amount {
            if *amount < 0 {
                return Rejection::new(
                    Reason::NegativePrice,
                    format!("{}={} is negative; money fields are >= 0", name, amount),
                );
            }
        }
    }
    for (name, amount) in ORDER_MONEY_FIELDS.iter().zip(money.iter()) {
        if let Some(amount) = amount {
            if *amount > MAX_MONEY_MINOR {
                return too_much(name, amount);
            }
        }
    }
    // Not reached: build_event calls this only when some amount is out of range.
    too_much("value", money[0].unwrap_or(0))
}

fn bad_currency(currency: Option<&str>) -> Rejection {
    match currency {
        None => Rejection::new(
            Reason::InvalidCurrency,
            "currency is required when value, tax, shipping, discount or items are present; \
             send an ISO 4217 code such as CNY or USD"
                .to_owned(),
        ),
        Some(code) => Rejection::new(
            Reason::InvalidCurrency,
            format!(
                "currency {} is not an active ISO 4217 code; send an upper-case code such as \
                 CNY or USD",
                py_repr(code, false)
            ),
        ),
    }
}

/// The items of a record (`_build_items`), or the first Rejection of one of them.
fn build_items(
    raw_items: &[Json],
    max_items: i64,
    order_discount: i64,
) -> JsonResult<Result<Vec<Item>, Rejection>> {
    if raw_items.len() as i128 > max_items as i128 {
        return Ok(Err(Rejection::new(
            Reason::TooManyItems,
            format!(
                "{} items exceed the limit of {}",
                raw_items.len(),
                max_items
            ),
        )));
    }
    let mut items = Vec::with_capacity(raw_items.len());
    let mut units: i128 = 0;
    let mut total: i128 = 0;
    let mut item_discount: i128 = 0;
    for (index, raw) in raw_items.iter().enumerate() {
        let raw = Fields::of(raw, "an item")?;
        let price = raw.int("price")?;
        let quantity = raw.int("quantity")?;
        let discount = raw.int("discount")?;
        if price < 0 || discount < 0 {
            let (field, amount) = if price < 0 {
                ("price", price)
            } else {
                ("discount", discount)
            };
            return Ok(Err(Rejection::new(
                Reason::NegativePrice,
                format!(
                    "items[{}].{}={} is negative; money fields are >= 0",
                    index, field, amount
                ),
            )));
        }
        if quantity < 0 {
            return Ok(Err(Rejection::new(
                Reason::NegativeQuantity,
                format!("items[{}].quantity={} is negative", index, quantity),
            )));
        }
        if quantity > MAX_QUANTITY {
            return Ok(Err(Rejection::new(
                Reason::WrongType,
                format!(
                    "items[{}].quantity={} does not fit 32 bits",
                    index, quantity
                ),
            )));
        }
        let item_id = raw.str("item_id")?;
        if item_id.is_empty() {
            return Ok(Err(Rejection::new(
                Reason::MissingField,
                format!("items[{}].item_id must not be empty", index),
            )));
        }
        if !plain_id(item_id) {
            if let Some(problem) = id_problem(item_id) {
                return Ok(Err(invalid_id(
                    &format!("items[{}].item_id", index),
                    item_id,
                    &problem,
                )));
            }
        }
        let line = price as i128 * quantity as i128;
        if price > MAX_MONEY_MINOR
            || discount > price
            || quantity > MAX_ITEM_UNITS
            || line > MAX_MONEY_WIDE
        {
            return Ok(Err(bad_item(index, price, quantity, discount)));
        }
        units += quantity as i128;
        total += line;
        item_discount += discount as i128 * quantity as i128;
        items.push(Item {
            item_id: item_id.to_owned(),
            price_minor: price,
            quantity,
            item_name: raw.owned_opt_str("item_name")?,
            item_category: raw.owned_opt_str("item_category")?,
            item_brand: raw.owned_opt_str("item_brand")?,
            item_variant: raw.owned_opt_str("item_variant")?,
            coupon: raw.owned_opt_str("coupon")?,
            discount_minor: discount,
        });
    }
    if units > MAX_UNITS_WIDE || total > MAX_MONEY_WIDE {
        return Ok(Err(event_too_much(units, total)));
    }
    let all_discounts = order_discount as i128 + item_discount;
    if all_discounts > MAX_MONEY_WIDE {
        return Ok(Err(Rejection::new(
            Reason::AmountOutOfRange,
            format!(
                "total discount (discount {} + item discounts x quantity {}) = {} is above the \
                 limit of {} minor units (10^13); fix the discounts",
                order_discount, item_discount, all_discounts, MAX_MONEY_MINOR
            ),
        )));
    }
    Ok(Ok(items))
}

/// Per field first (price, discount, quantity), then discount <= price, then the line.
fn bad_item(index: usize, price: i64, quantity: i64, discount: i64) -> Rejection {
    if price > MAX_MONEY_MINOR {
        return too_much(&format!("items[{}].price", index), price);
    }
    if discount > MAX_MONEY_MINOR {
        return too_much(&format!("items[{}].discount", index), discount);
    }
    if quantity > MAX_ITEM_UNITS {
        return Rejection::new(
            Reason::QuantityOutOfRange,
            format!(
                "items[{}].quantity={} is above the limit of {} units per line; fix the \
                 quantity (a count of units, not an amount of money)",
                index, quantity, MAX_ITEM_UNITS
            ),
        );
    }
    if discount > price {
        return Rejection::new(
            Reason::DiscountExceedsPrice,
            format!(
                "items[{}].discount={} is larger than items[{}].price={}; the item discount is \
                 per unit and at most the unit price",
                index, discount, index, price
            ),
        );
    }
    Rejection::new(
        Reason::AmountOutOfRange,
        format!(
            "items[{}] line total price x quantity = {} x {} = {} is above the limit of {} \
             minor units (10^13); fix the price (minor units) or the quantity",
            index,
            price,
            quantity,
            price as i128 * quantity as i128,
            MAX_MONEY_MINOR
        ),
    )
}

fn event_too_much(units: i128, total: i128) -> Rejection {
    if units > MAX_UNITS_WIDE {
        return Rejection::new(
            Reason::QuantityOutOfRange,
            format!(
                "items hold {} units in all, above the limit of {} units per event; split the \
                 order or fix the quantities",
                units, MAX_ITEM_UNITS
            ),
        );
    }
    Rejection::new(
        Reason::AmountOutOfRange,
        format!(
            "items total (sum of price x quantity) = {} is above the limit of {} minor units \
             (10^13); fix the prices (minor units) or quantities",
            total, MAX_MONEY_MINOR
        ),
    )
}

/// `datetime.fromtimestamp(t_ms / 1000, UTC).date().isoformat()` for 0 <= t_ms <=
/// `MAX_DATE_MS` (the float division cannot move a millisecond across midnight there).
pub fn utc_date(t_ms: i64) -> String {
    // Days since 1970-01-01 to a civil date (Howard Hinnant's days_from_civil inverse).
    let days = t_ms.div_euclid(86_400_000) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{:04}-{:02}-{:02}", year, month, day)
}

// -- Python's repr of a str ---------------------------------------------------------------

/// `repr(value)` (`ascii_only` false) or `ascii(value)` (true), as CPython writes them:
/// single quotes unless the text has a ' and no ", then double; `\\`, the quote, `\t`,
/// `\n`, `\r` escaped; other ASCII controls as `\xhh`; a non-ASCII character kept when
/// printable (and not `ascii_only`), else `\xhh`, `\uhhhh` or `\Uhhhhhhhh`.
pub fn py_repr(value: &str, ascii_only: bool) -> String {
    let quote = if value.contains('\'') && !value.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(value.len() + 2);
    out.push(quote);
    for c in value.chars() {
        let code = c as u32;
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if c == '\t' {
            out.push_str("\\t");
        } else if c == '\n' {
            out.push_str("\\n");
        } else if c == '\r' {
            out.push_str("\\r");
        } else if code < 0x20 || code == 0x7f {
            out.push_str(&format!("\\x{:02x}", code));
        } else if code < 0x7f {
            out.push(c);
        } else if ascii_only || in_table(PY_NOT_PRINTABLE, c) {
            if code <= 0xff {
                out.push_str(&format!("\\x{:02x}", code));
            } else if code <= 0xffff {
                out.push_str(&format!("\\u{:04x}", code));
            } else {
                out.push_str(&format!("\\U{:08x}", code));
            }
        } else {
            out.push(c);
        }
    }
    out.push(quote);
    out
}

/// Whether `c` lies in one of the sorted inclusive ranges of `table`.
pub fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let code = c as u32;
    table
        .binary_search_by(|&(first, last)| {
            if last < code {
                std::cmp::Ordering::Less
            } else if first > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

// -- the test adapter ---------------------------------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("args")?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

fn probe_build_event(args: &Json) -> JsonResult<Json> {
    let stream_name = arg(args, "stream")?.str("stream")?;
    let stream = Stream::parse(stream_name)
        .ok_or_else(|| JsonError(format!("unknown stream {:?}", stream_name)))?;
    let now_ms = arg(args, "now_ms")?.int("now_ms")?;
    let bounds = ValidationBounds::from_json(arg(args, "bounds")?)?;
    let record = ReaderRecord::from_json(arg(args, "record")?.clone())
        .ok_or_else(|| JsonError("the record is not an object".into()))?;
    Ok(match build_event(record, stream, now_ms, &bounds)? {
        Ok(event) => Json::Object(vec![("event".into(), event.to_json())]),
        Err(rejection) => Json::Object(vec![("rejection".into(), rejection.to_json())]),
    })
}

fn table_json(table: &[(u32, u32)]) -> Json {
    Json::List(
        table
            .iter()
            .map(|&(a, b)| Json::List(vec![Json::Int(a as i64), Json::Int(b as i64)]))
            .collect(),
    )
}

/// The probes "validation.*" (tests/native/test_validation.py).
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    let result = match name {
        "validation.build_event" => probe_build_event(args),
        "validation.id_problem" => arg(args, "value")
            .and_then(|v| v.str("value"))
            .map(|v| id_problem(v).map_or(Json::Null, Json::Str)),
        "validation.bounds" => ValidationBounds::from_json(args).map(|b| b.to_json()),
        "validation.repr" => (|| {
            let value = arg(args, "value")?.str("value")?;
            let ascii_only = arg(args, "ascii")?.boolean("ascii")?;
            Ok(Json::Str(py_repr(value, ascii_only)))
        })(),
        "validation.shown" => arg(args, "value")
            .and_then(|v| v.str("value"))
            .map(|v| Json::Str(shown(v))),
        "validation.utc_date" => arg(args, "t_ms").and_then(|v| v.int("t_ms")).and_then(|t| {
            if (0..=MAX_DATE_MS).contains(&t) {
                Ok(Json::Str(utc_date(t)))
            } else {
                Err(JsonError(format!("t_ms {} is out of range", t)))
            }
        }),
        "validation.unicode_tables" => Ok(Json::Object(vec![
            ("version".into(), Json::s(UNICODE_VERSION)),
            ("PY_ISSPACE".into(), table_json(PY_ISSPACE)),
            ("CATEGORY_CC_CS".into(), table_json(CATEGORY_CC_CS)),
            ("CATEGORY_CF".into(), table_json(CATEGORY_CF)),
            ("PY_NOT_PRINTABLE".into(), table_json(PY_NOT_PRINTABLE)),
        ])),
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_disjoint() {
        for table in [PY_ISSPACE, CATEGORY_CC_CS, CATEGORY_CF, PY_NOT_PRINTABLE] {
            assert!(table.iter().all(|&(a, b)| a <= b));
            assert!(table.windows(2).all(|w| w[0].1 < w[1].0));
        }
        assert!(ACTIVE_CODES.windows(2).all(|w| w[0] < w[1]));
        assert!(INVISIBLE.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn python_whitespace_is_not_rusts() {
        assert!(in_table(PY_ISSPACE, '\u{1c}'));
        assert!(!'\u{1c}'.is_whitespace());
        assert!(!in_table(PY_ISSPACE, '\u{200b}'));
        assert!(in_table(CATEGORY_CF, '\u{200b}'));
    }

    #[test]
    fn repr_and_dates() {
        assert_eq!(py_repr("a'b", false), "\"a'b\"");
        assert_eq!(py_repr("a'\"b", false), "'a\\'\"b'");
        assert_eq!(py_repr("é\u{200b}\u{1F600}", false), "'é\\u200b\u{1F600}'");
        assert_eq!(py_repr("é\u{1F600}", true), "'\\xe9\\U0001f600'");
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(EARLIEST_EVENT_TIME_MS), "2000-01-01");
        assert_eq!(utc_date(MAX_DATE_MS), "9999-12-31");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
    }
}

// BEGIN GENERATED UNICODE TABLES
// Generated by tests/native/gen_unicode_tables.py from Python's unicodedata
// (Unicode 14.0.0); do not edit by hand: rerun it with --write.
pub const UNICODE_VERSION: &str = "14.0.0";
/// Code points where str.isspace() is true: 10 inclusive ranges.
#[rustfmt::skip]
pub const PY_ISSPACE: &[(u32, u32)] = &[
    (0x0009, 0x000D), (0x001C, 0x0020), (0x0085, 0x0085), (0x00A0, 0x00A0),
    (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F),
    (0x205F, 0x205F), (0x3000, 0x3000),
];
/// Code points where unicodedata.category() is Cc or Cs: 3 inclusive ranges.
#[rustfmt::skip]
pub const CATEGORY_CC_CS: &[(u32, u32)] = &[
    (0x0000, 0x001F), (0x007F, 0x009F), (0xD800, 0xDFFF),
];
/// Code points where unicodedata.category() is Cf: 21 inclusive ranges.
#[rustfmt::skip]
pub const CATEGORY_CF: &[(u32, u32)] = &[
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];
/// Code points where str.isprintable() is false (repr escapes them): 701 inclusive ranges.
#[rustfmt::skip]
pub const PY_NOT_PRINTABLE: &[(u32, u32)] = &[
    (0x0000, 0x001F), (0x007F, 0x00A0), (0x00AD, 0x00AD), (0x0378, 0x0379),
    (0x0380, 0x0383), (0x038B, 0x038B), (0x038D, 0x038D), (0x03A2, 0x03A2),
    (0x0530, 0x0530), (0x0557, 0x0558), (0x058B, 0x058C), (0x0590, 0x0590),
    (0x05C8, 0x05CF), (0x05EB, 0x05EE), (0x05F5, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070E, 0x070F), (0x074B, 0x074C), (0x07B2, 0x07BF),
    (0x07FB, 0x07FC), (0x082E, 0x082F), (0x083F, 0x083F), (0x085C, 0x085D),
    (0x085F, 0x085F), (0x086B, 0x086F), (0x088F, 0x0897), (0x08E2, 0x08E2),
    (0x0984, 0x0984), (0x098D, 0x098E), (0x0991, 0x0992), (0x09A9, 0x09A9),
    (0x09B1, 0x09B1), (0x09B3, 0x09B5), (0x09BA, 0x09BB), (0x09C5, 0x09C6),
    (0x09C9, 0x09CA), (0x09CF, 0x09D6), (0x09D8, 0x09DB), (0x09DE, 0x09DE),
    (0x09E4, 0x09E5), (0x09FF, 0x0A00), (0x0A04, 0x0A04), (0x0A0B, 0x0A0E),
    (0x0A11, 0x0A12), (0x0A29, 0x0A29), (0x0A31, 0x0A31), (0x0A34, 0x0A34),
    (0x0A37, 0x0A37), (0x0A3A, 0x0A3B), (0x0A3D, 0x0A3D), (0x0A43, 0x0A46),
    (0x0A49, 0x0A4A), (0x0A4E, 0x0A50), (0x0A52, 0x0A58), (0x0A5D, 0x0A5D),
    (0x0A5F, 0x0A65), (0x0A77, 0x0A80), (0x0A84, 0x0A84), (0x0A8E, 0x0A8E),
    (0x0A92, 0x0A92), (0x0AA9, 0x0AA9), (0x0AB1, 0x0AB1), (0x0AB4, 0x0AB4),
    (0x0ABA, 0x0ABB), (0x0AC6, 0x0AC6), (0x0ACA, 0x0ACA), (0x0ACE, 0x0ACF),
    (0x0AD1, 0x0ADF), (0x0AE4, 0x0AE5), (0x0AF2, 0x0AF8), (0x0B00, 0x0B00),
    (0x0B04, 0x0B04), (0x0B0D, 0x0B0E), (0x0B11, 0x0B12), (0x0B29, 0x0B29),
    (0x0B31, 0x0B31), (0x0B34, 0x0B34), (0x0B3A, 0x0B3B), (0x0B45, 0x0B46),
    (0x0B49, 0x0B4A), (0x0B4E, 0x0B54), (0x0B58, 0x0B5B), (0x0B5E, 0x0B5E),
    (0x0B64, 0x0B65), (0x0B78, 0x0B81), (0x0B84, 0x0B84), (0x0B8B, 0x0B8D),
    (0x0B91, 0x0B91), (0x0B96, 0x0B98), (0x0B9B, 0x0B9B), (0x0B9D, 0x0B9D),
    (0x0BA0, 0x0BA2), (0x0BA5, 0x0BA7), (0x0BAB, 0x0BAD), (0x0BBA, 0x0BBD),
    (0x0BC3, 0x0BC5), (0x0BC9, 0x0BC9), (0x0BCE, 0x0BCF), (0x0BD1, 0x0BD6),
    (0x0BD8, 0x0BE5), (0x0BFB, 0x0BFF), (0x0C0D, 0x0C0D), (0x0C11, 0x0C11),
    (0x0C29, 0x0C29), (0x0C3A, 0x0C3B), (0x0C45, 0x0C45), (0x0C49, 0x0C49),
    (0x0C4E, 0x0C54), (0x0C57, 0x0C57), (0x0C5B, 0x0C5C), (0x0C5E, 0x0C5F),
    (0x0C64, 0x0C65), (0x0C70, 0x0C76), (0x0C8D, 0x0C8D), (0x0C91, 0x0C91),
    (0x0CA9, 0x0CA9), (0x0CB4, 0x0CB4), (0x0CBA, 0x0CBB), (0x0CC5, 0x0CC5),
    (0x0CC9, 0x0CC9), (0x0CCE, 0x0CD4), (0x0CD7, 0x0CDC), (0x0CDF, 0x0CDF),
    (0x0CE4, 0x0CE5), (0x0CF0, 0x0CF0), (0x0CF3, 0x0CFF), (0x0D0D, 0x0D0D),
    (0x0D11, 0x0D11), (0x0D45, 0x0D45), (0x0D49, 0x0D49), (0x0D50, 0x0D53),
    (0x0D64, 0x0D65), (0x0D80, 0x0D80), (0x0D84, 0x0D84), (0x0D97, 0x0D99),
    (0x0DB2, 0x0DB2), (0x0DBC, 0x0DBC), (0x0DBE, 0x0DBF), (0x0DC7, 0x0DC9),
    (0x0DCB, 0x0DCE), (0x0DD5, 0x0DD5), (0x0DD7, 0x0DD7), (0x0DE0, 0x0DE5),
    (0x0DF0, 0x0DF1), (0x0DF5, 0x0E00), (0x0E3B, 0x0E3E), (0x0E5C, 0x0E80),
    (0x0E83, 0x0E83), (0x0E85, 0x0E85), (0x0E8B, 0x0E8B), (0x0EA4, 0x0EA4),
    (0x0EA6, 0x0EA6), (0x0EBE, 0x0EBF), (0x0EC5, 0x0EC5), (0x0EC7, 0x0EC7),
    (0x0ECE, 0x0ECF), (0x0EDA, 0x0EDB), (0x0EE0, 0x0EFF), (0x0F48, 0x0F48),
    (0x0F6D, 0x0F70), (0x0F98, 0x0F98), (0x0FBD, 0x0FBD), (0x0FCD, 0x0FCD),
    (0x0FDB, 0x0FFF), (0x10C6, 0x10C6), (0x10C8, 0x10CC), (0x10CE, 0x10CF),
    (0x1249, 0x1249), (0x124E, 0x124F), (0x1257, 0x1257), (0x1259, 0x1259),
    (0x125E, 0x125F), (0x1289, 0x1289), (0x128E, 0x128F), (0x12B1, 0x12B1),
    (0x12B6, 0x12B7), (0x12BF, 0x12BF), (0x12C1, 0x12C1), (0x12C6, 0x12C7),
    (0x12D7, 0x12D7), (0x1311, 0x1311), (0x1316, 0x1317), (0x135B, 0x135C),
    (0x137D, 0x137F), (0x139A, 0x139F), (0x13F6, 0x13F7), (0x13FE, 0x13FF),
    (0x1680, 0x1680), (0x169D, 0x169F), (0x16F9, 0x16FF), (0x1716, 0x171E),
    (0x1737, 0x173F), (0x1754, 0x175F), (0x176D, 0x176D), (0x1771, 0x1771),
    (0x1774, 0x177F), (0x17DE, 0x17DF), (0x17EA, 0x17EF), (0x17FA, 0x17FF),
    (0x180E, 0x180E), (0x181A, 0x181F), (0x1879, 0x187F), (0x18AB, 0x18AF),
    (0x18F6, 0x18FF), (0x191F, 0x191F), (0x192C, 0x192F), (0x193C, 0x193F),
    (0x1941, 0x1943), (0x196E, 0x196F), (0x1975, 0x197F), (0x19AC, 0x19AF),
    (0x19CA, 0x19CF), (0x19DB, 0x19DD), (0x1A1C, 0x1A1D), (0x1A5F, 0x1A5F),
    (0x1A7D, 0x1A7E), (0x1A8A, 0x1A8F), (0x1A9A, 0x1A9F), (0x1AAE, 0x1AAF),
    (0x1ACF, 0x1AFF), (0x1B4D, 0x1B4F), (0x1B7F, 0x1B7F), (0x1BF4, 0x1BFB),
    (0x1C38, 0x1C3A), (0x1C4A, 0x1C4C), (0x1C89, 0x1C8F), (0x1CBB, 0x1CBC),
    (0x1CC8, 0x1CCF), (0x1CFB, 0x1CFF), (0x1F16, 0x1F17), (0x1F1E, 0x1F1F),
    (0x1F46, 0x1F47), (0x1F4E, 0x1F4F), (0x1F58, 0x1F58), (0x1F5A, 0x1F5A),
    (0x1F5C, 0x1F5C), (0x1F5E, 0x1F5E), (0x1F7E, 0x1F7F), (0x1FB5, 0x1FB5),
    (0x1FC5, 0x1FC5), (0x1FD4, 0x1FD5), (0x1FDC, 0x1FDC), (0x1FF0, 0x1FF1),
    (0x1FF5, 0x1FF5), (0x1FFF, 0x200F), (0x2028, 0x202F), (0x205F, 0x206F),
    (0x2072, 0x2073), (0x208F, 0x208F), (0x209D, 0x209F), (0x20C1, 0x20CF),
    (0x20F1, 0x20FF), (0x218C, 0x218F), (0x2427, 0x243F), (0x244B, 0x245F),
    (0x2B74, 0x2B75), (0x2B96, 0x2B96), (0x2CF4, 0x2CF8), (0x2D26, 0x2D26),
    (0x2D28, 0x2D2C), (0x2D2E, 0x2D2F), (0x2D68, 0x2D6E), (0x2D71, 0x2D7E),
    (0x2D97, 0x2D9F), (0x2DA7, 0x2DA7), (0x2DAF, 0x2DAF), (0x2DB7, 0x2DB7),
    (0x2DBF, 0x2DBF), (0x2DC7, 0x2DC7), (0x2DCF, 0x2DCF), (0x2DD7, 0x2DD7),
    (0x2DDF, 0x2DDF), (0x2E5E, 0x2E7F), (0x2E9A, 0x2E9A), (0x2EF4, 0x2EFF),
    (0x2FD6, 0x2FEF), (0x2FFC, 0x3000), (0x3040, 0x3040), (0x3097, 0x3098),
    (0x3100, 0x3104), (0x3130, 0x3130), (0x318F, 0x318F), (0x31E4, 0x31EF),
    (0x321F, 0x321F), (0xA48D, 0xA48F), (0xA4C7, 0xA4CF), (0xA62C, 0xA63F),
    (0xA6F8, 0xA6FF), (0xA7CB, 0xA7CF), (0xA7D2, 0xA7D2), (0xA7D4, 0xA7D4),
    (0xA7DA, 0xA7F1), (0xA82D, 0xA82F), (0xA83A, 0xA83F), (0xA878, 0xA87F),
    (0xA8C6, 0xA8CD), (0xA8DA, 0xA8DF), (0xA954, 0xA95E), (0xA97D, 0xA97F),
    (0xA9CE, 0xA9CE), (0xA9DA, 0xA9DD), (0xA9FF, 0xA9FF), (0xAA37, 0xAA3F),
    (0xAA4E, 0xAA4F), (0xAA5A, 0xAA5B), (0xAAC3, 0xAADA), (0xAAF7, 0xAB00),
    (0xAB07, 0xAB08), (0xAB0F, 0xAB10), (0xAB17, 0xAB1F), (0xAB27, 0xAB27),
    (0xAB2F, 0xAB2F), (0xAB6C, 0xAB6F), (0xABEE, 0xABEF), (0xABFA, 0xABFF),
    (0xD7A4, 0xD7AF), (0xD7C7, 0xD7CA), (0xD7FC, 0xF8FF), (0xFA6E, 0xFA6F),
    (0xFADA, 0xFAFF), (0xFB07, 0xFB12), (0xFB18, 0xFB1C), (0xFB37, 0xFB37),
    (0xFB3D, 0xFB3D), (0xFB3F, 0xFB3F), (0xFB42, 0xFB42), (0xFB45, 0xFB45),
    (0xFBC3, 0xFBD2), (0xFD90, 0xFD91), (0xFDC8, 0xFDCE), (0xFDD0, 0xFDEF),
    (0xFE1A, 0xFE1F), (0xFE53, 0xFE53), (0xFE67, 0xFE67), (0xFE6C, 0xFE6F),
    (0xFE75, 0xFE75), (0xFEFD, 0xFF00), (0xFFBF, 0xFFC1), (0xFFC8, 0xFFC9),
    (0xFFD0, 0xFFD1), (0xFFD8, 0xFFD9), (0xFFDD, 0xFFDF), (0xFFE7, 0xFFE7),
    (0xFFEF, 0xFFFB), (0xFFFE, 0xFFFF), (0x1000C, 0x1000C), (0x10027, 0x10027),
    (0x1003B, 0x1003B), (0x1003E, 0x1003E), (0x1004E, 0x1004F), (0x1005E, 0x1007F),
    (0x100FB, 0x100FF), (0x10103, 0x10106), (0x10134, 0x10136), (0x1018F, 0x1018F),
    (0x1019D, 0x1019F), (0x101A1, 0x101CF), (0x101FE, 0x1027F), (0x1029D, 0x1029F),
    (0x102D1, 0x102DF), (0x102FC, 0x102FF), (0x10324, 0x1032C), (0x1034B, 0x1034F),
    (0x1037B, 0x1037F), (0x1039E, 0x1039E), (0x103C4, 0x103C7), (0x103D6, 0x103FF),
    (0x1049E, 0x1049F), (0x104AA, 0x104AF), (0x104D4, 0x104D7), (0x104FC, 0x104FF),
    (0x10528, 0x1052F), (0x10564, 0x1056E), (0x1057B, 0x1057B), (0x1058B, 0x1058B),
    (0x10593, 0x10593), (0x10596, 0x10596), (0x105A2, 0x105A2), (0x105B2, 0x105B2),
    (0x105BA, 0x105BA), (0x105BD, 0x105FF), (0x10737, 0x1073F), (0x10756, 0x1075F),
    (0x10768, 0x1077F), (0x10786, 0x10786), (0x107B1, 0x107B1), (0x107BB, 0x107FF),
    (0x10806, 0x10807), (0x10809, 0x10809), (0x10836, 0x10836), (0x10839, 0x1083B),
    (0x1083D, 0x1083E), (0x10856, 0x10856), (0x1089F, 0x108A6), (0x108B0, 0x108DF),
    (0x108F3, 0x108F3), (0x108F6, 0x108FA), (0x1091C, 0x1091E), (0x1093A, 0x1093E),
    (0x10940, 0x1097F), (0x109B8, 0x109BB), (0x109D0, 0x109D1), (0x10A04, 0x10A04),
    (0x10A07, 0x10A0B), (0x10A14, 0x10A14), (0x10A18, 0x10A18), (0x10A36, 0x10A37),
    (0x10A3B, 0x10A3E), (0x10A49, 0x10A4F), (0x10A59, 0x10A5F), (0x10AA0, 0x10ABF),
    (0x10AE7, 0x10AEA), (0x10AF7, 0x10AFF), (0x10B36, 0x10B38), (0x10B56, 0x10B57),
    (0x10B73, 0x10B77), (0x10B92, 0x10B98), (0x10B9D, 0x10BA8), (0x10BB0, 0x10BFF),
    (0x10C49, 0x10C7F), (0x10CB3, 0x10CBF), (0x10CF3, 0x10CF9), (0x10D28, 0x10D2F),
    (0x10D3A, 0x10E5F), (0x10E7F, 0x10E7F), (0x10EAA, 0x10EAA), (0x10EAE, 0x10EAF),
    (0x10EB2, 0x10EFF), (0x10F28, 0x10F2F), (0x10F5A, 0x10F6F), (0x10F8A, 0x10FAF),
    (0x10FCC, 0x10FDF), (0x10FF7, 0x10FFF), (0x1104E, 0x11051), (0x11076, 0x1107E),
    (0x110BD, 0x110BD), (0x110C3, 0x110CF), (0x110E9, 0x110EF), (0x110FA, 0x110FF),
    (0x11135, 0x11135), (0x11148, 0x1114F), (0x11177, 0x1117F), (0x111E0, 0x111E0),
    (0x111F5, 0x111FF), (0x11212, 0x11212), (0x1123F, 0x1127F), (0x11287, 0x11287),
    (0x11289, 0x11289), (0x1128E, 0x1128E), (0x1129E, 0x1129E), (0x112AA, 0x112AF),
    (0x112EB, 0x112EF), (0x112FA, 0x112FF), (0x11304, 0x11304), (0x1130D, 0x1130E),
    (0x11311, 0x11312), (0x11329, 0x11329), (0x11331, 0x11331), (0x11334, 0x11334),
    (0x1133A, 0x1133A), (0x11345, 0x11346), (0x11349, 0x1134A), (0x1134E, 0x1134F),
    (0x11351, 0x11356), (0x11358, 0x1135C), (0x11364, 0x11365), (0x1136D, 0x1136F),
    (0x11375, 0x113FF), (0x1145C, 0x1145C), (0x11462, 0x1147F), (0x114C8, 0x114CF),
    (0x114DA, 0x1157F), (0x115B6, 0x115B7), (0x115DE, 0x115FF), (0x11645, 0x1164F),
    (0x1165A, 0x1165F), (0x1166D, 0x1167F), (0x116BA, 0x116BF), (0x116CA, 0x116FF),
    (0x1171B, 0x1171C), (0x1172C, 0x1172F), (0x11747, 0x117FF), (0x1183C, 0x1189F),
    (0x118F3, 0x118FE), (0x11907, 0x11908), (0x1190A, 0x1190B), (0x11914, 0x11914),
    (0x11917, 0x11917), (0x11936, 0x11936), (0x11939, 0x1193A), (0x11947, 0x1194F),
    (0x1195A, 0x1199F), (0x119A8, 0x119A9), (0x119D8, 0x119D9), (0x119E5, 0x119FF),
    (0x11A48, 0x11A4F), (0x11AA3, 0x11AAF), (0x11AF9, 0x11BFF), (0x11C09, 0x11C09),
    (0x11C37, 0x11C37), (0x11C46, 0x11C4F), (0x11C6D, 0x11C6F), (0x11C90, 0x11C91),
    (0x11CA8, 0x11CA8), (0x11CB7, 0x11CFF), (0x11D07, 0x11D07), (0x11D0A, 0x11D0A),
    (0x11D37, 0x11D39), (0x11D3B, 0x11D3B), (0x11D3E, 0x11D3E), (0x11D48, 0x11D4F),
    (0x11D5A, 0x11D5F), (0x11D66, 0x11D66), (0x11D69, 0x11D69), (0x11D8F, 0x11D8F),
    (0x11D92, 0x11D92), (0x11D99, 0x11D9F), (0x11DAA, 0x11EDF), (0x11EF9, 0x11FAF),
    (0x11FB1, 0x11FBF), (0x11FF2, 0x11FFE), (0x1239A, 0x123FF), (0x1246F, 0x1246F),
    (0x12475, 0x1247F), (0x12544, 0x12F8F), (0x12FF3, 0x12FFF), (0x1342F, 0x143FF),
    (0x14647, 0x167FF), (0x16A39, 0x16A3F), (0x16A5F, 0x16A5F), (0x16A6A, 0x16A6D),
    (0x16ABF, 0x16ABF), (0x16ACA, 0x16ACF), (0x16AEE, 0x16AEF), (0x16AF6, 0x16AFF),
    (0x16B46, 0x16B4F), (0x16B5A, 0x16B5A), (0x16B62, 0x16B62), (0x16B78, 0x16B7C),
    (0x16B90, 0x16E3F), (0x16E9B, 0x16EFF), (0x16F4B, 0x16F4E), (0x16F88, 0x16F8E),
    (0x16FA0, 0x16FDF), (0x16FE5, 0x16FEF), (0x16FF2, 0x16FFF), (0x187F8, 0x187FF),
    (0x18CD6, 0x18CFF), (0x18D09, 0x1AFEF), (0x1AFF4, 0x1AFF4), (0x1AFFC, 0x1AFFC),
    (0x1AFFF, 0x1AFFF), (0x1B123, 0x1B14F), (0x1B153, 0x1B163), (0x1B168, 0x1B16F),
    (0x1B2FC, 0x1BBFF), (0x1BC6B, 0x1BC6F), (0x1BC7D, 0x1BC7F), (0x1BC89, 0x1BC8F),
    (0x1BC9A, 0x1BC9B), (0x1BCA0, 0x1CEFF), (0x1CF2E, 0x1CF2F), (0x1CF47, 0x1CF4F),
    (0x1CFC4, 0x1CFFF), (0x1D0F6, 0x1D0FF), (0x1D127, 0x1D128), (0x1D173, 0x1D17A),
    (0x1D1EB, 0x1D1FF), (0x1D246, 0x1D2DF), (0x1D2F4, 0x1D2FF), (0x1D357, 0x1D35F),
    (0x1D379, 0x1D3FF), (0x1D455, 0x1D455), (0x1D49D, 0x1D49D), (0x1D4A0, 0x1D4A1),
    (0x1D4A3, 0x1D4A4), (0x1D4A7, 0x1D4A8), (0x1D4AD, 0x1D4AD), (0x1D4BA, 0x1D4BA),
    (0x1D4BC, 0x1D4BC), (0x1D4C4, 0x1D4C4), (0x1D506, 0x1D506), (0x1D50B, 0x1D50C),
    (0x1D515, 0x1D515), (0x1D51D, 0x1D51D), (0x1D53A, 0x1D53A), (0x1D53F, 0x1D53F),
    (0x1D545, 0x1D545), (0x1D547, 0x1D549), (0x1D551, 0x1D551), (0x1D6A6, 0x1D6A7),
    (0x1D7CC, 0x1D7CD), (0x1DA8C, 0x1DA9A), (0x1DAA0, 0x1DAA0), (0x1DAB0, 0x1DEFF),
    (0x1DF1F, 0x1DFFF), (0x1E007, 0x1E007), (0x1E019, 0x1E01A), (0x1E022, 0x1E022),
    (0x1E025, 0x1E025), (0x1E02B, 0x1E0FF), (0x1E12D, 0x1E12F), (0x1E13E, 0x1E13F),
    (0x1E14A, 0x1E14D), (0x1E150, 0x1E28F), (0x1E2AF, 0x1E2BF), (0x1E2FA, 0x1E2FE),
    (0x1E300, 0x1E7DF), (0x1E7E7, 0x1E7E7), (0x1E7EC, 0x1E7EC), (0x1E7EF, 0x1E7EF),
    (0x1E7FF, 0x1E7FF), (0x1E8C5, 0x1E8C6), (0x1E8D7, 0x1E8FF), (0x1E94C, 0x1E94F),
    (0x1E95A, 0x1E95D), (0x1E960, 0x1EC70), (0x1ECB5, 0x1ED00), (0x1ED3E, 0x1EDFF),
    (0x1EE04, 0x1EE04), (0x1EE20, 0x1EE20), (0x1EE23, 0x1EE23), (0x1EE25, 0x1EE26),
    (0x1EE28, 0x1EE28), (0x1EE33, 0x1EE33), (0x1EE38, 0x1EE38), (0x1EE3A, 0x1EE3A),
    (0x1EE3C, 0x1EE41), (0x1EE43, 0x1EE46), (0x1EE48, 0x1EE48), (0x1EE4A, 0x1EE4A),
    (0x1EE4C, 0x1EE4C), (0x1EE50, 0x1EE50), (0x1EE53, 0x1EE53), (0x1EE55, 0x1EE56),
    (0x1EE58, 0x1EE58), (0x1EE5A, 0x1EE5A), (0x1EE5C, 0x1EE5C), (0x1EE5E, 0x1EE5E),
    (0x1EE60, 0x1EE60), (0x1EE63, 0x1EE63), (0x1EE65, 0x1EE66), (0x1EE6B, 0x1EE6B),
    (0x1EE73, 0x1EE73), (0x1EE78, 0x1EE78), (0x1EE7D, 0x1EE7D), (0x1EE7F, 0x1EE7F),
    (0x1EE8A, 0x1EE8A), (0x1EE9C, 0x1EEA0), (0x1EEA4, 0x1EEA4), (0x1EEAA, 0x1EEAA),
    (0x1EEBC, 0x1EEEF), (0x1EEF2, 0x1EFFF), (0x1F02C, 0x1F02F), (0x1F094, 0x1F09F),
    (0x1F0AF, 0x1F0B0), (0x1F0C0, 0x1F0C0), (0x1F0D0, 0x1F0D0), (0x1F0F6, 0x1F0FF),
    (0x1F1AE, 0x1F1E5), (0x1F203, 0x1F20F), (0x1F23C, 0x1F23F), (0x1F249, 0x1F24F),
    (0x1F252, 0x1F25F), (0x1F266, 0x1F2FF), (0x1F6D8, 0x1F6DC), (0x1F6ED, 0x1F6EF),
    (0x1F6FD, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D9, 0x1F7DF), (0x1F7EC, 0x1F7EF),
    (0x1F7F1, 0x1F7FF), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8AF), (0x1F8B2, 0x1F8FF), (0x1FA54, 0x1FA5F),
    (0x1FA6E, 0x1FA6F), (0x1FA75, 0x1FA77), (0x1FA7D, 0x1FA7F), (0x1FA87, 0x1FA8F),
    (0x1FAAD, 0x1FAAF), (0x1FABB, 0x1FABF), (0x1FAC6, 0x1FACF), (0x1FADA, 0x1FADF),
    (0x1FAE8, 0x1FAEF), (0x1FAF7, 0x1FAFF), (0x1FB93, 0x1FB93), (0x1FBCB, 0x1FBEF),
    (0x1FBFA, 0x1FFFF), (0x2A6E0, 0x2A6FF), (0x2B739, 0x2B73F), (0x2B81E, 0x2B81F),
    (0x2CEA2, 0x2CEAF), (0x2EBE1, 0x2F7FF), (0x2FA1E, 0x2FFFF), (0x3134B, 0xE00FF),
    (0xE01F0, 0x10FFFF),
];
// END GENERATED UNICODE TABLES
