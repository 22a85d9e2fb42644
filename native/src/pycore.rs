//! `PartitionCore` as a Python class: raw records in, a batch's outcome out.
//!
//! A call returns `(outcome, state_writes, last_version)`: the outcome as Python values
//! (each table's rows as a `RowBlock`, pyrows.rs; triggers, dead letters, stats,
//! watermark; `streams/compiled/processor.py` turns it into a `BatchResult`), the state writes as `[(key, bytes or None)]`, and the last
//! row version used (the worker's partitions share one strictly increasing clock).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::channels::{ChannelCache, ChannelRules};
use crate::core::{Clocks, CoreError, Counts, Output, PartitionCore};
use crate::intake::{EventDecoder, Record};
use crate::json::{self, Json};
use crate::lifecycle_rows::VersionClock;
use crate::pyrows::{JsonRow, RowBlock};
use crate::records::Registry;
use crate::rows_aggregate::row_key_from;
use crate::rows_aggregate::Row;
use crate::rows_intake::{DEAD_LETTERS_TABLE, LATE_EVENTS_TABLE, RAW_EVENTS_TABLE};
use crate::rules::Rules;
use crate::validation::ValidationBounds;
use std::mem::take;

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

fn core_error(e: CoreError) -> PyErr {
    value_error(e.0)
}

fn parsed(raw: &[u8], what: &str) -> PyResult<Json> {
    json::parse(raw).map_err(|e| value_error(format!("{}: {}", what, e)))
}

type InputRecord<'py> = (i64, Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>, i64);
type Writes<'py> = Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)>;
type Answer<'py> = (PyObject, Writes<'py>, i64);

#[pyclass(module = "shopfunnel_core")]
pub struct PartitionCoreHandle {
    core: PartitionCore,
}

fn clocks(versions_last: i64, now_ns: Option<i64>, wall_ms: i64) -> Clocks {
    Clocks {
        versions: match now_ns {
            Some(now) => VersionClock::stopped_at(versions_last, now),
            None => VersionClock::with_last(versions_last),
        },
        wall_ms,
    }
}

