//! A visitor's contributions to the aggregates: the Rust twin of the contribution part of
//! `streams/visitor.py` (`_add`, `_add_credit`, `_add_open_credit`,
//! `_funnel_contributions`, `_kpi_contributions`, `contributions`, `live_only`, `diff`,
//! `RetentionInputs` and its signatures).
//!
//! Python's `Contributions` is a dict Key -> int in insertion order; here it is a
//! `Vec<(Key, i64)>` in the same order, each key once (a repeated key is summed in place,
//! as `_add` does, and a sum of zero keeps its place, as in the dict). Python's integers
//! are unbounded: where a sum would leave i64, these return an error instead.

use crate::fxhash::FxHashMap as HashMap;
use crate::hashindex::HashIndex;

use crate::attribution::{attribution_contributions, window_of, KPI_THRESHOLD};
use crate::attribution::{Model, OrderAttributionKey};
use crate::funnel_eval::{evaluate, user_group_ranges, Credit};
use crate::funnels::FunnelDef;
use crate::json::{self, Json, JsonError, JsonResult};
use crate::keys::{
    bucket_of, FunnelAttemptKey, FunnelOutcomeKey, FunnelStepKey, FunnelTtcKey, Key, KpiCellKey,
    OpenAttemptKey, CANCELLATIONS, CONVERTED, COUPON_ORDERS, DISCOUNT, DROPPED, FIRST_ORDERS, GMV,
    IN_PROGRESS, ITEMS, ORDERS, PAYMENT_FAILURES, REFUNDED, REFUNDS, REPEAT_ORDERS,
};
use crate::retention::{
    gap_bucket, threshold_of, Granularity, OrderGapKey, RetentionKey, ACTIVITIES, DAY_MS,
    FIRST_PURCHASE, FIRST_VISIT,
};
use crate::rules::{funnel_threshold, Rules};
use crate::state::{self, ClosedCredit, DayActivity, Dims, FunnelEvent, Purchase, VisitorState};
use crate::visitor_close::{breakdown_values, segment_id, split_segments};

/// A visitor's contributions: (key, value) in the Python dict's order, keys unique.
pub type Contributions = Vec<(Key, i64)>;

/// Finality group -> first window not final yet (Python's `Thresholds` dict).
pub type Thresholds = [(String, i64)];

/// Why `contributions` has no answer where Python's has one or raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContribError(pub String);

impl std::fmt::Display for ContribError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn error<T>(why: &str) -> Result<T, ContribError> {
    Err(ContribError(why.to_owned()))
}

/// The dict being built: the pairs in insertion order and where each key is (by its
/// hash: the key itself only in `pairs`, not copied into the index).
#[derive(Default)]
struct Out {
    pairs: Vec<(Key, i64)>,
    index: HashIndex,
}

impl Out {
    /// `out[key] = out.get(key, 0) + value` (no zero check: `_add_credit`'s inline adds).
    fn bump(&mut self, key: Key, value: i64) -> Result<(), ContribError> {
        let hash = self.index.hash(&key);
        let pairs = &self.pairs;
        let found = self.index.find(hash, |at| {
            pairs
                .get(at as usize)
                .map_or(false, |(known, _)| *known == key)
        });
        match found {
            Some(at) => match self.pairs.get_mut(at as usize) {
                Some(entry) => match entry.1.checked_add(value) {
                    Some(sum) => entry.1 = sum,
                    None => return error("a contribution outside i64"),
                },
                None => return error("contributions index"),
            },
            None => {
                self.index.insert(hash, self.pairs.len() as u32);
                self.pairs.push((key, value));
            }
        }
        Ok(())
    }

    /// `_add`: adds nonzero values only.
    fn add(&mut self, key: Key, value: i64) -> Result<(), ContribError> {
        if value != 0 {
            self.bump(key, value)?;
        }
        Ok(())
    }
}

fn dims_of(state: &VisitorState, index: usize) -> Result<&Dims, ContribError> {
    match state.dims.get(index) {
        Some(dims) => Ok(dims),
        None => error("IndexError: a dims index outside the state's dims"),
    }
}

/// `rules.funnel_by_name.get(name)` (a dict built in order: the last funnel of a name).
fn funnel_named<'r>(rules: &'r Rules, name: &str) -> Option<&'r FunnelDef> {
    rules.funnels.iter().rev().find(|f| f.name == name)
}

