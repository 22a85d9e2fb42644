//! The first step of a batch: the Rust twin of `streams/intake.py`.
//!
//! Decode each record, dead-letter the bad ones, sort out the late ones, and keep the raw
//! and late rows. What is left (`Pending`) goes on to the visitors. The channel
//! classifier and the forget hooks are given as closures.

use std::collections::HashMap;
use std::sync::Arc;

use crate::deadletter::DeadLetter;
use crate::event::{Event, Stream};
use crate::json::{Json, JsonError, JsonResult};
use crate::records::{RecordRead, Registry};
use crate::rows_intake::{
    DeadLetterRow, LateEventRow, RawEventRow, BEYOND_LATENESS, DEAD_LETTERS_TABLE,
    LATE_EVENTS_TABLE, RAW_EVENTS_TABLE, WINDOW_CLOSED,
};
use crate::state::{Dims, ForgetMark};
use crate::validation::{build_event, Rejection, ValidationBounds};
use crate::watermarks::TopicPartitionClock;

/// One Kafka record as the core sees it (`streams.records.Record`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub timestamp_ms: i64,
}

/// An on-time event on its way to its visitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Shared with the event's `events_raw` row.
    pub event: Arc<Event>,
    pub dims: Dims,
    pub offset: i64,
}

impl Pending {
    /// The input the event came from.
    pub fn stream(&self) -> &'static str {
        self.event.stream.as_str()
    }
}

/// `EventCodec.decode`: the record reader (`records.rs`) then `build_event`.
#[derive(Clone, Debug)]
pub struct EventDecoder {
    pub registry: Registry,
    pub bounds: ValidationBounds,
}

impl EventDecoder {
    /// The validated Event, or why `raw` belongs on the dead-letter topic. Err where the
    /// Python raises: a stream that is not an input stream, or a reader's record that is
    /// not shaped as `build_event` expects (a bug, not data).
    pub fn decode(
        &self,
        raw: &[u8],
        stream: &str,
        now_ms: i64,
    ) -> Result<Result<Event, Rejection>, String> {
        match self
            .registry
            .read_record(raw, stream, self.bounds.max_payload_bytes)?
        {
            RecordRead::Rejected(rejection) => Ok(Err(rejection)),
            RecordRead::Record(record) => {
                let kind = match Stream::parse(stream) {
                    Some(kind) => kind,
                    None => return Err(format!("unknown stream {:?}", stream)),
                };
                build_event(record, kind, now_ms, &self.bounds).map_err(|e| e.0)
            }
        }
    }
}

/// A Python `Counter` over string keys: insertion order, `+= 1` adds a missing key.
pub type Counts<K> = Vec<(K, i64)>;

/// `counts[key] += n` for a key of text (no copy of it when already counted).
fn add(counts: &mut Counts<String>, key: &str, n: i64) {
    match counts.iter_mut().find(|(k, _)| k == key) {
        Some((_, total)) => *total += n,
        None => counts.push((key.to_owned(), n)),
    }
}

fn bump<K: PartialEq>(counts: &mut Counts<K>, key: K) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => counts.push((key, 1)),
    }
}

/// The `BatchStats` counters the intake increments.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntakeStats {
    /// stream -> records.
    pub ingested: Counts<String>,
    /// Records of forgotten people dropped in flight.
    pub forgotten: i64,
    /// (stream, reason) -> late events.
    pub late: Counts<(String, String)>,
    /// (stream, reason) -> dead letters.
    pub dead_letters: Counts<(String, String)>,
}

/// The `BatchResult` fields the intake fills: its rows, dead letters and stats.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IntakeResult {
    pub raw_rows: Vec<RawEventRow>,
    pub late_rows: Vec<LateEventRow>,
    pub dead_letter_rows: Vec<DeadLetterRow>,
    pub dead_letters: Vec<DeadLetter>,
    pub stats: IntakeStats,
}

/// `Classifier.classify(utm_source, utm_medium, referrer)` -> channel.
pub type Classifier<'a> = &'a dyn Fn(Option<&str>, Option<&str>, Option<&str>) -> String;
/// `skip(event, appended_at)`: drop a record of a forgotten person in flight.
pub type Skip<'a> = &'a dyn Fn(&Event, i64) -> bool;
/// `skip_rejected(record)`: the same for a record that fails decoding.
pub type SkipRejected<'a> = &'a dyn Fn(&Record) -> bool;

