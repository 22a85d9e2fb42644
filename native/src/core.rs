//! One partition's processing in Rust: the twin of `streams/processor.py` and
//! `streams/visitor_cache.py`, built from the ported modules.
//!
//! A `PartitionCore` owns the partition's visitor states (the encoded bytes of every
//! visitor, and the most recently touched ones decoded with their contributions), its
//! totals, clocks, timers and forget marks. It takes raw record batches and gives back
//! what `BatchResult` holds: rows per table, triggers, dead letters, state writes and
//! stats. The Python adapter (`streams/compiled/processor.py`) turns that into a
//! `BatchResult`; tests/native/test_core.py runs both cores side by side and compares.

use std::collections::{HashMap, VecDeque};

use crate::fxhash::{FxHashMap, FxHashSet};
use crate::hashindex::HashIndex;

use crate::aggregates::PartitionAggregates;
use crate::channels::ChannelCache;
use crate::checkpoint::{Checkpoint, META_PREFIX};
use crate::contributions::{
    contributions, diff, inputs_signature, live_only, Contributions, RetentionInputs,
    RetentionSignature,
};
use crate::deadletter::DeadLetter;
use crate::intake::{
    in_flight, rejected_in_flight, EventDecoder, Intake, IntakeResult, Pending, Record,
};
use crate::keys::{Key, KeyRef, RowKey, GMV, METRICS, ORDERS};
use crate::lifecycle_rows::{advance_lifecycle, LifecycleOutput, VersionClock};
use crate::retention::retention_contributions;
use crate::rows_aggregate::{aggregate_rows, merge_rows, RowContext, TableRows};
use crate::rules::Rules;
use crate::state::{self, ForgetMark, VisitorState};
use crate::timers::TimerWheel;
use crate::visitor_apply::{apply_event, Applied};
use crate::visitor_close::{close_expired, drop_forgotten_lives, expired, next_due, prune_final};
use crate::watermarks::PartitionClock;

/// Why a batch could not be processed (where the Python core raises).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError(pub String);

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> CoreError + '_ {
    move |e| CoreError(format!("{}: {}", what, e))
}

pub type Thresholds = Vec<(String, i64)>;

/// `dict == dict` for the thresholds (order does not matter).
fn same_thresholds(a: &[(String, i64)], b: &[(String, i64)]) -> bool {
    a.len() == b.len() && a.iter().all(|entry| b.contains(entry))
}

// -- the visitor cache ----------------------------------------------------------------------

/// `CachedVisitor`: a decoded state and what it contributes now.
#[derive(Clone, Debug)]
pub struct CachedVisitor {
    pub state: VisitorState,
    /// Encoded bytes in the store (0: not stored yet).
    pub size: i64,
    pub contributions: Contributions,
    pub retention_inputs: RetentionInputs,
    pub retention_signature: RetentionSignature,
    pub computed_retention: Option<Contributions>,
    pub computed_under: Option<Thresholds>,
}

fn retention_of(
    inputs: &RetentionInputs,
    thresholds: &[(String, i64)],
    rules: &Rules,
) -> Result<Contributions, CoreError> {
    retention_contributions(
        &inputs.days,
        &inputs.purchases,
        thresholds,
        &rules.lifecycle,
    )
    .map(|cells| cells.into_iter().map(|(k, n)| (Key::from(k), n)).collect())
    .ok_or_else(|| CoreError("a retention period outside the time range".into()))
}

impl CachedVisitor {
    /// `CachedVisitor.retention`: computed on first use, then filtered by `thresholds`.
    fn retention(
        &mut self,
        thresholds: &[(String, i64)],
        rules: &Rules,
    ) -> Result<Contributions, CoreError> {
        match &self.computed_retention {
            Some(computed) => Ok(live_only(computed, thresholds)),
            None => {
                let computed = retention_of(&self.retention_inputs, thresholds, rules)?;
                self.computed_retention = Some(computed.clone());
                Ok(computed)
            }
        }
    }

    /// `retention`, for a caller that replaces the visitor's retention with a new one
    /// (and so never asks again): nothing is kept, so nothing is copied.
    fn take_retention(
        &mut self,
        thresholds: &[(String, i64)],
        rules: &Rules,
    ) -> Result<Contributions, CoreError> {
        match self.computed_retention.take() {
            Some(computed) => Ok(live_only(&computed, thresholds)),
            None => retention_of(&self.retention_inputs, thresholds, rules),
        }
    }
}

/// `VisitorCache` over the partition's own store of encoded states: the decoded visitors
/// most recently used, at most `capacity` of them.
struct VisitorCache {
    partition: i64,
    /// Every visitor of the partition, encoded (what the changelog holds).
    stored: FxHashMap<Vec<u8>, Vec<u8>>,
    entries: FxHashMap<Vec<u8>, (CachedVisitor, u64)>,
    /// Keys in the order they were used, with the use's number (older uses are stale).
    order: VecDeque<(Vec<u8>, u64)>,
    uses: u64,
    capacity: usize,
    state_keys: i64,
    state_bytes: i64,
}