/// `rules.window_of(t)` without overflow (Python's may leave i64: an error only if kept).
fn window_wide(rules: &Rules, t: i64) -> Result<i128, ContribError> {
    window_of(t, rules.window_ms).map_err(|e| ContribError(e.to_string()))
}

fn narrow(window: i128) -> Result<i64, ContribError> {
    match i64::try_from(window) {
        Ok(window) => Ok(window),
        Err(_) => error("a window outside i64"),
    }
}

/// `_add_credit`: one credited entity's rows (`credit` is frozen, or the open one's
/// snapshot).
fn add_credit(
    out: &mut Out,
    funnel: &FunnelDef,
    credit: &ClosedCredit,
    dims: &Dims,
    anonymous_id: &str,
    is_open: bool,
) -> Result<(), ContribError> {
    let name = &funnel.name;
    let (window, breakdown, level) = (credit.window, &credit.breakdown, credit.level);
    let mut step: i64 = 1;
    while step <= level {
        out.bump(
            Key::FunnelStep(FunnelStepKey {
                funnel: name.clone(),
                window,
                dims: dims.clone(),
                step,
                breakdown: breakdown.clone(),
            }),
            1,
        )?;
        step += 1;
    }
    let converted = level >= 0 && level as u64 == funnel.steps.len() as u64;
    let outcome = if converted {
        CONVERTED
    } else if is_open {
        IN_PROGRESS
    } else {
        DROPPED
    };
    out.bump(
        Key::FunnelOutcome(FunnelOutcomeKey {
            funnel: name.clone(),
            window,
            dims: dims.clone(),
            outcome,
            breakdown: breakdown.clone(),
        }),
        1,
    )?;
    if converted {
        if let Some(ttc_ms) = credit.ttc_ms {
            out.bump(
                Key::FunnelTtc(FunnelTtcKey {
                    funnel: name.clone(),
                    window,
                    dims: dims.clone(),
                    le_seconds: bucket_of(ttc_ms),
                    breakdown: breakdown.clone(),
                }),
                1,
            )?;
        }
    }
    if is_open {
        out.bump(
            Key::OpenAttempt(OpenAttemptKey {
                funnel: name.clone(),
                window,
            }),
            1,
        )?;
    }
    out.bump(
        Key::FunnelAttempt(FunnelAttemptKey {
            funnel: name.clone(),
            window,
            dims: dims.clone(),
            breakdown: breakdown.clone(),
            anonymous_id: anonymous_id.to_owned(),
            entity: credit.entity.clone(),
            start_event_id: credit.start_event_id.clone(),
            outcome,
            level,
            step_times: credit.step_times.clone(),
        }),
        1,
    )
}

/// `_add_open_credit`: the credit of an attempt still open (a session segment or user
/// group not closed yet), if its window is not final.
fn add_open_credit(
    out: &mut Out,
    state: &VisitorState,
    funnel: &FunnelDef,
    credit: Option<Credit<'_>>,
    entity: &str,
    rules: &Rules,
    thresholds: &Thresholds,
) -> Result<(), ContribError> {
    let credit = match credit {
        Some(credit) => credit,
        None => return Ok(()),
    };
    let window = window_wide(rules, credit.start_t)?;
    if window < threshold_of(thresholds, &funnel_threshold(&funnel.name)) as i128 {
        return Ok(());
    }
    // _freeze
    let snapshot = ClosedCredit {
        funnel: funnel.name.clone(),
        window: narrow(window)?,
        dims: credit.dims,
        level: credit.level as i64,
        ttc_ms: credit.time_to_convert_ms,
        entity: entity.to_owned(),
        start_event_id: credit.start_event_id.to_owned(),
        step_times: credit.steps.iter().map(|e| e.t).collect(),
        breakdown: if funnel.breakdown.is_some() {
            breakdown_values(funnel, &credit, state)
        } else {
            Vec::new()
        },
    };
    let dims = dims_of(state, credit.dims)?;
    add_credit(out, funnel, &snapshot, dims, &state.anonymous_id, true)
}

