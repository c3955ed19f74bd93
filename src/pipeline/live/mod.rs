//! Live capture through the same decoding, flow tables and reports as files.
//!
//! `--workers N` opens N capture handles on the interface in one kernel
//! fanout group ([`crate::source::live::fanout`]): the kernel hands every
//! packet of a flow, both directions, to the same handle, and each handle
//! has a thread of its own that captures, decodes and accounts its flows in
//! its own flow table ([`thread`]). No packet crosses threads, so nothing
//! queues between capture and accounting: a thread that falls behind leaves
//! packets in its kernel ring, and what the ring cannot hold is counted as a
//! kernel drop. The threads share only the stop flags, `-c`'s count (an
//! atomic, touched per packet only with `-c`), and the `-w` file (one lock
//! per block of records).
//!
//! At the end of every interval each thread reads its handle's counters and
//! publishes them with its per-port counters, numbered by time since the
//! start (the same number on every thread); the view shows an interval once
//! every thread's part has come, so its totals and rows describe the same
//! moment. At the end the threads' tables are merged as the file readers' are.
mod flows;
mod thread;

pub use flows::{FlowBatch, Reported};

use super::dispatch::Dispatcher;
use super::timings::{thread_cpu, Cpu, Timings};
use super::workers::Workers;
use super::{merge, Analysis, Options, Ran, RunError};
use crate::source::live::{CaptureCounters, Live, PcapWriter, Records};
use crate::stats::flow::{FlowTable, Observed};
use crate::stats::{Count, PortKey, Totals};
use crossbeam_channel::Sender;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thread::{CaptureLoop, Ended};

/// Capture threads (and fanout handles) a live capture with `--workers n`
/// runs: at least one.
pub fn capture_threads(n: usize) -> usize {
    n.max(1)
}

/// Stop levels set by signal handlers: run, stop and report, abort now.
pub const RUN: u8 = 0;
pub const STOP: u8 = 1;
pub const ABORT: u8 = 2;

/// One port's cumulative counters in a capture thread's flow table.
#[derive(Debug, Clone, Copy)]
pub struct PortLive {
    pub key: PortKey,
    pub to_server: Count,
    pub to_client: Count,
    pub flows: u64,
}

/// A capture thread's totals and its handle's counters at the end of an
/// interval; combined over the threads, the capture's.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CaptureSnapshot {
    /// Wall time since the capture started.
    #[serde(skip)]
    pub elapsed: Duration,
    pub counters: CaptureCounters,
    /// Packets dropped between threads: always 0, since each capture thread
    /// accounts its own packets (kept for readers of the schema).
    pub dropped_queue: u64,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub udp_packets: u64,
    pub icmp_packets: u64,
    pub non_ip_packets: u64,
    pub decode_errors: u64,
    /// Which of the capture's interfaces (a thread's part; 0 once combined).
    #[serde(skip)]
    pub interface: u32,
}

/// The interval number of the last stretch, published when a capture stops.
pub const FINAL_TICK: u64 = u64::MAX;

/// What each capture thread publishes at the end of every interval to
/// whoever shows the live view: its totals, its handle's counters and its
/// cumulative per-port counters, all taken at the same moment (the packets
/// before it). Intervals are numbered by time since the capture started, the
/// same on every thread; the last one is [`FINAL_TICK`].
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub thread: usize,
    pub tick: u64,
    pub capture: CaptureSnapshot,
    pub ports: Vec<PortLive>,
}

impl CaptureSnapshot {
    /// The capture as a whole from every thread's part: counts summed, the
    /// interface's drops taken once ([`CaptureCounters::combine`]).
    pub fn combine<'a>(parts: impl IntoIterator<Item = &'a CaptureSnapshot>) -> CaptureSnapshot {
        let mut all = CaptureSnapshot::default();
        let mut sockets = Vec::new();
        for p in parts {
            all.elapsed = all.elapsed.max(p.elapsed);
            sockets.push((p.interface, p.counters));
            all.dropped_queue += p.dropped_queue;
            all.packets += p.packets;
            all.bytes += p.bytes;
            all.tcp_packets += p.tcp_packets;
            all.udp_packets += p.udp_packets;
            all.icmp_packets += p.icmp_packets;
            all.non_ip_packets += p.non_ip_packets;
            all.decode_errors += p.decode_errors;
        }
        all.counters = by_interface(&sockets);
        all
    }
}

