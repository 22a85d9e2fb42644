//! A partition's non-final aggregate totals, kept as sums of visitor contributions: the
//! Rust twin of `streams/aggregates.py` (`PartitionAggregates`: `apply`, `value`,
//! `_candidate_thresholds`, `finalize`, `forget`, `live_rows`, `take_dirty`).
//!
//! Python's containers and their orders, as kept here:
//! - `totals` (dict Key -> int; only looked up, never iterated): `Totals`, a map per key
//!   type, a KPI row's cells together, so a row's totals are read by reference (building
//!   an owned key per lookup copied its strings: perf, BENCHMARKS.md).
//! - `thresholds` (dict in insertion order): a `Vec<(String, i64)>` in the same order.
//! - `dirty` (a set: its order depends on the hash seed): a HashSet.
//! - `_open` (funnel -> {window: count}; only its minimum window is read): a BTreeMap per
//!   funnel, a funnel without open attempts left out (Python's empty dict is falsy).
//! - `_rows_by_window` ((finality group, window) -> set of rows, in dict insertion order):
//!   the groups in a HashMap, each with its insertion sequence number, and per finality
//!   group its windows by sequence number. `finalize` and `live_rows` give the groups in
//!   Python's dict order; the rows inside one group come from a set (any order).
//!
//! Python's integers are unbounded: totals and open-attempt counts here are i64 and wrap
//! past its range (a sum of i64 contributions that large never happens; ClickHouse's
//! columns are 64-bit). A candidate threshold Python would compute beyond i64 (a funnel
//! window longer than the watermark's distance to i64::MIN) makes `finalize` fail, as it
//! does (without changing anything) where Python raises.

use std::collections::BTreeMap;

use crate::fxhash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::attribution::OrderAttributionKey;
use crate::attribution::KPI_THRESHOLD;
use crate::contributions::key_from;
use crate::json::{Json, JsonError, JsonResult};
use crate::keys::{
    row_of, FunnelAttemptKey, FunnelOutcomeKey, FunnelStepKey, FunnelTtcKey, Key, KeyRef, KpiKey,
    OpenAttemptKey, RowKey, METRICS,
};
use crate::lifecycle::DAY_MS;
use crate::retention::{current_period_ms, GAPS_FAMILY, GRANULARITIES};
use crate::retention::{OrderGapKey, RetentionKey};
use crate::rules::{funnel_threshold, Rules};
use crate::state::Dims;

impl RowKey {
    /// `row.threshold`: the row's finality group.
    pub fn threshold(&self) -> String {
        match self {
            RowKey::FunnelStep(k) => funnel_threshold(&k.funnel),
            RowKey::FunnelOutcome(k) => funnel_threshold(&k.funnel),
            RowKey::FunnelTtc(k) => funnel_threshold(&k.funnel),
            RowKey::FunnelAttempt(k) => funnel_threshold(&k.funnel),
            RowKey::Kpi(_) | RowKey::OrderAttribution(_) => KPI_THRESHOLD.to_owned(),
            RowKey::Retention(k) => k.granularity.family().to_owned(),
            RowKey::OrderGap(_) => GAPS_FAMILY.to_owned(),
        }
    }

    /// `row.final_at`: the window (or period or day start) the row is final with.
    pub fn final_at(&self) -> i64 {
        match self {
            RowKey::FunnelStep(k) => k.window,
            RowKey::FunnelOutcome(k) => k.window,
            RowKey::FunnelTtc(k) => k.window,
            RowKey::FunnelAttempt(k) => k.window,
            RowKey::Kpi(k) => k.window,
            RowKey::OrderAttribution(k) => k.window,
            RowKey::Retention(k) => k.period_start_ms,
            RowKey::OrderGap(k) => k.day_ms,
        }
    }