impl VisitorCache {
    fn new(partition: i64, capacity: usize) -> Self {
        VisitorCache {
            partition,
            stored: FxHashMap::default(),
            entries: FxHashMap::default(),
            order: VecDeque::new(),
            uses: 0,
            capacity,
            state_keys: 0,
            state_bytes: 0,
        }
    }

    /// `load`: the cached visitor (taken out; `remember` puts it back), else decoded.
    fn load(
        &mut self,
        key: &[u8],
        rules: &Rules,
        thresholds: &[(String, i64)],
    ) -> Result<CachedVisitor, CoreError> {
        if let Some((cached, _)) = self.entries.remove(key) {
            return Ok(cached);
        }
        let anonymous_id = key_text(key)?;
        let (state, size) = match self.stored.get(key) {
            None => {
                self.state_keys += 1;
                (VisitorState::new(self.partition, anonymous_id), 0)
            }
            Some(raw) => (decode(raw, anonymous_id)?, raw.len() as i64),
        };
        evaluate(state, size, rules, thresholds)
    }

    fn remember(&mut self, key: Vec<u8>, cached: CachedVisitor) {
        if self.capacity == 0 {
            return;
        }
        self.uses += 1;
        self.order.push_back((key.clone(), self.uses));
        self.entries.insert(key, (cached, self.uses));
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some((old, used)) => {
                    if self.entries.get(&old).map_or(false, |(_, u)| *u == used) {
                        self.entries.remove(&old);
                    }
                }
                None => break,
            }
        }
        if self.order.len() > 4 * self.capacity + 64 {
            // Stale uses pile up when the same visitors come back: keep the live ones.
            let entries = &self.entries;
            self.order
                .retain(|(k, used)| entries.get(k).map_or(false, |(_, u)| u == used));
        }
    }

    fn written(&mut self, key: &[u8], old_size: i64, encoded: Vec<u8>) {
        self.state_bytes += encoded.len() as i64 - old_size;
        // Kept at its length: the encoder's buffer starts at 512 bytes and doubles, and
        // the store holds every visitor of the partition (1.44x the encoded bytes when
        // the buffers were kept, BENCHMARKS.md). mimalloc does not move a block that
        // shrinks by less than half, so `shrink_to_fit` would not free it: copy.
        let encoded = if encoded.capacity() > encoded.len() {
            encoded.as_slice().to_vec()
        } else {
            encoded
        };
        match self.stored.get_mut(key) {
            Some(stored) => *stored = encoded,
            None => {
                self.stored.insert(key.to_vec(), encoded);
            }
        }
    }

    fn dropped(&mut self, key: &[u8], old_size: i64) {
        self.state_bytes -= old_size;
        self.state_keys -= 1;
        self.entries.remove(key);
        self.stored.remove(key);
    }
}

fn key_text(key: &[u8]) -> Result<&str, CoreError> {
    std::str::from_utf8(key)
        .map_err(|_| CoreError(format!("a visitor key that is not UTF-8: {:?}", key)))
}

fn decode(raw: &[u8], anonymous_id: &str) -> Result<VisitorState, CoreError> {
    state::decode(raw, anonymous_id).map_err(|e| match e {
        state::DecodeError::Version(v) => CoreError(format!(
            "the state of {:?} has format version {} (this core reads {})",
            anonymous_id,
            v,
            state::FORMAT_VERSION
        )),
        state::DecodeError::Unreadable(why) => CoreError(format!(
            "the state of {:?} is unreadable: {}",
            anonymous_id, why
        )),
    })
}

/// `VisitorCache.evaluate`.
fn evaluate(
    state: VisitorState,
    size: i64,
    rules: &Rules,
    thresholds: &[(String, i64)],
) -> Result<CachedVisitor, CoreError> {
    let inputs = RetentionInputs::of(&state);
    let signature = inputs_signature(&inputs);
    let contributions = contributions(&state, rules, thresholds).map_err(fail("contributions"))?;
    Ok(CachedVisitor {
        state,
        size,
        contributions,
        retention_inputs: inputs,
        retention_signature: signature,
        computed_retention: None,
        computed_under: Some(thresholds.to_vec()),
    })
}

// -- what a batch gives back ------------------------------------------------------------------

/// A Python `Counter` over small keys, in first-seen order.
pub type Counts<K> = Vec<(K, i64)>;

fn add<K: PartialEq>(counts: &mut Counts<K>, key: K, n: i64) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, total)) => *total += n,
        None => counts.push((key, n)),
    }
}

/// The step entries' `Counter` key: (funnel, step, window, channel, campaign).
pub type StepEntry = (String, i64, i64, String, String);

/// A `Counter` with many keys (step entries: one per funnel step, window and dims),
/// found by hash from the borrowed key: a key is copied once, when new.
#[derive(Clone, Debug, Default)]
pub struct StepEntries {
    pub counts: Counts<StepEntry>,
    index: HashIndex,
}

