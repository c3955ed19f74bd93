//! The live view: per-interval rates from the capture threads' cumulative counters,
//! drawn in place on a terminal, or written as one JSON object per interval.
use super::table::{human_bytes, human_duration, thousands};
use crate::pipeline::live::{CaptureSnapshot, PortLive, Snapshot};
use crate::services::{PortClass, Services, Transport};
use crate::stats::PortKey;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// Schema name of the interval objects.
pub const INTERVAL_SCHEMA: &str = "portflow.interval/1";

/// Puts each tick's snapshots together (one from every capture thread) and
/// turns them into an interval with rates.
pub struct LiveState {
    interface: String,
    /// The interface is loopback: the kernel counts each packet twice.
    loopback: bool,
    /// Capture threads, each of which reports every tick.
    threads: usize,
    /// Ticks not yet complete, by number: what each thread sent of them.
    pending: BTreeMap<u64, HashMap<usize, Snapshot>>,
    previous_capture: CaptureSnapshot,
    /// Every port's counters over all threads at the last complete tick
    /// (the base of the next tick's rates).
    current: HashMap<PortKey, PortLive>,
}

/// One port's line in an interval.
#[derive(Debug, Clone, Serialize)]
pub struct PortRate {
    pub proto: Transport,
    pub port: u16,
    pub service: Option<String>,
    pub class: PortClass,
    pub packets_per_s: f64,
    pub bits_per_s: f64,
    pub packets: u64,
    pub bytes: u64,
    pub flows: u64,
}

/// What one interval shows; also the NDJSON object (`docs/SCHEMA.md`).
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub schema: &'static str,
    pub interface: String,
    /// The kernel counts each packet on loopback twice (going out and
    /// coming in), so `totals.counters.received` is twice what is analysed.
    pub loopback: bool,
    pub elapsed_s: f64,
    pub interval_s: f64,
    pub packets_per_s: f64,
    pub bits_per_s: f64,
    pub totals: CaptureSnapshot,
    pub ports: Vec<PortRate>,
}

impl LiveState {
    pub fn new(interface: &str, loopback: bool, threads: usize) -> LiveState {
        LiveState {
            interface: interface.to_string(),
            loopback,
            threads: threads.max(1),
            pending: BTreeMap::new(),
            previous_capture: CaptureSnapshot::default(),
            current: HashMap::new(),
        }
    }

