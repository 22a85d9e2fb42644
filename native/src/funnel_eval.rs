//! Which step an entity (session segment or user attempt group) reached in a funnel: the
//! Rust twin of `streams/funnel_eval.py` (docs/semantics.md section 3: modes ordered,
//! strict and unordered; step filters; per-step windows; exclusions).
//!
//! Pure functions over events sorted by (t, event_id). Where Python would raise
//! `decimal.InvalidOperation` (a numeric filter meeting a value like "1e9999999999999999999",
//! out of the decimal module's range), these return `Err(FilterError)`.
//!
//! Times are added in i128 (`t + window` cannot overflow); `user_group_ranges` gives a
//! group's last allowed start as `t + window` saturated at i64::MAX, which selects the
//! same starts as Python's unbounded integer (no event time is above i64::MAX).

use crate::funnels::{EventMatcher, FilterError, FunnelDef, Mode};
use crate::json::{Json, JsonError, JsonResult};
use crate::state::{decode_event, FunnelEvent};

/// `matches(matcher, event)`: the event's type, and every filter in order.
pub fn matches(matcher: &EventMatcher, event: &FunnelEvent) -> Result<bool, FilterError> {
    if event.event_type != matcher.event {
        return Ok(false);
    }
    for filter in &matcher.filters {
        if !filter.matches(event)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The credited attempt of one entity; its events borrowed from the evaluated slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credit<'a> {
    pub level: usize,
    pub start_t: i64,
    pub start_event_id: &'a str,
    pub dims: usize,
    /// Set when level == number of steps.
    pub time_to_convert_ms: Option<i64>,
    /// The events of steps 1..level.
    pub steps: Vec<&'a FunnelEvent>,
}

/// Per step, the positions of the events matching it (ascending).
fn candidates(funnel: &FunnelDef, events: &[FunnelEvent]) -> Result<Vec<Vec<usize>>, FilterError> {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); funnel.step_defs.len()];
    for (position, event) in events.iter().enumerate() {
        for &step in funnel.steps_of(&event.event_type) {
            let (definition, positions) = match (funnel.step_defs.get(step), out.get_mut(step)) {
                (Some(definition), Some(positions)) => (definition, positions),
                _ => continue, // steps_of_type indexes step_defs: not reached
            };
            let mut all = true;
            for filter in &definition.matcher.filters {
                if !filter.matches(event)? {
                    all = false;
                    break;
                }
            }
            if all {
                positions.push(position);
            }
        }
    }
    Ok(out)
}