/// The counters of sockets on several interfaces: each interface's combined
/// ([`CaptureCounters::combine`]), then added up.
fn by_interface(sockets: &[(u32, CaptureCounters)]) -> CaptureCounters {
    let mut interfaces: Vec<u32> = sockets.iter().map(|s| s.0).collect();
    interfaces.sort_unstable();
    interfaces.dedup();
    let mut all = CaptureCounters::default();
    for i in interfaces {
        let mine: Vec<CaptureCounters> = sockets.iter().filter(|s| s.0 == i).map(|s| s.1).collect();
        all += CaptureCounters::combine(&mine);
    }
    all
}

/// The interfaces of `lives`, each once, in the order given: "eth0" or
/// "eth0,eth1".
pub fn interface_names(lives: &[Live]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for l in lives {
        if !names.contains(&l.interface.as_str()) {
            names.push(&l.interface);
        }
    }
    names.join(",")
}

/// One captured interface in the report (`live.interfaces`).
#[derive(Debug, Clone, Serialize)]
pub struct InterfaceSummary {
    pub name: String,
    /// Its sockets' counters combined ([`CaptureCounters::combine`]).
    #[serde(flatten)]
    pub counters: CaptureCounters,
    /// Packets and bytes its capture threads analysed.
    pub packets: u64,
    pub bytes: u64,
}

/// Why a capture ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum StopReason {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// `-c` packets captured.
    Count,
    /// `-d` elapsed.
    Duration,
    /// A second Ctrl-C: stopped at once, no report.
    Aborted,
    /// The interface failed (went down, was removed...).
    InterfaceError(String),
    /// Writing `-w` failed (disk full, permissions...).
    WriteError(String),
}

impl StopReason {
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            StopReason::InterfaceError(_) | StopReason::WriteError(_)
        )
    }
}

/// What to capture and when to stop.
pub struct CaptureSpec {
    /// One open handle per capture thread (in one fanout group when more
    /// than one, [`crate::source::live::fanout::open_group`]).
    pub lives: Vec<Live>,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// `-w`: where to keep the packets, created by the caller.
    pub write: Option<PcapWriter>,
    pub interval: Duration,
    /// Where the flows go as they end (and, with `active`, long flows while
    /// they last), a batch per thread and interval, the flows still open at
    /// the end last (with `Options::keep_flows`).
    pub ended_flows: Option<Sender<FlowBatch>>,
    /// Report flows open this long in parts, while they last.
    pub active: Option<Duration>,
    /// Where what ended flows add to the inventory and the scan attempts
    /// goes, a part per thread and interval, for findings raised while the
    /// capture runs. What is handed on here is not in the returned analysis:
    /// the receiver adds it back. A part the receiver has no room for stays
    /// with its thread until the next interval, so nothing is lost.
    pub observed: Option<Sender<Observed>>,
}

/// The capture's own account, shown beside the report.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSummary {
    pub interface: String,
    /// A loopback interface, whose `received` counts each packet twice.
    pub loopback: bool,
    pub link_type: String,
    pub duration_s: f64,
    /// Over every capture socket ([`CaptureCounters::combine`]).
    #[serde(flatten)]
    pub counters: CaptureCounters,
    /// Always 0 (see [`CaptureSnapshot::dropped_queue`]).
    pub dropped_queue: u64,
    /// Ended flows not streamed because their consumer fell behind.
    pub flows_lost: u64,
    /// Capture threads, each with its own socket in the fanout group.
    pub threads: usize,
    /// Each socket's counters, in thread order.
    pub sockets: Vec<CaptureCounters>,
    /// Each interface captured, in the order given.
    pub interfaces: Vec<InterfaceSummary>,
    pub stopped_by: StopReason,
    /// The `-w` file and the packets in it, when complete.
    pub written: Option<String>,
    pub written_packets: u64,
    /// Files `-w` wrote (more than one with `-C` or `-G`; `written` is the last).
    pub written_files: u32,
}

