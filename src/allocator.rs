//! The global allocator: mimalloc, called through its C API (the only `unsafe` in the binary
//! besides the ledger thread's scheduling policy).
//!
//! The `mimalloc` crate sends every allocation to `mi_malloc_aligned`. In mimalloc 3 only blocks
//! up to 1 KB take that function's fast path; a larger one whose size class is not a power of two
//! up to 4 KB is over-allocated by its alignment minus one and aligned by hand: an 8 KB buffer
//! took a 10 KB block, and each such call ran ~190 instructions more than `mi_malloc`. A block
//! of mimalloc's is already aligned to 16 bytes at most and to its size class (a multiple of 8,
//! and of 16 above 16), so a layout whose alignment is at most 16 and divides its size is served
//! by the plain functions; only larger alignments (tokio's task cells, 128) go to the aligned
//! ones. Also: no transparent huge pages (`no_thp`), and freed memory goes back to the OS 50 ms
//! after the free.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_option_set, mi_option_t, mi_realloc,
    mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned,
};

/// `MI_MAX_ALIGN_SIZE` (`include/mimalloc/types.h`): every block is aligned to this or to its
/// size class, whichever is smaller.
const NATURAL_ALIGN: usize = 16;

/// Whether a plain mimalloc block of `size` bytes is aligned enough for `align`.
fn natural(size: usize, align: usize) -> bool {
    align <= NATURAL_ALIGN && size.is_multiple_of(align)
}

/// A block for `layout` from mimalloc's `plain` call when it is aligned enough, else from its
/// `aligned` one.
///
/// # Safety
/// Both are mimalloc's allocation calls (`mi_malloc` and `mi_malloc_aligned`, or the zeroing
/// pair), and `layout` has a non-zero size.
#[inline]
unsafe fn new_block(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        if natural(layout.size(), layout.align()) {
            plain(layout.size()).cast()
        } else {
            aligned(layout.size(), layout.align()).cast()
        }
    }
}

/// mimalloc as the global allocator, with plain calls where they are aligned enough.
pub(crate) struct MiMalloc;

// SAFETY: every pointer comes from mimalloc and goes back to it; a layout is served by a plain
// call only when a plain block satisfies its alignment (`natural`), else by the aligned call.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain C calls; mimalloc returns null when out of memory, as `alloc` must.
        unsafe { new_block(layout, mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe { new_block(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (the caller's contract); `mi_free` takes
        // blocks from the plain and the aligned calls alike.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = ptr.cast::<c_void>();
        // SAFETY: `ptr` is this allocator's (the caller's contract); `mi_realloc` keeps the
        // block when it fits and otherwise moves it to a plain block, aligned enough when both
        // sizes are natural for the alignment.
        unsafe {
            if natural(layout.size(), layout.align()) && natural(new_size, layout.align()) {
                mi_realloc(p, new_size).cast()
            } else {
                mi_realloc_aligned(p, new_size, layout.align()).cast()
            }
        }
    }
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (`include/mimalloc.h`);
/// libmimalloc-sys names only the options of mimalloc 2. The test below pins it.
const PURGE_DELAY: mi_option_t = 15;

/// How long freed pages wait before they go back to the OS, in milliseconds.
///
/// mimalloc's default is a second, and it purges only when it next does allocator work: a
/// gateway that goes idle after a burst of streams would keep the burst's memory. At 0 every
/// freed page went back at once, and under load the next request faulted it in again: 6 %
/// more CPU per request at 15,000 requests/s than at 50 ms (docs/bench.md). At 50 ms the
/// pages a steady load reuses stay, and 1,000 streams leave 22–25 MB 1.5 s after them
/// (20 MB at 0; the idle gateway holds 15).
const PURGE_DELAY_MS: std::ffi::c_long = 50;

/// Sets the purge delay, unless `MIMALLOC_PURGE_DELAY` chose one (mimalloc reads it itself).
pub(crate) fn return_freed_memory_soon() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(test)]
mod tests {
    use libmimalloc_sys::{mi_option_get, mi_usable_size};

    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay_unless_the_environment_set_it() {
        // mimalloc 3's default purge delay is 1000 ms; `MIMALLOC_PURGE_DELAY` sets the same
        // option from the environment.
        let configured = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok());
        // SAFETY: reading an option is a plain load.
        let get = || unsafe { mi_option_get(PURGE_DELAY) };
        assert_eq!(get(), configured.unwrap_or(1000));
        return_freed_memory_soon();
        assert_eq!(get(), configured.unwrap_or(PURGE_DELAY_MS));
    }

    /// Sizes around mimalloc's size classes and page limits, small to large.
    fn sizes() -> impl Iterator<Item = usize> {
        (1..=300).chain((1000..=1100).step_by(7)).chain([
            4095,
            4096,
            4097,
            8191,
            8192,
            8200,
            16_384,
            65_536,
            70_000,
            1 << 20,
        ])
    }

    #[test]
    fn every_block_is_aligned_as_asked_and_keeps_its_bytes_through_realloc() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in sizes() {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; every block is freed below with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(
                        !p.is_null() && p.addr().is_multiple_of(align),
                        "{size}/{align}"
                    );
                    std::ptr::write_bytes(p, 0xA5, size);
                    let bigger = size * 3 + 5;
                    let q = a.realloc(p, layout, bigger);
                    assert!(q.addr().is_multiple_of(align), "realloc {size}/{align}");
                    assert!(
                        std::slice::from_raw_parts(q, size)
                            .iter()
                            .all(|&b| b == 0xA5)
                    );
                    a.dealloc(q, Layout::from_size_align(bigger, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert!(z.addr().is_multiple_of(align), "zeroed {size}/{align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }

    #[test]
    fn a_buffer_takes_a_block_of_its_own_size() {
        // hyper's 8 KB read and write buffers, and a task's boxed future of a few KB: the aligned
        // call over-allocated these by their alignment (8 KB took a 10 KB block).
        let a = MiMalloc;
        for size in [1536, 5120, 8192] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a non-zero size, freed with its layout.
            unsafe {
                let p = a.alloc(layout);
                assert_eq!(mi_usable_size(p.cast()), size, "{size}");
                a.dealloc(p, layout);
            }
        }
    }
}
