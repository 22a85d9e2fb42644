//! Event-time clocks of one partition group: the Rust twin of `streams/watermarks.py`.
//!
//! *Lateness* is decided per topic-partition from that topic-partition's own history;
//! *closing* (windows, sessions, timers) uses the partition watermark, the minimum over
//! the inputs that are not idle. The arithmetic is done in i128, so comparisons are exact
//! for every i64 input as with Python's unbounded ints; a watermark outside the i64 range
//! (only possible with event times near the i64 bounds) is clamped to it.

use std::collections::BTreeSet;

use crate::json::{Json, JsonError, JsonResult};

/// Batch checkpoints kept before the committed offset.
pub const HISTORY_MARGIN: usize = 8;
/// At most this many history entries are kept (the newest).
pub const HISTORY_LIMIT: usize = 512;

/// (last offset of a processed batch, max event time through it).
pub type History = Vec<(i64, Option<i64>)>;

fn clamp(value: i128) -> i64 {
    if value > i64::MAX as i128 {
        i64::MAX
    } else if value < i64::MIN as i128 {
        i64::MIN
    } else {
        value as i64
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPartitionClock {
    pub lateness_ms: i64,
    pub max_t: Option<i64>,
    /// Lets a restarted worker resume the watermark exactly at its committed offset.
    pub history: History,
    pub has_data: bool,
}

impl TopicPartitionClock {
    pub fn new(lateness_ms: i64) -> Self {
        TopicPartitionClock {
            lateness_ms,
            max_t: None,
            history: Vec::new(),
            has_data: false,
        }
    }

    fn watermark_exact(&self) -> Option<i128> {
        self.max_t
            .map(|max_t| max_t as i128 - self.lateness_ms as i128)
    }

    pub fn watermark(&self) -> Option<i64> {
        self.watermark_exact().map(clamp)
    }

    pub fn is_late(&self, event_time_ms: i64) -> bool {
        match self.watermark_exact() {
            Some(mark) => (event_time_ms as i128) < mark,
            None => false,
        }
    }

    pub fn observe(&mut self, event_time_ms: i64) {
        self.has_data = true;
        match self.max_t {
            Some(max_t) if event_time_ms <= max_t => {}
            _ => self.max_t = Some(event_time_ms),
        }
    }

    pub fn checkpoint(&mut self, last_offset: i64, keep_from_offset: Option<i64>) {
        self.history.push((last_offset, self.max_t));
        if let Some(keep_from) = keep_from_offset {
            // Keep the entry the committed offset resumes from, a few before it (a commit
            // can fail and be retried at an earlier offset) and everything after it.
            let before = self
                .history
                .iter()
                .filter(|(offset, _)| *offset < keep_from)
                .count();
            let drop = before.saturating_sub(HISTORY_MARGIN);
            self.history.drain(..drop);
        }
        if self.history.len() > HISTORY_LIMIT {
            let drop = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..drop);
        }
    }

    /// Restore `max_t` as it was just before `next_offset` (a batch boundary).
    pub fn resume_at(&mut self, next_offset: i64) {
        let mut restored: Option<i64> = None;
        for (last_offset, max_t) in &self.history {
            if *last_offset < next_offset {
                restored = *max_t;
            }
        }
        self.max_t = restored;
        self.history.retain(|(offset, _)| *offset < next_offset);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionClock {
    pub lateness_ms: i64,
    /// One clock per input stream, in the order the streams were given (a repeated
    /// name keeps its first position, as a Python dict does).
    pub clocks: Vec<(String, TopicPartitionClock)>,
    /// Inputs with nothing left to read right now.
    pub caught_up: BTreeSet<String>,
    /// Inputs caught up for a long time.
    pub idle: BTreeSet<String>,
    /// Declared finished (the end of a replay): no event older than the last one will come.
    pub finished: bool,
}

impl PartitionClock {
    pub fn new(lateness_ms: i64, streams: &[String]) -> Self {
        let mut clocks: Vec<(String, TopicPartitionClock)> = Vec::with_capacity(streams.len());
        for stream in streams {
            if !clocks.iter().any(|(s, _)| s == stream) {
                clocks.push((stream.clone(), TopicPartitionClock::new(lateness_ms)));
            }
        }
        PartitionClock {
            lateness_ms,
            clocks,
            caught_up: BTreeSet::new(),
            idle: BTreeSet::new(),
            finished: false,
        }
    }

    pub fn clock(&self, stream: &str) -> Option<&TopicPartitionClock> {
        self.clocks
            .iter()
            .find(|(s, _)| s == stream)
            .map(|(_, c)| c)
    }

    pub fn clock_mut(&mut self, stream: &str) -> Option<&mut TopicPartitionClock> {
        self.clocks
            .iter_mut()
            .find(|(s, _)| s == stream)
            .map(|(_, c)| c)
    }

    /// Min over the inputs' watermarks.
    ///
    /// An input that never had records, or that has been idle for long, does not hold
    /// the others back while they still have records to read. Once every input is
    /// caught up, all that ever had records count. Inputs declared finished and caught
    /// up move it to just after the last event time.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark_exact().map(clamp)
    }

    fn watermark_exact(&self) -> Option<i128> {
        let all_caught_up = self.clocks.iter().all(|(s, _)| self.caught_up.contains(s));
        let active: Vec<&TopicPartitionClock> = if all_caught_up {
            let active: Vec<&TopicPartitionClock> = self
                .clocks
                .iter()
                .filter(|(_, c)| c.has_data)
                .map(|(_, c)| c)
                .collect();
            if self.finished {
                // Finished and read to the end: every event time is behind the watermark.
                return active
                    .iter()
                    .filter_map(|c| c.max_t)
                    .max()
                    .map(|end| end as i128 + 1);
            }
            active
        } else {
            self.clocks
                .iter()
                .filter(|(s, c)| {
                    !self.idle.contains(s) && (c.has_data || !self.caught_up.contains(s))
                })
                .map(|(_, c)| c)
                .collect()
        };
        let mut lowest: Option<i128> = None;
        for clock in active {
            let mark = clock.watermark_exact()?;
            lowest = Some(match lowest {
                Some(low) if low <= mark => low,
                _ => mark,
            });
        }
        lowest
    }
}

// -- probe ---------------------------------------------------------------------------

fn bad<T>(message: String) -> JsonResult<T> {
    Err(JsonError(message))
}

fn history_json(history: &[(i64, Option<i64>)]) -> Json {
    Json::List(
        history
            .iter()
            .map(|(offset, max_t)| Json::List(vec![Json::Int(*offset), Json::opt_i(*max_t)]))
            .collect(),
    )
}

pub fn history_from_json(value: &Json, what: &str) -> JsonResult<History> {
    let mut history = Vec::new();
    for entry in value.list(what)? {
        let pair = entry.list(what)?;
        if pair.len() != 2 {
            return bad(format!(
                "{}: an entry has {} items, not 2",
                what,
                pair.len()
            ));
        }
        history.push((pair[0].int("offset")?, pair[1].opt_int("max_t")?));
    }
    Ok(history)
}

fn names(value: &Json, what: &str) -> JsonResult<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for name in value.list(what)? {
        out.insert(name.str(what)?.to_owned());
    }
    Ok(out)
}

fn arg<'a>(op: &'a [Json], i: usize, name: &str) -> JsonResult<&'a Json> {
    match op.get(i) {
        Some(value) => Ok(value),
        None => bad(format!("{}: missing argument {}", name, i)),
    }
}

