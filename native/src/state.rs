//! A visitor's state and its changelog encoding: the Rust twin of `streams/state.py`.
//!
//! The types mirror the Python ones field for field, and `encode` writes the same bytes
//! as `streams.state.encode_state` (same nested lists, same dimension compaction), so the
//! compiled core and the Python core can read each other's changelog and a differential
//! test can compare their state bytes (tests/native/test_state_codec.py).

use crate::json::{self, Json, JsonError, JsonResult};
use crate::json_reader::{ByteReader, TreeReader, ValueReader};

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

/// The fields of one of the state's fixed-shape lists, read in order. A required field
/// missing, or more fields than the shape has, is refused with the list named.
struct Fields<'r, R: ValueReader> {
    r: &'r mut R,
    what: &'static str,
    /// The list has not ended yet.
    open: bool,
}

impl<'r, R: ValueReader> Fields<'r, R> {
    fn enter(r: &'r mut R, what: &'static str) -> JsonResult<Self> {
        r.enter_list(what)?;
        Ok(Fields {
            r,
            what,
            open: true,
        })
    }

    /// The reader, at the next (required) field.
    fn next(&mut self) -> JsonResult<&mut R> {
        if self.open && self.r.more()? {
            return Ok(&mut *self.r);
        }
        self.open = false;
        Err(JsonError(format!("{} has too few fields", self.what)))
    }

    fn int(&mut self, what: &str) -> JsonResult<i64> {
        self.next()?.int(what)
    }

    fn opt_int(&mut self, what: &str) -> JsonResult<Option<i64>> {
        opt_int(self.next()?, what)
    }

    fn string(&mut self, what: &str) -> JsonResult<String> {
        self.next()?.string(what)
    }

    fn count(&mut self, what: &str) -> JsonResult<usize> {
        let n = self.int(what)?;
        usize::try_from(n).map_err(|_| JsonError(format!("{} is negative", what)))
    }

    fn boolean(&mut self, what: &str) -> JsonResult<bool> {
        self.next()?.boolean(what)
    }

    fn read<T>(&mut self, read: impl FnOnce(&mut R) -> JsonResult<T>) -> JsonResult<T> {
        read(self.next()?)
    }

    /// A trailing field that older writers did not write: None once the list has ended.
    fn optional<T>(&mut self, read: impl FnOnce(&mut R) -> JsonResult<T>) -> JsonResult<Option<T>> {
        if self.open && self.r.more()? {
            return read(&mut *self.r).map(Some);
        }
        self.open = false;
        Ok(None)
    }

    fn end(self) -> JsonResult<()> {
        if self.open && self.r.more()? {
            return Err(JsonError(format!("{} has too many fields", self.what)));
        }
        Ok(())
    }

    /// Steps over fields after the known ones (the state's own list allows them).
    fn skip_rest(self) -> JsonResult<()> {
        if self.open {
            while self.r.more()? {
                self.r.any()?;
            }
        }
        Ok(())
    }
}

fn opt_int<R: ValueReader>(r: &mut R, what: &str) -> JsonResult<Option<i64>> {
    if r.null()? {
        return Ok(None);
    }
    r.int(what).map(Some)
}

fn opt_string<R: ValueReader>(r: &mut R, what: &str) -> JsonResult<Option<String>> {
    if r.null()? {
        return Ok(None);
    }
    r.string(what).map(Some)
}

fn list_of<R: ValueReader, T>(
    r: &mut R,
    what: &str,
    read: fn(&mut R) -> JsonResult<T>,
) -> JsonResult<Vec<T>> {
    r.enter_list(what)?;
    let mut items = Vec::new();
    while r.more()? {
        items.push(read(r)?);
    }
    Ok(items)
}

fn string_list<R: ValueReader>(r: &mut R, what: &str) -> JsonResult<Vec<String>> {
    r.enter_list(what)?;
    let mut items = Vec::new();
    while r.more()? {
        items.push(r.string(what)?);
    }
    Ok(items)
}

