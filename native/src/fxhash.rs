//! A fast, non-cryptographic hasher for the core's in-memory maps (rustc's FxHash).
//!
//! The standard SipHash was about a tenth of the core's time (keys are built and looked
//! up for every visitor update). Keys hold strings that visitors' browsers choose
//! (anonymous ids, campaigns), so each map starts from its own random state: inputs
//! crafted to collide under one map's hash do not collide under the next one's.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// hashbrown takes a bucket from the hash's low bits and a tag from its top 7. After
    /// FxHash's last multiply the low bits depend only on the low bits of the last word,
    /// so keys that differ only in a word's high bytes (`visitor-000000123`, or ids chosen
    /// to) shared buckets whatever the seed: recovering 400,000 such visitors cost 4.3x
    /// as much per visitor as 400,000 random UUIDs (BENCHMARKS.md, "A partition's
    /// hand-over timed"). The fold and multiply spread every bit into both ends.
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.hash;
        let h = (h ^ (h >> 32)).wrapping_mul(0xd6e8_feb8_6659_fd93);
        h ^ (h >> 32)
    }
}

/// Builds hashers that start from a state drawn when the map was made.
#[derive(Clone, Copy)]
pub struct FxBuild {
    seed: u64,
}

impl Default for FxBuild {
    fn default() -> Self {
        FxBuild {
            seed: RandomState::new().build_hasher().finish(),
        }
    }
}

impl BuildHasher for FxBuild {
    type Hasher = FxHasher;

    fn build_hasher(&self) -> FxHasher {
        FxHasher { hash: self.seed }
    }
}

pub type FxHashMap<K, V> = HashMap<K, V, FxBuild>;
pub type FxHashSet<K> = HashSet<K, FxBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct values of `bits` of the hashes of 100,000 keys that differ only in their
    /// last few bytes, as sequential ids do.
    fn spread(bits: fn(u64) -> u64) -> usize {
        let build = FxBuild::default();
        let values: HashSet<u64> = (0..100_000)
            .map(|i| bits(build.hash_one(format!("visitor-{i:09}").as_bytes())))
            .collect();
        values.len()
    }

    #[test]
    fn keys_that_differ_in_a_few_bytes_spread_over_buckets_and_tags() {
        // 100,000 keys into 65,536 buckets fill about 78% of them when the low 16 bits are
        // uniform; before the final mix they filled 32.
        let buckets = spread(|h| h & 0xffff);
        assert!(buckets > 45_000, "{buckets} distinct buckets of 65,536");
        let tags = spread(|h| h >> 57);
        assert_eq!(tags, 128, "{tags} distinct tags of 128");
    }

    #[test]
    fn equal_keys_hash_equal_and_maps_work() {
        let mut map: FxHashMap<(String, i64), i64> = FxHashMap::default();
        for i in 0..1000 {
            *map.entry((format!("k{}", i % 100), i % 7)).or_insert(0) += 1;
        }
        assert_eq!(map.len(), 700);
        assert_eq!(map.values().sum::<i64>(), 1000);
        let mut a = FxHasher::default();
        a.write(b"abcdefghij");
        let mut b = FxHasher::default();
        b.write(b"abcdefghij");
        assert_eq!(a.finish(), b.finish());
        let mut c = FxHasher::default();
        c.write(b"abcdefghik");
        assert_ne!(a.finish(), c.finish());
    }
}