fn stream_clock<'a>(
    clock: &'a mut PartitionClock,
    op: &[Json],
    name: &str,
) -> JsonResult<&'a mut TopicPartitionClock> {
    let stream = arg(op, 1, name)?.str("stream")?;
    match clock.clock_mut(stream) {
        Some(c) => Ok(c),
        None => bad(format!("{}: no input named {:?}", name, stream)),
    }
}

fn clock_state(c: &TopicPartitionClock) -> Json {
    Json::List(vec![
        Json::opt_i(c.max_t),
        history_json(&c.history),
        Json::Bool(c.has_data),
    ])
}

/// Run one operation on the clock; its result as JSON.
fn apply(clock: &mut PartitionClock, op: &[Json]) -> JsonResult<Json> {
    let name = arg(op, 0, "operation")?.str("operation")?;
    Ok(match name {
        "watermark" => Json::opt_i(clock.watermark()),
        "tp_watermark" => Json::opt_i(stream_clock(clock, op, name)?.watermark()),
        "is_late" => {
            let t = arg(op, 2, name)?.int("event_time_ms")?;
            Json::Bool(stream_clock(clock, op, name)?.is_late(t))
        }
        "observe" => {
            let t = arg(op, 2, name)?.int("event_time_ms")?;
            stream_clock(clock, op, name)?.observe(t);
            Json::Null
        }
        "checkpoint" => {
            let last = arg(op, 2, name)?.int("last_offset")?;
            let keep = arg(op, 3, name)?.opt_int("keep_from_offset")?;
            let c = stream_clock(clock, op, name)?;
            c.checkpoint(last, keep);
            history_json(&c.history)
        }
        "resume_at" => {
            let next = arg(op, 2, name)?.int("next_offset")?;
            let c = stream_clock(clock, op, name)?;
            c.resume_at(next);
            clock_state(c)
        }
        "set_has_data" => {
            let value = arg(op, 2, name)?.boolean("has_data")?;
            stream_clock(clock, op, name)?.has_data = value;
            Json::Null
        }
        "set_history" => {
            let history = history_from_json(arg(op, 2, name)?, "history")?;
            stream_clock(clock, op, name)?.history = history;
            Json::Null
        }
        "state" => clock_state(stream_clock(clock, op, name)?),
        "set_caught_up" => {
            clock.caught_up = names(arg(op, 1, name)?, "caught_up")?;
            Json::Null
        }
        "set_idle" => {
            clock.idle = names(arg(op, 1, name)?, "idle")?;
            Json::Null
        }
        "set_finished" => {
            clock.finished = arg(op, 1, name)?.boolean("finished")?;
            Json::Null
        }
        other => return bad(format!("unknown operation {:?}", other)),
    })
}