fn int_list<R: ValueReader>(r: &mut R, what: &str) -> JsonResult<Vec<i64>> {
    r.enter_list(what)?;
    let mut items = Vec::new();
    while r.more()? {
        items.push(r.int(what)?);
    }
    Ok(items)
}

/// A JSON object of integers, in key order. A repeated key keeps its first position and
/// its last value (as dict() does), and only that value must be an integer.
fn int_pairs<R: ValueReader>(r: &mut R, what: &str) -> JsonResult<Vec<(String, i64)>> {
    r.enter_object(what)?;
    let mut entries: Vec<(String, Json)> = Vec::new();
    while let Some(key) = r.key()? {
        let value = r.any()?;
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => entries.push((key, value)),
        }
    }
    entries
        .into_iter()
        .map(|(k, v)| Ok((k, v.int(what)?)))
        .collect()
}

fn read_property<R: ValueReader>(r: &mut R) -> JsonResult<(String, String)> {
    let mut f = Fields::enter(r, "an event property")?;
    let pair = (f.string("a property name")?, f.string("a property value")?);
    f.end()?;
    Ok(pair)
}

fn read_event<R: ValueReader>(r: &mut R) -> JsonResult<FunnelEvent> {
    let mut f = Fields::enter(r, "an event")?;
    let t = f.int("an event's time")?;
    let event_id = f.string("an event id")?;
    let event_type = f.string("an event type")?;
    let dims = f.count("an event's dims")?;
    let props = f.optional(|r| list_of(r, "an event's properties", read_property))?;
    f.end()?;
    Ok(FunnelEvent {
        t,
        event_id,
        event_type,
        dims,
        props: props.unwrap_or_default(),
    })
}

fn read_credit<R: ValueReader>(r: &mut R) -> JsonResult<ClosedCredit> {
    let mut f = Fields::enter(r, "a closed credit")?;
    let funnel = f.string("a credit's funnel")?;
    let window = f.int("a credit's window")?;
    let dims = f.count("a credit's dims")?;
    let level = f.int("a credit's level")?;
    let ttc_ms = f.opt_int("a credit's time to convert")?;
    // Written by older writers without the fields that follow.
    let entity = f.optional(|r| r.string("a credit's entity"))?;
    let start_event_id = f.optional(|r| r.string("a credit's start event"))?;
    let step_times = f.optional(|r| int_list(r, "a credit's step times"))?;
    let breakdown = f.optional(|r| string_list(r, "a credit's breakdown"))?;
    f.end()?;
    Ok(ClosedCredit {
        funnel,
        window,
        dims,
        level,
        ttc_ms,
        entity: entity.unwrap_or_default(),
        start_event_id: start_event_id.unwrap_or_default(),
        step_times: step_times.unwrap_or_default(),
        breakdown: breakdown.unwrap_or_default(),
    })
}

fn read_order<R: ValueReader>(r: &mut R) -> JsonResult<OrderLine> {
    let mut f = Fields::enter(r, "an order line")?;
    let line = OrderLine {
        t: f.int("an order's time")?,
        event_id: f.string("an order's event id")?,
        kind: f.string("an order's kind")?,
        transaction_id: f.string("an order's transaction")?,
        value_minor: f.int("an order's value")?,
        items: f.int("an order's items")?,
        has_coupon: f.boolean("an order's coupon flag")?,
        discount_minor: f.int("an order's discount")?,
        dims: f.count("an order's dims")?,
        currency: f.string("an order's currency")?,
    };
    f.end()?;
    Ok(line)
}

fn read_day<R: ValueReader>(r: &mut R) -> JsonResult<DayActivity> {
    let mut f = Fields::enter(r, "a day's activity")?;
    let day = DayActivity {
        day: f.int("a day")?,
        first_t: f.int("a day's first time")?,
        first_event_id: f.string("a day's first event")?,
        channel: f.string("a day's channel")?,
        platform: f.string("a day's platform")?,
        last_t: f.int("a day's last time")?,
    };
    f.end()?;
    Ok(day)
}