#[pymethods]
impl PartitionCoreHandle {
    /// The core of `partition`: the rules (`Rules::from_json`), the schema registry, the
    /// validation bounds and the channel rules as JSON, the inputs as [(stream, topic)],
    /// and how many decoded visitors to keep.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        partition: i64,
        rules_json: &[u8],
        registry_json: &[u8],
        bounds_json: &[u8],
        channels_json: &[u8],
        topics: Vec<(String, String)>,
        cache_visitors: usize,
    ) -> PyResult<Self> {
        let rules = Rules::from_json(&parsed(rules_json, "rules")?)
            .map_err(|e| value_error(format!("rules: {}", e)))?;
        let registry = Registry::from_json(&parsed(registry_json, "registry")?)
            .map_err(|e| value_error(format!("registry: {}", e)))?;
        let bounds = ValidationBounds::from_json(&parsed(bounds_json, "bounds")?)
            .map_err(|e| value_error(format!("bounds: {}", e)))?;
        let channels = ChannelRules::from_json(&parsed(channels_json, "channels")?)
            .map_err(|e| value_error(format!("channels: {}", e)))?;
        Ok(PartitionCoreHandle {
            core: PartitionCore::new(
                partition,
                rules,
                EventDecoder { registry, bounds },
                ChannelCache::new(channels),
                topics,
                cache_visitors,
            ),
        })
    }

    /// `recover(written_keys)` over the stored states `stored` ([(key, bytes)]) and the
    /// checkpoint `meta`; `written_keys_json` is [[key type, *fields], ...].
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (meta, stored, written_keys_json, versions_last, now_ns, wall_ms))]
    fn recover<'py>(
        &mut self,
        py: Python<'py>,
        meta: Option<&[u8]>,
        stored: Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
        written_keys_json: &[u8],
        versions_last: i64,
        now_ns: Option<i64>,
        wall_ms: i64,
    ) -> PyResult<Answer<'py>> {
        let keys = parsed(written_keys_json, "written keys")?;
        let written = keys
            .list("the written keys")
            .and_then(|items| {
                items
                    .iter()
                    .map(|k| row_key_from(k.list("a row key")?))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| value_error(format!("written keys: {}", e)))?;
        let stored: Vec<(Vec<u8>, Vec<u8>)> = stored
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        let mut clocks = clocks(versions_last, now_ns, wall_ms);
        let core = &mut self.core;
        // Without the GIL, as `process` (a partition's whole state is rebuilt here).
        let out = py
            .allow_threads(|| core.recover(meta, stored, &written, &mut clocks))
            .map_err(core_error)?;
        answer(py, &self.core, out, &clocks)
    }

    /// `process(stream, records, keep_history_from)`; records are (offset, key, value,
    /// timestamp_ms) tuples.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (stream, records, keep_history_from, versions_last, now_ns, wall_ms))]
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        stream: &str,
        records: Vec<InputRecord<'py>>,
        keep_history_from: Option<i64>,
        versions_last: i64,
        now_ns: Option<i64>,
        wall_ms: i64,
    ) -> PyResult<Answer<'py>> {
        let records: Vec<Record> = records
            .iter()
            .map(|(offset, key, value, timestamp_ms)| Record {
                offset: *offset,
                key: key.as_ref().map(|k| k.as_bytes().to_vec()),
                value: value.as_bytes().to_vec(),
                timestamp_ms: *timestamp_ms,
            })
            .collect();
        let mut clocks = clocks(versions_last, now_ns, wall_ms);
        let core = &mut self.core;
        // Without the GIL: the consumer thread fetches and parses the next records and
        // the writer thread does its Python work while the core runs (a batch takes
        // tenths of a second; holding the GIL starved both, BENCHMARKS.md).
        let out = py
            .allow_threads(|| core.process(stream, &records, keep_history_from, &mut clocks))
            .map_err(core_error)?;
        answer(py, &self.core, out, &clocks)
    }

    /// `tick(caught_up, idle, finished)`; `caught_up` as [(stream, end offset)].
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (caught_up, idle, finished, versions_last, now_ns, wall_ms))]
    fn tick<'py>(
        &mut self,
        py: Python<'py>,
        caught_up: Vec<(String, i64)>,
        idle: Vec<String>,
        finished: bool,
        versions_last: i64,
        now_ns: Option<i64>,
        wall_ms: i64,
    ) -> PyResult<Answer<'py>> {
        let mut clocks = clocks(versions_last, now_ns, wall_ms);
        let core = &mut self.core;
        // Without the GIL, as `process` (timers fire and finalized windows' rows are made).
        let out = py
            .allow_threads(|| core.tick(&caught_up, &idle, finished, &mut clocks))
            .map_err(core_error)?;
        answer(py, &self.core, out, &clocks)
    }

    /// `_forget_state` with the rebuilt state (encoded) computed in Python.
    fn forget_state<'py>(
        &mut self,
        py: Python<'py>,
        key: &[u8],
        rebuilt: &[u8],
        version: i64,
    ) -> PyResult<Answer<'py>> {
        let anonymous_id = std::str::from_utf8(key)
            .map_err(|_| value_error("a visitor key that is not UTF-8".into()))?;
        let state = crate::state::decode(rebuilt, anonymous_id)
            .map_err(|e| value_error(format!("the rebuilt state: {:?}", e)))?;
        let out = self
            .core
            .forget_state(key, state, version)
            .map_err(core_error)?;
        answer(py, &self.core, out, &clocks(version, None, 0))
    }

    fn meta_record<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new_bound(py, &self.core.meta_record())
    }

    fn next_offset(&self, stream: &str) -> Option<i64> {
        self.core.next_offset(stream)
    }

    fn watermark(&self) -> Option<i64> {
        self.core.watermark()
    }

    fn thresholds(&self) -> Vec<(String, i64)> {
        self.core.thresholds().to_vec()
    }

    /// The visitor's encoded state, None if it has none.
    fn stored_state<'py>(&self, py: Python<'py>, key: &[u8]) -> Option<Bound<'py, PyBytes>> {
        self.core
            .stored_state(key)
            .map(|raw| PyBytes::new_bound(py, raw))
    }

    /// Every visitor's encoded state, as (key, state) pairs: the store's copy of them when
    /// the partition leaves the core (`streams/table_store.py`, owned partitions).
    fn stored_states<'py>(
        &self,
        py: Python<'py>,
    ) -> Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        self.core
            .stored_states()
            .map(|(key, state)| (PyBytes::new_bound(py, key), PyBytes::new_bound(py, state)))
            .collect()
    }

    /// `bench/core_heap.py` (the `heap-count` build only): live heap bytes per part; it
    /// empties the core.
    #[cfg(feature = "heap-count")]
    fn heap_breakdown(&mut self) -> Vec<(&'static str, i64)> {
        self.core.heap_breakdown()
    }

    #[getter]
    fn state_keys(&self) -> i64 {
        self.core.state_keys()
    }

    #[getter]
    fn state_bytes(&self) -> i64 {
        self.core.state_bytes()
    }

    #[getter]
    fn recovered_version(&self) -> Option<i64> {
        self.core.recovered_version
    }

    #[getter]
    #[pyo3(name = "triggers_next_offset")]
    fn get_triggers_next_offset(&self) -> Option<i64> {
        self.core.triggers_next_offset
    }

    #[setter]
    fn set_triggers_next_offset(&mut self, value: Option<i64>) {
        self.core.triggers_next_offset = value;
    }
}

