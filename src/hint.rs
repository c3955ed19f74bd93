//! CPU hints that change how fast the program runs, never what it computes.

/// A hint to load the cache line at `at` (capture bytes ahead of the parser,
/// flow slots, port counters); no effect on what the program computes.
#[inline(always)]
pub fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch has no architectural effect and does not fault, even
    // for an address outside any allocation.
    unsafe {
        std::arch::x86_64::_mm_prefetch(at.cast(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}