fn read_purchase<R: ValueReader>(r: &mut R) -> JsonResult<Purchase> {
    let mut f = Fields::enter(r, "a purchase")?;
    let purchase = Purchase {
        t: f.int("a purchase's time")?,
        transaction_id: f.string("a purchase's transaction")?,
        value_minor: f.int("a purchase's value")?,
        currency: f.string("a purchase's currency")?,
        channel: f.string("a purchase's channel")?,
    };
    f.end()?;
    Ok(purchase)
}

fn read_cart_line<R: ValueReader>(r: &mut R) -> JsonResult<CartLine> {
    let mut f = Fields::enter(r, "a cart line")?;
    let line = CartLine {
        item_id: f.string("a cart line's item")?,
        quantity: f.int("a cart line's quantity")?,
        unit_price_minor: f.int("a cart line's price")?,
    };
    f.end()?;
    Ok(line)
}

fn read_cart<R: ValueReader>(r: &mut R) -> JsonResult<CartEvent> {
    let mut f = Fields::enter(r, "a cart event")?;
    let cart = CartEvent {
        t: f.int("a cart event's time")?,
        event_id: f.string("a cart event's id")?,
        kind: f.string("a cart event's kind")?,
        lines: f.read(|r| list_of(r, "a cart event's lines", read_cart_line))?,
        currency: f.string("a cart event's currency")?,
        channel: f.string("a cart event's channel")?,
    };
    f.end()?;
    Ok(cart)
}

fn read_touch<R: ValueReader>(r: &mut R) -> JsonResult<Touch> {
    let mut f = Fields::enter(r, "a touch")?;
    let touch = Touch {
        t: f.int("a touch's time")?,
        session_id: f.string("a touch's session")?,
        event_id: f.string("a touch's event")?,
        channel: f.string("a touch's channel")?,
        source: f.string("a touch's source")?,
        medium: f.string("a touch's medium")?,
        campaign: f.string("a touch's campaign")?,
        kol: f.string("a touch's kol")?,
    };
    f.end()?;
    Ok(touch)
}

fn read_mark<R: ValueReader>(r: &mut R) -> JsonResult<ForgetMark> {
    let mut f = Fields::enter(r, "a forget mark")?;
    let mark = ForgetMark {
        request_id: f.string("a forget mark's request")?,
        requested_at: f.int("a forget mark's time")?,
        from_ms: f.opt_int("a forget mark's start")?,
        to_ms: f.opt_int("a forget mark's end")?,
    };
    f.end()?;
    Ok(mark)
}

fn read_dims<R: ValueReader>(r: &mut R) -> JsonResult<Dims> {
    let mut f = Fields::enter(r, "a dimension tuple")?;
    let dims = [
        f.string("a channel")?,
        f.string("a campaign")?,
        f.string("a device")?,
        f.string("a platform")?,
        f.string("a country")?,
    ];
    f.end()?;
    Ok(dims)
}

fn read_session<R: ValueReader>(r: &mut R) -> JsonResult<OpenSession> {
    let mut f = Fields::enter(r, "a session")?;
    let session = OpenSession {
        session_id: f.string("a session id")?,
        closed_segments: f.int("a session's closed segments")?,
        events: f.read(|r| list_of(r, "a session's events", read_event))?,
    };
    f.end()?;
    Ok(session)
}

fn read_sessions<R: ValueReader>(r: &mut R) -> JsonResult<Vec<OpenSession>> {
    let mut sessions: Vec<OpenSession> = Vec::new();
    for session in list_of(r, "the sessions", read_session)? {
        // A repeated id keeps its first position and its last value (as dict() does).
        match sessions
            .iter_mut()
            .find(|o| o.session_id == session.session_id)
        {
            Some(existing) => *existing = session,
            None => sessions.push(session),
        }
    }
    Ok(sessions)
}

