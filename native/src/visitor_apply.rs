//! Adding one on-time event to a visitor's state: the Rust twin of `apply_event` and its
//! helpers in `streams/visitor.py`, and of `schemas/properties.py::property_values` (the
//! property values kept on funnel events).
//!
//! Python's `bisect.insort` is reproduced with the same probes (`bisect_right`), so an
//! event lands where Python puts it on any list. Where Python raises (an unknown
//! property name: KeyError; a page_url `urlsplit` refuses: ValueError), `apply_event`
//! returns the error with the state changed exactly as far as Python changed it.

use crate::attribution::{record_touch, touch_of, urlsplit, UrlError};
use crate::event::{Event, Item, Stream};
use crate::json::{self, Json, JsonError, JsonResult};
use crate::lifecycle::cart_order;
use crate::lives::add_activity;
use crate::rules::Rules;
use crate::state::{
    self, CartEvent, CartLine, Dims, FunnelEvent, OpenSession, OrderLine, Purchase, VisitorState,
};
use std::cmp::Ordering;

/// `Applied`: what `apply_event` did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Counted,
    Duplicate,
    Replayed,
}

impl Applied {
    /// The Python enum's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Counted => "counted",
            Applied::Duplicate => "duplicate",
            Applied::Replayed => "replayed",
        }
    }
}

/// `ORDER_KINDS`
pub const ORDER_KINDS: [&str; 4] = ["order_cancelled", "payment_failed", "purchase", "refund"];
/// `CART_KINDS`
pub const CART_KINDS: [&str; 5] = [
    "add_to_cart",
    "begin_checkout",
    "purchase",
    "remove_from_cart",
    "view_cart",
];

pub fn is_order_kind(kind: &str) -> bool {
    ORDER_KINDS.contains(&kind)
}

pub fn is_cart_kind(kind: &str) -> bool {
    CART_KINDS.contains(&kind)
}

/// Where the Python raises while reading an event's properties.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropertyError {
    /// `KeyError(name)`: not a property name (the funnel loader refuses these).
    Unknown(String),
    /// The `ValueError` `urlsplit(page_url)` raises (page_path).
    Url(&'static str),
}

impl std::fmt::Display for PropertyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyError::Unknown(name) => write!(f, "KeyError: {:?}", name),
            PropertyError::Url(why) => write!(f, "ValueError: {}", why),
        }
    }
}

// -- properties (schemas/properties.py) -------------------------------------------------

pub const CUSTOM_PREFIX: &str = "properties.";
pub const EXPERIMENT_PREFIX: &str = "experiment:";

/// `BUILTIN_PROPERTIES`' names, in the dict's order.
pub const BUILTIN_PROPERTIES: [&str; 23] = [
    "page_path",
    "page_url",
    "referrer",
    "search_term",
    "platform",
    "device",
    "country",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "referral_code",
    "coupon",
    "currency",
    "value_minor",
    "payment_type",
    "item_id",
    "item_name",
    "item_category",
    "item_brand",
    "price_minor",
    "quantity",
];

/// `_one` on a string: no value for None and ''.
fn one(value: Option<&str>) -> Vec<String> {
    match value {
        Some(s) if !s.is_empty() => vec![s.to_owned()],
        _ => Vec::new(),
    }
}

fn one_int(value: Option<i64>) -> Vec<String> {
    value.map_or_else(Vec::new, |n| vec![n.to_string()])
}

