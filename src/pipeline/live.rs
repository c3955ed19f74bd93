//! Live capture through the same dispatcher, workers and reports as files.
//!
//! The capture thread reads from libpcap (filter in the kernel; the kernel hands
//! packets over in blocks, within 10 ms, and a stopping capture reads what it
//! took before the stop),
//! writes `-w` records, and feeds the dispatcher in lossy mode: a worker that
//! falls behind loses batches, counted as queue drops, instead of stalling the
//! capture. Every interval it reads libpcap's counters once, publishes them
//! with the interval's tick, and puts the tick as a mark into every worker's
//! stream; each worker publishes its per-port counters when it reaches the
//! mark, so the view's totals and rows describe the same packets. Nothing on
//! this path waits for the display.
use super::dispatch::Dispatcher;
use super::Batch;
use super::{merge, run_pipeline, Analysis, Options, Publish, RunError};
use crate::decode::LinkType;
use crate::services::Transport;
use crate::source::live::{
    interface_state, wait_readable, CaptureCounters, CounterWidener, LinkError, Live, PcapWriter,
    BLOCK_TIMEOUT,
};
use crate::source::RawPacket;
use crate::stats::flow::{FlowTable, MARK};
use crate::stats::{Count, PortKey};
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets between two looks at the clock, the stop flags and the tick.
const CHECK_EVERY: u32 = 256;

/// How long a partial batch may wait for more packets while the link is quiet.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How often an idle capture asks whether its interface is still up.
const LINK_CHECK_EVERY: Duration = Duration::from_millis(200);

/// Flow workers a live capture with `--workers n` runs: its capture thread
/// keeps apart, so at least one.
pub fn flow_workers(n: usize) -> usize {
    super::workers::flow_workers(n, true)
}

/// Stop levels set by signal handlers: run, stop and report, abort now.
pub const RUN: u8 = 0;
pub const STOP: u8 = 1;
pub const ABORT: u8 = 2;

/// One port's cumulative counters in a worker.
#[derive(Debug, Clone, Copy)]
pub struct PortLive {
    pub key: PortKey,
    pub to_server: Count,
    pub to_client: Count,
    pub flows: u64,
}

/// What the capture thread publishes every interval.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CaptureSnapshot {
    /// Wall time since the capture started.
    #[serde(skip)]
    pub elapsed: Duration,
    pub counters: CaptureCounters,
    /// Packets decoded but dropped because a worker's queue was full.
    pub dropped_queue: u64,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub udp_packets: u64,
    pub icmp_packets: u64,
    pub non_ip_packets: u64,
    pub decode_errors: u64,
}

/// Messages to whoever shows the live view. Every interval's tick is a mark
/// in the packet stream ([`Dispatcher::mark`]): the capture thread's totals
/// and every worker's counters carry the tick they were taken at, and all of
/// one tick count the same packets.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// A worker's cumulative per-port counters at `tick`.
    Ports {
        worker: usize,
        tick: u64,
        ports: Vec<PortLive>,
    },
    /// The capture thread's totals and libpcap's counters at `tick`.
    Capture {
        tick: u64,
        snapshot: CaptureSnapshot,
    },
}

/// Worker loop in live mode: accounts batches, and reports its counters at
/// each tick's mark, counting exactly the packets before the mark (a batch
/// kept back by a full queue can carry a mark with packets after it).
pub(crate) fn worker_loop(
    index: usize,
    rx: &Receiver<Batch>,
    recycle: &Sender<Batch>,
    table: &mut FlowTable,
    publish: &Publish,
) {
    while let Ok(mut batch) = rx.recv() {
        let mut from = 0;
        while let Some(i) = batch.pkts[from..].iter().position(|p| p.hints & MARK != 0) {
            let at = from + i;
            table.account_batch(&batch.pkts[from..at], &batch.bytes);
            publish_ports(index, batch.pkts[at].ts, table, publish);
            from = at + 1;
        }
        table.account_batch(&batch.pkts[from..], &batch.bytes);
        batch.clear();
        let _ = recycle.try_send(batch);
    }
}

/// A worker's per-port counters at `tick`, to whoever shows the capture.
fn publish_ports(worker: usize, tick: u64, table: &FlowTable, publish: &Publish) {
    let ports = table
        .ports
        .iter()
        .map(|(key, p)| PortLive {
            key,
            to_server: p.to_server,
            to_client: p.to_client,
            flows: p.flows,
        })
        .collect();
    let _ = publish.to.try_send(Snapshot::Ports {
        worker,
        tick,
        ports,
    });
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
    pub live: Live,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// `-w`: where to keep the packets, created by the caller.
    pub write: Option<PcapWriter>,
    pub interval: Duration,
}