impl StepEntries {
    fn add(&mut self, key: (&str, i64, i64, &str, &str), n: i64) {
        let hash = self.index.hash(&key);
        let counts = &self.counts;
        let found = self.index.find(hash, |at| {
            counts.get(at as usize).map_or(false, |(k, _)| {
                (k.0.as_str(), k.1, k.2, k.3.as_str(), k.4.as_str()) == key
            })
        });
        match found.and_then(|at| self.counts.get_mut(at as usize)) {
            Some((_, total)) => *total += n,
            None => {
                self.index.insert(hash, self.counts.len() as u32);
                let (funnel, step, window, channel, campaign) = key;
                self.counts.push((
                    (
                        funnel.to_owned(),
                        step,
                        window,
                        channel.to_owned(),
                        campaign.to_owned(),
                    ),
                    n,
                ));
            }
        }
    }
}

/// `BatchStats`.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ingested: Counts<String>,
    pub dead_letters: Counts<(String, String)>,
    pub late: Counts<(String, String)>,
    pub duplicates: Counts<String>,
    pub replayed: i64,
    /// (funnel, step, window, channel, campaign) -> net change of entities.
    pub step_entries: StepEntries,
    /// (channel, currency) -> net change.
    pub orders: Counts<(String, String)>,
    pub gmv_minor: Counts<(String, String)>,
    pub visitors_touched: i64,
    pub transitions: Counts<(String, String)>,
    pub expired: i64,
    pub forgotten: i64,
}

impl Stats {
    /// `BatchStats.count_changes`.
    fn count_changes(&mut self, delta: &[(Key, i64)]) {
        for (key, change) in delta {
            match key {
                Key::FunnelStep(k) => self.step_entries.add(
                    (&k.funnel, k.step, k.window, &k.dims[0], &k.dims[1]),
                    *change,
                ),
                Key::KpiCell(k) if k.metric == ORDERS || k.metric == GMV => {
                    let target = if k.metric == ORDERS {
                        &mut self.orders
                    } else {
                        &mut self.gmv_minor
                    };
                    add(target, (k.dims[0].clone(), k.currency.clone()), *change);
                }
                _ => {}
            }
        }
    }
}

/// `BatchResult`, with rows kept typed per table until they are handed over.
#[derive(Default)]
pub struct Output {
    pub intake: IntakeResult,
    pub lifecycle: LifecycleOutput,
    pub aggregate_rows: TableRows,
    /// Visitors written, in first-written order: true for a new state (its bytes are the
    /// core's stored state, `PartitionCore::stored_state`), false for a deletion.
    pub state_writes: Vec<(Vec<u8>, bool)>,
    write_index: FxHashMap<Vec<u8>, usize>,
    pub meta: bool,
    pub finalized: bool,
    pub stats: Stats,
    pub watermark: Option<i64>,
}

impl Output {
    fn write(&mut self, key: &[u8], value: bool) {
        match self.write_index.get(key) {
            Some(&at) => self.state_writes[at].1 = value,
            None => {
                self.write_index
                    .insert(key.to_vec(), self.state_writes.len());
                self.state_writes.push((key.to_vec(), value));
            }
        }
    }

    fn written(&self, key: &[u8]) -> Option<bool> {
        self.write_index.get(key).map(|&at| self.state_writes[at].1)
    }

    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.intake.dead_letters
    }
}

/// The environment of one call: the row versions (shared with the other partitions of
/// the worker through their last value) and the wall clock in ms.
pub struct Clocks {
    pub versions: VersionClock,
    pub wall_ms: i64,
}

// -- the partition ---------------------------------------------------------------------------

pub struct PartitionCore {
    pub partition: i64,
    rules: Rules,
    /// stream -> topic, in the Python dict's order.
    topics: Vec<(String, String)>,
    intake: Intake,
    channels: std::cell::RefCell<ChannelCache>,
    pub clock: PartitionClock,
    resumed_at: HashMap<String, i64>,
    next_offset: HashMap<String, i64>,
    pub aggregates: PartitionAggregates,
    durable_thresholds: Thresholds,
    timers: TimerWheel,
    visitors: VisitorCache,
    pub triggers_next_offset: Option<i64>,
    pub recovered_version: Option<i64>,
    /// Forget marks of visitors, and per input the latest broker append time processed.
    marks: HashMap<String, Vec<ForgetMark>>,
    appended: HashMap<String, i64>,
}

