//! Lifecycle outputs of one visitor as the watermark passes: the Rust twin of
//! `streams/lifecycle_rows.py::advance_lifecycle`, with the rows it emits
//! (`streams/outputs/segment_transitions.py`, `triggers.py`, `user_rfm.py`), the
//! `Trigger` of `schemas/triggers.py` (its Avro encoding is not here) and the
//! `VersionClock` of `streams/outputs/family.py`.
//!
//! The decisions (which transitions, which triggers, which life's RFM row, the new
//! stage, the pruned cart) are `lifecycle::advance_lifecycle`'s; this module turns them
//! into rows exactly as the Python does.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::json::{Json, JsonError, JsonResult};
use crate::lifecycle::{self, LifeSpan, LifecycleRules, Transition, TriggerSpec};
use crate::lives::split_lives;
use crate::state::{self, Purchase, VisitorState};

// -- versions ----------------------------------------------------------------------------

/// Strictly increasing row versions (nanoseconds since epoch), newest write wins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersionClock {
    last: i64,
    /// A wall clock stopped at this time (ns), for tests; None reads the system clock.
    fixed_now_ns: Option<i64>,
}

impl VersionClock {
    pub fn new() -> Self {
        VersionClock {
            last: 0,
            fixed_now_ns: None,
        }
    }

    /// A clock whose last version was `last` (Python: `clock._last`).
    pub fn with_last(last: i64) -> Self {
        VersionClock {
            last,
            fixed_now_ns: None,
        }
    }

    /// A clock whose last version was `last` and whose wall clock reads `now_ns` for
    /// ever (the differential test fixes Python's `time.time_ns` the same way).
    pub fn stopped_at(last: i64, now_ns: i64) -> Self {
        VersionClock {
            last,
            fixed_now_ns: Some(now_ns),
        }
    }

    pub fn last(&self) -> i64 {
        self.last
    }

    /// `versions.next()`: the wall clock in ns, or one more than the last version.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> i64 {
        if let Some(now) = self.fixed_now_ns {
            return self.next_at(now);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.next_at(now)
    }

    /// `next()` when the wall clock reads `now_ns`. (Saturates at i64::MAX, in 2262,
    /// where the Python's integer would go on.)
    pub fn next_at(&mut self, now_ns: i64) -> i64 {
        self.last = if now_ns > self.last {
            now_ns
        } else {
            self.last.saturating_add(1)
        };
        self.last
    }
}

// -- trigger ids (uuid5 over SHA-1) ------------------------------------------------------

/// Fixed namespace so ids are stable across processes and releases; never change it.
const TRIGGER_NAMESPACE: [u8; 16] = [
    0x5b, 0x0e, 0x6f, 0x64, 0x0d, 0x5e, 0x4c, 0x43, 0x9a, 0x53, 0x6f, 0x7c, 0x1d, 0x2b, 0x9e, 0x10,
];

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate().take(16) {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6u32),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, word) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// `str(uuid.uuid5(namespace, name))`.
fn uuid5(namespace: &[u8; 16], name: &str) -> String {
    let mut data = namespace.to_vec();
    data.extend_from_slice(name.as_bytes());
    let hash = sha1(&data);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if i == 4 || i == 6 || i == 8 || i == 10 {
            out.push('-');
        }
        out.push_str(&format!("{:02x}", b));
    }
    out
}

/// Deterministic UUID (v5) for a trigger about `anonymous_id` (`schemas.triggers.trigger_id`),
/// the parts already as their `str()`.
pub fn trigger_id<S: AsRef<str>>(trigger_type: &str, anonymous_id: &str, parts: &[S]) -> String {
    let mut name = String::new();
    name.push_str(trigger_type);
    name.push('\x1f');
    name.push_str(anonymous_id);
    for part in parts {
        name.push('\x1f');
        name.push_str(part.as_ref());
    }
    uuid5(&TRIGGER_NAMESPACE, &name)
}

// -- rows --------------------------------------------------------------------------------

fn opt_str(value: &Option<String>) -> Json {
    value.as_ref().map_or(Json::Null, |s| Json::s(s))
}