/// The capture's own account, shown beside the report.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSummary {
    pub interface: String,
    /// A loopback interface, whose `received` counts each packet twice.
    pub loopback: bool,
    pub link_type: String,
    pub duration_s: f64,
    #[serde(flatten)]
    pub counters: CaptureCounters,
    pub dropped_queue: u64,
    pub stopped_by: StopReason,
    /// The `-w` file and the packets in it, when complete.
    pub written: Option<String>,
    pub written_packets: u64,
}

fn snapshot(d: &Dispatcher, started: Instant, counters: CaptureCounters) -> CaptureSnapshot {
    let t = d.totals();
    CaptureSnapshot {
        elapsed: started.elapsed(),
        counters,
        dropped_queue: t.queue_dropped,
        packets: t.packets,
        bytes: t.bytes,
        tcp_packets: t.transport(Transport::Tcp).packets,
        udp_packets: t.transport(Transport::Udp).packets,
        icmp_packets: t.icmp.packets,
        non_ip_packets: t.non_ip.packets,
        decode_errors: t.decode_error_packets,
    }
}

/// A captured packet's time in nanoseconds since the Unix epoch.
fn packet_ns(p: &pcap::Packet) -> u64 {
    let ts = p.header.ts;
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + (ts.tv_usec as u64) * 1000
}

/// Takes one captured packet: writes it with `-w` and hands it to the dispatcher.
fn take(
    p: &pcap::Packet,
    link: LinkType,
    writer: Option<&mut PcapWriter>,
    d: &mut Dispatcher,
) -> std::io::Result<()> {
    let ts_ns = packet_ns(p);
    if let Some(w) = writer {
        w.write(ts_ns, p.data, p.header.len)?;
    }
    d.packet(&RawPacket {
        link,
        ts_ns,
        data: p.data,
        wire_len: p.header.len,
        interface: 0,
    });
    Ok(())
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
    let publish = snapshots.clone().map(|to| Publish { to });
    let mut run = CaptureLoop::new(spec, control, snapshots, started);
    let ran = run_pipeline(opts, None, true, publish, move |d| {
        let stop = run.until_stopped(d);
        let stop = run.read_what_came_before(d, stop);
        if stop != StopReason::Aborted {
            // The last stretch, shown before the report.
            run.tick(d, Instant::now());
        }
        run.finish(d, stop)
    })?;
    Ok(merge(ran, opts.workers.max(1), started))
}

/// The capture thread's state while it reads packets.
struct CaptureLoop {
    cap: pcap::Capture<pcap::Active>,
    interface: String,
    loopback: bool,
    link: LinkType,
    poll: Duration,
    count: Option<u64>,
    duration: Option<Duration>,
    interval: Duration,
    writer: Option<PcapWriter>,
    control: Arc<AtomicU8>,
    snapshots: Option<Sender<Snapshot>>,
    started: Instant,
    captured: u64,
    widen: CounterWidener,
    counters: CaptureCounters,
    next_tick: Instant,
    /// Ticks so far (each interval's number).
    ticks: u64,
    last_flush: Instant,
    last_link_check: Instant,
}

impl CaptureLoop {
    fn new(
        spec: CaptureSpec,
        control: Arc<AtomicU8>,
        snapshots: Option<Sender<Snapshot>>,
        started: Instant,
    ) -> CaptureLoop {
        let Live {
            cap,
            interface,
            link,
            poll,
            loopback,
            ..
        } = spec.live;
        CaptureLoop {
            cap,
            interface,
            loopback,
            link,
            poll,
            count: spec.count,
            duration: spec.duration,
            interval: spec.interval,
            writer: spec.write,
            control,
            snapshots,
            started,
            captured: 0,
            widen: CounterWidener::default(),
            counters: CaptureCounters::default(),
            next_tick: started + spec.interval,
            ticks: 0,
            last_flush: Instant::now(),
            last_link_check: Instant::now(),
        }
    }

    /// A write error on the `-w` file as a reason to stop.
    fn write_error(&self, e: std::io::Error) -> StopReason {
        let name = self.writer.as_ref().map(|w| w.dest().display().to_string());
        StopReason::WriteError(format!("{}: {e}", name.unwrap_or_default()))
    }

