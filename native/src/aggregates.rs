//! A partition's non-final aggregate totals, kept as sums of visitor contributions: the
//! Rust twin of `streams/aggregates.py` (`PartitionAggregates`: `apply`, `value`,
//! `_candidate_thresholds`, `finalize`, `forget`, `live_rows`, `take_dirty`).
//!
//! Python's containers and their orders, as kept here:
//! - `totals` (dict Key -> int; only looked up, never iterated), `dirty` (a set: its
//!   order depends on the hash seed) and the rows of `_rows_by_window` hold each live row
//!   three times. Here each live row is kept once, in a slab (`Rows`) with its totals (a
//!   KPI row's cells together) and its dirty flag, found by the hash of its key from a
//!   contribution, a row or a `KeyRef` alike, so a lookup never builds (and copies) an
//!   owned key (perf, BENCHMARKS.md); `dirty` and the groups hold row ids.
//! - `thresholds` (dict in insertion order): a `Vec<(String, i64)>` in the same order.
//! - `_open` (funnel -> {window: count}; only its minimum window is read): a BTreeMap per
//!   funnel, a funnel without open attempts left out (Python's empty dict is falsy).
//! - `_rows_by_window` ((finality group, window) -> set of rows, in dict insertion order):
//!   the groups in a HashMap, each with its insertion sequence number, and per finality
//!   group its windows by sequence number. `finalize` and `live_rows` give the groups in
//!   Python's dict order; the rows inside one group in the order they joined it (Python's
//!   come from a set: any order). A row remembers the sequence number of the group it
//!   joined; when that group went whole (`forget` of another of its rows), the row joins
//!   the group of its (finality group, window) anew at its next contribution, as
//!   Python's `setdefault` does.
//!
//! Python's integers are unbounded: totals and open-attempt counts here are i64 and wrap
//! past its range (a sum of i64 contributions that large never happens; ClickHouse's
//! columns are 64-bit). A candidate threshold Python would compute beyond i64 (a funnel
//! window longer than the watermark's distance to i64::MIN) makes `finalize` fail, as it
//! does (without changing anything) where Python raises.

use std::collections::BTreeMap;

use crate::fxhash::{FxHashMap as HashMap, FxHashSet as HashSet};
use crate::hashindex::HashIndex;

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
            RowKey::FunnelAttempt(k) => Key::FunnelAttempt((**k).clone()),
            RowKey::Kpi(_) => return None,
            RowKey::OrderAttribution(k) => Key::OrderAttribution((**k).clone()),
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