fn truthy(value: &Option<String>) -> Option<&str> {
    match value {
        Some(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `urlsplit(url).path` (CPython 3.11), or the ValueError urlsplit raises.
pub fn url_path(url: &str) -> Result<String, UrlError> {
    urlsplit(url)?; // the same checks, hence the same errors
    let url = url.trim_start_matches(|c: char| c <= ' ');
    let cleaned: String = url
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut rest: &str = &cleaned;
    if let Some(i) = rest.find(':') {
        let bytes = rest.as_bytes();
        if i > 0
            && bytes[0].is_ascii_alphabetic()
            && bytes[..i]
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        {
            rest = &rest[i + 1..];
        }
    }
    if let Some(after) = rest.strip_prefix("//") {
        rest = match after.find(['/', '?', '#']) {
            Some(end) => &after[end..],
            None => "",
        };
    }
    if let Some(at) = rest.find('#') {
        rest = &rest[..at];
    }
    if let Some(at) = rest.find('?') {
        rest = &rest[..at];
    }
    Ok(rest.to_owned())
}

fn page_path(event: &Event) -> Result<Vec<String>, PropertyError> {
    match truthy(&event.page_url) {
        None => Ok(Vec::new()),
        Some(url) => {
            // An unparsable page_url (an invalid IPv6 literal) has no path, as in
            // schemas/properties.py: a producer's URL must never stop the worker.
            let path = match url_path(url) {
                Ok(path) => path,
                Err(_) => return Ok(Vec::new()),
            };
            Ok(vec![if path.is_empty() {
                "/".to_owned()
            } else {
                path
            }])
        }
    }
}

/// `_coupons`: the event's coupon, then the items' coupons, each once, in that order.
fn coupons(event: &Event) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let all = truthy(&event.coupon)
        .into_iter()
        .chain(event.items.iter().filter_map(|i| truthy(&i.coupon)));
    for coupon in all {
        if !found.iter().any(|f| f == coupon) {
            found.push(coupon.to_owned());
        }
    }
    found
}

fn item_texts(event: &Event, field: fn(&Item) -> &Option<String>) -> Vec<String> {
    event
        .items
        .iter()
        .filter_map(|i| truthy(field(i)).map(str::to_owned))
        .collect()
}

fn lookup<'a>(entries: &'a [(String, String)], key: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `property_values(event, name)`: the values of property `name` on `event`.
pub fn property_values(event: &Event, name: &str) -> Result<Vec<String>, PropertyError> {
    let e = event;
    Ok(match name {
        "page_path" => return page_path(e),
        "page_url" => one(e.page_url.as_deref()),
        "referrer" => one(e.referrer.as_deref()),
        "search_term" => one(e.search_term.as_deref()),
        "platform" => one(Some(&e.platform)),
        "device" => one(Some(&e.device)),
        "country" => one(Some(&e.country)),
        "utm_source" => one(e.utm_source.as_deref()),
        "utm_medium" => one(e.utm_medium.as_deref()),
        "utm_campaign" => one(e.utm_campaign.as_deref()),
        "utm_content" => one(e.utm_content.as_deref()),
        "utm_term" => one(e.utm_term.as_deref()),
        "referral_code" => one(e.referral_code.as_deref()),
        "coupon" => coupons(e),
        "currency" => one(e.currency.as_deref()),
        "value_minor" => one_int(e.value_minor),
        "payment_type" => one(e.payment_type.as_deref()),
        "item_id" => e.items.iter().map(|i| i.item_id.clone()).collect(),
        "item_name" => item_texts(e, |i| &i.item_name),
        "item_category" => item_texts(e, |i| &i.item_category),
        "item_brand" => item_texts(e, |i| &i.item_brand),
        "price_minor" => e.items.iter().map(|i| i.price_minor.to_string()).collect(),
        "quantity" => e.items.iter().map(|i| i.quantity.to_string()).collect(),
        _ => {
            if let Some(key) = name.strip_prefix(CUSTOM_PREFIX) {
                one(lookup(&e.properties, key))
            } else if let Some(key) = name.strip_prefix(EXPERIMENT_PREFIX) {
                one(lookup(&e.experiments, key))
            } else {
                return Err(PropertyError::Unknown(name.to_owned()));
            }
        }
    })
}

/// `_funnel_props(event, names)`: (name, value) for each name's values, in order.
pub fn funnel_props(
    event: &Event,
    names: &[String],
) -> Result<Vec<(String, String)>, PropertyError> {
    let mut props = Vec::new();
    for name in names {
        for value in property_values(event, name)? {
            props.push((name.clone(), value));
        }
    }
    Ok(props)
}

// -- insort ------------------------------------------------------------------------------

/// `bisect.bisect_right` with Python's probes: `is_after(a[mid])` is `x < a[mid]`.
fn bisect_right<T>(list: &[T], is_after: impl Fn(&T) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, list.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if is_after(&list[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// FunnelEvent tuple order: (t, event_id, event_type, dims, props).
pub fn funnel_event_cmp(a: &FunnelEvent, b: &FunnelEvent) -> Ordering {
    (a.t, &a.event_id, &a.event_type, a.dims, &a.props).cmp(&(
        b.t,
        &b.event_id,
        &b.event_type,
        b.dims,
        &b.props,
    ))
}

/// Purchase tuple order: (t, transaction_id, value_minor, currency, channel).
pub fn purchase_cmp(a: &Purchase, b: &Purchase) -> Ordering {
    (
        a.t,
        &a.transaction_id,
        a.value_minor,
        &a.currency,
        &a.channel,
    )
        .cmp(&(
            b.t,
            &b.transaction_id,
            b.value_minor,
            &b.currency,
            &b.channel,
        ))
}

fn insort_event(events: &mut Vec<FunnelEvent>, event: FunnelEvent) {
    let at = bisect_right(events, |e| funnel_event_cmp(&event, e) == Ordering::Less);
    events.insert(at, event);
}

fn insort_purchase(purchases: &mut Vec<Purchase>, purchase: Purchase) {
    let at = bisect_right(purchases, |p| purchase_cmp(&purchase, p) == Ordering::Less);
    purchases.insert(at, purchase);
}

/// `insort(cart, event, key=cart_order)`: after the events of an equal key.
fn insort_cart(cart: &mut Vec<CartEvent>, event: CartEvent) {
    let at = {
        let key = cart_order(&event);
        bisect_right(cart, |c| key < cart_order(c))
    };
    cart.insert(at, event);
}

// -- apply_event -------------------------------------------------------------------------

/// Python's sum of ints, kept in i64 (saturating where Python would grow past it).
fn sum_i64(values: impl Iterator<Item = i128>) -> i64 {
    let total = values.fold(0i128, |acc, v| acc.saturating_add(v));
    total.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `_order_line(event, dims)`
pub fn order_line(event: &Event, dims: usize) -> OrderLine {
    let quantity = sum_i64(event.items.iter().map(|i| i.quantity as i128));
    let item_discount = sum_i64(
        event
            .items
            .iter()
            .map(|i| (i.discount_minor as i128).saturating_mul(i.quantity as i128)),
    );
    let has_coupon =
        truthy(&event.coupon).is_some() || event.items.iter().any(|i| truthy(&i.coupon).is_some());
    OrderLine {
        t: event.event_time_ms,
        event_id: event.event_id.clone(),
        kind: event.event_type.clone(),
        transaction_id: event.transaction_id.clone().unwrap_or_default(),
        value_minor: event.value_minor.unwrap_or(0),
        items: quantity,
        has_coupon,
        discount_minor: sum_i64(
            [
                event.discount_minor.unwrap_or(0) as i128,
                item_discount as i128,
            ]
            .into_iter(),
        ),
        dims,
        currency: event.currency.clone().unwrap_or_default(),
    }
}

/// `_remove_event(state, event_id)`: the event everywhere, and the purchases of the
/// transactions its order lines carried.
pub fn remove_event(state: &mut VisitorState, event_id: &str) {
    for session in state.sessions.iter_mut() {
        session.events.retain(|e| e.event_id != event_id);
    }
    state.user_events.retain(|e| e.event_id != event_id);
    let removed: Vec<String> = state
        .orders
        .iter()
        .filter(|o| o.event_id == event_id)
        .map(|o| o.transaction_id.clone())
        .collect();
    state.orders.retain(|o| o.event_id != event_id);
    state.cart.retain(|c| c.event_id != event_id);
    state.touches.retain(|t| t.event_id != event_id);
    state
        .purchases
        .retain(|p| !removed.iter().any(|r| *r == p.transaction_id));
}

/// `_purchase_is_duplicate(state, event)`: the earliest (event_time, event_id) of a
/// transaction id counts; an earlier copy replaces the counted one.
pub fn purchase_is_duplicate(state: &mut VisitorState, event: &Event) -> bool {
    let txn = event.transaction_id.as_deref().unwrap_or("");
    if !state.transactions.iter().any(|t| t == txn) {
        return false;
    }
    let counted = state
        .orders
        .iter()
        .find(|o| o.kind == "purchase" && o.transaction_id == txn)
        .map(|o| (o.t, o.event_id.clone()));
    match counted {
        Some((t, event_id)) => {
            if (event.event_time_ms, event.event_id.as_str()) < (t, event_id.as_str()) {
                remove_event(state, &event_id);
                false
            } else {
                true
            }
        }
        None => true, // the counted copy's window is already final; this one cannot be earlier
    }
}

/// `del transactions[: -keep]` with Python's slice rules.
fn keep_last(transactions: &mut Vec<String>, keep: i64) {
    let len = transactions.len() as i128;
    let keep = keep as i128;
    let stop = if keep > 0 {
        (len - keep).max(0)
    } else if keep == 0 {
        0 // [: -0] is [:0]
    } else {
        (-keep).min(len)
    };
    if stop > 0 {
        transactions.drain(..stop as usize);
    }
}

/// `apply_event`: add one on-time event to the visitor; idempotent for replays and
/// duplicates. Err where the Python raises (see `PropertyError`), the state then changed
/// as far as the Python had changed it.
pub fn apply_event(
    state: &mut VisitorState,
    event: &Event,
    dims: &Dims,
    stream: &str,
    offset: i64,
    rules: &Rules,
) -> Result<Applied, PropertyError> {
    match state.applied.iter_mut().find(|(s, _)| s == stream) {
        Some(entry) => {
            if offset <= entry.1 {
                return Ok(Applied::Replayed);
            }
            entry.1 = offset;
        }
        None => {
            if offset <= -1 {
                return Ok(Applied::Replayed);
            }
            state.applied.push((stream.to_owned(), offset));
        }
    }
    let session_at = state
        .sessions
        .iter()
        .position(|s| s.session_id == event.session_id);
    if let Some(at) = session_at {
        if state.sessions[at]
            .events
            .iter()
            .any(|seen| seen.event_id == event.event_id)
        {
            return Ok(Applied::Duplicate);
        }
    }
    if event.event_type == "purchase" && purchase_is_duplicate(state, event) {
        return Ok(Applied::Duplicate);
    }
    let dims_index = state.intern_dims(dims);
    let props = if rules.property_names.is_empty() {
        Vec::new()
    } else {
        funnel_props(event, &rules.property_names)?
    };
    let funnel_event = FunnelEvent {
        t: event.event_time_ms,
        event_id: event.event_id.clone(),
        event_type: event.event_type.clone(),
        dims: dims_index,
        props,
    };
    let at = match session_at {
        Some(at) => at,
        None => {
            state.sessions.push(OpenSession {
                session_id: event.session_id.clone(),
                closed_segments: 0,
                events: Vec::new(),
            });
            state.sessions.len() - 1
        }
    };
    if rules.user_funnels_use(&event.event_type) {
        insort_event(&mut state.user_events, funnel_event.clone());
    }
    insort_event(&mut state.sessions[at].events, funnel_event);
    if state.anonymous_id.is_empty() {
        state.anonymous_id = event.anonymous_id.clone();
    }
    if is_order_kind(&event.event_type) {
        state.orders.push(order_line(event, dims_index));
    }
    if event.event_type == "purchase" {
        let txn = event.transaction_id.clone().unwrap_or_default();
        state.transactions.push(txn.clone());
        keep_last(&mut state.transactions, rules.max_transactions);
        let earlier = match &state.first_purchase {
            None => true,
            Some((t, first)) => (event.event_time_ms, txn.as_str()) < (*t, first.as_str()),
        };
        if earlier {
            state.first_purchase = Some((event.event_time_ms, txn));
        }
    }
    let t = event.event_time_ms;
    state.first_seen_t = Some(state.first_seen_t.map_or(t, |first| first.min(t)));
    state.last_seen_t = Some(state.last_seen_t.map_or(t, |last| last.max(t)));
    if let Some(user_id) = truthy(&event.user_id) {
        state.user_id = Some(user_id.to_owned());
    }
    track_lifecycle(state, event, dims);
    record_touch(
        &mut state.touches,
        touch_of(event, &dims[0], &dims[1]),
        &rules.attribution,
    );
    Ok(Applied::Counted)
}

/// `_track_lifecycle`: retention activity, purchases and cart events of a counted event.
pub fn track_lifecycle(state: &mut VisitorState, event: &Event, dims: &Dims) {
    let (t, channel) = (event.event_time_ms, &dims[0]);
    add_activity(
        &mut state.days,
        t,
        &event.event_id,
        channel,
        &event.platform,
    );
    if event.event_type == "purchase" {
        let purchase = Purchase {
            t,
            transaction_id: event.transaction_id.clone().unwrap_or_default(),
            value_minor: event.value_minor.unwrap_or(0),
            currency: event.currency.clone().unwrap_or_default(),
            channel: channel.clone(),
        };
        insort_purchase(&mut state.purchases, purchase);
    }
    if is_cart_kind(&event.event_type) {
        let lines = event
            .items
            .iter()
            .map(|i| CartLine {
                item_id: i.item_id.clone(),
                quantity: i.quantity,
                unit_price_minor: i.price_minor,
            })
            .collect();
        let cart_event = CartEvent {
            t,
            event_id: event.event_id.clone(),
            kind: event.event_type.clone(),
            lines,
            currency: event.currency.clone().unwrap_or_default(),
            channel: channel.clone(),
        };
        insort_cart(&mut state.cart, cart_event);
    }
}

// -- probes ------------------------------------------------------------------------------

fn field<'a>(entries: &'a [(String, Json)], name: &str) -> Option<&'a Json> {
    entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn need<'a>(entries: &'a [(String, Json)], name: &str) -> JsonResult<&'a Json> {
    field(entries, name).ok_or_else(|| JsonError(format!("missing {:?}", name)))
}

fn opt_text(entries: &[(String, Json)], name: &str) -> JsonResult<Option<String>> {
    match field(entries, name) {
        None => Ok(None),
        Some(v) => Ok(v.opt_str(name)?.map(str::to_owned)),
    }
}

fn opt_int(entries: &[(String, Json)], name: &str) -> JsonResult<Option<i64>> {
    match field(entries, name) {
        None => Ok(None),
        Some(v) => v.opt_int(name),
    }
}

fn text_pairs(entries: &[(String, Json)], name: &str) -> JsonResult<Vec<(String, String)>> {
    match field(entries, name) {
        None => Ok(Vec::new()),
        Some(v) => v
            .object(name)?
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.str(name)?.to_owned())))
            .collect(),
    }
}