    /// The contribution key that is this row; None for a KPI row (made of cells).
    pub fn as_key(&self) -> Option<Key> {
        Some(match self {
            RowKey::FunnelStep(k) => Key::FunnelStep(k.clone()),
            RowKey::FunnelOutcome(k) => Key::FunnelOutcome(k.clone()),
            RowKey::FunnelTtc(k) => Key::FunnelTtc(k.clone()),
            RowKey::FunnelAttempt(k) => Key::FunnelAttempt(k.clone()),
            RowKey::Kpi(_) => return None,
            RowKey::OrderAttribution(k) => Key::OrderAttribution(k.clone()),
            RowKey::Retention(k) => Key::Retention(k.clone()),
            RowKey::OrderGap(k) => Key::OrderGap(k.clone()),
        })
    }
}

/// Why `finalize` has no answer: Python raises (a watermark outside the years 1-9999 for
/// the retention periods) or would hold a threshold beyond i64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalizeError(pub String);

impl std::fmt::Display for FinalizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `totals`: every non-final key's running sum, a map per key type (module docs).
#[derive(Clone, Debug, Default)]
pub struct Totals {
    step: HashMap<FunnelStepKey, i64>,
    outcome: HashMap<FunnelOutcomeKey, i64>,
    ttc: HashMap<FunnelTtcKey, i64>,
    attempt: HashMap<FunnelAttemptKey, i64>,
    kpi: HashMap<KpiKey, [i64; METRICS.len()]>,
    attribution: HashMap<OrderAttributionKey, i64>,
    retention: HashMap<RetentionKey, i64>,
    gap: HashMap<OrderGapKey, i64>,
}

/// `totals[key] += change` (wrapping, as module docs), copying the key only when new.
fn add_to<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, i64>, key: &K, change: i64) {
    match map.get_mut(key) {
        Some(total) => *total = total.wrapping_add(change),
        None => {
            map.insert(key.clone(), change);
        }
    }
}

impl Totals {
    /// The key's total (0 for an unknown key).
    pub fn get(&self, key: KeyRef<'_>) -> i64 {
        let found = match key {
            KeyRef::FunnelStep(k) => self.step.get(k),
            KeyRef::FunnelOutcome(k) => self.outcome.get(k),
            KeyRef::FunnelTtc(k) => self.ttc.get(k),
            KeyRef::FunnelAttempt(k) => self.attempt.get(k),
            KeyRef::KpiCell(k, metric) => self.kpi.get(k).and_then(|cells| cells.get(metric)),
            KeyRef::OrderAttribution(k) => self.attribution.get(k),
            KeyRef::Retention(k) => self.retention.get(k),
            KeyRef::OrderGap(k) => self.gap.get(k),
        };
        found.copied().unwrap_or(0)
    }

    /// Add `change` to `key` (not an open attempt), whose row is `row`.
    fn add(&mut self, key: &Key, row: &RowKey, change: i64) {
        match (key, row) {
            (Key::KpiCell(cell), RowKey::Kpi(kpi)) => {
                if let Some(slot) = self
                    .kpi
                    .entry(kpi.clone())
                    .or_insert([0; METRICS.len()])
                    .get_mut(cell.metric)
                {
                    *slot = slot.wrapping_add(change);
                }
            }
            (Key::FunnelStep(k), _) => add_to(&mut self.step, k, change),
            (Key::FunnelOutcome(k), _) => add_to(&mut self.outcome, k, change),
            (Key::FunnelTtc(k), _) => add_to(&mut self.ttc, k, change),
            (Key::FunnelAttempt(k), _) => add_to(&mut self.attempt, k, change),
            (Key::OrderAttribution(k), _) => add_to(&mut self.attribution, k, change),
            (Key::Retention(k), _) => add_to(&mut self.retention, k, change),
            (Key::OrderGap(k), _) => add_to(&mut self.gap, k, change),
            (Key::KpiCell(_), _) | (Key::OpenAttempt(_), _) => {}
        }
    }

    /// Drop every key of `row` (a KPI row: all its cells).
    fn remove_row(&mut self, row: &RowKey) {
        match row {
            RowKey::FunnelStep(k) => {
                self.step.remove(k);
            }
            RowKey::FunnelOutcome(k) => {
                self.outcome.remove(k);
            }
            RowKey::FunnelTtc(k) => {
                self.ttc.remove(k);
            }
            RowKey::FunnelAttempt(k) => {
                self.attempt.remove(k);
            }
            RowKey::Kpi(k) => {
                self.kpi.remove(k);
            }
            RowKey::OrderAttribution(k) => {
                self.attribution.remove(k);
            }
            RowKey::Retention(k) => {
                self.retention.remove(k);
            }
            RowKey::OrderGap(k) => {
                self.gap.remove(k);
            }
        }
    }
}

