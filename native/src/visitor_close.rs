//! Closing what no on-time event can change any more, pruning what only final windows
//! needed, and when a visitor next needs attention: the watermark-driven part of
//! `streams/visitor.py` (`split_segments`, `first_segment_end`, `segment_id`,
//! `breakdown_values`, `_freeze`, `_close_sessions`, `user_funnel_events`,
//! `_close_user_groups`, `_drop_consumed_user_events`, `close_expired`, `prune_final`,
//! `expired`, `drop_forgotten_lives`, `next_due`).
//!
//! Times are compared and added in i128 where Python's unbounded integers could exceed
//! i64 (`t + timeout`, `low + 2 * window`, `watermark - lookback`); `next_due` returns an
//! i128 for the same reason. Where Python raises `decimal.InvalidOperation` (a numeric
//! funnel filter meeting an out-of-range number), the functions return `Err(FilterError)`
//! after the same partial changes to the state as the Python leaves behind.
//!
//! Thresholds are the Python dict (finality group -> first window not final yet) as
//! (group, window) pairs; a missing group reads 0 (`thresholds.get(group, 0)`).

use std::borrow::Cow;

use crate::attribution::{prune_touches, AttributionRules, KPI_THRESHOLD};
use crate::funnel_eval::{evaluate, user_group_ranges, Credit};
use crate::funnels::{FilterError, FunnelDef, DIMENSION_NAMES};
use crate::json::{self, Json, JsonError, JsonResult};
use crate::lifecycle::{next_breakpoint, next_cart_deadline, DAY_MS};
use crate::lives::{split_lives, wide_int_json};
use crate::retention::{retention_contributions, threshold_of};
use crate::rules::Rules;
use crate::state::{self, decode_event, ClosedCredit, Dims, FunnelEvent, Purchase, VisitorState};

/// `thresholds.get(funnel_threshold(funnel), 0)` without building the group's name.
fn funnel_threshold_of(thresholds: &[(String, i64)], funnel: &str) -> i64 {
    thresholds
        .iter()
        .find(|(group, _)| {
            group.len() == "funnel:".len() + funnel.len()
                && group.starts_with("funnel:")
                && &group["funnel:".len()..] == funnel
        })
        .map_or(0, |(_, window)| *window)
}

// -- session segments ----------------------------------------------------------------------

/// Session segments: split where consecutive events are more than the timeout apart.
pub fn split_segments(events: &[FunnelEvent], timeout_ms: i64) -> Vec<&[FunnelEvent]> {
    let mut segments: Vec<&[FunnelEvent]> = Vec::new();
    let first = match events.first() {
        Some(first) => first,
        None => return segments,
    };
    let mut start = 0;
    let mut previous_t = first.t;
    for (index, event) in events.iter().enumerate().skip(1) {
        if event.t as i128 - previous_t as i128 > timeout_ms as i128 {
            segments.push(&events[start..index]);
            start = index;
        }
        previous_t = event.t;
    }
    segments.push(&events[start..]);
    segments
}

/// Time of the last event of `split_segments(events, timeout_ms)[0]`; None for no events
/// (where Python raises IndexError).
pub fn first_segment_end(events: &[FunnelEvent], timeout_ms: i64) -> Option<i64> {
    let mut previous_t = events.first()?.t;
    for event in events.iter().skip(1) {
        if event.t as i128 - previous_t as i128 > timeout_ms as i128 {
            break;
        }
        previous_t = event.t;
    }
    Some(previous_t)
}

/// A session segment's entity id: the session id and its first event's time. An empty
/// segment (Python raises IndexError; segments never are) gives `session_id@`.
pub fn segment_id(session_id: &str, segment: &[FunnelEvent]) -> String {
    match segment.first() {
        Some(first) => format!("{}@{}", session_id, first.t),
        None => format!("{}@", session_id),
    }
}

// -- frozen credits --------------------------------------------------------------------------

