//! RFM lifecycle stages, their transitions, and marketing triggers: the Rust twin of
//! `streams/lifecycle.py` (docs/semantics.md 7-8), plus the decision part of
//! `streams/lifecycle_rows.py::advance_lifecycle` (what to emit, not the rows).
//!
//! Pure functions of a visitor's counted purchases and cart events. The stage is a step
//! function of event time; the worker emits the steps between the time it last looked
//! and its watermark.
//!
//! Python's integers do not overflow: every sum of a time and a duration is computed here
//! in `i128`, so each comparison is exact for any `i64` inputs. Times that are returned
//! are provably inside `i64` (they lie below a watermark), except the next due times
//! (`next_breakpoint`, `next_cart_deadline`), which are returned as `i128`.

use std::collections::{BTreeMap, HashMap};

use crate::json::{Json, JsonError, JsonResult};
use crate::state::{CartEvent, CartLine, Purchase};

pub const DAY_MS: i64 = 86_400_000;

pub const PROSPECT: &str = "prospect";
pub const NEW: &str = "new";
pub const ACTIVE: &str = "active";
pub const DORMANT: &str = "dormant";
pub const CHURNED: &str = "churned";
/// Not a stage: a buyer's life forgotten after its TTL leaves the segments (a transition
/// into it, no trigger). If the visitor comes back it is a new prospect.
pub const FORGOTTEN: &str = "forgotten";

/// The stage names a transition can carry, as the static strings the functions return.
pub const STAGES: [&str; 6] = [PROSPECT, NEW, ACTIVE, DORMANT, CHURNED, FORGOTTEN];

/// The static name equal to `name`, if it is a stage (or FORGOTTEN).
pub fn stage_named(name: &str) -> Option<&'static str> {
    STAGES.iter().copied().find(|s| *s == name)
}

// -- rules -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LifecycleRules {
    pub new_ms: i64,
    pub dormant_ms: i64,
    pub churn_ms: i64,
    pub cart_abandon_ms: i64,
    pub anonymous_ttl_ms: i64,
    pub buyer_ttl_ms: i64,
}

impl Default for LifecycleRules {
    fn default() -> Self {
        LifecycleRules {
            new_ms: 30 * DAY_MS,
            dormant_ms: 60 * DAY_MS,
            churn_ms: 180 * DAY_MS,
            cart_abandon_ms: 30 * 60_000,
            anonymous_ttl_ms: 35 * DAY_MS,
            buyer_ttl_ms: 400 * DAY_MS,
        }
    }
}

impl LifecycleRules {
    pub const FIELDS: [&'static str; 6] = [
        "new_ms",
        "dormant_ms",
        "churn_ms",
        "cart_abandon_ms",
        "anonymous_ttl_ms",
        "buyer_ttl_ms",
    ];

    /// The rules from `dataclasses.asdict(LifecycleRules(...))` as JSON. A missing field
    /// takes the dataclass default; an unknown field, a non-integer or a negative
    /// duration is an error (the settings require positive durations, which can round
    /// to 0 ms).
    pub fn from_json(value: &Json) -> JsonResult<Self> {
        let mut rules = LifecycleRules::default();
        for (key, item) in value.object("the lifecycle rules")? {
            let n = item.int(key)?;
            if n < 0 {
                return Err(JsonError(format!("{} is negative: {}", key, n)));
            }
            let slot = match key.as_str() {
                "new_ms" => &mut rules.new_ms,
                "dormant_ms" => &mut rules.dormant_ms,
                "churn_ms" => &mut rules.churn_ms,
                "cart_abandon_ms" => &mut rules.cart_abandon_ms,
                "anonymous_ttl_ms" => &mut rules.anonymous_ttl_ms,
                "buyer_ttl_ms" => &mut rules.buyer_ttl_ms,
                other => {
                    return Err(JsonError(format!(
                        "the lifecycle rules have no field {:?}",
                        other
                    )))
                }
            };
            *slot = n;
        }
        Ok(rules)
    }