/// What the capture threads share.
struct Shared {
    /// The signal handlers' stop level.
    control: Arc<AtomicU8>,
    /// Set by the first thread that stops for a reason of its own (`-c`
    /// reached, an error): the others stop too.
    ended: AtomicBool,
    /// `-c`: packets still to take, over every thread.
    left: Option<AtomicU64>,
    writer: Option<Mutex<PcapWriter>>,
    ended_flows: Option<Sender<FlowBatch>>,
    observed: Option<Sender<Observed>>,
    /// In nanoseconds: [`CaptureSpec::active`].
    active_ns: Option<u64>,
    /// Flows that ended but could not be handed on (the consumer was behind).
    flows_lost: AtomicU64,
    /// The `-w` file's name, for messages (read without the writer's lock,
    /// which the thread that hit an error may hold).
    written: String,
    snapshots: Option<Sender<Snapshot>>,
    started: Instant,
    interval: Duration,
    duration: Option<Duration>,
}

impl Shared {
    fn new(control: Arc<AtomicU8>, started: Instant, interval: Duration) -> Shared {
        Shared {
            control,
            ended: AtomicBool::new(false),
            left: None,
            writer: None,
            ended_flows: None,
            observed: None,
            active_ns: None,
            flows_lost: AtomicU64::new(0),
            written: String::new(),
            snapshots: None,
            started,
            interval,
            duration: None,
        }
    }

