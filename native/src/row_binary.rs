//! Rows as ClickHouse's `RowBinary` insert format, for the column types the table has.
//!
//! The writer (sinks/clickhouse.py) reads each table's column types from ClickHouse once
//! (the insert context's `DESCRIBE`) and asks for a block's payload in those types, so the
//! bytes always match the table as it is, not as the crate believes it is. A value that
//! does not fit its column (a wrong kind, out of range) is an error naming the column and
//! the row: the writer treats it as bad data, finds the row by halving and dead-letters
//! it, as it does for a row ClickHouse refuses.
//!
//! Values are the rows' JSON values (`Row::to_json`): times as integers (milliseconds for
//! `DateTime64(3)`, seconds for `DateTime`), dates as ISO text, floats as Python's repr.

use crate::event::Item;
use crate::json::Json;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
    String,
    /// Width in bytes and whether it is signed.
    Integer(u8, bool),
    Float64,
    Date,
    DateTime,
    /// `DateTime64(3)`, any time zone (the value is milliseconds since the epoch).
    DateTime64Millis,
    Nullable(Box<ColumnType>),
    Array(Box<ColumnType>),
    Map(Box<ColumnType>, Box<ColumnType>),
}

fn inner<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .map(str::trim)
}

/// Split `a, b` at its top-level comma (`Map(K, V)`'s arguments).
fn split_pair(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => return Some((text[..i].trim(), text[i + 1..].trim())),
            _ => {}
        }
    }
    None
}