    pub fn to_json(&self) -> Json {
        let values = [
            self.new_ms,
            self.dormant_ms,
            self.churn_ms,
            self.cart_abandon_ms,
            self.anonymous_ttl_ms,
            self.buyer_ttl_ms,
        ];
        Json::Object(
            Self::FIELDS
                .iter()
                .zip(values.iter())
                .map(|(k, v)| ((*k).to_owned(), Json::Int(*v)))
                .collect(),
        )
    }
}

// -- outputs -----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub at: i64,
    pub from_stage: &'static str,
    pub to_stage: &'static str,
    /// The purchase that caused it, "" for a threshold crossing.
    pub transaction_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerSpec {
    pub trigger_type: &'static str,
    pub at: i64,
    pub id_parts: Vec<String>,
    pub cart: Vec<CartLine>,
    pub currency: String,
    pub channel: String,
    pub segment: &'static str,
    pub previous_segment: &'static str,
}

// -- stages ------------------------------------------------------------------------------

fn wide(n: i64) -> i128 {
    i128::from(n)
}

/// `stage_at` at a time that may lie outside `i64` (e.g. a breakpoint minus 1).
fn stage_at_wide(purchases: &[Purchase], t: i128, rules: &LifecycleRules) -> &'static str {
    let mut first: Option<&Purchase> = None;
    let mut last: Option<&Purchase> = None;
    for purchase in purchases {
        if wide(purchase.t) > t {
            break;
        }
        if first.is_none() {
            first = Some(purchase);
        }
        last = Some(purchase);
    }
    let (first, last) = match (first, last) {
        (Some(first), Some(last)) => (first, last),
        _ => return PROSPECT,
    };
    if t - wide(first.t) < wide(rules.new_ms) {
        return NEW;
    }
    let since_last = t - wide(last.t);
    if since_last < wide(rules.dormant_ms) {
        return ACTIVE;
    }
    if since_last < wide(rules.churn_ms) {
        return DORMANT;
    }
    CHURNED
}

/// The stage at event time `t` given the purchases (sorted by time).
pub fn stage_at(purchases: &[Purchase], t: i64, rules: &LifecycleRules) -> &'static str {
    stage_at_wide(purchases, wide(t), rules)
}

/// Every time the stage may change, once each, in time order, with the purchase at that
/// time (the smallest transaction id; "" for a threshold crossing). Python: `_breakpoints`.
pub fn breakpoints<'a>(purchases: &'a [Purchase], rules: &LifecycleRules) -> Vec<(i128, &'a str)> {
    let first = match purchases.first() {
        Some(first) => first,
        None => return Vec::new(),
    };
    let mut points: BTreeMap<i128, &'a str> = BTreeMap::new();
    points.insert(wide(first.t) + wide(rules.new_ms), "");
    for p in purchases {
        points
            .entry(wide(p.t) + wide(rules.dormant_ms))
            .or_insert("");
    }
    for p in purchases {
        points.entry(wide(p.t) + wide(rules.churn_ms)).or_insert("");
    }
    for p in purchases {
        let at = wide(p.t);
        let current = points.get(&at).copied().unwrap_or("");
        if current.is_empty() || p.transaction_id.as_str() < current {
            points.insert(at, p.transaction_id.as_str());
        }
    }
    points.into_iter().collect()
}

fn transitions_wide(
    purchases: &[Purchase],
    after: Option<i128>,
    until: i128,
    rules: &LifecycleRules,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for (at, txn) in breakpoints(purchases, rules) {
        if after.map_or(false, |after| at < after) || at >= until {
            continue;
        }
        let before = stage_at_wide(purchases, at - 1, rules);
        let now = stage_at_wide(purchases, at, rules);
        if before != now {
            // `at` < until <= i64::MAX, and >= i64::MIN as the durations are not negative.
            if let Ok(at) = i64::try_from(at) {
                out.push(Transition {
                    at,
                    from_stage: before,
                    to_stage: now,
                    transaction_id: txn.to_owned(),
                });
            }
        }
    }
    out
}