    /// Takes one packet from `-c`'s count; false when none is left (always
    /// true without `-c`).
    #[inline]
    fn claim(&self) -> bool {
        match &self.left {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    fn count_reached(&self) -> bool {
        self.left
            .as_ref()
            .is_some_and(|l| l.load(Ordering::Relaxed) == 0)
    }

    /// The number of the interval that ended last at `since` the start.
    fn tick_at(&self, since: Duration) -> u64 {
        (since.as_nanos() / self.interval.as_nanos().max(1)) as u64
    }

    /// Time from now until interval `tick` ends.
    fn until_tick(&self, tick: u64) -> Duration {
        let end = self
            .interval
            .saturating_mul(tick.min(u32::MAX as u64) as u32);
        end.saturating_sub(self.started.elapsed())
    }

    /// Hands a thread's `-w` records to the writer (under its lock, which is
    /// let go before the caller sees the outcome).
    fn append(&self, r: &mut Records) -> std::io::Result<()> {
        match &self.writer {
            Some(w) => w
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .append(r),
            None => Ok(()),
        }
    }

    /// A write error on the `-w` file as a reason to stop.
    fn write_error(&self, e: std::io::Error) -> StopReason {
        StopReason::WriteError(format!("{}: {e}", self.written))
    }
}

/// Why the capture as a whole stopped, from each thread's own reason: an
/// error first, then an abort, then what the user asked for.
fn stop_reason<'a>(ended: impl IntoIterator<Item = &'a Ended>) -> StopReason {
    let rank = |s: &&StopReason| match s {
        StopReason::InterfaceError(_) | StopReason::WriteError(_) => 0,
        StopReason::Aborted => 1,
        StopReason::Count => 2,
        StopReason::Duration => 3,
        StopReason::Signal => 4,
    };
    ended
        .into_iter()
        .filter_map(|e| match e {
            Ended::Own(s) => Some(s),
            Ended::Peer => None,
        })
        .min_by_key(rank)
        .cloned()
        .unwrap_or(StopReason::Signal)
}

/// What one capture thread hands back.
struct ThreadResult {
    table: Option<FlowTable>,
    totals: Totals,
    done: thread::Done,
    cpu: Cpu,
}

/// Captures until a stop condition, then returns the same analysis `read`
/// gives, plus the capture's own account.
pub fn capture(
    opts: &Options,
    spec: CaptureSpec,
    control: Arc<AtomicU8>,
    snapshots: Option<Sender<Snapshot>>,
) -> Result<(Analysis, LiveSummary), RunError> {
    let started = Instant::now();
    let CaptureSpec {
        lives,
        count,
        duration,
        write,
        interval,
        ended_flows,
        active,
        observed,
    } = spec;
    if lives.is_empty() {
        return Err(RunError::Worker("no capture handle".into()));
    }
    let (interface, loopback) = (interface_names(&lives), lives.iter().any(|l| l.loopback));
    let threads = lives.len();
    let shared = Shared {
        left: count.map(AtomicU64::new),
        written: write
            .as_ref()
            .map(|w| w.dest().display().to_string())
            .unwrap_or_default(),
        writer: write.map(Mutex::new),
        ended_flows,
        observed,
        active_ns: active.map(|d| d.as_nanos() as u64),
        snapshots,
        duration,
        ..Shared::new(control, started, interval)
    };
    let results = run_threads(opts, lives, &shared)?;
    let stop = stop_reason(results.iter().map(|r| &r.done.ended));
    let flows_lost = shared.flows_lost.load(Ordering::Relaxed);
    let mut summary = summary(&results, (interface, loopback), started, stop, flows_lost);
    if let Some(w) = shared.writer {
        summary.add_written(
            w.into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
    }
    let mut totals = Totals::default();
    let (mut tables, mut cpu) = (Vec::new(), Vec::new());
    for r in results {
        totals.merge(&r.totals);
        tables.extend(r.table);
        cpu.push(r.cpu);
    }
    let ran = Ran {
        fed: summary,
        tables,
        totals,
        warnings: Vec::new(),
        timings: Timings {
            reading: started.elapsed(),
            worker_cpu: cpu,
            ..Timings::default()
        },
    };
    Ok(merge(ran, threads, started))
}

/// The capture's account from its threads' results (no `-w` file yet).
fn summary(
    results: &[ThreadResult],
    (interface, loopback): (String, bool),
    started: Instant,
    stopped_by: StopReason,
    flows_lost: u64,
) -> LiveSummary {
    let interfaces = interfaces(results);
    let mut counters = CaptureCounters::default();
    for i in &interfaces {
        counters += i.counters;
    }
    let mut links: Vec<String> = results.iter().map(|r| r.done.link.name()).collect();
    links.dedup();
    LiveSummary {
        interface,
        loopback,
        link_type: links.join(","),
        duration_s: started.elapsed().as_secs_f64(),
        counters,
        dropped_queue: 0,
        flows_lost,
        threads: results.len(),
        sockets: results.iter().map(|r| r.done.counters).collect(),
        interfaces,
        stopped_by,
        written: None,
        written_packets: 0,
        written_files: 0,
    }
}

impl LiveSummary {
    /// Closes the `-w` file and says what it holds; a write error becomes
    /// the reason the capture stopped, unless another error already is.
    fn add_written(&mut self, w: PcapWriter) {
        let name = w.dest().display().to_string();
        let done = w.finish();
        if let Some(e) = done.error {
            if !self.stopped_by.is_error() {
                self.stopped_by = StopReason::WriteError(format!("{name}: {e}"));
            }
        }
        self.written = Some(done.path.display().to_string());
        (self.written_packets, self.written_files) = (done.packets, done.files);
    }
}

/// Each interface's counters and packets, from its threads' results.
fn interfaces(results: &[ThreadResult]) -> Vec<InterfaceSummary> {
    let mut out: Vec<(u32, InterfaceSummary, Vec<CaptureCounters>)> = Vec::new();
    for r in results {
        let (name, index) = (&r.done.interface, &r.done.iface);
        let at = match out.iter().position(|o| o.0 == *index) {
            Some(at) => at,
            None => {
                let s = InterfaceSummary {
                    name: name.clone(),
                    counters: CaptureCounters::default(),
                    packets: 0,
                    bytes: 0,
                };
                out.push((*index, s, Vec::new()));
                out.len() - 1
            }
        };
        out[at].1.packets += r.totals.packets;
        out[at].1.bytes += r.totals.bytes;
        out[at].2.push(r.done.counters);
    }
    out.sort_by_key(|o| o.0);
    out.into_iter()
        .map(|(_, mut s, sockets)| {
            s.counters = CaptureCounters::combine(&sockets);
            s
        })
        .collect()
}

/// Runs one capture thread per handle until the capture stops.
fn run_threads(
    opts: &Options,
    lives: Vec<Live>,
    shared: &Shared,
) -> Result<Vec<ThreadResult>, RunError> {
    let threads = lives.len();
    std::thread::scope(|s| {
        let handles: Vec<_> = lives
            .into_iter()
            .enumerate()
            .map(|(i, live)| {
                std::thread::Builder::new()
                    .name(format!("portflow-capture-{i}"))
                    .spawn_scoped(s, move || capture_thread(opts, i, live, threads, shared))
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            let h = h.map_err(|e| {
                // The threads already started stop too.
                shared.ended.store(true, Ordering::Relaxed);
                RunError::Worker(format!("cannot start a capture thread: {e}"))
            })?;
            let r = h
                .join()
                .map_err(|_| RunError::Worker("capture thread panicked".into()))?;
            results.push(r);
        }
        Ok(results)
    })
}

/// One capture thread from start to end: its own dispatcher and flow table
/// (its share of the flow cap), the loop, then every open flow ended.
fn capture_thread(
    opts: &Options,
    index: usize,
    live: Live,
    threads: usize,
    shared: &Shared,
) -> ThreadResult {
    // A thread that panics stops the others (the panic is reported at the join).
    struct StopOthers<'a>(&'a AtomicBool);
    impl Drop for StopOthers<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }
    let _guard = StopOthers(&shared.ended);
    let mut d = Dispatcher::new(
        Workers::none(opts),
        None,
        Some(opts.flow_table(threads)),
        opts.timeouts,
    );
    let mut done = CaptureLoop::new(index, live, shared).run(&mut d);
    let (totals, _, mut table) = d.finish();
    if let (Some(flows), Some(t)) = (&shared.ended_flows, table.as_mut()) {
        // The flows still open at the end, ended now.
        let batch = done.reports.ended(std::mem::take(&mut t.records));
        let n = batch.len() as u64;
        if !batch.is_empty() && flows.send(batch).is_err() {
            shared.flows_lost.fetch_add(n, Ordering::Relaxed);
        }
    }
    ThreadResult {
        table,
        totals,
        done,
        cpu: thread_cpu(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_stops_for_the_most_telling_reason_of_its_threads() {
        let own = Ended::Own;
        let why = |e: Vec<Ended>| stop_reason(&e);
        assert_eq!(
            why(vec![Ended::Peer, own(StopReason::Count)]),
            StopReason::Count
        );
        assert_eq!(
            why(vec![
                own(StopReason::Signal),
                own(StopReason::InterfaceError("down".into()))
            ]),
            StopReason::InterfaceError("down".into())
        );
        assert_eq!(
            why(vec![own(StopReason::Duration), own(StopReason::Signal)]),
            StopReason::Duration
        );
        assert_eq!(
            why(vec![own(StopReason::Signal), own(StopReason::Aborted)]),
            StopReason::Aborted
        );
    }

    #[test]
    fn a_count_is_shared_exactly_between_threads() {
        let shared = Shared {
            left: Some(AtomicU64::new(10_000)),
            ..Shared::new(Arc::default(), Instant::now(), Duration::from_secs(1))
        };
        let taken: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut n = 0u64;
                        while shared.claim() {
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(taken, 10_000);
        assert!(shared.count_reached());
    }

    #[test]
    fn every_thread_numbers_an_interval_alike() {
        let shared = Shared::new(Arc::default(), Instant::now(), Duration::from_millis(200));
        assert_eq!(shared.tick_at(Duration::from_millis(199)), 0);
        assert_eq!(shared.tick_at(Duration::from_millis(200)), 1);
        assert_eq!(shared.tick_at(Duration::from_millis(1_050)), 5);
        assert!(shared.until_tick(1) <= Duration::from_millis(200));
    }
}
