//! A visitor's state and its changelog encoding: the Rust twin of `streams/state.py`.
//!
//! The types mirror the Python ones field for field, and `encode` writes the same bytes
//! as `streams.state.encode_state` (same nested lists, same dimension compaction), so the
//! compiled core and the Python core can read each other's changelog and a differential
//! test can compare their state bytes (tests/native/test_state_codec.py).

use crate::json::{self, Json, JsonError, JsonResult};

pub const FORMAT_VERSION: i64 = 2;

/// channel, campaign, device, platform, country
pub type Dims = [String; 5];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunnelEvent {
    pub t: i64,
    pub event_id: String,
    pub event_type: String,
    /// Index into the visitor's interned dimension tuples.
    pub dims: usize,
    /// (name, value) of the properties some configured funnel names.
    pub props: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSession {
    pub session_id: String,
    pub closed_segments: i64,
    pub events: Vec<FunnelEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedCredit {
    pub funnel: String,
    pub window: i64,
    pub dims: usize,
    pub level: i64,
    pub ttc_ms: Option<i64>,
    pub entity: String,
    pub start_event_id: String,
    pub step_times: Vec<i64>,
    pub breakdown: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLine {
    pub t: i64,
    pub event_id: String,
    pub kind: String,
    pub transaction_id: String,
    pub value_minor: i64,
    pub items: i64,
    pub has_coupon: bool,
    pub discount_minor: i64,
    pub dims: usize,
    pub currency: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayActivity {
    pub day: i64,
    pub first_t: i64,
    pub first_event_id: String,
    pub channel: String,
    pub platform: String,
    pub last_t: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    pub t: i64,
    pub transaction_id: String,
    pub value_minor: i64,
    pub currency: String,
    pub channel: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartLine {
    pub item_id: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartEvent {
    pub t: i64,
    pub event_id: String,
    /// add_to_cart | remove_from_cart | view_cart | begin_checkout | purchase
    pub kind: String,
    pub lines: Vec<CartLine>,
    pub currency: String,
    pub channel: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touch {
    pub t: i64,
    pub session_id: String,
    pub event_id: String,
    pub channel: String,
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub kol: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgetMark {
    pub request_id: String,
    pub requested_at: i64,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl ForgetMark {
    pub fn covers(&self, event_time_ms: i64, appended_at_ms: i64) -> bool {
        appended_at_ms <= self.requested_at
            && self.from_ms.map_or(true, |from| event_time_ms >= from)
            && self.to_ms.map_or(true, |to| event_time_ms < to)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitorState {
    pub partition: i64,
    pub anonymous_id: String,
    pub dims: Vec<Dims>,
    /// Open sessions in insertion order (a Python dict keyed by session id).
    pub sessions: Vec<OpenSession>,
    pub closed: Vec<ClosedCredit>,
    pub orders: Vec<OrderLine>,
    pub transactions: Vec<String>,
    pub first_purchase: Option<(i64, String)>,
    pub first_seen_t: Option<i64>,
    pub last_seen_t: Option<i64>,
    pub user_id: Option<String>,
    /// Highest source offset applied, per input stream name, in insertion order.
    pub applied: Vec<(String, i64)>,
    pub user_events: Vec<FunnelEvent>,
    pub user_closed_groups: i64,
    pub user_consumed: Vec<(String, i64)>,
    pub days: Vec<DayActivity>,
    pub purchases: Vec<Purchase>,
    pub cart: Vec<CartEvent>,
    pub stage: String,
    pub lifecycle_as_of: Option<i64>,
    pub touches: Vec<Touch>,
    pub forgets: Vec<ForgetMark>,
}

pub use crate::lifecycle::PROSPECT;

impl VisitorState {
    pub fn new(partition: i64, anonymous_id: &str) -> Self {
        VisitorState {
            partition,
            anonymous_id: anonymous_id.to_owned(),
            dims: Vec::new(),
            sessions: Vec::new(),
            closed: Vec::new(),
            orders: Vec::new(),
            transactions: Vec::new(),
            first_purchase: None,
            first_seen_t: None,
            last_seen_t: None,
            user_id: None,
            applied: Vec::new(),
            user_events: Vec::new(),
            user_closed_groups: 0,
            user_consumed: Vec::new(),
            days: Vec::new(),
            purchases: Vec::new(),
            cart: Vec::new(),
            stage: PROSPECT.to_owned(),
            lifecycle_as_of: None,
            touches: Vec::new(),
            forgets: Vec::new(),
        }
    }

    pub fn intern_dims(&mut self, dims: &Dims) -> usize {
        match self.dims.iter().position(|d| d == dims) {
            Some(index) => index,
            None => {
                self.dims.push(dims.clone());
                self.dims.len() - 1
            }
        }
    }

    pub fn session_mut(&mut self, session_id: &str) -> Option<&mut OpenSession> {
        self.sessions
            .iter_mut()
            .find(|s| s.session_id == session_id)
    }

    /// Dimension tuples still referenced, and the old -> new index map (None: dropped).
    fn compact_dims(&self) -> (Vec<&Dims>, Vec<Option<usize>>) {
        let mut used = vec![false; self.dims.len()];
        let mut mark = |i: usize| {
            if i < used.len() {
                used[i] = true;
            }
        };
        for session in &self.sessions {
            session.events.iter().for_each(|e| mark(e.dims));
        }
        self.closed.iter().for_each(|c| mark(c.dims));
        self.orders.iter().for_each(|o| mark(o.dims));
        self.user_events.iter().for_each(|e| mark(e.dims));
        let mut kept = Vec::new();
        let mut remap = vec![None; self.dims.len()];
        for (old, is_used) in used.iter().enumerate() {
            if *is_used {
                remap[old] = Some(kept.len());
                kept.push(&self.dims[old]);
            }
        }
        (kept, remap)
    }
}

// -- encoding ----------------------------------------------------------------------------

fn strs(values: &[String]) -> Json {
    Json::List(values.iter().map(|v| Json::s(v)).collect())
}

fn ints(values: &[i64]) -> Json {
    Json::List(values.iter().map(|v| Json::Int(*v)).collect())
}

fn index(remap: &[Option<usize>], i: usize) -> Json {
    // Every referenced index is kept by compact_dims; an index past the table is a bug
    // upstream, written as is so that the Python decoder reports it.
    Json::Int(remap.get(i).copied().flatten().unwrap_or(i) as i64)
}

fn encode_event(e: &FunnelEvent, remap: &[Option<usize>]) -> Json {
    let mut encoded = vec![
        Json::Int(e.t),
        Json::s(&e.event_id),
        Json::s(&e.event_type),
        index(remap, e.dims),
    ];
    if !e.props.is_empty() {
        encoded.push(Json::List(
            e.props
                .iter()
                .map(|(k, v)| Json::List(vec![Json::s(k), Json::s(v)]))
                .collect(),
        ));
    }
    Json::List(encoded)
}

fn pairs(entries: &[(String, i64)]) -> Json {
    Json::Object(
        entries
            .iter()
            .map(|(k, v)| (k.clone(), Json::Int(*v)))
            .collect(),
    )
}

pub fn day_json(d: &DayActivity) -> Json {
    Json::List(vec![
        Json::Int(d.day),
        Json::Int(d.first_t),
        Json::s(&d.first_event_id),
        Json::s(&d.channel),
        Json::s(&d.platform),
        Json::Int(d.last_t),
    ])
}

pub fn purchase_json(p: &Purchase) -> Json {
    Json::List(vec![
        Json::Int(p.t),
        Json::s(&p.transaction_id),
        Json::Int(p.value_minor),
        Json::s(&p.currency),
        Json::s(&p.channel),
    ])
}

pub fn cart_json(c: &CartEvent) -> Json {
    Json::List(vec![
        Json::Int(c.t),
        Json::s(&c.event_id),
        Json::s(&c.kind),
        Json::List(
            c.lines
                .iter()
                .map(|l| {
                    Json::List(vec![
                        Json::s(&l.item_id),
                        Json::Int(l.quantity),
                        Json::Int(l.unit_price_minor),
                    ])
                })
                .collect(),
        ),
        Json::s(&c.currency),
        Json::s(&c.channel),
    ])
}

pub fn to_json(state: &VisitorState) -> Json {
    let (dims, remap) = state.compact_dims();
    let remap = remap.as_slice();
    let sessions = state
        .sessions
        .iter()
        .map(|s| {
            Json::List(vec![
                Json::s(&s.session_id),
                Json::Int(s.closed_segments),
                Json::List(s.events.iter().map(|e| encode_event(e, remap)).collect()),
            ])
        })
        .collect();
    let closed = state
        .closed
        .iter()
        .map(|c| {
            Json::List(vec![
                Json::s(&c.funnel),
                Json::Int(c.window),
                index(remap, c.dims),
                Json::Int(c.level),
                Json::opt_i(c.ttc_ms),
                Json::s(&c.entity),
                Json::s(&c.start_event_id),
                ints(&c.step_times),
                strs(&c.breakdown),
            ])
        })
        .collect();
    let orders = state
        .orders
        .iter()
        .map(|o| {
            Json::List(vec![
                Json::Int(o.t),
                Json::s(&o.event_id),
                Json::s(&o.kind),
                Json::s(&o.transaction_id),
                Json::Int(o.value_minor),
                Json::Int(o.items),
                Json::Bool(o.has_coupon),
                Json::Int(o.discount_minor),
                index(remap, o.dims),
                Json::s(&o.currency),
            ])
        })
        .collect();
    let days = state.days.iter().map(day_json).collect();
    let purchases = state.purchases.iter().map(purchase_json).collect();
    let cart = state.cart.iter().map(cart_json).collect();
    let touches = state
        .touches
        .iter()
        .map(|t| {
            Json::List(vec![
                Json::Int(t.t),
                Json::s(&t.session_id),
                Json::s(&t.event_id),
                Json::s(&t.channel),
                Json::s(&t.source),
                Json::s(&t.medium),
                Json::s(&t.campaign),
                Json::s(&t.kol),
            ])
        })
        .collect();
    let forgets = state
        .forgets
        .iter()
        .map(|m| {
            Json::List(vec![
                Json::s(&m.request_id),
                Json::Int(m.requested_at),
                Json::opt_i(m.from_ms),
                Json::opt_i(m.to_ms),
            ])
        })
        .collect();
    Json::List(vec![
        Json::Int(FORMAT_VERSION),
        Json::Int(state.partition),
        Json::List(dims.iter().map(|d| strs(&d[..])).collect()),
        Json::List(sessions),
        Json::List(closed),
        Json::List(orders),
        strs(&state.transactions),
        match &state.first_purchase {
            Some((t, transaction)) => Json::List(vec![Json::Int(*t), Json::s(transaction)]),
            None => Json::Null,
        },
        Json::opt_i(state.first_seen_t),
        Json::opt_i(state.last_seen_t),
        state.user_id.as_deref().map_or(Json::Null, Json::s),
        pairs(&state.applied),
        Json::List(
            state
                .user_events
                .iter()
                .map(|e| encode_event(e, remap))
                .collect(),
        ),
        Json::Int(state.user_closed_groups),
        Json::List(days),
        Json::List(purchases),
        Json::List(cart),
        Json::s(&state.stage),
        Json::opt_i(state.lifecycle_as_of),
        pairs(&state.user_consumed),
        Json::List(touches),
        Json::List(forgets),
    ])
}

/// The changelog bytes of `state`: the same bytes as `json::to_bytes(&to_json(state))`
/// (a unit test holds the two together), written straight into one buffer because this
/// runs for every visitor a batch touches.
pub fn encode(state: &VisitorState) -> Vec<u8> {
    let (dims, remap) = state.compact_dims();
    let mut w = Writer {
        out: Vec::with_capacity(512),
        remap: &remap,
    };
    w.out.push(b'[');
    w.int(FORMAT_VERSION);
    w.comma_int(state.partition);
    w.out.extend_from_slice(b",[");
    for (i, d) in dims.iter().enumerate() {
        w.sep(i);
        w.strs(&d[..]);
    }
    w.out.extend_from_slice(b"],[");
    for (i, s) in state.sessions.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.str(&s.session_id);
        w.comma_int(s.closed_segments);
        w.out.push(b',');
        w.events(&s.events);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],[");
    for (i, c) in state.closed.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.str(&c.funnel);
        w.comma_int(c.window);
        w.comma_dims(c.dims);
        w.comma_int(c.level);
        w.out.push(b',');
        w.opt_int(c.ttc_ms);
        w.out.push(b',');
        w.str(&c.entity);
        w.out.push(b',');
        w.str(&c.start_event_id);
        w.out.push(b',');
        w.ints(&c.step_times);
        w.out.push(b',');
        w.strs(&c.breakdown);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],[");
    for (i, o) in state.orders.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.int(o.t);
        w.out.push(b',');
        w.str(&o.event_id);
        w.out.push(b',');
        w.str(&o.kind);
        w.out.push(b',');
        w.str(&o.transaction_id);
        w.comma_int(o.value_minor);
        w.comma_int(o.items);
        w.out
            .extend_from_slice(if o.has_coupon { b",true" } else { b",false" });
        w.comma_int(o.discount_minor);
        w.comma_dims(o.dims);
        w.out.push(b',');
        w.str(&o.currency);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],");
    w.strs(&state.transactions);
    w.out.push(b',');
    match &state.first_purchase {
        Some((t, transaction)) => {
            w.out.push(b'[');
            w.int(*t);
            w.out.push(b',');
            w.str(transaction);
            w.out.push(b']');
        }
        None => w.out.extend_from_slice(b"null"),
    }
    w.out.push(b',');
    w.opt_int(state.first_seen_t);
    w.out.push(b',');
    w.opt_int(state.last_seen_t);
    w.out.push(b',');
    match &state.user_id {
        Some(user) => w.str(user),
        None => w.out.extend_from_slice(b"null"),
    }
    w.out.push(b',');
    w.pairs(&state.applied);
    w.out.push(b',');
    w.events(&state.user_events);
    w.comma_int(state.user_closed_groups);
    w.out.extend_from_slice(b",[");
    for (i, d) in state.days.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.int(d.day);
        w.comma_int(d.first_t);
        w.out.push(b',');
        w.str(&d.first_event_id);
        w.out.push(b',');
        w.str(&d.channel);
        w.out.push(b',');
        w.str(&d.platform);
        w.comma_int(d.last_t);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],[");
    for (i, p) in state.purchases.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.int(p.t);
        w.out.push(b',');
        w.str(&p.transaction_id);
        w.comma_int(p.value_minor);
        w.out.push(b',');
        w.str(&p.currency);
        w.out.push(b',');
        w.str(&p.channel);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],[");
    for (i, c) in state.cart.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.int(c.t);
        w.out.push(b',');
        w.str(&c.event_id);
        w.out.push(b',');
        w.str(&c.kind);
        w.out.extend_from_slice(b",[");
        for (j, l) in c.lines.iter().enumerate() {
            w.sep(j);
            w.out.push(b'[');
            w.str(&l.item_id);
            w.comma_int(l.quantity);
            w.comma_int(l.unit_price_minor);
            w.out.push(b']');
        }
        w.out.extend_from_slice(b"],");
        w.str(&c.currency);
        w.out.push(b',');
        w.str(&c.channel);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],");
    w.str(&state.stage);
    w.out.push(b',');
    w.opt_int(state.lifecycle_as_of);
    w.out.push(b',');
    w.pairs(&state.user_consumed);
    w.out.extend_from_slice(b",[");
    for (i, t) in state.touches.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.int(t.t);
        for text in [
            &t.session_id,
            &t.event_id,
            &t.channel,
            &t.source,
            &t.medium,
            &t.campaign,
            &t.kol,
        ] {
            w.out.push(b',');
            w.str(text);
        }
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"],[");
    for (i, m) in state.forgets.iter().enumerate() {
        w.sep(i);
        w.out.push(b'[');
        w.str(&m.request_id);
        w.comma_int(m.requested_at);
        w.out.push(b',');
        w.opt_int(m.from_ms);
        w.out.push(b',');
        w.opt_int(m.to_ms);
        w.out.push(b']');
    }
    w.out.extend_from_slice(b"]]");
    w.out
}

struct Writer<'a> {
    out: Vec<u8>,
    remap: &'a [Option<usize>],
}

impl<'a> Writer<'a> {
    fn sep(&mut self, i: usize) {
        if i > 0 {
            self.out.push(b',');
        }
    }

    fn int(&mut self, n: i64) {
        json::write_int(n, &mut self.out);
    }

    fn comma_int(&mut self, n: i64) {
        self.out.push(b',');
        self.int(n);
    }

    fn opt_int(&mut self, n: Option<i64>) {
        match n {
            Some(n) => self.int(n),
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn comma_dims(&mut self, i: usize) {
        let index = self.remap.get(i).copied().flatten().unwrap_or(i) as i64;
        self.comma_int(index);
    }

    fn str(&mut self, s: &str) {
        json::write_str(s, &mut self.out);
    }

    fn strs(&mut self, values: &[String]) {
        self.out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            self.sep(i);
            self.str(v);
        }
        self.out.push(b']');
    }

    fn ints(&mut self, values: &[i64]) {
        self.out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            self.sep(i);
            self.int(*v);
        }
        self.out.push(b']');
    }

    fn pairs(&mut self, entries: &[(String, i64)]) {
        self.out.push(b'{');
        for (i, (k, v)) in entries.iter().enumerate() {
            self.sep(i);
            self.str(k);
            self.out.push(b':');
            self.int(*v);
        }
        self.out.push(b'}');
    }

    fn events(&mut self, events: &[FunnelEvent]) {
        self.out.push(b'[');
        for (i, e) in events.iter().enumerate() {
            self.sep(i);
            self.out.push(b'[');
            self.int(e.t);
            self.out.push(b',');
            self.str(&e.event_id);
            self.out.push(b',');
            self.str(&e.event_type);
            self.comma_dims(e.dims);
            if !e.props.is_empty() {
                self.out.extend_from_slice(b",[");
                for (j, (k, v)) in e.props.iter().enumerate() {
                    self.sep(j);
                    self.out.push(b'[');
                    self.str(k);
                    self.out.push(b',');
                    self.str(v);
                    self.out.push(b']');
                }
                self.out.push(b']');
            }
            self.out.push(b']');
        }
        self.out.push(b']');
    }
}

// -- decoding ----------------------------------------------------------------------------

/// Why a stored state cannot be read (the caller words the error for the operator).
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Written by another format version of the worker.
    Version(i64),
    /// Not a visitor state at all.
    Unreadable(String),
}

impl From<JsonError> for DecodeError {
    fn from(e: JsonError) -> Self {
        DecodeError::Unreadable(e.0)
    }
}

fn fields<'a>(value: &'a Json, what: &str, at_least: usize) -> JsonResult<&'a [Json]> {
    let items = value.list(what)?;
    if items.len() < at_least {
        return Err(JsonError(format!(
            "{} has {} fields, fewer than {}",
            what,
            items.len(),
            at_least
        )));
    }
    Ok(items)
}

fn exactly<'a>(value: &'a Json, what: &str, n: usize) -> JsonResult<&'a [Json]> {
    let items = fields(value, what, n)?;
    if items.len() > n {
        return Err(JsonError(format!(
            "{} has {} fields, more than {}",
            what,
            items.len(),
            n
        )));
    }
    Ok(items)
}

fn string(value: &Json, what: &str) -> JsonResult<String> {
    value.str(what).map(str::to_owned)
}

fn usize_of(value: &Json, what: &str) -> JsonResult<usize> {
    let n = value.int(what)?;
    usize::try_from(n).map_err(|_| JsonError(format!("{} is negative", what)))
}

fn string_list(value: &Json, what: &str) -> JsonResult<Vec<String>> {
    value.list(what)?.iter().map(|v| string(v, what)).collect()
}

fn int_pairs(value: &Json, what: &str) -> JsonResult<Vec<(String, i64)>> {
    value
        .object(what)?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.int(what)?)))
        .collect()
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_event(value: &Json) -> JsonResult<FunnelEvent> {
    let f = fields(value, "an event", 4)?;
    if f.len() > 5 {
        return Err(JsonError(format!(
            "an event has {} fields, more than 5",
            f.len()
        )));
    }
    let props = match f.get(4) {
        None => Vec::new(),
        Some(raw) => raw
            .list("an event's properties")?
            .iter()
            .map(|p| {
                let kv = exactly(p, "an event property", 2)?;
                Ok((
                    string(&kv[0], "a property name")?,
                    string(&kv[1], "a property value")?,
                ))
            })
            .collect::<JsonResult<_>>()?,
    };
    Ok(FunnelEvent {
        t: f[0].int("an event's time")?,
        event_id: string(&f[1], "an event id")?,
        event_type: string(&f[2], "an event type")?,
        dims: usize_of(&f[3], "an event's dims")?,
        props,
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_credit(value: &Json) -> JsonResult<ClosedCredit> {
    let f = fields(value, "a closed credit", 5)?;
    if f.len() > 9 {
        return Err(JsonError(format!(
            "a closed credit has {} fields, more than 9",
            f.len()
        )));
    }
    let text = |i: usize, what: &str| -> JsonResult<String> {
        f.get(i).map_or(Ok(String::new()), |v| string(v, what))
    };
    Ok(ClosedCredit {
        funnel: string(&f[0], "a credit's funnel")?,
        window: f[1].int("a credit's window")?,
        dims: usize_of(&f[2], "a credit's dims")?,
        level: f[3].int("a credit's level")?,
        ttc_ms: f[4].opt_int("a credit's time to convert")?,
        entity: text(5, "a credit's entity")?,
        start_event_id: text(6, "a credit's start event")?,
        step_times: match f.get(7) {
            None => Vec::new(),
            Some(v) => v
                .list("a credit's step times")?
                .iter()
                .map(|x| x.int("a step time"))
                .collect::<JsonResult<_>>()?,
        },
        breakdown: match f.get(8) {
            None => Vec::new(),
            Some(v) => string_list(v, "a credit's breakdown")?,
        },
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_order(value: &Json) -> JsonResult<OrderLine> {
    let f = exactly(value, "an order line", 10)?;
    Ok(OrderLine {
        t: f[0].int("an order's time")?,
        event_id: string(&f[1], "an order's event id")?,
        kind: string(&f[2], "an order's kind")?,
        transaction_id: string(&f[3], "an order's transaction")?,
        value_minor: f[4].int("an order's value")?,
        items: f[5].int("an order's items")?,
        has_coupon: f[6].boolean("an order's coupon flag")?,
        discount_minor: f[7].int("an order's discount")?,
        dims: usize_of(&f[8], "an order's dims")?,
        currency: string(&f[9], "an order's currency")?,
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_day(value: &Json) -> JsonResult<DayActivity> {
    let f = exactly(value, "a day's activity", 6)?;
    Ok(DayActivity {
        day: f[0].int("a day")?,
        first_t: f[1].int("a day's first time")?,
        first_event_id: string(&f[2], "a day's first event")?,
        channel: string(&f[3], "a day's channel")?,
        platform: string(&f[4], "a day's platform")?,
        last_t: f[5].int("a day's last time")?,
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_purchase(value: &Json) -> JsonResult<Purchase> {
    let f = exactly(value, "a purchase", 5)?;
    Ok(Purchase {
        t: f[0].int("a purchase's time")?,
        transaction_id: string(&f[1], "a purchase's transaction")?,
        value_minor: f[2].int("a purchase's value")?,
        currency: string(&f[3], "a purchase's currency")?,
        channel: string(&f[4], "a purchase's channel")?,
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_cart(value: &Json) -> JsonResult<CartEvent> {
    let f = exactly(value, "a cart event", 6)?;
    let lines = f[3]
        .list("a cart event's lines")?
        .iter()
        .map(|line| {
            let l = exactly(line, "a cart line", 3)?;
            Ok(CartLine {
                item_id: string(&l[0], "a cart line's item")?,
                quantity: l[1].int("a cart line's quantity")?,
                unit_price_minor: l[2].int("a cart line's price")?,
            })
        })
        .collect::<JsonResult<_>>()?;
    Ok(CartEvent {
        t: f[0].int("a cart event's time")?,
        event_id: string(&f[1], "a cart event's id")?,
        kind: string(&f[2], "a cart event's kind")?,
        lines,
        currency: string(&f[4], "a cart event's currency")?,
        channel: string(&f[5], "a cart event's channel")?,
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_touch(value: &Json) -> JsonResult<Touch> {
    let f = exactly(value, "a touch", 8)?;
    Ok(Touch {
        t: f[0].int("a touch's time")?,
        session_id: string(&f[1], "a touch's session")?,
        event_id: string(&f[2], "a touch's event")?,
        channel: string(&f[3], "a touch's channel")?,
        source: string(&f[4], "a touch's source")?,
        medium: string(&f[5], "a touch's medium")?,
        campaign: string(&f[6], "a touch's campaign")?,
        kol: string(&f[7], "a touch's kol")?,
    })
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_mark(value: &Json) -> JsonResult<ForgetMark> {
    let f = exactly(value, "a forget mark", 4)?;
    Ok(ForgetMark {
        request_id: string(&f[0], "a forget mark's request")?,
        requested_at: f[1].int("a forget mark's time")?,
        from_ms: f[2].opt_int("a forget mark's start")?,
        to_ms: f[3].opt_int("a forget mark's end")?,
    })
}

fn list_of<T>(value: &Json, what: &str, decode: fn(&Json) -> JsonResult<T>) -> JsonResult<Vec<T>> {
    value.list(what)?.iter().map(decode).collect()
}

/// The state stored under the table key `anonymous_id`.
pub fn decode(raw: &[u8], anonymous_id: &str) -> Result<VisitorState, DecodeError> {
    let payload = json::parse(raw)?;
    let p = payload.list("the state")?;
    if let Some(version) = p.first() {
        let version = version.int("the format version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::Version(version));
        }
    }
    let p = fields(&payload, "the state", 19)?;
    let mut sessions: Vec<OpenSession> = Vec::new();
    for raw_session in p[3].list("the sessions")? {
        let s = exactly(raw_session, "a session", 3)?;
        let session = OpenSession {
            session_id: string(&s[0], "a session id")?,
            closed_segments: s[1].int("a session's closed segments")?,
            events: list_of(&s[2], "a session's events", decode_event)?,
        };
        // A repeated id keeps its first position and its last value (as dict() does).
        match sessions
            .iter_mut()
            .find(|o| o.session_id == session.session_id)
        {
            Some(existing) => *existing = session,
            None => sessions.push(session),
        }
    }
    let dims = p[2]
        .list("the dimension tuples")?
        .iter()
        .map(|d| {
            let f = exactly(d, "a dimension tuple", 5)?;
            Ok([
                string(&f[0], "a channel")?,
                string(&f[1], "a campaign")?,
                string(&f[2], "a device")?,
                string(&f[3], "a platform")?,
                string(&f[4], "a country")?,
            ])
        })
        .collect::<JsonResult<_>>()?;
    let first_purchase = match &p[7] {
        Json::Null => None,
        other => {
            let f = exactly(other, "the first purchase", 2)?;
            Some((
                f[0].int("the first purchase's time")?,
                string(&f[1], "its transaction")?,
            ))
        }
    };
    Ok(VisitorState {
        partition: p[1].int("the partition")?,
        anonymous_id: anonymous_id.to_owned(),
        dims,
        sessions,
        closed: list_of(&p[4], "the closed credits", decode_credit)?,
        orders: list_of(&p[5], "the order lines", decode_order)?,
        transactions: string_list(&p[6], "the transactions")?,
        first_purchase,
        first_seen_t: p[8].opt_int("the first seen time")?,
        last_seen_t: p[9].opt_int("the last seen time")?,
        user_id: p[10].opt_str("the user id")?.map(str::to_owned),
        applied: int_pairs(&p[11], "the applied offsets")?,
        user_events: list_of(&p[12], "the user events", decode_event)?,
        user_closed_groups: p[13].int("the closed user groups")?,
        days: list_of(&p[14], "the days", decode_day)?,
        purchases: list_of(&p[15], "the purchases", decode_purchase)?,
        cart: list_of(&p[16], "the cart", decode_cart)?,
        stage: string(&p[17], "the stage")?,
        lifecycle_as_of: p[18].opt_int("the lifecycle time")?,
        // Appended in place of a format bump: states written before them have none.
        user_consumed: match p.get(19) {
            Some(v) => int_pairs(v, "the consumed user events")?,
            None => Vec::new(),
        },
        touches: match p.get(20) {
            Some(v) => list_of(v, "the touches", decode_touch)?,
            None => Vec::new(),
        },
        forgets: match p.get(21) {
            Some(v) => list_of(v, "the forget marks", decode_mark)?,
            None => Vec::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_encoder_writes_what_the_json_tree_writes() {
        let raw: &[u8] = br#"[2,7,[["web","c\u0001","m","web","DE"],["x","","d","app",""]],[["s1",1,[[10,"e1","page_view",1],[11,"e2","view_item",0,[["item_category","shoes"]]]]]],[["shop",60000,1,2,null,"s1@10","e1",[10,11],["a"]]],[[12,"o1","purchase","t1",-500,2,true,0,0,"EUR"]],["t1"],[12,"t1"],10,12,"u",{"clickstream":4,"orders":-1},[[11,"e2","view_item",1]],3,[[0,10,"e1","web","web",12]],[[12,"t1",500,"EUR","web"]],[[12,"o1","purchase",[["i",2,250]],"EUR","web"]],"new",13,{"f":9},[[10,"s1","e1","web","","","",""]],[["r",5,null,9]]]"#;
        let state = decode(raw, "v").unwrap();
        assert_eq!(encode(&state), json::to_bytes(&to_json(&state)));
        let mut extreme = state.clone();
        extreme.first_seen_t = Some(i64::MIN);
        extreme.last_seen_t = Some(i64::MAX);
        extreme
            .dims
            .push(["unused".into(), "".into(), "".into(), "".into(), "".into()]);
        assert_eq!(encode(&extreme), json::to_bytes(&to_json(&extreme)));
    }
}