fn read_first_purchase<R: ValueReader>(r: &mut R) -> JsonResult<Option<(i64, String)>> {
    if r.null()? {
        return Ok(None);
    }
    let mut f = Fields::enter(r, "the first purchase")?;
    let first = (
        f.int("the first purchase's time")?,
        f.string("its transaction")?,
    );
    f.end()?;
    Ok(Some(first))
}

/// The state's fields after the format version (which the caller has checked).
fn read_state_fields<R: ValueReader>(
    mut p: Fields<'_, R>,
    anonymous_id: &str,
) -> JsonResult<VisitorState> {
    let state = VisitorState {
        partition: p.int("the partition")?,
        anonymous_id: anonymous_id.to_owned(),
        dims: p.read(|r| list_of(r, "the dimension tuples", read_dims))?,
        sessions: p.read(read_sessions)?,
        closed: p.read(|r| list_of(r, "the closed credits", read_credit))?,
        orders: p.read(|r| list_of(r, "the order lines", read_order))?,
        transactions: p.read(|r| string_list(r, "the transactions"))?,
        first_purchase: p.read(read_first_purchase)?,
        first_seen_t: p.opt_int("the first seen time")?,
        last_seen_t: p.opt_int("the last seen time")?,
        user_id: p.read(|r| opt_string(r, "the user id"))?,
        applied: p.read(|r| int_pairs(r, "the applied offsets"))?,
        user_events: p.read(|r| list_of(r, "the user events", read_event))?,
        user_closed_groups: p.int("the closed user groups")?,
        days: p.read(|r| list_of(r, "the days", read_day))?,
        purchases: p.read(|r| list_of(r, "the purchases", read_purchase))?,
        cart: p.read(|r| list_of(r, "the cart", read_cart))?,
        stage: p.string("the stage")?,
        lifecycle_as_of: p.opt_int("the lifecycle time")?,
        // Appended in place of a format bump: states written before them have none.
        user_consumed: p
            .optional(|r| int_pairs(r, "the consumed user events"))?
            .unwrap_or_default(),
        touches: p
            .optional(|r| list_of(r, "the touches", read_touch))?
            .unwrap_or_default(),
        forgets: p
            .optional(|r| list_of(r, "the forget marks", read_mark))?
            .unwrap_or_default(),
    };
    p.skip_rest()?;
    Ok(state)
}

fn read_state<R: ValueReader>(r: &mut R, anonymous_id: &str) -> Result<VisitorState, DecodeError> {
    let mut p = Fields::enter(r, "the state")?;
    let version = p.int("the format version")?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::Version(version));
    }
    Ok(read_state_fields(p, anonymous_id)?)
}