/// Stage changes at times in [after, until); `after=None` means from the start.
///
/// Half-open: an on-time event can still arrive at exactly the watermark, so times
/// equal to it are decided on the next advance.
pub fn transitions_between(
    purchases: &[Purchase],
    after: Option<i64>,
    until: i64,
    rules: &LifecycleRules,
) -> Vec<Transition> {
    transitions_wide(purchases, after.map(wide), wide(until), rules)
}

/// The first breakpoint at or after `after` (may lie beyond `i64::MAX`).
pub fn next_breakpoint(purchases: &[Purchase], after: i64, rules: &LifecycleRules) -> Option<i128> {
    let after = wide(after);
    breakpoints(purchases, rules)
        .into_iter()
        .map(|(at, _)| at)
        .filter(|at| *at >= after)
        .min()
}

pub fn lifecycle_triggers(transitions: &[Transition], purchases: &[Purchase]) -> Vec<TriggerSpec> {
    // A dict keyed by transaction id: the last purchase with an id wins.
    let mut by_txn: HashMap<&str, &str> = HashMap::new();
    for p in purchases {
        by_txn.insert(p.transaction_id.as_str(), p.channel.as_str());
    }
    let mut out = Vec::new();
    for tr in transitions {
        // Stage triggers carry the segment change and the purchase's channel; the
        // currency belongs to carts (docs/semantics.md 8).
        let channel = by_txn
            .get(tr.transaction_id.as_str())
            .copied()
            .unwrap_or("");
        let spec = |trigger_type: &'static str, id_parts: Vec<String>| TriggerSpec {
            trigger_type,
            at: tr.at,
            id_parts,
            cart: Vec::new(),
            currency: String::new(),
            channel: channel.to_owned(),
            segment: tr.to_stage,
            previous_segment: tr.from_stage,
        };
        let at = tr.at.to_string();
        out.push(spec(
            "segment_changed",
            vec![at.clone(), tr.to_stage.to_owned()],
        ));
        if tr.from_stage == PROSPECT {
            out.push(spec("first_purchase", vec![tr.transaction_id.clone()]));
        } else if tr.to_stage == DORMANT && tr.transaction_id.is_empty() {
            out.push(spec("user_became_dormant", vec![at]));
        } else if tr.to_stage == CHURNED {
            out.push(spec("user_churned", vec![at]));
        } else if !tr.transaction_id.is_empty()
            && (tr.from_stage == DORMANT || tr.from_stage == CHURNED)
        {
            out.push(spec("user_reactivated", vec![tr.transaction_id.clone()]));
        }
    }
    out
}

// -- carts -------------------------------------------------------------------------------

/// CART_ACTIVITY
pub fn is_cart_activity(kind: &str) -> bool {
    kind == "add_to_cart" || kind == "remove_from_cart" || kind == "view_cart"
}

/// CART_RESET
pub fn is_cart_reset(kind: &str) -> bool {
    kind == "begin_checkout" || kind == "purchase"
}

/// Time order; within one millisecond cart changes come before checkout/purchase.
pub fn cart_order(event: &CartEvent) -> (i64, bool, &str) {
    (event.t, is_cart_reset(&event.kind), event.event_id.as_str())
}

/// The events in cart order (a stable sort, as Python's `sorted(key=cart_order)`).
pub fn sorted_cart(events: &[CartEvent]) -> Vec<&CartEvent> {
    let mut ordered: Vec<&CartEvent> = events.iter().collect();
    ordered.sort_by(|a, b| cart_order(a).cmp(&cart_order(b)));
    ordered
}

