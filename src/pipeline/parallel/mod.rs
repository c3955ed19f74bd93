//! Reading on every thread: uncompressed pcap and pcapng files are cut into
//! chunks of [`CHUNK_BYTES`] that any thread reads and decodes, while each
//! thread accounts the flows of its own shard, chunk after chunk in file
//! order.
//!
//! ```text
//!  file ─┬ chunk 0 ─ read+decode (any thread) ─▶ one part per shard ─┐
//!        ├ chunk 1 ─ read+decode (any thread) ─▶ one part per shard ─┼─ commit, in order
//!        └ ...                                                        ┘
//!  thread t accounts part t of chunk 0, 1, 2 ... into its own flow table
//! ```
//!
//! A chunk begins at a guessed record or block boundary
//! ([`crate::source::ranges`]); it is *committed*
//! in file order, once the chunk before it has landed exactly there (else it
//! is read again from where that one landed, and counted). Committing also
//! does, in packet order, what depends on every packet before: later IP
//! fragments get the ports their datagram's first fragment had, and idle
//! flows are swept (at the first chunk boundary past each 10 s of packet
//! time). Everything else a packet decides is
//! decided by the thread that owns its flow, which sees the flow's packets
//! in file order: which packets are inspected (the payload stays in the
//! mapped file until then), and which side serves (servers learned from
//! handshakes reach every shard at their place in the sequence). So the
//! report is the same for any number of threads, and chunk sizes do not
//! depend on it.
//!
//! Each thread accounts what is committed for it first, then reads the
//! next chunk, at most [`WINDOW`] chunks past the slowest thread's
//! accounting; the mapped pages of chunks every thread has passed are
//! released, [`RELEASE_EVERY`] bytes at a time.
mod chunk;
mod commit;

use super::timings::{thread_cpu, Cpu};
use super::{Analysis, Options, RunError};
use crate::source::bpf::Filter;
use crate::source::prefault;
use crate::source::ranges::MappedPcap;
use crate::stats::flow::{FlowTable, LATER_FRAGMENT};
use chunk::{chunk_bytes, chunks, Chunk, ChunkReader, Span};
use commit::{commit_ready, failed_inputs, read_span, Order};
use rustc_hash::FxHashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(super) use chunk::Entry;

/// Bytes of a file per chunk: what one thread reads and decodes at a time.
/// Fixed, so that where chunks begin (and the sweeps at their boundaries)
/// does not depend on the number of threads.
pub const CHUNK_BYTES: usize = 2 << 20;

/// Chunks in flight (read and not yet accounted by every thread) at most,
/// or 2 per thread when there are more than 4 threads: what the mapped pages
/// and the records held in memory grow with (a 10 M-flow flood on 2 threads
/// stays under 256 MiB).
pub const WINDOW: usize = 8;

/// Accounted bytes of a file whose pages are dropped at once.
const RELEASE_EVERY: usize = 8 << 20;

/// What the threads share, behind one lock taken a few times per chunk.
struct State {
    /// The next chunk to read.
    next: usize,
    /// Chunks to account: all of them, or up to the chunk where the run stopped.
    end: usize,
    /// Read and committed chunks, by index modulo their number.
    slots: Vec<Option<Arc<Chunk>>>,
    /// Chunks no thread holds, to read into again.
    spare: Vec<Arc<Chunk>>,
    /// The next chunk each thread accounts.
    accounted: Vec<usize>,
    /// Chunks every thread has accounted (their pages were released).
    released: usize,
    /// The file and offset from which accounted pages are still mapped.
    unreleased: Option<(usize, usize)>,
    order: Order,
    /// Threads working (not waiting), and the wall time during which at
    /// most one was.
    busy: usize,
    since: Instant,
    serial: Duration,
}

struct Shared<'a> {
    files: &'a [Entry],
    spans: Vec<Span>,
    threads: usize,
    keep_going: bool,
    progress: &'a AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

/// What a thread hands back.
struct Done {
    table: FlowTable,
    cpu: Cpu,
    warnings: Vec<String>,
}

/// `inputs` ready to be read in chunks, when every one is an uncompressed
/// pcap or pcapng file that can be mapped, or fails before its first packet
/// (a missing file, an unknown magic number); `None` sends the run to the
/// sequential reader.
pub(super) fn open_all(inputs: &[crate::source::Input]) -> Option<Vec<Entry>> {
    inputs
        .iter()
        .map(|input| {
            if let Some(m) = MappedPcap::open(input) {
                return Some(Entry::Mapped(m));
            }
            let crate::source::Input::Path(p) = input else {
                return None;
            };
            // gzip is read sequentially; anything else that cannot be
            // mapped fails at its header.
            let mut head = [0u8; 2];
            if let Ok(mut f) = std::fs::File::open(p) {
                use std::io::Read;
                let _ = f.read(&mut head);
            }
            if head == [0x1f, 0x8b] {
                return None;
            }
            let mut packets = 0u64;
            match crate::source::read_capture(input, Arc::default(), &mut |_| packets += 1) {
                Err(e) if packets == 0 && e.packets_before == 0 => Some(Entry::Failed(e)),
                _ => None,
            }
        })
        .collect()
}

