//! `RowBlock`: one table's rows from a core call, kept in Rust (as the typed rows the core
//! made) until the writer inserts them as one Native block (`native_block`; `row_binary`
//! gives the same rows as RowBinary), encoded without the GIL in the writer's thread, so
//! no row becomes Python objects on the way to ClickHouse. Slices share the rows (the
//! writer halves a block to find a row ClickHouse refuses); `row`/`rows` give Python
//! tuples for the rare readers (a rejected row's dead letter, the differential tests, a
//! forget's corrections).

use std::os::raw::{c_int, c_void};
use std::sync::Arc;

use pyo3::exceptions::{PyBufferError, PyIndexError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::json::Json;
use crate::lifecycle_rows::{RfmRow, SegmentTransitionRow, TriggerRow};
use crate::native_block::{without_low_cardinality, BlockWriter, Payload};
use crate::pycore::to_py;
use crate::row_binary::{write_cells, write_row, Cell, ColumnType, RowCells};
use crate::rows_aggregate::Row;
use crate::rows_intake::{DeadLetterRow, LateEventRow, RawEventRow};

/// A row of one of the core's tables: its values as JSON, made when they are needed
/// (the block keeps the typed rows, which are smaller than their JSON).
pub trait JsonRow: Send + Sync {
    fn json(&self) -> Json;

    /// Append the row in RowBinary (through its JSON unless the row has its cells).
    fn write(&self, out: &mut Vec<u8>, columns: &[(String, ColumnType)]) -> Result<(), String> {
        write_row(out, columns, &self.json())
    }

    /// Add the row to a Native block (through its JSON unless the row has its cells).
    fn push_to(&self, block: &mut BlockWriter<'_>) -> Result<(), String> {
        push_json(block, &self.json())
    }
}

fn push_json(block: &mut BlockWriter<'_>, row: &Json) -> Result<(), String> {
    match row {
        Json::List(values) => {
            let cells: Vec<Cell<'_>> = values.iter().map(Cell::Json).collect();
            block.push(&cells)
        }
        other => Err(format!("a row is {}, not a list", other.kind())),
    }
}

macro_rules! json_rows {
    ($($row:ty),*) => {
        $(impl JsonRow for $row {
            fn json(&self) -> Json {
                self.to_json()
            }
        })*
    };
}

/// `events_raw` (one row per event, the most rows by far) is encoded from its fields.
impl JsonRow for RawEventRow {
    fn json(&self) -> Json {
        self.to_json()
    }

    fn write(&self, out: &mut Vec<u8>, columns: &[(String, ColumnType)]) -> Result<(), String> {
        write_cells(out, columns, &self.cells())
    }

    fn push_to(&self, block: &mut BlockWriter<'_>) -> Result<(), String> {
        block.push(&self.cells())
    }
}

json_rows!(
    LateEventRow,
    DeadLetterRow,
    SegmentTransitionRow,
    TriggerRow,
    RfmRow
);

/// The aggregate rows (most rows after `events_raw`) are encoded from their cells where
/// they have them (`rows_cells.rs`).
impl JsonRow for Row {
    fn json(&self) -> Json {
        self.to_json()
    }

    fn write(&self, out: &mut Vec<u8>, columns: &[(String, ColumnType)]) -> Result<(), String> {
        match self.cells() {
            Some(cells) => write_cells(out, columns, &cells),
            None => write_row(out, columns, &self.json()),
        }
    }

    fn push_to(&self, block: &mut BlockWriter<'_>) -> Result<(), String> {
        match self.cells() {
            Some(cells) => block.push(&cells),
            None => push_json(block, &self.json()),
        }
    }
}

impl JsonRow for Json {
    fn json(&self) -> Json {
        self.clone()
    }
}

/// A table's rows, whatever their type.
trait RowSource: Send + Sync {
    fn json_at(&self, index: usize) -> Json;

    fn write_at(
        &self,
        index: usize,
        out: &mut Vec<u8>,
        columns: &[(String, ColumnType)],
    ) -> Result<(), String>;

    fn push_at(&self, index: usize, block: &mut BlockWriter<'_>) -> Result<(), String>;
}

impl<T: JsonRow> RowSource for Vec<T> {
    fn json_at(&self, index: usize) -> Json {
        self[index].json()
    }

    fn write_at(
        &self,
        index: usize,
        out: &mut Vec<u8>,
        columns: &[(String, ColumnType)],
    ) -> Result<(), String> {
        self[index].write(out, columns)
    }

    fn push_at(&self, index: usize, block: &mut BlockWriter<'_>) -> Result<(), String> {
        self[index].push_to(block)
    }
}

#[pyclass(module = "shopfunnel_core", frozen)]
pub struct RowBlock {
    table: String,
    rows: Arc<dyn RowSource>,
    start: usize,
    end: usize,
}

impl RowBlock {
    pub fn new<T: JsonRow + 'static>(table: String, rows: Vec<T>) -> RowBlock {
        let end = rows.len();
        RowBlock {
            table,
            rows: Arc::new(rows),
            start: 0,
            end,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

#[pymethods]
impl RowBlock {
    /// A block from rows as JSON (`[[value, ...], ...]`): tests make blocks with values
    /// the core would not.
    #[new]
    fn py_new(table: String, rows_json: &[u8]) -> PyResult<RowBlock> {
        match crate::json::parse(rows_json) {
            Ok(Json::List(rows)) => Ok(RowBlock::new(table, rows)),
            Ok(_) => Err(PyValueError::new_err("rows_json: not a list of rows")),
            Err(e) => Err(PyValueError::new_err(format!("rows_json: {}", e))),
        }
    }

    #[getter(table)]
    fn py_table(&self) -> &str {
        &self.table
    }

    fn __len__(&self) -> usize {
        self.end - self.start
    }

    /// Rows `start` to `stop` (clamped to the block), sharing this block's rows.
    fn slice(&self, start: usize, stop: usize) -> RowBlock {
        let len = self.end - self.start;
        let stop = stop.min(len);
        let start = start.min(stop);
        RowBlock {
            table: self.table.clone(),
            rows: Arc::clone(&self.rows),
            start: self.start + start,
            end: self.start + stop,
        }
    }

    /// Row `index` as a tuple of the JSON values (times as integers, dates as ISO text,
    /// floats as Python's repr; streams/compiled/rows.py makes them the Python row).
    fn row(&self, py: Python<'_>, index: usize) -> PyResult<PyObject> {
        if index >= self.__len__() {
            return Err(PyIndexError::new_err(format!(
                "row {} of {}",
                index,
                self.__len__()
            )));
        }
        Ok(to_py(py, &self.rows.json_at(self.start + index), 1))
    }

    fn rows<'py>(&self, py: Python<'py>) -> Bound<'py, PyList> {
        PyList::new_bound(
            py,
            (self.start..self.end).map(|i| to_py(py, &self.rows.json_at(i), 1)),
        )
    }
}

/// The rows of some blocks: (table, rows, start, end), shared with the blocks.
type Parts = Vec<(String, Arc<dyn RowSource>, usize, usize)>;

fn parts_of(blocks: &[PyRef<'_, RowBlock>]) -> Parts {
    blocks
        .iter()
        .map(|b| (b.table.clone(), Arc::clone(&b.rows), b.start, b.end))
        .collect()
}

/// Each row of `parts` in order through `add`, the error naming the block's row.
fn each_row(
    parts: &Parts,
    mut add: impl FnMut(&dyn RowSource, usize) -> Result<(), String>,
) -> Result<(), String> {
    for (table, rows, start, end) in parts {
        for i in *start..*end {
            add(rows.as_ref(), i).map_err(|e| format!("{} row {}: {}", table, i - start, e))?;
        }
    }
    Ok(())
}

/// The encoded rows as Python bytes, or the encoding error as ValueError.
fn into_bytes(py: Python<'_>, payload: Result<Vec<u8>, String>) -> PyResult<Bound<'_, PyBytes>> {
    payload
        .map(|bytes| PyBytes::new_bound(py, &bytes))
        .map_err(PyValueError::new_err)
}

/// The rows of `blocks`, in order, as one RowBinary payload for `columns` ([(name, type as
/// ClickHouse names it)], the table's insert columns in the rows' order). A value that
/// does not fit raises ValueError naming the block's row and the column.
#[pyfunction]
pub fn row_binary<'py>(
    py: Python<'py>,
    blocks: Vec<PyRef<'py, RowBlock>>,
    columns: Vec<(String, String)>,
) -> PyResult<Bound<'py, PyBytes>> {
    let columns = columns
        .into_iter()
        .map(|(name, text)| ColumnType::parse(&text).map(|t| (name, t)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(PyValueError::new_err)?;
    let parts = parts_of(&blocks);
    // Encoding needs no Python object: other threads (the event loop) run meanwhile.
    let payload = py.allow_threads(move || {
        let mut out = Vec::new();
        each_row(&parts, |rows, i| rows.write_at(i, &mut out, &columns))?;
        Ok(out)
    });
    into_bytes(py, payload)
}

/// A Native block's bytes, read through the buffer protocol (`memoryview(payload)`,
/// which file writes and HTTP bodies take as they take bytes). Its buffer is the table's
/// kept one (native_block.rs `Payload`): handing Python a copy as `bytes` faulted in a
/// fresh buffer of the block's size every insert. The bytes never change while any
/// view of them exists: the buffer is only given back when this object is freed, and a
/// view holds a reference to it.
#[pyclass(frozen, module = "shopfunnel_core")]
pub struct NativePayload {
    payload: Payload,
}

#[pymethods]
impl NativePayload {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no view to fill"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("a Native payload is read-only"));
        }
        let bytes: &[u8] = &slf.get().payload;
        // Fills a read-only, contiguous byte view and takes a reference to `slf` in it.
        let filled = ffi::PyBuffer_FillInfo(
            view,
            slf.as_ptr(),
            bytes.as_ptr() as *mut c_void,
            bytes.len() as ffi::Py_ssize_t,
            1,
            flags,
        );
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.payload.len()
    }
}

/// The rows of `blocks`, in order, as one block of ClickHouse's Native format for
/// `columns` (as `row_binary`), read as `memoryview(payload)`; an empty payload for no
/// rows. `LowCardinality` columns are stated as their inner type (ClickHouse converts
/// them on insert). A value that does not fit raises ValueError naming the block's row
/// and the column.
#[pyfunction]
pub fn native_block<'py>(
    py: Python<'py>,
    blocks: Vec<PyRef<'py, RowBlock>>,
    columns: Vec<(String, String)>,
) -> PyResult<NativePayload> {
    let columns = columns
        .into_iter()
        .map(|(name, text)| {
            let stated = without_low_cardinality(&text);
            ColumnType::parse(&text).map(|t| (name, t, stated))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(PyValueError::new_err)?;
    let parts = parts_of(&blocks);
    // As row_binary: no Python object is needed, so the event loop runs meanwhile.
    let payload = py.allow_threads(move || {
        let rows = parts.iter().map(|(_, _, start, end)| end - start).sum();
        let mut block = BlockWriter::new(&columns, rows);
        each_row(&parts, |rows, i| rows.push_at(i, &mut block))?;
        Ok::<_, String>(block.finish())
    });
    payload
        .map(|payload| NativePayload { payload })
        .map_err(PyValueError::new_err)
}
