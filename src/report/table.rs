//! The human table: a summary header, then the top ports by bytes, aligned.
use super::{OpenPortReport, PortReport, Report};
use crate::pipeline::live::{LiveSummary, StopReason};
use std::io::{self, Write};

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 flow`, `1,234 flows`.
pub fn plural(n: u64, one: &str) -> String {
    format!("{} {one}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// Bytes in SI units, as network tools count them: `1.5 MB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds as `6.789s`, `4m 05s`, `1h 02m 03s`, `3d 04h 05m` or, past a year
/// (365 days), `36y 238d 02h`.
pub fn human_duration(s: f64) -> String {
    const DAY: u64 = 86_400;
    const YEAR: u64 = 365 * DAY;
    if s < 60.0 {
        return format!("{s:.3}s");
    }
    let t = s.round() as u64;
    if t < 3600 {
        format!("{}m {:02}s", t / 60, t % 60)
    } else if t < DAY {
        format!("{}h {:02}m {:02}s", t / 3600, t / 60 % 60, t % 60)
    } else if t < YEAR {
        format!("{}d {:02}h {:02}m", t / DAY, t / 3600 % 24, t / 60 % 60)
    } else {
        format!("{}y {}d {:02}h", t / YEAR, t % YEAR / DAY, t / 3600 % 24)
    }
}

fn micros(v: u64) -> String {
    if v >= 1_000_000 {
        format!("{:.2}s", v as f64 / 1e6)
    } else if v >= 1000 {
        format!("{:.1}ms", v as f64 / 1000.0)
    } else {
        format!("{v}us")
    }
}

/// How many rows `--top` shows (0 = all).
fn shown(top: usize) -> usize {
    if top == 0 {
        usize::MAX
    } else {
        top
    }
}

/// Writes the table; `top` limits the port rows (0 = all).
pub fn write_table(r: &Report, top: usize, w: &mut dyn Write) -> io::Result<()> {
    write_summary(r, w)?;
    if let Some(t) = r.timeline.as_ref().filter(|t| t.buckets.len() > 1) {
        writeln!(
            w,
            "packets over time ({} buckets of {}): {}",
            t.buckets.len(),
            t.width_text(),
            t.sparkline(60)
        )?;
    }
    if let Some(l) = &r.live {
        write_capture(l, w)?;
    }
    for i in &r.inputs {
        if let Some(e) = &i.error {
            writeln!(w, "error: {e}")?;
        }
        if let Some(e) = &i.warning {
            writeln!(w, "warning: {e}")?;
        }
    }
    writeln!(w)?;
    let any = write_ports(r, top, w)?;
    write_probes(r, top, w)?;
    if !any && r.probed_only_ports == 0 {
        return Ok(());
    }
    write_findings(r, w)?;
    write_open_ports(r, top, w)?;
    write_closed(r, top, w)?;
    write_key(r, w)
}

/// What the words of this table mean, for those it used.
fn write_key(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    let mut key = Vec::new();
    if r.ports.iter().any(|p| p.handshake_rtt_us.is_some()) {
        key.push("HANDSHAKE RTT = from a client's SYN to the server's SYN-ACK, seen here");
    }
    if !r.services.is_empty() {
        key.push(
            "EVIDENCE: handshake = the server answered a SYN; answered = it answered a UDP, \
             SCTP or DCCP datagram; midstream = a TCP flow already under way showed traffic \
             from its side",
        );
    }
    if r.totals.unattributed_packets > 0 {
        key.push(
            "unattributed = packets that reached no port: a link or transport header cut \
             short or not decoded, a later IP fragment whose first fragment was not seen",
        );
    }
    if key.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    for k in key {
        writeln!(w, "key: {k}")?;
    }
    Ok(())
}

