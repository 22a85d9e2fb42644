//! Event-time timers: the Rust twin of `streams/timers.py`.
//!
//! One pending due time per key, bucketed so moving a key's timer costs O(1) buckets.
//! A key fires exactly when the watermark reaches its due time: buckets only decide
//! which keys to look at. Buckets come out in ascending order, as from the Python heap.
//! Within one bucket Python yields the keys in `set` iteration order, which depends on
//! the process's string-hash seed (PYTHONHASHSEED) and so has no fixed order to follow;
//! here they come out in byte order of the key.
//!
//! Bucket arithmetic is done in i128 (Python ints do not overflow): a bucket of a due
//! time near i64::MIN lies below it.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use crate::fxhash::FxHashMap as HashMap;

use crate::json::{Json, JsonError, JsonResult};

pub const DEFAULT_GRANULARITY_MS: i64 = 1000;

#[derive(Clone, Debug)]
pub struct TimerWheel {
    granularity_ms: i64,
    buckets: HashMap<i128, BTreeSet<Vec<u8>>>,
    due_of: HashMap<Vec<u8>, i64>,
    /// Min-heap of the buckets in `buckets` (each once).
    order: BinaryHeap<Reverse<i128>>,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel {
            granularity_ms: DEFAULT_GRANULARITY_MS,
            buckets: HashMap::default(),
            due_of: HashMap::default(),
            order: BinaryHeap::new(),
        }
    }
}

impl TimerWheel {
    /// None for a zero granularity (Python raises ZeroDivisionError on its first bucket).
    pub fn new(granularity_ms: i64) -> Option<Self> {
        if granularity_ms == 0 {
            return None;
        }
        Some(TimerWheel {
            granularity_ms,
            ..TimerWheel::default()
        })
    }

    pub fn granularity_ms(&self) -> i64 {
        self.granularity_ms
    }

    /// `due - due % granularity` with Python's floored modulo.
    fn bucket(&self, due_ms: i64) -> i128 {
        let due = due_ms as i128;
        let g = self.granularity_ms as i128;
        let mut rem = due % g;
        if rem != 0 && ((rem < 0) != (g < 0)) {
            rem += g;
        }
        due - rem
    }

    /// The key's due time, None to clear it.
    pub fn set(&mut self, key: &[u8], due_ms: Option<i64>) {
        if let Some(old) = self.due_of.remove(key) {
            let old_bucket = self.bucket(old);
            if let Some(members) = self.buckets.get_mut(&old_bucket) {
                members.remove(key);
            }
        }
        let due = match due_ms {
            Some(due) => due,
            None => return,
        };
        let bucket = self.bucket(due);
        let order = &mut self.order;
        self.buckets
            .entry(bucket)
            .or_insert_with(|| {
                order.push(Reverse(bucket));
                BTreeSet::new()
            })
            .insert(key.to_vec());
        self.due_of.insert(key.to_vec(), due);
    }

    /// The key's pending due time.
    pub fn due(&self, key: &[u8]) -> Option<i64> {
        self.due_of.get(key).copied()
    }

    /// Keys whose due time is at or before the watermark (removed from the wheel).
    pub fn pop_due(&mut self, watermark_ms: i64) -> Vec<Vec<u8>> {
        let mut due: Vec<Vec<u8>> = Vec::new();
        let mark = watermark_ms as i128;
        while let Some(&Reverse(bucket)) = self.order.peek() {
            if bucket > mark {
                break;
            }
            let mut rest_later = false;
            if let Some(members) = self.buckets.get_mut(&bucket) {
                let due_of = &mut self.due_of;
                let ready: Vec<Vec<u8>> = members
                    .iter()
                    .filter(|k| due_of.get(*k).map_or(false, |d| *d <= watermark_ms))
                    .cloned()
                    .collect();
                for key in &ready {
                    members.remove(key);
                    due_of.remove(key);
                }
                due.extend(ready);
                rest_later = !members.is_empty();
            }
            if rest_later {
                break; // the rest of this bucket is due later
            }
            self.order.pop();
            self.buckets.remove(&bucket);
        }
        due
    }

