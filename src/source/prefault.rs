//! Mapping a file's pages ahead of the reader, on a core that would idle.
//!
//! Reading a mapped capture, the reader thread spends about a third of its time
//! in the kernel mapping page-cache pages into the process, one fault-around
//! window at a time (docs/BENCHMARKS.md). While it parses, a worker core often
//! waits for the next batch. A helper thread at `SCHED_IDLE` priority (it runs
//! only when a core has nothing else to do) maps the next pages with
//! `MADV_POPULATE_READ`, staying at most [`WINDOW`] bytes ahead of what the
//! reader has consumed, so resident memory stays bounded. If it falls behind, or
//! the kernel lacks the call (Linux < 5.14), the reader maps pages itself, as
//! without it; the bytes read are the same either way.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Bytes mapped per call.
const CHUNK: usize = 1 << 20;
/// Furthest the helper runs ahead of the reader.
pub const WINDOW: usize = 32 << 20;
/// Files smaller than this are not worth a thread.
const MIN_LEN: usize = 64 << 20;

/// Runs `read` with a prefault helper over `data` (when it is large enough);
/// `read` publishes how far it has consumed `data` through the counter it is
/// given.
pub fn with_prefault<R>(data: &[u8], read: impl FnOnce(&AtomicUsize) -> R) -> R {
    let reader_at = AtomicUsize::new(0);
    if data.len() < MIN_LEN {
        return read(&reader_at);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // A helper that cannot start changes nothing but speed.
        let _ = std::thread::Builder::new()
            .name("portflow-prefault".into())
            .spawn_scoped(s, || populate_ahead(data, &reader_at, &stop));
        let r = read(&reader_at);
        stop.store(true, Ordering::Relaxed);
        r
    })
}

fn populate_ahead(data: &[u8], reader_at: &AtomicUsize, stop: &AtomicBool) {
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid
    // parameter block; SCHED_IDLE needs no privilege.
    unsafe {
        let p = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
    }
    let mut done = 0;
    while done < data.len() && !stop.load(Ordering::Relaxed) {
        // Pages the reader has passed (and released) are not mapped again.
        let at = reader_at.load(Ordering::Relaxed);
        done = done.max(at & !(CHUNK - 1));
        if done >= at + WINDOW {
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
        if r != 0 {
            return; // unsupported, or the file changed: the reader faults pages itself
        }
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_sees_its_data_with_or_without_the_helper() {
        let data: Vec<u8> = (0..MIN_LEN + 3 * CHUNK).map(|i| i as u8).collect();
        let sum = with_prefault(&data, |at| {
            let mut s = 0u64;
            for (i, chunk) in data.chunks(CHUNK).enumerate() {
                s += chunk.iter().map(|&b| b as u64).sum::<u64>();
                at.store((i + 1) * CHUNK, Ordering::Relaxed);
            }
            s
        });
        assert_eq!(sum, data.iter().map(|&b| b as u64).sum::<u64>());
        assert_eq!(with_prefault(&data[..10], |_| 7), 7);
    }
}