    /// Reads packets until a stop condition. Clock-driven checks run on every
    /// empty read and every [`CHECK_EVERY`] packets, not per packet: reading
    /// the clock costs more than decoding a header.
    fn until_stopped(&mut self, d: &mut Dispatcher) -> StopReason {
        let mut since_check = 0u32;
        loop {
            if self.count.is_some_and(|c| self.captured >= c) {
                return StopReason::Count;
            }
            if since_check == 0 {
                since_check = CHECK_EVERY;
                if let Some(stop) = self.check(d) {
                    return stop;
                }
            }
            since_check -= 1;
            match self.cap.next_packet() {
                Ok(p) => {
                    self.captured += 1;
                    if let Err(e) = take(&p, self.link, self.writer.as_mut(), d) {
                        return self.write_error(e);
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {
                    since_check = 0;
                    if let Err(e) = self.idle(d) {
                        return StopReason::InterfaceError(e.to_string());
                    }
                }
                Err(pcap::Error::NoMorePackets) => {
                    return StopReason::InterfaceError("capture ended".into())
                }
                Err(pcap::Error::PcapError(m)) => return StopReason::InterfaceError(m),
                Err(e) => return StopReason::InterfaceError(e.to_string()),
            }
        }
    }

    /// The stop flags and the duration; on the interval's tick, libpcap's
    /// counters, partial batches and the capture thread's snapshot.
    fn check(&mut self, d: &mut Dispatcher) -> Option<StopReason> {
        match self.control.load(Ordering::Relaxed) {
            RUN => {}
            ABORT => return Some(StopReason::Aborted),
            _ => return Some(StopReason::Signal),
        }
        let now = Instant::now();
        if self
            .duration
            .is_some_and(|dur| now.duration_since(self.started) >= dur)
        {
            return Some(StopReason::Duration);
        }
        if now >= self.next_tick {
            self.tick(d, now);
            self.next_tick = (self.next_tick + self.interval).max(now);
        }
        None
    }

    /// An interval's tick: libpcap's counters, partial batches sent on and,
    /// when someone shows the capture, the tick's mark in every worker's
    /// stream and the capture thread's snapshot.
    fn tick(&mut self, d: &mut Dispatcher, now: Instant) {
        if let Ok(s) = self.cap.stats() {
            self.counters = self.widen.update(&s);
        }
        self.last_flush = now;
        let Some(tx) = &self.snapshots else {
            d.flush_all();
            return;
        };
        self.ticks += 1;
        d.mark(self.ticks);
        let snapshot = snapshot(d, self.started, self.counters);
        let _ = tx.try_send(Snapshot::Capture {
            tick: self.ticks,
            snapshot,
        });
    }

    /// Nothing to read: hands partial batches on now and then (not on every
    /// empty read: tiny batches would fill the queues), waits for packets, and
    /// now and then asks whether the interface is still up.
    fn idle(&mut self, d: &mut Dispatcher) -> Result<(), LinkError> {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            d.flush_all();
            self.last_flush = Instant::now();
        }
        let until_tick = self.next_tick.saturating_duration_since(Instant::now());
        wait_readable(&self.cap, self.poll.min(until_tick))?;
        if self.last_link_check.elapsed() >= LINK_CHECK_EVERY {
            self.last_link_check = Instant::now();
            interface_state(&self.interface)?;
        }
        Ok(())
    }

    /// After a stop by signal or duration: the kernel hands a block of the
    /// ring over when it is full or [`BLOCK_TIMEOUT`] after its first packet,
    /// so what it took before the stop is read too, up to the first packet
    /// stamped after it (for at most three block timeouts).
    fn read_what_came_before(&mut self, d: &mut Dispatcher, stop: StopReason) -> StopReason {
        if !matches!(stop, StopReason::Signal | StopReason::Duration) {
            return stop;
        }
        let stopped = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(u64::MAX, |t| t.as_nanos() as u64);
        let until = Instant::now() + 3 * BLOCK_TIMEOUT;
        while self.count.is_none_or(|c| self.captured < c) {
            if self.control.load(Ordering::Relaxed) == ABORT {
                return StopReason::Aborted;
            }
            match self.cap.next_packet() {
                Ok(p) if packet_ns(&p) > stopped => break,
                Ok(p) => {
                    self.captured += 1;
                    if let Err(e) = take(&p, self.link, self.writer.as_mut(), d) {
                        return self.write_error(e);
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() || wait_readable(&self.cap, left).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        stop
    }

    /// The last counters, the `-w` file closed, and the capture's account.
    fn finish(mut self, d: &mut Dispatcher, mut stop: StopReason) -> LiveSummary {
        if let Ok(s) = self.cap.stats() {
            self.counters = self.widen.update(&s);
        }
        let (mut written, mut written_packets) = (None, 0);
        if let Some(w) = self.writer.take() {
            let name = w.dest().display().to_string();
            let done = w.finish();
            written_packets = done.packets;
            written = Some(done.path.display().to_string());
            if let Some(e) = done.error {
                if !stop.is_error() {
                    stop = StopReason::WriteError(format!("{name}: {e}"));
                }
            }
        }
        LiveSummary {
            interface: self.interface,
            loopback: self.loopback,
            link_type: self.link.name(),
            duration_s: self.started.elapsed().as_secs_f64(),
            counters: self.counters,
            dropped_queue: d.totals().queue_dropped,
            stopped_by: stop,
            written,
            written_packets,
        }
    }
}
