//! Kafka's record batches (message format v2) as a fetch returns them, read without
//! building a Python object per record on the way.
//!
//! aiokafka turns every fetched record into a `ConsumerRecord` (an 11-field Python
//! object) in Faust's consumer thread, and the batch transport then copied each into a
//! `Record`: about 4 us per record on this machine type, most of the simple workload's
//! consumer thread (BENCHMARKS.md, "Records read from the fetch"). This module walks the
//! fetch's bytes as aiokafka's `PartitionRecords` does for `read_uncommitted`: batches
//! in order, CRC-32C checked if asked, control batches skipped, records below the fetch
//! offset skipped, a batch cut short at the end of the fetch left for the next one.
//! Compressed batches are inflated by a callback (the caller uses aiokafka's codecs).
//!
//! Layout (KIP-98, `DefaultRecordBatch`): a 61-byte header, then the records, each a
//! varint length, attributes, varint timestamp and offset deltas, the key and the value
//! with varint lengths (-1 for null), and the headers.

/// Bytes before a batch's length field is complete: base offset (8) and length (4).
const LOG_OVERHEAD: usize = 12;
const HEADER_SIZE: usize = 61;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;
const LOG_APPEND_TIME: i16 = 0x08;
const CONTROL_BATCH: i16 = 0x20;

/// One record as it leaves the fetch: borrowed from the fetch or its inflated batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Why a fetch could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError<E> {
    /// A batch of message format v0 or v1: the caller reads the whole fetch its old way
    /// (Kafka 4 brokers no longer write them). Found before any record is given out.
    OldFormat(i8),
    /// A batch whose checksum does not match its bytes.
    BadCrc { base_offset: i64 },
    /// Lengths that do not fit the batch, a varint too long, an unknown format.
    Corrupt(String),
    /// A callback failed: the decompression, or the one given each record.
    Callback(E),
}

/// CRC-32C (Castagnoli), the checksum of a v2 batch.
pub fn crc32c(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("sse4.2") {
            // Safety: the CPU has the instructions, checked just above.
            return unsafe { crc32c_sse42(data) };
        }
    }
    crc32c_table(data)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut crc: u64 = 0xFFFF_FFFF;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(le));
    }
    let mut crc = crc as u32;
    for &byte in words.remainder() {
        crc = _mm_crc32_u8(crc, byte);
    }
    !crc
}

const fn crc32c_lookup() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC32C_TABLE: [u32; 256] = crc32c_lookup();

