//! Rows as one block of ClickHouse's `Native` format: each column's values together.
//!
//! The writer inserts the compiled core's rows in this format (sinks/clickhouse.py).
//! ClickHouse reads a Native column with one bulk read instead of one call per value, and
//! for `events_raw` the embedded engine spent about half the CPU on a Native insert that
//! it spends on the same rows as RowBinary (BENCHMARKS.md). The values and their checks
//! are `row_binary`'s: a scalar is written exactly as RowBinary writes it, and only
//! `Nullable`, `Array` and `Map` are laid out differently (null map, offsets, then the
//! values of every row).
//!
//! A `LowCardinality` column is sent as its inner type and ClickHouse converts it on
//! insert (`input_format_native_allow_types_conversion`, on by default): measured, that
//! costs the engine about what decoding its dictionaries would, and it keeps this encoder
//! to plain values.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Mutex;

use crate::json::Json;
use crate::row_binary::{write_value, Cell, ColumnType};

/// A table's buffers kept from its last block for its next one. The writer encodes each
/// table's rows every insert; fresh buffers of that size are pages the kernel zeroes
/// (about 4% of the worker's CPU in a saturation pass's profile, faulting the columns,
/// the payload and a copy of it), and a kept buffer is faulted once. What is kept is at
/// most one block's columns and payload per table (the column types are the key), and
/// nothing of a block above `SPARE_BYTES_MAX`.
struct Spare {
    columns: Vec<Column>,
    payload: Vec<u8>,
}

static SPARES: Mutex<Option<HashMap<String, Spare>>> = Mutex::new(None);

/// A block above this (the writer's bulk insert after an outage) is not kept.
const SPARE_BYTES_MAX: usize = 256 << 20;
/// More column sets than this (the tests' many tables) are not kept.
const SPARE_TABLES_MAX: usize = 32;

fn with_spares<T>(f: impl FnOnce(&mut HashMap<String, Spare>) -> T) -> T {
    // A panic while the lock was held left nothing half-changed that matters: reuse it.
    let mut guard = SPARES.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

fn spare_columns(key: &str) -> Option<Vec<Column>> {
    with_spares(|spares| {
        spares
            .get_mut(key)
            .map(|s| std::mem::take(&mut s.columns))
            .filter(|c| !c.is_empty())
    })
}

fn keep(key: &str, put: impl FnOnce(&mut Spare)) {
    with_spares(|spares| {
        if !spares.contains_key(key) && spares.len() >= SPARE_TABLES_MAX {
            return;
        }
        let spare = spares.entry(key.to_string()).or_insert_with(|| Spare {
            columns: Vec::new(),
            payload: Vec::new(),
        });
        put(spare);
    })
}

fn keep_columns(key: &str, mut columns: Vec<Column>) {
    if columns.is_empty() || columns.iter().map(Column::capacity).sum::<usize>() > SPARE_BYTES_MAX {
        return;
    }
    for column in &mut columns {
        column.clear();
    }
    keep(key, |spare| {
        if spare.columns.is_empty() {
            spare.columns = columns;
        }
    });
}

/// A buffer with room for `size` bytes: the table's kept payload if it has the room.
fn payload_buffer(key: &str, size: usize) -> Vec<u8> {
    let kept = with_spares(|spares| spares.get_mut(key).map(|s| std::mem::take(&mut s.payload)));
    match kept {
        Some(mut buffer) if buffer.capacity() >= size => {
            buffer.clear();
            buffer
        }
        // Too small: a new one, not a grown one (growing would copy nothing useful).
        _ => Vec::with_capacity(size),
    }
}

/// A finished block's bytes; its buffer goes back to its table's spare when dropped.
pub struct Payload {
    bytes: Vec<u8>,
    key: String,
}

impl Payload {
    fn empty() -> Payload {
        Payload {
            bytes: Vec::new(),
            key: String::new(),
        }
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.bytes);
        if self.key.is_empty() || bytes.capacity() == 0 || bytes.capacity() > SPARE_BYTES_MAX {
            return;
        }
        keep(&self.key, |spare| {
            if spare.payload.capacity() < bytes.capacity() {
                spare.payload = bytes;
            }
        });
    }
}

