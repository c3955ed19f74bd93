//! Live capture through the same dispatcher, workers and reports as files.
//!
//! The capture thread reads from libpcap (filter in the kernel; the kernel hands
//! packets over in blocks, within 10 ms, and a stopping capture reads what it
//! took before the stop),
//! writes `-w` records, and feeds the dispatcher in lossy mode: a worker that
//! falls behind loses batches, counted as queue drops, instead of stalling the
//! capture. Every interval it reads libpcap's counters once and publishes them;
//! workers publish their per-port counters on their own timer. Nothing on this
//! path waits for the display.
use super::Batch;
use super::{merge, run_pipeline, Analysis, Options, Publish, RunError};
use crate::services::Transport;
use crate::source::live::{
    interface_state, wait_readable, CaptureCounters, CounterWidener, Live, PcapWriter,
    BLOCK_TIMEOUT,
};
use crate::source::RawPacket;
use crate::stats::flow::FlowTable;
use crate::stats::{Count, PortKey};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets between two looks at the clock, the stop flags and the tick.
const CHECK_EVERY: u32 = 256;

/// How long a partial batch may wait for more packets while the link is quiet.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How often an idle capture asks whether its interface is still up.
const LINK_CHECK_EVERY: Duration = Duration::from_millis(200);

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

/// Messages to whoever shows the live view.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// A worker's cumulative per-port counters.
    Ports { worker: usize, ports: Vec<PortLive> },
    /// The capture thread's totals and libpcap counters.
    Capture(CaptureSnapshot),
}

/// Worker loop in live mode: account batches, publish counters on a timer.
pub(crate) fn worker_loop(
    index: usize,
    rx: &Receiver<Batch>,
    recycle: &Sender<Batch>,
    table: &mut FlowTable,
    publish: &Publish,
) {
    let mut next = Instant::now() + publish.every;
    loop {
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(mut batch) => {
                table.account_batch(&batch.pkts, &batch.bytes);
                batch.clear();
                let _ = recycle.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now >= next {
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
                worker: index,
                ports,
            });
            next = (next + publish.every).max(now);
        }
    }
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
    pub write: Option<PathBuf>,
    pub interval: Duration,
}

/// The capture's own account, shown beside the report.
#[derive(Debug, Clone, Serialize)]
pub struct LiveSummary {
    pub interface: String,
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

fn snapshot(
    d: &super::dispatch::Dispatcher,
    started: Instant,
    counters: CaptureCounters,
) -> CaptureSnapshot {
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
    link: crate::decode::LinkType,
    writer: Option<&mut PcapWriter>,
    d: &mut super::dispatch::Dispatcher,
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
    let publish = snapshots.clone().map(|to| Publish {
        to,
        every: spec.interval,
    });
    let CaptureSpec {
        live,
        count,
        duration,
        write,
        interval,
    } = spec;
    let Live {
        mut cap,
        interface,
        link,
        snaplen,
        poll,
    } = live;
    let mut writer = match &write {
        Some(path) => Some(
            PcapWriter::create(path, link, snaplen)
                .map_err(|e| RunError::Worker(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let iface = interface.clone();
    let write_name = write
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let ran = run_pipeline(opts, None, true, publish, move |d| {
        let mut widen = CounterWidener::default();
        let mut counters = CaptureCounters::default();
        let mut captured = 0u64;
        let mut next_tick = started + interval;
        let mut wrote = None;
        let mut last_flush = Instant::now();
        let mut last_link_check = Instant::now();
        // Clock-driven checks run on every empty read and every CHECK_EVERY packets,
        // not per packet: reading the clock costs more than decoding a header.
        let mut since_check = 0u32;
        let stop = loop {
            if count.is_some_and(|c| captured >= c) {
                break StopReason::Count;
            }
            if since_check == 0 {
                since_check = CHECK_EVERY;
                match control.load(Ordering::Relaxed) {
                    RUN => {}
                    ABORT => break StopReason::Aborted,
                    _ => break StopReason::Signal,
                }
                let now = Instant::now();
                if duration.is_some_and(|dur| now.duration_since(started) >= dur) {
                    break StopReason::Duration;
                }
                if now >= next_tick {
                    if let Ok(s) = cap.stats() {
                        counters = widen.update(&s);
                    }
                    d.flush_all();
                    last_flush = now;
                    if let Some(tx) = &snapshots {
                        let _ = tx.try_send(Snapshot::Capture(snapshot(d, started, counters)));
                    }
                    next_tick = (next_tick + interval).max(now);
                }
            }
            since_check -= 1;
            match cap.next_packet() {
                Ok(p) => {
                    captured += 1;
                    if let Err(e) = take(&p, link, writer.as_mut(), d) {
                        break StopReason::WriteError(format!("{write_name}: {e}"));
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {
                    since_check = 0;
                    // Nothing to read. Hand partial batches on now and then (not on
                    // every empty read: tiny batches would fill the queues), then wait.
                    if last_flush.elapsed() >= FLUSH_EVERY {
                        d.flush_all();
                        last_flush = Instant::now();
                    }
                    let wait = poll.min(next_tick.saturating_duration_since(Instant::now()));
                    if let Err(m) = wait_readable(&cap, wait) {
                        break StopReason::InterfaceError(m);
                    }
                    if last_link_check.elapsed() >= LINK_CHECK_EVERY {
                        last_link_check = Instant::now();
                        if let Err(m) = interface_state(&iface) {
                            break StopReason::InterfaceError(m);
                        }
                    }
                }
                Err(pcap::Error::NoMorePackets) => {
                    break StopReason::InterfaceError("capture ended".into())
                }
                Err(e) => {
                    let m = match e {
                        pcap::Error::PcapError(m) => m,
                        other => other.to_string(),
                    };
                    break StopReason::InterfaceError(m);
                }
            }
        };
        let mut stop = stop;
        if matches!(stop, StopReason::Signal | StopReason::Duration) {
            // The kernel hands a block of the ring over when it is full or
            // BLOCK_TIMEOUT after its first packet: what it took before the
            // stop is read too, up to the first packet stamped after it.
            let stopped = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(u64::MAX, |t| t.as_nanos() as u64);
            let until = Instant::now() + 3 * BLOCK_TIMEOUT;
            while count.is_none_or(|c| captured < c) {
                if control.load(Ordering::Relaxed) == ABORT {
                    stop = StopReason::Aborted;
                    break;
                }
                match cap.next_packet() {
                    Ok(p) => {
                        if packet_ns(&p) > stopped {
                            break;
                        }
                        captured += 1;
                        if let Err(e) = take(&p, link, writer.as_mut(), d) {
                            stop = StopReason::WriteError(format!("{write_name}: {e}"));
                            break;
                        }
                    }
                    Err(pcap::Error::TimeoutExpired) => {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() || wait_readable(&cap, left).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        if let Ok(s) = cap.stats() {
            counters = widen.update(&s);
        }
        let mut written_packets = 0;
        if let Some(w) = writer.take() {
            let done = w.finish();
            written_packets = done.packets;
            wrote = Some(done.path.display().to_string());
            if let Some(e) = done.error {
                if !stop.is_error() {
                    stop = StopReason::WriteError(format!("{write_name}: {e}"));
                }
            }
        }
        LiveSummary {
            interface: iface,
            link_type: link.name(),
            duration_s: started.elapsed().as_secs_f64(),
            counters,
            dropped_queue: d.totals().queue_dropped,
            stopped_by: stop,
            written: wrote,
            written_packets,
        }
    })?;
    Ok(merge(ran, opts.workers.max(1), started))
}
