//! Raw input record -> Avro-shaped record: the Rust twin of the first stage of
//! `schemas.codec.EventCodec.decode`, everything before `build_event`.
//!
//! Per record, in Python's order: the size check (PAYLOAD_TOO_LARGE); the framing test
//! (first byte 0x00: Confluent Avro, magic byte + 4-byte big-endian schema id; first byte
//! after ASCII white space `{`: JSON; anything else UNDECODABLE); then
//! - Avro: the schema id must belong to the stream (`_unknown_id_detail`), the body is read
//!   with the semantics of `schemas/avroread.py`'s compiled reader (zig-zag varints of at
//!   most 10 bytes / 64 bits, one-byte union indexes, blocks with `check_count`, strings with
//!   the one-byte fast path that may run past the end, UTF-8 errors worded as CPython's
//!   `bytes.decode`), and every byte must be consumed;
//! - JSON: parsed as `orjson.loads` of orjson 3.13.0 parses it (the reader of its vendored
//!   yyjson, error text and position included, and the fixed buffer it parses into: a deep
//!   document can run out of it), then shaped by `schemas/jsonshape.py` (defaults, type
//!   checks, the timestamp rules including `datetime.fromisoformat` of CPython 3.11, and
//!   the `sent_time` default of `_read_json`). Floats and ints beyond i64 exist only in the
//!   parsed value; the shaped record is `Json` or a rejection, as in Python.
//!
//! The result is a `ReaderRecord` (the top-level fields in field order, their values as
//! `Json`: records and maps as objects, arrays as lists; an Avro record's names are its
//! reader schema's, not copied), or a `validation::Rejection` with the reason code and the
//! same detail text as Python's (the reasons, `py_repr` and its Unicode table are
//! validation.rs's).
//!
//! `Registry::from_json` takes what `schemas/registry.py` loads: every registered schema's
//! name, version, id and JSON definition (tests/native/test_records.py builds that JSON).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::json::{Json, JsonError, JsonResult};
use crate::validation::{py_repr, Reason, Rejection, PY_NOT_PRINTABLE, UNICODE_VERSION};

/// `schemas.codec.INPUT_STREAMS`.
pub const INPUT_STREAMS: [&str; 3] = ["clickstream", "cart", "orders"];

/// `schemas.codec.EVENT_RECORD_FIELDS`: every registered input schema version has them.
const EVENT_RECORD_FIELDS: [&str; 32] = [
    "event_id",
    "event_type",
    "event_time",
    "sent_time",
    "anonymous_id",
    "session_id",
    "user_id",
    "platform",
    "device",
    "country",
    "page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "experiments",
    "referral_code",
    "search_term",
    "items",
    "cart_id",
    "transaction_id",
    "currency",
    "value",
    "tax",
    "shipping",
    "coupon",
    "discount",
    "payment_type",
    "refund_reason",
    "payment_error_code",
];

/// `schemas.codec._DETAIL_LIMIT`.
const DETAIL_LIMIT: usize = 300;

/// What the first stage of `EventCodec.decode` makes of a record: the record for
/// `build_event`, or why it goes to the dead-letter topic.
#[derive(Debug)]
pub enum RecordRead<'r> {
    Record(ReaderRecord<'r>),
    Rejected(Rejection),
}

fn rejected<'r>(reason: Reason, detail: String) -> RecordRead<'r> {
    RecordRead::Rejected(Rejection::new(reason, detail))
}

/// A record as a reader made it: its fields, in field order. An Avro record's names are
/// its reader schema's, borrowed: copying ~45 names into every record was a tenth of the
/// intake's time (perf, BENCHMARKS.md).
#[derive(Debug)]
pub struct ReaderRecord<'r> {
    names: FieldNames<'r>,
    values: Vec<Json>,
}

#[derive(Debug)]
enum FieldNames<'r> {
    Schema(&'r [(String, Avro)]),
    Own(Vec<String>),
}

impl<'r> ReaderRecord<'r> {
    /// The record of a JSON object's entries; None when `value` is not an object.
    pub fn from_json(value: Json) -> Option<ReaderRecord<'static>> {
        match value {
            Json::Object(entries) => {
                let (names, values) = entries.into_iter().unzip();
                Some(ReaderRecord {
                    names: FieldNames::Own(names),
                    values,
                })
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn name(&self, index: usize) -> &str {
        match &self.names {
            FieldNames::Schema(fields) => &fields[index].0,
            FieldNames::Own(names) => &names[index],
        }
    }

    /// Where field `name` is, looked for from `from` on, then from the start: the fields
    /// are mostly read in their order, so the first look usually finds it.
    pub fn position(&self, name: &str, from: usize) -> Option<usize> {
        let len = self.len();
        let from = from.min(len);
        (from..len)
            .chain(0..from)
            .find(|&index| self.name(index) == name)
    }

    pub fn value(&self, index: usize) -> &Json {
        &self.values[index]
    }

    /// The value at `index`, moved out (a null is left in its place).
    pub fn take(&mut self, index: usize) -> Json {
        std::mem::replace(&mut self.values[index], Json::Null)
    }

    /// The record as a JSON object (names copied), for the probes.
    pub fn into_json(self) -> Json {
        let names: Vec<String> = (0..self.len()).map(|i| self.name(i).to_owned()).collect();
        Json::Object(names.into_iter().zip(self.values).collect())
    }
}

// -- the registry -----------------------------------------------------------------------

/// One registered schema version (`schemas.registry.RegisteredSchema` without the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredSchema {
    pub name: String,
    pub version: i64,
    pub schema_id: i64,
}

/// An input stream's readers, one per registered version (in version order), and the
/// JSON converter of its latest version.
#[derive(Clone, Debug)]
struct StreamCodec {
    name: String,
    /// schema id -> the fields of its record.
    readers: Vec<(i64, Vec<(String, Avro)>)>,
    json: Conv,
}

/// The schema registry as the decoder needs it; build once with `from_json`.
#[derive(Clone, Debug)]
pub struct Registry {
    schemas: Vec<RegisteredSchema>,
    streams: Vec<StreamCodec>,
}

impl Registry {
    /// From `{"schemas": [{"name", "version", "id", "definition"}, ...]}`: what
    /// `SchemaRegistry.load()` holds. Fails, as `EventCodec()` does, when an input stream has
    /// no schema, a version lacks a field the Event needs, or a schema uses a construct the
    /// readers do not handle (the Python falls back to fastavro there; this core refuses).
    pub fn from_json(value: &Json) -> Result<Registry, String> {
        let entries = field(value, "schemas")
            .ok_or("the registry JSON needs a \"schemas\" list")?
            .list("schemas")
            .map_err(|e| e.0)?;
        let mut schemas: Vec<RegisteredSchema> = Vec::new();
        let mut definitions: Vec<&Json> = Vec::new();
        for entry in entries {
            let get = |key: &str| field(entry, key).ok_or(format!("a schema lacks {:?}", key));
            let schema = RegisteredSchema {
                name: get("name")?.str("name").map_err(|e| e.0)?.to_owned(),
                version: get("version")?.int("version").map_err(|e| e.0)?,
                schema_id: get("id")?.int("id").map_err(|e| e.0)?,
            };
            if let Some(other) = schemas.iter().find(|s| s.schema_id == schema.schema_id) {
                return Err(format!(
                    "schema id {} is used by both {} v{} and {} v{}; give each version its own id",
                    schema.schema_id, other.name, other.version, schema.name, schema.version
                ));
            }
            definitions.push(get("definition")?);
            schemas.push(schema);
        }
        let mut streams = Vec::new();
        for stream in INPUT_STREAMS {
            let mut versions: Vec<usize> = (0..schemas.len())
                .filter(|&i| schemas[i].name == stream)
                .collect();
            if versions.is_empty() {
                return Err(format!("no schema named {:?} in the registry", stream));
            }
            versions.sort_by_key(|&i| schemas[i].version);
            let mut readers = Vec::new();
            for &i in &versions {
                let schema = &schemas[i];
                let definition = definitions[i];
                let what = format!("{} v{}", schema.name, schema.version);
                require_event_fields(definition, &what)?;
                let reader = match AvroCompiler::default().compile(definition, "") {
                    Ok(Avro::Record(fields)) => fields,
                    Ok(_) => return Err(format!("{}: an event schema must be a record", what)),
                    Err(e) => return Err(format!("{}: {}", what, e)),
                };
                readers.push((schema.schema_id, reader));
            }
            let latest = versions[versions.len() - 1];
            let json = conv_record(definitions[latest], "")?;
            streams.push(StreamCodec {
                name: stream.to_owned(),
                readers,
                json,
            });
        }
        Ok(Registry { schemas, streams })
    }

    pub fn by_id(&self, schema_id: i64) -> Option<&RegisteredSchema> {
        self.schemas.iter().find(|s| s.schema_id == schema_id)
    }