/// The summary lines: input, packets, span; packets by kind; then what is
/// worth a line only when it happened.
fn write_summary(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    let t = &r.totals;
    let files = r.inputs.len();
    let source = match &r.live {
        Some(l) => format!("capture on {}", l.interface),
        None => format!("{} input{}", files, if files == 1 { "" } else { "s" }),
    };
    writeln!(
        w,
        "portflow {} | {} | {} packets | {} | {}",
        r.generator.version,
        source,
        thousands(t.packets),
        human_bytes(t.bytes),
        match (&r.capture.first_seen, &r.capture.last_seen) {
            (Some(a), Some(b)) => format!("{a} .. {b} ({})", human_duration(r.capture.duration_s)),
            _ => "no timestamps".to_string(),
        }
    )?;
    writeln!(
        w,
        "tcp {} ({}) | udp {} ({}) | icmp {} | other ip {} | non-ip {} | flows {} | decode errors {} | unattributed {}",
        thousands(t.tcp_packets),
        human_bytes(t.tcp_bytes),
        thousands(t.udp_packets),
        human_bytes(t.udp_bytes),
        thousands(t.icmp_packets),
        thousands(t.other_ip_packets),
        thousands(t.non_ip_packets),
        thousands(r.flows.total),
        thousands(t.decode_errors),
        thousands(t.unattributed_packets),
    )?;
    let extra = notable(r);
    if !extra.is_empty() {
        writeln!(w, "{}", extra.join(" | "))?;
    }
    if !t.decode_error_detail.is_empty() {
        let list: Vec<String> = t
            .decode_error_detail
            .iter()
            .map(|e| format!("{}/{} {}", e.layer, e.reason, thousands(e.packets)))
            .collect();
        writeln!(w, "decode errors by layer: {}", list.join(", "))?;
    }
    Ok(())
}

/// What the summary mentions only when it happened: filtering, fragments,
/// tunnels, snaplen cuts, full tables.
fn notable(r: &Report) -> Vec<String> {
    let t = &r.totals;
    let mut extra = Vec::new();
    if t.filtered_out > 0 {
        extra.push(format!("filtered out {}", thousands(t.filtered_out)));
    }
    if t.fragments.packets > 0 {
        extra.push(format!(
            "fragments {} ({} unattributed)",
            thousands(t.fragments.packets),
            thousands(t.fragments.unattributed)
        ));
    }
    if !t.tunnels.is_empty() {
        let list: Vec<String> = t
            .tunnels
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect();
        extra.push(format!("tunnels: {}", list.join(", ")));
    }
    if t.truncated_by_snaplen > 0 {
        extra.push(format!(
            "cut by snaplen {}",
            thousands(t.truncated_by_snaplen)
        ));
    }
    if r.flows.attempts_not_examined > 0 {
        extra.push(format!(
            "failed attempts not examined for scans (list full) {}",
            thousands(r.flows.attempts_not_examined)
        ));
    }
    if r.flows.evicted > 0 {
        extra.push(format!(
            "flows evicted (table full) {}",
            thousands(r.flows.evicted)
        ));
    }
    extra
}

/// A live capture's health line, and where its packets were written.
fn write_capture(l: &LiveSummary, w: &mut dyn Write) -> io::Result<()> {
    writeln!(
        w,
        "capture on {} ({}), {}: received {}{} | dropped by kernel {}{} | by interface {} | {} | stopped by {}",
        l.interface,
        l.link_type,
        human_duration(l.duration_s),
        thousands(l.counters.received),
        if l.loopback { super::live::LOOPBACK_NOTE } else { "" },
        thousands(l.counters.dropped_kernel),
        per_thread_drops(l),
        thousands(l.counters.dropped_interface),
        match l.threads {
            1 => "1 capture thread".to_string(),
            n => format!("{n} capture threads"),
        },
        match &l.stopped_by {
            StopReason::Signal => "signal".to_string(),
            StopReason::Count => "packet count (-c)".to_string(),
            StopReason::Duration => "duration (-d)".to_string(),
            StopReason::Aborted => "second Ctrl-C".to_string(),
            StopReason::InterfaceError(m) => format!("interface error: {m}"),
            StopReason::WriteError(m) => format!("write error: {m}"),
        }
    )?;
    if let Some(f) = &l.written {
        match l.written_files {
            0 | 1 => writeln!(w, "written: {f} ({} packets)", thousands(l.written_packets))?,
            n => writeln!(
                w,
                "written: {} packets in {n} files, the last {f}",
                thousands(l.written_packets)
            )?,
        }
    }
    Ok(())
}

/// Each capture thread's kernel drops, when there are several and any dropped.
fn per_thread_drops(l: &LiveSummary) -> String {
    if l.sockets.len() < 2 || l.counters.dropped_kernel == 0 {
        return String::new();
    }
    let each: Vec<String> = l
        .sockets
        .iter()
        .map(|s| thousands(s.dropped_kernel))
        .collect();
    format!(" (by thread: {})", each.join(", "))
}

