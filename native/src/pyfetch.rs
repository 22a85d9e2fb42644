//! A fetch's records as the batch transport's `Record` tuples (`kafka_batch.rs` reads
//! them), behind the iterator aiokafka's `FetchResult` drains.

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};

use crate::kafka_batch::{read_fetch, FetchError, RecordView};

/// The records of one fetched partition, drained as aiokafka's `PartitionRecords` is:
/// `next_fetch_offset` follows the records given out, and reaches the end of the last
/// complete batch when the iterator is exhausted. A failure (a bad checksum, a corrupt
/// batch, a codec's error) is raised after the records before it, as aiokafka does.
#[pyclass(module = "shopfunnel_core")]
pub struct FetchedRecords {
    records: Vec<(i64, PyObject)>,
    next: usize,
    end_offset: i64,
    failure: Option<PyErr>,
    #[pyo3(get)]
    next_fetch_offset: i64,
}

#[pymethods]
impl FetchedRecords {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(mut slf: PyRefMut<'_, Self>, py: Python<'_>) -> PyResult<PyObject> {
        if slf.next < slf.records.len() {
            let i = slf.next;
            slf.next += 1;
            let (offset, record) = &slf.records[i];
            let (offset, record) = (*offset, record.clone_ref(py));
            slf.next_fetch_offset = offset + 1;
            return Ok(record);
        }
        if let Some(failure) = slf.failure.take() {
            slf.records.clear();
            return Err(failure);
        }
        slf.records.clear();
        slf.next_fetch_offset = slf.end_offset;
        Err(PyStopIteration::new_err(()))
    }
}

/// One `record_type(offset, key, value, timestamp_ms)`: a tuple subclass of four fields
/// (a NamedTuple), built in place as `tuple.__new__` would build it.
fn new_record(
    py: Python<'_>,
    record_type: &Bound<'_, PyType>,
    record: &RecordView<'_>,
) -> PyResult<PyObject> {
    let fields = [
        record.offset.into_py(py),
        match record.key {
            Some(key) => PyBytes::new_bound(py, key).into_any().unbind(),
            None => py.None(),
        },
        PyBytes::new_bound(py, record.value.unwrap_or(b""))
            .into_any()
            .unbind(),
        record.timestamp_ms.into_py(py),
    ];
    // Safety: record_type was checked to be a subclass of tuple without instance
    // attributes of its own (a NamedTuple's __slots__ = ()), so its tp_alloc makes a
    // tuple of 4 empty slots; each slot takes over one owned reference.
    unsafe {
        let ty = record_type.as_type_ptr();
        let alloc = (*ty).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
        let tuple = alloc(ty, 4);
        if tuple.is_null() {
            return Err(PyErr::fetch(py));
        }
        for (i, field) in fields.into_iter().enumerate() {
            pyo3::ffi::PyTuple_SET_ITEM(tuple, i as pyo3::ffi::Py_ssize_t, field.into_ptr());
        }
        Ok(PyObject::from_owned_ptr(py, tuple))
    }
}

fn check_record_type(record_type: &Bound<'_, PyType>) -> PyResult<()> {
    let py = record_type.py();
    let fields = record_type.getattr("_fields").ok();
    let four = match fields {
        Some(f) => f.len().map(|n| n == 4).unwrap_or(false),
        None => false,
    };
    let basic = unsafe { (*record_type.as_type_ptr()).tp_basicsize };
    let tuple_basic = unsafe { (*py.get_type_bound::<PyTuple>().as_type_ptr()).tp_basicsize };
    if !record_type.is_subclass_of::<PyTuple>()? || !four || basic != tuple_basic {
        return Err(PyTypeError::new_err(format!(
            "record_type must be a NamedTuple of (offset, key, value, timestamp_ms), not {}",
            record_type.name()?
        )));
    }
    Ok(())
}

/// Read a fetched partition's bytes into `record_type` tuples from `fetch_offset`.
///
/// `inflate(codec, section) -> bytes` decompresses a batch's records section; `corrupt`
/// is the exception class raised for a bad checksum or a corrupt batch, with `label`
/// (the topic-partition) in its message. Returns None for message format v0/v1, which
/// the caller reads its old way.
#[pyfunction]
#[pyo3(signature = (data, fetch_offset, check_crcs, record_type, inflate, corrupt, label))]
#[allow(clippy::too_many_arguments)]
pub fn read_fetched_records(
    py: Python<'_>,
    data: &Bound<'_, PyBytes>,
    fetch_offset: i64,
    check_crcs: bool,
    record_type: &Bound<'_, PyType>,
    inflate: &Bound<'_, PyAny>,
    corrupt: &Bound<'_, PyType>,
    label: &str,
) -> PyResult<Option<FetchedRecords>> {
    check_record_type(record_type)?;
    let mut records: Vec<(i64, PyObject)> = Vec::new();
    let result = read_fetch(
        data.as_bytes(),
        fetch_offset,
        check_crcs,
        &mut |codec, section: &[u8]| -> PyResult<Vec<u8>> {
            let inflated = inflate.call1((codec, PyBytes::new_bound(py, section)))?;
            let bytes = inflated.downcast::<PyBytes>().map_err(PyErr::from)?;
            Ok(bytes.as_bytes().to_vec())
        },
        &mut |record| {
            records.push((record.offset, new_record(py, record_type, &record)?));
            Ok(())
        },
    );
    let (end_offset, failure) = match result {
        Ok(end) => (end, None),
        Err(FetchError::OldFormat(_)) => return Ok(None),
        Err(FetchError::BadCrc { base_offset }) => (
            fetch_offset,
            Some(PyErr::from_value_bound(corrupt.call1((format!(
                "Invalid CRC - {} (record batch at {})",
                label, base_offset
            ),))?)),
        ),
        Err(FetchError::Corrupt(why)) => (
            fetch_offset,
            Some(PyErr::from_value_bound(
                corrupt.call1((format!("{}: {}", label, why),))?,
            )),
        ),
        Err(FetchError::Callback(err)) => (fetch_offset, Some(err)),
    };
    Ok(Some(FetchedRecords {
        records,
        next: 0,
        end_offset,
        failure,
        next_fetch_offset: fetch_offset,
    }))
}