/// Reads one item of the state's JSON from a parsed tree (the probes' form of it): the
/// whole value must be the item.
fn from_tree<'t, T>(
    value: &'t Json,
    read: fn(&mut TreeReader<'t>) -> JsonResult<T>,
) -> JsonResult<T> {
    read(&mut TreeReader::new(value))
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_event(value: &Json) -> JsonResult<FunnelEvent> {
    from_tree(value, read_event)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_credit(value: &Json) -> JsonResult<ClosedCredit> {
    from_tree(value, read_credit)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_order(value: &Json) -> JsonResult<OrderLine> {
    from_tree(value, read_order)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_day(value: &Json) -> JsonResult<DayActivity> {
    from_tree(value, read_day)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_purchase(value: &Json) -> JsonResult<Purchase> {
    from_tree(value, read_purchase)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_cart(value: &Json) -> JsonResult<CartEvent> {
    from_tree(value, read_cart)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_touch(value: &Json) -> JsonResult<Touch> {
    from_tree(value, read_touch)
}

/// One item of the state's JSON (also the probes' form of it).
pub fn decode_mark(value: &Json) -> JsonResult<ForgetMark> {
    from_tree(value, read_mark)
}

/// The state stored under the table key `anonymous_id`, read from its bytes in place
/// (no `Json` tree is built: each string is copied once, into the state).
pub fn decode(raw: &[u8], anonymous_id: &str) -> Result<VisitorState, DecodeError> {
    let mut reader = ByteReader::new(raw);
    let state = read_state(&mut reader, anonymous_id);
    match state {
        Ok(state) => {
            reader.finish()?;
            Ok(state)
        }
        // The version is read first, but bytes that are not JSON at all are unreadable,
        // whatever number they start with (as `streams/state.py` has it).
        Err(DecodeError::Version(v)) => match json::parse(raw) {
            Ok(_) => Err(DecodeError::Version(v)),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state read from a parsed tree: what `decode` must agree with.
    fn decode_through_tree(raw: &[u8], anonymous_id: &str) -> Result<VisitorState, DecodeError> {
        let tree = json::parse(raw)?;
        read_state(&mut TreeReader::new(&tree), anonymous_id)
    }

    #[test]
    fn reading_the_bytes_in_place_agrees_with_reading_the_tree() {
        let canonical: &[u8] = br#"[2,7,[["web","c\u0001","m","web","DE"]],[["s1",1,[[10,"e1","page_view",0,[["k","v"]]]]],["s1",2,[]]],[["shop",60000,0,2,null]],[],["t1"],null,10,12,null,{"clickstream":4,"clickstream":5},[],3,[],[],[],"new",null]"#;
        let spaced: Vec<u8> = {
            let text = String::from_utf8(canonical.to_vec()).unwrap();
            format!(" {} ", text.replace(',', " ,\n\t").replace('[', "[ ")).into_bytes()
        };
        let cases: Vec<Vec<u8>> = vec![
            canonical.to_vec(),
            spaced,
            // A repeated key: only its last value must be an integer.
            br#"[2,7,[],[],[],[],[],null,null,null,null,{"a":"x","a":1},[],0,[],[],[],"new",null,{},[],[],"later",{"x":[1]}]"#.to_vec(),
            br#"[2,7,[],[],[],[],[],null,null,null,null,{"a":1,"a":"x"},[],0,[],[],[],"new",null]"#.to_vec(),
            br#"[3,"anything"]"#.to_vec(),
            br#"[3,"anything"] x"#.to_vec(),
            br#"[3,"#.to_vec(),
            br#"[2,7,[],[],[],[],[],null,null,null,null,{},[],0,[],[],[],"new"]"#.to_vec(),
            br#"[2,7,[],[],[],[],[],null,null,null,null,{},[],0,[],[],[],"new",null] ]"#.to_vec(),
            br#"[2,7,[],[],[],[],[],null,null,null,null,{},[],0,[],[],[],"new",null,{},[],[],[1,]]"#.to_vec(),
            br#"[2,7,[],[],[[1,2,3]],[],[],null,null,null,null,{},[],0,[],[],[],"new",null]"#.to_vec(),
            br#"[2,7,[],[],[["f",1,0,2,null,"e","s",[1],["b"],"extra"]],[],[],null,null,null,null,{},[],0,[],[],[],"new",null]"#.to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
        ];
        for raw in &cases {
            let text = String::from_utf8_lossy(raw);
            let in_place = decode(raw, "v");
            let through_tree = decode_through_tree(raw, "v");
            match (&in_place, &through_tree) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", text),
                (Err(DecodeError::Version(a)), Err(DecodeError::Version(b))) => {
                    assert_eq!(a, b, "{}", text)
                }
                (Err(DecodeError::Unreadable(_)), Err(DecodeError::Unreadable(_))) => {}
                _ => panic!("{}: {:?} against {:?}", text, in_place, through_tree),
            }
        }
        let read = decode(canonical, "v").unwrap();
        assert_eq!(read.applied, vec![("clickstream".to_string(), 5)]);
        assert_eq!(read.sessions.len(), 1);
        assert_eq!(read.sessions[0].closed_segments, 2);
        assert!(decode(&cases[2], "v").is_ok());
        assert!(decode(&cases[3], "v").is_err());
        assert_eq!(decode(&cases[4], "v"), Err(DecodeError::Version(3)));
        assert!(matches!(
            decode(&cases[5], "v"),
            Err(DecodeError::Unreadable(_))
        ));
    }

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