pub struct Intake {
    pub partition: i64,
    pub decoder: EventDecoder,
    /// stream -> topic.
    pub topics: Vec<(String, String)>,
}

impl Intake {
    pub fn new(partition: i64, decoder: EventDecoder, topics: Vec<(String, String)>) -> Intake {
        Intake {
            partition,
            decoder,
            topics,
        }
    }

    /// The batch's on-time events, in offset order; everything else goes to `result`.
    ///
    /// An event is late when its input's own clock says so (beyond the allowed lateness)
    /// or when the partition's watermark has passed it. Err where the Python raises (a
    /// stream without a topic or not an input stream); `result` may then hold part of
    /// the batch, as the Python's does.
    #[allow(clippy::too_many_arguments)]
    pub fn classify(
        &self,
        stream: &str,
        records: &[Record],
        tp_clock: &mut TopicPartitionClock,
        partition_watermark: Option<i64>,
        channels: Classifier,
        result: &mut IntakeResult,
        skip: Option<Skip>,
        skip_rejected: Option<SkipRejected>,
    ) -> Result<Vec<Pending>, String> {
        let topic = match self.topics.iter().find(|(s, _)| s == stream) {
            Some((_, topic)) => topic.as_str(),
            None => return Err(format!("no topic for stream {:?}", stream)),
        };
        // Sized for the batch up front: growing these vectors record by record made the
        // allocator copy them and the kernel zero fresh pages (perf, BENCHMARKS.md).
        let shared_topic: Arc<str> = Arc::from(topic);
        let mut pending = Vec::with_capacity(records.len());
        result.raw_rows.reserve(records.len());
        if !records.is_empty() {
            add(&mut result.stats.ingested, stream, records.len() as i64);
        }
        for record in records {
            let decoded = self
                .decoder
                .decode(&record.value, stream, record.timestamp_ms)?;
            let event = match decoded {
                Ok(event) => event,
                Err(rejection) => {
                    if skip_rejected.map_or(false, |f| f(record)) {
                        result.stats.forgotten += 1;
                        continue;
                    }
                    self.dead_letter(&rejection, stream, topic, record, result);
                    continue;
                }
            };
            if skip.map_or(false, |f| f(&event, record.timestamp_ms)) {
                result.stats.forgotten += 1;
                continue;
            }
            let channel = channels(
                event.utm_source.as_deref(),
                event.utm_medium.as_deref(),
                event.referrer.as_deref(),
            );
            let (late_reason, watermark) =
                lateness(event.event_time_ms, tp_clock, partition_watermark);
            let event = Arc::new(event);
            result.raw_rows.push(RawEventRow::build(
                &event,
                &channel,
                late_reason.is_some(),
                &shared_topic,
                self.partition,
                record.offset,
                record.timestamp_ms,
            ));
            if let Some(reason) = late_reason {
                result.late_rows.push(LateEventRow::build(
                    &event,
                    &channel,
                    watermark.unwrap_or(0),
                    reason,
                    topic,
                    self.partition,
                    record.offset,
                    record.timestamp_ms,
                ));
                bump(
                    &mut result.stats.late,
                    (stream.to_owned(), reason.to_owned()),
                );
                continue;
            }
            tp_clock.observe(event.event_time_ms);
            let dims: Dims = [
                channel,
                event.utm_campaign.clone().unwrap_or_default(),
                event.device.clone(),
                event.platform.clone(),
                event.country.clone(),
            ];
            pending.push(Pending {
                event,
                dims,
                offset: record.offset,
            });
        }
        Ok(pending)
    }

    fn dead_letter(
        &self,
        rejection: &Rejection,
        stream: &str,
        topic: &str,
        record: &Record,
        result: &mut IntakeResult,
    ) {
        let letter = DeadLetter::from_rejection(
            rejection,
            &record.value,
            topic,
            self.partition,
            record.offset,
            record.key.as_deref(),
            record.timestamp_ms,
        );
        result.dead_letter_rows.push(DeadLetterRow::build(&letter));
        bump(
            &mut result.stats.dead_letters,
            (stream.to_owned(), letter.reason.clone()),
        );
        result.dead_letters.push(letter);
    }
}

