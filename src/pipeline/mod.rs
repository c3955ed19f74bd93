//! The worker pipeline.
//!
//! ```text
//!  reader thread ──batches──▶ worker 0 (FlowTable + PortTable) ──┐
//!  (read, decode,  ──batches──▶ worker 1                         ├─▶ merge ─▶ Analysis
//!   shard by flow) ──batches──▶ worker N-2                       ─┘
//! ```
//! `--workers N` is the number of threads that analyse packets: the reader and
//! N-1 flow workers. With N = 1 a file is read in one thread, which keeps the
//! flow table itself (no channel); a live capture always keeps its capture
//! thread apart and has at least one worker.
//! The reader hands batches of [`FlowPacket`](crate::stats::flow::FlowPacket)s over bounded channels, sharded by
//! a symmetric flow hash so a flow's two directions meet in one worker. Workers
//! own their tables (no lock per packet) and return them when the channels
//! close; the merge is exact, so the report is the same for any worker count
//! (unless the flow cap forces evictions, which are counted and reported).

mod batch;
mod dispatch;
pub mod live;
pub mod timings;

pub use batch::{Batch, BATCH};

use crate::services::Services;
use crate::source::bpf::{Filter, FilterError};
use crate::source::{read_capture, FileError, Input};
use crate::stats::flow::{FlowRecord, FlowTable, Timeouts};
use crate::stats::inventory::Inventory;
use crate::stats::{PortTable, Totals};
use crossbeam_channel::{bounded, Receiver, Sender};
use dispatch::Dispatcher;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timings::{thread_cpu, Timings};

/// Batches queued per worker before the reader waits (files) or drops (live).
const QUEUE_DEPTH: usize = 8;
/// Live capture queues more: a worker descheduled for a few milliseconds on a
/// busy machine must not cost packets (64 batches are 64 Ki packets, 3.5 MiB).
const LIVE_QUEUE_DEPTH: usize = 64;

/// How a thread waits for a batch (a worker for the next one, the reader of a
/// file for one to come back): it looks every [`POLL_SLEEP`] for up to
/// [`POLLS`] times before it blocks on the channel, when the reader and the
/// workers have a core each ([`polls_for`]).
///
/// A thread blocked on a channel is woken by the sender: a futex call and an
/// interrupt to the other core (on a VM, an exit on both sides), paid by the
/// thread that is sending, which is the busy one. The worker keeps ahead of
/// the reader over most captures, so it would empty its queue and block after
/// nearly every batch, and the reader would pay a wake-up per batch. A thread
/// that sleeps and looks again is woken by its own timer, on its own core.
/// Blocking after a while keeps a slow source (a pipe, a gzip stream) from
/// costing an idle thread thousands of wake-ups a second. With more threads
/// than cores the looks would take the CPU from a busy thread, so then a
/// thread blocks at once.
const POLL_SLEEP: Duration = Duration::from_micros(50);
const POLLS: u32 = 20;

/// How many times a thread looks before it blocks, when `threads` threads
/// (the reader and the flow workers) share the machine's cores.
fn polls_for(threads: usize) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= cores {
        POLLS
    } else {
        0
    }
}

/// Receives from `rx` as [`POLL_SLEEP`] describes, looking `polls` times.
pub(crate) fn recv_polling<T>(
    rx: &Receiver<T>,
    polls: u32,
) -> Result<T, crossbeam_channel::RecvError> {
    for _ in 0..polls {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Err(crossbeam_channel::RecvError)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => std::thread::sleep(POLL_SLEEP),
        }
    }
    rx.recv()
}

/// Flows held at once by default, over all workers. A flow costs about 97
/// bytes in its worker's table (a 96-byte slot and a control byte); tables
/// grow with their flows up to about 85 MiB in all.
pub const DEFAULT_FLOW_CAP: usize = 900_000;

