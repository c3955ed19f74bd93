//! The worker pipeline.
//!
//! ```text
//!  reader thread ──batches──▶ worker 0 (FlowTable + PortTable) ──┐
//!  (read, decode,  ──batches──▶ worker 1                         ├─▶ merge ─▶ Analysis
//!   shard by flow) ──batches──▶ worker N-2                       ─┘
//! ```
//! `--workers N` is the number of threads that analyse packets: the reader and
//! N-1 flow workers. With N = 1 a file is read in one thread, which keeps the
//! flow table itself (no channel). Files that can be cut into chunks are read
//! on every thread instead ([`parallel`]); a live capture runs N capture
//! threads that each keep their own flow table ([`live`]).
//! The reader hands batches of [`FlowPacket`](crate::stats::flow::FlowPacket)s over bounded channels, sharded by
//! a symmetric flow hash so a flow's two directions meet in one worker. Workers
//! own their tables (no lock per packet) and return them when the channels
//! close; the merge is exact, so the report is the same for any worker count
//! (unless the flow cap forces evictions, which are counted and reported).

mod batch;
mod count;
mod dispatch;
pub mod live;
mod parallel;
pub mod timings;
mod workers;

pub use batch::{Batch, BATCH};

use crate::services::Services;
use crate::source::bpf::{Filter, FilterError};
use crate::source::{read_capture, FileError, Input};
use crate::stats::flow::{FlowRecord, FlowTable, Timeouts};
use crate::stats::inventory::Inventory;
use crate::stats::{PortTable, Totals};
use crossbeam_channel::Receiver;
use dispatch::Dispatcher;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use timings::{thread_cpu, Timings};
use workers::{flow_workers, Workers};

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
    /// What stopped the file (with `keep_going`, the run went on).
    pub error: Option<FileError>,
    /// The file ends inside its last record (a capture cut short): every
    /// packet before the cut was read, and the run went on.
    pub cut_short: Option<FileError>,
}

impl FileReport {
    /// Whether a file error only says the file was cut short inside its
    /// last record, after its header: a warning, not a reason to stop.
    pub fn is_cut_short(e: &FileError) -> bool {
        e.kind == crate::source::FileErrorKind::Truncated && e.offset > 0
    }
}