    /// `EventCodec.decode` up to `build_event`: the record, or its rejection. Err only for a
    /// stream that is not an input stream (Python raises SchemaError: a bug, not data).
    pub fn read_record(
        &self,
        raw: &[u8],
        stream: &str,
        max_payload_bytes: i64,
    ) -> Result<RecordRead<'_>, String> {
        if raw.len() as i128 > max_payload_bytes as i128 {
            return Ok(rejected(
                Reason::PayloadTooLarge,
                format!(
                    "record is {} bytes; the limit is {}",
                    raw.len(),
                    max_payload_bytes
                ),
            ));
        }
        let codec = match self.streams.iter().find(|s| s.name == stream) {
            Some(codec) => codec,
            None => {
                return Err(format!(
                    "unknown stream {}; expected one of {}",
                    py_repr(stream, false),
                    INPUT_STREAMS.join(", ")
                ))
            }
        };
        if raw.first() == Some(&0) {
            return Ok(self.read_avro(raw, codec));
        }
        let start = raw
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c));
        if start.map(|i| raw[i]) == Some(b'{') {
            return Ok(read_json(raw, &codec.json));
        }
        let head = &raw[..raw.len().min(8)];
        Ok(rejected(
            Reason::Undecodable,
            format!(
                "record is neither Confluent Avro (first byte 0x00) nor a JSON object \
                 (starts with {})",
                py_bytes_repr(head)
            ),
        ))
    }

    fn read_avro<'r>(&self, raw: &[u8], codec: &'r StreamCodec) -> RecordRead<'r> {
        if raw.len() < 5 {
            return rejected(
                Reason::Undecodable,
                format!("Avro frame of {} bytes has no schema id", raw.len()),
            );
        }
        let schema_id = i64::from(u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]));
        let reader = match codec.readers.iter().find(|(id, _)| *id == schema_id) {
            Some((_, reader)) => reader,
            None => {
                return rejected(
                    Reason::UnknownSchemaId,
                    self.unknown_id_detail(schema_id, codec),
                )
            }
        };
        let mut body = AvroReader { buf: raw, pos: 5 };
        let values = match body.fields(reader) {
            Ok(values) => values,
            Err(fail) => {
                return rejected(
                    Reason::Undecodable,
                    clip(&format!(
                        "Avro body does not match schema id {}: {}",
                        schema_id,
                        fail.describe()
                    )),
                )
            }
        };
        if body.pos != raw.len() {
            let problem = if body.pos > raw.len() {
                "is truncated".to_owned()
            } else {
                format!("has {} trailing bytes", raw.len() - body.pos)
            };
            return rejected(
                Reason::Undecodable,
                format!("Avro body for schema id {} {}", schema_id, problem),
            );
        }
        RecordRead::Record(ReaderRecord {
            names: FieldNames::Schema(reader),
            values,
        })
    }

    fn unknown_id_detail(&self, schema_id: i64, codec: &StreamCodec) -> String {
        let known: Vec<String> = codec.readers.iter().map(|(id, _)| id.to_string()).collect();
        let known = known.join(", ");
        match self.by_id(schema_id) {
            Some(other) => format!(
                "schema id {} is {} v{}, not a {} schema (expected one of {}); produce to the \
                 right topic",
                schema_id, other.name, other.version, codec.name, known
            ),
            None => format!(
                "schema id {} is not registered for {} (expected one of {}); register the \
                 schema in schemas/registry.json or fix the producer",
                schema_id, codec.name, known
            ),
        }
    }
}

fn field<'a>(value: &'a Json, key: &str) -> Option<&'a Json> {
    match value {
        Json::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn require_event_fields(definition: &Json, what: &str) -> Result<(), String> {
    let names: Vec<&str> = match field(definition, "fields") {
        Some(Json::List(fields)) => fields
            .iter()
            .filter_map(|f| match field(f, "name") {
                Some(Json::Str(name)) => Some(name.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut missing: Vec<&str> = EVENT_RECORD_FIELDS
        .iter()
        .copied()
        .filter(|f| !names.contains(f))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort_unstable();
    Err(format!(
        "{} lacks fields the Event needs: {}",
        what,
        missing.join(", ")
    ))
}

/// `schemas.codec._clip`: at most 300 characters.
fn clip(text: &str) -> String {
    if text.chars().count() <= DETAIL_LIMIT {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(DETAIL_LIMIT - 3).collect();
    out.push_str("...");
    out
}

// -- objects with Python dict semantics ----------------------------------------------------

/// Insertion-ordered map where a repeated key keeps its first position and takes the last
/// value (`d[k] = v`); indexed by a hash map once it grows.
struct DictBuilder<V> {
    entries: Vec<(String, V)>,
    index: Option<HashMap<String, usize>>,
}

impl<V> DictBuilder<V> {
    fn new() -> Self {
        DictBuilder {
            entries: Vec::new(),
            index: None,
        }
    }

    fn insert(&mut self, key: String, value: V) {
        if self.index.is_none() {
            if let Some(entry) = self.entries.iter_mut().find(|(k, _)| *k == key) {
                entry.1 = value;
                return;
            }
            self.entries.push((key, value));
            if self.entries.len() > 16 {
                let index = self
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect();
                self.index = Some(index);
            }
            return;
        }
        if let Some(index) = self.index.as_mut() {
            match index.get(&key) {
                Some(&i) => self.entries[i].1 = value,
                None => {
                    index.insert(key.clone(), self.entries.len());
                    self.entries.push((key, value));
                }
            }
        }
    }

    fn finish(self) -> Vec<(String, V)> {
        self.entries
    }
}

// -- Avro schemas -------------------------------------------------------------------------

/// A reader schema as `avroread.compile_reader` sees it after fastavro expanded named
/// types and logical types were stripped.
#[derive(Clone, Debug)]
enum Avro {
    Null,
    Boolean,
    /// `int` and `long`: the compiled reader reads both as 64-bit zig-zag varints.
    Long,
    String,
    Enum(Vec<String>),
    Array(Box<Avro>),
    Map(Box<Avro>),
    Union(Vec<Avro>),
    Record(Vec<(String, Avro)>),
}

#[derive(Default)]
struct AvroCompiler {
    named: Vec<(String, Avro)>,
    in_progress: Vec<String>,
}

fn full_name(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{}.{}", namespace, name)
    }
}

impl AvroCompiler {
    fn compile(&mut self, schema: &Json, namespace: &str) -> Result<Avro, String> {
        match schema {
            Json::Str(name) => self.named_or_primitive(name, namespace),
            Json::List(branches) => {
                if branches.len() > 63 {
                    return Err("unions of more than 63 branches are not supported".into());
                }
                let compiled: Result<Vec<Avro>, String> = branches
                    .iter()
                    .map(|b| self.compile(b, namespace))
                    .collect();
                Ok(Avro::Union(compiled?))
            }
            Json::Object(_) => {
                let kind = field(schema, "type").ok_or("a schema object lacks \"type\"")?;
                let kind = match kind {
                    Json::Str(kind) => kind.as_str(),
                    other => return self.compile(other, namespace),
                };
                match kind {
                    "record" | "error" => self.record(schema, namespace),
                    "enum" => {
                        let symbols = match field(schema, "symbols") {
                            Some(Json::List(symbols)) => symbols
                                .iter()
                                .map(|s| s.str("symbol").map(str::to_owned).map_err(|e| e.0))
                                .collect::<Result<Vec<String>, String>>()?,
                            _ => return Err("an enum lacks its symbols".into()),
                        };
                        let compiled = Avro::Enum(symbols);
                        self.define(schema, namespace, &compiled);
                        Ok(compiled)
                    }
                    "array" => {
                        let items = field(schema, "items").ok_or("an array lacks \"items\"")?;
                        let items = self.compile(items, namespace)?;
                        if min_width(&items) == 0 {
                            return Err("arrays of zero-width items are not supported".into());
                        }
                        Ok(Avro::Array(Box::new(items)))
                    }
                    "map" => {
                        let values = field(schema, "values").ok_or("a map lacks \"values\"")?;
                        Ok(Avro::Map(Box::new(self.compile(values, namespace)?)))
                    }
                    other => self.named_or_primitive(other, namespace),
                }
            }
            other => Err(format!("unsupported Avro type {:?}", other)),
        }
    }

    fn named_or_primitive(&mut self, name: &str, namespace: &str) -> Result<Avro, String> {
        match name {
            "null" => return Ok(Avro::Null),
            "boolean" => return Ok(Avro::Boolean),
            "int" | "long" => return Ok(Avro::Long),
            "string" => return Ok(Avro::String),
            "float" | "double" | "bytes" | "fixed" => {
                return Err(format!(
                    "Avro type {} has no JSON value in the compiled core",
                    name
                ))
            }
            _ => {}
        }
        let candidates = [full_name(name, namespace), name.to_owned()];
        for candidate in &candidates {
            if self.in_progress.contains(candidate) {
                return Err(format!("recursive record {} is not supported", name));
            }
            if let Some((_, schema)) = self.named.iter().find(|(n, _)| n == candidate) {
                return Ok(schema.clone());
            }
        }
        Err(format!("unsupported Avro type {:?}", name))
    }

    fn define(&mut self, schema: &Json, namespace: &str, compiled: &Avro) {
        if let Some(Json::Str(name)) = field(schema, "name") {
            let namespace = match field(schema, "namespace") {
                Some(Json::Str(ns)) => ns.as_str(),
                _ => namespace,
            };
            self.named
                .push((full_name(name, namespace), compiled.clone()));
        }
    }

    fn record(&mut self, schema: &Json, namespace: &str) -> Result<Avro, String> {
        let (name, inner_ns) = match field(schema, "name") {
            Some(Json::Str(name)) => {
                let ns = match field(schema, "namespace") {
                    Some(Json::Str(ns)) => ns.clone(),
                    _ => namespace.to_owned(),
                };
                let full = full_name(name, &ns);
                let inner = match full.rfind('.') {
                    Some(dot) => full[..dot].to_owned(),
                    None => String::new(),
                };
                (full, inner)
            }
            _ => ("record".to_owned(), namespace.to_owned()),
        };
        if self.in_progress.contains(&name) {
            return Err(format!("recursive record {} is not supported", name));
        }
        self.in_progress.push(name.clone());
        let fields = match field(schema, "fields") {
            Some(Json::List(fields)) => fields,
            _ => return Err(format!("record {} lacks its fields", name)),
        };
        let mut compiled: Vec<(String, Avro)> = Vec::new();
        for f in fields {
            let fname = match field(f, "name") {
                Some(Json::Str(n)) => n.clone(),
                _ => return Err(format!("a field of {} lacks its name", name)),
            };
            if compiled.iter().any(|(n, _)| *n == fname) {
                return Err(format!("record {} repeats field {}", name, fname));
            }
            let ftype = field(f, "type").ok_or(format!("field {} lacks its type", fname))?;
            let ftype = self.compile(ftype, &inner_ns)?;
            compiled.push((fname, ftype));
        }
        self.in_progress.retain(|n| *n != name);
        let record = Avro::Record(compiled);
        self.named.push((name, record.clone()));
        Ok(record)
    }
}

/// `avroread._min_width`: the fewest bytes a value takes.
fn min_width(schema: &Avro) -> usize {
    match schema {
        Avro::Null => 0,
        Avro::Record(fields) => fields.iter().map(|(_, f)| min_width(f)).sum(),
        _ => 1,
    }
}

// -- reading Avro binary ----------------------------------------------------------------

/// Why the compiled reader raised, as `type(exc).__name__` and `str(exc)` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AvroFail {
    /// `buf[pos]` past the end of the bytes.
    Index,
    /// An enum index past the symbols tuple.
    TupleIndex,
    Value(String),
    Unicode(String),
}

impl AvroFail {
    fn describe(&self) -> String {
        match self {
            AvroFail::Index => "IndexError: index out of range".to_owned(),
            AvroFail::TupleIndex => "IndexError: tuple index out of range".to_owned(),
            AvroFail::Value(m) => format!("ValueError: {}", m),
            AvroFail::Unicode(m) => format!("UnicodeDecodeError: {}", m),
        }
    }
}

fn value_error<T>(message: impl Into<String>) -> Result<T, AvroFail> {
    Err(AvroFail::Value(message.into()))
}

struct AvroReader<'a> {
    buf: &'a [u8],
    /// May pass the end: the string fast path slices without checking, as the Python does.
    pos: usize,
}

impl<'a> AvroReader<'a> {
    fn byte(&mut self) -> Result<u8, AvroFail> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(AvroFail::Index),
        }
    }

    /// `avroread.read_long` (and the inlined `_varint`, which behaves the same).
    fn long(&mut self) -> Result<i64, AvroFail> {
        let mut b = self.byte()?;
        let mut value: u128 = u128::from(b & 0x7f);
        let mut shift: u32 = 7;
        while b & 0x80 != 0 {
            if shift > 63 {
                return value_error("varint longer than 10 bytes");
            }
            b = self.byte()?;
            value |= u128::from(b & 0x7f) << shift;
            shift += 7;
        }
        if value >> 64 != 0 {
            return value_error("varint exceeds 64 bits");
        }
        let v = value as u64;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn string(&mut self) -> Result<String, AvroFail> {
        let b = match self.buf.get(self.pos) {
            Some(&b) => b,
            None => return Err(AvroFail::Index),
        };
        let (start, end) = if b < 0x80 && b & 1 == 0 {
            (self.pos + 1, self.pos + 1 + usize::from(b >> 1))
        } else {
            let size = i128::from(self.long()?);
            let pos = self.pos as i128;
            let end = pos + size;
            if size < 0 || end > self.buf.len() as i128 {
                return value_error(format!("bad length {} at offset {}", size, pos));
            }
            (self.pos, end as usize)
        };
        let len = self.buf.len();
        let slice = &self.buf[start.min(len)..end.min(len)];
        self.pos = end;
        decode_utf8(slice).map_err(AvroFail::Unicode)
    }

    fn read(&mut self, schema: &Avro) -> Result<Json, AvroFail> {
        match schema {
            Avro::Null => Ok(Json::Null),
            Avro::Boolean => {
                let b = self.byte()?;
                if b > 1 {
                    return value_error("bad boolean");
                }
                Ok(Json::Bool(b == 1))
            }
            Avro::Long => Ok(Json::Int(self.long()?)),
            Avro::String => Ok(Json::Str(self.string()?)),
            Avro::Enum(symbols) => {
                let index = self.long()?;
                if index < 0 {
                    return value_error("negative enum index");
                }
                match symbols.get(index as usize) {
                    Some(symbol) => Ok(Json::Str(symbol.clone())),
                    None => Err(AvroFail::TupleIndex),
                }
            }
            Avro::Union(branches) => {
                let b = self.byte()?;
                match branches.get(usize::from(b / 2)) {
                    Some(branch) if b % 2 == 0 => self.read(branch),
                    _ => value_error("bad union index"),
                }
            }
            Avro::Record(fields) => {
                // Field names are unique (the compiler checks), so no dict semantics needed.
                let values = self.fields(fields)?;
                let names = fields.iter().map(|(name, _)| name.clone());
                Ok(Json::Object(names.zip(values).collect()))
            }
            Avro::Array(items) => {
                let mut out = Vec::new();
                self.blocks(|reader| {
                    out.push(reader.read(items)?);
                    Ok(())
                })?;
                Ok(Json::List(out))
            }
            Avro::Map(values) => {
                let mut out = DictBuilder::new();
                self.blocks(|reader| {
                    let key = reader.string()?;
                    let value = reader.read(values)?;
                    out.insert(key, value);
                    Ok(())
                })?;
                Ok(Json::Object(out.finish()))
            }
        }
    }

    /// A record's values, in field order.
    fn fields(&mut self, fields: &[(String, Avro)]) -> Result<Vec<Json>, AvroFail> {
        let mut values = Vec::with_capacity(fields.len());
        for (_, schema) in fields {
            values.push(self.read(schema)?);
        }
        Ok(values)
    }

    /// Avro blocks: a count (negative: followed by the block's byte size), the items, and
    /// so on until a zero count; `check_count` refuses a count larger than the bytes left.
    fn blocks<F>(&mut self, mut item: F) -> Result<(), AvroFail>
    where
        F: FnMut(&mut Self) -> Result<(), AvroFail>,
    {
        let mut items = i128::from(self.long()?);
        while items != 0 {
            if items < 0 {
                items = -items;
                self.long()?;
            }
            let left = self.buf.len() as i128 - self.pos as i128;
            if items > left {
                return value_error(format!(
                    "block count {} exceeds the {} bytes left",
                    items, left
                ));
            }
            for _ in 0..items {
                item(self)?;
            }
            items = i128::from(self.long()?);
        }
        Ok(())
    }
}

/// `bytes.decode()` (UTF-8, strict): the text, or `str(UnicodeDecodeError)`.
fn decode_utf8(raw: &[u8]) -> Result<String, String> {
    match std::str::from_utf8(raw) {
        Ok(text) => Ok(text.to_owned()),
        Err(e) => {
            let start = e.valid_up_to();
            let first = raw.get(start).copied().unwrap_or(0);
            let (end, why) = match e.error_len() {
                None => (raw.len(), "unexpected end of data"),
                Some(n) => {
                    let invalid_start = n == 1 && matches!(first, 0x80..=0xc1 | 0xf5..=0xff);
                    let why = if invalid_start {
                        "invalid start byte"
                    } else {
                        "invalid continuation byte"
                    };
                    (start + n, why)
                }
            };
            Err(if end - start == 1 {
                format!(
                    "'utf-8' codec can't decode byte 0x{:02x} in position {}: {}",
                    first, start, why
                )
            } else {
                format!(
                    "'utf-8' codec can't decode bytes in position {}-{}: {}",
                    start,
                    end - 1,
                    why
                )
            })
        }
    }
}

// -- JSON as orjson reads it --------------------------------------------------------------

/// A value `orjson.loads` returns: ints between -2**63 and 2**64-1, floats beyond.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// `type(value).__name__`.
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Object(_) => "dict",
        }
    }
}