// -- the outcome as JSON ------------------------------------------------------------------

fn counts_json<K>(counts: &Counts<K>, key: impl Fn(&K) -> Vec<Json>) -> Json {
    Json::List(
        counts
            .iter()
            .map(|(k, n)| {
                let mut entry = key(k);
                entry.push(Json::Int(*n));
                Json::List(entry)
            })
            .collect(),
    )
}

fn pair(k: &(String, String)) -> Vec<Json> {
    vec![Json::s(&k.0), Json::s(&k.1)]
}

fn one(k: &String) -> Vec<Json> {
    vec![Json::s(k)]
}

fn outcome_json(out: &Output) -> Json {
    let intake = &out.intake;
    let life = &out.lifecycle;
    let s = &out.stats;
    let is = &intake.stats;
    let transitions: Counts<(String, String)> = life
        .transitions
        .iter()
        .map(|((a, b), n)| ((a.to_string(), b.to_string()), *n))
        .collect();
    let stats = Json::Object(vec![
        ("ingested".into(), counts_json(&is.ingested, one)),
        ("dead_letters".into(), counts_json(&is.dead_letters, pair)),
        ("late".into(), counts_json(&is.late, pair)),
        ("duplicates".into(), counts_json(&s.duplicates, one)),
        ("replayed".into(), Json::Int(s.replayed)),
        (
            "step_entries".into(),
            counts_json(&s.step_entries.counts, |k| {
                vec![
                    Json::s(&k.0),
                    Json::Int(k.1),
                    Json::Int(k.2),
                    Json::s(&k.3),
                    Json::s(&k.4),
                ]
            }),
        ),
        ("orders".into(), counts_json(&s.orders, pair)),
        ("gmv_minor".into(), counts_json(&s.gmv_minor, pair)),
        ("visitors_touched".into(), Json::Int(s.visitors_touched)),
        ("transitions".into(), counts_json(&transitions, pair)),
        ("expired".into(), Json::Int(s.expired)),
        ("forgotten".into(), Json::Int(is.forgotten + s.forgotten)),
    ]);
    Json::Object(vec![
        (
            "triggers".into(),
            Json::List(life.triggers.iter().map(|t| t.to_json()).collect()),
        ),
        (
            "dead_letters".into(),
            Json::List(out.dead_letters().iter().map(|d| d.to_json()).collect()),
        ),
        ("stats".into(), stats),
        ("meta".into(), Json::Bool(out.meta)),
        ("finalized".into(), Json::Bool(out.finalized)),
        ("watermark".into(), Json::opt_i(out.watermark)),
    ])
}