impl<'a> KeyRef<'a> {
    /// The total's key for a row that is one key (None for a KPI row: one per cell).
    pub fn of_row(row: &'a RowKey) -> Option<KeyRef<'a>> {
        Some(match row {
            RowKey::FunnelStep(k) => KeyRef::FunnelStep(k),
            RowKey::FunnelOutcome(k) => KeyRef::FunnelOutcome(k),
            RowKey::FunnelTtc(k) => KeyRef::FunnelTtc(k),
            RowKey::FunnelAttempt(k) => KeyRef::FunnelAttempt(k),
            RowKey::Kpi(_) => return None,
            RowKey::OrderAttribution(k) => KeyRef::OrderAttribution(k),
            RowKey::Retention(k) => KeyRef::Retention(k),
            RowKey::OrderGap(k) => KeyRef::OrderGap(k),
        })
    }
}

/// The rows of one (finality group, window) and when the group was first added.
#[derive(Clone, Debug)]
struct Group {
    seq: u64,
    rows: HashSet<RowKey>,
}

/// `streams.aggregates.PartitionAggregates` (the rules are passed to `finalize`).
#[derive(Clone, Debug, Default)]
pub struct PartitionAggregates {
    pub totals: Totals,
    /// Finality group -> first window not final yet, in Python's dict order.
    pub thresholds: Vec<(String, i64)>,
    pub dirty: HashSet<RowKey>,
    /// Open attempts per funnel and window: they hold the funnel's threshold back.
    open: HashMap<String, BTreeMap<i64, i64>>,
    /// (finality group, window) -> rows; a group's rows turn final together.
    groups: HashMap<(String, i64), Group>,
    /// Finality group -> its windows in `groups`, by insertion sequence number.
    windows: HashMap<String, BTreeMap<u64, i64>>,
    next_seq: u64,
}

/// `d[name] = value` on an insertion-ordered dict.
fn set_in(dict: &mut Vec<(String, i64)>, name: String, value: i64) {
    match dict.iter_mut().find(|(n, _)| *n == name) {
        Some((_, v)) => *v = value,
        None => dict.push((name, value)),
    }
}

/// `rules.window_of(t)` where `t` may lie beyond i64 (Python's floor); None where the
/// result does not fit i64.
fn window_of_wide(t: i128, window_ms: i64) -> Option<i64> {
    let w = window_ms as i128;
    if w <= 0 {
        return None;
    }
    let start = t - t.rem_euclid(w);
    if start < i64::MIN as i128 || start > i64::MAX as i128 {
        None
    } else {
        Some(start as i64)
    }
}

impl PartitionAggregates {
    pub fn new() -> PartitionAggregates {
        PartitionAggregates::default()
    }

    /// `apply`: add a delta of contributions (an open attempt counts up or down the refs
    /// of its funnel and window; any other key adds to its total and marks its row dirty).
    pub fn apply(&mut self, delta: &[(Key, i64)]) {
        for (key, change) in delta {
            if let Key::OpenAttempt(k) = key {
                self.count_open(k, *change);
                continue;
            }
            let row = match row_of(key) {
                Some(row) => row,
                None => continue,
            };
            self.totals.add(key, &row, *change);
            if !self.dirty.contains(&row) {
                self.dirty.insert(row.clone());
            }
            self.add_row((key.threshold(), key.final_at()), row);
        }
    }

    fn count_open(&mut self, key: &OpenAttemptKey, change: i64) {
        let known = self
            .open
            .get(&key.funnel)
            .and_then(|refs| refs.get(&key.window))
            .copied()
            .unwrap_or(0);
        let count = known.wrapping_add(change);
        if count != 0 {
            self.open
                .entry(key.funnel.clone())
                .or_default()
                .insert(key.window, count);
        } else if let Some(refs) = self.open.get_mut(&key.funnel) {
            refs.remove(&key.window);
            if refs.is_empty() {
                self.open.remove(&key.funnel);
            }
        }
    }