/// yyjson's error codes that decide whether a failure at the end is "unexpected end".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum YyKind {
    Literal,
    String,
    Number,
    Character,
    Structure,
    Content,
    Depth,
    Empty,
    /// The value array outgrew orjson's buffer (inside a reader: may read as truncation).
    Memory,
    /// The input copy did not fit (in `yyjson_read_opts`: reported as is, at 0).
    MemoryTop,
}

struct YyError {
    pos: usize,
    kind: YyKind,
    msg: &'static str,
}

fn yy_err<T>(pos: usize, kind: YyKind, msg: &'static str) -> Result<T, YyError> {
    Err(YyError { pos, kind, msg })
}

/// orjson builds yyjson with `YYJSON_READER_DEPTH_LIMIT=1024`.
const YY_DEPTH_LIMIT: usize = 1024;

const MSG_MALLOC: &str = "failed to allocate memory";
const MSG_VALUE: &str = "unexpected character, expected a JSON value";
const MSG_ARR_END: &str = "unexpected character, expected ',' or ']'";
const MSG_OBJ_KEY: &str = "unexpected character, expected a string key";
const MSG_OBJ_SEP: &str = "unexpected character, expected ':' after key";
const MSG_OBJ_END: &str = "unexpected character, expected ',' or '}'";

/// `orjson.loads(raw)` (orjson 3.13.0, its vendored yyjson): the value, or
/// `str(JSONDecodeError)`.
fn orjson_loads(raw: &[u8]) -> Result<Value, String> {
    let doc = match std::str::from_utf8(raw) {
        Ok(doc) => doc,
        Err(_) => {
            return Err(decode_error_text(
                "str is not valid UTF-8: surrogates not allowed",
                "",
                0,
            ))
        }
    };
    if raw.is_empty() {
        return Err(decode_error_text(
            "Input is a zero-length, empty document",
            "",
            0,
        ));
    }
    let parser = YyParser { data: raw };
    match parser.document() {
        Ok(value) => Ok(value),
        Err(e) => {
            let (mut msg, pos) = if e.kind != YyKind::MemoryTop && parser.truncated(e.pos, e.kind) {
                ("unexpected end of data", raw.len())
            } else {
                (e.msg, e.pos)
            };
            // RFC 8259 wants UTF-8: yyjson names a byte order mark failing at the start.
            let memory = matches!(e.kind, YyKind::Memory | YyKind::MemoryTop);
            if pos == 0 && !memory && raw.starts_with(b"\xef\xbb\xbf") {
                msg = "UTF-8 byte order mark (BOM) is not supported";
            }
            Err(decode_error_text(msg, doc, pos))
        }
    }
}