/// Python's `bisect_left` over the events' times (the same probes, so the same answer
/// even on a list that is not sorted).
fn bisect_left(events: &[FunnelEvent], t: i64) -> usize {
    let (mut lo, mut hi) = (0, events.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if events[mid].t < t {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Greedy chain from `events[first]`: positions of the steps filled.
fn ordered_chain(
    funnel: &FunnelDef,
    events: &[FunnelEvent],
    candidates: &[Vec<usize>],
    first: usize,
) -> Vec<usize> {
    let deadline = i128::from(events[first].t) + i128::from(funnel.window_ms);
    let mut chain = vec![first];
    for step in 1..funnel.step_defs.len() {
        let previous_t = events[chain[chain.len() - 1]].t;
        let limit = match funnel.step_defs[step].within_ms {
            None => deadline,
            Some(within) => deadline.min(i128::from(previous_t) + i128::from(within)),
        };
        let start = bisect_left(events, previous_t);
        let mut found = None;
        for &position in &candidates[step] {
            if position < start || chain.contains(&position) {
                continue;
            }
            if i128::from(events[position].t) <= limit {
                found = Some(position);
            }
            break;
        }
        match found {
            Some(position) => chain.push(position),
            None => break,
        }
    }
    chain
}

/// Each next step must be the entity's very next event.
fn strict_chain(
    funnel: &FunnelDef,
    events: &[FunnelEvent],
    first: usize,
) -> Result<Vec<usize>, FilterError> {
    let deadline = i128::from(events[first].t) + i128::from(funnel.window_ms);
    let mut chain = vec![first];
    for step in 1..funnel.step_defs.len() {
        let last = chain[chain.len() - 1];
        let next = last + 1;
        if next >= events.len() || !matches(&funnel.step_defs[step].matcher, &events[next])? {
            break;
        }
        let t = i128::from(events[next].t);
        let too_late = match funnel.step_defs[step].within_ms {
            None => false,
            Some(within) => t - i128::from(events[last].t) > i128::from(within),
        };
        if t > deadline || too_late {
            break;
        }
        chain.push(next);
    }
    Ok(chain)
}

/// An exclusion event strictly between the chain's events of its two steps.
fn excluded(
    funnel: &FunnelDef,
    events: &[FunnelEvent],
    chain: &[usize],
) -> Result<bool, FilterError> {
    for exclusion in &funnel.exclusions {
        if chain.len() < exclusion.to_step {
            continue;
        }
        let (low, high) = match (
            exclusion
                .from_step
                .checked_sub(1)
                .and_then(|i| chain.get(i)),
            chain.get(exclusion.to_step.wrapping_sub(1)),
        ) {
            (Some(&low), Some(&high)) => (low, high),
            _ => continue, // from_json keeps 1 <= from_step < to_step: not reached
        };
        for position in low + 1..high {
            if !chain.contains(&position) && matches(&exclusion.matcher, &events[position])? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Add `position` to the matching steps <-> events by an augmenting path.
fn augment(
    position: usize,
    candidates: &[Vec<usize>],
    seen: &mut [bool],
    event_of_step: &mut [Option<usize>],
) -> bool {
    for step in 0..candidates.len() {
        if seen[step] || candidates[step].binary_search(&position).is_err() {
            continue;
        }
        seen[step] = true;
        let free = match event_of_step[step] {
            None => true,
            Some(holder) => augment(holder, candidates, seen, event_of_step),
        };
        if free {
            event_of_step[step] = Some(position);
            return true;
        }
    }
    false
}

/// Positions of the k-th step events (k = 1..level) of the attempt at `first`: events
/// are added in order to a bipartite matching steps <-> events; the event whose addition
/// grows the matching to k is the k-th step event.
fn unordered_steps(
    funnel: &FunnelDef,
    events: &[FunnelEvent],
    candidates: &[Vec<usize>],
    first: usize,
) -> Vec<usize> {
    let deadline = i128::from(events[first].t) + i128::from(funnel.window_ms);
    let n_steps = funnel.step_defs.len();
    let mut event_of_step: Vec<Option<usize>> = vec![None; n_steps];
    let mut seen = vec![false; n_steps];
    let mut done = Vec::new();
    for position in first..events.len() {
        if i128::from(events[position].t) > deadline {
            break;
        }
        seen.iter_mut().for_each(|s| *s = false);
        if augment(position, candidates, &mut seen, &mut event_of_step) {
            done.push(position);
            if done.len() == n_steps {
                break;
            }
        }
    }
    done
}

/// Credit for one entity whose events are sorted by (t, event_id); None if it has no
/// qualifying attempt. `starts_between` (inclusive bounds) limits which start events may
/// start an attempt; user-scope attempt groups use it.
pub fn evaluate<'a>(
    funnel: &FunnelDef,
    events: &'a [FunnelEvent],
    starts_between: Option<(i64, i64)>,
) -> Result<Option<Credit<'a>>, FilterError> {
    let candidates = candidates(funnel, events)?;
    let mut starts: Vec<usize> = if funnel.mode == Mode::Unordered {
        let mut all: Vec<usize> = candidates.iter().flatten().copied().collect();
        all.sort();
        all.dedup();
        all
    } else {
        candidates.first().cloned().unwrap_or_default() // from_json keeps a step
    };
    if let Some((low, high)) = starts_between {
        starts.retain(|&p| low <= events[p].t && events[p].t <= high);
    }
    if starts.is_empty() {
        return Ok(None);
    }
    let n_steps = funnel.step_defs.len();
    let mut best: Option<Vec<usize>> = None;
    for &first in &starts {
        let chain = match funnel.mode {
            Mode::Ordered => ordered_chain(funnel, events, &candidates, first),
            Mode::Strict => strict_chain(funnel, events, first)?,
            Mode::Unordered => unordered_steps(funnel, events, &candidates, first),
        };
        if !funnel.exclusions.is_empty() && excluded(funnel, events, &chain)? {
            continue;
        }
        let longer = match &best {
            None => true,
            Some(b) => chain.len() > b.len(),
        };
        if longer {
            let full = chain.len() == n_steps;
            best = Some(chain);
            if full {
                break; // attempts are in order: the first full conversion is credited
            }
        }
    }
    let best = match best {
        Some(best) => best,
        None => return Ok(None),
    };
    // An attempt always holds its start event (the window is positive): never empty.
    let (first, last) = match (best.first(), best.last()) {
        (Some(&first), Some(&last)) => (&events[first], &events[last]),
        _ => return Ok(None),
    };
    let level = best.len();
    Ok(Some(Credit {
        level,
        start_t: first.t,
        start_event_id: &first.event_id,
        dims: first.dims,
        time_to_convert_ms: if level == n_steps {
            Some(last.t.saturating_sub(first.t))
        } else {
            None
        },
        steps: best.iter().map(|&p| &events[p]).collect(),
    }))
}

/// Can `event` start an attempt (step 1; in unordered mode, any step)?
pub fn is_start(funnel: &FunnelDef, event: &FunnelEvent) -> Result<bool, FilterError> {
    if funnel.mode == Mode::Unordered {
        for step in &funnel.step_defs {
            if matches(&step.matcher, event)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    match funnel.step_defs.first() {
        Some(step) => matches(&step.matcher, event),
        None => Ok(false),
    }
}

/// User scope: attempt groups as inclusive (first start, last allowed start) ranges. A
/// group opens at a start event at `t0` and takes the attempts that start by
/// `t0 + window`; the next start event after that opens the next group.
pub fn user_group_ranges(
    funnel: &FunnelDef,
    events: &[FunnelEvent],
) -> Result<Vec<(i64, i64)>, FilterError> {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for event in events {
        let opens = match ranges.last() {
            None => true,
            Some(&(_, high)) => event.t > high,
        };
        if opens && is_start(funnel, event)? {
            ranges.push((event.t, event.t.saturating_add(funnel.window_ms)));
        }
    }
    Ok(ranges)
}

// -- probes (the differential test's adapter) ---------------------------------------------

/// A FunnelEvent as the probes write it: [t, event_id, event_type, dims, props].
pub fn event_to_json(e: &FunnelEvent) -> Json {
    Json::List(vec![
        Json::Int(e.t),
        Json::s(&e.event_id),
        Json::s(&e.event_type),
        Json::Int(e.dims as i64),
        Json::List(
            e.props
                .iter()
                .map(|(k, v)| Json::List(vec![Json::s(k), Json::s(v)]))
                .collect(),
        ),
    ])
}

fn credit_to_json(credit: &Credit) -> Json {
    Json::Object(vec![
        ("level".into(), Json::Int(credit.level as i64)),
        ("start_t".into(), Json::Int(credit.start_t)),
        ("start_event_id".into(), Json::s(credit.start_event_id)),
        ("dims".into(), Json::Int(credit.dims as i64)),
        (
            "time_to_convert_ms".into(),
            Json::opt_i(credit.time_to_convert_ms),
        ),
        (
            "steps".into(),
            Json::List(credit.steps.iter().map(|e| event_to_json(e)).collect()),
        ),
    ])
}

fn arg<'a>(args: &'a Json, key: &str) -> JsonResult<&'a Json> {
    match args.object("the arguments")?.iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(v),
        None => Err(JsonError(format!("no argument {:?}", key))),
    }
}

fn events_arg(args: &Json) -> JsonResult<Vec<FunnelEvent>> {
    arg(args, "events")?
        .list("the events")?
        .iter()
        .map(decode_event)
        .collect()
}

/// `{"ok": value}`, or `{"raises": why}` where Python raises decimal.InvalidOperation.
fn outcome(result: Result<Json, FilterError>) -> Json {
    match result {
        Ok(value) => Json::Object(vec![("ok".into(), value)]),
        Err(e) => Json::Object(vec![("raises".into(), Json::s(&e.0))]),
    }
}

fn call(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "funnel_eval.funnel" => {
            let funnel = FunnelDef::from_json(arg(args, "funnel")?)?;
            let strs = |v: &[&str]| Json::List(v.iter().map(|s| Json::s(s)).collect());
            Ok(Json::Object(vec![
                ("spec".into(), funnel.to_json()),
                (
                    "property_names".into(),
                    Json::List(funnel.property_names.iter().map(|s| Json::s(s)).collect()),
                ),
                (
                    "steps_of_type".into(),
                    Json::Object(
                        funnel
                            .steps_of_type
                            .iter()
                            .map(|(t, steps)| {
                                (
                                    t.clone(),
                                    Json::List(
                                        steps.iter().map(|&s| Json::Int(s as i64)).collect(),
                                    ),
                                )
                            })
                            .collect(),
                    ),
                ),
                ("plain".into(), Json::Bool(funnel.plain)),
                ("event_types".into(), strs(&funnel.event_types())),
                (
                    "needs_all_events".into(),
                    Json::Bool(funnel.needs_all_events()),
                ),
            ]))
        }
        "funnel_eval.evaluate"
        | "funnel_eval.is_start"
        | "funnel_eval.user_group_ranges"
        | "funnel_eval.matches" => {
            let funnel = FunnelDef::from_json(arg(args, "funnel")?)?;
            batch_call(&funnel, &name["funnel_eval.".len()..], args)
        }
        "funnel_eval.batch" => {
            // Many calls in one: {"funnels": [spec], "calls": [[function, funnel index, args]]}.
            let funnels = crate::funnels::funnels_from_json(arg(args, "funnels")?)?;
            let mut out = Vec::new();
            for raw in arg(args, "calls")?.list("the calls")? {
                let (function, index, call_args) = match raw.list("a call")? {
                    [f, i, a] => (f.str("a call's function")?, i.int("a call's funnel")?, a),
                    _ => return Err(JsonError("a call is not [function, funnel, args]".into())),
                };
                let funnel = usize::try_from(index)
                    .ok()
                    .and_then(|i| funnels.get(i))
                    .ok_or_else(|| JsonError(format!("no funnel {}", index)))?;
                out.push(batch_call(funnel, function, call_args)?);
            }
            Ok(Json::List(out))
        }
        _ => Err(JsonError(format!("no probe {:?}", name))),
    }
}

fn batch_call(funnel: &FunnelDef, function: &str, args: &Json) -> JsonResult<Json> {
    match function {
        "evaluate" => {
            let events = events_arg(args)?;
            let starts_between = match arg(args, "starts_between")? {
                Json::Null => None,
                other => match other.list("starts_between")? {
                    [low, high] => Some((low.int("low")?, high.int("high")?)),
                    _ => return Err(JsonError("starts_between is not a pair".into())),
                },
            };
            let result = evaluate(funnel, &events, starts_between);
            Ok(outcome(
                result.map(|c| c.as_ref().map_or(Json::Null, credit_to_json)),
            ))
        }
        "is_start" => {
            let event = decode_event(arg(args, "event")?)?;
            Ok(outcome(is_start(funnel, &event).map(Json::Bool)))
        }
        "user_group_ranges" => {
            let events = events_arg(args)?;
            Ok(outcome(user_group_ranges(funnel, &events).map(|ranges| {
                Json::List(
                    ranges
                        .iter()
                        .map(|&(low, high)| Json::List(vec![Json::Int(low), Json::Int(high)]))
                        .collect(),
                )
            })))
        }
        "matches" => {
            // Every matcher of the funnel (steps, then exclusions) on one event.
            let event = decode_event(arg(args, "event")?)?;
            let results = funnel
                .matchers()
                .map(|matcher| outcome(matches(matcher, &event).map(Json::Bool)))
                .collect();
            Ok(Json::List(results))
        }
        other => Err(JsonError(format!("no function {:?}", other))),
    }
}

pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if !name.starts_with("funnel_eval.") {
        return None;
    }
    Some(call(name, args))
}