/// `breakdown_values` over the visitor's dimension tuples. A dims index outside them
/// (Python raises IndexError; states never hold one) reads "".
fn breakdown_of(funnel: &FunnelDef, credit: &Credit<'_>, dims: &[Dims]) -> Vec<String> {
    let breakdown = match &funnel.breakdown {
        Some(breakdown) => breakdown,
        None => return Vec::new(),
    };
    let event: Option<&FunnelEvent> = match breakdown.attribution.as_str() {
        "first_touch" => credit.steps.first().copied(),
        "last_touch" => credit.steps.last().copied(),
        _ => {
            let step = match breakdown.attributed_step {
                Some(step) if step != 0 => step,
                _ => 1,
            };
            if credit.steps.len() >= step {
                credit.steps.get(step - 1).copied()
            } else {
                None
            }
        }
    };
    let event = match event {
        Some(event) => event,
        None => return breakdown.dimensions.iter().map(|_| String::new()).collect(),
    };
    breakdown
        .dimensions
        .iter()
        .map(
            |name| match DIMENSION_NAMES.iter().position(|d| d == name) {
                Some(index) => dims
                    .get(event.dims)
                    .map_or_else(String::new, |tuple| tuple[index].clone()),
                None => event
                    .props
                    .iter()
                    .find(|(key, _)| key == name)
                    .map_or_else(String::new, |(_, value)| value.clone()),
            },
        )
        .collect()
}

/// The funnel's breakdown values on the credited attempt's attributed event.
pub fn breakdown_values(
    funnel: &FunnelDef,
    credit: &Credit<'_>,
    state: &VisitorState,
) -> Vec<String> {
    breakdown_of(funnel, credit, &state.dims)
}

/// `_freeze`: the closed entity's credit as the state keeps it.
fn freeze(
    funnel: &FunnelDef,
    credit: Option<Credit<'_>>,
    entity: &str,
    dims: &[Dims],
    rules: &Rules,
) -> Option<ClosedCredit> {
    let credit = credit?;
    Some(ClosedCredit {
        funnel: funnel.name.clone(),
        window: rules.window_of(credit.start_t),
        dims: credit.dims,
        level: credit.level as i64,
        ttc_ms: credit.time_to_convert_ms,
        entity: entity.to_owned(),
        start_event_id: credit.start_event_id.to_owned(),
        step_times: credit.steps.iter().map(|e| e.t).collect(),
        breakdown: if funnel.breakdown.is_some() {
            breakdown_of(funnel, &credit, dims)
        } else {
            Vec::new()
        },
    })
}

// -- closing -------------------------------------------------------------------------------

/// `_close_sessions`: freeze the session segments that ended more than the timeout before
/// the watermark; drop sessions with nothing open left.
fn close_sessions(
    state: &mut VisitorState,
    watermark: i64,
    rules: &Rules,
) -> Result<(), FilterError> {
    let timeout = rules.session_timeout_ms;
    let mut index = 0;
    while index < state.sessions.len() {
        // The session's events, taken out while its segments are frozen (put back below).
        let events = std::mem::take(&mut state.sessions[index].events);
        let segments = split_segments(&events, timeout);
        let mut open_from = 0;
        let mut consumed = 0; // events in the closed segments
        let mut failure: Option<FilterError> = None;
        'segments: for segment in &segments {
            let last_t = match segment.last() {
                Some(last) => last.t,
                None => break,
            };
            if last_t as i128 + timeout as i128 >= watermark as i128 {
                break;
            }
            let entity = segment_id(&state.sessions[index].session_id, segment);
            for &f in &rules.session_funnels {
                let funnel = match rules.funnels.get(f) {
                    Some(funnel) => funnel,
                    None => continue,
                };
                match evaluate(funnel, segment, None) {
                    Ok(credit) => {
                        if let Some(frozen) = freeze(funnel, credit, &entity, &state.dims, rules) {
                            state.closed.push(frozen);
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break 'segments;
                    }
                }
            }
            open_from += 1;
            consumed += segment.len();
            state.sessions[index].closed_segments += 1;
        }
        let n_segments = segments.len();
        if let Some(e) = failure {
            state.sessions[index].events = events;
            return Err(e);
        }
        if open_from == n_segments {
            state.sessions.remove(index);
            continue;
        }
        let mut events = events;
        if open_from > 0 {
            events.drain(..consumed);
        }
        state.sessions[index].events = events;
        index += 1;
    }
    Ok(())
}