impl PartitionCore {
    pub fn new(
        partition: i64,
        rules: Rules,
        decoder: EventDecoder,
        channels: ChannelCache,
        topics: Vec<(String, String)>,
        cache_visitors: usize,
    ) -> Self {
        let streams: Vec<String> = topics.iter().map(|(s, _)| s.clone()).collect();
        PartitionCore {
            partition,
            clock: PartitionClock::new(rules.lateness_ms, &streams),
            intake: Intake::new(partition, decoder, topics.clone()),
            channels: std::cell::RefCell::new(channels),
            topics,
            resumed_at: HashMap::new(),
            next_offset: HashMap::new(),
            aggregates: PartitionAggregates::new(),
            durable_thresholds: Vec::new(),
            timers: TimerWheel::default(),
            visitors: VisitorCache::new(partition, cache_visitors),
            triggers_next_offset: None,
            recovered_version: None,
            marks: HashMap::new(),
            appended: HashMap::new(),
            rules,
        }
    }

    /// `bench/core_heap.py`: the live heap bytes each part of the partition holds, found
    /// by emptying the parts one after the other (the core is of no further use).
    #[cfg(feature = "heap-count")]
    pub fn heap_breakdown(&mut self) -> Vec<(&'static str, i64)> {
        fn freed(parts: &mut Vec<(&'static str, i64)>, name: &'static str, empty: impl FnOnce()) {
            let before = crate::heap_count::live_bytes();
            empty();
            parts.push((name, before - crate::heap_count::live_bytes()));
        }
        let mut parts = Vec::new();
        let visitors = &mut self.visitors;
        freed(&mut parts, "decoded visitors (cache)", || {
            visitors.entries = FxHashMap::default();
            visitors.order = VecDeque::new();
        });
        freed(&mut parts, "stored states' bytes", || {
            for stored in visitors.stored.values_mut() {
                *stored = Vec::new();
            }
        });
        freed(&mut parts, "stored states' keys and table", || {
            visitors.stored = FxHashMap::default();
        });
        let aggregates = &mut self.aggregates;
        freed(&mut parts, "live aggregate rows", || {
            *aggregates = PartitionAggregates::new();
        });
        let timers = &mut self.timers;
        freed(&mut parts, "timers", || *timers = TimerWheel::default());
        let marks = &mut self.marks;
        freed(&mut parts, "forget marks", || *marks = HashMap::new());
        parts
    }

    pub fn state_keys(&self) -> i64 {
        self.visitors.state_keys
    }

    pub fn state_bytes(&self) -> i64 {
        self.visitors.state_bytes
    }

    /// The encoded state of a visitor of this partition, if it has one.
    pub fn stored_state(&self, key: &[u8]) -> Option<&[u8]> {
        self.visitors.stored.get(key).map(Vec::as_slice)
    }

    /// Every visitor's encoded state, as (key, state): what the changelog holds last for
    /// each, in no order.
    pub fn stored_states(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.visitors
            .stored
            .iter()
            .map(|(key, state)| (key.as_slice(), state.as_slice()))
    }

    pub fn thresholds(&self) -> &[(String, i64)] {
        &self.aggregates.thresholds
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    fn ctx(&self, is_final: bool, version: i64) -> RowContext<'_> {
        RowContext {
            partition: self.partition,
            is_final: is_final as i64,
            version,
            funnels: &self.rules.funnels,
        }
    }

    fn rows_of<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k RowKey>,
        is_final: bool,
        version: i64,
        out: &mut TableRows,
    ) -> Result<(), CoreError> {
        let aggregates = &self.aggregates;
        let total = |key: KeyRef<'_>| aggregates.total(key);
        let rows = aggregate_rows(keys, &total, &self.ctx(is_final, version))
            .map_err(fail("aggregate rows"))?;
        merge_rows(out, rows);
        Ok(())
    }

    // -- recovery -------------------------------------------------------------------------

    /// `recover`: totals and timers from the stored states (which the core keeps from now
    /// on), every live row re-emitted, and the rows in `written_keys` the rebuilt state
    /// does not have written as zero.
    pub fn recover(
        &mut self,
        meta: Option<&[u8]>,
        stored: Vec<(Vec<u8>, Vec<u8>)>,
        written_keys: &[RowKey],
        clocks: &mut Clocks,
    ) -> Result<Output, CoreError> {
        if let Some(raw) = meta {
            let checkpoint = Checkpoint::decode(raw).map_err(fail("the checkpoint"))?;
            self.aggregates.thresholds = checkpoint.thresholds.clone();
            self.durable_thresholds = checkpoint.thresholds;
            for (stream, history) in checkpoint.history {
                if let Some(clock) = self.clock.clock_mut(&stream) {
                    clock.history = history;
                }
            }
            self.triggers_next_offset = checkpoint.triggers_next_offset;
        }
        for (key, raw) in stored {
            if key.starts_with(META_PREFIX) {
                continue;
            }
            let state = decode(&raw, key_text(&key)?)?;
            let thresholds = self.aggregates.thresholds.clone();
            let mut cached = evaluate(state, raw.len() as i64, &self.rules, &thresholds)?;
            self.visitors.state_keys += 1;
            self.visitors.state_bytes += raw.len() as i64;
            self.aggregates.apply(&cached.contributions);
            let retention = cached.retention(&thresholds, &self.rules)?;
            self.aggregates.apply(&retention);
            self.schedule(&key, &cached.state, None)?;
            if !cached.state.forgets.is_empty() {
                self.marks.insert(
                    cached.state.anonymous_id.clone(),
                    cached.state.forgets.clone(),
                );
            }
            self.visitors.stored.insert(key.clone(), raw);
            self.visitors.remember(key, cached);
        }
        self.aggregates.clear_dirty();
        let live = self.aggregates.live_rows();
        let live_set: FxHashSet<&RowKey> = live.iter().collect();
        let mut seen: FxHashSet<&RowKey> = FxHashSet::default();
        let stale: Vec<RowKey> = written_keys
            .iter()
            .filter(|k| !live_set.contains(k) && seen.insert(k))
            .cloned()
            .collect();
        let version = clocks.versions.next();
        self.recovered_version = Some(version);
        let mut out = Output::default();
        let mut rows = TableRows::new();
        let keys: Vec<RowKey> = live.iter().cloned().chain(stale).collect();
        self.rows_of(&keys, false, version, &mut rows)?;
        out.aggregate_rows = rows;
        Ok(out)
    }

