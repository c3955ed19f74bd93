//! Mapping a file's pages ahead of the reader, and releasing the pages behind
//! it, on a core that would idle.
//!
//! Reading a mapped capture costs the reader time in the kernel: mapping
//! page-cache pages into the process, one fault-around window at a time (a
//! file cached in 4 KiB pages, as one just written is, maps page by page), and
//! unmapping the pages it has parsed so that resident memory does not grow
//! with the file. While it parses, a worker core often waits for the next
//! batch. A helper thread at `SCHED_IDLE`
//! priority (it runs only when a core has nothing else to do) maps the next
//! pages with `MADV_POPULATE_READ`, staying at most [`WINDOW`] bytes ahead of
//! what the reader has consumed, and drops the pages the reader has passed with
//! `MADV_DONTNEED`. If it falls behind, the reader does either itself: pages
//! fault in as without the helper, and the reader releases what lies more than
//! [`RELEASE_LAG`] behind it, so resident memory stays bounded whether or not
//! the helper runs. The bytes read are the same either way.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Bytes mapped per call.
const CHUNK: usize = 1 << 20;
/// Furthest the helper runs ahead of the reader.
pub const WINDOW: usize = 32 << 20;
/// Parsed bytes the reader leaves to the helper before releasing them itself.
pub const RELEASE_LAG: usize = 32 << 20;
/// Files smaller than this are not worth a thread.
const MIN_LEN: usize = 64 << 20;

/// How far the reader of a mapping has got, and up to where the pages behind
/// it were released.
#[derive(Debug, Default)]
pub struct MapCursor {
    at: AtomicUsize,
    released: AtomicUsize,
}

impl MapCursor {
    /// The reader has parsed `data` up to `at` and never reads before it
    /// again; releases what lies more than [`RELEASE_LAG`] behind if the
    /// helper has not.
    pub fn reached(&self, data: &[u8], at: usize) {
        let end = at & !0xfff;
        self.at.store(end, Ordering::Relaxed);
        if end.saturating_sub(self.released.load(Ordering::Relaxed)) > RELEASE_LAG {
            self.release_to(data, end);
        }
    }