/// The visitor's events `funnel` can use (those of its step and exclusion types; every
/// event for a strict funnel) not used by its closed groups. Borrowed when that is all
/// of them.
pub fn user_funnel_events<'a>(
    state: &'a VisitorState,
    funnel: &FunnelDef,
) -> Cow<'a, [FunnelEvent]> {
    let consumed = state
        .user_consumed
        .iter()
        .find(|(name, _)| *name == funnel.name)
        .map(|(_, t)| *t);
    let all = funnel.needs_all_events();
    let types = if all {
        Vec::new()
    } else {
        funnel.event_types()
    };
    let keep = |e: &FunnelEvent| {
        (all || types.iter().any(|t| *t == e.event_type)) && consumed.map_or(true, |c| e.t >= c)
    };
    if state.user_events.iter().all(|e| keep(e)) {
        Cow::Borrowed(&state.user_events[..])
    } else {
        Cow::Owned(
            state
                .user_events
                .iter()
                .filter(|e| keep(e))
                .cloned()
                .collect(),
        )
    }
}

/// `_close_user_groups`: freeze each user funnel's groups no on-time event can change
/// (the watermark passed `low + 2W`), and move its consumed floor.
fn close_user_groups(
    state: &mut VisitorState,
    watermark: i64,
    rules: &Rules,
) -> Result<(), FilterError> {
    let mut changed = false;
    for &f in &rules.user_funnels {
        let funnel = match rules.funnels.get(f) {
            Some(funnel) => funnel,
            None => continue,
        };
        let mut frozen: Vec<ClosedCredit> = Vec::new();
        let mut closed = 0usize;
        let mut failure: Option<FilterError> = None;
        let mut floor: Option<i64> = None; // None: no change
        {
            let events = user_funnel_events(state, funnel);
            match user_group_ranges(funnel, &events) {
                Err(e) => failure = Some(e),
                Ok(ranges) => {
                    for &(low, high) in &ranges {
                        let horizon = low as i128 + 2 * funnel.window_ms as i128;
                        if horizon >= watermark as i128 {
                            break;
                        }
                        match evaluate(funnel, &events, Some((low, high))) {
                            Ok(credit) => {
                                if let Some(c) = freeze(funnel, credit, "", &state.dims, rules) {
                                    frozen.push(c);
                                }
                            }
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                        closed += 1;
                    }
                    if failure.is_none() {
                        let candidate = ranges.get(closed).map_or(watermark, |r| r.0);
                        let current = state
                            .user_consumed
                            .iter()
                            .find(|(name, _)| *name == funnel.name)
                            .map(|(_, t)| *t);
                        // floor > consumed.get(name, floor - 1)
                        let later = current.map_or(true, |c| candidate > c);
                        if later && events.first().map_or(false, |e| e.t < candidate) {
                            floor = Some(candidate);
                        }
                    }
                }
            }
        }
        state.closed.extend(frozen);
        state.user_closed_groups += closed as i64;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(floor) = floor {
            match state
                .user_consumed
                .iter_mut()
                .find(|(name, _)| *name == funnel.name)
            {
                Some(entry) => entry.1 = floor,
                None => state.user_consumed.push((funnel.name.clone(), floor)),
            }
            changed = true;
        }
    }
    if changed {
        drop_consumed_user_events(state, rules);
    }
    Ok(())
}

/// `_drop_consumed_user_events`: drop the events every user funnel that could use them
/// has consumed; forget the floors of funnels no longer configured.
fn drop_consumed_user_events(state: &mut VisitorState, rules: &Rules) {
    // Per user funnel: whether it uses every event (strict), the types it uses, and its
    // consumed floor. An event stays while one funnel that could use it has not consumed
    // it: `e.t >= consumed.get(name, e.t)` for some name in needing[type] + every_type.
    let users: Vec<(bool, Vec<&str>, Option<i64>)> = rules
        .user_funnels
        .iter()
        .filter_map(|&f| rules.funnels.get(f))
        .map(|f| {
            let floor = state
                .user_consumed
                .iter()
                .find(|(name, _)| *name == f.name)
                .map(|(_, t)| *t);
            (f.needs_all_events(), f.event_types(), floor)
        })
        .collect();
    state.user_events.retain(|e| {
        users.iter().any(|(all, types, floor)| {
            (*all || types.iter().any(|t| *t == e.event_type)) && floor.map_or(true, |c| e.t >= c)
        })
    });
    state
        .user_consumed
        .retain(|(name, _)| rules.funnel_by_name(name).is_some()); // a funnel no longer configured
}

/// Freeze entities no on-time event can change any more (watermark-driven).
pub fn close_expired(
    state: &mut VisitorState,
    watermark: i64,
    rules: &Rules,
) -> Result<(), FilterError> {
    close_sessions(state, watermark, rules)?;
    if !rules.user_funnels.is_empty() {
        close_user_groups(state, watermark, rules)?;
    }
    Ok(())
}

/// Drop what only final (already written, excluded) windows needed.
pub fn prune_final(
    state: &mut VisitorState,
    thresholds: &[(String, i64)],
    attribution: Option<&AttributionRules>,
) {
    state
        .closed
        .retain(|c| c.window >= funnel_threshold_of(thresholds, &c.funnel));
    let kpi_threshold = threshold_of(thresholds, KPI_THRESHOLD);
    state.orders.retain(|o| o.t >= kpi_threshold);
    if let Some(attribution) = attribution {
        if !state.touches.is_empty() {
            // Every order still to be attributed is at or after the KPI threshold.
            prune_touches(&mut state.touches, kpi_threshold, attribution);
        }
    }
}

/// Every life forgotten and no session or funnel group open.
pub fn expired(state: &VisitorState, watermark: i64, rules: &Rules) -> bool {
    if !state.sessions.is_empty() || !state.user_events.is_empty() {
        return false;
    }
    if let Some(last) = state.touches.last() {
        if last.t as i128 >= watermark as i128 - rules.attribution.lookback_ms as i128 {
            return false; // an order may still come and need them
        }
    }
    let lives = split_lives(&state.days, state.purchases.iter(), &rules.lifecycle);
    match lives.last() {
        None => true,
        Some(last) => watermark as i128 > last.forgotten_at(),
    }
}

/// Forget the data of earlier lives once forgotten and all their cells are final.
pub fn drop_forgotten_lives(
    state: &mut VisitorState,
    watermark: i64,
    thresholds: &[(String, i64)],
    rules: &Rules,
) {
    // The lives are those of the state before any is dropped (as the Python's list).
    let mut dropped: Vec<(i64, i64)> = Vec::new();
    {
        let lives = split_lives(&state.days, state.purchases.iter(), &rules.lifecycle);
        let earlier = lives.len().saturating_sub(1);
        for life in &lives[..earlier] {
            if watermark as i128 <= life.forgotten_at() {
                break;
            }
            let purchases: Vec<Purchase> = life.purchases().iter().map(|p| (*p).clone()).collect();
            // None: a time outside i64 (Python would have cells there): keep the life.
            let live = match retention_contributions(
                life.days(),
                &purchases,
                thresholds,
                &rules.lifecycle,
            ) {
                Some(cells) => !cells.is_empty(),
                None => true,
            };
            if live {
                break;
            }
            dropped.push((life.first_t(), life.last_t()));
        }
    }
    for (first_t, last_t) in dropped {
        let holds = |t: i64| first_t <= t && t <= last_t;
        state.days.retain(|d| !holds(d.first_t));
        state.purchases.retain(|p| !holds(p.t));
        state.cart.retain(|c| !holds(c.t));
    }
}

/// Watermark at which this visitor next needs attention without new events (may lie
/// beyond i64, as Python's integers).
pub fn next_due(
    state: &VisitorState,
    rules: &Rules,
    watermark: i64,
) -> Result<Option<i128>, FilterError> {
    let mut best: Option<i128> = None;
    let mut candidate = |due: i128| {
        best = Some(best.map_or(due, |b| b.min(due)));
    };
    let timeout = rules.session_timeout_ms as i128;
    for session in &state.sessions {
        // The earliest segment closes first.
        if let Some(end) = first_segment_end(&session.events, rules.session_timeout_ms) {
            candidate(end as i128 + timeout + 1);
        }
    }
    for &f in &rules.user_funnels {
        let funnel = match rules.funnels.get(f) {
            Some(funnel) => funnel,
            None => continue,
        };
        let events = user_funnel_events(state, funnel);
        let ranges = user_group_ranges(funnel, &events)?;
        if let Some(&(low, _)) = ranges.first() {
            candidate(low as i128 + 2 * funnel.window_ms as i128 + 1);
        }
    }
    if !state.closed.is_empty() || !state.orders.is_empty() {
        // Pruning waits for windows to become final; look again a window later.
        candidate(watermark as i128 + rules.window_ms as i128);
    }
    if let Some(last) = state.touches.last() {
        candidate(last.t as i128 + rules.attribution.lookback_ms as i128 + 1);
    }
    let as_of = state.lifecycle_as_of.unwrap_or(0);
    for due in [
        next_breakpoint(&state.purchases, as_of, &rules.lifecycle),
        next_cart_deadline(&state.cart, as_of, &rules.lifecycle),
    ]
    .iter()
    .flatten()
    {
        candidate(due + 1);
    }
    let lives = split_lives(&state.days, state.purchases.iter(), &rules.lifecycle);
    if let Some(last) = lives.last() {
        candidate(last.forgotten_at() + 1);
        if lives.len() > 1 {
            candidate(watermark as i128 + DAY_MS as i128); // drop earlier lives once final
        }
    }
    Ok(best)
}

// -- probes (the differential test's adapter) ---------------------------------------------

fn arg<'a>(args: &'a Json, key: &str) -> JsonResult<&'a Json> {
    match args.object("the arguments")?.iter().find(|(k, _)| k == key) {
        Some((_, v)) => Ok(v),
        None => Err(JsonError(format!("no argument {:?}", key))),
    }
}