fn saturate(n: i128) -> i64 {
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// Item -> (quantity, unit price) after `events` (in cart order): adds minus removes,
/// price of the latest add, items in the order they (re)entered the cart. As CartLines
/// in that order. The quantities are summed exactly and saturate at the `i64` bounds
/// (validation caps one line at 32 bits, so a saturated sum is unreachable).
pub fn cart_lines<'a, I>(events: I) -> Vec<CartLine>
where
    I: IntoIterator<Item = &'a CartEvent>,
{
    let mut lines: Vec<(&'a str, i128, i64)> = Vec::new();
    for event in events {
        if is_cart_reset(&event.kind) {
            lines.clear();
        } else if event.kind == "add_to_cart" {
            for line in &event.lines {
                let item = line.item_id.as_str();
                let position = lines.iter().position(|l| l.0 == item);
                let held = position.map_or(0, |i| lines[i].1) + wide(line.quantity);
                if held > 0 {
                    match position {
                        Some(i) => lines[i] = (item, held, line.unit_price_minor),
                        None => lines.push((item, held, line.unit_price_minor)),
                    }
                }
            }
        } else if event.kind == "remove_from_cart" {
            for line in &event.lines {
                let item = line.item_id.as_str();
                if let Some(i) = lines.iter().position(|l| l.0 == item) {
                    let (_, held, price) = lines[i];
                    let left = held - wide(line.quantity);
                    if left > 0 {
                        lines[i] = (item, left, price);
                    } else {
                        lines.remove(i);
                    }
                }
            }
        }
    }
    lines
        .into_iter()
        .map(|(item, held, price)| CartLine {
            item_id: item.to_owned(),
            quantity: saturate(held),
            unit_price_minor: price,
        })
        .collect()
}

/// The latest currency seen on a cart activity since the last reset. Python: `_cart_currency`.
pub fn cart_currency<'a, I>(events: I) -> String
where
    I: IntoIterator<Item = &'a CartEvent>,
{
    let mut currency = "";
    for event in events {
        if is_cart_reset(&event.kind) {
            currency = "";
        } else if !event.currency.is_empty() {
            currency = event.currency.as_str();
        }
    }
    currency.to_owned()
}

fn abandoned_wide(
    events: &[CartEvent],
    after: Option<i128>,
    until: i128,
    rules: &LifecycleRules,
) -> Vec<TriggerSpec> {
    let ordered = sorted_cart(events);
    let mut out = Vec::new();
    for (index, event) in ordered.iter().enumerate() {
        if !is_cart_activity(&event.kind) {
            continue;
        }
        let fire_at = wide(event.t) + wide(rules.cart_abandon_ms);
        if after.map_or(false, |after| fire_at < after) || fire_at >= until {
            continue;
        }
        let followed = ordered[index + 1..]
            .iter()
            .filter(|e| wide(e.t) <= fire_at)
            .any(|e| is_cart_activity(&e.kind) || is_cart_reset(&e.kind));
        if followed {
            continue; // not the last cart activity, or checkout/purchase followed
        }
        let upto = &ordered[..index + 1];
        let cart = cart_lines(upto.iter().copied());
        if cart.is_empty() {
            continue;
        }
        // fire_at < until <= i64::MAX, and >= i64::MIN as the delay is not negative.
        let at = match i64::try_from(fire_at) {
            Ok(at) => at,
            Err(_) => continue,
        };
        out.push(TriggerSpec {
            trigger_type: "cart_abandoned",
            at,
            id_parts: vec![event.event_id.clone()],
            cart,
            currency: cart_currency(upto.iter().copied()),
            channel: event.channel.clone(),
            segment: "",
            previous_segment: "",
        });
    }
    out
}

/// cart_abandoned triggers whose fire time lies in [after, until).
pub fn abandoned_carts(
    events: &[CartEvent],
    after: Option<i64>,
    until: i64,
    rules: &LifecycleRules,
) -> Vec<TriggerSpec> {
    abandoned_wide(events, after.map(wide), wide(until), rules)
}

/// The earliest abandonment deadline at or after `after` (may lie beyond `i64::MAX`).
pub fn next_cart_deadline(
    events: &[CartEvent],
    after: i64,
    rules: &LifecycleRules,
) -> Option<i128> {
    let after = wide(after);
    events
        .iter()
        .filter(|e| is_cart_activity(&e.kind))
        .map(|e| wide(e.t) + wide(rules.cart_abandon_ms))
        .filter(|deadline| *deadline >= after)
        .min()
}

/// Drop what no future trigger can need: everything before the last reset that is
/// older than the abandonment delay. The kept events in cart order.
pub fn prune_cart(events: &[CartEvent], watermark: i64, rules: &LifecycleRules) -> Vec<CartEvent> {
    let ordered = sorted_cart(events);
    let mut keep_from = 0;
    for (index, event) in ordered.iter().enumerate() {
        if is_cart_reset(&event.kind)
            && wide(event.t) + wide(rules.cart_abandon_ms) < wide(watermark)
        {
            keep_from = index + 1;
        }
    }
    ordered[keep_from..].iter().map(|e| (*e).clone()).collect()
}

// -- advance_lifecycle's decisions (streams/lifecycle_rows.py) ---------------------------

/// What `advance_lifecycle` needs of one of `split_lives`' lives.
#[derive(Clone, Copy, Debug)]
pub struct LifeSpan<'a> {
    /// `Life.purchases` (sorted by time, then transaction id).
    pub purchases: &'a [Purchase],
    /// `Life.first_t`, `Life.last_t`, `Life.ttl_ms`.
    pub first_t: i64,
    pub last_t: i64,
    pub ttl_ms: i64,
}

impl<'a> LifeSpan<'a> {
    fn forgotten_at(&self) -> i128 {
        wide(self.last_t) + wide(self.ttl_ms)
    }

    fn holds(&self, t: i64) -> bool {
        self.first_t <= t && t <= self.last_t
    }
}

/// What `advance_lifecycle` emits and how it changes the state, before any row is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleAdvance {
    /// segment_transitions rows, in order (also counted in stats.transitions by
    /// (from_stage, to_stage)); includes a life's move to FORGOTTEN.
    pub transitions: Vec<Transition>,
    /// The triggers, in order (each goes to `triggers.to_trigger` and the triggers table).
    pub triggers: Vec<TriggerSpec>,
    /// A user_rfm row for (index of the life in `lives`, its stage), if any.
    pub rfm: Option<(usize, &'static str)>,
    /// The new `state.stage`; None leaves it unchanged (no lives).
    pub stage: Option<&'static str>,
    /// The new `state.lifecycle_as_of` (the watermark).
    pub lifecycle_as_of: i64,
    /// The new `state.cart` (`prune_cart` of the old one).
    pub cart: Vec<CartEvent>,
}

/// The decisions of `advance_lifecycle(anonymous_id, state, watermark, rules, ...)` for
/// `lives = split_lives(state.days, state.purchases, rules)`, `cart = state.cart` and
/// `as_of = state.lifecycle_as_of`. None when the watermark has not passed `as_of` (the
/// Python returns without touching the state).
pub fn advance_lifecycle(
    lives: &[LifeSpan],
    cart: &[CartEvent],
    as_of: Option<i64>,
    watermark: i64,
    rules: &LifecycleRules,
) -> Option<LifecycleAdvance> {
    if let Some(after) = as_of {
        if watermark <= after {
            return None;
        }
    }
    let after = as_of.map(wide);
    let low = after.unwrap_or(-1);
    let high = wide(watermark);
    let mut out = LifecycleAdvance {
        transitions: Vec::new(),
        triggers: Vec::new(),
        rfm: None,
        stage: None,
        lifecycle_as_of: watermark,
        cart: Vec::new(),
    };
    for (index, life) in lives.iter().enumerate() {
        let forgotten_at = life.forgotten_at();
        let until = high.min(forgotten_at + 1);
        let purchases = life.purchases;
        let transitions = transitions_wide(purchases, after, until, rules);
        let mut specs = lifecycle_triggers(&transitions, purchases);
        let held: Vec<CartEvent> = cart.iter().filter(|e| life.holds(e.t)).cloned().collect();
        specs.extend(abandoned_wide(&held, after, until, rules));
        let changed = !transitions.is_empty()
            || purchases
                .iter()
                .any(|p| low <= wide(p.t) && wide(p.t) < high);
        out.transitions.extend(transitions);
        if !purchases.is_empty() && low <= forgotten_at && forgotten_at < high {
            // The life ends: it leaves its segment (docs/semantics.md section 7). No
            // trigger, and the RFM row keeps its last values. (forgotten_at < watermark.)
            if let Ok(at) = i64::try_from(forgotten_at) {
                out.transitions.push(Transition {
                    at,
                    from_stage: stage_at_wide(purchases, forgotten_at - 1, rules),
                    to_stage: FORGOTTEN,
                    transaction_id: String::new(),
                });
            }
        }
        specs.sort_by(|a, b| (a.at, a.trigger_type).cmp(&(b.at, b.trigger_type)));
        out.triggers.extend(specs);
        let stage = stage_at_wide(purchases, high - 1, rules);
        if stage != PROSPECT {
            out.rfm = if changed { Some((index, stage)) } else { None };
        }
        out.stage = Some(stage);
    }
    out.cart = prune_cart(cart, watermark, rules);
    Some(out)
}

// -- probes (the differential test's adapter) --------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

fn exact<'a>(value: &'a Json, what: &str, n: usize) -> JsonResult<&'a [Json]> {
    let items = value.list(what)?;
    if items.len() != n {
        return Err(JsonError(format!(
            "{} has {} fields, not {}",
            what,
            items.len(),
            n
        )));
    }
    Ok(items)
}