/// A row of the `segment_transitions` table (its column order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentTransitionRow {
    pub anonymous_id: String,
    pub at: i64,
    pub from_stage: &'static str,
    pub to_stage: &'static str,
    pub partition: i64,
    pub version: i64,
}

impl SegmentTransitionRow {
    /// `segment_transitions.build_row`: version 1, a transition is a fact.
    pub fn build(anonymous_id: &str, transition: &Transition, partition: i64) -> Self {
        SegmentTransitionRow {
            anonymous_id: anonymous_id.to_owned(),
            at: transition.at,
            from_stage: transition.from_stage,
            to_stage: transition.to_stage,
            partition,
            version: 1,
        }
    }

    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::s(&self.anonymous_id),
            Json::Int(self.at),
            Json::s(self.from_stage),
            Json::s(self.to_stage),
            Json::Int(self.partition),
            Json::Int(self.version),
        ])
    }
}

/// A cart's value saturates at an Avro long.
pub const CART_VALUE_MAX: i64 = i64::MAX;
/// A cart line's quantity saturates at an Avro int.
pub const CART_ITEM_QUANTITY_MAX: i64 = 2_147_483_647;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerItem {
    pub item_id: String,
    pub quantity: i64,
    pub price_minor: i64,
}

/// `schemas.triggers.Trigger` (the fields in the dataclass order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub trigger_id: String,
    pub trigger_type: String,
    pub anonymous_id: String,
    pub occurred_at_ms: i64,
    pub emitted_at_ms: i64,
    pub user_id: Option<String>,
    pub cart_value_minor: Option<i64>,
    pub currency: Option<String>,
    pub items: Vec<TriggerItem>,
    pub channel: Option<String>,
    pub segment: Option<String>,
    pub previous_segment: Option<String>,
    /// A dict[str, str] in insertion order (empty for lifecycle triggers).
    pub detail: Vec<(String, String)>,
}

fn non_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_owned())
    }
}

/// `min(CART_VALUE_MAX, sum(quantity * price))`, exact. Validation keeps prices and
/// quantities non-negative, so the sum is never below i64::MIN; if it were (a state
/// no validated input makes), it saturates there where the Python's integer would not.
fn cart_value(cart: &[crate::state::CartLine]) -> i64 {
    let mut total: i128 = 0;
    for line in cart {
        let product = i128::from(line.quantity) * i128::from(line.unit_price_minor);
        total = total.saturating_add(product);
    }
    if total > i128::from(CART_VALUE_MAX) {
        CART_VALUE_MAX
    } else {
        i64::try_from(total).unwrap_or(i64::MIN)
    }
}

impl Trigger {
    /// `triggers.to_trigger(spec, anonymous_id, user_id, now_ms)`.
    pub fn from_spec(
        spec: &TriggerSpec,
        anonymous_id: &str,
        user_id: Option<&str>,
        now_ms: i64,
    ) -> Self {
        Trigger {
            trigger_id: trigger_id(spec.trigger_type, anonymous_id, &spec.id_parts),
            trigger_type: spec.trigger_type.to_owned(),
            anonymous_id: anonymous_id.to_owned(),
            occurred_at_ms: spec.at,
            emitted_at_ms: now_ms,
            user_id: user_id.map(str::to_owned),
            cart_value_minor: if spec.cart.is_empty() {
                None
            } else {
                Some(cart_value(&spec.cart))
            },
            currency: non_empty(&spec.currency),
            items: spec
                .cart
                .iter()
                .map(|line| TriggerItem {
                    item_id: line.item_id.clone(),
                    quantity: line.quantity.min(CART_ITEM_QUANTITY_MAX),
                    price_minor: line.unit_price_minor,
                })
                .collect(),
            channel: non_empty(&spec.channel),
            segment: non_empty(spec.segment),
            previous_segment: non_empty(spec.previous_segment),
            detail: Vec::new(),
        }
    }