/// One column's bytes as the Native format lays them out, filled row by row.
enum Column {
    /// Fixed-width values or strings: as RowBinary writes them, one after the other.
    Plain(Vec<u8>),
    /// The null map (one byte per row), then every row's value (a default for a null).
    Nullable(Vec<u8>, Box<Column>),
    /// Each row's end offset into the items (UInt64), then every row's items.
    Array(Vec<u8>, u64, Box<Column>),
    /// `Array(Tuple(K, V))`: the offsets, then every key, then every value.
    Map(Vec<u8>, u64, Box<Column>, Box<Column>),
}

impl Column {
    fn new(kind: &ColumnType) -> Column {
        match kind {
            ColumnType::Nullable(t) => Column::Nullable(Vec::new(), Box::new(Column::new(t))),
            ColumnType::Array(t) => Column::Array(Vec::new(), 0, Box::new(Column::new(t))),
            ColumnType::Map(k, v) => Column::Map(
                Vec::new(),
                0,
                Box::new(Column::new(k)),
                Box::new(Column::new(v)),
            ),
            _ => Column::Plain(Vec::new()),
        }
    }

    fn push(&mut self, kind: &ColumnType, value: Cell<'_>) -> Result<(), String> {
        let wrong = |what: &str| Err(format!("expected {}, got {}", what, value.kind()));
        match (self, kind) {
            (Column::Nullable(nulls, values), ColumnType::Nullable(t)) => {
                if value.is_null() {
                    nulls.push(1);
                    values.push_default(t)
                } else {
                    nulls.push(0);
                    values.push(t, value)
                }
            }
            (Column::Array(offsets, end, items), ColumnType::Array(t)) => {
                let n = match value {
                    Cell::Json(Json::List(list)) => {
                        for item in list {
                            items.push(t, Cell::Json(item))?;
                        }
                        list.len()
                    }
                    Cell::Strs(list) => {
                        for item in list {
                            items.push(t, Cell::Str(item))?;
                        }
                        list.len()
                    }
                    Cell::Ints(list) => {
                        for item in list {
                            items.push(t, Cell::Int(*item))?;
                        }
                        list.len()
                    }
                    Cell::ItemStrs(list, text) => {
                        for item in list {
                            items.push(t, Cell::Str(text(item)))?;
                        }
                        list.len()
                    }
                    Cell::ItemInts(list, number) => {
                        for item in list {
                            items.push(t, Cell::Int(number(item)))?;
                        }
                        list.len()
                    }
                    _ => return wrong("a list"),
                };
                *end += n as u64;
                offsets.extend_from_slice(&end.to_le_bytes());
                Ok(())
            }
            (Column::Map(offsets, end, keys, values), ColumnType::Map(k, v)) => {
                let n = match value {
                    Cell::Json(Json::Object(entries)) => {
                        for (key, item) in entries {
                            keys.push(k, Cell::Str(key))?;
                            values.push(v, Cell::Json(item))?;
                        }
                        entries.len()
                    }
                    Cell::Pairs(entries) => {
                        for (key, item) in entries {
                            keys.push(k, Cell::Str(key))?;
                            values.push(v, Cell::Str(item))?;
                        }
                        entries.len()
                    }
                    _ => return wrong("an object"),
                };
                *end += n as u64;
                offsets.extend_from_slice(&end.to_le_bytes());
                Ok(())
            }
            (Column::Plain(out), scalar) => write_value(out, scalar, value),
            _ => Err("the column's layout does not match its type".into()),
        }
    }