fn item_from_json(value: &Json) -> JsonResult<Item> {
    let f = value.object("an item")?;
    let mut item = Item::new(
        need(f, "item_id")?.str("item_id")?.to_owned(),
        need(f, "price_minor")?.int("price_minor")?,
    );
    if let Some(q) = opt_int(f, "quantity")? {
        item.quantity = q;
    }
    item.item_name = opt_text(f, "item_name")?;
    item.item_category = opt_text(f, "item_category")?;
    item.item_brand = opt_text(f, "item_brand")?;
    item.item_variant = opt_text(f, "item_variant")?;
    item.coupon = opt_text(f, "coupon")?;
    if let Some(d) = opt_int(f, "discount_minor")? {
        item.discount_minor = d;
    }
    Ok(item)
}

impl Event {
    /// An event from the object `Event::to_json` writes (fields after session_id may be
    /// left out: the dataclass defaults).
    pub fn from_json(value: &Json) -> JsonResult<Event> {
        let f = value.object("an event")?;
        let text = |name: &str| -> JsonResult<String> { Ok(need(f, name)?.str(name)?.to_owned()) };
        let stream_name = text("stream")?;
        let stream = Stream::parse(&stream_name)
            .ok_or_else(|| JsonError(format!("unknown stream {:?}", stream_name)))?;
        let mut event = Event::new(
            stream,
            text("event_type")?,
            text("event_id")?,
            need(f, "event_time_ms")?.int("event_time_ms")?,
            need(f, "sent_time_ms")?.int("sent_time_ms")?,
            text("anonymous_id")?,
            text("session_id")?,
        );
        event.user_id = opt_text(f, "user_id")?;
        for (name, slot) in [
            ("platform", &mut event.platform),
            ("device", &mut event.device),
            ("country", &mut event.country),
        ] {
            if let Some(v) = field(f, name) {
                *slot = v.str(name)?.to_owned();
            }
        }
        event.page_url = opt_text(f, "page_url")?;
        event.referrer = opt_text(f, "referrer")?;
        event.utm_source = opt_text(f, "utm_source")?;
        event.utm_medium = opt_text(f, "utm_medium")?;
        event.utm_campaign = opt_text(f, "utm_campaign")?;
        event.utm_content = opt_text(f, "utm_content")?;
        event.utm_term = opt_text(f, "utm_term")?;
        event.experiments = text_pairs(f, "experiments")?;
        event.referral_code = opt_text(f, "referral_code")?;
        event.search_term = opt_text(f, "search_term")?;
        if let Some(items) = field(f, "items") {
            event.items = items
                .list("items")?
                .iter()
                .map(item_from_json)
                .collect::<JsonResult<_>>()?;
        }
        event.cart_id = opt_text(f, "cart_id")?;
        event.transaction_id = opt_text(f, "transaction_id")?;
        event.currency = opt_text(f, "currency")?;
        event.value_minor = opt_int(f, "value_minor")?;
        event.tax_minor = opt_int(f, "tax_minor")?;
        event.shipping_minor = opt_int(f, "shipping_minor")?;
        event.coupon = opt_text(f, "coupon")?;
        event.discount_minor = opt_int(f, "discount_minor")?;
        event.payment_type = opt_text(f, "payment_type")?;
        event.refund_reason = opt_text(f, "refund_reason")?;
        event.payment_error_code = opt_text(f, "payment_error_code")?;
        event.properties = text_pairs(f, "properties")?;
        Ok(event)
    }
}