/// `user_funnel_events`: the visitor's events `funnel` can use, not used by its closed
/// groups.
fn user_funnel_events(state: &VisitorState, funnel: &FunnelDef) -> Vec<FunnelEvent> {
    let consumed = state
        .user_consumed
        .iter()
        .find(|(name, _)| *name == funnel.name)
        .map(|(_, t)| *t);
    let unconsumed = |e: &FunnelEvent| consumed.map_or(true, |c| e.t >= c);
    if funnel.needs_all_events() {
        return state
            .user_events
            .iter()
            .filter(|e| unconsumed(e))
            .cloned()
            .collect();
    }
    let types = funnel.event_types();
    state
        .user_events
        .iter()
        .filter(|e| types.contains(&e.event_type.as_str()) && unconsumed(e))
        .cloned()
        .collect()
}

fn funnel_contributions(
    state: &VisitorState,
    rules: &Rules,
    thresholds: &Thresholds,
    out: &mut Out,
) -> Result<(), ContribError> {
    let filter = |e: crate::funnels::FilterError| ContribError(format!("InvalidOperation: {}", e));
    for session in &state.sessions {
        for segment in split_segments(&session.events, rules.session_timeout_ms) {
            let entity = segment_id(&session.session_id, segment);
            for &index in &rules.session_funnels {
                let funnel = match rules.funnels.get(index) {
                    Some(funnel) => funnel,
                    None => continue,
                };
                let credit = evaluate(funnel, segment, None).map_err(filter)?;
                add_open_credit(out, state, funnel, credit, &entity, rules, thresholds)?;
            }
        }
    }
    for &index in &rules.user_funnels {
        let funnel = match rules.funnels.get(index) {
            Some(funnel) => funnel,
            None => continue,
        };
        let events = user_funnel_events(state, funnel);
        for range in user_group_ranges(funnel, &events).map_err(filter)? {
            let credit = evaluate(funnel, &events, Some(range)).map_err(filter)?;
            add_open_credit(out, state, funnel, credit, "", rules, thresholds)?;
        }
    }
    for closed in &state.closed {
        if closed.window < threshold_of(thresholds, &funnel_threshold(&closed.funnel)) {
            continue;
        }
        if let Some(funnel) = funnel_named(rules, &closed.funnel) {
            let dims = dims_of(state, closed.dims)?;
            add_credit(out, funnel, closed, dims, &state.anonymous_id, false)?;
        }
    }
    Ok(())
}

fn kpi_cell(window: i64, dims: &Dims, currency: &str, metric: usize) -> Key {
    Key::KpiCell(KpiCellKey {
        window,
        dims: dims.clone(),
        currency: currency.to_owned(),
        metric,
    })
}

fn kpi_contributions(
    state: &VisitorState,
    rules: &Rules,
    thresholds: &Thresholds,
    out: &mut Out,
) -> Result<(), ContribError> {
    let threshold = threshold_of(thresholds, KPI_THRESHOLD) as i128;
    for order in &state.orders {
        let window = window_wide(rules, order.t)?;
        if window < threshold {
            continue;
        }
        let window = narrow(window)?;
        let (dims, currency) = (dims_of(state, order.dims)?, &order.currency);
        match order.kind.as_str() {
            "purchase" => {
                let is_first = match &state.first_purchase {
                    Some((t, txn)) => *t == order.t && *txn == order.transaction_id,
                    None => false,
                };
                let cells = [
                    (ORDERS, 1),
                    (GMV, order.value_minor),
                    (ITEMS, order.items),
                    (COUPON_ORDERS, if order.has_coupon { 1 } else { 0 }),
                    (DISCOUNT, order.discount_minor),
                    (
                        if is_first {
                            FIRST_ORDERS
                        } else {
                            REPEAT_ORDERS
                        },
                        1,
                    ),
                ];
                for (metric, value) in cells {
                    out.add(kpi_cell(window, dims, currency, metric), value)?;
                }
            }
            "refund" => {
                out.add(kpi_cell(window, dims, currency, REFUNDS), 1)?;
                out.add(
                    kpi_cell(window, dims, currency, REFUNDED),
                    order.value_minor,
                )?;
            }
            "payment_failed" => out.add(kpi_cell(window, dims, currency, PAYMENT_FAILURES), 1)?,
            "order_cancelled" => out.add(kpi_cell(window, dims, currency, CANCELLATIONS), 1)?,
            _ => {}
        }
    }
    Ok(())
}

