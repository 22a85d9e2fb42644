//! A partition's checkpoint record in the state table: the Rust twin of
//! `streams/checkpoint.py`.
//!
//! Thresholds, input clock histories and the triggers position, written after each
//! batch's visitor records, as the same bytes `orjson.dumps` writes for the Python
//! `Checkpoint`. Decoding accepts what `encode` writes (integers where the Python calls
//! `int()`); the Python's `int()` also takes booleans, numeric strings and floats, which
//! no checkpoint holds: those are errors here.

use crate::json::{self, Json, JsonError, JsonResult};
use crate::timers::{from_latin1, latin1};
use crate::watermarks::{history_from_json, History};

pub const META_PREFIX: &[u8] = b"__meta__/";

pub fn meta_key(partition: i64) -> Vec<u8> {
    let mut key = META_PREFIX.to_vec();
    key.extend_from_slice(partition.to_string().as_bytes());
    key
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Finality group -> window, in insertion order (keys unique, as in a dict).
    pub thresholds: Vec<(String, i64)>,
    /// Input stream -> its clock history, in insertion order (keys unique).
    pub history: Vec<(String, History)>,
    /// In the triggers partition.
    pub triggers_next_offset: Option<i64>,
}

fn history_json(history: &[(i64, Option<i64>)]) -> Json {
    Json::List(
        history
            .iter()
            .map(|(offset, max_t)| Json::List(vec![Json::Int(*offset), Json::opt_i(*max_t)]))
            .collect(),
    )
}

fn member<'a>(entries: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

impl Checkpoint {
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            (
                "thresholds".to_owned(),
                Json::Object(
                    self.thresholds
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::Int(*v)))
                        .collect(),
                ),
            ),
            (
                "history".to_owned(),
                Json::Object(
                    self.history
                        .iter()
                        .map(|(stream, h)| (stream.clone(), history_json(h)))
                        .collect(),
                ),
            ),
            (
                "triggers_next_offset".to_owned(),
                Json::opt_i(self.triggers_next_offset),
            ),
        ])
    }

    pub fn encode(&self) -> Vec<u8> {
        json::to_bytes(&self.to_json())
    }

    pub fn from_json(meta: &Json) -> JsonResult<Checkpoint> {
        let entries = meta.object("the checkpoint")?;
        let thresholds_json = match member(entries, "thresholds") {
            Some(value) => value.object("thresholds")?,
            None => return Err(JsonError("no thresholds".to_owned())),
        };
        let mut thresholds = Vec::with_capacity(thresholds_json.len());
        for (group, window) in thresholds_json {
            thresholds.push((group.clone(), window.int("a threshold")?));
        }
        let history_of = match member(entries, "history") {
            Some(value) => value.object("history")?,
            None => return Err(JsonError("no history".to_owned())),
        };
        let mut history = Vec::with_capacity(history_of.len());
        for (stream, entries) in history_of {
            history.push((stream.clone(), history_from_json(entries, "a history")?));
        }
        let triggers_next_offset = match member(entries, "triggers_next_offset") {
            Some(value) => value.opt_int("triggers_next_offset")?,
            None => None,
        };
        Ok(Checkpoint {
            thresholds,
            history,
            triggers_next_offset,
        })
    }

    pub fn decode(raw: &[u8]) -> JsonResult<Checkpoint> {
        Checkpoint::from_json(&json::parse(raw)?)
    }
}

// -- probe ---------------------------------------------------------------------------

fn field<'a>(args: &'a Json, key: &str) -> JsonResult<&'a Json> {
    match member(args.object("arguments")?, key) {
        Some(value) => Ok(value),
        None => Err(JsonError(format!("missing argument {:?}", key))),
    }
}

/// `checkpoint.encode`: the Checkpoint's fields -> the encoded bytes as latin-1.
/// `checkpoint.decode`: {"raw": latin-1} -> the decoded fields (as `encode` takes them).
/// `checkpoint.meta_key`: {"partition"} -> the key as latin-1.
pub fn probe(name: &str, args: &Json) -> Option<JsonResult<Json>> {
    match name {
        "checkpoint.encode" => Some(
            Checkpoint::from_json(args).map(|checkpoint| Json::Str(latin1(&checkpoint.encode()))),
        ),
        "checkpoint.decode" => Some(
            field(args, "raw")
                .and_then(|raw| from_latin1(raw.str("raw")?, "raw"))
                .and_then(|raw| Checkpoint::decode(&raw))
                .map(|checkpoint| checkpoint.to_json()),
        ),
        "checkpoint.meta_key" => Some(
            field(args, "partition")
                .and_then(|p| p.int("partition"))
                .map(|p| Json::Str(latin1(&meta_key(p)))),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let checkpoint = Checkpoint {
            thresholds: vec![("kpi".to_owned(), 86_400_000), ("é".to_owned(), -1)],
            history: vec![(
                "clickstream".to_owned(),
                vec![(1999, Some(5)), (3999, None)],
            )],
            triggers_next_offset: None,
        };
        let raw = checkpoint.encode();
        assert_eq!(
            raw,
            "{\"thresholds\":{\"kpi\":86400000,\"é\":-1},\"history\":{\"clickstream\":[[1999,5],[3999,null]]},\"triggers_next_offset\":null}".as_bytes()
        );
        assert_eq!(Checkpoint::decode(&raw), Ok(checkpoint));
        assert_eq!(meta_key(-3), b"__meta__/-3".to_vec());
    }
}