/// Reads `files` on `opts.workers` threads that each read chunks and
/// account their own shard of the flows.
pub(super) fn analyze_parallel(
    files: Vec<Entry>,
    opts: &Options,
    progress: Arc<AtomicU64>,
) -> Result<Analysis, RunError> {
    let started = Instant::now();
    let chunk = chunk_bytes();
    let spans = chunks(&files, chunk);
    // No more threads than chunks: a run never starts a thread it gives
    // nothing to (the report does not depend on the count).
    let threads = opts.workers.clamp(1, spans.len().max(1));
    let window = WINDOW.max(2 * threads);
    let order = Order::new(&files);
    let shared = Shared {
        files: &files,
        threads,
        keep_going: opts.keep_going,
        progress: &progress,
        state: Mutex::new(State {
            next: 0,
            end: spans.len(),
            slots: (0..window).map(|_| None).collect(),
            spare: (0..window)
                .map(|_| Arc::new(Chunk::with_room(threads, chunk)))
                .collect(),
            accounted: vec![0; threads],
            released: 0,
            unreleased: None,
            order,
            busy: threads,
            since: Instant::now(),
            serial: Duration::ZERO,
        }),
        spans,
        changed: Condvar::new(),
    };
    let done = run_threads(&shared, opts);
    let read = Instant::now();
    let mut done: Vec<Done> = done
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|_| RunError::Worker("reading thread panicked".into()))?;
    let state = shared
        .state
        .into_inner()
        .map_err(|_| RunError::Worker("reading thread panicked".into()))?;
    let mut order = state.order;
    if order.failed.is_none() {
        // The inputs after the last one read that failed.
        failed_inputs(&files, opts.keep_going, &mut order, files.len());
    }
    if let Some((error, unread)) = order.failed.take() {
        return Err(RunError::File { error, unread });
    }
    let mut warnings: Vec<String> = done.iter_mut().flat_map(|d| d.warnings.drain(..)).collect();
    warnings.sort();
    warnings.dedup();
    let cpu: Vec<Cpu> = done.iter().map(|d| d.cpu).collect();
    let tables: Vec<FlowTable> = done.into_iter().map(|d| d.table).collect();
    let timings = super::timings::Timings {
        reading: read - started,
        worker_cpu: cpu,
        parallel: Some(super::timings::Parallel {
            serial: state.serial,
            chunks: order.committed,
            redone: order.redone,
        }),
        ..Default::default()
    };
    let ran = super::Ran {
        fed: (),
        tables,
        totals: order.totals,
        warnings,
        timings,
    };
    let (a, ()) = super::merge(ran, opts.workers.max(1), started);
    Ok(Analysis {
        files: order.files,
        ..a
    })
}

/// Runs the threads to the end; what each handed back.
fn run_threads(shared: &Shared, opts: &Options) -> Vec<std::thread::Result<Done>> {
    let threads = shared.threads;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let mut table = opts.flow_table(threads);
                let filter = opts.filter.as_deref().and_then(|e| Filter::new(e).ok());
                std::thread::Builder::new()
                    .name(format!("portflow-read-{t}"))
                    .spawn_scoped(s, move || {
                        let mut reader = ChunkReader {
                            filter,
                            shards: threads,
                            told: FxHashSet::default(),
                        };
                        let guard = StopOthersOnPanic(shared);
                        run_thread(shared, t, &mut reader, &mut table);
                        drop(guard);
                        let warnings = reader
                            .filter
                            .as_ref()
                            .map(Filter::warnings)
                            .unwrap_or_default();
                        // Every thread ends its own open flows.
                        table.finish_all();
                        shared.lock().set_busy(-1);
                        Done {
                            table,
                            cpu: thread_cpu(),
                            warnings,
                        }
                    })
                    .expect("spawn reading thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    })
}

/// Ends the run for every thread when the thread holding it panics: the
/// chunk it was reading would never be committed, and the others would
/// wait for it forever; the join then reports the panic.
struct StopOthersOnPanic<'a, 'b>(&'a Shared<'b>);

impl Drop for StopOthersOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().end = 0;
            self.0.changed.notify_all();
        }
    }
}

/// What a thread does next.
enum Work {
    Account(usize, Arc<Chunk>),
    Read(usize),
    Finished,
}

