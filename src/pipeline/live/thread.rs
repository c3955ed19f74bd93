//! One capture thread: reads its handle, keeps `-w` records, decodes and
//! accounts its packets in its own flow table, and publishes its part of
//! every interval.
use super::flows::ActiveReports;
use super::{CaptureSnapshot, PortLive, Shared, Snapshot, StopReason, ABORT, FINAL_TICK, RUN};
use crate::decode::LinkType;
use crate::pipeline::dispatch::Dispatcher;
use crate::services::Transport;
use crate::source::live::{
    interface_state, wait_readable, CaptureCounters, CounterWidener, LinkError, Live, Records,
    BLOCK_TIMEOUT,
};
use crate::source::RawPacket;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Packets between two looks at the clock, the stop flags and the tick.
const CHECK_EVERY: u32 = 256;

/// How long a partial batch (and partial `-w` block) may wait for more
/// packets while the link is quiet.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// How often an idle capture asks whether its interface is still up.
const LINK_CHECK_EVERY: Duration = Duration::from_millis(200);

/// How a thread's reading ended: for a reason of its own, or because
/// another thread stopped the capture (`-c` reached, an error).
pub(super) enum Ended {
    Own(StopReason),
    Peer,
}

/// What a capture thread hands back.
pub(super) struct Done {
    pub ended: Ended,
    pub counters: CaptureCounters,
    pub link: LinkType,
    /// Its interface's name, and which of the capture's it is.
    pub interface: String,
    pub iface: u32,
    /// Long flows reported so far (`--ipfix` with an active timeout).
    pub reports: ActiveReports,
}

/// Now, in nanoseconds since the Unix epoch (the clock packets are stamped with).
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A captured packet's time in nanoseconds since the Unix epoch (`nanos`:
/// the handle gives nanoseconds in `tv_usec`).
fn packet_ns(p: &pcap::Packet, nanos: bool) -> u64 {
    let ts = p.header.ts;
    let frac = ts.tv_usec as u64 * if nanos { 1 } else { 1000 };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + frac
}

/// Where a thread's packets come from: what their records say of them.
#[derive(Debug, Clone, Copy)]
struct Origin {
    link: LinkType,
    /// Which of the capture's interfaces.
    interface: u32,
    /// The handle gives nanosecond times.
    nanos: bool,
}

/// One capture thread's state while it reads packets.
pub(super) struct CaptureLoop<'a> {
    index: usize,
    shared: &'a Shared,
    cap: pcap::Capture<pcap::Active>,
    interface: String,
    origin: Origin,
    poll: Duration,
    /// `-w` records not yet handed to the writer.
    records: Option<Records>,
    widen: CounterWidener,
    counters: CaptureCounters,
    /// The last interval published (0: none yet).
    tick: u64,
    reports: ActiveReports,
    last_flush: Instant,
    last_link_check: Instant,
}