/// Why an event at `event_time_ms` is late (None: on time), and the watermark it was
/// late against (`_lateness`).
pub fn lateness(
    event_time_ms: i64,
    tp_clock: &TopicPartitionClock,
    partition_watermark: Option<i64>,
) -> (Option<&'static str>, Option<i64>) {
    if tp_clock.is_late(event_time_ms) {
        return (Some(BEYOND_LATENESS), tp_clock.watermark());
    }
    if let Some(mark) = partition_watermark {
        if event_time_ms < mark {
            return (Some(WINDOW_CLOSED), Some(mark));
        }
    }
    (None, tp_clock.watermark())
}

// -- the forget hooks of streams/processor.py, for the probe -----------------------------

/// `PartitionProcessor._in_flight`: a record of a forgotten visitor appended before the
/// request.
pub fn in_flight(
    marks: &HashMap<String, Vec<ForgetMark>>,
    event: &Event,
    appended_at: i64,
) -> bool {
    marks.get(&event.anonymous_id).map_or(false, |m| {
        m.iter().any(|m| m.covers(event.event_time_ms, appended_at))
    })
}

/// `PartitionProcessor._rejected_in_flight`: a bad record keyed by a visitor forgotten
/// whole, appended before the request.
pub fn rejected_in_flight(marks: &HashMap<String, Vec<ForgetMark>>, record: &Record) -> bool {
    let key = match &record.key {
        Some(key) => String::from_utf8_lossy(key).into_owned(),
        None => return false,
    };
    marks.get(&key).map_or(false, |m| {
        m.iter().any(|m| {
            m.from_ms.is_none() && m.to_ms.is_none() && record.timestamp_ms <= m.requested_at
        })
    })
}

// -- probe (tests/native/test_intake.py) ---------------------------------------------------

fn bad<T>(message: impl Into<String>) -> JsonResult<T> {
    Err(JsonError(message.into()))
}

fn arg<'a>(args: &'a Json, key: &str) -> JsonResult<&'a Json> {
    match args.object("arguments")?.iter().find(|(k, _)| k == key) {
        Some((_, value)) => Ok(value),
        None => bad(format!("missing argument {:?}", key)),
    }
}

fn from_hex(text: &str) -> JsonResult<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return bad("odd hex length");
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for pair in bytes.chunks(2) {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
            _ => return bad("not hex"),
        }
    }
    Ok(out)
}

fn opt_hex(value: &Json, what: &str) -> JsonResult<Option<Vec<u8>>> {
    match value.opt_str(what)? {
        Some(text) => from_hex(text).map(Some),
        None => Ok(None),
    }
}

fn opt_string(value: &Json, what: &str) -> JsonResult<Option<String>> {
    Ok(value.opt_str(what)?.map(str::to_owned))
}

fn items<'a>(value: &'a Json, n: usize, what: &str) -> JsonResult<&'a [Json]> {
    let list = value.list(what)?;
    if list.len() != n {
        return bad(format!("{} has {} items, not {}", what, list.len(), n));
    }
    Ok(list)
}

fn record_from_json(value: &Json) -> JsonResult<Record> {
    let r = items(value, 4, "record")?;
    Ok(Record {
        offset: r[0].int("offset")?,
        key: opt_hex(&r[1], "key")?,
        value: from_hex(r[2].str("value")?)?,
        timestamp_ms: r[3].int("timestamp_ms")?,
    })
}

fn clock_from_json(value: &Json) -> JsonResult<TopicPartitionClock> {
    let mut clock = TopicPartitionClock::new(arg(value, "lateness_ms")?.int("lateness_ms")?);
    clock.max_t = arg(value, "max_t")?.opt_int("max_t")?;
    clock.has_data = arg(value, "has_data")?.boolean("has_data")?;
    clock.history = crate::watermarks::history_from_json(arg(value, "history")?, "history")?;
    Ok(clock)
}

