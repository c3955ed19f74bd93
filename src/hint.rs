//! CPU and memory hints that change how fast the program runs, never what it
//! computes: prefetches, zeroed tables written once when made, pages mapped
//! ahead of use.

/// Bytes in a cache line.
pub const LINE: usize = 64;
/// Bytes in a (base) memory page.
pub const PAGE: usize = 4096;

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

/// [`prefetch`] for every cache line `len` bytes from `at` overlap (a flow
/// slot, which may span three lines; a run of a port's counters).
#[inline(always)]
pub fn prefetch_lines(at: *const u8, len: usize) {
    let last = at.wrapping_add(len.max(1) - 1);
    let mut line = at.wrapping_sub(at as usize % LINE);
    while line <= last {
        prefetch(line);
        line = line.wrapping_add(LINE);
    }
}

/// `n` zeroes in memory that is already this process's own: every page is
/// written once here. A zeroed allocation is fresh pages the kernel has not
/// provided yet; if its first access is a read (a table whose entries are read
/// and then updated), the shared zero page is mapped, and the first write then
/// replaces it, which flushes the old mapping from every core running the
/// process: an interrupt to the other core (on a VM, an exit on both sides).
/// For the flow tables' control bytes, the first-packets table and histogram
/// buckets.
pub fn zeroed_written<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    let step = (PAGE / std::mem::size_of::<T>().max(1)).max(1);
    for i in (0..n).step_by(step) {
        // SAFETY: `i < n`, inside the vector. A volatile write: a plain store
        // of zero into memory known to be zeroed would be dropped.
        unsafe { std::ptr::write_volatile(v.as_mut_ptr().add(i), T::default()) };
    }
    v
}

/// Asks the kernel to provide every page of `buf` now, in one call, rather
/// than one fault at a time as the pages are first written (a table about to
/// be filled all over: the flow table while it doubles). Only speed depends on
/// it; on kernels before 5.14 the call fails and the pages fault in as before.
pub fn populate_for_write<T>(buf: &mut [T]) {
    let start = buf.as_mut_ptr() as usize;
    let from = start.next_multiple_of(PAGE);
    let to = (start + std::mem::size_of_val(buf)) & !(PAGE - 1);
    if to > from {
        // SAFETY: the page-aligned range lies inside `buf`, memory this process
        // owns and may write; MADV_POPULATE_WRITE only maps its pages.
        unsafe {
            libc::madvise(
                from as *mut libc::c_void,
                to - from,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_written_is_all_zeroes() {
        for n in [0, 1, 511, 512, 513, 100_000] {
            let v = super::zeroed_written::<u64>(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0));
        }
    }
}