fn field<'a>(args: &'a Json, key: &str) -> JsonResult<&'a Json> {
    match args.object("arguments")?.iter().find(|(k, _)| k == key) {
        Some((_, value)) => Ok(value),
        None => bad(format!("missing argument {:?}", key)),
    }
}

fn run_partition_clock(args: &Json) -> JsonResult<Json> {
    let lateness_ms = field(args, "lateness_ms")?.int("lateness_ms")?;
    let mut streams = Vec::new();
    for s in field(args, "streams")?.list("streams")? {
        streams.push(s.str("stream")?.to_owned());
    }
    let mut clock = PartitionClock::new(lateness_ms, &streams);
    let mut results = Vec::new();
    for op in field(args, "ops")?.list("ops")? {
        results.push(apply(&mut clock, op.list("operation")?)?);
    }
    Ok(Json::List(results))
}

/// `watermarks.partition_clock`: {"lateness_ms", "streams", "ops": [[name, ...], ...]}
/// -> every operation's result (see `apply`).
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    match name {
        "watermarks.partition_clock" => Some(run_partition_clock(args)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_trimmed_around_the_committed_offset() {
        let mut c = TopicPartitionClock::new(10);
        for i in 0..20 {
            c.observe(i * 100);
            c.checkpoint(i, Some(15));
        }
        assert_eq!(c.history.first().map(|e| e.0), Some(7));
        c.resume_at(12);
        assert_eq!(c.max_t, Some(1100));
        assert_eq!(c.history.len(), 5);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut c = TopicPartitionClock::new(i64::MAX);
        c.observe(i64::MIN);
        assert!(!c.is_late(i64::MIN));
        assert_eq!(c.watermark(), Some(i64::MIN));
        let mut p = PartitionClock::new(-5, &["a".to_owned()]);
        if let Some(a) = p.clock_mut("a") {
            a.observe(i64::MAX);
        }
        p.caught_up.insert("a".to_owned());
        p.finished = true;
        assert_eq!(p.watermark(), Some(i64::MAX));
    }
}
