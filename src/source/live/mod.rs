//! Live capture through libpcap (the `pcap` crate): the interfaces there are,
//! opening a handle with tcpdump's settings (and several in a fanout group,
//! [`fanout`]), whether the interface is still up, the kernel's drop
//! counters, and the `-w` pcap writer.

mod counters;
pub mod fanout;
mod link;
mod rotation;
mod writer;

use crate::decode::LinkType;
use crate::source::bpf::FilterError;
use crate::source::MAX_SNAPLEN;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

pub use counters::{CaptureCounters, CounterWidener};
pub use link::{interface_state, wait_readable, LinkError};
pub use rotation::Rotation;
pub use writer::{PcapWriter, Records, WriteOutcome};

/// How to open a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name, `any`, or None for libpcap's default device.
    pub interface: Option<String>,
    pub snaplen: i32,
    /// Kernel buffer in KiB (tcpdump's `-B`).
    pub buffer_kib: i32,
    pub promisc: bool,
    pub filter: Option<String>,
    /// How long a read waits for packets before the capture loop looks at its stop conditions.
    pub poll: Duration,
    /// Nanosecond timestamps from the kernel (else microseconds, as tcpdump).
    pub nanos: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            interface: None,
            snaplen: MAX_SNAPLEN as i32,
            buffer_kib: 64 * 1024,
            promisc: true,
            filter: None,
            poll: Duration::from_millis(100),
            nanos: false,
        }
    }
}

/// Why a live capture could not start or went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveError {
    /// The interface does not exist; `available` lists those that do.
    NoSuchInterface {
        name: String,
        available: Vec<String>,
    },
    /// Opening needs privileges the process lacks.
    Permission { interface: String, message: String },
    /// The BPF expression does not compile.
    Filter(FilterError),
    /// libpcap cannot list the interfaces.
    List(String),
    /// No interface given and libpcap has no default.
    NoDefault,
    /// Any other libpcap failure.
    Pcap { interface: String, message: String },
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiveError::NoSuchInterface { name, available } => write!(
                f,
                "no interface named '{name}'; available: {} (see `portflow interfaces`)",
                available.join(", ")
            ),
            LiveError::Permission { interface, message } => write!(
                f,
                "no permission to capture on {interface} ({message}). Run as root (sudo portflow capture {interface}), \
                 or give the binary the capabilities once: sudo setcap cap_net_raw,cap_net_admin=eip \"$(command -v portflow)\""
            ),
            LiveError::Filter(e) => write!(f, "{e}"),
            LiveError::List(m) => write!(f, "cannot list the interfaces: {m}"),
            LiveError::NoDefault => write!(f, "no default interface to capture on; name one (see `portflow interfaces`)"),
            LiveError::Pcap { interface, message } => write!(f, "{interface}: {message}"),
        }
    }
}

impl std::error::Error for LiveError {}

fn pcap_message(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m.clone(),
        other => other.to_string(),
    }
}

fn is_permission(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("permission")
        || m.contains("not permitted")
        || m.contains("eperm")
        || m.contains("eacces")
}

/// One interface as `portflow interfaces` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<String>,
    pub up: bool,
    pub running: bool,
    pub loopback: bool,
    pub wireless: bool,
}

/// Interfaces libpcap can capture on.
pub fn interfaces() -> Result<Vec<InterfaceInfo>, LiveError> {
    let list = pcap::Device::list().map_err(|e| LiveError::List(pcap_message(&e)))?;
    Ok(list
        .into_iter()
        .map(|d| InterfaceInfo {
            addresses: d
                .addresses
                .iter()
                .map(|a| match a.netmask {
                    Some(m) => format!("{}/{}", a.addr, prefix_len(&m)),
                    None => a.addr.to_string(),
                })
                .collect(),
            up: d.flags.is_up(),
            running: d.flags.is_running(),
            loopback: d.flags.is_loopback(),
            wireless: d.flags.is_wireless(),
            description: d.desc,
            name: d.name,
        })
        .collect())
}

fn prefix_len(mask: &std::net::IpAddr) -> u32 {
    match mask {
        std::net::IpAddr::V4(m) => u32::from(*m).count_ones(),
        std::net::IpAddr::V6(m) => u128::from(*m).count_ones(),
    }
}

/// An open live capture (non-blocking).
pub struct Live {
    pub cap: pcap::Capture<pcap::Active>,
    pub interface: String,
    pub link: LinkType,
    pub snaplen: u32,
    pub poll: Duration,
    /// A loopback interface: the kernel counts each packet twice in
    /// `received` (going out and coming in); libpcap hands over one.
    pub loopback: bool,
    /// Which of the capture's interfaces this is (0 for the first).
    pub index: u32,
    /// Packet times come in nanoseconds (`tv_usec` holds them).
    pub nanos: bool,
}