/// `contributions(state, rules, thresholds)`: the visitor's funnel, KPI and attribution
/// contributions to non-final aggregates, in the Python dict's order. Err where Python
/// raises (a numeric filter out of the decimal range, a dims index outside the state) or
/// where a value would leave i64.
pub fn contributions(
    state: &VisitorState,
    rules: &Rules,
    thresholds: &Thresholds,
) -> Result<Contributions, ContribError> {
    let mut out = Out::default();
    funnel_contributions(state, rules, thresholds, &mut out)?;
    kpi_contributions(state, rules, thresholds, &mut out)?;
    let kpi_threshold = threshold_of(thresholds, KPI_THRESHOLD);
    let credits =
        attribution_contributions(state, rules.window_ms, kpi_threshold, &rules.attribution)
            .map_err(|e| ContribError(e.to_string()))?;
    // Their keys are new to `out` (another family) and already summed: keep them as they
    // are, zero sums included.
    for (key, value) in credits {
        out.bump(Key::OrderAttribution(key), value)?;
    }
    Ok(out.pairs)
}

/// `live_only`: the contributions to windows not final yet, in order.
pub fn live_only(contrib: &[(Key, i64)], thresholds: &Thresholds) -> Contributions {
    contrib
        .iter()
        .filter(|(key, _)| key.final_at() >= key.threshold_in(thresholds))
        .cloned()
        .collect()
}

/// `diff(before, after)`: after's changes (nonzero) in after's order, then before's keys
/// after lacks, negated (zeros included, as Python's). Keys must be unique in each.
pub fn diff(before: &[(Key, i64)], after: &[(Key, i64)]) -> Result<Contributions, ContribError> {
    // Both lists hold each key once (dicts), and a batch mostly appends to a visitor's
    // contributions: over the common prefix of keys, a key's old value is the one at the
    // same place, with no map needed. (A key after the prefix cannot be in the other
    // list's prefix: that holds the same keys as this list's prefix.)
    let common = before
        .iter()
        .zip(after.iter())
        .take_while(|((old, _), (new, _))| old == new)
        .count();
    let mut delta: Contributions = Vec::new();
    for ((key, old), (_, value)) in before[..common].iter().zip(after[..common].iter()) {
        let change = match value.checked_sub(*old) {
            Some(change) => change,
            None => return error("a change outside i64"),
        };
        if change != 0 {
            delta.push((key.clone(), change));
        }
    }
    let (before, after) = (&before[common..], &after[common..]);
    if before.is_empty() && after.is_empty() {
        return Ok(delta);
    }
    let before_index: HashMap<&Key, i64> = before.iter().map(|(k, v)| (k, *v)).collect();
    let after_keys: HashMap<&Key, ()> = after.iter().map(|(k, _)| (k, ())).collect();
    for (key, value) in after {
        let old = before_index.get(key).copied().unwrap_or(0);
        let change = match value.checked_sub(old) {
            Some(change) => change,
            None => return error("a change outside i64"),
        };
        if change != 0 {
            delta.push((key.clone(), change));
        }
    }
    for (key, value) in before {
        if !after_keys.contains_key(key) {
            match value.checked_neg() {
                Some(negated) => delta.push((key.clone(), negated)),
                None => return error("a change outside i64"),
            }
        }
    }
    Ok(delta)
}

/// `RetentionInputs`: the part of a visitor's state that retention depends on.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RetentionInputs {
    pub days: Vec<DayActivity>,
    pub purchases: Vec<Purchase>,
}

impl RetentionInputs {
    pub fn of(state: &VisitorState) -> RetentionInputs {
        RetentionInputs {
            days: state.days.clone(),
            purchases: state.purchases.clone(),
        }
    }
}

/// The first five fields of a DayActivity (all but `last_t`): `days[-1][:5]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayHead {
    pub day: i64,
    pub first_t: i64,
    pub first_event_id: String,
    pub channel: String,
    pub platform: String,
}

/// What retention contributions depend on: equal signatures, equal contributions (the
/// latest event time of the last active day is left out: it affects no gap between days).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionSignature {
    pub days_but_last: Vec<DayActivity>,
    pub last_day: Option<DayHead>,
    pub purchases: Vec<Purchase>,
}

