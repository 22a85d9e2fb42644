//! A visitor's *lives*: the Rust twin of `streams/lives.py`.
//!
//! docs/semantics.md section 6: a visitor without a purchase is forgotten 35 days after
//! its last counted event, a buyer after 400 days; if it comes back it is a new visitor
//! for retention, lifecycle stages and triggers. The split is a pure function of the
//! per-day summary of the visitor's activity (`DayActivity`, in state.rs).

use crate::json::{Json, JsonError, JsonResult};
pub use crate::lifecycle::LifecycleRules;
use crate::lifecycle::DAY_MS;
use crate::retention::sorted_purchases;
use crate::state::{CartEvent, DayActivity, Purchase};
// The probes' JSON of these items is the state's own (state.rs).
pub use crate::state::{
    cart_json, day_json, decode_cart as cart_from_json, decode_day as day_from_json,
    decode_purchase as purchase_from_json, purchase_json,
};
use std::convert::TryFrom;

/// Record a counted event in the sorted per-day summary (`add_activity`).
pub fn add_activity(
    days: &mut Vec<DayActivity>,
    t: i64,
    event_id: &str,
    channel: &str,
    platform: &str,
) {
    let day = t.div_euclid(DAY_MS);
    let fresh = || DayActivity {
        day,
        first_t: t,
        first_event_id: event_id.to_owned(),
        channel: channel.to_owned(),
        platform: platform.to_owned(),
        last_t: t,
    };
    // `days` is sorted by day, one entry per day: most events fall on the last day or
    // after it. (Like the Python, an unsorted list is scanned from the start.)
    let last_day = match days.last() {
        None => {
            days.push(fresh());
            return;
        }
        Some(last) => last.day,
    };
    if last_day < day {
        days.push(fresh());
        return;
    }
    let start = if last_day == day { days.len() - 1 } else { 0 };
    for index in start..days.len() {
        let entry = match days.get_mut(index) {
            Some(entry) => entry,
            None => break,
        };
        if entry.day == day {
            let earliest = (t, event_id) < (entry.first_t, entry.first_event_id.as_str());
            if earliest {
                entry.first_t = t;
                entry.first_event_id = event_id.to_owned();
                entry.channel = channel.to_owned();
                entry.platform = platform.to_owned();
            }
            entry.last_t = entry.last_t.max(t);
            return;
        }
        if entry.day > day {
            days.insert(index, fresh());
            return;
        }
    }
    days.push(fresh());
}

/// One life: a run of the visitor's days, the purchases within it, its TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Life<'a> {
    days: &'a [DayActivity],
    first: &'a DayActivity,
    last: &'a DayActivity,
    purchases: Vec<&'a Purchase>,
    ttl_ms: i64,
}

impl<'a> Life<'a> {
    /// `Life(days, purchases, ttl_ms)`; None for no days (the Python's properties raise).
    pub fn new(
        days: &'a [DayActivity],
        purchases: Vec<&'a Purchase>,
        ttl_ms: i64,
    ) -> Option<Life<'a>> {
        Some(Life {
            days,
            first: days.first()?,
            last: days.last()?,
            purchases,
            ttl_ms,
        })
    }

    pub fn days(&self) -> &'a [DayActivity] {
        self.days
    }

    pub fn purchases(&self) -> &[&'a Purchase] {
        &self.purchases
    }

    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    pub fn first(&self) -> &'a DayActivity {
        self.first
    }

    pub fn first_t(&self) -> i64 {
        self.first.first_t
    }

    pub fn last_t(&self) -> i64 {
        self.last.last_t
    }

    /// `last_t + ttl_ms`, exact (in i128: Python's ints do not overflow).
    pub fn forgotten_at(&self) -> i128 {
        self.last_t() as i128 + self.ttl_ms as i128
    }

    pub fn holds(&self, t: i64) -> bool {
        self.first_t() <= t && t <= self.last_t()
    }

    pub fn cart<'c>(&self, events: &'c [CartEvent]) -> Vec<&'c CartEvent> {
        events.iter().filter(|e| self.holds(e.t)).collect()
    }
}