impl<'a> CaptureLoop<'a> {
    pub fn new(index: usize, live: Live, shared: &'a Shared) -> CaptureLoop<'a> {
        let Live {
            cap,
            interface,
            link,
            poll,
            index: iface,
            nanos,
            ..
        } = live;
        CaptureLoop {
            index,
            shared,
            cap,
            interface,
            origin: Origin {
                link,
                interface: iface,
                nanos,
            },
            poll,
            records: shared
                .writer
                .as_ref()
                .map(|w| Records::new(w.lock().unwrap_or_else(|p| p.into_inner()).format())),
            widen: CounterWidener::default(),
            counters: CaptureCounters::default(),
            tick: 0,
            reports: ActiveReports::default(),
            last_flush: Instant::now(),
            last_link_check: Instant::now(),
        }
    }

    /// Captures until the capture stops, then reads what the kernel took
    /// before the stop, publishes the last stretch, and hands the `-w`
    /// records over.
    pub fn run(mut self, d: &mut Dispatcher) -> Done {
        let mut ended = match self.until_stopped(d) {
            Ended::Own(stop) => {
                // Whatever stopped this thread stops the others.
                self.shared.ended.store(true, Ordering::Relaxed);
                Ended::Own(self.read_what_came_before(d, stop))
            }
            Ended::Peer => Ended::Peer,
        };
        if let Err(e) = self.hand_over_records() {
            if !matches!(&ended, Ended::Own(s) if s.is_error()) {
                ended = Ended::Own(self.shared.write_error(e));
            }
        }
        if !matches!(ended, Ended::Own(StopReason::Aborted)) {
            // The last stretch, shown before the report.
            self.publish(d, FINAL_TICK);
        }
        if let Ok(s) = self.cap.stats() {
            self.counters = self.widen.update(&s);
        }
        Done {
            ended,
            counters: self.counters,
            link: self.origin.link,
            interface: self.interface,
            iface: self.origin.interface,
            reports: self.reports,
        }
    }

    /// Reads packets until a stop condition. Clock-driven checks run on every
    /// empty read and every [`CHECK_EVERY`] packets, not per packet: reading
    /// the clock costs more than decoding a header.
    fn until_stopped(&mut self, d: &mut Dispatcher) -> Ended {
        let mut since_check = 0u32;
        loop {
            if since_check == 0 {
                since_check = CHECK_EVERY;
                if let Some(stop) = self.check(d) {
                    return stop;
                }
            }
            since_check -= 1;
            match self.cap.next_packet() {
                Ok(p) => {
                    if !self.shared.claim() {
                        return Ended::Own(StopReason::Count);
                    }
                    let records = self.records.as_mut();
                    if let Err(e) = take(&p, self.origin, records, d, self.shared) {
                        return Ended::Own(e);
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {
                    since_check = 0;
                    if let Err(e) = self.idle(d) {
                        return Ended::Own(e);
                    }
                }
                Err(pcap::Error::NoMorePackets) => {
                    return Ended::Own(StopReason::InterfaceError("capture ended".into()))
                }
                Err(pcap::Error::PcapError(m)) => return Ended::Own(StopReason::InterfaceError(m)),
                Err(e) => return Ended::Own(StopReason::InterfaceError(e.to_string())),
            }
        }
    }

    /// The stop flags, the duration, `-c` and the other threads; on an
    /// interval's end, this thread's part of it.
    fn check(&mut self, d: &mut Dispatcher) -> Option<Ended> {
        match self.shared.control.load(Ordering::Relaxed) {
            RUN => {}
            ABORT => return Some(Ended::Own(StopReason::Aborted)),
            _ => return Some(Ended::Own(StopReason::Signal)),
        }
        let since = self.shared.started.elapsed();
        if self.shared.duration.is_some_and(|dur| since >= dur) {
            return Some(Ended::Own(StopReason::Duration));
        }
        if self.shared.count_reached() {
            return Some(Ended::Own(StopReason::Count));
        }
        if self.shared.ended.load(Ordering::Relaxed) {
            return Some(Ended::Peer);
        }
        let tick = self.shared.tick_at(since);
        if tick > self.tick {
            self.tick = tick;
            if let Err(e) = self.interval_end(d, tick) {
                return Some(Ended::Own(e));
            }
        }
        None
    }

    /// The end of interval `tick`: libpcap's counters, the partial batch
    /// accounted, `-w` records handed over and, when someone shows the
    /// capture, this thread's part of the interval.
    fn interval_end(&mut self, d: &mut Dispatcher, tick: u64) -> Result<(), StopReason> {
        self.last_flush = Instant::now();
        self.publish(d, tick);
        self.hand_over_records()
            .map_err(|e| self.shared.write_error(e))
    }

    /// This thread's part of interval `tick`, when someone shows the
    /// capture; its batch is accounted either way.
    fn publish(&mut self, d: &mut Dispatcher, tick: u64) {
        if let Ok(s) = self.cap.stats() {
            self.counters = self.widen.update(&s);
        }
        d.flush_all();
        if self.shared.ended_flows.is_some() || self.shared.observed.is_some() {
            // Flows go idle on the wall clock too, packets or not.
            let now = wall_ns();
            d.sweep_at(now);
            self.hand_on_flows(d, now);
            self.hand_on_observed(d);
        }
        let Some(tx) = &self.shared.snapshots else {
            return;
        };
        let capture = snapshot(d, self.shared.started, self.counters, self.origin.interface);
        let ports = d
            .inline_table()
            .map(|t| {
                t.ports
                    .iter()
                    .map(|(key, p)| PortLive {
                        key,
                        to_server: p.to_server,
                        to_client: p.to_client,
                        flows: p.flows,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let _ = tx.try_send(Snapshot {
            thread: self.index,
            tick,
            capture,
            ports,
        });
    }

    /// The flows that ended (and, with an active timeout, the long ones due
    /// a report) to the flow stream; lost, counted, when it is behind.
    fn hand_on_flows(&mut self, d: &mut Dispatcher, now: u64) {
        let Some(flows) = &self.shared.ended_flows else {
            return;
        };
        let mut batch = self.reports.ended(d.take_records());
        if let (Some(active), Some(t)) = (self.shared.active_ns, d.inline_table()) {
            self.reports.due(t, now, active, &mut batch.interim);
        }
        let n = batch.len() as u64;
        if !batch.is_empty() && flows.try_send(batch).is_err() {
            self.shared.flows_lost.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// What ended flows observed since the last interval, to whoever raises
    /// findings; kept for the next interval when it is behind (the report
    /// needs every part).
    fn hand_on_observed(&mut self, d: &mut Dispatcher) {
        let (Some(tx), Some(t)) = (&self.shared.observed, d.inline_table_mut()) else {
            return;
        };
        let part = t.take_observed();
        if part.is_empty() {
            return;
        }
        if let Err(e) = tx.try_send(part) {
            t.give_back(e.into_inner());
        }
    }

    /// The `-w` records gathered so far, to the shared writer.
    fn hand_over_records(&mut self) -> std::io::Result<()> {
        match &mut self.records {
            Some(r) if !r.is_empty() => self.shared.append(r),
            _ => Ok(()),
        }
    }

    /// Nothing to read: accounts and hands on partial work now and then (not
    /// on every empty read), waits for packets until the interval's end at
    /// most, and now and then asks whether the interface is still up.
    fn idle(&mut self, d: &mut Dispatcher) -> Result<(), StopReason> {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            d.flush_all();
            self.hand_over_records()
                .map_err(|e| self.shared.write_error(e))?;
            self.last_flush = Instant::now();
        }
        let until_tick = self.shared.until_tick(self.tick + 1);
        let link_error = |e: LinkError| StopReason::InterfaceError(e.to_string());
        wait_readable(&self.cap, self.poll.min(until_tick)).map_err(link_error)?;
        if self.last_link_check.elapsed() >= LINK_CHECK_EVERY {
            self.last_link_check = Instant::now();
            interface_state(&self.interface).map_err(link_error)?;
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
        let stopped = wall_ns();
        let until = Instant::now() + 3 * BLOCK_TIMEOUT;
        loop {
            if self.shared.control.load(Ordering::Relaxed) == ABORT {
                return StopReason::Aborted;
            }
            match self.cap.next_packet() {
                Ok(p) if packet_ns(&p, self.origin.nanos) > stopped => break,
                Ok(p) => {
                    if !self.shared.claim() {
                        break;
                    }
                    let records = self.records.as_mut();
                    if let Err(e) = take(&p, self.origin, records, d, self.shared) {
                        return e;
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
}

/// Takes one captured packet: keeps its `-w` record (handing a full block to
/// the writer) and accounts it.
#[inline]
fn take(
    p: &pcap::Packet,
    origin: Origin,
    records: Option<&mut Records>,
    d: &mut Dispatcher,
    shared: &Shared,
) -> Result<(), StopReason> {
    let ts_ns = packet_ns(p, origin.nanos);
    if let Some(r) = records {
        r.push(ts_ns, p.data, p.header.len);
        if r.is_full() {
            shared.append(r).map_err(|e| shared.write_error(e))?;
        }
    }
    d.packet(&RawPacket {
        link: origin.link,
        ts_ns,
        data: p.data,
        wire_len: p.header.len,
        interface: origin.interface,
    });
    Ok(())
}

/// A thread's totals and handle counters at this moment, on interface
/// `interface` (its index).
fn snapshot(
    d: &Dispatcher,
    started: Instant,
    counters: CaptureCounters,
    interface: u32,
) -> CaptureSnapshot {
    let t = d.totals();
    CaptureSnapshot {
        elapsed: started.elapsed(),
        counters,
        dropped_queue: 0,
        packets: t.packets,
        bytes: t.bytes,
        tcp_packets: t.transport(Transport::Tcp).packets,
        udp_packets: t.transport(Transport::Udp).packets,
        icmp_packets: t.icmp.packets,
        non_ip_packets: t.non_ip.packets,
        decode_errors: t.decode_error_packets,
        interface,
    }
}