fn signature_of(days: &[DayActivity], purchases: &[Purchase]) -> RetentionSignature {
    let (last_day, days_but_last) = match days.split_last() {
        Some((last, rest)) => (
            Some(DayHead {
                day: last.day,
                first_t: last.first_t,
                first_event_id: last.first_event_id.clone(),
                channel: last.channel.clone(),
                platform: last.platform.clone(),
            }),
            rest.to_vec(),
        ),
        None => (None, Vec::new()),
    };
    RetentionSignature {
        days_but_last,
        last_day,
        purchases: purchases.to_vec(),
    }
}

/// `retention_signature(state)`.
pub fn retention_signature(state: &VisitorState) -> RetentionSignature {
    signature_of(&state.days, &state.purchases)
}

/// `inputs_signature(inputs)`: `retention_signature` of the state `inputs` was taken from.
pub fn inputs_signature(inputs: &RetentionInputs) -> RetentionSignature {
    signature_of(&inputs.days, &inputs.purchases)
}

// -- probes ------------------------------------------------------------------------------

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

fn thresholds_arg(args: &Json) -> JsonResult<Vec<(String, i64)>> {
    arg(args, "thresholds")?
        .object("the thresholds")?
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.int("a threshold")?)))
        .collect()
}

/// The contributions as the tests write them: [[type name, *fields, value], ...].
pub fn contributions_json(contrib: &[(Key, i64)]) -> Json {
    Json::List(
        contrib
            .iter()
            .map(|(key, value)| {
                let mut fields = key.fields_json();
                fields.push(Json::Int(*value));
                Json::List(fields)
            })
            .collect(),
    )
}

fn strs<'a>(values: &'a [Json], what: &str) -> JsonResult<Vec<&'a str>> {
    values.iter().map(|v| v.str(what)).collect()
}

fn dims_from(value: &Json) -> JsonResult<Dims> {
    let d = strs(value.list("dims")?, "a dimension")?;
    if d.len() != 5 {
        return Err(JsonError("dims are five strings".into()));
    }
    Ok([
        d[0].to_owned(),
        d[1].to_owned(),
        d[2].to_owned(),
        d[3].to_owned(),
        d[4].to_owned(),
    ])
}