    /// Releases the pages of `data` before `end` (page-aligned, at most where
    /// the reader is) that nobody released yet.
    fn release_to(&self, data: &[u8], end: usize) {
        // Each byte range is claimed once, by whichever thread gets to it.
        let from = self.released.fetch_max(end, Ordering::Relaxed);
        if from >= end {
            return;
        }
        // SAFETY: the range lies inside `data`, a live read-only file-backed
        // mapping (scoped: it outlives the helper). MADV_DONTNEED only drops
        // this process's view of pages the reader has parsed and never touches
        // again (a later access would read the file again, not fault).
        unsafe {
            libc::madvise(
                data.as_ptr().add(from) as *mut libc::c_void,
                end - from,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Runs `read` with a prefault helper over `data` (when it is large enough);
/// `read` publishes how far it has consumed `data` through
/// [`MapCursor::reached`].
pub fn with_prefault<R>(data: &[u8], read: impl FnOnce(&MapCursor) -> R) -> R {
    let cursor = MapCursor::default();
    if data.len() < MIN_LEN {
        return read(&cursor);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A helper that cannot start changes nothing but speed.
        let _ = std::thread::Builder::new()
            .name("portflow-prefault".into())
            .spawn_scoped(s, || help(data, &cursor, &stop));
        // Stopped however `read` ends: the scope waits for the helper, even
        // to pass on a panic.
        let _stop = StopOnDrop(&stop);
        read(&cursor)
    })
}

/// Maps the pages of `range` of `data` (a read-only file mapping) into the
/// process in one call, where the kernel can (Linux 5.14): cheaper than a
/// fault per few pages. A failure changes nothing but speed.
pub fn populate(data: &[u8], range: std::ops::Range<usize>) {
    advise(data, range, libc::MADV_POPULATE_READ);
}

/// Drops this process's view of the whole pages inside `range` of `data` (a
/// read-only file mapping): resident memory does not grow with the file. A
/// later access reads the file again; nothing is lost.
pub fn release(data: &[u8], range: std::ops::Range<usize>) {
    const PAGE: usize = 4096;
    let from = range.start.next_multiple_of(PAGE);
    let to = range.end.min(data.len()) & !(PAGE - 1);
    if from < to {
        advise(data, from..to, libc::MADV_DONTNEED);
    }
}

fn advise(data: &[u8], range: std::ops::Range<usize>, advice: libc::c_int) {
    let to = range.end.min(data.len());
    if range.start >= to {
        return;
    }
    // SAFETY: the range lies inside `data`, a live read-only file mapping
    // (the caller's); both advices only map or unmap this process's view of
    // the file's pages, and fail rather than signal where the file shrank.
    unsafe {
        libc::madvise(
            data.as_ptr().add(range.start) as *mut libc::c_void,
            to - range.start,
            advice,
        );
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn help(data: &[u8], cursor: &MapCursor, stop: &AtomicBool) {
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid
    // parameter block; SCHED_IDLE needs no privilege.
    unsafe {
        let p = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
    }
    let mut done = 0;
    let mut populate = true;
    while !stop.load(Ordering::Relaxed) {
        let at = cursor.at.load(Ordering::Relaxed);
        cursor.release_to(data, at);
        // Pages the reader has passed (and released) are not mapped again.
        done = done.max(at & !(CHUNK - 1));
        if !populate || done >= data.len() || done >= at + WINDOW {
            std::thread::sleep(Duration::from_micros(300));
            continue;
        }
        let n = CHUNK.min(data.len() - done);
        // SAFETY: the range lies inside `data`, a live read-only mapping that
        // outlives this thread (scoped); MADV_POPULATE_READ only maps pages
        // and fails (it does not signal) where the file has shrunk.
        let r = unsafe {
            libc::madvise(
                data.as_ptr().add(done) as *mut libc::c_void,
                n,
                libc::MADV_POPULATE_READ,
            )
        };
        // Unsupported (Linux < 5.14), or the file changed: the reader faults
        // pages in itself; the helper still releases.
        populate = r == 0;
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_sees_its_data_with_or_without_the_helper() {
        let data: Vec<u8> = (0..MIN_LEN + 3 * CHUNK).map(|i| i as u8).collect();
        let sum = with_prefault(&data, |p| {
            let mut s = 0u64;
            for (i, chunk) in data.chunks(CHUNK).enumerate() {
                s += chunk.iter().map(|&b| b as u64).sum::<u64>();
                p.reached(&data, (i + 1) * CHUNK);
            }
            s
        });
        assert_eq!(sum, data.iter().map(|&b| b as u64).sum::<u64>());
        assert_eq!(with_prefault(&data[..10], |_| 7), 7);
    }

    #[test]
    fn a_reader_panic_stops_the_helper_and_reaches_the_caller() {
        let data = vec![0u8; MIN_LEN + CHUNK];
        let r = std::panic::catch_unwind(|| with_prefault(&data, |_| -> u8 { panic!("reader") }));
        assert!(r.is_err());
    }

    #[test]
    fn the_reader_releases_what_the_helper_left_more_than_the_lag_behind() {
        // An anonymous mapping: MADV_DONTNEED zero-fills it, which shows what
        // was released.
        let len = RELEASE_LAG + (4 << 20);
        let mut m = memmap2::MmapMut::map_anon(len).expect("anonymous map");
        m.fill(1);
        let p = MapCursor::default();
        p.reached(&m, RELEASE_LAG);
        assert_eq!(p.released.load(Ordering::Relaxed), 0, "within the lag");
        assert_eq!(m[0], 1);
        let at = RELEASE_LAG + 3 * 4096 + 5;
        p.reached(&m, at);
        let end = RELEASE_LAG + 3 * 4096;
        assert_eq!(p.released.load(Ordering::Relaxed), end);
        assert!(m[..end].iter().all(|&b| b == 0), "released pages");
        assert!(
            m[end..].iter().all(|&b| b == 1),
            "the reader's page and later are kept"
        );
        // A range is released once; an older position releases nothing.
        m[..4096].fill(1);
        p.release_to(&m, 4096);
        assert_eq!(m[0], 1);
        assert_eq!(p.released.load(Ordering::Relaxed), end);
    }
}