fn dims_from_json(value: &Json) -> JsonResult<Dims> {
    let d = value.list("dims")?;
    if d.len() != 5 {
        return Err(JsonError(format!("dims has {} fields, not 5", d.len())));
    }
    Ok([
        d[0].str("dims")?.to_owned(),
        d[1].str("dims")?.to_owned(),
        d[2].str("dims")?.to_owned(),
        d[3].str("dims")?.to_owned(),
        d[4].str("dims")?.to_owned(),
    ])
}

fn decode_state(value: &Json, anonymous_id: &str) -> JsonResult<VisitorState> {
    state::decode(&json::to_bytes(value), anonymous_id).map_err(|e| match e {
        state::DecodeError::Version(v) => JsonError(format!("state version {}", v)),
        state::DecodeError::Unreadable(why) => JsonError(why),
    })
}

fn strings(values: &[String]) -> Json {
    Json::List(values.iter().map(|v| Json::s(v)).collect())
}

fn values_json(result: Result<Vec<String>, PropertyError>) -> Json {
    match result {
        Ok(values) => Json::Object(vec![("ok".into(), strings(&values))]),
        Err(e) => Json::Object(vec![("error".into(), Json::s(&e.to_string()))]),
    }
}

/// One apply_event call: {state, anonymous_id, event, dims, stream, offset} ->
/// {applied | error, state (its encoding, as a string), anonymous_id}.
fn apply_call(call: &Json, rules: &Rules) -> JsonResult<Json> {
    let c = call.object("a call")?;
    let anonymous_id = need(c, "anonymous_id")?.str("anonymous_id")?;
    let mut state = decode_state(need(c, "state")?, anonymous_id)?;
    let event = Event::from_json(need(c, "event")?)?;
    let dims = dims_from_json(need(c, "dims")?)?;
    let stream = need(c, "stream")?.str("stream")?;
    let offset = need(c, "offset")?.int("offset")?;
    let outcome = match apply_event(&mut state, &event, &dims, stream, offset, rules) {
        Ok(applied) => ("applied".to_owned(), Json::s(applied.as_str())),
        Err(e) => ("error".to_owned(), Json::s(&e.to_string())),
    };
    // The state as the bytes `state::encode` writes (compared with encode_state's).
    let encoded = String::from_utf8(state::encode(&state))
        .map_err(|_| JsonError("the state encodes to invalid UTF-8".into()))?;
    Ok(Json::Object(vec![
        outcome,
        ("state".into(), Json::Str(encoded)),
        ("anonymous_id".into(), Json::s(&state.anonymous_id)),
    ]))
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    let a = args.object("the arguments")?;
    match name {
        "visitor_apply.apply_batch" => {
            let rules = Rules::from_json(need(a, "rules")?)?;
            let calls = need(a, "calls")?.list("calls")?;
            Ok(Json::List(
                calls
                    .iter()
                    .map(|call| apply_call(call, &rules))
                    .collect::<JsonResult<_>>()?,
            ))
        }
        "visitor_apply.property_values" => {
            let event = Event::from_json(need(a, "event")?)?;
            let names = need(a, "names")?.list("names")?;
            let mut out = Vec::new();
            for n in names {
                out.push(values_json(property_values(&event, n.str("a name")?)));
            }
            Ok(Json::List(out))
        }
        "visitor_apply.order_line" => {
            let event = Event::from_json(need(a, "event")?)?;
            let dims = need(a, "dims")?.int("dims")?;
            let dims = usize::try_from(dims).map_err(|_| JsonError("negative dims".into()))?;
            let o = order_line(&event, dims);
            Ok(Json::List(vec![
                Json::Int(o.t),
                Json::s(&o.event_id),
                Json::s(&o.kind),
                Json::s(&o.transaction_id),
                Json::Int(o.value_minor),
                Json::Int(o.items),
                Json::Bool(o.has_coupon),
                Json::Int(o.discount_minor),
                Json::Int(o.dims as i64),
                Json::s(&o.currency),
            ]))
        }
        _ => Err(JsonError(format!("unknown probe {:?}", name))),
    }
}

/// Probes "visitor_apply.apply_batch", "visitor_apply.property_values",
/// "visitor_apply.order_line".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if !name.starts_with("visitor_apply.") {
        return None;
    }
    Some(run_probe(name, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_urlsplit() {
        let cases = [
            ("https://shop.example/a/b?x=1#f", "/a/b"),
            ("https://shop.example", ""),
            ("https://shop.example?x", ""),
            ("/p?q", "/p"),
            ("  \thttp://h/p\n/q", "/p/q"),
            ("mailto:x@y", "x@y"),
            ("1http://h/p", "1http://h/p"),
            ("//h#x/y", ""),
        ];
        for (url, path) in cases {
            assert_eq!(url_path(url).as_deref(), Ok(path), "{}", url);
        }
        assert!(url_path("http://[x/").is_err());
    }

    #[test]
    fn transactions_slice() {
        let make = || (0..5).map(|i| i.to_string()).collect::<Vec<_>>();
        for (keep, left) in [(3, 3), (10, 5), (0, 5), (-2, 3), (-9, 0)] {
            let mut t = make();
            keep_last(&mut t, keep);
            assert_eq!(t.len(), left, "{}", keep);
        }
    }
}