fn purchase_of(value: &Json) -> JsonResult<Purchase> {
    let f = exact(value, "a purchase", 5)?;
    Ok(Purchase {
        t: f[0].int("a purchase's time")?,
        transaction_id: f[1].str("a transaction")?.to_owned(),
        value_minor: f[2].int("a value")?,
        currency: f[3].str("a currency")?.to_owned(),
        channel: f[4].str("a channel")?.to_owned(),
    })
}

fn cart_event_of(value: &Json) -> JsonResult<CartEvent> {
    let f = exact(value, "a cart event", 6)?;
    let lines = f[3]
        .list("a cart event's lines")?
        .iter()
        .map(|line| {
            let l = exact(line, "a cart line", 3)?;
            Ok(CartLine {
                item_id: l[0].str("an item")?.to_owned(),
                quantity: l[1].int("a quantity")?,
                unit_price_minor: l[2].int("a price")?,
            })
        })
        .collect::<JsonResult<_>>()?;
    Ok(CartEvent {
        t: f[0].int("a cart event's time")?,
        event_id: f[1].str("an event id")?.to_owned(),
        kind: f[2].str("a kind")?.to_owned(),
        lines,
        currency: f[4].str("a currency")?.to_owned(),
        channel: f[5].str("a channel")?.to_owned(),
    })
}