    /// Takes a snapshot; returns the interval of its tick once every
    /// thread's part of the tick has come (an older tick still missing a part
    /// is given up).
    pub fn update(&mut self, s: Snapshot, services: &Services, top: usize) -> Option<Interval> {
        let tick = s.tick;
        let parts = self.pending.entry(tick).or_default();
        parts.insert(s.thread, s);
        if parts.len() < self.threads {
            return None;
        }
        let later = match tick.checked_add(1) {
            Some(next) => self.pending.split_off(&next),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(&mut self.pending, later)
            .remove(&tick)
            .expect("the tick just completed");
        let capture = CaptureSnapshot::combine(done.values().map(|s| &s.capture));
        let ports = done.values().flat_map(|s| &s.ports);
        Some(self.interval(capture, ports, services, top))
    }

    /// The interval that ends at `c`, with every thread's counters.
    fn interval<'a>(
        &mut self,
        c: CaptureSnapshot,
        ports: impl Iterator<Item = &'a PortLive>,
        services: &Services,
        top: usize,
    ) -> Interval {
        let dt = c
            .elapsed
            .saturating_sub(self.previous_capture.elapsed)
            .as_secs_f64()
            .max(1e-3);
        let mut now: HashMap<PortKey, PortLive> = HashMap::new();
        for p in ports {
            let e = now.entry(p.key).or_insert(PortLive {
                key: p.key,
                to_server: Default::default(),
                to_client: Default::default(),
                flows: 0,
            });
            e.to_server += p.to_server;
            e.to_client += p.to_client;
            e.flows += p.flows;
        }
        // The counters of the tick before are the rates' base.
        let before = std::mem::replace(&mut self.current, now);
        let both = |p: &PortLive| {
            let c = p.to_server.packets + p.to_client.packets;
            (c, p.to_server.bytes + p.to_client.bytes)
        };
        let mut rows: Vec<PortRate> = self
            .current
            .values()
            .map(|p| {
                let (k, (pk, by)) = (p.key, both(p));
                let (ppk, pby) = before.get(&k).map_or((0, 0), both);
                PortRate {
                    proto: k.transport,
                    port: k.port,
                    service: services.name(k.transport, k.port).map(str::to_string),
                    class: PortClass::of(k.port),
                    packets_per_s: round1(pk.saturating_sub(ppk) as f64 / dt),
                    bits_per_s: round1(by.saturating_sub(pby) as f64 * 8.0 / dt),
                    packets: pk,
                    bytes: by,
                    flows: p.flows,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.bits_per_s
                .total_cmp(&a.bits_per_s)
                .then(b.bytes.cmp(&a.bytes))
                .then((a.proto, a.port).cmp(&(b.proto, b.port)))
        });
        rows.truncate(if top == 0 { usize::MAX } else { top });
        let prev = std::mem::replace(&mut self.previous_capture, c);
        Interval {
            schema: INTERVAL_SCHEMA,
            interface: self.interface.clone(),
            loopback: self.loopback,
            elapsed_s: (c.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            interval_s: (dt * 1000.0).round() / 1000.0,
            packets_per_s: round1(c.packets.saturating_sub(prev.packets) as f64 / dt),
            bits_per_s: round1(c.bytes.saturating_sub(prev.bytes) as f64 * 8.0 / dt),
            totals: c,
            ports: rows,
        }
    }
}

impl LiveState {
    /// Every port's counters over all threads at the last complete tick
    /// (cumulative since the start).
    pub fn ports(&self) -> impl Iterator<Item = &PortLive> {
        self.current.values()
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Said beside `received` on loopback, where it is twice the packets seen.
pub const LOOPBACK_NOTE: &str =
    " (loopback: the kernel counts each packet going out and coming in)";

/// Bits per second in SI units: `12.3 Mbit/s`.
pub fn human_bits(bps: f64) -> String {
    const U: [&str; 5] = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let (mut v, mut u) = (bps, 0);
    while v >= 1000.0 && u < U.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", U[0])
    } else {
        format!("{v:.1} {}", U[u])
    }
}

/// Draws an interval as a full screen (the caller has switched to the alternate screen).
pub fn draw(i: &Interval, rows_available: usize, w: &mut dyn Write) -> io::Result<()> {
    let t = &i.totals;
    let mut out = String::new();
    out.push_str("\x1b[H\x1b[2J");
    out.push_str(&format!(
        "portflow capture on {} | {} | {} packets ({}) | now {:.0} pkt/s, {}\r\n",
        i.interface,
        if i.elapsed_s < 60.0 {
            format!("{:.0}s", i.elapsed_s)
        } else {
            human_duration(i.elapsed_s)
        },
        thousands(t.packets),
        human_bytes(t.bytes),
        i.packets_per_s,
        human_bits(i.bits_per_s)
    ));
    out.push_str(&format!(
        "tcp {} | udp {} | icmp {} | non-ip {} | decode errors {}\r\n",
        thousands(t.tcp_packets),
        thousands(t.udp_packets),
        thousands(t.icmp_packets),
        thousands(t.non_ip_packets),
        thousands(t.decode_errors)
    ));
    let drops = t.counters.dropped_kernel + t.counters.dropped_interface;
    out.push_str(&format!(
        "capture health: received {}{} | dropped by kernel {} | by interface {}{}\r\n\r\n",
        thousands(t.counters.received),
        if i.loopback { LOOPBACK_NOTE } else { "" },
        thousands(t.counters.dropped_kernel),
        thousands(t.counters.dropped_interface),
        if drops > 0 { "  << PACKETS LOST" } else { "" }
    ));
    out.push_str(&format!(
        "{:<5} {:>5}  {:<18} {:<10} {:>10} {:>13} {:>12} {:>10} {:>7}\r\n",
        "PROTO", "PORT", "SERVICE", "CLASS", "PKT/S", "RATE", "PACKETS", "BYTES", "FLOWS"
    ));
    for p in i.ports.iter().take(rows_available.saturating_sub(6).max(1)) {
        let mut svc = p.service.clone().unwrap_or_else(|| "-".into());
        svc.truncate(18);
        out.push_str(&format!(
            "{:<5} {:>5}  {:<18} {:<10} {:>10.0} {:>13} {:>12} {:>10} {:>7}\r\n",
            p.proto.as_str(),
            p.port,
            svc,
            p.class.as_str(),
            p.packets_per_s,
            human_bits(p.bits_per_s),
            thousands(p.packets),
            human_bytes(p.bytes),
            thousands(p.flows)
        ));
    }
    out.push_str("\r\nCtrl-C: stop and print the report (twice: quit at once)");
    w.write_all(out.as_bytes())?;
    w.flush()
}

/// Switches a terminal to the alternate screen and back (also on drop).
pub struct Screen {
    active: bool,
}

impl Screen {
    pub fn enter() -> Screen {
        let mut o = io::stdout();
        let _ = o.write_all(b"\x1b[?1049h\x1b[?25l");
        let _ = o.flush();
        Screen { active: true }
    }

    pub fn leave(&mut self) {
        if self.active {
            let mut o = io::stdout();
            let _ = o.write_all(b"\x1b[?25h\x1b[?1049l");
            let _ = o.flush();
            self.active = false;
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::live::FINAL_TICK;
    use crate::stats::Count;
    use std::time::Duration;

    fn ports(port: u16, packets: u64) -> Vec<PortLive> {
        vec![PortLive {
            key: PortKey {
                transport: Transport::Tcp,
                port,
            },
            to_server: Count {
                packets,
                bytes: packets * 100,
            },
            to_client: Count::default(),
            flows: 1,
        }]
    }

    /// Thread `thread`'s part of `tick`: `packets` on `port`, and
    /// `received` as its socket's count.
    fn part(thread: usize, tick: u64, port: u16, packets: u64, received: u64) -> Snapshot {
        Snapshot {
            thread,
            tick,
            capture: CaptureSnapshot {
                elapsed: Duration::from_secs(tick),
                packets,
                bytes: packets * 100,
                counters: crate::source::live::CaptureCounters {
                    received,
                    dropped_kernel: 1,
                    dropped_interface: 3,
                },
                ..CaptureSnapshot::default()
            },
            ports: ports(port, packets),
        }
    }

    #[test]
    fn an_interval_waits_for_every_thread_and_adds_their_parts() {
        let services = Services::iana();
        let mut s = LiveState::new("lo", true, 2);
        assert!(s.update(part(1, 1, 443, 10, 20), &services, 10).is_none());
        // A part of the next tick comes before the last part of this one.
        assert!(s.update(part(1, 2, 443, 15, 30), &services, 10).is_none());
        let i = s
            .update(part(0, 1, 80, 20, 40), &services, 10)
            .expect("tick 1 complete");
        // The rows count the same packets as the header.
        assert_eq!(i.totals.packets, 30);
        assert_eq!(i.ports.iter().map(|p| p.packets).sum::<u64>(), 30);
        // Sockets add their counts; the interface's drops are counted once.
        assert_eq!(i.totals.counters.received, 60);
        assert_eq!(i.totals.counters.dropped_kernel, 2);
        assert_eq!(i.totals.counters.dropped_interface, 3);
        assert!(i.loopback);
        let i = s
            .update(part(0, 2, 80, 25, 50), &services, 10)
            .expect("tick 2 complete");
        assert_eq!(i.totals.packets, 40);
        assert_eq!(i.ports.iter().map(|p| p.packets).sum::<u64>(), 40);
        assert_eq!(i.packets_per_s, 10.0);
        let https = i.ports.iter().find(|p| p.port == 443).unwrap();
        assert_eq!(https.packets_per_s, 5.0);
        // The last stretch, numbered past every other tick, completes too.
        assert!(s
            .update(part(1, FINAL_TICK, 443, 16, 32), &services, 10)
            .is_none());
        let last = s
            .update(part(0, FINAL_TICK, 80, 26, 52), &services, 10)
            .expect("the final tick");
        assert_eq!(last.totals.packets, 42);
    }

    #[test]
    fn a_tick_that_completes_gives_up_older_incomplete_ones() {
        let services = Services::iana();
        let mut s = LiveState::new("eth0", false, 2);
        assert!(s.update(part(0, 1, 22, 5, 5), &services, 10).is_none());
        assert!(s.update(part(0, 2, 22, 9, 9), &services, 10).is_none());
        let i = s.update(part(1, 2, 22, 1, 1), &services, 10).unwrap();
        assert_eq!(i.totals.packets, 10);
        // Tick 1's late part completes nothing.
        assert!(s.update(part(1, 1, 22, 0, 0), &services, 10).is_none());
    }
}