/// Whether libpcap hands `cap`'s packet times over in nanoseconds (it may
/// refuse the precision asked for without saying so).
fn gives_nanoseconds(cap: &pcap::Capture<pcap::Active>) -> bool {
    extern "C" {
        fn pcap_get_tstamp_precision(p: *mut libc::c_void) -> libc::c_int;
    }
    const PCAP_TSTAMP_PRECISION_NANO: libc::c_int = 1;
    // SAFETY: the handle's own live pcap_t, which the call only reads.
    unsafe { pcap_get_tstamp_precision(cap.as_ptr().cast()) == PCAP_TSTAMP_PRECISION_NANO }
}

/// How long the kernel fills a block of the capture ring before handing it
/// over with what it holds (`tp_retire_blk_tov`): the most a packet waits
/// before the capture thread can read it; a stopping capture reads on for
/// three of them (`pipeline::live::capture`).
pub const BLOCK_TIMEOUT: Duration = Duration::from_millis(10);

/// Opens a capture as tcpdump would: promiscuous unless told otherwise, a large
/// kernel buffer, the filter compiled in the kernel.
///
/// Not in immediate mode: in immediate mode libpcap uses the kernel's
/// TPACKET_V2 ring, whose slots are all sized for the largest packet the
/// interface can hand over (about 64 KiB with receive offloads, as veth and
/// most NICs have), so a 64 MiB buffer holds about a thousand packets of any
/// size and a busy link overflows it whenever the capture thread waits a
/// millisecond for a core. Without it libpcap uses TPACKET_V3, which packs
/// packets into blocks by their real size (a 64 MiB buffer holds about
/// 190,000 packets of 350 bytes); a block is handed over when full or after
/// [`BLOCK_TIMEOUT`].
pub fn open(o: &LiveOptions) -> Result<Live, LiveError> {
    let name = match &o.interface {
        Some(n) => n.clone(),
        None => match pcap::Device::lookup() {
            Ok(Some(d)) => d.name,
            _ => return Err(LiveError::NoDefault),
        },
    };
    let devices = pcap::Device::list().unwrap_or_default();
    let loopback = devices
        .iter()
        .any(|d| d.name == name && d.flags.is_loopback());
    let available: Vec<String> = devices.into_iter().map(|d| d.name).collect();
    if !available.is_empty() && !available.contains(&name) {
        return Err(LiveError::NoSuchInterface { name, available });
    }
    let err = |e: pcap::Error| {
        let message = pcap_message(&e);
        if is_permission(&message) {
            LiveError::Permission {
                interface: name.clone(),
                message,
            }
        } else if message.contains("No such device") || message.contains("doesn't exist") {
            LiveError::NoSuchInterface {
                name: name.clone(),
                available: available.clone(),
            }
        } else {
            LiveError::Pcap {
                interface: name.clone(),
                message,
            }
        }
    };
    let inactive = pcap::Capture::from_device(name.as_str()).map_err(err)?;
    let mut cap = inactive
        .promisc(o.promisc)
        .snaplen(o.snaplen)
        .buffer_size(o.buffer_kib.saturating_mul(1024))
        .immediate_mode(false)
        .timeout(BLOCK_TIMEOUT.as_millis() as i32)
        .precision(if o.nanos {
            pcap::Precision::Nano
        } else {
            pcap::Precision::Micro
        })
        .open()
        .map_err(err)?;
    if o.nanos && !gives_nanoseconds(&cap) {
        return Err(LiveError::Pcap {
            interface: name.clone(),
            message: "this interface cannot give nanosecond timestamps (--nano)".into(),
        });
    }
    if let Some(f) = &o.filter {
        cap.filter(f, true).map_err(|e| {
            let link = LinkType(cap.get_datalink().0 as u32);
            LiveError::Filter(FilterError::new(f, link, pcap_message(&e)))
        })?;
    }
    // Read without blocking and wait with poll(2), which returns when the kernel
    // hands a block over, with an error on the socket, or at the wait's end (a
    // blocking read would wait for packets past any stop request).
    let cap = cap.setnonblock().map_err(err)?;
    let link = LinkType(cap.get_datalink().0 as u32);
    // DLT_RAW is 12 on Linux; files and the decoder speak LINKTYPE_RAW (101).
    let link = if link == LinkType::RAW_BSD12 {
        LinkType::RAW
    } else {
        link
    };
    Ok(Live {
        cap,
        interface: name,
        link,
        snaplen: o.snaplen.max(0) as u32,
        poll: o.poll,
        loopback,
        index: 0,
        nanos: o.nanos,
    })
}