/// `str(json.JSONDecodeError(msg, doc, pos))` where orjson gives pos in characters.
fn decode_error_text(msg: &str, doc: &str, byte_pos: usize) -> String {
    let before = doc.get(..byte_pos).unwrap_or(doc);
    let pos = before.chars().count();
    let lineno = before.matches('\n').count() + 1;
    let colno = match before.rfind('\n') {
        Some(i) => pos - before[..i].chars().count(),
        None => pos + 1,
    };
    format!("{}: line {} column {} (char {})", msg, lineno, colno, pos)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

/// yyjson's `char_is_num`: where a number may start ('+' and '.' included: they fail
/// as "no digit after sign").
fn is_number_start(c: u8) -> bool {
    matches!(c, b'-' | b'+' | b'.' | b'0'..=b'9')
}

/// `sizeof(yyjson_doc) / sizeof(yyjson_val)`: the values yyjson reserves for the doc.
const YY_HDR_LEN: usize = 4;

fn align16(size: usize) -> usize {
    (size + 15) & !15
}

/// orjson's fixed buffer for one `loads` (yyjson's pool allocator) and yyjson's value
/// array in it: a document with more values than the buffer holds fails with "failed to
/// allocate memory" where the array cannot grow (deep or dense arrays, for instance).
struct YyPool {
    /// `pool_ctx.size`: the buffer.
    ctx_size: usize,
    /// The value array's chunk and the free chunk right after it.
    chunk: usize,
    free: usize,
    /// Values allocated, and the index of the current one.
    alc_len: usize,
    val: usize,
}

impl YyPool {
    /// The buffer with the input copy in it (None: that copy does not fit).
    fn new(len: usize) -> Option<YyPool> {
        let cap = ((len / 2) * 24 + 256 + 4095) & !4095;
        let mut pool = YyPool {
            ctx_size: cap,
            chunk: 0,
            free: cap.saturating_sub(16),
            alc_len: 0,
            val: YY_HDR_LEN,
        };
        pool.malloc(len + 4)?;
        Some(pool)
    }

    /// `read_root_minify` / `read_root_pretty`'s first value array.
    fn values(&mut self, dat_len: usize, pretty: bool) -> Option<()> {
        let ratio = if pretty { 16 } else { 6 };
        self.alc_len = YY_HDR_LEN + dat_len / ratio + 4;
        self.chunk = self.malloc(self.alc_len * 16)?;
        Some(())
    }

    /// `pool_malloc` from the one free chunk: the chunk size taken.
    fn malloc(&mut self, size: usize) -> Option<usize> {
        if size >= self.ctx_size {
            return None;
        }
        let size = align16(size) + 16;
        if self.free < size {
            return None;
        }
        if self.free >= size + 32 {
            self.free -= size;
            Some(size)
        } else {
            let whole = self.free;
            self.free = 0;
            Some(whole)
        }
    }

    /// `val_incr()`: the next value, growing the array by half when it is full (in place,
    /// into the free chunk after it); false when it cannot.
    fn incr(&mut self) -> bool {
        self.val += 1;
        if self.val < self.alc_len - 2 {
            return true;
        }
        let old = self.alc_len;
        self.alc_len += self.alc_len / 2;
        let raw = self.alc_len * 16;
        if raw >= self.ctx_size {
            return false;
        }
        let new_size = align16(raw) + 16;
        if align16(old * 16) + 16 == new_size {
            return true;
        }
        if self.free > 0 && self.chunk + self.free >= new_size {
            let rest = self.chunk + self.free - new_size;
            if rest > 32 {
                self.chunk = new_size;
                self.free = rest;
            } else {
                self.chunk += self.free;
                self.free = 0;
            }
            return true;
        }
        false
    }

    /// `val++` for an object's value (the array keeps room for it).
    fn bump(&mut self) {
        self.val += 1;
    }
}

enum Frame {
    List(Vec<Value>),
    Object(Vec<(String, Value)>, String),
}

#[derive(Clone, Copy)]
enum State {
    ArrValBegin,
    ArrValEnd,
    ObjKeyBegin,
    ObjKeyEnd,
    ObjValBegin,
    ObjValEnd,
}

/// The reader of orjson's vendored yyjson, built with the non-standard extensions off (no
/// comments, NaN, Infinity or trailing commas; a number beyond a double is an error) and
/// a depth limit of 1024: its errors, message and position, one for one.
struct YyParser<'a> {
    data: &'a [u8],
}

impl<'a> YyParser<'a> {
    /// The byte at `i`; yyjson reads zero padding past the end.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    /// `is_truncated_end`: whether a failure at `pos` is reported as "unexpected end of
    /// data" (the input is valid UTF-8 here, which leaves out yyjson's UTF-8 cases).
    fn truncated(&self, pos: usize, kind: YyKind) -> bool {
        let end = self.len();
        if pos >= end {
            return true;
        }
        match kind {
            YyKind::Literal => {
                let rest = &self.data[pos..];
                [&b"true"[..], b"false", b"null"]
                    .iter()
                    .any(|word| rest.len() < word.len() && word.starts_with(rest))
            }
            YyKind::String => {
                if self.at(pos) != b'\\' {
                    return false;
                }
                let n = end - pos;
                if n == 1 {
                    return true;
                }
                if n <= 5 {
                    return self.at(pos + 1) == b'u'
                        && self.data[pos + 2..].iter().all(|&c| is_hex(c));
                }
                if n <= 11 {
                    // An incomplete surrogate pair.
                    if self.at(pos + 1) != b'u' {
                        return false;
                    }
                    match self.hex4(pos + 2) {
                        Some(hi) if hi & 0xf800 == 0xd800 => {}
                        _ => return false,
                    }
                    let mut c = pos + 6;
                    if c >= end {
                        return true;
                    }
                    let steps: [fn(u8) -> bool; 4] = [
                        |b| b == b'\\',
                        |b| b == b'u',
                        |b| b == b'd' || b == b'D',
                        |b| matches!(b, b'c'..=b'f' | b'C'..=b'F'),
                    ];
                    for ok in steps.iter() {
                        if !ok(self.at(c)) {
                            return false;
                        }
                        c += 1;
                        if c >= end {
                            return true;
                        }
                    }
                    return is_hex(self.at(c));
                }
                false
            }
            _ => false,
        }
    }

    fn document(&self) -> Result<Value, YyError> {
        let mut pool = match YyPool::new(self.len()) {
            Some(pool) => pool,
            None => return yy_err(0, YyKind::MemoryTop, MSG_MALLOC),
        };
        let mut cur = 0;
        if !matches!(self.at(cur), b'{' | b'[') {
            while is_space(self.at(cur)) {
                cur += 1;
            }
            if cur >= self.len() {
                return yy_err(0, YyKind::Empty, "input data is empty");
            }
        }
        match self.at(cur) {
            b'{' | b'[' => self.containers(cur, &mut pool),
            _ => self.single(cur),
        }
    }

    fn single(&self, cur: usize) -> Result<Value, YyError> {
        let c = self.at(cur);
        let (value, end) = if is_number_start(c) {
            self.number(cur)?
        } else if c == b'"' {
            let (text, end) = self.string(cur)?;
            (Value::Str(text), end)
        } else if matches!(c, b't' | b'f' | b'n') {
            self.literal(cur)?
        } else {
            return yy_err(cur, YyKind::Character, MSG_VALUE);
        };
        self.doc_end(end)?;
        Ok(value)
    }

    fn doc_end(&self, mut cur: usize) -> Result<(), YyError> {
        while is_space(self.at(cur)) {
            cur += 1;
        }
        if cur < self.len() {
            return yy_err(cur, YyKind::Content, "unexpected content after document");
        }
        Ok(())
    }

    fn literal(&self, cur: usize) -> Result<(Value, usize), YyError> {
        let (word, value, msg): (&[u8], Value, &'static str) = match self.at(cur) {
            b't' => (
                b"true",
                Value::Bool(true),
                "invalid literal, expected 'true'",
            ),
            b'f' => (
                b"false",
                Value::Bool(false),
                "invalid literal, expected 'false'",
            ),
            _ => (b"null", Value::Null, "invalid literal, expected 'null'"),
        };
        if self.data.get(cur..cur + word.len()) == Some(word) {
            Ok((value, cur + word.len()))
        } else {
            yy_err(cur, YyKind::Literal, msg)
        }
    }

    /// The string, number or literal at `cur` (where one starts).
    fn scalar(&self, cur: usize) -> Result<(Value, usize), YyError> {
        let c = self.at(cur);
        if c == b'"' {
            let (text, end) = self.string(cur)?;
            Ok((Value::Str(text), end))
        } else if is_number_start(c) {
            self.number(cur)
        } else {
            self.literal(cur)
        }
    }

