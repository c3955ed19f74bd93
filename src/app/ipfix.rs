//! `read --ipfix HOST:PORT`: the flows of the analysis sent to a collector
//! as IPFIX over UDP (`report::ipfix` builds the messages). The destination
//! is resolved and the socket connected before any reading, so a name that
//! does not resolve or a network that cannot be reached is one line and
//! status 2 before any work. Messages are paced (a collector's socket buffer
//! would overflow under a burst of thousands), and every message the kernel
//! refuses (a collector that is not listening answers with ICMP port
//! unreachable) is counted and reported.
use super::AppError;
use portflow::report::ipfix::Exporter;
use portflow::stats::flow::FlowRecord;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Messages sent between two short pauses.
const BURST: u32 = 32;
/// The pause: about 6,000 messages (8 MB) a second.
const PAUSE: Duration = Duration::from_millis(5);
/// The observation domain of portflow's messages.
pub const DOMAIN: u32 = 1;

/// Now, in seconds since the Unix epoch (a message's export time).
pub fn now_s() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// A UDP socket connected to the collector `spec` names.
pub struct Collector {
    socket: UdpSocket,
    addr: SocketAddr,
}

/// Resolves `spec` (`HOST:PORT`, `[V6]:PORT`) and connects to it.
pub fn connect(spec: &str) -> Result<Collector, AppError> {
    let bad = |why: String| AppError::Usage(format!("--ipfix {spec}: {why}"));
    let addr = spec
        .to_socket_addrs()
        .map_err(|e| {
            bad(format!(
                "cannot resolve it ({e}); give HOST:PORT or [V6]:PORT"
            ))
        })?
        .next()
        .ok_or_else(|| bad("the name has no address".into()))?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|e| bad(format!("cannot open a socket: {e}")))?;
    socket
        .connect(addr)
        .map_err(|e| bad(format!("cannot reach {addr}: {e}")))?;
    Ok(Collector { socket, addr })
}

/// How an export went.
#[derive(Default)]
pub struct Sent {
    pub records: u32,
    pub messages: u32,
    /// Messages the kernel refused, and the first error.
    pub failed: u32,
    pub error: Option<std::io::Error>,
}

impl Collector {
    /// Sends every flow's records.
    pub fn export(&self, flows: &[FlowRecord]) -> Sent {
        let now = now_s();
        let mut e = Exporter::new(DOMAIN);
        let mut sent = Sent::default();
        let mut send = |m: &[u8]| {
            self.send(m, &mut sent);
            if sent.messages.is_multiple_of(BURST) {
                std::thread::sleep(PAUSE);
            }
        };
        for f in flows {
            e.add(f, now, &mut send);
        }
        e.flush(now, &mut send);
        sent.records = e.records();
        sent
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends one message and counts it in `sent` (with a non-blocking
    /// socket, a full buffer loses it, counted as failed).
    pub fn send(&self, m: &[u8], sent: &mut Sent) {
        sent.messages += 1;
        if let Err(e) = self.socket.send(m) {
            sent.failed += 1;
            sent.error.get_or_insert(e);
        }
    }

    /// Sends without waiting from now on.
    pub fn nonblocking(self) -> std::io::Result<Collector> {
        self.socket.set_nonblocking(true)?;
        Ok(self)
    }
}