fn purchases_arg(args: &Json, name: &str) -> JsonResult<Vec<Purchase>> {
    arg(args, name)?
        .list(name)?
        .iter()
        .map(purchase_of)
        .collect()
}

fn cart_arg(args: &Json, name: &str) -> JsonResult<Vec<CartEvent>> {
    arg(args, name)?
        .list(name)?
        .iter()
        .map(cart_event_of)
        .collect()
}

fn rules_arg(args: &Json) -> JsonResult<LifecycleRules> {
    LifecycleRules::from_json(arg(args, "rules")?)
}

fn stage_of(value: &Json) -> JsonResult<&'static str> {
    let name = value.str("a stage")?;
    stage_named(name).ok_or_else(|| JsonError(format!("no stage is named {:?}", name)))
}

fn transition_of(value: &Json) -> JsonResult<Transition> {
    let f = exact(value, "a transition", 4)?;
    Ok(Transition {
        at: f[0].int("a transition's time")?,
        from_stage: stage_of(&f[1])?,
        to_stage: stage_of(&f[2])?,
        transaction_id: f[3].str("a transaction")?.to_owned(),
    })
}

/// An integer that may not fit in i64: as a decimal string then (the test does the same).
fn wide_json(n: i128) -> Json {
    match i64::try_from(n) {
        Ok(n) => Json::Int(n),
        Err(_) => Json::Str(n.to_string()),
    }
}

fn lines_json(lines: &[CartLine]) -> Json {
    Json::List(
        lines
            .iter()
            .map(|l| {
                Json::List(vec![
                    Json::s(&l.item_id),
                    Json::Int(l.quantity),
                    Json::Int(l.unit_price_minor),
                ])
            })
            .collect(),
    )
}

fn cart_event_json(e: &CartEvent) -> Json {
    Json::List(vec![
        Json::Int(e.t),
        Json::s(&e.event_id),
        Json::s(&e.kind),
        lines_json(&e.lines),
        Json::s(&e.currency),
        Json::s(&e.channel),
    ])
}

