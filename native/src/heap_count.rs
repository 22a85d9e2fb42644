//! A counting allocator, built only with the `heap-count` feature, for
//! `bench/core_heap.py`: the compiled core's live heap bytes, and what each of a
//! partition's parts holds (`PartitionCore::heap_breakdown`). Production builds use
//! mimalloc directly; every allocation here costs one more atomic add.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering};

use pyo3::prelude::*;

static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

/// mimalloc, counting the bytes asked for (not mimalloc's size classes or free pages).
pub struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size() as i64);
        mimalloc::MiMalloc.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size as i64 - layout.size() as i64);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

fn grew(bytes: i64) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// The bytes the crate's live allocations asked for.
pub fn live_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

#[pyfunction]
pub fn heap_live_bytes() -> i64 {
    live_bytes()
}

/// The most `heap_live_bytes` has been since the last call (which starts a new peak).
#[pyfunction]
pub fn heap_peak_bytes() -> i64 {
    PEAK.swap(live_bytes(), Ordering::Relaxed)
}