    /// The dataclass's fields as a JSON list (items as [item_id, quantity, price_minor],
    /// detail as an object).
    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::s(&self.trigger_id),
            Json::s(&self.trigger_type),
            Json::s(&self.anonymous_id),
            Json::Int(self.occurred_at_ms),
            Json::Int(self.emitted_at_ms),
            opt_str(&self.user_id),
            Json::opt_i(self.cart_value_minor),
            opt_str(&self.currency),
            Json::List(
                self.items
                    .iter()
                    .map(|i| {
                        Json::List(vec![
                            Json::s(&i.item_id),
                            Json::Int(i.quantity),
                            Json::Int(i.price_minor),
                        ])
                    })
                    .collect(),
            ),
            opt_str(&self.channel),
            opt_str(&self.segment),
            opt_str(&self.previous_segment),
            Json::Object(
                self.detail
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::s(v)))
                    .collect(),
            ),
        ])
    }
}

/// A row of the `triggers` table (its column order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerRow {
    pub trigger_id: String,
    pub trigger_type: String,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub occurred_at: i64,
    pub emitted_at: i64,
    pub cart_value_minor: Option<i64>,
    pub currency: String,
    pub channel: String,
    pub segment: String,
    pub previous_segment: String,
    pub partition: i64,
}

impl TriggerRow {
    /// `triggers.build_row(trigger, partition)`.
    pub fn build(trigger: &Trigger, partition: i64) -> Self {
        let or_empty = |s: &Option<String>| s.clone().unwrap_or_default();
        TriggerRow {
            trigger_id: trigger.trigger_id.clone(),
            trigger_type: trigger.trigger_type.clone(),
            anonymous_id: trigger.anonymous_id.clone(),
            user_id: trigger.user_id.clone(),
            occurred_at: trigger.occurred_at_ms,
            emitted_at: trigger.emitted_at_ms,
            cart_value_minor: trigger.cart_value_minor,
            currency: or_empty(&trigger.currency),
            channel: or_empty(&trigger.channel),
            segment: or_empty(&trigger.segment),
            previous_segment: or_empty(&trigger.previous_segment),
            partition,
        }
    }

    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::s(&self.trigger_id),
            Json::s(&self.trigger_type),
            Json::s(&self.anonymous_id),
            opt_str(&self.user_id),
            Json::Int(self.occurred_at),
            Json::Int(self.emitted_at),
            Json::opt_i(self.cart_value_minor),
            Json::s(&self.currency),
            Json::s(&self.channel),
            Json::s(&self.segment),
            Json::s(&self.previous_segment),
            Json::Int(self.partition),
        ])
    }
}

/// A row of the `user_rfm` table (its column order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RfmRow {
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub stage: &'static str,
    pub first_purchase_at: i64,
    pub last_purchase_at: i64,
    pub frequency: i64,
    pub monetary_minor: i64,
    pub currency: String,
    pub channel: String,
    pub as_of: i64,
    pub partition: i64,
    pub version: i64,
}

impl RfmRow {
    /// `user_rfm.build_row(anonymous_id, user_id, life, stage, as_of, partition, version)`
    /// for a life with `purchases` (sorted) whose first day's channel is `channel`. None
    /// when no purchase lies before `as_of` (the Python raises IndexError; the caller
    /// never asks then: the life's stage just before `as_of` is not prospect).
    /// The monetary sum saturates at the i64 bounds (validation bounds each value to
    /// 10^13, so it is exact for any reachable number of purchases).
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        anonymous_id: &str,
        user_id: Option<&str>,
        purchases: &[Purchase],
        channel: &str,
        stage: &'static str,
        as_of: i64,
        partition: i64,
        version: i64,
    ) -> Option<Self> {
        let before: Vec<&Purchase> = purchases.iter().filter(|p| p.t < as_of).collect();
        let first = before.first()?;
        let last = before.last()?;
        let currency = first.currency.as_str();
        let monetary: i128 = before
            .iter()
            .filter(|p| p.currency == currency)
            .fold(0i128, |sum, p| {
                sum.saturating_add(i128::from(p.value_minor))
            });
        let monetary =
            i64::try_from(monetary).unwrap_or(if monetary < 0 { i64::MIN } else { i64::MAX });
        Some(RfmRow {
            anonymous_id: anonymous_id.to_owned(),
            user_id: user_id.map(str::to_owned),
            stage,
            first_purchase_at: first.t,
            last_purchase_at: last.t,
            frequency: before.len() as i64,
            monetary_minor: monetary,
            currency: currency.to_owned(),
            channel: channel.to_owned(),
            as_of,
            partition,
            version,
        })
    }

    pub fn to_json(&self) -> Json {
        Json::List(vec![
            Json::s(&self.anonymous_id),
            opt_str(&self.user_id),
            Json::s(self.stage),
            Json::Int(self.first_purchase_at),
            Json::Int(self.last_purchase_at),
            Json::Int(self.frequency),
            Json::Int(self.monetary_minor),
            Json::s(&self.currency),
            Json::s(&self.channel),
            Json::Int(self.as_of),
            Json::Int(self.partition),
            Json::Int(self.version),
        ])
    }
}