    /// The FSM of `read_root_minify` (`read_root_pretty` skips white space faster and
    /// fails the same way).
    fn containers(&self, start: usize, pool: &mut YyPool) -> Result<Value, YyError> {
        let pretty = is_space(self.at(start + 1)) && is_space(self.at(start + 2));
        if pool.values(self.len() - start, pretty).is_none() {
            return yy_err(start, YyKind::Memory, MSG_MALLOC);
        }
        let mut stack: Vec<Frame> = Vec::new();
        // Per open container: nothing read in it yet (`ctn_len == 0`).
        let mut empty: Vec<bool> = Vec::new();
        let mut cur = start + 1;
        let mut state = if self.at(start) == b'{' {
            stack.push(Frame::Object(Vec::new(), String::new()));
            State::ObjKeyBegin
        } else {
            stack.push(Frame::List(Vec::new()));
            State::ArrValBegin
        };
        empty.push(true);
        loop {
            let c = self.at(cur);
            match state {
                State::ArrValBegin | State::ObjValBegin => {
                    let in_array = matches!(state, State::ArrValBegin);
                    if c == b'{' || c == b'[' {
                        cur += 1;
                        if stack.len() >= YY_DEPTH_LIMIT {
                            return yy_err(cur, YyKind::Depth, "depth limit exceeded");
                        }
                        if !pool.incr() {
                            return yy_err(cur, YyKind::Memory, MSG_MALLOC);
                        }
                        if let Some(last) = empty.last_mut() {
                            *last = false;
                        }
                        if c == b'{' {
                            stack.push(Frame::Object(Vec::new(), String::new()));
                            state = State::ObjKeyBegin;
                        } else {
                            stack.push(Frame::List(Vec::new()));
                            state = State::ArrValBegin;
                        }
                        empty.push(true);
                        continue;
                    }
                    if c == b'"' || is_number_start(c) || matches!(c, b't' | b'f' | b'n') {
                        if !in_array {
                            pool.bump();
                        } else if !pool.incr() {
                            return yy_err(cur, YyKind::Memory, MSG_MALLOC);
                        }
                        let (value, end) = self.scalar(cur)?;
                        cur = end;
                        if let Some(last) = empty.last_mut() {
                            *last = false;
                        }
                        push_value(&mut stack, value);
                        state = if in_array {
                            State::ArrValEnd
                        } else {
                            State::ObjValEnd
                        };
                        continue;
                    }
                    if in_array && c == b']' {
                        cur += 1;
                        if empty.last() != Some(&true) {
                            return self.trailing_comma(cur);
                        }
                        match self.close(&mut stack, &mut empty) {
                            Some(next) => state = next,
                            None => break,
                        }
                        continue;
                    }
                    if is_space(c) {
                        while is_space(self.at(cur)) {
                            cur += 1;
                        }
                        continue;
                    }
                    return yy_err(cur, YyKind::Character, MSG_VALUE);
                }
                State::ArrValEnd | State::ObjValEnd => {
                    let in_array = matches!(state, State::ArrValEnd);
                    if c == b',' {
                        cur += 1;
                        state = if in_array {
                            State::ArrValBegin
                        } else {
                            State::ObjKeyBegin
                        };
                    } else if (in_array && c == b']') || (!in_array && c == b'}') {
                        cur += 1;
                        match self.close(&mut stack, &mut empty) {
                            Some(next) => state = next,
                            None => break,
                        }
                    } else if is_space(c) {
                        while is_space(self.at(cur)) {
                            cur += 1;
                        }
                    } else {
                        let msg = if in_array { MSG_ARR_END } else { MSG_OBJ_END };
                        return yy_err(cur, YyKind::Character, msg);
                    }
                }
                State::ObjKeyBegin => {
                    if c == b'"' {
                        if !pool.incr() {
                            return yy_err(cur, YyKind::Memory, MSG_MALLOC);
                        }
                        let (key, end) = self.string(cur)?;
                        cur = end;
                        if let Some(Frame::Object(_, pending)) = stack.last_mut() {
                            *pending = key;
                        }
                        if let Some(last) = empty.last_mut() {
                            *last = false;
                        }
                        state = State::ObjKeyEnd;
                    } else if c == b'}' {
                        cur += 1;
                        if empty.last() != Some(&true) {
                            return self.trailing_comma(cur);
                        }
                        match self.close(&mut stack, &mut empty) {
                            Some(next) => state = next,
                            None => break,
                        }
                    } else if is_space(c) {
                        while is_space(self.at(cur)) {
                            cur += 1;
                        }
                    } else {
                        return yy_err(cur, YyKind::Character, MSG_OBJ_KEY);
                    }
                }
                State::ObjKeyEnd => {
                    if c == b':' {
                        cur += 1;
                        state = State::ObjValBegin;
                    } else if is_space(c) {
                        while is_space(self.at(cur)) {
                            cur += 1;
                        }
                    } else {
                        return yy_err(cur, YyKind::Character, MSG_OBJ_SEP);
                    }
                }
            }
        }
        // The root container closed: `close` left its value as the only frame's content.
        self.doc_end(cur)?;
        match stack.pop() {
            Some(Frame::List(mut items)) => Ok(items.pop().unwrap_or(Value::Null)),
            _ => Ok(Value::Null),
        }
    }

    /// `do { cur--; } while (*cur != ',');` then the error at that comma.
    fn trailing_comma<T>(&self, mut cur: usize) -> Result<T, YyError> {
        loop {
            if cur == 0 {
                break;
            }
            cur -= 1;
            if self.at(cur) == b',' {
                break;
            }
        }
        yy_err(cur, YyKind::Structure, "trailing comma is not allowed")
    }

    /// Pops the finished container into its parent: the parent's next state, or None when
    /// the root closed (its value is then left in a one-item list frame).
    fn close(&self, stack: &mut Vec<Frame>, empty: &mut Vec<bool>) -> Option<State> {
        let value = match stack.pop() {
            Some(Frame::List(items)) => Value::List(items),
            Some(Frame::Object(entries, _)) => {
                let mut dict = DictBuilder::new();
                for (k, v) in entries {
                    dict.insert(k, v);
                }
                Value::Object(dict.finish())
            }
            None => Value::Null,
        };
        empty.pop();
        match stack.last() {
            None => {
                stack.push(Frame::List(vec![value]));
                None
            }
            Some(Frame::List(_)) => {
                push_value(stack, value);
                Some(State::ArrValEnd)
            }
            Some(Frame::Object(_, _)) => {
                push_value(stack, value);
                Some(State::ObjValEnd)
            }
        }
    }

    /// `read_str` from the opening quote: the text and the position after the closing
    /// quote.
    fn string(&self, start: usize) -> Result<(String, usize), YyError> {
        let mut out: Vec<u8> = Vec::new();
        let mut src = start + 1;
        loop {
            let c = self.at(src);
            if c == b'"' {
                let text = String::from_utf8(out).unwrap_or_default();
                return Ok((text, src + 1));
            }
            if c == b'\\' {
                let simple = match self.at(src + 1) {
                    b'"' => Some(b'"'),
                    b'\\' => Some(b'\\'),
                    b'/' => Some(b'/'),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'u' => None,
                    _ => return yy_err(src, YyKind::String, "invalid escaped sequence in string"),
                };
                if let Some(b) = simple {
                    out.push(b);
                    src += 2;
                    continue;
                }
                let (code, next) = self.unicode_escape(src)?;
                let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                src = next;
                continue;
            }
            if c < 0x20 {
                return yy_err(
                    src,
                    YyKind::String,
                    "unexpected control character in string",
                );
            }
            out.push(c);
            src += 1;
        }
    }

    /// `read_uni_esc` at the backslash of `\uXXXX`: the code point and the position after
    /// the escape (or pair); every failure is reported at that backslash.
    fn unicode_escape(&self, backslash: usize) -> Result<(u32, usize), YyError> {
        let fail = |msg| yy_err(backslash, YyKind::String, msg);
        let hi = match self.hex4(backslash + 2) {
            Some(hi) => hi,
            None => return fail("invalid escaped sequence in string"),
        };
        let src = backslash + 6;
        if hi & 0xf800 != 0xd800 {
            return Ok((hi, src));
        }
        if hi & 0xfc00 != 0xd800 {
            return fail("invalid high surrogate in string");
        }
        if !(self.at(src) == b'\\' && self.at(src + 1) == b'u') {
            return fail("no low surrogate in string");
        }
        let lo = match self.hex4(src + 2) {
            Some(lo) => lo,
            None => return fail("invalid escape in string"),
        };
        if lo & 0xfc00 != 0xdc00 {
            return fail("invalid low surrogate in string");
        }
        Ok(((((hi - 0xd800) << 10) | (lo - 0xdc00)) + 0x10000, src + 6))
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..4 {
            let digit = (self.at(at + i) as char).to_digit(16)?;
            value = (value << 4) | digit;
        }
        Some(value)
    }

    /// `read_num`: the value (int when it fits orjson's int range, else float) and the
    /// position after it.
    fn number(&self, start: usize) -> Result<(Value, usize), YyError> {
        let no_fraction = "no digit after decimal point";
        let no_exponent = "no digit after exponent sign";
        let mut cur = start;
        let negative = self.at(cur) == b'-';
        if negative {
            cur += 1;
        }
        if !is_digit(self.at(cur)) {
            return yy_err(cur, YyKind::Number, "no digit after sign");
        }
        let mut is_float = false;
        if self.at(cur) == b'0' {
            cur += 1;
            let c = self.at(cur);
            if !(is_digit(c) || c == b'.' || c == b'e' || c == b'E') {
                return Ok((Value::Int(0), cur));
            }
            let mut nonzero_fraction = false;
            if c == b'.' {
                cur += 1;
                if !is_digit(self.at(cur)) {
                    return yy_err(cur, YyKind::Number, no_fraction);
                }
                while self.at(cur) == b'0' {
                    cur += 1;
                }
                if is_digit(self.at(cur)) {
                    nonzero_fraction = true;
                    while is_digit(self.at(cur)) {
                        cur += 1;
                    }
                    is_float = true;
                }
            }
            if !nonzero_fraction {
                if is_digit(self.at(cur)) {
                    return yy_err(
                        cur - 1,
                        YyKind::Number,
                        "number with leading zero is not allowed",
                    );
                }
                if matches!(self.at(cur), b'e' | b'E') {
                    cur += 1;
                    if matches!(self.at(cur), b'+' | b'-') {
                        cur += 1;
                    }
                    if !is_digit(self.at(cur)) {
                        return yy_err(cur, YyKind::Number, no_exponent);
                    }
                    while is_digit(self.at(cur)) {
                        cur += 1;
                    }
                }
                let zero = if negative { -0.0 } else { 0.0 };
                return Ok((Value::Float(zero), cur));
            }
        } else {
            while is_digit(self.at(cur)) {
                cur += 1;
            }
            if self.at(cur) == b'.' {
                cur += 1;
                if !is_digit(self.at(cur)) {
                    return yy_err(cur, YyKind::Number, no_fraction);
                }
                while is_digit(self.at(cur)) {
                    cur += 1;
                }
                is_float = true;
            }
        }
        if matches!(self.at(cur), b'e' | b'E') {
            cur += 1;
            if matches!(self.at(cur), b'+' | b'-') {
                cur += 1;
            }
            if !is_digit(self.at(cur)) {
                return yy_err(cur, YyKind::Number, no_exponent);
            }
            while is_digit(self.at(cur)) {
                cur += 1;
            }
            is_float = true;
        }
        let text = std::str::from_utf8(&self.data[start..cur]).unwrap_or("0");
        if !is_float && cur - start <= 21 {
            if let Ok(n) = text.parse::<i128>() {
                if (-(1i128 << 63)..(1i128 << 64)).contains(&n) {
                    return Ok((Value::Int(n), cur));
                }
            }
        }
        // Correctly rounded, as yyjson's reader (with its bigint fallback) is.
        let value: f64 = text.parse().unwrap_or(f64::INFINITY);
        if value.is_infinite() {
            return yy_err(
                start,
                YyKind::Number,
                "number is infinity when parsed as double",
            );
        }
        Ok((Value::Float(value), cur))
    }
}

fn push_value(stack: &mut [Frame], value: Value) {
    match stack.last_mut() {
        Some(Frame::List(items)) => items.push(value),
        Some(Frame::Object(entries, pending)) => {
            entries.push((std::mem::take(pending), value));
        }
        None => {}
    }
}

// -- JSON records -> the Avro record shape (schemas/jsonshape.py) ----------------------------

