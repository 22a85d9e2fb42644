//! Positions by the hash of what is stored at them: a hash map's index without a copy of
//! the keys. The keys live once elsewhere (a slab, a list of pairs); a lookup hashes the
//! borrowed key and compares it with the stored one at each position of its hash
//! (almost always one). Used where keys are large (strings) and each copy is an
//! allocation per string: the aggregates' live rows, a visitor's contributions.

use std::hash::{BuildHasher, Hash, Hasher};

use crate::fxhash::{FxBuild, FxHashMap};

/// The positions of one hash.
#[derive(Clone, Debug)]
enum Bucket {
    One(u32),
    Many(Vec<u32>),
}

impl Bucket {
    fn positions(&self) -> &[u32] {
        match self {
            Bucket::One(at) => std::slice::from_ref(at),
            Bucket::Many(at) => at,
        }
    }
}

/// Hash -> positions, with its own random hash state (as every map of the core: module
/// docs of `fxhash`).
#[derive(Clone, Default)]
pub struct HashIndex {
    build: FxBuild,
    by_hash: FxHashMap<u64, Bucket>,
}

impl std::fmt::Debug for HashIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashIndex")
            .field("hashes", &self.by_hash.len())
            .finish()
    }
}

impl HashIndex {
    /// The hash of a key under this index's state.
    pub fn hash<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        let mut hasher = self.build.build_hasher();
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// The first position of `hash` whose stored key `is` the one looked for.
    pub fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let bucket = self.by_hash.get(&hash)?;
        bucket.positions().iter().copied().find(|at| is(*at))
    }

    pub fn insert(&mut self, hash: u64, at: u32) {
        match self.by_hash.get_mut(&hash) {
            None => {
                self.by_hash.insert(hash, Bucket::One(at));
            }
            Some(bucket) => {
                let mut positions = bucket.positions().to_vec();
                positions.push(at);
                *bucket = Bucket::Many(positions);
            }
        }
    }

    pub fn remove(&mut self, hash: u64, at: u32) {
        let emptied = match self.by_hash.get_mut(&hash) {
            Some(Bucket::Many(positions)) => {
                positions.retain(|other| *other != at);
                positions.is_empty()
            }
            Some(Bucket::One(only)) => *only == at,
            None => false,
        };
        if emptied {
            self.by_hash.remove(&hash);
        }
    }
}