/// Lives in time order (`split_lives`). A gap longer than the TTL splits; a buyer's TTL
/// applies when the life has a purchase at or before the earlier event of the gap.
pub fn split_lives<'a, I>(
    days: &'a [DayActivity],
    purchases: I,
    rules: &LifecycleRules,
) -> Vec<Life<'a>>
where
    I: IntoIterator<Item = &'a Purchase>,
{
    let ordered = sorted_purchases(purchases);
    let within = |from: i64, to: i64| ordered.iter().any(|p| from <= p.t && p.t <= to);
    // Each group: its first index, and the first time of its first day and the last time
    // of its last day.
    let mut groups: Vec<(usize, i64, i64)> = Vec::new();
    for (index, entry) in days.iter().enumerate() {
        if let Some(group) = groups.last_mut() {
            let (start_t, last_t) = (group.1, group.2);
            let ttl = if within(start_t, last_t) {
                rules.buyer_ttl_ms
            } else {
                rules.anonymous_ttl_ms
            };
            if entry.first_t as i128 - last_t as i128 <= ttl as i128 {
                group.2 = entry.last_t;
                continue;
            }
        }
        groups.push((index, entry.first_t, entry.last_t));
    }
    let mut lives: Vec<Life<'a>> = Vec::with_capacity(groups.len());
    for (g, &(start, first_t, last_t)) in groups.iter().enumerate() {
        let end = groups.get(g + 1).map_or(days.len(), |next| next.0);
        let held: Vec<&'a Purchase> = ordered
            .iter()
            .copied()
            .filter(|p| first_t <= p.t && p.t <= last_t)
            .collect();
        let ttl = if held.is_empty() {
            rules.anonymous_ttl_ms
        } else {
            rules.buyer_ttl_ms
        };
        if let Some(life) = days
            .get(start..end)
            .and_then(|group| Life::new(group, held, ttl))
        {
            lives.push(life);
        }
    }
    lives
}

// -- JSON, for the probes (the same lists as the state codec) -----------------------------

/// An exact integer: a JSON integer where it fits i64, else its decimal digits.
pub fn wide_int_json(n: i128) -> Json {
    match i64::try_from(n) {
        Ok(n) => Json::Int(n),
        Err(_) => Json::Str(n.to_string()),
    }
}

// -- probes ------------------------------------------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

fn list_arg<T>(args: &Json, name: &str, decode: fn(&Json) -> JsonResult<T>) -> JsonResult<Vec<T>> {
    arg(args, name)?.list(name)?.iter().map(decode).collect()
}

fn life_json(life: &Life) -> Json {
    Json::Object(vec![
        (
            "days".into(),
            Json::List(life.days().iter().map(day_json).collect()),
        ),
        (
            "purchases".into(),
            Json::List(life.purchases().iter().map(|p| purchase_json(p)).collect()),
        ),
        ("ttl_ms".into(), Json::Int(life.ttl_ms())),
        ("first".into(), day_json(life.first())),
        ("first_t".into(), Json::Int(life.first_t())),
        ("last_t".into(), Json::Int(life.last_t())),
        ("forgotten_at".into(), wide_int_json(life.forgotten_at())),
    ])
}

pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    let run = match name {
        "lives.add_activity" => probe_add_activity,
        "lives.split_lives" => probe_split_lives,
        "lives.life" => probe_life,
        "lives.rules" => probe_rules,
        _ => return None,
    };
    Some(run(args))
}

fn probe_add_activity(args: &Json) -> JsonResult<Json> {
    let mut days = list_arg(args, "days", day_from_json)?;
    add_activity(
        &mut days,
        arg(args, "t")?.int("t")?,
        arg(args, "event_id")?.str("the event id")?,
        arg(args, "channel")?.str("the channel")?,
        arg(args, "platform")?.str("the platform")?,
    );
    Ok(Json::List(days.iter().map(day_json).collect()))
}

fn probe_split_lives(args: &Json) -> JsonResult<Json> {
    let days = list_arg(args, "days", day_from_json)?;
    let purchases = list_arg(args, "purchases", purchase_from_json)?;
    let rules = LifecycleRules::from_json(arg(args, "rules")?)?;
    let lives = split_lives(&days, purchases.iter(), &rules);
    Ok(Json::List(lives.iter().map(life_json).collect()))
}

/// A Life built directly (as the dataclass can be): its properties, `holds` at each of
/// `times`, and `cart(cart)`. Null for no days.
fn probe_life(args: &Json) -> JsonResult<Json> {
    let days = list_arg(args, "days", day_from_json)?;
    let purchases = list_arg(args, "purchases", purchase_from_json)?;
    let ttl_ms = arg(args, "ttl_ms")?.int("the ttl")?;
    let times: Vec<i64> = arg(args, "times")?
        .list("the times")?
        .iter()
        .map(|t| t.int("a time"))
        .collect::<JsonResult<_>>()?;
    let cart = list_arg(args, "cart", cart_from_json)?;
    let life = match Life::new(&days, purchases.iter().collect(), ttl_ms) {
        Some(life) => life,
        None => return Ok(Json::Null),
    };
    let mut out = match life_json(&life) {
        Json::Object(entries) => entries,
        _ => Vec::new(),
    };
    out.push((
        "holds".into(),
        Json::List(times.iter().map(|t| Json::Bool(life.holds(*t))).collect()),
    ));
    out.push((
        "cart".into(),
        Json::List(life.cart(&cart).into_iter().map(cart_json).collect()),
    ));
    Ok(Json::Object(out))
}

fn probe_rules(args: &Json) -> JsonResult<Json> {
    let rules = LifecycleRules::from_json(arg(args, "rules")?)?;
    Ok(Json::Object(vec![
        ("anonymous_ttl_ms".into(), Json::Int(rules.anonymous_ttl_ms)),
        ("buyer_ttl_ms".into(), Json::Int(rules.buyer_ttl_ms)),
    ]))
}