// -- advance_lifecycle -------------------------------------------------------------------

/// What `advance_lifecycle` adds to a `BatchResult`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleOutput {
    /// Rows of the segment_transitions table, in order.
    pub transition_rows: Vec<SegmentTransitionRow>,
    /// `result.triggers`: to publish on the triggers topic.
    pub triggers: Vec<Trigger>,
    /// Rows of the triggers table, in order (one per trigger).
    pub trigger_rows: Vec<TriggerRow>,
    /// Rows of the user_rfm table.
    pub rfm_rows: Vec<RfmRow>,
    /// `stats.transitions`: (from_stage, to_stage) -> count, in first-seen order.
    pub transitions: Vec<((&'static str, &'static str), i64)>,
}

impl LifecycleOutput {
    fn count_transition(&mut self, from: &'static str, to: &'static str) {
        match self.transitions.iter_mut().find(|(k, _)| *k == (from, to)) {
            Some(entry) => entry.1 += 1,
            None => self.transitions.push(((from, to), 1)),
        }
    }
}

/// Transitions and triggers of every life for event times in [as of, watermark)
/// (`streams.lifecycle_rows.advance_lifecycle`): adds the rows to `out` and moves the
/// state's stage, `lifecycle_as_of` and cart.
#[allow(clippy::too_many_arguments)]
pub fn advance_lifecycle(
    anonymous_id: &str,
    state: &mut VisitorState,
    watermark: i64,
    rules: &LifecycleRules,
    partition: i64,
    now_ms: i64,
    versions: &mut VersionClock,
    out: &mut LifecycleOutput,
) {
    if let Some(after) = state.lifecycle_as_of {
        if watermark <= after {
            return;
        }
    }
    let lives = split_lives(&state.days, &state.purchases, rules);
    // LifeSpan wants each life's purchases as a slice.
    let held: Vec<Vec<Purchase>> = lives
        .iter()
        .map(|life| life.purchases().iter().map(|p| (*p).clone()).collect())
        .collect();
    let spans: Vec<LifeSpan> = lives
        .iter()
        .zip(held.iter())
        .map(|(life, purchases)| LifeSpan {
            purchases,
            first_t: life.first_t(),
            last_t: life.last_t(),
            ttl_ms: life.ttl_ms(),
        })
        .collect();
    let advance = match lifecycle::advance_lifecycle(
        &spans,
        &state.cart,
        state.lifecycle_as_of,
        watermark,
        rules,
    ) {
        Some(advance) => advance,
        None => return,
    };
    for tr in &advance.transitions {
        out.transition_rows
            .push(SegmentTransitionRow::build(anonymous_id, tr, partition));
        out.count_transition(tr.from_stage, tr.to_stage);
    }
    let user_id = state.user_id.as_deref();
    for spec in &advance.triggers {
        let trigger = Trigger::from_spec(spec, anonymous_id, user_id, now_ms);
        out.trigger_rows
            .push(TriggerRow::build(&trigger, partition));
        out.triggers.push(trigger);
    }
    if let Some((index, stage)) = advance.rfm {
        if let (Some(life), Some(purchases)) = (lives.get(index), held.get(index)) {
            let version = versions.next();
            // Always a row: the life's stage just before the watermark is not prospect,
            // so it has a purchase before it.
            if let Some(row) = RfmRow::build(
                anonymous_id,
                user_id,
                purchases,
                &life.first().channel,
                stage,
                watermark,
                partition,
                version,
            ) {
                out.rfm_rows.push(row);
            }
        }
    }
    if let Some(stage) = advance.stage {
        state.stage = stage.to_owned();
    }
    state.lifecycle_as_of = Some(advance.lifecycle_as_of);
    state.cart = advance.cart;
}