fn clock_json(clock: &TopicPartitionClock) -> Json {
    Json::Object(vec![
        ("lateness_ms".into(), Json::Int(clock.lateness_ms)),
        ("max_t".into(), Json::opt_i(clock.max_t)),
        ("has_data".into(), Json::Bool(clock.has_data)),
        (
            "history".into(),
            Json::List(
                clock
                    .history
                    .iter()
                    .map(|(o, t)| Json::List(vec![Json::Int(*o), Json::opt_i(*t)]))
                    .collect(),
            ),
        ),
    ])
}

fn marks_from_json(value: &Json) -> JsonResult<Option<HashMap<String, Vec<ForgetMark>>>> {
    if let Json::Null = value {
        return Ok(None);
    }
    let mut marks: HashMap<String, Vec<ForgetMark>> = HashMap::new();
    for entry in value.list("marks")? {
        let m = items(entry, 5, "mark")?;
        marks
            .entry(m[0].str("anonymous_id")?.to_owned())
            .or_insert_with(Vec::new)
            .push(ForgetMark {
                request_id: m[1].str("request_id")?.to_owned(),
                requested_at: m[2].int("requested_at")?,
                from_ms: m[3].opt_int("from_ms")?,
                to_ms: m[4].opt_int("to_ms")?,
            });
    }
    Ok(Some(marks))
}

type ChannelKey = (Option<String>, Option<String>, Option<String>);

fn channels_from_json(value: &Json) -> JsonResult<HashMap<ChannelKey, String>> {
    let mut table = HashMap::new();
    for entry in value.list("channels")? {
        let e = items(entry, 4, "channel entry")?;
        table.insert(
            (
                opt_string(&e[0], "utm_source")?,
                opt_string(&e[1], "utm_medium")?,
                opt_string(&e[2], "referrer")?,
            ),
            e[3].str("channel")?.to_owned(),
        );
    }
    Ok(table)
}

fn counts_json(counts: &Counts<String>) -> Json {
    Json::List(
        counts
            .iter()
            .map(|(k, n)| Json::List(vec![Json::s(k), Json::Int(*n)]))
            .collect(),
    )
}

fn pair_counts_json(counts: &Counts<(String, String)>) -> Json {
    Json::List(
        counts
            .iter()
            .map(|((a, b), n)| Json::List(vec![Json::s(a), Json::s(b), Json::Int(*n)]))
            .collect(),
    )
}

fn pending_json(p: &Pending) -> Json {
    Json::List(vec![
        p.event.to_json(),
        Json::List(p.dims.iter().map(|d| Json::s(d)).collect()),
        Json::s(p.stream()),
        Json::Int(p.offset),
    ])
}

fn result_json(pending: &[Pending], result: &IntakeResult, clock: &TopicPartitionClock) -> Json {
    // A table's key is there once it has a row (events_raw: always, as Python's
    // setdefault); the test drops empty tables on both sides.
    let rows = vec![
        (
            RAW_EVENTS_TABLE.to_owned(),
            Json::List(result.raw_rows.iter().map(RawEventRow::to_json).collect()),
        ),
        (
            LATE_EVENTS_TABLE.to_owned(),
            Json::List(result.late_rows.iter().map(LateEventRow::to_json).collect()),
        ),
        (
            DEAD_LETTERS_TABLE.to_owned(),
            Json::List(
                result
                    .dead_letter_rows
                    .iter()
                    .map(DeadLetterRow::to_json)
                    .collect(),
            ),
        ),
    ];
    Json::Object(vec![
        (
            "pending".into(),
            Json::List(pending.iter().map(pending_json).collect()),
        ),
        ("rows".into(), Json::Object(rows)),
        (
            "dead_letters".into(),
            Json::List(
                result
                    .dead_letters
                    .iter()
                    .map(DeadLetter::to_json)
                    .collect(),
            ),
        ),
        (
            "stats".into(),
            Json::Object(vec![
                ("ingested".into(), counts_json(&result.stats.ingested)),
                ("forgotten".into(), Json::Int(result.stats.forgotten)),
                ("late".into(), pair_counts_json(&result.stats.late)),
                (
                    "dead_letters".into(),
                    pair_counts_json(&result.stats.dead_letters),
                ),
            ]),
        ),
        ("clock".into(), clock_json(clock)),
    ])
}