    /// `meta_record`: the partition's checkpoint.
    pub fn meta_record(&self) -> Vec<u8> {
        Checkpoint {
            thresholds: self.aggregates.thresholds.clone(),
            history: self
                .clock
                .clocks
                .iter()
                .map(|(s, c)| (s.clone(), c.history.clone()))
                .collect(),
            triggers_next_offset: self.triggers_next_offset,
        }
        .encode()
    }

    // -- batches ----------------------------------------------------------------------------

    /// `process`: one fetched batch of one input topic-partition, in offset order.
    pub fn process(
        &mut self,
        stream: &str,
        records: &[Record],
        keep_history_from: Option<i64>,
        clocks: &mut Clocks,
    ) -> Result<Output, CoreError> {
        let mut out = Output::default();
        let (first, last) = match (records.first(), records.last()) {
            (Some(first), Some(last)) => (first.offset, last.clone()),
            _ => return Ok(out),
        };
        self.durable_thresholds = self.aggregates.thresholds.clone();
        if self.clock.clock(stream).is_none() {
            return Err(CoreError(format!(
                "{:?} is not an input of this core",
                stream
            )));
        }
        self.resume(stream, first);
        let watermark = self.watermark();
        let marked = !self.marks.is_empty();
        let pending = {
            let marks = &self.marks;
            let skip = |event: &crate::event::Event, appended_at: i64| {
                in_flight(marks, event, appended_at)
            };
            let skip_rejected = |record: &Record| rejected_in_flight(marks, record);
            let channels = &self.channels;
            let classify = |source: Option<&str>, medium: Option<&str>, referrer: Option<&str>| {
                channels
                    .borrow_mut()
                    .classify(source, medium, referrer)
                    .to_owned()
            };
            let tp_clock = match self.clock.clock_mut(stream) {
                Some(clock) => clock,
                None => return Err(CoreError(format!("no clock for {:?}", stream))),
            };
            self.intake
                .classify(
                    stream,
                    records,
                    tp_clock,
                    watermark,
                    &classify,
                    &mut out.intake,
                    if marked { Some(&skip) } else { None },
                    if marked { Some(&skip_rejected) } else { None },
                )
                .map_err(CoreError)?
        };
        if let Some(tp_clock) = self.clock.clock_mut(stream) {
            tp_clock.checkpoint(last.offset, keep_history_from);
        }
        self.next_offset.insert(stream.to_owned(), last.offset + 1);
        let appended = self.appended.entry(stream.to_owned()).or_insert(-1);
        if last.timestamp_ms > *appended {
            *appended = last.timestamp_ms;
        }
        self.finish(pending, &mut out, clocks)?;
        Ok(out)
    }

    /// `tick`: re-evaluate the watermark and fire due timers.
    pub fn tick(
        &mut self,
        caught_up: &[(String, i64)],
        idle: &[String],
        finished: bool,
        clocks: &mut Clocks,
    ) -> Result<Output, CoreError> {
        for (stream, end_offset) in caught_up {
            self.resume_caught_up(stream, *end_offset);
        }
        self.clock.caught_up = caught_up.iter().map(|(s, _)| s.clone()).collect();
        self.clock.idle = idle.iter().cloned().collect();
        self.clock.finished = self.clock.finished || finished;
        let mut out = Output::default();
        self.durable_thresholds = self.aggregates.thresholds.clone();
        self.finish(Vec::new(), &mut out, clocks)?;
        if !self.marks.is_empty() {
            self.expire_marks(&mut out)?;
        }
        Ok(out)
    }

