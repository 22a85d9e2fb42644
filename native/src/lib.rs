//! The compiled core (issue #16), built bottom-up against the Python core.
//!
//! What is here: the visitor state and its changelog codec (`state`), JSON exactly as
//! orjson writes it (`json`), and the ported per-event modules. Each ported function is
//! reachable from Python through `probe(name, args_json)`, which the differential tests
//! in tests/native/ call with the same inputs as the Python function and compare. The
//! core that owns a partition's states and takes raw record batches is built on these.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub mod aggregates;
pub mod attribution;
pub mod channels;
pub mod checkpoint;
pub mod contributions;
pub mod core;
pub mod deadletter;
pub mod event;
pub mod funnel_eval;
pub mod funnels;
pub mod fxhash;
pub mod hashindex;
#[cfg(feature = "heap-count")]
pub mod heap_count;
pub mod intake;
pub mod json;
pub mod json_reader;
pub mod kafka_batch;
pub mod keys;
pub mod lifecycle;
pub mod lifecycle_rows;
pub mod lives;
pub mod native_block;
pub mod pycore;
pub mod pyfetch;
pub mod pyrows;
pub mod records;
pub mod retention;
pub mod row_binary;
pub mod rows_aggregate;
pub mod rows_cells;
pub mod rows_intake;
pub mod rules;
pub mod state;
pub mod timers;
pub mod validation;
pub mod visitor_apply;
pub mod visitor_close;
pub mod watermarks;

use json::{Json, JsonResult};

// Rust's allocations in this module only (Python keeps its own allocator).
#[cfg(not(feature = "heap-count"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "heap-count")]
#[global_allocator]
static GLOBAL: heap_count::Counting = heap_count::Counting;

/// Every ported module answers the probes named after it.
type Probe = fn(&str, &Json) -> Option<JsonResult<Json>>;
const PROBES: &[Probe] = &[
    aggregates::probe,
    attribution::probe,
    channels::probe,
    checkpoint::probe,
    contributions::probe,
    funnel_eval::probe,
    intake::probe,
    lifecycle::probe,
    lifecycle_rows::probe,
    lives::probe,
    records::probe,
    retention::probe,
    rows_aggregate::probe,
    rules::probe,
    timers::probe,
    validation::probe,
    visitor_apply::probe,
    visitor_close::probe,
    watermarks::probe,
];

fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

/// Decode a stored visitor state and encode it again (the codec's differential test).
/// A state written by another format version raises ValueError("version N"); any other
/// unreadable state raises ValueError with what is wrong.
#[pyfunction]
fn reencode_state<'py>(
    py: Python<'py>,
    raw: &[u8],
    anonymous_id: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    match state::decode(raw, anonymous_id) {
        Ok(decoded) => Ok(PyBytes::new_bound(py, &state::encode(&decoded))),
        Err(state::DecodeError::Version(v)) => Err(value_error(format!("version {}", v))),
        Err(state::DecodeError::Unreadable(why)) => Err(value_error(why)),
    }
}

/// Run the ported function `name` on JSON arguments; its result as JSON.
#[pyfunction]
fn probe<'py>(py: Python<'py>, name: &str, args: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let args = json::parse(args).map_err(|e| value_error(format!("arguments: {}", e)))?;
    for module in PROBES {
        if let Some(result) = module(name, &args) {
            let value = result.map_err(|e| value_error(format!("{}: {}", name, e)))?;
            return Ok(PyBytes::new_bound(py, &json::to_bytes(&value)));
        }
    }
    Err(value_error(format!(
        "no ported function is named {:?}",
        name
    )))
}

/// The first stage of the core on a raw record batch: each record decoded (Avro or JSON,
/// `records.rs`) and validated (`validation.rs`) into an Event or a rejection, all in
/// Rust. It returns the counts only: bench/native_decode.py measures this stage with it
/// against `schemas.codec.EventCodec.decode` (the differential tests prove the results).
#[pyclass]
struct Decoder {
    registry: records::Registry,
    bounds: validation::ValidationBounds,
}

#[pymethods]
impl Decoder {
    #[new]
    fn new(registry_json: &[u8], bounds_json: &[u8]) -> PyResult<Self> {
        let registry = json::parse(registry_json)
            .map_err(|e| value_error(format!("registry: {}", e)))
            .and_then(|v| records::Registry::from_json(&v).map_err(value_error))?;
        let bounds = json::parse(bounds_json)
            .and_then(|v| validation::ValidationBounds::from_json(&v))
            .map_err(|e| value_error(format!("bounds: {}", e)))?;
        Ok(Decoder { registry, bounds })
    }

    /// (events, rejections) of `values`, each decoded at its `now_ms`.
    fn decode_count(
        &self,
        stream: &str,
        values: Vec<Bound<'_, PyBytes>>,
        now_ms: Vec<i64>,
    ) -> PyResult<(usize, usize)> {
        let kind = event::Stream::parse(stream)
            .ok_or_else(|| value_error(format!("unknown stream {:?}", stream)))?;
        let (mut events, mut rejections) = (0, 0);
        for (raw, now) in values.iter().zip(now_ms.iter()) {
            let read = self
                .registry
                .read_record(raw.as_bytes(), stream, self.bounds.max_payload_bytes)
                .map_err(value_error)?;
            match read {
                records::RecordRead::Rejected(_) => rejections += 1,
                records::RecordRead::Record(record) => {
                    match validation::build_event(record, kind, *now, &self.bounds) {
                        Ok(Ok(_)) => events += 1,
                        Ok(Err(_)) => rejections += 1,
                        Err(e) => return Err(value_error(format!("a record: {}", e))),
                    }
                }
            }
        }
        Ok((events, rejections))
    }
}

#[pymodule]
fn shopfunnel_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Decoder>()?;
    m.add_class::<pycore::PartitionCoreHandle>()?;
    m.add_class::<pyrows::RowBlock>()?;
    m.add_class::<pyrows::NativePayload>()?;
    m.add_class::<pyfetch::FetchedRecords>()?;
    m.add_function(wrap_pyfunction!(pyfetch::read_fetched_records, m)?)?;
    m.add_function(wrap_pyfunction!(pyrows::row_binary, m)?)?;
    m.add_function(wrap_pyfunction!(pyrows::native_block, m)?)?;
    m.add("FORMAT_VERSION", state::FORMAT_VERSION)?;
    m.add_function(wrap_pyfunction!(reencode_state, m)?)?;
    m.add_function(wrap_pyfunction!(probe, m)?)?;
    #[cfg(feature = "heap-count")]
    m.add_function(wrap_pyfunction!(heap_count::heap_live_bytes, m)?)?;
    #[cfg(feature = "heap-count")]
    m.add_function(wrap_pyfunction!(heap_count::heap_peak_bytes, m)?)?;
    Ok(())
}