/// The port table; false when there was no port traffic (nothing follows).
fn write_ports(r: &Report, top: usize, w: &mut dyn Write) -> io::Result<bool> {
    let header = [
        "PROTO",
        "PORT",
        "SERVICE",
        "CLASS",
        "PACKETS",
        "BYTES",
        "TO SERVER",
        "TO CLIENT",
        "FLOWS",
        "CLIENTS",
        "SERVERS",
        "SIZE p50/p99",
        "HANDSHAKE RTT p50/p99",
    ];
    let rows: Vec<[String; 13]> = r.ports.iter().take(shown(top)).map(port_cells).collect();
    if rows.is_empty() {
        writeln!(w, "no port traffic")?;
        return Ok(false);
    }
    // Text columns left-aligned, numbers right-aligned.
    let left = [
        true, false, true, true, false, false, false, false, false, false, false, false, false,
    ];
    let header = header.map(String::from);
    for line in aligned(&header, &rows, &left) {
        writeln!(w, "{line}")?;
    }
    if top != 0 && r.ports_total > top {
        writeln!(
            w,
            "... {} more ports (--top 0 shows all)",
            thousands((r.ports_total - top) as u64)
        )?;
    }
    Ok(true)
}

/// The ports only probes reached, folded: how many, then one line per
/// source and target that tried several (as many as the port rows).
fn write_probes(r: &Report, top: usize, w: &mut dyn Write) -> io::Result<()> {
    if r.probed_only_ports == 0 {
        return Ok(());
    }
    writeln!(
        w,
        "\nports only probed (no server answered; not in the rows above): {}",
        thousands(r.probed_only_ports as u64)
    )?;
    for p in r.probes.iter().take(shown(top)) {
        let how = match (p.refused, p.unanswered) {
            (_, 0) => "all refused".to_string(),
            (0, _) => "none answered".to_string(),
            (r, u) => format!("{} refused, {} unanswered", thousands(r), thousands(u)),
        };
        writeln!(
            w,
            "  {} -> {}: {} {} ports probed, {how}",
            p.src,
            p.dst,
            thousands(p.ports),
            p.proto.as_str()
        )?;
    }
    if top != 0 && r.probes.len() > top {
        writeln!(
            w,
            "  ... {} more sources and targets (--top 0 shows all)",
            thousands((r.probes.len() - top) as u64)
        )?;
    }
    Ok(())
}

/// One port's cells in the table.
fn port_cells(p: &PortReport) -> [String; 13] {
    [
        p.proto.as_str().to_string(),
        p.port.to_string(),
        p.service.clone().unwrap_or_else(|| "-".into()),
        p.class.as_str().to_string(),
        thousands(p.packets),
        human_bytes(p.bytes),
        human_bytes(p.to_server.bytes),
        human_bytes(p.to_client.bytes),
        thousands(p.flows),
        thousands(p.clients),
        thousands(p.servers),
        p.packet_size
            .map(|s| format!("{}/{}", s.p50, s.p99))
            .unwrap_or_else(|| "-".into()),
        p.handshake_rtt_us
            .map(|s| format!("{}/{}", micros(s.p50), micros(s.p99)))
            .unwrap_or_else(|| "-".into()),
    ]
}

/// The header and rows as lines, each column as wide as its widest cell;
/// `left` columns are aligned left (and the last one is not padded).
pub fn aligned<const N: usize>(
    header: &[String; N],
    rows: &[[String; N]],
    left: &[bool; N],
) -> Vec<String> {
    let mut width = [0; N];
    for row in std::iter::once(header).chain(rows) {
        for (i, c) in row.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String; N]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = width[i] - c.chars().count();
            if left[i] {
                s.push_str(c);
                if i + 1 < N {
                    s.push_str(&" ".repeat(pad));
                }
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s
    };
    std::iter::once(header).chain(rows).map(line).collect()
}

fn write_findings(r: &Report, w: &mut dyn Write) -> io::Result<()> {
    if r.findings.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(w, "findings: {}", thousands(r.findings.len() as u64))?;
    for f in &r.findings {
        writeln!(w, "  {:<6}  {:<16} {}", f.severity, f.kind, f.detail)?;
    }
    Ok(())
}