    fn finish(
        &mut self,
        pending: Vec<Pending>,
        out: &mut Output,
        clocks: &mut Clocks,
    ) -> Result<(), CoreError> {
        let watermark = self.watermark();
        out.watermark = watermark;
        // The batch's events by visitor, in first-seen order. The events stay where they
        // are (an event is large: moving each into its visitor's list copied it).
        let mut by_visitor: Vec<(&[u8], Vec<&Pending>)> = Vec::new();
        let mut index: FxHashMap<&[u8], usize> = FxHashMap::default();
        for item in &pending {
            let key = item.event.anonymous_id.as_bytes();
            match index.get(key) {
                Some(&at) => by_visitor[at].1.push(item),
                None => {
                    index.insert(key, by_visitor.len());
                    by_visitor.push((key, vec![item]));
                }
            }
        }
        // Visitor updates do not move the thresholds (only `finalize` below does): one
        // copy for the batch, not one per visitor.
        let thresholds = self.aggregates.thresholds.clone();
        for (key, items) in &by_visitor {
            self.update_visitor(key, items, watermark, &thresholds, out, clocks)?;
        }
        if let Some(mark) = watermark {
            for key in self.timers.pop_due(mark) {
                if !index.contains_key(key.as_slice()) {
                    self.update_visitor(&key, &[], watermark, &thresholds, out, clocks)?;
                }
            }
        }
        // The final and the dirty rows are read where the aggregates keep them, by id
        // (a live row's key is in one slot only), not copied out.
        let final_ids = self
            .aggregates
            .finalize_ids(&self.rules, watermark)
            .map_err(fail("finalize"))?;
        let final_set: FxHashSet<u32> = final_ids.iter().copied().collect();
        let dirty_ids = self.aggregates.take_dirty_ids();
        let version = clocks.versions.next();
        let mut rows = std::mem::take(&mut out.aggregate_rows);
        let aggregates = &self.aggregates;
        let dirty = dirty_ids
            .iter()
            .filter(|id| !final_set.contains(*id))
            .filter_map(|id| aggregates.row_key(*id));
        self.rows_of(dirty, false, version, &mut rows)?;
        if !final_ids.is_empty() {
            let aggregates = &self.aggregates;
            let keys = final_ids.iter().filter_map(|id| aggregates.row_key(*id));
            self.rows_of(keys, true, version, &mut rows)?;
            self.aggregates.forget_ids(&final_ids);
            out.finalized = true;
        }
        out.aggregate_rows = rows;
        out.meta = true;
        Ok(())
    }

    fn update_visitor(
        &mut self,
        key: &[u8],
        items: &[&Pending],
        watermark: Option<i64>,
        thresholds: &[(String, i64)],
        out: &mut Output,
        clocks: &mut Clocks,
    ) -> Result<(), CoreError> {
        let mut cached = self.visitors.load(key, &self.rules, thresholds)?;
        let old_size = cached.size;
        // The cached contributions are not read again below: taken, not copied.
        let before = match &cached.computed_under {
            Some(under) if same_thresholds(under, thresholds) => {
                std::mem::take(&mut cached.contributions)
            }
            _ => live_only(&cached.contributions, thresholds),
        };
        let rules = &self.rules;
        let mut state = std::mem::replace(&mut cached.state, VisitorState::new(self.partition, ""));
        for item in items {
            let applied = apply_event(
                &mut state,
                &item.event,
                &item.dims,
                item.stream(),
                item.offset,
                rules,
            )
            .map_err(fail("apply_event"))?;
            match applied {
                Applied::Duplicate => add(&mut out.stats.duplicates, item.stream().to_owned(), 1),
                Applied::Replayed => out.stats.replayed += 1,
                _ => {}
            }
        }
        if let Some(mark) = watermark {
            close_expired(&mut state, mark, rules).map_err(fail("close_expired"))?;
            let anonymous_id = key_text(key)?;
            advance_lifecycle(
                anonymous_id,
                &mut state,
                mark,
                &rules.lifecycle,
                self.partition,
                clocks.wall_ms,
                &mut clocks.versions,
                &mut out.lifecycle,
            );
        }
        prune_final(
            &mut state,
            &self.durable_thresholds,
            Some(&rules.attribution),
        );
        if let Some(mark) = watermark {
            drop_forgotten_lives(&mut state, mark, &self.durable_thresholds, rules);
        }
        let after = contributions(&state, rules, thresholds).map_err(fail("contributions"))?;
        let mut delta = diff(&before, &after).map_err(fail("diff"))?;
        let inputs_now = RetentionInputs::of(&state);
        let signature = inputs_signature(&inputs_now);
        let mut retention_after: Option<Contributions> = None;
        // Equal signatures, equal contributions: the snapshot taken before stays.
        let mut inputs: Option<RetentionInputs> = None;
        if signature != cached.retention_signature {
            // Only now are the retention contributions before the batch needed.
            let retention_before = cached.take_retention(thresholds, rules)?;
            let computed = retention_of(&inputs_now, thresholds, rules)?;
            delta.extend(diff(&retention_before, &computed).map_err(fail("diff"))?);
            retention_after = Some(computed);
            inputs = Some(inputs_now);
        }
        if !delta.is_empty() {
            self.aggregates.apply(&delta);
            out.stats.count_changes(&delta);
        }
        out.stats.visitors_touched += 1;
        if let Some(mark) = watermark {
            if state.forgets.is_empty() && after.is_empty() && expired(&state, mark, rules) {
                let nothing_left = match &retention_after {
                    Some(cells) => cells.is_empty(),
                    None => cached.retention(thresholds, rules)?.is_empty(),
                };
                if nothing_left {
                    // Every life forgotten and nothing left to count: drop the visitor.
                    out.write(key, false);
                    self.visitors.dropped(key, old_size);
                    out.stats.expired += 1;
                    self.timers.set(key, None);
                    return Ok(());
                }
            }
        }
        let encoded = state::encode(&state);
        let size = encoded.len() as i64;
        out.write(key, true);
        self.visitors.written(key, old_size, encoded);
        self.schedule(key, &state, watermark)?;
        let computed_retention = retention_after.or(cached.computed_retention);
        self.visitors.remember(
            key.to_vec(),
            CachedVisitor {
                state,
                size,
                contributions: after,
                retention_inputs: inputs
                    .unwrap_or_else(|| std::mem::take(&mut cached.retention_inputs)),
                retention_signature: signature,
                computed_retention,
                computed_under: None,
            },
        );
        Ok(())
    }