impl ColumnType {
    /// A type as ClickHouse names it (`system.columns.type`), for the types this crate's
    /// tables use; anything else is an error that names it.
    pub fn parse(text: &str) -> Result<ColumnType, String> {
        let text = text.trim();
        let unsupported = || {
            format!(
                "column type {} is not supported by the RowBinary encoder",
                text
            )
        };
        if let Some(t) = inner(text, "LowCardinality(") {
            // LowCardinality changes the storage, not the RowBinary form.
            return ColumnType::parse(t);
        }
        if let Some(t) = inner(text, "Nullable(") {
            return Ok(ColumnType::Nullable(Box::new(ColumnType::parse(t)?)));
        }
        if let Some(t) = inner(text, "Array(") {
            return Ok(ColumnType::Array(Box::new(ColumnType::parse(t)?)));
        }
        if let Some(t) = inner(text, "Map(") {
            let (k, v) = split_pair(t).ok_or_else(unsupported)?;
            return Ok(ColumnType::Map(
                Box::new(ColumnType::parse(k)?),
                Box::new(ColumnType::parse(v)?),
            ));
        }
        if let Some(t) = inner(text, "DateTime64(") {
            let precision = t.split(',').next().unwrap_or("").trim();
            return if precision == "3" {
                Ok(ColumnType::DateTime64Millis)
            } else {
                Err(unsupported())
            };
        }
        if text == "DateTime" || inner(text, "DateTime(").is_some() {
            return Ok(ColumnType::DateTime);
        }
        Ok(match text {
            "String" => ColumnType::String,
            "Float64" => ColumnType::Float64,
            "Date" => ColumnType::Date,
            "UInt8" | "Bool" => ColumnType::Integer(1, false),
            "UInt16" => ColumnType::Integer(2, false),
            "UInt32" => ColumnType::Integer(4, false),
            "UInt64" => ColumnType::Integer(8, false),
            "Int8" => ColumnType::Integer(1, true),
            "Int16" => ColumnType::Integer(2, true),
            "Int32" => ColumnType::Integer(4, true),
            "Int64" => ColumnType::Integer(8, true),
            _ => return Err(unsupported()),
        })
    }
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A value to encode, borrowed: a row's JSON value, or a typed row's field as it is
/// (`RowCells`), so that the row need not be copied into JSON first.
#[derive(Clone, Copy, Debug)]
pub enum Cell<'a> {
    Json(&'a Json),
    Null,
    Int(i64),
    Str(&'a str),
    Strs(&'a [String]),
    Ints(&'a [i64]),
    /// A map of text to text, in order.
    Pairs(&'a [(String, String)]),
    /// A list of one text of each item (`events_raw`'s item columns, read in place).
    ItemStrs(&'a [Item], fn(&Item) -> &str),
    ItemInts(&'a [Item], fn(&Item) -> i64),
}

impl<'a> Cell<'a> {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Cell::Json(j) => j.kind(),
            Cell::Null => "null",
            Cell::Int(_) => "an integer",
            Cell::Str(_) => "a string",
            Cell::Strs(_) | Cell::Ints(_) | Cell::ItemStrs(..) | Cell::ItemInts(..) => "a list",
            Cell::Pairs(_) => "an object",
        }
    }

    fn integer(self) -> Option<i64> {
        match self {
            Cell::Int(n) | Cell::Json(&Json::Int(n)) => Some(n),
            Cell::Json(&Json::Bool(b)) => Some(i64::from(b)),
            _ => None,
        }
    }

    fn text(self) -> Option<&'a str> {
        match self {
            Cell::Str(s) => Some(s),
            Cell::Json(Json::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    pub(crate) fn is_null(self) -> bool {
        matches!(self, Cell::Null | Cell::Json(Json::Null))
    }

    /// The value as JSON (a copy: for the rare readers of a row, not for encoding).
    pub fn to_json(self) -> Json {
        match self {
            Cell::Json(j) => j.clone(),
            Cell::Null => Json::Null,
            Cell::Int(n) => Json::Int(n),
            Cell::Str(s) => Json::s(s),
            Cell::Strs(items) => Json::List(items.iter().map(|v| Json::s(v)).collect()),
            Cell::Ints(items) => Json::List(items.iter().map(|v| Json::Int(*v)).collect()),
            Cell::ItemStrs(items, text) => {
                Json::List(items.iter().map(|item| Json::s(text(item))).collect())
            }
            Cell::ItemInts(items, number) => {
                Json::List(items.iter().map(|item| Json::Int(number(item))).collect())
            }
            Cell::Pairs(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), Json::s(v)))
                    .collect(),
            ),
        }
    }
}

/// A typed row's values in its table's column order, without copying them.
pub trait RowCells {
    fn cells(&self) -> Vec<Cell<'_>>;
}

/// Days since 1970-01-01 of an ISO date `YYYY-MM-DD` (proleptic Gregorian).
fn epoch_days(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if text.len() != 10 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn write_integer(out: &mut Vec<u8>, n: i64, width: u8, signed: bool) -> Result<(), String> {
    let bits = u32::from(width) * 8;
    let fits = if signed {
        bits == 64 || (n >= -(1i64 << (bits - 1)) && n < (1i64 << (bits - 1)))
    } else {
        n >= 0 && (bits == 64 || n < (1i64 << bits))
    };
    if !fits {
        let kind = if signed { "Int" } else { "UInt" };
        return Err(format!("{} is out of range for {}{}", n, kind, bits));
    }
    out.extend_from_slice(&n.to_le_bytes()[..usize::from(width)]);
    Ok(())
}

/// One value in RowBinary (also a scalar's form in a Native column, `native_block`).
pub(crate) fn write_value(
    out: &mut Vec<u8>,
    column: &ColumnType,
    value: Cell<'_>,
) -> Result<(), String> {
    let wrong = |what: &str| Err(format!("expected {}, got {}", what, value.kind()));
    match column {
        ColumnType::String => match value.text() {
            Some(s) => {
                varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            None => return wrong("a string"),
        },
        ColumnType::Integer(width, signed) => match value.integer() {
            Some(n) => write_integer(out, n, *width, *signed)?,
            None => return wrong("an integer"),
        },
        ColumnType::Float64 => {
            let x = match (value, value.text()) {
                (Cell::Int(n), _) | (Cell::Json(&Json::Int(n)), _) => n as f64,
                (_, Some(s)) => s
                    .parse::<f64>()
                    .map_err(|_| format!("{:?} is not a number", s))?,
                _ => return wrong("a number"),
            };
            out.extend_from_slice(&x.to_le_bytes());
        }
        ColumnType::Date => {
            let days = match (value, value.text()) {
                (_, Some(s)) => epoch_days(s).ok_or_else(|| format!("{:?} is not a date", s))?,
                (Cell::Int(n), _) | (Cell::Json(&Json::Int(n)), _) => n,
                _ => return wrong("a date"),
            };
            if !(0..=i64::from(u16::MAX)).contains(&days) {
                return Err(format!("day {} is out of range for Date", days));
            }
            out.extend_from_slice(&(days as u16).to_le_bytes());
        }
        ColumnType::DateTime => match value {
            Cell::Int(n) | Cell::Json(&Json::Int(n)) => write_integer(out, n, 4, false)
                .map_err(|_| format!("{} is out of range for DateTime", n))?,
            _ => return wrong("seconds since the epoch"),
        },
        ColumnType::DateTime64Millis => match value {
            Cell::Int(n) | Cell::Json(&Json::Int(n)) => out.extend_from_slice(&n.to_le_bytes()),
            _ => return wrong("milliseconds since the epoch"),
        },
        ColumnType::Nullable(t) => {
            if value.is_null() {
                out.push(1);
            } else {
                out.push(0);
                write_value(out, t, value)?;
            }
        }
        ColumnType::Array(t) => match value {
            Cell::Json(Json::List(items)) => {
                varint(out, items.len() as u64);
                for item in items {
                    write_value(out, t, Cell::Json(item))?;
                }
            }
            Cell::Strs(items) => {
                varint(out, items.len() as u64);
                for item in items {
                    write_value(out, t, Cell::Str(item))?;
                }
            }
            Cell::Ints(items) => {
                varint(out, items.len() as u64);
                for item in items {
                    write_value(out, t, Cell::Int(*item))?;
                }
            }
            Cell::ItemStrs(items, text) => {
                varint(out, items.len() as u64);
                for item in items {
                    write_value(out, t, Cell::Str(text(item)))?;
                }
            }
            Cell::ItemInts(items, number) => {
                varint(out, items.len() as u64);
                for item in items {
                    write_value(out, t, Cell::Int(number(item)))?;
                }
            }
            _ => return wrong("a list"),
        },
        ColumnType::Map(k, v) => match value {
            Cell::Json(Json::Object(entries)) => {
                varint(out, entries.len() as u64);
                for (key, item) in entries {
                    write_value(out, k, Cell::Str(key))?;
                    write_value(out, v, Cell::Json(item))?;
                }
            }
            Cell::Pairs(entries) => {
                varint(out, entries.len() as u64);
                for (key, item) in entries {
                    write_value(out, k, Cell::Str(key))?;
                    write_value(out, v, Cell::Str(item))?;
                }
            }
            _ => return wrong("an object"),
        },
    }
    Ok(())
}

/// Append `row` (a JSON list, one value per column) in RowBinary to `out`; on error `out`
/// is left as it was.
pub fn write_row(
    out: &mut Vec<u8>,
    columns: &[(String, ColumnType)],
    row: &Json,
) -> Result<(), String> {
    let values = match row {
        Json::List(values) => values,
        other => return Err(format!("a row is {}, not a list", other.kind())),
    };
    let cells: Vec<Cell<'_>> = values.iter().map(Cell::Json).collect();
    write_cells(out, columns, &cells)
}

/// Append a row given as its cells (one per column), as `write_row`.
pub fn write_cells(
    out: &mut Vec<u8>,
    columns: &[(String, ColumnType)],
    cells: &[Cell<'_>],
) -> Result<(), String> {
    if cells.len() != columns.len() {
        return Err(format!(
            "a row has {} values for {} columns",
            cells.len(),
            columns.len()
        ));
    }
    let start = out.len();
    for ((name, column), value) in columns.iter().zip(cells) {
        if let Err(e) = write_value(out, column, *value) {
            out.truncate(start);
            return Err(format!("column {}: {}", name, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tables_types() {
        assert_eq!(
            ColumnType::parse("Array(LowCardinality(String))").unwrap(),
            ColumnType::Array(Box::new(ColumnType::String))
        );
        assert_eq!(
            ColumnType::parse("Map(String, String)").unwrap(),
            ColumnType::Map(Box::new(ColumnType::String), Box::new(ColumnType::String))
        );
        assert_eq!(
            ColumnType::parse("Nullable(DateTime64(3, 'UTC'))").unwrap(),
            ColumnType::Nullable(Box::new(ColumnType::DateTime64Millis))
        );
        assert_eq!(
            ColumnType::parse("DateTime('UTC')").unwrap(),
            ColumnType::DateTime
        );
        assert!(ColumnType::parse("DateTime64(6, 'UTC')").is_err());
        assert!(ColumnType::parse("Int128").unwrap_err().contains("Int128"));
    }

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(epoch_days("1970-01-01"), Some(0));
        assert_eq!(epoch_days("2000-03-01"), Some(11_017));
        assert_eq!(epoch_days("2026-12-06"), Some(20_793));
        assert_eq!(epoch_days("2026-13-01"), None);
    }

    #[test]
    fn a_bad_value_names_its_column_and_leaves_no_bytes() {
        let columns = vec![
            ("a".to_string(), ColumnType::String),
            ("b".to_string(), ColumnType::Integer(1, false)),
        ];
        let mut out = vec![9];
        let row = Json::List(vec![Json::s("x"), Json::Int(256)]);
        let err = write_row(&mut out, &columns, &row).unwrap_err();
        assert!(
            err.starts_with("column b: 256 is out of range for UInt8"),
            "{}",
            err
        );
        assert_eq!(out, vec![9]);
        let row = Json::List(vec![Json::s("xy"), Json::Int(255)]);
        write_row(&mut out, &columns, &row).unwrap();
        assert_eq!(out, vec![9, 2, b'x', b'y', 255]);
    }

    #[test]
    fn integers_check_their_range() {
        let mut out = Vec::new();
        assert!(write_integer(&mut out, -1, 2, false).is_err());
        assert!(write_integer(&mut out, -32_769, 2, true).is_err());
        write_integer(&mut out, -32_768, 2, true).unwrap();
        write_integer(&mut out, 65_535, 2, false).unwrap();
        assert_eq!(out, vec![0x00, 0x80, 0xff, 0xff]);
    }
}