/// A compiled `jsonshape` converter.
#[derive(Clone, Debug)]
enum Conv {
    Record(Vec<ConvField>),
    Array(Box<Conv>),
    Map(Box<Conv>),
    Str,
    Int(i128, i128),
    Bool,
    Timestamp,
    /// Top-level `event_name` (INVALID_CUSTOM_EVENT on a wrong type).
    EventName,
    /// Top-level `properties` (INVALID_PROPERTIES on a wrong type).
    Properties,
}

#[derive(Clone, Debug)]
struct ConvField {
    name: String,
    conv: Conv,
    /// The schema's default; None: the field has none (Some(Null) is a null default).
    default: Option<Json>,
}

const INT32: (i128, i128) = (-(1i128 << 31), (1i128 << 31) - 1);
const INT64: (i128, i128) = (-(1i128 << 63), (1i128 << 63) - 1);

/// `jsonshape._record` at compile time.
fn conv_record(definition: &Json, prefix: &str) -> Result<Conv, String> {
    let fields = match field(definition, "fields") {
        Some(Json::List(fields)) => fields,
        _ => return Err(format!("record at {:?} lacks its fields", prefix)),
    };
    let mut out = Vec::new();
    for f in fields {
        let name = match field(f, "name") {
            Some(Json::Str(name)) => name.clone(),
            _ => return Err("a field lacks its name".into()),
        };
        let path = join(prefix, &name);
        let conv = match path.as_str() {
            "event_name" => Conv::EventName,
            "properties" => Conv::Properties,
            _ => {
                let ftype = field(f, "type").ok_or(format!("field {} lacks its type", path))?;
                conv_type(ftype, &path)?
            }
        };
        out.push(ConvField {
            name,
            conv,
            default: field(f, "default").cloned(),
        });
    }
    Ok(Conv::Record(out))
}

/// `jsonshape._converter`.
fn conv_type(schema: &Json, path: &str) -> Result<Conv, String> {
    match schema {
        Json::List(branches) => {
            let rest: Vec<&Json> = branches.iter().filter(|b| **b != Json::s("null")).collect();
            if rest.len() != 1 {
                return Err(format!(
                    "JSON input supports only [null, T] unions, not {:?} at {}",
                    schema, path
                ));
            }
            conv_type(rest[0], path)
        }
        Json::Object(_) => {
            if field(schema, "logicalType") == Some(&Json::s("timestamp-millis")) {
                return Ok(Conv::Timestamp);
            }
            let kind = field(schema, "type").ok_or(format!("type at {} lacks \"type\"", path))?;
            match kind {
                Json::Str(k) if k == "array" => {
                    let items = field(schema, "items").ok_or("an array lacks \"items\"")?;
                    Ok(Conv::Array(Box::new(conv_type(items, path)?)))
                }
                Json::Str(k) if k == "map" => {
                    let values = field(schema, "values").ok_or("a map lacks \"values\"")?;
                    Ok(Conv::Map(Box::new(conv_type(values, path)?)))
                }
                Json::Str(k) if k == "record" => conv_record(schema, path),
                other => conv_type(other, path),
            }
        }
        Json::Str(name) => match name.as_str() {
            "string" => Ok(Conv::Str),
            "long" => Ok(Conv::Int(INT64.0, INT64.1)),
            "int" => Ok(Conv::Int(INT32.0, INT32.1)),
            "boolean" => Ok(Conv::Bool),
            _ => Err(format!(
                "JSON input does not support Avro type {} at {}",
                py_repr(name, false),
                path
            )),
        },
        other => Err(format!(
            "JSON input does not support Avro type {:?} at {}",
            other, path
        )),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{}.{}", path, name)
    }
}

type Bad = (Reason, String);

fn bad<T>(reason: Reason, detail: String) -> Result<T, Bad> {
    Err((reason, detail))
}

/// `jsonshape._fresh`: `{}` and `[]` defaults are new, empty values (any dict or list
/// default becomes an empty one, as the Python does).
fn fresh(default: &Json) -> Json {
    match default {
        Json::Object(_) => Json::Object(Vec::new()),
        Json::List(_) => Json::List(Vec::new()),
        other => other.clone(),
    }
}

/// `jsonshape._shown`: a bad value for a detail.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::List(_) => return "an array".to_owned(),
        Value::Object(_) => return "an object".to_owned(),
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => float_repr(*f),
        Value::Str(s) => py_repr(s, false),
    };
    if text.chars().count() <= 40 {
        text
    } else {
        let mut out: String = text.chars().take(37).collect();
        out.push_str("...");
        out
    }
}

fn convert(conv: &Conv, value: &Value, at: &str) -> Result<Json, Bad> {
    match conv {
        Conv::Record(fields) => {
            let entries = match value {
                Value::Object(entries) => entries,
                _ => {
                    let what = if at.is_empty() { "the record" } else { at };
                    return bad(Reason::WrongType, format!("{} must be a JSON object", what));
                }
            };
            let mut out = DictBuilder::new();
            for f in fields {
                let found = entries.iter().find(|(k, _)| *k == f.name).map(|(_, v)| v);
                let converted = match found {
                    None | Some(Value::Null) => match &f.default {
                        Some(default) => fresh(default),
                        None => {
                            return bad(
                                Reason::MissingField,
                                format!("{} is required", join(at, &f.name)),
                            )
                        }
                    },
                    Some(v) => convert(&f.conv, v, &join(at, &f.name))?,
                };
                out.insert(f.name.clone(), converted);
            }
            Ok(Json::Object(out.finish()))
        }
        Conv::Array(items) => match value {
            Value::List(values) => {
                let mut out = Vec::with_capacity(values.len());
                for (i, item) in values.iter().enumerate() {
                    out.push(convert(items, item, &format!("{}[{}]", at, i))?);
                }
                Ok(Json::List(out))
            }
            _ => bad(Reason::WrongType, format!("{} must be a JSON array", at)),
        },
        Conv::Map(values) => match value {
            Value::Object(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, item) in entries {
                    out.push((
                        key.clone(),
                        convert(values, item, &format!("{}.{}", at, key))?,
                    ));
                }
                Ok(Json::Object(out))
            }
            _ => bad(Reason::WrongType, format!("{} must be a JSON object", at)),
        },
        Conv::Str => match value {
            Value::Str(s) => Ok(Json::Str(s.clone())),
            other => bad(
                Reason::WrongType,
                format!("{} must be a string, got {}", at, other.type_name()),
            ),
        },
        Conv::Int(low, high) => match value {
            Value::Int(n) => {
                if n < low || n > high {
                    return bad(
                        Reason::WrongType,
                        format!("{}={} is outside {}..{}", at, n, low, high),
                    );
                }
                Ok(Json::Int(*n as i64))
            }
            other => bad(
                Reason::WrongType,
                format!(
                    "{} must be an integer, got {} (money is integer minor units: 1299 for 12.99)",
                    at,
                    shown(other)
                ),
            ),
        },
        Conv::Bool => match value {
            Value::Bool(b) => Ok(Json::Bool(*b)),
            _ => bad(Reason::WrongType, format!("{} must be true or false", at)),
        },
        Conv::Timestamp => match value {
            Value::Int(n) => {
                if *n < INT64.0 || *n > INT64.1 {
                    return bad(
                        Reason::WrongType,
                        format!("{}={} is not an epoch-millisecond time", at, n),
                    );
                }
                Ok(Json::Int(*n as i64))
            }
            Value::Str(s) => match iso_epoch_ms(s) {
                Some(ms) => Ok(Json::Int(ms)),
                None => bad(
                    Reason::WrongType,
                    format!(
                        "{}={} is not an ISO-8601 time with a zone; send epoch milliseconds or \
                         e.g. 2024-05-01T12:00:00.123Z",
                        at,
                        shown(value)
                    ),
                ),
            },
            _ => bad(
                Reason::WrongType,
                format!(
                    "{} must be epoch milliseconds (int) or an ISO-8601 string",
                    at
                ),
            ),
        },
        Conv::EventName => match value {
            Value::Str(s) => Ok(Json::Str(s.clone())),
            other => bad(
                Reason::InvalidCustomEvent,
                format!(
                    "{} must be a string (the custom event's name) or null, not {}",
                    at,
                    other.type_name()
                ),
            ),
        },
        Conv::Properties => match value {
            Value::Object(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, item) in entries {
                    match item {
                        Value::Str(s) => out.push((key.clone(), Json::Str(s.clone()))),
                        other => {
                            let short: String = key.chars().take(40).collect();
                            return bad(
                                Reason::InvalidProperties,
                                format!(
                                    "{}[{}] must be a string, got {}; values are strings \
                                     (send \"3\", not 3)",
                                    at,
                                    py_repr(&short, true),
                                    other.type_name()
                                ),
                            );
                        }
                    }
                }
                Ok(Json::Object(out))
            }
            other => bad(
                Reason::InvalidProperties,
                format!(
                    "{} must be a JSON object of string values, got {}",
                    at,
                    other.type_name()
                ),
            ),
        },
    }
}

/// `EventCodec._read_json`: parse, check it is an object, default `sent_time`, shape.
fn read_json(raw: &[u8], conv: &Conv) -> RecordRead<'static> {
    let mut obj = match orjson_loads(raw) {
        Ok(obj) => obj,
        Err(e) => return rejected(Reason::Undecodable, clip(&format!("invalid JSON: {}", e))),
    };
    let entries = match &mut obj {
        Value::Object(entries) => entries,
        _ => {
            return rejected(
                Reason::Undecodable,
                "JSON record must be an object".to_owned(),
            )
        }
    };
    let sent_missing = matches!(
        entries.iter().find(|(k, _)| k == "sent_time"),
        None | Some((_, Value::Null))
    );
    if sent_missing {
        let event_time = entries
            .iter()
            .find(|(k, _)| k == "event_time")
            .map(|(_, v)| v.clone());
        if let Some(event_time) = event_time {
            match entries.iter_mut().find(|(k, _)| k == "sent_time") {
                Some(entry) => entry.1 = event_time,
                None => entries.push(("sent_time".to_owned(), event_time)),
            }
        }
    }
    match convert(conv, &obj, "").map(ReaderRecord::from_json) {
        Ok(Some(record)) => RecordRead::Record(record),
        // The converter of a record schema makes an object of an object.
        Ok(None) => rejected(Reason::Undecodable, "JSON record must be an object".into()),
        Err((reason, detail)) => rejected(reason, detail),
    }
}