fn events_arg(args: &Json, key: &str) -> JsonResult<Vec<FunnelEvent>> {
    arg(args, key)?
        .list(key)?
        .iter()
        .map(decode_event)
        .collect()
}

fn thresholds_arg(args: &Json) -> JsonResult<Vec<(String, i64)>> {
    arg(args, "thresholds")?
        .object("the thresholds")?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.int("a threshold")?)))
        .collect()
}

fn state_arg(args: &Json) -> JsonResult<VisitorState> {
    let anonymous_id = match arg(args, "anonymous_id") {
        Ok(value) => value.str("the anonymous id")?.to_owned(),
        Err(_) => String::new(),
    };
    state::decode(&json::to_bytes(arg(args, "state")?), &anonymous_id).map_err(|e| match e {
        state::DecodeError::Version(v) => JsonError(format!("state version {}", v)),
        state::DecodeError::Unreadable(why) => JsonError(why),
    })
}

fn dims_arg(args: &Json) -> JsonResult<Vec<Dims>> {
    arg(args, "dims")?
        .list("the dims")?
        .iter()
        .map(|d| match d.list("a dims tuple")? {
            [a, b, c, d, e] => Ok([
                a.str("a dimension")?.to_owned(),
                b.str("a dimension")?.to_owned(),
                c.str("a dimension")?.to_owned(),
                d.str("a dimension")?.to_owned(),
                e.str("a dimension")?.to_owned(),
            ]),
            _ => Err(JsonError("a dims tuple has not 5 fields".into())),
        })
        .collect()
}