/// `intake.classify`: {"registry", "bounds", "partition", "topics": [[stream, topic]],
/// "channels": [[utm_source, utm_medium, referrer, channel]], "calls": [{"stream",
/// "records": [[offset, key_hex|null, value_hex, timestamp_ms]], "clock": {lateness_ms,
/// max_t, has_data, history}, "partition_watermark", "marks": null | [[anonymous_id,
/// request_id, requested_at, from_ms, to_ms]]}]} -> per call {"pending", "rows",
/// "dead_letters", "stats", "clock"} (the clock after), or {"error"}.
fn probe_classify(args: &Json) -> JsonResult<Json> {
    let registry = Registry::from_json(arg(args, "registry")?).map_err(JsonError)?;
    let bounds = ValidationBounds::from_json(arg(args, "bounds")?)?;
    let mut topics = Vec::new();
    for pair in arg(args, "topics")?.list("topics")? {
        let p = items(pair, 2, "topic")?;
        topics.push((
            p[0].str("stream")?.to_owned(),
            p[1].str("topic")?.to_owned(),
        ));
    }
    let intake = Intake::new(
        arg(args, "partition")?.int("partition")?,
        EventDecoder { registry, bounds },
        topics,
    );
    let table = channels_from_json(arg(args, "channels")?)?;
    let classifier = |s: Option<&str>, m: Option<&str>, r: Option<&str>| -> String {
        let key = (
            s.map(str::to_owned),
            m.map(str::to_owned),
            r.map(str::to_owned),
        );
        table
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "<not in the test's table>".to_owned())
    };
    let mut out = Vec::new();
    for call in arg(args, "calls")?.list("calls")? {
        let stream = arg(call, "stream")?.str("stream")?;
        let mut records = Vec::new();
        for r in arg(call, "records")?.list("records")? {
            records.push(record_from_json(r)?);
        }
        let mut clock = clock_from_json(arg(call, "clock")?)?;
        let partition_watermark = arg(call, "partition_watermark")?.opt_int("watermark")?;
        let marks = marks_from_json(arg(call, "marks")?)?;
        let mut result = IntakeResult::default();
        let answer = match &marks {
            Some(marks) => {
                let skip = |e: &Event, at: i64| in_flight(marks, e, at);
                let skip_rejected = |r: &Record| rejected_in_flight(marks, r);
                intake.classify(
                    stream,
                    &records,
                    &mut clock,
                    partition_watermark,
                    &classifier,
                    &mut result,
                    Some(&skip),
                    Some(&skip_rejected),
                )
            }
            None => intake.classify(
                stream,
                &records,
                &mut clock,
                partition_watermark,
                &classifier,
                &mut result,
                None,
                None,
            ),
        };
        out.push(match answer {
            Ok(pending) => result_json(&pending, &result, &clock),
            Err(e) => Json::Object(vec![("error".into(), Json::Str(e))]),
        });
    }
    Ok(Json::List(out))
}

/// `intake.dead_letter_rows`: [[key_hex|null, raw_hex], ...] -> each record's
/// `dead_letters.build_row` with fixed other fields (the UTF-8 and hex handling).
fn probe_dead_letter_rows(args: &Json) -> JsonResult<Json> {
    let mut out = Vec::new();
    for entry in args.list("records")? {
        let e = items(entry, 2, "record")?;
        let key = opt_hex(&e[0], "key")?;
        let raw = from_hex(e[1].str("raw")?)?;
        let rejection = Rejection::new(crate::validation::Reason::Undecodable, "d".into());
        let letter = DeadLetter::from_rejection(&rejection, &raw, "t", 1, 2, key.as_deref(), 3);
        out.push(DeadLetterRow::build(&letter).to_json());
    }
    Ok(Json::List(out))
}

/// The probes "intake.*".
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    match name {
        "intake.classify" => Some(probe_classify(args)),
        "intake.dead_letter_rows" => Some(probe_dead_letter_rows(args)),
        _ => None,
    }
}