// -- datetime.fromisoformat (CPython 3.11's C implementation) ----------------------------

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    const DAYS: [i64; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if month == 2 && is_leap(year) {
        29
    } else {
        DAYS[month as usize]
    }
}

/// Ordinal of (year, month, day), 0001-01-01 being 1 (`ymd_to_ord`, valid fields only).
fn ymd_to_ord(year: i64, month: i64, day: i64) -> i64 {
    const BEFORE: [i64; 13] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let y = year - 1;
    let mut days = BEFORE[month as usize];
    if month > 2 && is_leap(year) {
        days += 1;
    }
    y * 365 + y / 4 - y / 100 + y / 400 + days + day
}

/// `ord_to_ymd` for ordinal >= 1.
fn ord_to_ymd(ordinal: i64) -> (i64, i64, i64) {
    let n = ordinal - 1;
    let n400 = n / 146_097;
    let n = n % 146_097;
    let n100 = n / 36_524;
    let n = n % 36_524;
    let n4 = n / 1_461;
    let n = n % 1_461;
    let n1 = n / 365;
    let n = n % 365;
    let year = n400 * 400 + 1 + n100 * 100 + n4 * 4 + n1;
    if n1 == 4 || n100 == 4 {
        return (year - 1, 12, 31);
    }
    let mut month = 1;
    while month < 12 && ymd_to_ord(year, month + 1, 1) - ymd_to_ord(year, 1, 1) <= n {
        month += 1;
    }
    let day = n - (ymd_to_ord(year, month, 1) - ymd_to_ord(year, 1, 1)) + 1;
    (year, month, day)
}

fn iso_week1_monday(year: i64) -> i64 {
    let first_day = ymd_to_ord(year, 1, 1);
    let first_weekday = (first_day + 6) % 7;
    let mut monday = first_day - first_weekday;
    if first_weekday > 3 {
        monday += 7;
    }
    monday
}

struct IsoText<'a> {
    s: &'a [u8],
}

impl<'a> IsoText<'a> {
    /// The byte at `i`; the NUL terminator (and beyond) reads as 0, as in the C code.
    fn at(&self, i: isize) -> u8 {
        if i < 0 {
            return 0;
        }
        self.s.get(i as usize).copied().unwrap_or(0)
    }

    fn digits(&self, p: &mut isize, count: usize) -> Option<i64> {
        let mut value = 0i64;
        for _ in 0..count {
            let c = self.at(*p);
            *p += 1;
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(c - b'0');
        }
        Some(value)
    }

    fn separator(&self) -> isize {
        let len = self.s.len() as isize;
        if len == 7 {
            return 7;
        }
        if self.at(4) == b'-' {
            if self.at(5) == b'W' {
                if len < 8 {
                    return -1;
                }
                if len > 8 && self.at(8) == b'-' {
                    if len == 9 {
                        return -1;
                    }
                    if len > 10 && self.at(10).is_ascii_digit() {
                        return 8;
                    }
                    return 10;
                }
                return 8;
            }
            return 10;
        }
        if self.at(4) == b'W' {
            let mut idx: isize = 7;
            while idx < len && self.at(idx).is_ascii_digit() {
                idx += 1;
            }
            if idx < 9 {
                return idx;
            }
            return if idx % 2 == 0 { 7 } else { 8 };
        }
        8
    }

    /// `parse_isoformat_date`; None for any failure.
    fn date(&self, len: isize) -> Option<(i64, i64, i64)> {
        let mut p: isize = 0;
        let year = self.digits(&mut p, 4)?;
        let uses_separator = self.at(p) == b'-';
        if uses_separator {
            p += 1;
        }
        if self.at(p) == b'W' {
            p += 1;
            let week = self.digits(&mut p, 2)?;
            let day = if p < len {
                if uses_separator {
                    let c = self.at(p);
                    p += 1;
                    if c != b'-' {
                        return None;
                    }
                }
                self.digits(&mut p, 1)?
            } else {
                1
            };
            return iso_to_ymd(year, week, day);
        }
        let month = self.digits(&mut p, 2)?;
        if uses_separator {
            let c = self.at(p);
            p += 1;
            if c != b'-' {
                return None;
            }
        }
        let day = self.digits(&mut p, 2)?;
        Some((year, month, day))
    }

    /// `parse_hh_mm_ss_ff` over [start, end): ([hour, minute, second], microsecond,
    /// whether something follows); None where the C code returns -3 or -4.
    fn hh_mm_ss_ff(&self, start: isize, end: isize) -> Option<([i64; 3], i64, bool)> {
        let mut vals = [0i64; 3];
        let mut p = start;
        let mut has_separator = true;
        let mut i = 0;
        while i < 3 {
            vals[i] = self.digits(&mut p, 2)?;
            let c = self.at(p);
            p += 1;
            if i == 0 {
                has_separator = c == b':';
            }
            if p >= end {
                return Some((vals, 0, c != 0));
            }
            if has_separator && c == b':' {
                i += 1;
                continue;
            }
            if c == b'.' || c == b',' {
                break;
            }
            if has_separator {
                return None;
            }
            p -= 1;
            i += 1;
        }
        const CORRECTION: [i64; 5] = [100_000, 10_000, 1_000, 100, 10];
        let remains = end - p;
        let to_parse = if remains >= 6 {
            6
        } else {
            remains.max(0) as usize
        };
        let mut microsecond = self.digits(&mut p, to_parse)?;
        if let Some(factor) = CORRECTION.get(to_parse.wrapping_sub(1)) {
            microsecond *= factor;
        }
        while self.at(p).is_ascii_digit() {
            p += 1;
        }
        Some((vals, microsecond, self.at(p) != 0))
    }

    /// `parse_isoformat_time`: the clock, the microsecond and the offset (seconds,
    /// microseconds) when the text has a zone; None where the C code fails.
    #[allow(clippy::type_complexity)]
    fn time(&self, start: isize, len: isize) -> Option<([i64; 3], i64, Option<(i64, i64)>)> {
        let end = start + len;
        let mut tz = start;
        loop {
            if matches!(self.at(tz), b'Z' | b'+' | b'-') {
                break;
            }
            tz += 1;
            if tz >= end {
                break;
            }
        }
        let (clock, microsecond, more) = self.hh_mm_ss_ff(start, tz)?;
        if tz == end {
            return if more {
                None
            } else {
                Some((clock, microsecond, None))
            };
        }
        if self.at(tz) == b'Z' {
            return if self.at(tz + 1) != 0 {
                None
            } else {
                Some((clock, microsecond, Some((0, 0))))
            };
        }
        let sign = if self.at(tz) == b'-' { -1 } else { 1 };
        match self.hh_mm_ss_ff(tz + 1, end) {
            Some((t, tz_microsecond, false)) => Some((
                clock,
                microsecond,
                Some((
                    sign * (t[0] * 3600 + t[1] * 60 + t[2]),
                    sign * tz_microsecond,
                )),
            )),
            _ => None,
        }
    }
}

/// `iso_to_ymd` for a week date; None where CPython raises ValueError.
fn iso_to_ymd(year: i64, week: i64, day: i64) -> Option<(i64, i64, i64)> {
    if week <= 0 || week >= 53 {
        let mut out_of_range = true;
        if week == 53 && year >= 1 {
            let first_weekday = (ymd_to_ord(year, 1, 1) + 6) % 7;
            if first_weekday == 3 || (first_weekday == 2 && is_leap(year)) {
                out_of_range = false;
            }
        }
        if out_of_range {
            return None;
        }
    }
    if day <= 0 || day >= 8 {
        return None;
    }
    // Year 0: CPython 3.11's C code computes with ordinals below 1 (reading past its
    // tables); every such date raises ValueError there, which tests/native/test_records.py
    // checks for all weeks and days.
    if year < 1 {
        return None;
    }
    let ordinal = iso_week1_monday(year) + (week - 1) * 7 + day - 1;
    Some(ord_to_ymd(ordinal))
}

/// `(datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)` for an aware
/// result, as CPython 3.11 computes it; None when fromisoformat raises ValueError or the
/// time has no zone (`jsonshape._timestamp` rejects both the same way).
pub fn iso_epoch_ms(text: &str) -> Option<i64> {
    if text.chars().count() < 7 {
        return None;
    }
    let iso = IsoText { s: text.as_bytes() };
    let len = text.len() as isize;
    let separator = iso.separator();
    if separator < 0 {
        return None;
    }
    let (year, month, day) = iso.date(separator)?;
    let mut clock = [0i64; 3];
    let mut microsecond = 0;
    let mut zone = None;
    if len > separator {
        let lead = iso.at(separator);
        let width = if lead & 0x80 == 0 {
            1
        } else {
            match lead & 0xf0 {
                0xe0 => 3,
                0xf0 => 4,
                _ => 2,
            }
        };
        let p = separator + width;
        let (c, us, tz) = iso.time(p, len - p)?;
        clock = c;
        microsecond = us;
        zone = tz;
    }
    let (offset_s, offset_us) = zone?;
    let offset = if offset_s == 0 {
        0 // UTC; 3.11 drops the microseconds of a zero-second offset
    } else {
        let total = offset_s * 1_000_000 + offset_us;
        if total <= -86_400_000_000 || total >= 86_400_000_000 {
            return None;
        }
        total
    };
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if clock[0] > 23 || clock[1] > 59 || clock[2] > 59 || microsecond > 999_999 {
        return None;
    }
    let days = ymd_to_ord(year, month, day) - ymd_to_ord(1970, 1, 1);
    let seconds = days * 86_400 + clock[0] * 3_600 + clock[1] * 60 + clock[2];
    let total_us = seconds * 1_000_000 + microsecond - offset;
    Some(total_us.div_euclid(1_000))
}

// -- Python reprs -------------------------------------------------------------------------