fn int_arg(args: &Json, key: &str) -> JsonResult<i64> {
    arg(args, key)?.int(key)
}

/// The state after a mutating call: `{"state": after}`, plus `"raises"` where Python
/// raises decimal.InvalidOperation.
fn state_result(state: &VisitorState, error: Option<FilterError>) -> Json {
    let mut out = vec![("state".to_owned(), state::to_json(state))];
    if let Some(e) = error {
        out.push(("raises".to_owned(), Json::s(&e.0)));
    }
    Json::Object(out)
}

fn call_with_rules(rules: &Rules, function: &str, args: &Json) -> JsonResult<Json> {
    match function {
        "close_expired" => {
            let mut state = state_arg(args)?;
            let error = close_expired(&mut state, int_arg(args, "watermark")?, rules).err();
            Ok(state_result(&state, error))
        }
        "prune_final" => {
            let mut state = state_arg(args)?;
            let thresholds = thresholds_arg(args)?;
            let with = arg(args, "attribution")?.boolean("attribution")?;
            let attribution = if with { Some(&rules.attribution) } else { None };
            prune_final(&mut state, &thresholds, attribution);
            Ok(state_result(&state, None))
        }
        "drop_forgotten_lives" => {
            let mut state = state_arg(args)?;
            let thresholds = thresholds_arg(args)?;
            drop_forgotten_lives(&mut state, int_arg(args, "watermark")?, &thresholds, rules);
            Ok(state_result(&state, None))
        }
        "expired" => {
            let state = state_arg(args)?;
            Ok(Json::Bool(expired(
                &state,
                int_arg(args, "watermark")?,
                rules,
            )))
        }
        "next_due" => {
            let state = state_arg(args)?;
            Ok(match next_due(&state, rules, int_arg(args, "watermark")?) {
                Ok(due) => Json::Object(vec![("ok".into(), due.map_or(Json::Null, wide_int_json))]),
                Err(e) => Json::Object(vec![("raises".into(), Json::s(&e.0))]),
            })
        }
        "user_funnel_events" => {
            let state = state_arg(args)?;
            let name = arg(args, "funnel")?.str("the funnel")?;
            let funnel = rules
                .funnel_by_name(name)
                .ok_or_else(|| JsonError(format!("no funnel {:?}", name)))?;
            let events = user_funnel_events(&state, funnel);
            Ok(Json::List(
                events
                    .iter()
                    .map(crate::funnel_eval::event_to_json)
                    .collect(),
            ))
        }
        other => Err(JsonError(format!("no function {:?}", other))),
    }
}