fn crc32c_table(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc = CRC32C_TABLE[((crc ^ byte as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

fn be_i16(data: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([data[at], data[at + 1]])
}

fn be_i32(data: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    i32::from_be_bytes(b)
}

fn be_i64(data: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    i64::from_be_bytes(b)
}

/// A zigzag varint (Kafka's signed varint and varlong), at most `max_bytes` long.
fn varint(data: &[u8], pos: &mut usize, max_bytes: usize) -> Result<i64, String> {
    let mut raw: u64 = 0;
    let mut shift = 0u32;
    for i in 0..max_bytes {
        let byte = match data.get(*pos + i) {
            Some(b) => *b,
            None => return Err("a varint runs past the record".to_string()),
        };
        raw |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            *pos += i + 1;
            return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
        }
        shift += 7;
    }
    Err(format!("a varint longer than {} bytes", max_bytes))
}

/// A length-prefixed field: None for length -1.
fn bytes_field<'a>(data: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let length = varint(data, pos, 5)?;
    if length == -1 {
        return Ok(None);
    }
    if length < 0 || *pos + length as usize > data.len() {
        return Err(format!(
            "a field of {} bytes does not fit its record",
            length
        ));
    }
    let field = &data[*pos..*pos + length as usize];
    *pos += length as usize;
    Ok(Some(field))
}

/// The records of one batch's (inflated) records section, in order.
fn read_records<E>(
    body: &[u8],
    count: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    emit: &mut dyn FnMut(RecordView<'_>) -> Result<(), E>,
    from_offset: &mut i64,
) -> Result<(), FetchError<E>> {
    let corrupt =
        |why: String| FetchError::Corrupt(format!("record batch at {}: {}", base_offset, why));
    let mut pos = 0usize;
    for _ in 0..count.max(0) {
        let length = varint(body, &mut pos, 5).map_err(corrupt)?;
        if length < 0 || pos + length as usize > body.len() {
            return Err(corrupt(format!(
                "a record of {} bytes does not fit",
                length
            )));
        }
        let record = &body[pos..pos + length as usize];
        pos += length as usize;
        let mut at = 1usize; // the record's attributes byte: unused by the format today
        let timestamp_delta = varint(record, &mut at, 10).map_err(corrupt)?;
        let offset_delta = varint(record, &mut at, 5).map_err(corrupt)?;
        let key = bytes_field(record, &mut at).map_err(corrupt)?;
        let value = bytes_field(record, &mut at).map_err(corrupt)?;
        let offset = base_offset.wrapping_add(offset_delta);
        // Records below the fetch offset: the broker returns whole batches.
        if offset < *from_offset {
            continue;
        }
        let timestamp_ms = match log_append_time {
            Some(max_timestamp) => max_timestamp,
            None => base_timestamp.wrapping_add(timestamp_delta),
        };
        emit(RecordView {
            offset,
            timestamp_ms,
            key,
            value,
        })
        .map_err(FetchError::Callback)?;
        *from_offset = offset + 1;
    }
    if pos != body.len() {
        return Err(corrupt(format!(
            "{} bytes left after its {} records",
            body.len() - pos,
            count
        )));
    }
    Ok(())
}

/// Walk a fetch's record batches from `fetch_offset`, giving each record to `emit`.
///
/// Returns the offset the next fetch starts from: past the last complete batch (which
/// covers trailing records removed by compaction, and control batches). `inflate`
/// gets the codec (1 gzip, 2 snappy, 3 lz4, 4 zstd) and a compressed records section.
pub fn read_fetch<E>(
    data: &[u8],
    fetch_offset: i64,
    check_crcs: bool,
    inflate: &mut dyn FnMut(u8, &[u8]) -> Result<Vec<u8>, E>,
    emit: &mut dyn FnMut(RecordView<'_>) -> Result<(), E>,
) -> Result<i64, FetchError<E>> {
    // The format is checked for every batch first, so an old one falls back before any
    // record was given out.
    let mut pos = 0usize;
    while data.len() - pos >= LOG_OVERHEAD {
        let length = be_i32(data, pos + 8);
        if length < 0 || data.len() - pos < LOG_OVERHEAD + length as usize {
            break;
        }
        // v0/v1 messages are shorter than a v2 header: the magic byte decides first.
        let magic = if length as usize > MAGIC_AT - LOG_OVERHEAD {
            data[pos + MAGIC_AT] as i8
        } else {
            -1
        };
        if magic == 0 || magic == 1 {
            return Err(FetchError::OldFormat(magic));
        }
        if magic != 2 || (length as usize) < HEADER_SIZE - LOG_OVERHEAD {
            return Err(FetchError::Corrupt(format!(
                "a record batch of {} bytes with magic {} is not Kafka's format v2",
                length, magic
            )));
        }
        pos += LOG_OVERHEAD + length as usize;
    }

    let mut next_fetch_offset = fetch_offset;
    let mut pos = 0usize;
    while data.len() - pos >= LOG_OVERHEAD {
        let length = be_i32(data, pos + 8) as usize;
        if data.len() - pos < LOG_OVERHEAD + length {
            break; // cut short by the fetch's size limit: fetched again from its start
        }
        let batch = &data[pos..pos + LOG_OVERHEAD + length];
        pos += LOG_OVERHEAD + length;
        let base_offset = be_i64(batch, 0);
        if check_crcs {
            let stored = be_i32(batch, CRC_AT) as u32;
            if crc32c(&batch[ATTRIBUTES_AT..]) != stored {
                return Err(FetchError::BadCrc { base_offset });
            }
        }
        let attributes = be_i16(batch, ATTRIBUTES_AT);
        let batch_end = base_offset + i64::from(be_i32(batch, 23)) + 1;
        // As aiokafka: past each batch read, even a batch that ended below the fetch
        // offset (which a broker does not return).
        if attributes & CONTROL_BATCH != 0 {
            next_fetch_offset = batch_end;
            continue;
        }
        let base_timestamp = be_i64(batch, 27);
        let log_append_time = if attributes & LOG_APPEND_TIME != 0 {
            Some(be_i64(batch, 35))
        } else {
            None
        };
        let count = be_i32(batch, 57);
        let section = &batch[HEADER_SIZE..];
        let codec = (attributes & COMPRESSION_MASK) as u8;
        if codec > 4 {
            return Err(FetchError::Corrupt(format!(
                "record batch at {}: unknown compression codec {}",
                base_offset, codec
            )));
        }
        let inflated;
        let body: &[u8] = if codec == 0 {
            section
        } else {
            inflated = inflate(codec, section).map_err(FetchError::Callback)?;
            &inflated
        };
        read_records(
            body,
            count,
            base_offset,
            base_timestamp,
            log_append_time,
            emit,
            &mut next_fetch_offset,
        )?;
        // v2 keeps a batch's last offset even when compaction removed its last records.
        next_fetch_offset = batch_end;
    }
    Ok(next_fetch_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zigzag(value: i64, out: &mut Vec<u8>) {
        let mut raw = ((value << 1) ^ (value >> 63)) as u64;
        loop {
            let byte = (raw & 0x7F) as u8;
            raw >>= 7;
            if raw == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn record(offset_delta: i64, ts_delta: i64, key: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8];
        zigzag(ts_delta, &mut body);
        zigzag(offset_delta, &mut body);
        match key {
            Some(k) => {
                zigzag(k.len() as i64, &mut body);
                body.extend_from_slice(k);
            }
            None => zigzag(-1, &mut body),
        }
        zigzag(value.len() as i64, &mut body);
        body.extend_from_slice(value);
        zigzag(0, &mut body);
        let mut out = Vec::new();
        zigzag(body.len() as i64, &mut out);
        out.extend(body);
        out
    }

    fn batch(base: i64, attributes: i16, records: &[Vec<u8>], last_delta: i32) -> Vec<u8> {
        let mut tail = Vec::new(); // from attributes on: what the CRC covers
        tail.extend_from_slice(&attributes.to_be_bytes());
        tail.extend_from_slice(&last_delta.to_be_bytes());
        tail.extend_from_slice(&1_000i64.to_be_bytes());
        tail.extend_from_slice(&9_000i64.to_be_bytes());
        tail.extend_from_slice(&(-1i64).to_be_bytes());
        tail.extend_from_slice(&(-1i16).to_be_bytes());
        tail.extend_from_slice(&(-1i32).to_be_bytes());
        tail.extend_from_slice(&(records.len() as i32).to_be_bytes());
        for r in records {
            tail.extend_from_slice(r);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&base.to_be_bytes());
        out.extend_from_slice(&((tail.len() + 9) as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.push(2);
        out.extend_from_slice(&crc32c(&tail).to_be_bytes());
        out.extend(tail);
        out
    }

    fn read_all(
        data: &[u8],
        from: i64,
    ) -> Result<(Vec<(i64, i64, Option<Vec<u8>>, Vec<u8>)>, i64), FetchError<()>> {
        let mut out = Vec::new();
        let next = read_fetch(data, from, true, &mut |_, _| Err(()), &mut |r| {
            out.push((
                r.offset,
                r.timestamp_ms,
                r.key.map(|k| k.to_vec()),
                r.value.unwrap_or_default().to_vec(),
            ));
            Ok(())
        })?;
        Ok((out, next))
    }

    #[test]
    fn crc32c_matches_the_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c_table(b"123456789"), 0xE306_9283);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        assert_eq!(crc32c(&long), crc32c_table(&long));
    }

    #[test]
    fn records_come_out_in_order_with_their_fields() {
        let mut data = batch(
            10,
            0,
            &[record(0, 5, Some(b"k"), b"v0"), record(1, 7, None, b"v1")],
            1,
        );
        data.extend(batch(
            12,
            LOG_APPEND_TIME,
            &[record(0, 5, Some(b"k2"), b"v2")],
            0,
        ));
        let (records, next) = read_all(&data, 0).unwrap();
        assert_eq!(
            records,
            vec![
                (10, 1005, Some(b"k".to_vec()), b"v0".to_vec()),
                (11, 1007, None, b"v1".to_vec()),
                (12, 9000, Some(b"k2".to_vec()), b"v2".to_vec()),
            ]
        );
        assert_eq!(next, 13);
    }

    #[test]
    fn records_below_the_fetch_offset_and_control_batches_are_skipped() {
        let mut data = batch(
            10,
            0,
            &[record(0, 0, None, b"a"), record(1, 0, None, b"b")],
            3,
        );
        data.extend(batch(
            14,
            CONTROL_BATCH,
            &[record(0, 0, Some(b"\0\0\0\0"), b"")],
            0,
        ));
        let (records, next) = read_all(&data, 11).unwrap();
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![11]);
        assert_eq!(
            next, 15,
            "past the compacted tail (13) and the control batch"
        );
    }

    #[test]
    fn a_batch_cut_short_is_left_for_the_next_fetch() {
        let mut data = batch(0, 0, &[record(0, 0, None, b"a")], 0);
        let second = batch(1, 0, &[record(0, 0, None, b"b")], 0);
        data.extend_from_slice(&second[..second.len() - 3]);
        let (records, next) = read_all(&data, 0).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(next, 1);
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut data = batch(0, 0, &[record(0, 0, None, b"abc")], 0);
        let last = data.len() - 2;
        data[last] ^= 0x01;
        assert_eq!(
            read_all(&data, 0),
            Err(FetchError::BadCrc { base_offset: 0 })
        );
    }

    #[test]
    fn an_old_format_is_found_before_any_record_is_given_out() {
        let mut data = batch(0, 0, &[record(0, 0, None, b"a")], 0);
        let mut old = batch(1, 0, &[record(0, 0, None, b"b")], 0);
        old[MAGIC_AT] = 1;
        data.extend(old);
        let mut given = 0;
        let result = read_fetch(&data, 0, false, &mut |_, _| Err(()), &mut |_| {
            given += 1;
            Ok(())
        });
        assert_eq!(result, Err(FetchError::OldFormat(1)));
        assert_eq!(given, 0);
    }

    #[test]
    fn a_record_longer_than_its_batch_is_corrupt() {
        let mut rec = record(0, 0, None, b"abcdef");
        rec[0] = 0x7E; // length 63: past the batch's end
        let data = batch(0, 0, &[rec], 0);
        match read_all(&data, 0) {
            Err(FetchError::Corrupt(why)) => assert!(why.contains("does not fit"), "{}", why),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn compressed_sections_go_through_the_callback() {
        let plain: Vec<u8> = [record(0, 0, None, b"x"), record(1, 0, None, b"y")].concat();
        let mut data = batch(5, 3, &[], 1);
        // Put the "compressed" section (reversed bytes) and the count in place by hand.
        let count_at = 57;
        data[count_at..count_at + 4].copy_from_slice(&2i32.to_be_bytes());
        data.extend(plain.iter().rev());
        let length = (data.len() - LOG_OVERHEAD) as i32;
        data[8..12].copy_from_slice(&length.to_be_bytes());
        let mut seen = Vec::new();
        let next = read_fetch(
            &data,
            0,
            false,
            &mut |codec, section: &[u8]| -> Result<Vec<u8>, ()> {
                assert_eq!(codec, 3);
                Ok(section.iter().rev().copied().collect())
            },
            &mut |r| {
                seen.push((r.offset, r.value.unwrap().to_vec()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![(5, b"x".to_vec()), (6, b"y".to_vec())]);
        assert_eq!(next, 7);
    }
}