/// The open ports with the most bytes, as many as the port table's rows.
fn write_open_ports(r: &Report, top: usize, w: &mut dyn Write) -> io::Result<()> {
    if r.services.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(
        w,
        "open ports seen serving: {}",
        thousands(r.services_total as u64)
    )?;
    let mut by_bytes: Vec<&OpenPortReport> = r.services.iter().collect();
    // A total order (host, proto and port name one row), so picking the
    // shown rows before sorting them gives what a full sort would.
    let order = |a: &&OpenPortReport, b: &&OpenPortReport| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.host.cmp(&b.host))
            .then(a.port.cmp(&b.port))
            .then(a.proto.cmp(&b.proto))
    };
    let shown = by_bytes.len().min(shown(top));
    if shown > 0 && shown < by_bytes.len() {
        by_bytes.select_nth_unstable_by(shown - 1, order);
        by_bytes.truncate(shown);
    }
    by_bytes.sort_unstable_by(order);
    let header = [
        "HOST", "PORT", "SERVICE", "DETECTED", "EVIDENCE", "FLOWS", "CLIENTS", "BYTES", "NAME",
    ]
    .map(String::from);
    let rows: Vec<[String; 9]> = by_bytes
        .iter()
        .map(|o| {
            [
                o.host.clone(),
                format!("{}/{}", o.proto, o.port),
                o.service.clone().unwrap_or_else(|| "-".into()),
                o.detected.unwrap_or("-").to_string(),
                o.evidence.join(","),
                thousands(o.flows),
                thousands(o.clients),
                human_bytes(o.bytes),
                name_cell(&o.names),
            ]
        })
        .collect();
    let left = [true, true, true, true, true, false, false, false, true];
    for line in aligned(&header, &rows, &left) {
        writeln!(w, "  {line}")?;
    }
    if shown < r.services_total {
        writeln!(
            w,
            "  ... {} more (the JSON report lists all)",
            thousands((r.services_total - shown) as u64)
        )?;
    }
    Ok(())
}

/// The first name seen for a host, and how many more: `www.example.org (+2)`.
fn name_cell(names: &[super::NameRow]) -> String {
    match names {
        [] => "-".into(),
        [one] => one.name.clone(),
        [first, rest @ ..] => format!("{} (+{})", first.name, rest.len()),
    }
}

/// Closed-port attempts in all, and the ports ICMP said were closed.
fn write_closed(r: &Report, top: usize, w: &mut dyn Write) -> io::Result<()> {
    if !r.closed_port_attempts.is_empty() {
        let (tcp, udp): (u64, u64) = r.closed_port_attempts.iter().fold((0, 0), |a, c| {
            (a.0 + c.tcp_rejected, a.1 + c.udp_unreachable)
        });
        writeln!(
            w,
            "closed-port attempts: {} TCP refused with RST, {} ICMP port unreachable, on {} host(s)",
            thousands(tcp),
            thousands(udp),
            thousands(r.closed_port_attempts.len() as u64)
        )?;
    }
    if r.closed_ports.is_empty() {
        return Ok(());
    }
    writeln!(w)?;
    writeln!(
        w,
        "closed ports (ICMP port unreachable): {}",
        thousands(r.closed_ports.len() as u64)
    )?;
    for c in r.closed_ports.iter().take(shown(top)) {
        writeln!(
            w,
            "  {}/{} on {} ({}): {}",
            c.proto,
            c.port,
            c.host,
            c.service.as_deref().unwrap_or("-"),
            thousands(c.unreachable)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(2_000_000_000), "2.0 GB");
        assert_eq!(human_duration(61.0), "1m 01s");
        assert_eq!(human_duration(3723.0), "1h 02m 03s");
        assert_eq!(human_duration(86_399.0), "23h 59m 59s");
        assert_eq!(
            human_duration(3.0 * 86_400.0 + 4.0 * 3600.0 + 5.0 * 60.0),
            "3d 04h 05m"
        );
        // The 36-year span that printed as "321266h 56m 54s".
        assert_eq!(
            human_duration(321_266.0 * 3600.0 + 56.0 * 60.0 + 54.0),
            "36y 246d 02h"
        );
    }
}