    fn add_row(&mut self, group: (String, i64), row: RowKey) {
        if let Some(known) = self.groups.get_mut(&group) {
            known.rows.insert(row);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.windows
            .entry(group.0.clone())
            .or_default()
            .insert(seq, group.1);
        let mut rows = HashSet::default();
        rows.insert(row);
        self.groups.insert(group, Group { seq, rows });
    }

    /// The total of a borrowed key (0 for an unknown key).
    pub fn total(&self, key: KeyRef<'_>) -> i64 {
        self.totals.get(key)
    }

    /// `value`: the key's total (0 for an unknown key).
    pub fn value(&self, key: &Key) -> i64 {
        match key {
            Key::FunnelStep(k) => self.totals.get(KeyRef::FunnelStep(k)),
            Key::FunnelOutcome(k) => self.totals.get(KeyRef::FunnelOutcome(k)),
            Key::FunnelTtc(k) => self.totals.get(KeyRef::FunnelTtc(k)),
            Key::FunnelAttempt(k) => self.totals.get(KeyRef::FunnelAttempt(k)),
            Key::KpiCell(k) => self.totals.get(KeyRef::KpiCell(&k.row(), k.metric)),
            Key::OrderAttribution(k) => self.totals.get(KeyRef::OrderAttribution(k)),
            Key::Retention(k) => self.totals.get(KeyRef::Retention(k)),
            Key::OrderGap(k) => self.totals.get(KeyRef::OrderGap(k)),
            Key::OpenAttempt(_) => 0,
        }
    }

    /// `_candidate_thresholds`: per finality group, the first window not final at
    /// `watermark`, in Python's dict order (KPI, retention per granularity, gaps, then
    /// each funnel's, held back by its earliest window with open attempts).
    pub fn candidate_thresholds(
        &self,
        rules: &Rules,
        watermark: i64,
    ) -> Result<Vec<(String, i64)>, FinalizeError> {
        let (kpi, gaps) = match (
            window_of_wide(watermark as i128, rules.window_ms),
            window_of_wide(watermark as i128, DAY_MS),
        ) {
            (Some(kpi), Some(gaps)) => (kpi, gaps),
            // (Python raises too: no retention period holds a watermark that far out)
            _ => {
                return Err(FinalizeError(format!(
                    "watermark {} is beyond i64",
                    watermark
                )))
            }
        };
        let mut candidates: Vec<(String, i64)> = Vec::with_capacity(5 + rules.funnels.len());
        candidates.push((KPI_THRESHOLD.to_owned(), kpi));
        for granularity in GRANULARITIES.iter() {
            match current_period_ms(watermark, *granularity) {
                Some(start) => set_in(&mut candidates, granularity.family().to_owned(), start),
                None => {
                    return Err(FinalizeError(format!(
                        "no {} period holds watermark {}",
                        granularity.as_str(),
                        watermark
                    )))
                }
            }
        }
        set_in(&mut candidates, GAPS_FAMILY.to_owned(), gaps);
        for funnel in &rules.funnels {
            let start = watermark as i128 - funnel.window_ms as i128;
            let mut limit = match window_of_wide(start, rules.window_ms) {
                Some(limit) => limit,
                None => {
                    return Err(FinalizeError(format!(
                        "funnel {:?}: its threshold at watermark {} is beyond i64",
                        funnel.name, watermark
                    )))
                }
            };
            if let Some(earliest) = self
                .open
                .get(&funnel.name)
                .and_then(|refs| refs.keys().next())
            {
                limit = limit.min(*earliest);
            }
            set_in(&mut candidates, funnel_threshold(&funnel.name), limit);
        }
        Ok(candidates)
    }

    /// `finalize`: advance the thresholds for `watermark`; the rows that became final
    /// (each group's rows together, the groups in Python's order). The caller writes them
    /// final and then forgets them. Nothing changes where it fails.
    pub fn finalize(
        &mut self,
        rules: &Rules,
        watermark: Option<i64>,
    ) -> Result<Vec<RowKey>, FinalizeError> {
        let watermark = match watermark {
            Some(watermark) => watermark,
            None => return Ok(Vec::new()),
        };
        let candidates = self.candidate_thresholds(rules, watermark)?;
        let mut final_rows = Vec::new();
        for (family, limit) in candidates {
            match self.thresholds.iter_mut().find(|(name, _)| *name == family) {
                Some((_, previous)) => {
                    if limit <= *previous {
                        continue;
                    }
                    *previous = limit;
                }
                None => self.thresholds.push((family.clone(), limit)),
            }
            let windows = match self.windows.get(&family) {
                Some(windows) => windows,
                None => continue,
            };
            let mut group = (family, 0);
            for window in windows.values() {
                if *window < limit {
                    group.1 = *window;
                    if let Some(known) = self.groups.get(&group) {
                        final_rows.extend(known.rows.iter().cloned());
                    }
                }
            }
        }
        Ok(final_rows)
    }

    /// `forget`: drop the rows (written final, or vanished) from the totals, the dirty
    /// rows and their (finality group, window), which goes whole.
    pub fn forget(&mut self, rows: &[RowKey]) {
        for row in rows {
            self.dirty.remove(row);
            let group = (row.threshold(), row.final_at());
            if let Some(known) = self.groups.remove(&group) {
                if let Some(windows) = self.windows.get_mut(&group.0) {
                    windows.remove(&known.seq);
                    if windows.is_empty() {
                        self.windows.remove(&group.0);
                    }
                }
            }
            self.totals.remove_row(row);
        }
    }

    /// `live_rows`: every row of a (finality group, window), the groups in Python's order.
    pub fn live_rows(&self) -> Vec<RowKey> {
        let mut groups: Vec<&Group> = self.groups.values().collect();
        groups.sort_by_key(|g| g.seq);
        groups
            .into_iter()
            .flat_map(|g| g.rows.iter().cloned())
            .collect()
    }

    /// `take_dirty`: the dirty rows (in no particular order), clearing them.
    pub fn take_dirty(&mut self) -> Vec<RowKey> {
        self.dirty.drain().collect()
    }
}

// -- the probe ----------------------------------------------------------------------------
//
// "aggregates.run" {"rules": rules JSON, "ops": [op, ...]} runs the operations on one
// PartitionAggregates and returns each one's result:
//   ["apply", [[key type, *fields, change], ...]] -> null
//   ["value", [key type, *fields]] -> int
//   ["finalize", watermark or null] -> [row, ...] or "error" (Python raises)
//   ["forget", [row, ...]] -> null
//   ["live_rows"] / ["take_dirty"] -> [row, ...]
//   ["thresholds"] -> {group: threshold} in order
//   ["set_thresholds", {group: threshold}] -> null (the processor's recover sets them)
//   ["clear_dirty"] -> null (recover's dirty.clear())
// A row is [type name, *fields] as `Key::fields_json` writes keys, a KPI row
// ["KpiKey", window, dims, currency].

/// The row as the tests write it.
pub fn row_json(row: &RowKey) -> Json {
    match row {
        RowKey::Kpi(k) => Json::List(vec![
            Json::s("KpiKey"),
            Json::Int(k.window),
            Json::List(k.dims.iter().map(|d| Json::s(d)).collect()),
            Json::s(&k.currency),
        ]),
        other => match other.as_key() {
            Some(key) => Json::List(key.fields_json()),
            None => Json::Null,
        },
    }
}

fn rows_json(rows: &[RowKey]) -> Json {
    Json::List(rows.iter().map(row_json).collect())
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

/// A row from [type name, *fields].
fn row_from(value: &Json) -> JsonResult<RowKey> {
    let fields = value.list("a row")?;
    if let Some(Json::Str(name)) = fields.first() {
        if name == "KpiKey" {
            if fields.len() != 4 {
                return Err(JsonError("a KpiKey has three fields".into()));
            }
            return Ok(RowKey::Kpi(KpiKey {
                window: fields[1].int("window")?,
                dims: dims_from(&fields[2])?,
                currency: fields[3].str("currency")?.to_owned(),
            }));
        }
    }
    match key_from(fields)? {
        Key::KpiCell(_) | Key::OpenAttempt(_) => Err(JsonError("not a row key".into())),
        key => row_of(&key).ok_or_else(|| JsonError("not a row key".into())),
    }
}

fn delta_from(value: &Json) -> JsonResult<Vec<(Key, i64)>> {
    value
        .list("a delta")?
        .iter()
        .map(|entry| {
            let items = entry.list("a contribution")?;
            match items.split_last() {
                Some((change, fields)) => Ok((key_from(fields)?, change.int("a change")?)),
                None => Err(JsonError("an empty contribution".into())),
            }
        })
        .collect()
}

fn thresholds_json(thresholds: &[(String, i64)]) -> Json {
    Json::Object(
        thresholds
            .iter()
            .map(|(name, value)| (name.clone(), Json::Int(*value)))
            .collect(),
    )
}

fn arg<'a>(args: &'a Json, name: &str) -> JsonResult<&'a Json> {
    args.object("the arguments")?
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .ok_or_else(|| JsonError(format!("no argument {:?}", name)))
}

fn run_op(aggregates: &mut PartitionAggregates, rules: &Rules, op: &Json) -> JsonResult<Json> {
    let items = op.list("an operation")?;
    let name = match items.first() {
        Some(name) => name.str("an operation name")?,
        None => return Err(JsonError("an empty operation".into())),
    };
    let operand = || -> JsonResult<&Json> {
        items
            .get(1)
            .ok_or_else(|| JsonError(format!("{} needs an operand", name)))
    };
    Ok(match name {
        "apply" => {
            aggregates.apply(&delta_from(operand()?)?);
            Json::Null
        }
        "value" => Json::Int(aggregates.value(&key_from(operand()?.list("a key")?)?)),
        "finalize" => match aggregates.finalize(rules, operand()?.opt_int("a watermark")?) {
            Ok(rows) => rows_json(&rows),
            Err(_) => Json::s("error"),
        },
        "forget" => {
            let rows = operand()?
                .list("rows")?
                .iter()
                .map(row_from)
                .collect::<JsonResult<Vec<_>>>()?;
            aggregates.forget(&rows);
            Json::Null
        }
        "live_rows" => rows_json(&aggregates.live_rows()),
        "take_dirty" => rows_json(&aggregates.take_dirty()),
        "thresholds" => thresholds_json(&aggregates.thresholds),
        "set_thresholds" => {
            aggregates.thresholds = operand()?
                .object("thresholds")?
                .iter()
                .map(|(k, v)| Ok((k.clone(), v.int("a threshold")?)))
                .collect::<JsonResult<_>>()?;
            Json::Null
        }
        "clear_dirty" => {
            aggregates.dirty.clear();
            Json::Null
        }
        other => return Err(JsonError(format!("no operation {:?}", other))),
    })
}

fn run_probe(name: &str, args: &Json) -> JsonResult<Json> {
    match name {
        "aggregates.run" => {
            let rules = Rules::from_json(arg(args, "rules")?)?;
            let mut aggregates = PartitionAggregates::new();
            let results = arg(args, "ops")?
                .list("the operations")?
                .iter()
                .map(|op| run_op(&mut aggregates, &rules, op))
                .collect::<JsonResult<Vec<_>>>()?;
            Ok(Json::List(results))
        }
        other => Err(JsonError(format!("no probe {:?}", other))),
    }
}

/// The probes of this module: "aggregates.<function>".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    if name.starts_with("aggregates.") {
        Some(run_probe(name, args))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_windows() {
        assert_eq!(window_of_wide(-1, 60_000), Some(-60_000));
        assert_eq!(window_of_wide(119_999, 60_000), Some(60_000));
        assert_eq!(window_of_wide(i64::MIN as i128 - 1, 60_000), None);
        assert_eq!(window_of_wide(5, 0), None);
    }
}