    // -- forgetting a person (streams/forget.py, docs/forget.md) ------------------------------

    /// `_forget_state`: the visitor's state becomes `rebuilt` (its events without the
    /// forgotten ones, with the new mark: `forget.rebuilt_state`, computed by the caller
    /// from `stored_state`); the changed rows at `version`, and rows of the person's own
    /// keys now counting nothing dropped from the totals.
    pub fn forget_state(
        &mut self,
        key: &[u8],
        rebuilt: VisitorState,
        version: i64,
    ) -> Result<Output, CoreError> {
        let mut out = Output::default();
        let thresholds = self.aggregates.thresholds.clone();
        let mut cached = self.visitors.load(key, &self.rules, &thresholds)?;
        let rules = &self.rules;
        let after = contributions(&rebuilt, rules, &thresholds).map_err(fail("contributions"))?;
        let inputs = RetentionInputs::of(&rebuilt);
        let retention_after = retention_of(&inputs, &thresholds, rules)?;
        let mut delta =
            diff(&live_only(&cached.contributions, &thresholds), &after).map_err(fail("diff"))?;
        let retention_before = cached.retention(&thresholds, rules)?;
        delta.extend(diff(&retention_before, &retention_after).map_err(fail("diff"))?);
        self.aggregates.apply(&delta);
        out.stats.count_changes(&delta);
        let dirty = self.aggregates.take_dirty();
        let mut rows = TableRows::new();
        self.rows_of(&dirty, false, version, &mut rows)?;
        out.aggregate_rows = rows;
        let anonymous_id = rebuilt.anonymous_id.clone();
        let aggregates = &self.aggregates;
        let counts_nothing = |row: &RowKey| match KeyRef::of_row(row) {
            Some(key) => aggregates.total(key) == 0,
            None => match row {
                RowKey::Kpi(k) => {
                    (0..METRICS.len()).all(|m| aggregates.total(KeyRef::KpiCell(k, m)) == 0)
                }
                _ => true,
            },
        };
        // Rows of the visitor's own (per-visitor keys) now counting nothing are deleted
        // afterwards; keep them out of the totals so that no final row brings them back.
        let vanished: Vec<RowKey> = dirty
            .iter()
            .filter(|row| {
                let own = match row {
                    RowKey::FunnelAttempt(k) => k.anonymous_id == anonymous_id,
                    RowKey::OrderAttribution(k) => k.anonymous_id == anonymous_id,
                    _ => false,
                };
                own && counts_nothing(row)
            })
            .cloned()
            .collect();
        self.aggregates.forget(&vanished);
        let encoded = state::encode(&rebuilt);
        let size = encoded.len() as i64;
        out.write(key, true);
        self.visitors.written(key, cached.size, encoded);
        let watermark = self.watermark();
        self.schedule(key, &rebuilt, watermark)?;
        self.marks.insert(anonymous_id, rebuilt.forgets.clone());
        let signature = inputs_signature(&inputs);
        self.visitors.remember(
            key.to_vec(),
            CachedVisitor {
                state: rebuilt,
                size,
                contributions: after,
                retention_inputs: inputs,
                retention_signature: signature,
                computed_retention: Some(retention_after),
                computed_under: None,
            },
        );
        out.meta = true;
        Ok(out)
    }

    // -- forget marks ------------------------------------------------------------------------

