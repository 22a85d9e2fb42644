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

pub mod attribution;
pub mod checkpoint;
pub mod event;
pub mod funnel_eval;
pub mod funnels;
pub mod json;
pub mod lifecycle;
pub mod lives;
pub mod records;
pub mod retention;
pub mod rules;
pub mod state;
pub mod timers;
pub mod validation;
pub mod watermarks;

use json::{Json, JsonResult};

/// Every ported module answers the probes named after it.
type Probe = fn(&str, &Json) -> Option<JsonResult<Json>>;
const PROBES: &[Probe] = &[
    attribution::probe,
    checkpoint::probe,
    funnel_eval::probe,
    lifecycle::probe,
    lives::probe,
    records::probe,
    retention::probe,
    rules::probe,
    timers::probe,
    validation::probe,
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

#[pymodule]
fn shopfunnel_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FORMAT_VERSION", state::FORMAT_VERSION)?;
    m.add_function(wrap_pyfunction!(reencode_state, m)?)?;
    m.add_function(wrap_pyfunction!(probe, m)?)?;
    Ok(())
}