fn transition_json(tr: &Transition) -> Json {
    Json::List(vec![
        Json::Int(tr.at),
        Json::s(tr.from_stage),
        Json::s(tr.to_stage),
        Json::s(&tr.transaction_id),
    ])
}

fn spec_json(spec: &TriggerSpec) -> Json {
    Json::List(vec![
        Json::s(spec.trigger_type),
        Json::Int(spec.at),
        Json::List(spec.id_parts.iter().map(|p| Json::s(p)).collect()),
        lines_json(&spec.cart),
        Json::s(&spec.currency),
        Json::s(&spec.channel),
        Json::s(spec.segment),
        Json::s(spec.previous_segment),
    ])
}

fn list<T>(items: &[T], f: fn(&T) -> Json) -> Json {
    Json::List(items.iter().map(f).collect())
}

fn opt_wide(value: Option<i128>) -> Json {
    value.map_or(Json::Null, wide_json)
}

fn advance_probe(args: &Json) -> JsonResult<Json> {
    let rules = rules_arg(args)?;
    let mut held: Vec<(Vec<Purchase>, i64, i64, i64)> = Vec::new();
    for life in arg(args, "lives")?.list("lives")? {
        let f = exact(life, "a life", 4)?;
        let purchases = f[0]
            .list("a life's purchases")?
            .iter()
            .map(purchase_of)
            .collect::<JsonResult<Vec<_>>>()?;
        held.push((
            purchases,
            f[1].int("a life's first time")?,
            f[2].int("a life's last time")?,
            f[3].int("a life's ttl")?,
        ));
    }
    let lives: Vec<LifeSpan> = held
        .iter()
        .map(|(purchases, first_t, last_t, ttl_ms)| LifeSpan {
            purchases,
            first_t: *first_t,
            last_t: *last_t,
            ttl_ms: *ttl_ms,
        })
        .collect();
    let cart = cart_arg(args, "cart")?;
    let as_of = arg(args, "as_of")?.opt_int("as_of")?;
    let watermark = arg(args, "watermark")?.int("watermark")?;
    Ok(
        match advance_lifecycle(&lives, &cart, as_of, watermark, &rules) {
            None => Json::Null,
            Some(a) => Json::Object(vec![
                ("transitions".into(), list(&a.transitions, transition_json)),
                ("triggers".into(), list(&a.triggers, spec_json)),
                (
                    "rfm".into(),
                    match a.rfm {
                        Some((index, stage)) => {
                            Json::List(vec![Json::Int(index as i64), Json::s(stage)])
                        }
                        None => Json::Null,
                    },
                ),
                ("stage".into(), a.stage.map_or(Json::Null, Json::s)),
                ("lifecycle_as_of".into(), Json::Int(a.lifecycle_as_of)),
                ("cart".into(), list(&a.cart, cart_event_json)),
            ]),
        },
    )
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "rules" => Ok(LifecycleRules::from_json(arg(args, "rules")?)?.to_json()),
        "stage_at" => {
            let purchases = purchases_arg(args, "purchases")?;
            let t = arg(args, "t")?.int("t")?;
            Ok(Json::s(stage_at(&purchases, t, &rules_arg(args)?)))
        }
        "breakpoints" => {
            let purchases = purchases_arg(args, "purchases")?;
            let rules = rules_arg(args)?;
            Ok(Json::List(
                breakpoints(&purchases, &rules)
                    .into_iter()
                    .map(|(at, txn)| Json::List(vec![wide_json(at), Json::s(txn)]))
                    .collect(),
            ))
        }
        "transitions_between" => {
            let purchases = purchases_arg(args, "purchases")?;
            let after = arg(args, "after")?.opt_int("after")?;
            let until = arg(args, "until")?.int("until")?;
            let found = transitions_between(&purchases, after, until, &rules_arg(args)?);
            Ok(list(&found, transition_json))
        }
        "next_breakpoint" => {
            let purchases = purchases_arg(args, "purchases")?;
            let after = arg(args, "after")?.int("after")?;
            Ok(opt_wide(next_breakpoint(
                &purchases,
                after,
                &rules_arg(args)?,
            )))
        }
        "lifecycle_triggers" => {
            let transitions = arg(args, "transitions")?
                .list("transitions")?
                .iter()
                .map(transition_of)
                .collect::<JsonResult<Vec<_>>>()?;
            let purchases = purchases_arg(args, "purchases")?;
            Ok(list(
                &lifecycle_triggers(&transitions, &purchases),
                spec_json,
            ))
        }
        "cart_order" => {
            let event = cart_event_of(arg(args, "event")?)?;
            let (t, reset, id) = cart_order(&event);
            Ok(Json::List(vec![
                Json::Int(t),
                Json::Bool(reset),
                Json::s(id),
            ]))
        }
        "cart_lines" => Ok(lines_json(&cart_lines(&cart_arg(args, "events")?))),
        "cart_currency" => Ok(Json::Str(cart_currency(&cart_arg(args, "events")?))),
        "abandoned_carts" => {
            let events = cart_arg(args, "events")?;
            let after = arg(args, "after")?.opt_int("after")?;
            let until = arg(args, "until")?.int("until")?;
            let found = abandoned_carts(&events, after, until, &rules_arg(args)?);
            Ok(list(&found, spec_json))
        }
        "next_cart_deadline" => {
            let events = cart_arg(args, "events")?;
            let after = arg(args, "after")?.int("after")?;
            Ok(opt_wide(next_cart_deadline(
                &events,
                after,
                &rules_arg(args)?,
            )))
        }
        "prune_cart" => {
            let events = cart_arg(args, "events")?;
            let watermark = arg(args, "watermark")?.int("watermark")?;
            Ok(list(
                &prune_cart(&events, watermark, &rules_arg(args)?),
                cart_event_json,
            ))
        }
        "advance" => advance_probe(args),
        other => Err(JsonError(format!("lifecycle has no probe {:?}", other))),
    }
}