    /// `_expire_marks`: drop the marks every input has moved past (or all, once the
    /// inputs finished).
    fn expire_marks(&mut self, out: &mut Output) -> Result<(), CoreError> {
        let passed: Option<i64> = if self.clock.finished {
            None
        } else {
            Some(
                self.topics
                    .iter()
                    .map(|(s, _)| self.appended.get(s).copied().unwrap_or(-1))
                    .min()
                    .unwrap_or(-1),
            )
        };
        let mut ids: Vec<String> = self.marks.keys().cloned().collect();
        ids.sort();
        for anonymous_id in ids {
            let marks = match self.marks.get(&anonymous_id) {
                Some(marks) => marks.clone(),
                None => continue,
            };
            let kept: Vec<ForgetMark> = marks
                .iter()
                .filter(|m| passed.map_or(false, |p| m.requested_at >= p))
                .cloned()
                .collect();
            if kept.len() == marks.len() {
                continue;
            }
            let key = anonymous_id.as_bytes().to_vec();
            let thresholds = self.aggregates.thresholds.clone();
            let mut cached = match out.written(&key) {
                Some(false) => {
                    self.marks.remove(&anonymous_id);
                    continue;
                }
                Some(true) => {
                    let raw = match self.visitors.stored.get(&key) {
                        Some(raw) => raw,
                        None => return Err(CoreError("a written state is not stored".into())),
                    };
                    let state = decode(raw, &anonymous_id)?;
                    evaluate(state, raw.len() as i64, &self.rules, &thresholds)?
                }
                None => self.visitors.load(&key, &self.rules, &thresholds)?,
            };
            cached.state.forgets = kept.clone();
            if kept.is_empty() {
                self.marks.remove(&anonymous_id);
            } else {
                self.marks.insert(anonymous_id.clone(), kept.clone());
            }
            if kept.is_empty() && holds_nothing(&cached.state) {
                out.write(&key, false); // the changelog's tombstone
                self.visitors.dropped(&key, cached.size);
                self.timers.set(&key, None);
                continue;
            }
            let encoded = state::encode(&cached.state);
            let size = encoded.len() as i64;
            out.write(&key, true);
            self.visitors.written(&key, cached.size, encoded);
            cached.size = size;
            self.visitors.remember(key, cached);
        }
        Ok(())
    }

    // -- timers, positions and the watermark -------------------------------------------------

    fn schedule(
        &mut self,
        key: &[u8],
        state: &VisitorState,
        watermark: Option<i64>,
    ) -> Result<(), CoreError> {
        let due = next_due(state, &self.rules, watermark.unwrap_or(0)).map_err(fail("next_due"))?;
        // A due time beyond i64 never comes: the latest representable one never fires either.
        let due = due.map(|d| d.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
        self.timers.set(key, due);
        Ok(())
    }

    /// The offset after the last record of `stream` processed here, if any.
    pub fn next_offset(&self, stream: &str) -> Option<i64> {
        self.next_offset.get(stream).copied()
    }

    pub fn watermark(&self) -> Option<i64> {
        if self
            .topics
            .iter()
            .any(|(s, _)| !self.resumed_at.contains_key(s))
        {
            return None; // an input not read yet may still hold older events
        }
        self.clock.watermark()
    }

    fn resume(&mut self, stream: &str, next_offset: i64) {
        let resumed_at = self.resumed_at.get(stream).copied();
        let expected = self.next_offset.get(stream).copied().or(resumed_at);
        if let Some(expected) = expected {
            if next_offset >= expected {
                return;
            }
        }
        if let Some(tp_clock) = self.clock.clock_mut(stream) {
            tp_clock.resume_at(next_offset);
            tp_clock.has_data = tp_clock.max_t.is_some();
        }
        self.resumed_at.insert(stream.to_owned(), next_offset);
        self.next_offset.insert(stream.to_owned(), next_offset);
    }

    fn resume_caught_up(&mut self, stream: &str, end_offset: i64) {
        if self.resumed_at.contains_key(stream) {
            return;
        }
        let reached = match self.clock.clock(stream) {
            Some(clock) => clock
                .history
                .last()
                .map_or(false, |(offset, _)| offset + 1 >= end_offset),
            None => return,
        };
        if end_offset == 0 || reached {
            self.resume(stream, end_offset);
        }
    }
}

/// `forget.holds_nothing`: no event left to count, only offsets and forget marks.
pub fn holds_nothing(state: &VisitorState) -> bool {
    state.sessions.is_empty()
        && state.closed.is_empty()
        && state.orders.is_empty()
        && state.user_events.is_empty()
        && state.days.is_empty()
        && state.purchases.is_empty()
        && state.cart.is_empty()
        && state.touches.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_state_holds_its_length_only() {
        let mut cache = VisitorCache::new(0, 0);
        let mut encoded = Vec::with_capacity(512);
        encoded.extend_from_slice(b"[1,0]");
        cache.written(b"v1", 0, encoded);
        let mut again = Vec::with_capacity(1024);
        again.extend_from_slice(b"[1,0,[]]");
        cache.written(b"v1", 5, again);
        let stored = &cache.stored[&b"v1"[..]];
        assert_eq!(stored.as_slice(), b"[1,0,[]]");
        assert_eq!(stored.capacity(), stored.len());
        assert_eq!(cache.stored.len(), 1);
        assert_eq!(cache.state_bytes, 8);
    }
}