/// How an analysis runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub workers: usize,
    /// Most flows held at once, over all workers.
    pub flow_cap: usize,
    pub timeouts: Timeouts,
    /// Keep every finished flow (for `--flows`).
    pub keep_flows: bool,
    /// BPF expression.
    pub filter: Option<String>,
    /// Go on with the next file after a file error.
    pub keep_going: bool,
    pub services: Arc<Services>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            flow_cap: DEFAULT_FLOW_CAP,
            timeouts: Timeouts::default(),
            keep_flows: false,
            filter: None,
            keep_going: false,
            services: Arc::new(Services::iana()),
        }
    }
}

impl Options {
    /// A flow table holding its share of `flow_cap` among `tables` tables.
    fn flow_table(&self, tables: usize) -> FlowTable {
        FlowTable::new(
            self.services.clone(),
            self.timeouts,
            self.flow_cap / tables.max(1),
            self.keep_flows,
        )
    }
}

/// One input file as read.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: String,
    pub format: &'static str,
    pub compressed: bool,
    pub packets: u64,
    pub error: Option<FileError>,
}

/// Everything an analysis produced, merged over workers.
pub struct Analysis {
    pub totals: Totals,
    pub ports: PortTable,
    /// Open ports seen serving, and refused attempts per host.
    pub inventory: Inventory,
    /// Failed or unanswered attempts and odd-flag probes, for scan findings.
    pub attempts: crate::stats::attempts::Attempts,
    /// Finished flows sorted by first packet (only with `keep_flows`).
    pub flows: Vec<FlowRecord>,
    pub files: Vec<FileReport>,
    pub flows_evicted: u64,
    pub peak_flows: usize,
    pub workers: usize,
    pub elapsed: Duration,
    /// Wall time per phase and CPU time per thread (`read --timings`).
    pub timings: Timings,
    /// Link types the filter could not be compiled for.
    pub filter_warnings: Vec<String>,
}

impl Analysis {
    /// The first file error, if any.
    pub fn first_error(&self) -> Option<&FileError> {
        self.files.iter().find_map(|f| f.error.as_ref())
    }
}