/// `repr(raw)` of a bytes object.
pub fn py_bytes_repr(raw: &[u8]) -> String {
    let quote = if raw.contains(&b'\'') && !raw.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::with_capacity(raw.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &c in raw {
        if c == quote || c == b'\\' {
            out.push('\\');
            out.push(c as char);
        } else if c == b'\t' {
            out.push_str("\\t");
        } else if c == b'\n' {
            out.push_str("\\n");
        } else if c == b'\r' {
            out.push_str("\\r");
        } else if !(0x20..0x7f).contains(&c) {
            let _ = write!(out, "\\x{:02x}", c);
        } else {
            out.push(c as char);
        }
    }
    out.push(quote as char);
    out
}

/// The shortest decimal digits that read back as `x` (> 0, finite) and the exponent of
/// the first one, chosen as CPython's `repr` (David Gay's dtoa, mode 0) does: of the
/// shortest round-tripping strings the one nearest to `x`, a tie to the even digit.
/// (Rust's `{:e}` is shortest too but breaks that tie upwards.)
fn shortest_digits(x: f64) -> (Vec<u8>, i64) {
    // Every double has a finite decimal expansion of at most 767 significant digits.
    let exact = format!("{:.800e}", x);
    let (mantissa, exponent) = exact.split_once('e').unwrap_or((exact.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let reads_back = |d: &[u8], e: i64| -> bool {
        let mut text = String::with_capacity(d.len() + 8);
        text.push(d[0] as char);
        text.push('.');
        text.extend(d[1..].iter().map(|&c| c as char));
        let _ = write!(text, "e{}", e);
        text.parse::<f64>().ok() == Some(x)
    };
    for n in 1..digits.len() {
        let floor = digits[..n].to_vec();
        let mut ceil = floor.clone();
        let mut ceil_exponent = exponent;
        let mut i = n;
        loop {
            if i == 0 {
                // 99..9 rounded up: 10..0, one decimal place higher.
                ceil.insert(0, b'1');
                ceil.pop();
                ceil_exponent += 1;
                break;
            }
            i -= 1;
            if ceil[i] == b'9' {
                ceil[i] = b'0';
            } else {
                ceil[i] += 1;
                break;
            }
        }
        let floor_ok = reads_back(&floor, exponent);
        let ceil_ok = reads_back(&ceil, ceil_exponent);
        let pick_ceil = match (floor_ok, ceil_ok) {
            (false, false) => continue,
            (true, false) => false,
            (false, true) => true,
            (true, true) => {
                let rest = &digits[n..];
                match rest[0].cmp(&b'5') {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Less => false,
                    // trailing zeros are gone: more digits means beyond the half
                    std::cmp::Ordering::Equal if rest.len() > 1 => true,
                    std::cmp::Ordering::Equal => (floor[n - 1] - b'0') % 2 == 1,
                }
            }
        };
        let (mut chosen, e) = if pick_ceil {
            (ceil, ceil_exponent)
        } else {
            (floor, exponent)
        };
        while chosen.len() > 1 && chosen.last() == Some(&b'0') {
            chosen.pop();
        }
        return (chosen, e);
    }
    (digits, exponent)
}

/// `repr(x)` of a float, as CPython's `float_repr_style = 'short'` writes it.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let mut out = String::new();
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return out;
    }
    let (digits, exponent) = shortest_digits(x.abs());
    let digits: String = digits.iter().map(|&c| c as char).collect();
    let decpt = exponent + 1;
    let n = digits.len() as i64;
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..-decpt {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= n {
        out.push_str(&digits);
        for _ in 0..decpt - n {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        out.push_str(&digits[..decpt as usize]);
        out.push('.');
        out.push_str(&digits[decpt as usize..]);
    }
    out
}

// -- probes (tests/native/test_records.py) ---------------------------------------------------

fn probe_err<T>(message: impl Into<String>) -> JsonResult<T> {
    Err(JsonError(message.into()))
}

fn from_hex(text: &str) -> JsonResult<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return probe_err("odd hex length");
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return probe_err("not hex"),
        }
    }
    Ok(out)
}

fn arg<'a>(args: &'a Json, key: &str) -> JsonResult<&'a Json> {
    match field(args, key) {
        Some(value) => Ok(value),
        None => probe_err(format!("missing argument {:?}", key)),
    }
}

fn read_json_out(read: Result<RecordRead, String>) -> Json {
    match read {
        Ok(RecordRead::Record(record)) => Json::Object(vec![("record".into(), record.into_json())]),
        Ok(RecordRead::Rejected(r)) => Json::Object(vec![
            ("reason".into(), Json::s(r.reason.as_str())),
            ("detail".into(), Json::Str(r.detail)),
        ]),
        Err(e) => Json::Object(vec![("error".into(), Json::Str(e))]),
    }
}

/// `repr()` of what orjson.loads returns, for comparing parsed values.
fn value_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(n) => {
            let _ = write!(out, "{}", n);
        }
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => out.push_str(&py_repr(s, false)),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                value_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&py_repr(k, false));
                out.push_str(": ");
                value_repr(v, out);
            }
            out.push('}');
        }
    }
}

fn each_str(args: &Json, f: impl Fn(&str) -> JsonResult<Json>) -> JsonResult<Json> {
    let items = args.list("args")?;
    let out: JsonResult<Vec<Json>> = items.iter().map(|item| f(item.str("item")?)).collect();
    Ok(Json::List(out?))
}

pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    let result = match name {
        // {"registry": {...}, "max_payload_bytes": n, "records": [[stream, hex], ...]} ->
        // one JSON text per record: {"record": ...} | {"reason", "detail"} | {"error"}
        "records.read_many" => (|| {
            let registry = Registry::from_json(arg(args, "registry")?).map_err(JsonError)?;
            let max = arg(args, "max_payload_bytes")?.int("max_payload_bytes")?;
            let mut out = Vec::new();
            for record in arg(args, "records")?.list("records")? {
                let pair = record.list("record")?;
                if pair.len() != 2 {
                    return probe_err("a record is [stream, hex]");
                }
                let raw = from_hex(pair[1].str("hex")?)?;
                let read = registry.read_record(&raw, pair[0].str("stream")?, max);
                let text = crate::json::to_bytes(&read_json_out(read));
                out.push(Json::Str(String::from_utf8(text).unwrap_or_default()));
            }
            Ok(Json::List(out))
        })(),
        "records.registry_error" => Ok(match Registry::from_json(args) {
            Ok(_) => Json::Null,
            Err(e) => Json::Str(e),
        }),
        "records.iso_ms" => each_str(args, |text| Ok(Json::opt_i(iso_epoch_ms(text)))),
        "records.repr" => each_str(args, |text| {
            Ok(Json::List(vec![
                Json::Str(py_repr(text, false)),
                Json::Str(py_repr(text, true)),
            ]))
        }),
        "records.float_repr" => each_str(args, |text| match text.parse::<f64>() {
            Ok(x) => Ok(Json::Str(float_repr(x))),
            Err(_) => probe_err(format!("not a float: {}", text)),
        }),
        "records.utf8" => each_str(args, |hex| {
            Ok(match decode_utf8(&from_hex(hex)?) {
                Ok(text) => Json::Object(vec![("ok".into(), Json::Str(text))]),
                Err(e) => Json::Object(vec![("error".into(), Json::Str(e))]),
            })
        }),
        "records.loads" => each_str(args, |hex| {
            Ok(match orjson_loads(&from_hex(hex)?) {
                Ok(value) => {
                    let mut text = String::new();
                    value_repr(&value, &mut text);
                    Json::Object(vec![("ok".into(), Json::Str(text))])
                }
                Err(e) => Json::Object(vec![("error".into(), Json::Str(e))]),
            })
        }),
        "records.bytes_repr" => each_str(args, |hex| Ok(Json::Str(py_bytes_repr(&from_hex(hex)?)))),
        "records.not_printable" => Ok(Json::Object(vec![
            ("version".into(), Json::s(UNICODE_VERSION)),
            (
                "ranges".into(),
                Json::List(
                    PY_NOT_PRINTABLE
                        .iter()
                        .map(|&(a, b)| {
                            Json::List(vec![Json::Int(i64::from(a)), Json::Int(i64::from(b))])
                        })
                        .collect(),
                ),
            ),
        ])),
        _ => return None,
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python() {
        assert_eq!(float_repr(1.5), "1.5");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e15), "1000000000000000.0");
        assert_eq!(float_repr(0.0001), "0.0001");
        assert_eq!(float_repr(0.00001), "1e-05");
        assert_eq!(float_repr(-0.0), "-0.0");
        assert_eq!(float_repr(18446744073709551616.0), "1.8446744073709552e+19");
        assert_eq!(float_repr(5e-324), "5e-324");
        assert_eq!(float_repr(562949953421312.2), "562949953421312.2");
        assert_eq!(float_repr(0.1), "0.1");
        assert_eq!(float_repr(9.999999999999999e22), "1e+23");
    }

    #[test]
    fn varints_and_strings() {
        let mut r = AvroReader {
            buf: &[0x03],
            pos: 0,
        };
        assert_eq!(r.long(), Ok(-2));
        let mut r = AvroReader {
            buf: &[0xff; 11],
            pos: 0,
        };
        assert_eq!(r.long(), value_error("varint longer than 10 bytes"));
        let mut r = AvroReader {
            buf: &[0x06, b'a'],
            pos: 0,
        };
        assert_eq!(r.string(), Ok("a".to_owned()));
        assert_eq!(r.pos, 4);
    }

    #[test]
    fn iso_times() {
        assert_eq!(iso_epoch_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(iso_epoch_ms("1970-01-01T00:00:00.0015+00:00"), Some(1));
        assert_eq!(iso_epoch_ms("1969-12-31T23:59:59.9995Z"), Some(-1));
        assert_eq!(iso_epoch_ms("2024-05-01T12:00:00"), None);
        assert_eq!(iso_epoch_ms("2024-05-01T12:00-24:00"), None);
    }

    #[test]
    fn json_errors_as_orjson() {
        assert_eq!(
            orjson_loads(b"{\"a\":1,}").err().unwrap_or_default(),
            "trailing comma is not allowed: line 1 column 7 (char 6)"
        );
        assert_eq!(
            orjson_loads(b"{\"a\":tru").err().unwrap_or_default(),
            "unexpected end of data: line 1 column 9 (char 8)"
        );
    }
}