/// Probes named "lifecycle.<function>".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    let prefix = "lifecycle.";
    if !name.starts_with(prefix) {
        return None;
    }
    Some(run_probe(&name[prefix.len()..], args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buy(t: i64, txn: &str) -> Purchase {
        Purchase {
            t,
            transaction_id: txn.into(),
            value_minor: 1,
            currency: "EUR".into(),
            channel: "email".into(),
        }
    }

    #[test]
    fn stages_and_extreme_times() {
        let rules = LifecycleRules::default();
        let p = vec![buy(0, "a")];
        assert_eq!(stage_at(&p, -1, &rules), PROSPECT);
        assert_eq!(stage_at(&p, 0, &rules), NEW);
        assert_eq!(stage_at(&p, 180 * DAY_MS, &rules), CHURNED);
        let far = vec![buy(i64::MAX, "z")];
        assert_eq!(stage_at(&far, i64::MAX, &rules), NEW);
        let got = transitions_between(&far, None, i64::MAX, &rules);
        assert!(got.is_empty());
        assert_eq!(
            next_breakpoint(&far, i64::MAX, &rules),
            Some(i128::from(i64::MAX))
        );
        let low = vec![buy(i64::MIN, "y")];
        let got = transitions_between(&low, None, i64::MIN + 1, &rules);
        assert_eq!(got.len(), 1);
        assert_eq!(stage_at(&low, i64::MAX, &rules), CHURNED);
    }

    #[test]
    fn rules_from_json() {
        let rules = LifecycleRules::from_json(&Json::Object(vec![("new_ms".into(), Json::Int(5))]))
            .unwrap();
        assert_eq!(rules.new_ms, 5);
        assert_eq!(rules.buyer_ttl_ms, 400 * DAY_MS);
        assert!(
            LifecycleRules::from_json(&Json::Object(vec![("x".into(), Json::Int(5))])).is_err()
        );
        assert!(
            LifecycleRules::from_json(&Json::Object(vec![("new_ms".into(), Json::Int(-1))]))
                .is_err()
        );
        assert_eq!(LifecycleRules::from_json(&rules.to_json()).unwrap(), rules);
    }
}