/// Why an analysis could not run at all.
#[derive(Debug)]
pub enum RunError {
    /// The BPF expression does not compile.
    Filter(FilterError),
    /// A file error, when not going on after one.
    File(FileError),
    /// A worker thread panicked (a bug).
    Worker(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Filter(e) => write!(f, "{e}"),
            RunError::File(e) => write!(f, "{e}"),
            RunError::Worker(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The reader's ends of the worker channels, the batch return channel, and the
/// workers (each returns its table and the CPU time it used).
type Workers = (
    Vec<Sender<Batch>>,
    Receiver<Batch>,
    Vec<std::thread::JoinHandle<(FlowTable, timings::Cpu)>>,
);

/// Where live workers publish their per-port counters, and how often.
#[derive(Clone)]
pub(crate) struct Publish {
    pub to: Sender<live::Snapshot>,
    pub every: Duration,
}

/// Flow worker threads besides the reader for `--workers n`: none when one
/// thread reads a file alone (it keeps the flow table itself).
fn flow_workers(n: usize, lossy: bool) -> usize {
    if lossy {
        n.saturating_sub(1).max(1)
    } else {
        n.saturating_sub(1)
    }
}

/// `polls`: how many times a worker looks for a batch before it blocks
/// ([`recv_polling`]).
fn spawn_workers(opts: &Options, lossy: bool, publish: Option<Publish>, polls: u32) -> Workers {
    let n = flow_workers(opts.workers, lossy);
    let depth = if lossy { LIVE_QUEUE_DEPTH } else { QUEUE_DEPTH };
    // Every batch a worker's queue and hands can hold is made here, before the
    // first packet: reading allocates none, whatever the timing (a batch's
    // payload buffer is reserved at its largest and only touched as used).
    let pool = n * (depth + 2);
    let (recycle_tx, recycle_rx) = bounded::<Batch>(pool);
    for _ in 0..pool {
        let _ = recycle_tx.try_send(Batch::with_capacity(BATCH));
    }
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = bounded::<Batch>(depth);
        senders.push(tx);
        let recycle = recycle_tx.clone();
        let mut table = opts.flow_table(n);
        let publish = publish.clone();
        let h = std::thread::Builder::new()
            .name(format!("portflow-worker-{i}"))
            .spawn(move || {
                match publish {
                    None => {
                        while let Ok(mut batch) = recv_polling(&rx, polls) {
                            table.account_batch(&batch.pkts, &batch.bytes);
                            batch.clear();
                            let _ = recycle.try_send(batch);
                        }
                    }
                    Some(p) => live::worker_loop(i, &rx, &recycle, &mut table, &p),
                }
                // The reader's core is free by now; with one worker, ending
                // the flows still open can use it.
                table.finish_all_on(if n == 1 { 2 } else { 1 });
                (table, thread_cpu())
            })
            .expect("spawn worker thread");
        handles.push(h);
    }
    (senders, recycle_rx, handles)
}

/// What the pipeline hands back when its threads are done.
pub(crate) struct Ran<R> {
    /// What `feed` returned.
    pub fed: R,
    pub tables: Vec<FlowTable>,
    pub totals: Totals,
    pub warnings: Vec<String>,
    /// The reading and ending phases and the threads' CPU time (merge: 0).
    pub timings: Timings,
}

/// Runs `feed` on a reader thread that owns the dispatcher, with `opts.workers`
/// workers behind it; joins them and merges their tables.
fn run_pipeline<R: Send + 'static>(
    opts: &Options,
    filter: Option<Filter>,
    lossy: bool,
    publish: Option<Publish>,
    feed: impl FnOnce(&mut Dispatcher) -> R + Send + 'static,
) -> Result<Ran<R>, RunError> {
    let started = Instant::now();
    // The reader and the flow workers: one wait policy for all of them.
    let polls = polls_for(flow_workers(opts.workers, lossy) + 1);
    let (senders, recycle, handles) = spawn_workers(opts, lossy, publish, polls);
    let inline = handles.is_empty().then(|| opts.flow_table(1));
    let timeouts = opts.timeouts;
    let reader = std::thread::Builder::new()
        .name("portflow-reader".into())
        .spawn(move || {
            let mut d = Dispatcher::new(senders, recycle, filter, inline, timeouts);
            d.set_lossy(lossy);
            d.set_polls(polls);
            let r = feed(&mut d);
            let warnings = d.filter_warnings();
            let (totals, table) = d.finish();
            (r, totals, table, warnings, thread_cpu())
        })
        .expect("spawn reader thread");
    let (fed, totals, inline, warnings, reader_cpu) = reader
        .join()
        .map_err(|_| RunError::Worker("reader thread panicked".into()))?;
    let read = Instant::now();
    let mut tables: Vec<FlowTable> = inline.into_iter().collect();
    let mut worker_cpu = Vec::with_capacity(handles.len());
    for h in handles {
        let (table, cpu) = h
            .join()
            .map_err(|_| RunError::Worker("worker thread panicked".into()))?;
        tables.push(table);
        worker_cpu.push(cpu);
    }
    let timings = Timings {
        reading: read - started,
        ending: read.elapsed(),
        merge: Duration::ZERO,
        reader_cpu,
        worker_cpu,
    };
    Ok(Ran {
        fed,
        tables,
        totals,
        warnings,
        timings,
    })
}

/// Merges what the pipeline's threads handed back into one analysis (with no
/// files listed yet); returns it with what `feed` returned.
fn merge<R>(ran: Ran<R>, workers: usize, started: Instant) -> (Analysis, R) {
    let Ran {
        fed,
        tables,
        totals,
        warnings,
        mut timings,
    } = ran;
    let merging = Instant::now();
    // The first worker's tables are the base the others are merged into, so
    // what only one worker saw is moved, not copied.
    let mut ports: Option<PortTable> = None;
    let mut inventory = Inventory::default();
    let mut attempts = crate::stats::attempts::Attempts::default();
    let mut flows = Vec::new();
    let (mut evicted, mut peak) = (0, 0);
    for mut t in tables {
        let theirs = t.ports.take();
        match ports.as_mut() {
            Some(p) => p.merge(theirs),
            None => ports = Some(theirs),
        }
        inventory.merge(std::mem::take(&mut t.inventory));
        attempts.merge(&mut t.attempts);
        flows.append(&mut t.records);
        evicted += t.evicted;
        peak += t.peak_flows;
    }
    // A total order, so the output does not depend on which worker ended a flow.
    let order = |f: &FlowRecord| {
        (
            f.first_ns,
            f.key,
            f.last_ns,
            f.to_server.packets,
            f.to_server.bytes,
            f.to_client.packets,
            f.to_client.bytes,
            f.state,
        )
    };
    flows.sort_unstable_by_key(order);
    timings.merge = merging.elapsed();
    let a = Analysis {
        totals,
        ports: ports.unwrap_or_default(),
        inventory,
        attempts,
        flows,
        files: Vec::new(),
        flows_evicted: evicted,
        peak_flows: peak,
        workers,
        elapsed: started.elapsed(),
        timings,
        filter_warnings: warnings,
    };
    (a, fed)
}

/// Feeds every input to the dispatcher in order; returns what each file
/// held, and the error that stopped the run (without `keep_going`).
fn read_inputs(
    d: &mut Dispatcher,
    inputs: &[Input],
    progress: &Arc<AtomicU64>,
    keep_going: bool,
) -> (Vec<FileReport>, Option<FileError>) {
    let mut files = Vec::new();
    for input in inputs {
        let r = read_capture(input, progress.clone(), &mut |p| d.packet(p));
        let path = input.display();
        match r {
            Ok(s) => files.push(FileReport {
                path,
                format: s.format,
                compressed: s.compressed,
                packets: s.packets,
                error: None,
            }),
            Err(e) => {
                files.push(FileReport {
                    path,
                    format: "",
                    compressed: false,
                    packets: e.packets_before,
                    error: Some(e.clone()),
                });
                if !keep_going {
                    return (files, Some(e));
                }
            }
        }
    }
    (files, None)
}

/// Reads `inputs` in order as one capture and analyses it.
///
/// `progress` is advanced by bytes read, for a progress display.
pub fn analyze_files(
    inputs: &[Input],
    opts: &Options,
    progress: Arc<AtomicU64>,
) -> Result<Analysis, RunError> {
    let started = Instant::now();
    let filter = opts
        .filter
        .as_deref()
        .map(Filter::new)
        .transpose()
        .map_err(RunError::Filter)?;
    let inputs = inputs.to_vec();
    let keep_going = opts.keep_going;
    let ran = run_pipeline(opts, filter, false, None, move |d| {
        read_inputs(d, &inputs, &progress, keep_going)
    })?;
    // A file error that stops the run is returned before any merging.
    if let Some(e) = &ran.fed.1 {
        return Err(RunError::File(e.clone()));
    }
    let (a, (files, _)) = merge(ran, opts.workers.max(1), started);
    Ok(Analysis { files, ..a })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polling_receiver_gets_every_message_in_order_then_sees_the_end() {
        let (tx, rx) = bounded::<u32>(4);
        let sender = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).expect("receiver alive");
                if i % 10 == 0 {
                    std::thread::sleep(Duration::from_micros(300));
                }
            }
        });
        let got: Vec<u32> = std::iter::from_fn(|| recv_polling(&rx, POLLS).ok()).collect();
        sender.join().expect("sender");
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(recv_polling(&rx, POLLS).is_err(), "disconnected");
    }

    #[test]
    fn a_polling_receiver_that_gave_up_looking_still_gets_a_late_message() {
        let (tx, rx) = bounded::<u32>(1);
        let late = POLL_SLEEP * POLLS * 4;
        let sender = std::thread::spawn(move || {
            std::thread::sleep(late);
            tx.send(7).expect("receiver alive");
        });
        let started = Instant::now();
        assert_eq!(recv_polling(&rx, POLLS), Ok(7));
        assert!(started.elapsed() >= late);
        sender.join().expect("sender");
        assert!(recv_polling(&rx, POLLS).is_err());
        // Without looks it blocks at once, and still gets what comes.
        let (tx, rx) = bounded::<u32>(1);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            tx.send(8).expect("receiver alive");
        });
        assert_eq!(recv_polling(&rx, 0), Ok(8));
        sender.join().expect("sender");
    }
}