    pub fn len(&self) -> usize {
        self.due_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due_of.is_empty()
    }
}

// -- probe ---------------------------------------------------------------------------

fn bad<T>(message: String) -> JsonResult<T> {
    Err(JsonError(message))
}

/// Bytes as a string of the code points 0-255 (Python's `bytes.decode("latin-1")`).
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

/// The bytes of a string of code points 0-255 (Python's `str.encode("latin-1")`).
pub fn from_latin1(text: &str, what: &str) -> JsonResult<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = c as u32;
        if code > 0xff {
            return bad(format!("{}: {:?} is not latin-1", what, c));
        }
        out.push(code as u8);
    }
    Ok(out)
}

fn arg<'a>(op: &'a [Json], i: usize, name: &str) -> JsonResult<&'a Json> {
    match op.get(i) {
        Some(value) => Ok(value),
        None => bad(format!("{}: missing argument {}", name, i)),
    }
}

fn apply(wheel: &mut TimerWheel, op: &[Json]) -> JsonResult<Json> {
    let name = arg(op, 0, "operation")?.str("operation")?;
    Ok(match name {
        "set" => {
            let key = from_latin1(arg(op, 1, name)?.str("key")?, "key")?;
            let due = arg(op, 2, name)?.opt_int("due_ms")?;
            wheel.set(&key, due);
            Json::Null
        }
        "pop_due" => {
            let watermark = arg(op, 1, name)?.int("watermark_ms")?;
            Json::List(
                wheel
                    .pop_due(watermark)
                    .iter()
                    .map(|k| Json::Str(latin1(k)))
                    .collect(),
            )
        }
        "len" => Json::Int(wheel.len() as i64),
        other => return bad(format!("unknown operation {:?}", other)),
    })
}

fn run_wheel(args: &Json) -> JsonResult<Json> {
    let entries = args.object("arguments")?;
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let granularity = match get("granularity_ms") {
        Some(value) => value.int("granularity_ms")?,
        None => DEFAULT_GRANULARITY_MS,
    };
    let mut wheel = match TimerWheel::new(granularity) {
        Some(wheel) => wheel,
        None => return bad("granularity_ms is 0".to_owned()),
    };
    let ops = match get("ops") {
        Some(ops) => ops.list("ops")?,
        None => return bad("missing argument \"ops\"".to_owned()),
    };
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        results.push(apply(&mut wheel, op.list("operation")?)?);
    }
    Ok(Json::List(results))
}

/// `timers.wheel`: {"granularity_ms"?, "ops": [["set", key, due|null] | ["pop_due", wm]
/// | ["len"], ...]} -> every operation's result; keys as latin-1 strings.
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    match name {
        "timers.wheel" => Some(run_wheel(args)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_floor_like_python() {
        let w = TimerWheel::default();
        assert_eq!(w.bucket(-1), -1000);
        assert_eq!(w.bucket(1999), 1000);
        let n = TimerWheel::new(-1000).unwrap_or_default();
        assert_eq!(n.bucket(-1), 0);
        assert_eq!(n.bucket(1), 1000);
    }

    #[test]
    fn fires_at_the_due_time_and_moves() {
        let mut w = TimerWheel::default();
        w.set(b"a", Some(1500));
        w.set(b"b", Some(1200));
        assert_eq!(w.pop_due(1300), vec![b"b".to_vec()]);
        w.set(b"a", Some(900));
        assert_eq!(w.pop_due(1000), vec![b"a".to_vec()]);
        w.set(b"c", Some(5000));
        w.set(b"c", None);
        assert_eq!(w.pop_due(i64::MAX), Vec::<Vec<u8>>::new());
        assert!(w.is_empty());
    }
}
