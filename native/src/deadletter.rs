//! A record that failed decoding or validation: the Rust twin of `schemas/deadletter.py`.
//!
//! Only the record itself (`DeadLetter.from_rejection`); its Avro encoding for the
//! dead-letter topic (`EventCodec.encode_dead_letter`) is not ported here.

use crate::json::Json;
use crate::validation::Rejection;

/// The raw record plus why and where it was rejected (Avro schema `deadletter.v1`).
///
/// `reason` is a plain string, as in Python: the worker can add its own reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub raw: Vec<u8>,
    pub reason: String,
    pub detail: String,
    pub source_topic: String,
    pub source_partition: i64,
    pub source_offset: i64,
    pub key: Option<Vec<u8>>,
    pub received_at_ms: i64,
}

impl DeadLetter {
    /// `DeadLetter.from_rejection(rejection, raw=..., source_topic=..., ...)`.
    pub fn from_rejection(
        rejection: &Rejection,
        raw: &[u8],
        source_topic: &str,
        source_partition: i64,
        source_offset: i64,
        key: Option<&[u8]>,
        received_at_ms: i64,
    ) -> DeadLetter {
        DeadLetter {
            raw: raw.to_vec(),
            reason: rejection.reason.as_str().to_owned(),
            detail: rejection.detail.clone(),
            source_topic: source_topic.to_owned(),
            source_partition,
            source_offset,
            key: key.map(<[u8]>::to_vec),
            received_at_ms,
        }
    }

    /// The fields in the dataclass's order, bytes as lowercase hex (None for no key).
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("raw".into(), Json::Str(hex(&self.raw))),
            ("reason".into(), Json::s(&self.reason)),
            ("detail".into(), Json::s(&self.detail)),
            ("source_topic".into(), Json::s(&self.source_topic)),
            ("source_partition".into(), Json::Int(self.source_partition)),
            ("source_offset".into(), Json::Int(self.source_offset)),
            (
                "key".into(),
                self.key.as_ref().map_or(Json::Null, |k| Json::Str(hex(k))),
            ),
            ("received_at_ms".into(), Json::Int(self.received_at_ms)),
        ])
    }
}

/// `bytes.hex()`: two lowercase hex digits per byte.
pub fn hex(raw: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(raw.len() * 2);
    for b in raw {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}