    /// The value a null row holds in a `Nullable` column's values (ClickHouse's default).
    fn push_default(&mut self, kind: &ColumnType) -> Result<(), String> {
        let out = match self {
            Column::Plain(out) => out,
            _ => return Err("Nullable of a composite type is not supported".into()),
        };
        let width = match kind {
            ColumnType::String => 1, // an empty string: its length, 0
            ColumnType::Integer(width, _) => usize::from(*width),
            ColumnType::Float64 | ColumnType::DateTime64Millis => 8,
            ColumnType::Date => 2,
            ColumnType::DateTime => 4,
            _ => return Err("Nullable of a composite type is not supported".into()),
        };
        out.resize(out.len() + width, 0);
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Column::Plain(bytes) => out.extend_from_slice(bytes),
            Column::Nullable(nulls, values) => {
                out.extend_from_slice(nulls);
                values.write(out);
            }
            Column::Array(offsets, _, items) => {
                out.extend_from_slice(offsets);
                items.write(out);
            }
            Column::Map(offsets, _, keys, values) => {
                out.extend_from_slice(offsets);
                keys.write(out);
                values.write(out);
            }
        }
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn write_text(out: &mut Vec<u8>, text: &str) {
    varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// `text` (a type as ClickHouse names it) with every `LowCardinality(...)` replaced by
/// what it wraps: `Array(LowCardinality(String))` is `Array(String)`.
pub fn without_low_cardinality(text: &str) -> String {
    const WRAPPER: &str = "LowCardinality(";
    let mut rest = text.trim();
    let mut out = String::with_capacity(rest.len());
    // The closing parentheses to drop: their depth, counted from the start.
    let mut drop_at: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with(WRAPPER) {
            depth += 1;
            drop_at.push(depth);
            rest = &rest[WRAPPER.len()..];
            continue;
        }
        match c {
            '(' => {
                depth += 1;
                out.push(c);
            }
            ')' => {
                if drop_at.last() == Some(&depth) {
                    drop_at.pop();
                } else {
                    out.push(c);
                }
                depth = depth.saturating_sub(1);
            }
            _ => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Builds one Native block from rows given as their cells, one row at a time.
pub struct BlockWriter<'c> {
    columns: &'c [(String, ColumnType, String)],
    data: Vec<Column>,
    rows: u64,
    /// How many rows the caller will push (a hint for sizing the columns).
    expected: usize,
    /// The columns' names and types: which table's spare buffers these are.
    key: String,
}

impl<'c> BlockWriter<'c> {
    /// `columns`: (name, type, the type's name as the block states it) in insert order;
    /// `expected`: how many rows will be pushed (sizes the columns; not a limit).
    pub fn new(columns: &'c [(String, ColumnType, String)], expected: usize) -> Self {
        let mut key = String::new();
        for (name, _, type_name) in columns {
            key.push_str(name);
            key.push('\0');
            key.push_str(type_name);
            key.push('\0');
        }
        let data = spare_columns(&key)
            .unwrap_or_else(|| columns.iter().map(|(_, t, _)| Column::new(t)).collect());
        BlockWriter {
            columns,
            data,
            rows: 0,
            expected,
            key,
        }
    }

    /// Adds a row (one cell per column). On error the block is no longer usable: the
    /// caller gives the whole payload up (the writer then halves the rows to find the
    /// one that does not fit, as it does for a row ClickHouse refuses).
    pub fn push(&mut self, cells: &[Cell<'_>]) -> Result<(), String> {
        if cells.len() != self.columns.len() {
            return Err(format!(
                "a row has {} values for {} columns",
                cells.len(),
                self.columns.len()
            ));
        }
        for ((column, (name, kind, _)), value) in self.data.iter_mut().zip(self.columns).zip(cells)
        {
            column
                .push(kind, *value)
                .map_err(|e| format!("column {}: {}", name, e))?;
        }
        self.rows += 1;
        if self.rows == 1 && self.expected > 1 {
            for column in &mut self.data {
                column.reserve_like(self.expected - 1);
            }
        }
        Ok(())
    }

    /// The block's bytes; nothing for no rows (an empty block would end the input).
    pub fn finish(self) -> Payload {
        if self.rows == 0 {
            return Payload::empty();
        }
        let size: usize = self.data.iter().map(Column::size).sum::<usize>()
            + self
                .columns
                .iter()
                .map(|(name, _, type_name)| name.len() + type_name.len() + 20)
                .sum::<usize>()
            + 20;
        let mut out = payload_buffer(&self.key, size);
        varint(&mut out, self.columns.len() as u64);
        varint(&mut out, self.rows);
        for ((name, _, type_name), column) in self.columns.iter().zip(&self.data) {
            write_text(&mut out, name);
            write_text(&mut out, type_name);
            column.write(&mut out);
        }
        Payload {
            bytes: out,
            key: self.key.clone(),
        }
    }
}

impl Drop for BlockWriter<'_> {
    /// The columns go back to the table's spare, finished or not (a row that did not fit
    /// ends a block early).
    fn drop(&mut self) {
        keep_columns(&self.key, std::mem::take(&mut self.data));
    }
}

impl Column {
    /// Room for `factor` times what the column holds now (sized from the first row, so
    /// that a large block's columns are not copied as they grow).
    fn reserve_like(&mut self, factor: usize) {
        match self {
            Column::Plain(bytes) => bytes.reserve(bytes.len() * factor),
            Column::Nullable(nulls, values) => {
                nulls.reserve(nulls.len() * factor);
                values.reserve_like(factor);
            }
            Column::Array(offsets, _, items) => {
                offsets.reserve(offsets.len() * factor);
                items.reserve_like(factor);
            }
            Column::Map(offsets, _, keys, values) => {
                offsets.reserve(offsets.len() * factor);
                keys.reserve_like(factor);
                values.reserve_like(factor);
            }
        }
    }

    /// Empty, keeping its buffers' room: ready for the same table's next block.
    fn clear(&mut self) {
        match self {
            Column::Plain(bytes) => bytes.clear(),
            Column::Nullable(nulls, values) => {
                nulls.clear();
                values.clear();
            }
            Column::Array(offsets, end, items) => {
                offsets.clear();
                *end = 0;
                items.clear();
            }
            Column::Map(offsets, end, keys, values) => {
                offsets.clear();
                *end = 0;
                keys.clear();
                values.clear();
            }
        }
    }

    /// The bytes its buffers have room for.
    fn capacity(&self) -> usize {
        match self {
            Column::Plain(bytes) => bytes.capacity(),
            Column::Nullable(nulls, values) => nulls.capacity() + values.capacity(),
            Column::Array(offsets, _, items) => offsets.capacity() + items.capacity(),
            Column::Map(offsets, _, keys, values) => {
                offsets.capacity() + keys.capacity() + values.capacity()
            }
        }
    }

    fn size(&self) -> usize {
        match self {
            Column::Plain(bytes) => bytes.len(),
            Column::Nullable(nulls, values) => nulls.len() + values.size(),
            Column::Array(offsets, _, items) => offsets.len() + items.size(),
            Column::Map(offsets, _, keys, values) => offsets.len() + keys.size() + values.size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    fn columns(spec: &[(&str, &str)]) -> Vec<(String, ColumnType, String)> {
        spec.iter()
            .map(|(name, text)| {
                (
                    name.to_string(),
                    ColumnType::parse(text).unwrap(),
                    without_low_cardinality(text),
                )
            })
            .collect()
    }

    #[test]
    fn writes_what_clickhouse_writes() {
        // chDB: SELECT toUInt8(7) AS a, 'xy' AS s, [1,2]::Array(Int64) AS arr,
        // map('k','v') AS m, CAST(NULL AS Nullable(Int64)) AS n FROM numbers(2) FORMAT Native
        let expected: &[u8] = b"\x05\x02\x01a\x05UInt8\x07\x07\x01s\x06String\x02xy\x02xy\x03arr\x0cArray(Int64)\x02\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01m\x13Map(String, String)\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01k\x01k\x01v\x01v\x01n\x0fNullable(Int64)\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        let spec = columns(&[
            ("a", "UInt8"),
            ("s", "LowCardinality(String)"),
            ("arr", "Array(Int64)"),
            ("m", "Map(String, String)"),
            ("n", "Nullable(Int64)"),
        ]);
        // The block states `s` as String: ClickHouse converts it to the table's type.
        assert_eq!(spec[1].2, "String");
        let mut block = BlockWriter::new(&spec, 2);
        let row = parse(br#"[7, "xy", [1, 2], {"k": "v"}, null]"#).unwrap();
        let cells: Vec<Cell<'_>> = match &row {
            Json::List(values) => values.iter().map(Cell::Json).collect(),
            _ => unreachable!(),
        };
        block.push(&cells).unwrap();
        block.push(&cells).unwrap();
        let payload = block.finish();
        assert_eq!(&payload[..], expected);
    }

    fn block_of(spec: &[(String, ColumnType, String)], rows: &[&[u8]]) -> Result<Vec<u8>, String> {
        let mut block = BlockWriter::new(spec, rows.len());
        for row in rows {
            let row = parse(row).unwrap();
            let cells: Vec<Cell<'_>> = match &row {
                Json::List(values) => values.iter().map(Cell::Json).collect(),
                _ => unreachable!(),
            };
            block.push(&cells)?;
        }
        let payload = block.finish();
        Ok(payload.to_vec())
    }

    #[test]
    fn a_tables_kept_buffers_write_what_fresh_ones_write() {
        // Names of this test's own: the spares are the process's, shared by the tests.
        let spec = columns(&[
            ("kept_a", "UInt8"),
            ("kept_arr", "Array(Nullable(Int64))"),
            ("kept_m", "Map(String, Array(String))"),
        ]);
        let big: &[u8] = br#"[1, [1, null, 3], {"k": ["v", "w"], "l": []}]"#;
        let small: &[u8] = br#"[2, [4], {"x": ["y"]}]"#;
        let wrong: &[u8] = br#"[3, [5], "not a map"]"#;
        let key = BlockWriter::new(&spec, 0).key.clone();
        // Fresh buffers (nothing kept yet for these columns) make the reference bytes.
        with_spares(|spares| spares.remove(&key));
        let one_small = block_of(&spec, &[small]).unwrap();
        with_spares(|spares| spares.remove(&key));
        let big_then_small = block_of(&spec, &[big, small]).unwrap();
        with_spares(|spares| spares.remove(&key));
        // Now through kept buffers: after a bigger block, and after a block that failed.
        block_of(&spec, &[big, big, big]).unwrap();
        assert!(with_spares(|spares| spares.get(&key).map(|s| s.payload.capacity() > 0)).unwrap());
        assert_eq!(block_of(&spec, &[small]).unwrap(), one_small);
        assert!(block_of(&spec, &[big, wrong]).is_err());
        assert_eq!(block_of(&spec, &[small]).unwrap(), one_small);
        assert_eq!(block_of(&spec, &[big, small]).unwrap(), big_then_small);
    }

    #[test]
    fn a_payload_alive_keeps_its_buffer_from_the_next_block() {
        let spec = columns(&[("alive_s", "String")]);
        let first = block_of(&spec, &[br#"["first"]"#]).unwrap();
        let mut block = BlockWriter::new(&spec, 1);
        block.push(&[Cell::Str("first")]).unwrap();
        let held = block.finish();
        let mut other = BlockWriter::new(&spec, 1);
        other.push(&[Cell::Str("other")]).unwrap();
        let second = other.finish();
        assert_eq!(&held[..], &first[..]);
        assert_ne!(&second[..], &held[..]);
    }

    #[test]
    fn no_rows_is_no_block() {
        let spec = columns(&[("a", "UInt8")]);
        assert!(BlockWriter::new(&spec, 2).finish().is_empty());
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_column() {
        let spec = columns(&[("a", "String"), ("b", "Nullable(UInt8)")]);
        let mut block = BlockWriter::new(&spec, 2);
        let err = block.push(&[Cell::Str("x"), Cell::Int(256)]).unwrap_err();
        assert_eq!(err, "column b: 256 is out of range for UInt8");
        let err = block.push(&[Cell::Int(1), Cell::Null]).unwrap_err();
        assert_eq!(err, "column a: expected a string, got an integer");
        assert!(block.push(&[Cell::Str("x")]).is_err());
    }

    #[test]
    fn low_cardinality_is_unwrapped_anywhere() {
        assert_eq!(
            without_low_cardinality("Array(LowCardinality(String))"),
            "Array(String)"
        );
        assert_eq!(
            without_low_cardinality("Map(LowCardinality(String), Nullable(Int64))"),
            "Map(String, Nullable(Int64))"
        );
        assert_eq!(
            without_low_cardinality("LowCardinality(Nullable(String))"),
            "Nullable(String)"
        );
        assert_eq!(
            without_low_cardinality("DateTime64(3, 'UTC')"),
            "DateTime64(3, 'UTC')"
        );
    }
}