fn owned(values: &Json, what: &str) -> JsonResult<Vec<String>> {
    Ok(strs(values.list(what)?, what)?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

fn outcome_from(value: &Json) -> JsonResult<&'static str> {
    match value.str("an outcome")? {
        "converted" => Ok(CONVERTED),
        "dropped" => Ok(DROPPED),
        "in_progress" => Ok(IN_PROGRESS),
        other => Err(JsonError(format!("not an outcome: {:?}", other))),
    }
}

/// A key from [type name, *fields] (what `Key::fields_json` writes).
pub fn key_from(fields: &[Json]) -> JsonResult<Key> {
    let name = match fields.first() {
        Some(name) => name.str("a key type")?,
        None => return Err(JsonError("an empty key".into())),
    };
    let f = |i: usize| -> JsonResult<&Json> {
        fields
            .get(i)
            .ok_or_else(|| JsonError(format!("{} has too few fields", name)))
    };
    let ttc = |text: &str| -> JsonResult<crate::keys::TtcBucket> {
        (0..11)
            .map(crate::keys::TtcBucket)
            .find(|b| b.python_repr() == text)
            .ok_or_else(|| JsonError(format!("not a bucket: {:?}", text)))
    };
    Ok(match name {
        "FunnelStepKey" => Key::FunnelStep(FunnelStepKey {
            funnel: f(1)?.str("funnel")?.to_owned(),
            window: f(2)?.int("window")?,
            dims: dims_from(f(3)?)?,
            step: f(4)?.int("step")?,
            breakdown: owned(f(5)?, "breakdown")?,
        }),
        "FunnelOutcomeKey" => Key::FunnelOutcome(FunnelOutcomeKey {
            funnel: f(1)?.str("funnel")?.to_owned(),
            window: f(2)?.int("window")?,
            dims: dims_from(f(3)?)?,
            outcome: outcome_from(f(4)?)?,
            breakdown: owned(f(5)?, "breakdown")?,
        }),
        "OpenAttemptKey" => Key::OpenAttempt(OpenAttemptKey {
            funnel: f(1)?.str("funnel")?.to_owned(),
            window: f(2)?.int("window")?,
        }),
        "FunnelTtcKey" => Key::FunnelTtc(FunnelTtcKey {
            funnel: f(1)?.str("funnel")?.to_owned(),
            window: f(2)?.int("window")?,
            dims: dims_from(f(3)?)?,
            le_seconds: ttc(f(4)?.str("le_seconds")?)?,
            breakdown: owned(f(5)?, "breakdown")?,
        }),
        "FunnelAttemptKey" => Key::FunnelAttempt(FunnelAttemptKey {
            funnel: f(1)?.str("funnel")?.to_owned(),
            window: f(2)?.int("window")?,
            dims: dims_from(f(3)?)?,
            breakdown: owned(f(4)?, "breakdown")?,
            anonymous_id: f(5)?.str("anonymous_id")?.to_owned(),
            entity: f(6)?.str("entity")?.to_owned(),
            start_event_id: f(7)?.str("start_event_id")?.to_owned(),
            outcome: outcome_from(f(8)?)?,
            level: f(9)?.int("level")?,
            step_times: f(10)?
                .list("step_times")?
                .iter()
                .map(|t| t.int("a step time"))
                .collect::<JsonResult<_>>()?,
        }),
        "KpiCellKey" => {
            let metric = f(4)?.int("metric")?;
            if metric < 0 || metric >= crate::keys::METRICS.len() as i64 {
                return Err(JsonError("not a metric".into()));
            }
            Key::KpiCell(KpiCellKey {
                window: f(1)?.int("window")?,
                dims: dims_from(f(2)?)?,
                currency: f(3)?.str("currency")?.to_owned(),
                metric: metric as usize,
            })
        }
        "OrderAttributionKey" => {
            let model = f(4)?.str("model")?;
            let model = Model::from_name(model).map_err(|e| JsonError(e.to_string()))?;
            Key::OrderAttribution(OrderAttributionKey {
                window: f(1)?.int("window")?,
                anonymous_id: f(2)?.str("anonymous_id")?.to_owned(),
                transaction_id: f(3)?.str("transaction_id")?.to_owned(),
                model: model.name(),
                channel: f(5)?.str("channel")?.to_owned(),
                source: f(6)?.str("source")?.to_owned(),
                medium: f(7)?.str("medium")?.to_owned(),
                campaign: f(8)?.str("campaign")?.to_owned(),
                kol: f(9)?.str("kol")?.to_owned(),
                order_time: f(10)?.int("order_time")?,
                currency: f(11)?.str("currency")?.to_owned(),
                value_minor: f(12)?.int("value_minor")?,
                is_first: f(13)?.int("is_first")?,
            })
        }
        "RetentionKey" => {
            let kind = match f(1)?.str("cohort_kind")? {
                FIRST_VISIT => FIRST_VISIT,
                FIRST_PURCHASE => FIRST_PURCHASE,
                other => return Err(JsonError(format!("not a cohort kind: {:?}", other))),
            };
            let granularity = match f(2)?.str("granularity")? {
                "day" => Granularity::Day,
                "week" => Granularity::Week,
                "month" => Granularity::Month,
                other => return Err(JsonError(format!("not a granularity: {:?}", other))),
            };
            let activity = f(4)?.str("activity")?;
            let activity = match ACTIVITIES.iter().find(|a| **a == activity) {
                Some(activity) => *activity,
                None => return Err(JsonError(format!("not an activity: {:?}", activity))),
            };
            Key::Retention(RetentionKey {
                cohort_kind: kind,
                granularity,
                cohort_ms: f(3)?.int("cohort_ms")?,
                activity,
                period: f(5)?.int("period")?,
                period_start_ms: f(6)?.int("period_start_ms")?,
                channel: f(7)?.str("channel")?.to_owned(),
                platform: f(8)?.str("platform")?.to_owned(),
            })
        }
        "OrderGapKey" => {
            let text = f(3)?.str("le_days")?;
            let bucket = [1i128, 3, 7, 14, 30, 60, 90, 180, i128::MAX / 2]
                .iter()
                .map(|days| gap_bucket(days.saturating_mul(DAY_MS as i128)))
                .find(|b| b.python_repr() == text)
                .ok_or_else(|| JsonError(format!("not a gap bucket: {:?}", text)))?;
            Key::OrderGap(OrderGapKey {
                day_ms: f(1)?.int("day_ms")?,
                channel: f(2)?.str("channel")?.to_owned(),
                le_days: bucket,
            })
        }
        other => return Err(JsonError(format!("no key type {:?}", other))),
    })
}

/// [[type name, *fields, value], ...] -> contributions.
fn contributions_from(value: &Json) -> JsonResult<Contributions> {
    value
        .list("contributions")?
        .iter()
        .map(|entry| {
            let items = entry.list("a contribution")?;
            match items.split_last() {
                Some((value, fields)) => Ok((key_from(fields)?, value.int("a value")?)),
                None => Err(JsonError("an empty contribution".into())),
            }
        })
        .collect()
}

fn state_arg(args: &Json) -> JsonResult<VisitorState> {
    let anonymous_id = arg(args, "anonymous_id")?.str("anonymous_id")?;
    state::decode(&json::to_bytes(arg(args, "state")?), anonymous_id)
        .map_err(|e| JsonError(format!("state: {:?}", e)))
}

fn days_arg(value: &Json) -> JsonResult<Vec<DayActivity>> {
    value
        .list("days")?
        .iter()
        .map(crate::lives::day_from_json)
        .collect()
}

fn purchases_arg(value: &Json) -> JsonResult<Vec<Purchase>> {
    value
        .list("purchases")?
        .iter()
        .map(crate::lives::purchase_from_json)
        .collect()
}

fn signature_json(signature: &RetentionSignature) -> Json {
    Json::List(vec![
        Json::List(
            signature
                .days_but_last
                .iter()
                .map(crate::lives::day_json)
                .collect(),
        ),
        match &signature.last_day {
            None => Json::Null,
            Some(d) => Json::List(vec![
                Json::Int(d.day),
                Json::Int(d.first_t),
                Json::s(&d.first_event_id),
                Json::s(&d.channel),
                Json::s(&d.platform),
            ]),
        },
        Json::List(
            signature
                .purchases
                .iter()
                .map(crate::lives::purchase_json)
                .collect(),
        ),
    ])
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "contributions.contributions" => {
            let state = state_arg(args)?;
            let rules = Rules::from_json(arg(args, "rules")?)?;
            let thresholds = thresholds_arg(args)?;
            match contributions(&state, &rules, &thresholds) {
                Ok(out) => Ok(contributions_json(&out)),
                Err(e) => Err(JsonError(e.0)),
            }
        }
        "contributions.live_only" => {
            let contrib = contributions_from(arg(args, "contrib")?)?;
            let thresholds = thresholds_arg(args)?;
            Ok(contributions_json(&live_only(&contrib, &thresholds)))
        }
        "contributions.diff" => {
            let before = contributions_from(arg(args, "before")?)?;
            let after = contributions_from(arg(args, "after")?)?;
            diff(&before, &after)
                .map(|delta| contributions_json(&delta))
                .map_err(|e| JsonError(e.0))
        }
        "contributions.inputs_signature" => {
            let inputs = RetentionInputs {
                days: days_arg(arg(args, "days")?)?,
                purchases: purchases_arg(arg(args, "purchases")?)?,
            };
            Ok(signature_json(&inputs_signature(&inputs)))
        }
        "contributions.retention_signature" => {
            let state = state_arg(args)?;
            let of_state = retention_signature(&state);
            let of_inputs = inputs_signature(&RetentionInputs::of(&state));
            Ok(Json::List(vec![
                signature_json(&of_state),
                Json::Bool(of_state == of_inputs),
            ]))
        }
        "contributions.same_signature" => {
            let a = RetentionInputs {
                days: days_arg(arg(args, "days_a")?)?,
                purchases: purchases_arg(arg(args, "purchases_a")?)?,
            };
            let b = RetentionInputs {
                days: days_arg(arg(args, "days_b")?)?,
                purchases: purchases_arg(arg(args, "purchases_b")?)?,
            };
            Ok(Json::Bool(inputs_signature(&a) == inputs_signature(&b)))
        }
        other => Err(JsonError(format!("no probe {:?}", other))),
    }
}

/// The probes of this module: "contributions.<function>".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if name.starts_with("contributions.") {
        Some(run_probe(name, args))
    } else {
        None
    }
}