/// A JSON value as the Python value orjson would load (rows, a table's rows' values, as
/// tuples: what the writer takes).
pub(crate) fn to_py(py: Python<'_>, value: &Json, depth: usize) -> PyObject {
    match value {
        Json::Null => py.None(),
        Json::Bool(b) => b.into_py(py),
        Json::Int(n) => n.into_py(py),
        Json::Str(s) => PyString::new_bound(py, s).into_any().unbind(),
        Json::List(items) => {
            let values = items.iter().map(|v| to_py(py, v, depth.saturating_sub(1)));
            if depth == 1 {
                PyTuple::new_bound(py, values).into_any().unbind()
            } else {
                PyList::new_bound(py, values).into_any().unbind()
            }
        }
        Json::Object(entries) => {
            let dict = PyDict::new_bound(py);
            for (k, v) in entries {
                // Setting a str key on a fresh dict cannot fail.
                let _ = dict.set_item(k, to_py(py, v, 0));
            }
            dict.into_any().unbind()
        }
    }
}

/// Each table's rows, in the order they were made, one block per table (the writer
/// inserts a block as one RowBinary payload, `row_binary.rs`). The rows move out of `out`.
fn row_blocks(out: &mut Output) -> Vec<RowBlock> {
    fn add<T: JsonRow + 'static>(blocks: &mut Vec<RowBlock>, name: &str, rows: Vec<T>) {
        if !rows.is_empty() {
            blocks.push(RowBlock::new(name.to_string(), rows));
        }
    }
    let intake = &mut out.intake;
    let life = &mut out.lifecycle;
    let mut blocks = Vec::new();
    add(&mut blocks, RAW_EVENTS_TABLE, take(&mut intake.raw_rows));
    add(&mut blocks, LATE_EVENTS_TABLE, take(&mut intake.late_rows));
    add(
        &mut blocks,
        DEAD_LETTERS_TABLE,
        take(&mut intake.dead_letter_rows),
    );
    add(
        &mut blocks,
        "segment_transitions",
        take(&mut life.transition_rows),
    );
    add(&mut blocks, "triggers", take(&mut life.trigger_rows));
    add(&mut blocks, "user_rfm", take(&mut life.rfm_rows));
    // A table can come twice (live rows, then final ones): merged into one block.
    let mut aggregates: Vec<(&'static str, Vec<Row>)> = Vec::new();
    for (name, rows) in take(&mut out.aggregate_rows) {
        match aggregates.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => existing.extend(rows),
            None => aggregates.push((name, rows)),
        }
    }
    for (name, rows) in aggregates {
        add(&mut blocks, name, rows);
    }
    blocks
}

/// The outcome as Python values: ``{"rows": [(table, RowBlock), ...], ...}``.
fn outcome_py(py: Python<'_>, out: &mut Output) -> PyResult<PyObject> {
    let blocks = row_blocks(out);
    let outcome = to_py(py, &outcome_json(out), 0);
    let rows = PyList::empty_bound(py);
    for block in blocks {
        let name = block.table().to_string();
        rows.append((name, Py::new(py, block)?))?;
    }
    outcome.bind(py).set_item("rows", rows)?;
    Ok(outcome)
}

fn answer<'py>(
    py: Python<'py>,
    core: &PartitionCore,
    mut out: Output,
    clocks: &Clocks,
) -> PyResult<Answer<'py>> {
    let outcome = outcome_py(py, &mut out)?;
    let writes = out
        .state_writes
        .iter()
        .map(|(key, written)| {
            let value = if *written {
                core.stored_state(key)
            } else {
                None
            };
            (
                PyBytes::new_bound(py, key),
                value.map(|v| PyBytes::new_bound(py, v)),
            )
        })
        .collect();
    Ok((outcome, writes, clocks.versions.last()))
}