// -- probes (the differential test's adapter) --------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

/// The state and what `advance_lifecycle` adds, with a clock stopped at `now_ns`.
fn advance_probe(args: &Json) -> JsonResult<Json> {
    let anonymous_id = arg(args, "anonymous_id")?.str("anonymous_id")?;
    let raw = crate::json::to_bytes(arg(args, "state")?);
    let mut visitor = state::decode(&raw, anonymous_id).map_err(|e| match e {
        state::DecodeError::Version(v) => JsonError(format!("state version {}", v)),
        state::DecodeError::Unreadable(why) => JsonError(why),
    })?;
    let watermark = arg(args, "watermark")?.int("watermark")?;
    let rules = LifecycleRules::from_json(arg(args, "rules")?)?;
    let partition = arg(args, "partition")?.int("partition")?;
    let now_ms = arg(args, "now_ms")?.int("now_ms")?;
    let mut clock = VersionClock::stopped_at(
        arg(args, "versions_last")?.int("versions_last")?,
        arg(args, "now_ns")?.int("now_ns")?,
    );
    let mut out = LifecycleOutput::default();
    advance_lifecycle(
        anonymous_id,
        &mut visitor,
        watermark,
        &rules,
        partition,
        now_ms,
        &mut clock,
        &mut out,
    );
    Ok(Json::Object(vec![
        ("state".into(), state::to_json(&visitor)),
        (
            "transition_rows".into(),
            Json::List(out.transition_rows.iter().map(|r| r.to_json()).collect()),
        ),
        (
            "triggers".into(),
            Json::List(out.triggers.iter().map(|t| t.to_json()).collect()),
        ),
        (
            "trigger_rows".into(),
            Json::List(out.trigger_rows.iter().map(|r| r.to_json()).collect()),
        ),
        (
            "rfm_rows".into(),
            Json::List(out.rfm_rows.iter().map(|r| r.to_json()).collect()),
        ),
        (
            "transitions".into(),
            Json::List(
                out.transitions
                    .iter()
                    .map(|((from, to), n)| {
                        Json::List(vec![Json::s(from), Json::s(to), Json::Int(*n)])
                    })
                    .collect(),
            ),
        ),
        ("versions_last".into(), Json::Int(clock.last())),
    ]))
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "advance" => advance_probe(args),
        "trigger_id" => {
            let parts = arg(args, "parts")?
                .list("parts")?
                .iter()
                .map(|p| p.str("a part").map(str::to_owned))
                .collect::<JsonResult<Vec<String>>>()?;
            Ok(Json::Str(trigger_id(
                arg(args, "trigger_type")?.str("trigger_type")?,
                arg(args, "anonymous_id")?.str("anonymous_id")?,
                &parts,
            )))
        }
        "version_next" => {
            let mut clock = VersionClock::with_last(arg(args, "last")?.int("last")?);
            let version = clock.next_at(arg(args, "now_ns")?.int("now_ns")?);
            Ok(Json::List(vec![
                Json::Int(version),
                Json::Int(clock.last()),
            ]))
        }
        other => Err(JsonError(format!(
            "lifecycle_rows has no probe {:?}",
            other
        ))),
    }
}

/// Probes named "lifecycle_rows.<function>".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    let prefix = "lifecycle_rows.";
    if !name.starts_with(prefix) {
        return None;
    }
    Some(run_probe(&name[prefix.len()..], args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_values() {
        let hex = |b: [u8; 20]| b.iter().map(|x| format!("{:02x}", x)).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    #[test]
    fn version_clock() {
        let mut clock = VersionClock::with_last(10);
        assert_eq!(clock.next_at(5), 11);
        assert_eq!(clock.next_at(20), 20);
        assert!(VersionClock::new().next() > 0);
    }
}