/// A live row's key in borrowed form: what `apply` has (a contribution key; a KPI cell
/// names its row by the cell's window, dimensions and currency), what `total` and
/// `forget` have (a row or a `KeyRef`), all hashed and compared alike, so that finding a
/// row never builds (and copies) an owned key.
#[derive(Clone, Copy)]
enum RowRef<'a> {
    FunnelStep(&'a FunnelStepKey),
    FunnelOutcome(&'a FunnelOutcomeKey),
    FunnelTtc(&'a FunnelTtcKey),
    FunnelAttempt(&'a FunnelAttemptKey),
    Kpi(i64, &'a Dims, &'a str),
    OrderAttribution(&'a OrderAttributionKey),
    Retention(&'a RetentionKey),
    OrderGap(&'a OrderGapKey),
}

impl<'a> RowRef<'a> {
    /// The row of a contribution key, and the KPI metric a cell adds to (None: an open
    /// attempt, which has no row).
    fn of_key(key: &'a Key) -> Option<(RowRef<'a>, usize)> {
        Some(match key {
            Key::FunnelStep(k) => (RowRef::FunnelStep(k), 0),
            Key::FunnelOutcome(k) => (RowRef::FunnelOutcome(k), 0),
            Key::OpenAttempt(_) => return None,
            Key::FunnelTtc(k) => (RowRef::FunnelTtc(k), 0),
            Key::FunnelAttempt(k) => (RowRef::FunnelAttempt(k), 0),
            Key::KpiCell(k) => (RowRef::Kpi(k.window, &k.dims, &k.currency), k.metric),
            Key::OrderAttribution(k) => (RowRef::OrderAttribution(k), 0),
            Key::Retention(k) => (RowRef::Retention(k), 0),
            Key::OrderGap(k) => (RowRef::OrderGap(k), 0),
        })
    }

    fn of_row(row: &'a RowKey) -> RowRef<'a> {
        match row {
            RowKey::FunnelStep(k) => RowRef::FunnelStep(k),
            RowKey::FunnelOutcome(k) => RowRef::FunnelOutcome(k),
            RowKey::FunnelTtc(k) => RowRef::FunnelTtc(k),
            RowKey::FunnelAttempt(k) => RowRef::FunnelAttempt(k),
            RowKey::Kpi(k) => RowRef::Kpi(k.window, &k.dims, &k.currency),
            RowKey::OrderAttribution(k) => RowRef::OrderAttribution(k),
            RowKey::Retention(k) => RowRef::Retention(k),
            RowKey::OrderGap(k) => RowRef::OrderGap(k),
        }
    }

    /// A total's row, and the KPI metric of a cell.
    fn of_total(key: KeyRef<'a>) -> (RowRef<'a>, usize) {
        match key {
            KeyRef::FunnelStep(k) => (RowRef::FunnelStep(k), 0),
            KeyRef::FunnelOutcome(k) => (RowRef::FunnelOutcome(k), 0),
            KeyRef::FunnelTtc(k) => (RowRef::FunnelTtc(k), 0),
            KeyRef::FunnelAttempt(k) => (RowRef::FunnelAttempt(k), 0),
            KeyRef::KpiCell(k, metric) => (RowRef::Kpi(k.window, &k.dims, &k.currency), metric),
            KeyRef::OrderAttribution(k) => (RowRef::OrderAttribution(k), 0),
            KeyRef::Retention(k) => (RowRef::Retention(k), 0),
            KeyRef::OrderGap(k) => (RowRef::OrderGap(k), 0),
        }
    }

    fn hash_in(&self, index: &HashIndex) -> u64 {
        match self {
            RowRef::FunnelStep(k) => index.hash(&(0u8, k)),
            RowRef::FunnelOutcome(k) => index.hash(&(1u8, k)),
            RowRef::FunnelTtc(k) => index.hash(&(2u8, k)),
            RowRef::FunnelAttempt(k) => index.hash(&(3u8, k)),
            RowRef::Kpi(window, dims, currency) => index.hash(&(4u8, window, dims, currency)),
            RowRef::OrderAttribution(k) => index.hash(&(5u8, k)),
            RowRef::Retention(k) => index.hash(&(6u8, k)),
            RowRef::OrderGap(k) => index.hash(&(7u8, k)),
        }
    }

    fn is(&self, row: &RowKey) -> bool {
        match (self, row) {
            (RowRef::FunnelStep(a), RowKey::FunnelStep(b)) => *a == b,
            (RowRef::FunnelOutcome(a), RowKey::FunnelOutcome(b)) => *a == b,
            (RowRef::FunnelTtc(a), RowKey::FunnelTtc(b)) => *a == b,
            (RowRef::FunnelAttempt(a), RowKey::FunnelAttempt(b)) => **a == **b,
            (RowRef::Kpi(window, dims, currency), RowKey::Kpi(b)) => {
                *window == b.window && *currency == b.currency.as_str() && **dims == b.dims
            }
            (RowRef::OrderAttribution(a), RowKey::OrderAttribution(b)) => **a == **b,
            (RowRef::Retention(a), RowKey::Retention(b)) => *a == b,
            (RowRef::OrderGap(a), RowKey::OrderGap(b)) => *a == b,
            _ => false,
        }
    }

    fn to_row(self) -> RowKey {
        match self {
            RowRef::FunnelStep(k) => RowKey::FunnelStep(k.clone()),
            RowRef::FunnelOutcome(k) => RowKey::FunnelOutcome(k.clone()),
            RowRef::FunnelTtc(k) => RowKey::FunnelTtc(k.clone()),
            RowRef::FunnelAttempt(k) => RowKey::FunnelAttempt(Box::new(k.clone())),
            RowRef::Kpi(window, dims, currency) => RowKey::Kpi(KpiKey {
                window,
                dims: dims.clone(),
                currency: currency.to_owned(),
            }),
            RowRef::OrderAttribution(k) => RowKey::OrderAttribution(Box::new(k.clone())),
            RowRef::Retention(k) => RowKey::Retention(k.clone()),
            RowRef::OrderGap(k) => RowKey::OrderGap(k.clone()),
        }
    }
}

/// A row's totals: one, or a KPI row's cell per metric (boxed: KPI rows are few, and
/// every other row would take their size).
#[derive(Clone, Debug)]
enum Cells {
    One(i64),
    Kpi(Box<[i64; METRICS.len()]>),
}

impl Cells {
    fn zero(row: &RowRef<'_>) -> Cells {
        match row {
            RowRef::Kpi(..) => Cells::Kpi(Box::new([0; METRICS.len()])),
            _ => Cells::One(0),
        }
    }

    fn get(&self, metric: usize) -> i64 {
        match self {
            Cells::One(total) => *total,
            Cells::Kpi(cells) => cells.get(metric).copied().unwrap_or(0),
        }
    }

    /// `totals[key] += change`, wrapping (module docs).
    fn add(&mut self, metric: usize, change: i64) {
        let slot = match self {
            Cells::One(total) => Some(total),
            Cells::Kpi(cells) => cells.get_mut(metric),
        };
        if let Some(slot) = slot {
            *slot = slot.wrapping_add(change);
        }
    }
}

/// A live row: its key (the one copy the aggregates keep), its totals, whether it is
/// dirty, and the sequence number of the group it was last added to.
#[derive(Clone, Debug)]
struct Slot {
    key: RowKey,
    cells: Cells,
    dirty: bool,
    group: u64,
}

/// Every live row once, in a slab: the totals, the dirty flags and the groups refer to a
/// row by its index (a `u32`), so a contribution finds its row with one hash and one
/// probe, and a row's key is copied once, when it first appears (Python's `totals`,
/// `dirty` and `_rows_by_window` hold the row three times).
///
/// A slot is boxed: a `Slot` is about 400 bytes (the largest key's size), and the slab
/// keeps its peak length, most of it free ids once the groups turn final. Unboxed, the
/// free entries cost that much each (107 MB of the 125 MB the aggregates held after 30
/// simulated days, BENCHMARKS.md); boxed, 8 bytes.
#[derive(Clone, Debug, Default)]
struct Rows {
    slots: Vec<Option<Box<Slot>>>,
    free: Vec<u32>,
    index: HashIndex,
}

impl Rows {
    fn find_hashed(&self, hash: u64, row: &RowRef<'_>) -> Option<u32> {
        self.index.find(hash, |id| {
            self.slot(id).map_or(false, |slot| row.is(&slot.key))
        })
    }

    fn find(&self, row: &RowRef<'_>) -> Option<u32> {
        self.find_hashed(row.hash_in(&self.index), row)
    }

    fn slot(&self, id: u32) -> Option<&Slot> {
        self.slots.get(id as usize).and_then(Option::as_deref)
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Slot> {
        self.slots
            .get_mut(id as usize)
            .and_then(Option::as_deref_mut)
    }

    /// The row's id, adding it (with zero totals) when it is new.
    fn find_or_add(&mut self, row: &RowRef<'_>) -> u32 {
        let hash = row.hash_in(&self.index);
        if let Some(id) = self.find_hashed(hash, row) {
            return id;
        }
        let slot = Box::new(Slot {
            key: row.to_row(),
            cells: Cells::zero(row),
            dirty: false,
            group: 0,
        });
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(slot);
                id
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(hash, id);
        id
    }

    fn remove_id(&mut self, id: u32) {
        let hash = match self.slot(id) {
            Some(slot) => RowRef::of_row(&slot.key).hash_in(&self.index),
            None => return,
        };
        self.index.remove(hash, id);
        self.slots[id as usize] = None;
        self.free.push(id);
    }

    fn remove(&mut self, row: &RowRef<'_>) {
        let hash = row.hash_in(&self.index);
        if let Some(id) = self.find_hashed(hash, row) {
            self.index.remove(hash, id);
            self.slots[id as usize] = None;
            self.free.push(id);
        }
    }

    fn total(&self, row: &RowRef<'_>, metric: usize) -> i64 {
        self.find(row)
            .and_then(|id| self.slot(id))
            .map_or(0, |slot| slot.cells.get(metric))
    }
}

/// The rows of one (finality group, window) and when the group was first added (its
/// sequence number, never 0).
#[derive(Clone, Debug)]
struct Group {
    seq: u64,
    rows: Vec<u32>,
}

/// `streams.aggregates.PartitionAggregates` (the rules are passed to `finalize`).
#[derive(Clone, Debug, Default)]
pub struct PartitionAggregates {
    rows: Rows,
    /// Finality group -> first window not final yet, in Python's dict order.
    pub thresholds: Vec<(String, i64)>,
    /// Ids of the dirty rows (a row's flag says whether it still is: an id may be here
    /// twice after its row was forgotten and the id reused).
    dirty: Vec<u32>,
    /// Open attempts per funnel and window: they hold the funnel's threshold back.
    open: HashMap<String, BTreeMap<i64, i64>>,
    /// (finality group, window) -> rows; a group's rows turn final together.
    groups: HashMap<(String, i64), Group>,
    /// The sequence numbers of the groups in `groups`.
    live_groups: HashSet<u64>,
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
            let (row, metric) = match RowRef::of_key(key) {
                Some(found) => found,
                None => {
                    if let Key::OpenAttempt(k) = key {
                        self.count_open(k, *change);
                    }
                    continue;
                }
            };
            let id = self.rows.find_or_add(&row);
            let group_alive = {
                let live_groups = &self.live_groups;
                let slot = match self.rows.slot_mut(id) {
                    Some(slot) => slot,
                    None => continue,
                };
                slot.cells.add(metric, *change);
                if !slot.dirty {
                    slot.dirty = true;
                    self.dirty.push(id);
                }
                live_groups.contains(&slot.group)
            };
            if !group_alive {
                // New, or its group went (another row of it was forgotten): Python's
                // `setdefault` adds it to the (finality group, window) as it is now.
                let seq = self.add_to_group((key.threshold(), key.final_at()), id);
                if let Some(slot) = self.rows.slot_mut(id) {
                    slot.group = seq;
                }
            }
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

    /// Add the row to its (finality group, window), made at the end of the order when
    /// new; the group's sequence number.
    fn add_to_group(&mut self, group: (String, i64), id: u32) -> u64 {
        if let Some(known) = self.groups.get_mut(&group) {
            known.rows.push(id);
            return known.seq;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.windows
            .entry(group.0.clone())
            .or_default()
            .insert(seq, group.1);
        self.live_groups.insert(seq);
        self.groups.insert(
            group,
            Group {
                seq,
                rows: vec![id],
            },
        );
        seq
    }

    /// The total of a borrowed key (0 for an unknown key).
    pub fn total(&self, key: KeyRef<'_>) -> i64 {
        let (row, metric) = RowRef::of_total(key);
        self.rows.total(&row, metric)
    }

    /// `value`: the key's total (0 for an unknown key).
    pub fn value(&self, key: &Key) -> i64 {
        match RowRef::of_key(key) {
            Some((row, metric)) => self.rows.total(&row, metric),
            None => 0,
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
        let ids = self.finalize_ids(rules, watermark)?;
        Ok(self.keys_of(&ids).collect())
    }

    /// `finalize`, giving the final rows' ids: the core reads their keys where the slab
    /// keeps them and forgets them by id (`forget_ids`). A watermark that jumps final
    /// turns every held row final at once (187,226 rows in one call of
    /// `bench.core_heap`'s run), and copying their keys out was a third of that call's
    /// peak heap.
    pub fn finalize_ids(
        &mut self,
        rules: &Rules,
        watermark: Option<i64>,
    ) -> Result<Vec<u32>, FinalizeError> {
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
                        let rows = &self.rows;
                        final_rows.extend(
                            known
                                .rows
                                .iter()
                                .copied()
                                .filter(|id| rows.slot(*id).is_some()),
                        );
                    }
                }
            }
        }
        Ok(final_rows)
    }

    /// The keys of rows by id.
    fn keys_of<'s>(&'s self, ids: &'s [u32]) -> impl Iterator<Item = RowKey> + 's {
        ids.iter()
            .filter_map(move |id| self.rows.slot(*id).map(|slot| slot.key.clone()))
    }

    /// `forget`: drop the rows (written final, or vanished) from the totals, the dirty
    /// rows and their (finality group, window), which goes whole.
    pub fn forget(&mut self, rows: &[RowKey]) {
        for row in rows {
            self.forget_group((row.threshold(), row.final_at()));
            // Its id may stay in `dirty`: the slot's absence (or a new row's own flag,
            // once the id is reused) tells `take_dirty` to pass it over.
            self.rows.remove(&RowRef::of_row(row));
        }
    }

    /// A (finality group, window) goes whole when one of its rows is forgotten.
    fn forget_group(&mut self, group: (String, i64)) {
        if let Some(known) = self.groups.remove(&group) {
            self.live_groups.remove(&known.seq);
            if let Some(windows) = self.windows.get_mut(&group.0) {
                windows.remove(&known.seq);
                if windows.is_empty() {
                    self.windows.remove(&group.0);
                }
            }
        }
    }

    /// `forget` of the rows by id (ids of rows already gone are passed over).
    pub fn forget_ids(&mut self, ids: &[u32]) {
        for &id in ids {
            let group = match self.rows.slot(id) {
                Some(slot) => (slot.key.threshold(), slot.key.final_at()),
                None => continue,
            };
            self.forget_group(group);
            self.rows.remove_id(id);
        }
    }

    /// `live_rows`: every row of a (finality group, window), the groups in Python's order.
    pub fn live_rows(&self) -> Vec<RowKey> {
        let mut groups: Vec<&Group> = self.groups.values().collect();
        groups.sort_by_key(|g| g.seq);
        groups
            .into_iter()
            .flat_map(|g| self.keys_of(&g.rows))
            .collect()
    }

    /// `take_dirty`: the dirty rows (in no particular order), clearing them.
    pub fn take_dirty(&mut self) -> Vec<RowKey> {
        let ids = self.take_dirty_ids();
        ids.iter()
            .filter_map(|id| self.row_key(*id).cloned())
            .collect()
    }

    /// `take_dirty` as the ids of the rows (each once), for `row_key`.
    pub fn take_dirty_ids(&mut self) -> Vec<u32> {
        let mut ids = Vec::with_capacity(self.dirty.len());
        for id in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.rows.slot_mut(id) {
                if slot.dirty {
                    slot.dirty = false;
                    ids.push(id);
                }
            }
        }
        ids
    }

    /// The key of a live row by id (from `take_dirty_ids`; None once it is forgotten).
    pub fn row_key(&self, id: u32) -> Option<&RowKey> {
        self.rows.slot(id).map(|slot| &slot.key)
    }

    /// `dirty.clear()`: no row is dirty.
    pub fn clear_dirty(&mut self) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(slot) = self.rows.slot_mut(id) {
                slot.dirty = false;
            }
        }
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
            aggregates.clear_dirty();
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

    #[test]
    fn a_free_slot_costs_a_pointer() {
        // The slab keeps its peak length; a free id must not cost a whole row.
        assert_eq!(
            std::mem::size_of::<Option<Box<Slot>>>(),
            std::mem::size_of::<usize>()
        );
        // And a row takes the size of the common keys, not of the two boxed large ones.
        let slot = std::mem::size_of::<Slot>();
        assert!(slot <= 256, "a Slot is {} bytes", slot);
        assert_eq!(std::mem::size_of::<Cells>(), 16);
    }
}