/// Everything an analysis produced, merged over workers.
pub struct Analysis {
    pub totals: Totals,
    pub ports: PortTable,
    /// Open ports seen serving, and refused attempts per host.
    pub inventory: Inventory,
    /// Failed or unanswered attempts and odd-flag probes, for scan findings.
    pub attempts: crate::stats::attempts::Attempts,
    /// Names seen for addresses in the traffic (DNS answers, TLS SNI, HTTP Host).
    pub names: crate::stats::names::Names,
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
    /// A file error, when not going on after one; `unread` more inputs were
    /// not read.
    File { error: FileError, unread: usize },
    /// A worker thread panicked (a bug).
    Worker(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Filter(e) => write!(f, "{e}"),
            RunError::File { error, unread: 0 } => write!(f, "{error}"),
            RunError::File { error, unread } => write!(
                f,
                "{error} ({unread} more input{} not read; --keep-going reads past a damaged file)",
                if *unread == 1 { "" } else { "s" }
            ),
            RunError::Worker(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The flow tables `--workers n` shares the flow cap over: one per flow
/// worker, or the reader's own when it reads alone.
pub fn flow_tables(n: usize) -> usize {
    flow_workers(n).max(1)
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
    feed: impl FnOnce(&mut Dispatcher) -> R + Send + 'static,
) -> Result<Ran<R>, RunError> {
    let started = Instant::now();
    // The reader and the flow workers: one wait policy for all of them.
    let polls = polls_for(flow_workers(opts.workers) + 1);
    let workers = Workers::new(opts, polls);
    let inline = (workers.len() == 0).then(|| opts.flow_table(1));
    let timeouts = opts.timeouts;
    let reader = std::thread::Builder::new()
        .name("portflow-reader".into())
        .spawn(move || {
            let mut d = Dispatcher::new(workers, filter, inline, timeouts);
            d.set_polls(polls);
            let r = feed(&mut d);
            let warnings = d.filter_warnings();
            let (totals, workers, table) = d.finish();
            (r, totals, workers, table, warnings, thread_cpu())
        })
        .expect("spawn reader thread");
    let (fed, totals, workers, inline, warnings, reader_cpu) = reader
        .join()
        .map_err(|_| RunError::Worker("reader thread panicked".into()))?;
    let read = Instant::now();
    let (started_tables, worker_cpu) = workers.join()?;
    let mut tables: Vec<FlowTable> = inline.into_iter().collect();
    tables.extend(started_tables);
    let timings = Timings {
        reading: read - started,
        ending: read.elapsed(),
        merge: Duration::ZERO,
        merge_alongside: Duration::ZERO,
        reader_cpu,
        worker_cpu,
        parallel: None,
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
    // what only one worker saw is moved, not copied. Ports and the inventory
    // are merged on two threads at once (the largest parts of the merge).
    let (mut port_tables, mut inventories) = (Vec::new(), Vec::new());
    let mut attempts = crate::stats::attempts::Attempts::default();
    let mut names = crate::stats::names::Names::default();
    let mut flows = Vec::new();
    let (mut evicted, mut peak) = (0, 0);
    for mut t in tables {
        port_tables.push(t.ports.take());
        inventories.push(std::mem::take(&mut t.inventory));
        attempts.merge(&mut t.attempts);
        names.merge(std::mem::take(&mut t.names));
        flows.append(&mut t.records);
        evicted += t.evicted;
        peak += t.peak_flows;
    }
    let merge_ports = move || {
        let started = Instant::now();
        let mut all = port_tables.into_iter();
        let mut ports = all.next().unwrap_or_default();
        for p in all {
            ports.merge(p);
        }
        (ports, started.elapsed())
    };
    let (ports, inventory) = std::thread::scope(|s| {
        let ports = std::thread::Builder::new()
            .name("portflow-merge".into())
            .spawn_scoped(s, merge_ports);
        let mut inventory = Inventory::default();
        for i in inventories {
            inventory.merge(i);
        }
        let (ports, alongside) = ports
            .expect("spawn merge thread")
            .join()
            .expect("merging ports panicked");
        timings.merge_alongside = alongside;
        (ports, inventory)
    });
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
    let (mut totals, mut ports) = (totals, ports);
    crate::stats::align_timelines(&mut totals, &mut ports, 0);
    timings.merge = merging.elapsed();
    let a = Analysis {
        totals,
        ports,
        inventory,
        attempts,
        names,
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
/// held, and the error that stopped the run (without `keep_going`) with how
/// many inputs were left unread. A file cut short inside its last record is
/// read up to the cut and does not stop the run.
fn read_inputs(
    d: &mut Dispatcher,
    inputs: &[Input],
    progress: &Arc<AtomicU64>,
    keep_going: bool,
) -> (Vec<FileReport>, Option<(FileError, usize)>) {
    let mut files = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let r = read_capture(input, progress.clone(), &mut |p| d.packet(p));
        let mut report = FileReport {
            path: input.display(),
            format: "",
            compressed: false,
            packets: 0,
            error: None,
            cut_short: None,
        };
        match r {
            Ok(s) => {
                report.format = s.format;
                report.compressed = s.compressed;
                report.packets = s.packets;
            }
            Err(e) => {
                report.format = e.format;
                report.compressed = e.compressed;
                report.packets = e.packets_before;
                if FileReport::is_cut_short(&e) {
                    report.cut_short = Some(e);
                } else {
                    report.error = Some(e.clone());
                    if !keep_going {
                        files.push(report);
                        return (files, Some((e, inputs.len() - i - 1)));
                    }
                }
            }
        }
        files.push(report);
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
    if let Some(files) = parallel::open_all(inputs) {
        return parallel::analyze_parallel(files, opts, progress);
    }
    let inputs = inputs.to_vec();
    let keep_going = opts.keep_going;
    let ran = run_pipeline(opts, filter, move |d| {
        read_inputs(d, &inputs, &progress, keep_going)
    })?;
    // A file error that stops the run is returned before any merging.
    if let Some((error, unread)) = &ran.fed.1 {
        return Err(RunError::File {
            error: error.clone(),
            unread: *unread,
        });
    }
    let (a, (files, _)) = merge(ran, opts.workers.max(1), started);
    Ok(Analysis { files, ..a })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    fn eth(workers: usize) -> Analysis {
        let f =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/generated/eth.pcap");
        let opts = Options {
            workers,
            ..Options::default()
        };
        analyze_files(&[Input::Path(f)], &opts, Arc::default()).expect("eth.pcap reads")
    }

    #[test]
    fn workers_start_only_when_packets_come_for_them() {
        // 11 flows: at most 11 of 255 flow workers have anything to do.
        let many = eth(256);
        let started = many.timings.worker_cpu.len();
        assert!((1..=11).contains(&started), "{started} workers started");
        let two = eth(2);
        assert_eq!(two.timings.worker_cpu.len(), 1);
        assert_eq!(many.totals.packets, two.totals.packets);
        let rows = |a: &Analysis| {
            let mut v: Vec<_> = a.ports.iter().map(|(k, p)| (k, p.flows)).collect();
            v.sort();
            v
        };
        assert_eq!(rows(&many), rows(&two));
    }

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