impl<'a> Shared<'a> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked holding the lock ends the run anyway (the
        // join reports it); the others go on to the end.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// One thread more (`+1`) or less (`-1`) is working: the time since the
    /// last change counts as serial when at most one was.
    fn set_busy(&mut self, delta: isize) {
        let now = Instant::now();
        if self.busy <= 1 {
            self.serial += now - self.since;
        }
        self.since = now;
        self.busy = self.busy.saturating_add_signed(delta);
    }
}

/// Thread `me`'s loop: account what is committed for it, else read the
/// next chunk, else wait.
fn run_thread(sh: &Shared, me: usize, reader: &mut ChunkReader, table: &mut FlowTable) {
    let mut g = sh.lock();
    loop {
        let work;
        (g, work) = next_work(sh, g, me);
        match work {
            Work::Account(k, c) => {
                drop(g);
                account(sh, &c, me, table);
                drop(c);
                g = sh.lock();
                g.accounted[me] = k + 1;
                release_passed(sh, &mut g);
                if g.busy < sh.threads {
                    sh.changed.notify_all();
                }
            }
            Work::Read(k) => {
                let mut c = g.spare.pop().unwrap_or_else(|| Arc::new(Chunk::default()));
                drop(g);
                let chunk = Arc::get_mut(&mut c).expect("a spare chunk is held by nobody");
                read_span(sh, k, None, reader, chunk);
                chunk.index = k;
                g = sh.lock();
                let w = g.slots.len();
                g.slots[k % w] = Some(c);
                commit_ready(sh, &mut g, reader);
                if g.busy < sh.threads {
                    sh.changed.notify_all();
                }
            }
            Work::Finished => return,
        }
    }
}

fn next_work<'a>(
    sh: &'a Shared,
    mut g: MutexGuard<'a, State>,
    me: usize,
) -> (MutexGuard<'a, State>, Work) {
    loop {
        let k = g.accounted[me];
        if k < g.order.committed.min(g.end) {
            let w = g.slots.len();
            let c = g.slots[k % w]
                .clone()
                .expect("a committed chunk is in its slot");
            return (g, Work::Account(k, c));
        }
        if k >= g.end {
            return (g, Work::Finished);
        }
        let slowest = g.accounted.iter().copied().min().unwrap_or(0);
        if g.next < g.end && g.next < slowest + g.slots.len() {
            g.next += 1;
            let k = g.next - 1;
            return (g, Work::Read(k));
        }
        // Nothing to do until another thread commits or accounts.
        g.set_busy(-1);
        g = sh.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        g.set_busy(1);
    }
}

/// Accounts thread `me`'s part of committed chunk `c`.
fn account(sh: &Shared, c: &Chunk, me: usize, table: &mut FlowTable) {
    if c.skip {
        return;
    }
    if let Some(ts) = c.sweep {
        table.sweep(ts);
    }
    let Some(part) = c.parts.get(me) else {
        return;
    };
    let bytes = match c.start {
        Some(at) => &sh.files[c.file].mapped().data()[at..],
        None => &[][..],
    };
    if c.later.is_empty() {
        table.account_batch(part, bytes);
        return;
    }
    let mut rest = &part[..];
    while let Some(i) = rest.iter().position(|p| p.hints == LATER_FRAGMENT) {
        table.account_batch(&rest[..i], bytes);
        if let Some((shard, p)) = c
            .resolved
            .get(rest[i].payload_at as usize)
            .copied()
            .flatten()
        {
            if shard == me {
                table.account(&p, &[]);
            }
        }
        rest = &rest[i + 1..];
    }
    table.account_batch(rest, bytes);
}

/// Releases what every thread has accounted: the chunks go back to be read
/// into, and their mapped pages are dropped.
fn release_passed(sh: &Shared, g: &mut MutexGuard<State>) {
    let slowest = g.accounted.iter().copied().min().unwrap_or(0);
    while g.released < slowest {
        let k = g.released;
        let w = g.slots.len();
        if let Some(c) = g.slots[k % w].take() {
            g.spare.push(c);
        }
        // Pages go back RELEASE_EVERY bytes at a time: dropping a mapping's
        // pages interrupts every core running one of the threads.
        let span = sh.spans[k];
        let pending = match g.unreleased {
            Some((file, from)) if file == span.file => (file, from),
            Some((file, from)) => {
                let data = sh.files[file].mapped().data();
                prefault::release(data, from..data.len());
                (span.file, span.from)
            }
            None => (span.file, span.from),
        };
        if span.to - pending.1 >= RELEASE_EVERY {
            prefault::release(sh.files[span.file].mapped().data(), pending.1..span.to);
            g.unreleased = Some((span.file, span.to));
        } else {
            g.unreleased = Some(pending);
        }
        g.released += 1;
    }
}
