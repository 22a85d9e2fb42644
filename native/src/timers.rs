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

/// Most buckets hold one key (a due time is a visitor's last event plus a timeout, to the
/// millisecond): a `BTreeSet`'s first node takes about 280 bytes, which made the timers
/// about 540 bytes a visitor (BENCHMARKS.md). Up to this many keys a bucket is a sorted
/// `Vec` (24 bytes a key); past it, a `BTreeSet`, so an insert into a crowded second
/// stays O(log n).
const FEW: usize = 16;

/// One bucket's keys, in byte order either way.
#[derive(Clone, Debug)]
enum Bucket {
    Few(Vec<Vec<u8>>),
    Many(BTreeSet<Vec<u8>>),
}

impl Bucket {
    fn insert(&mut self, key: &[u8]) {
        match self {
            Bucket::Few(keys) => match keys.binary_search_by(|k| k.as_slice().cmp(key)) {
                Ok(_) => {}
                Err(at) if keys.len() < FEW => {
                    if keys.len() == keys.capacity() {
                        keys.reserve_exact(1); // Vec's first growth would hold four
                    }
                    keys.insert(at, key.to_vec());
                }
                Err(_) => {
                    let mut many: BTreeSet<Vec<u8>> = std::mem::take(keys).into_iter().collect();
                    many.insert(key.to_vec());
                    *self = Bucket::Many(many);
                }
            },
            Bucket::Many(many) => {
                many.insert(key.to_vec());
            }
        }
    }

    fn remove(&mut self, key: &[u8]) {
        match self {
            Bucket::Few(keys) => {
                if let Ok(at) = keys.binary_search_by(|k| k.as_slice().cmp(key)) {
                    keys.remove(at);
                    if keys.is_empty() {
                        // The bucket stays until its time comes (the heap holds it once):
                        // empty, it holds no memory.
                        *keys = Vec::new();
                    }
                }
            }
            Bucket::Many(many) => {
                many.remove(key);
                if many.is_empty() {
                    *self = Bucket::Few(Vec::new());
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Bucket::Few(keys) => keys.is_empty(),
            Bucket::Many(many) => many.is_empty(),
        }
    }

    /// Takes out the keys due at or before the watermark, in byte order.
    fn take_due(&mut self, due_of: &mut HashMap<Vec<u8>, i64>, watermark_ms: i64) -> Vec<Vec<u8>> {
        let is_due = |key: &Vec<u8>| due_of.get(key).map_or(false, |d| *d <= watermark_ms);
        let ready: Vec<Vec<u8>> = match self {
            Bucket::Few(keys) => {
                let (ready, rest): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
                    std::mem::take(keys).into_iter().partition(is_due);
                *keys = rest;
                ready
            }
            Bucket::Many(many) => {
                let ready: Vec<Vec<u8>> = many.iter().filter(|k| is_due(k)).cloned().collect();
                for key in &ready {
                    many.remove(key);
                }
                ready
            }
        };
        for key in &ready {
            due_of.remove(key);
        }
        ready
    }
}

#[derive(Clone, Debug)]
pub struct TimerWheel {
    granularity_ms: i64,
    buckets: HashMap<i128, Bucket>,
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
        // The key's copy in `due_of` is kept for its next due time.
        let mut owned: Option<Vec<u8>> = None;
        if let Some((old_key, old)) = self.due_of.remove_entry(key) {
            let old_bucket = self.bucket(old);
            if let Some(members) = self.buckets.get_mut(&old_bucket) {
                members.remove(key);
            }
            owned = Some(old_key);
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
                Bucket::Few(Vec::new())
            })
            .insert(key);
        self.due_of
            .insert(owned.unwrap_or_else(|| key.to_vec()), due);
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
                due.extend(members.take_due(&mut self.due_of, watermark_ms));
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

    #[test]
    fn a_crowded_bucket_keeps_byte_order_both_ways() {
        // Past FEW keys a bucket turns into a BTreeSet, and back to a Vec once empty; the
        // keys come out in byte order and at their own due time either way.
        for count in [3usize, FEW, FEW + 1, 3 * FEW] {
            let mut w = TimerWheel::default();
            let keys: Vec<Vec<u8>> = (0..count)
                .rev()
                .map(|i| format!("v{:03}", i).into_bytes())
                .collect();
            for (i, key) in keys.iter().enumerate() {
                w.set(key, Some(1000 + (i as i64 % 2) * 500));
            }
            w.set(&keys[0], Some(1000)); // moved within its bucket: still once
            w.set(&keys[1], None);
            let mut early: Vec<Vec<u8>> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1 && (i % 2 == 0 || *i == 0))
                .map(|(_, k)| k.clone())
                .collect();
            early.sort();
            assert_eq!(w.pop_due(1200), early, "{} keys", count);
            let mut late: Vec<Vec<u8>> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != 1 && i % 2 == 1)
                .map(|(_, k)| k.clone())
                .collect();
            late.sort();
            assert_eq!(w.pop_due(1999), late, "{} keys", count);
            assert!(w.is_empty());
            assert!(w.buckets.is_empty() && w.order.is_empty());
            // A bucket emptied by moves holds nothing and still fires nothing.
            w.set(b"x", Some(3000));
            w.set(b"x", Some(9000));
            assert!(w.buckets.get(&3000).map_or(false, |b| b.is_empty()));
            assert_eq!(w.pop_due(8999), Vec::<Vec<u8>>::new());
            assert_eq!(w.pop_due(9000), vec![b"x".to_vec()]);
        }
    }
}