fn credit_arg<'a>(value: &'a Json, events: &'a [FunnelEvent]) -> JsonResult<Credit<'a>> {
    let int = |key: &str| arg(value, key)?.int(key);
    let level = usize::try_from(int("level")?)
        .map_err(|_| JsonError("a credit's level is negative".into()))?;
    let dims = usize::try_from(int("dims")?)
        .map_err(|_| JsonError("a credit's dims is negative".into()))?;
    Ok(Credit {
        level,
        start_t: int("start_t")?,
        start_event_id: arg(value, "start_event_id")?.str("the start event")?,
        dims,
        time_to_convert_ms: arg(value, "time_to_convert_ms")?.opt_int("the time to convert")?,
        steps: events.iter().collect(),
    })
}

fn call(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "visitor_close.split_segments" => {
            let events = events_arg(args, "events")?;
            let segments = split_segments(&events, int_arg(args, "timeout_ms")?);
            Ok(Json::List(
                segments
                    .iter()
                    .map(|s| Json::List(s.iter().map(crate::funnel_eval::event_to_json).collect()))
                    .collect(),
            ))
        }
        "visitor_close.first_segment_end" => {
            let events = events_arg(args, "events")?;
            Ok(Json::opt_i(first_segment_end(
                &events,
                int_arg(args, "timeout_ms")?,
            )))
        }
        "visitor_close.segment_id" => {
            let events = events_arg(args, "segment")?;
            Ok(Json::s(&segment_id(
                arg(args, "session_id")?.str("the session id")?,
                &events,
            )))
        }
        "visitor_close.breakdown_values" => {
            let funnel = FunnelDef::from_json(arg(args, "funnel")?)?;
            let raw_credit = arg(args, "credit")?;
            let steps = events_arg(raw_credit, "steps")?;
            let credit = credit_arg(raw_credit, &steps)?;
            let mut state = VisitorState::new(0, "");
            state.dims = dims_arg(args)?;
            let values = breakdown_values(&funnel, &credit, &state);
            Ok(Json::List(values.iter().map(|v| Json::s(v)).collect()))
        }
        "visitor_close.batch" => {
            // {"rules": rules, "calls": [[function, args]]}: one result per call.
            let rules = Rules::from_json(arg(args, "rules")?)?;
            let mut out = Vec::new();
            for raw in arg(args, "calls")?.list("the calls")? {
                let (function, call_args) = match raw.list("a call")? {
                    [f, a] => (f.str("a call's function")?, a),
                    _ => return Err(JsonError("a call is not [function, args]".into())),
                };
                out.push(call_with_rules(&rules, function, call_args)?);
            }
            Ok(Json::List(out))
        }
        _ => Err(JsonError(format!("no probe {:?}", name))),
    }
}

pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if !name.starts_with("visitor_close.") {
        return None;
    }
    Some(call(name, args))
}
