//! Live capture through libpcap (the `pcap` crate): interfaces, opening a
//! handle with tcpdump's settings, kernel/interface drop counters, and the
//! `-w` pcap writer.
use super::pcap_format::{PcapFormat, MAX_SNAPLEN, RECORD_HEADER};
use crate::decode::LinkType;
use serde::Serialize;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    Filter(String),
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
            LiveError::Filter(m) => write!(f, "bad filter expression: {m}"),
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
pub fn interfaces() -> Result<Vec<InterfaceInfo>, String> {
    let list = pcap::Device::list().map_err(|e| pcap_message(&e))?;
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
}

/// Waits until the capture has packets to read, or `timeout` passes. An error
/// on the socket (the interface went down or was removed) is returned as a message.
pub fn wait_readable(cap: &pcap::Capture<pcap::Active>, timeout: Duration) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let fd = cap.as_raw_fd();
    let mut fds = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the descriptor is
    // the capture's own and stays open while `cap` is borrowed.
    let n = unsafe {
        libc::poll(
            &mut fds,
            1,
            timeout.as_millis().min(i32::MAX as u128) as i32,
        )
    };
    if n > 0 && fds.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes of the sizes given.
        unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            );
        }
        return Err(match err {
            libc::ENETDOWN => "the interface went down".to_string(),
            libc::ENODEV | libc::ENXIO => "the interface was removed".to_string(),
            0 => "the capture socket reported an error".to_string(),
            e => std::io::Error::from_raw_os_error(e).to_string(),
        });
    }
    Ok(())
}

/// Whether interface `name` is up, from its flags (`SIOCGIFFLAGS`, in the
/// capture's own network namespace); `Err` with a message when it is down or
/// gone. libpcap may read and clear the socket error that reports an interface
/// going down (it treats ENETDOWN as "no packets"), so the capture loop also
/// asks the kernel now and then. `any` and names too long for the call count as up.
pub fn interface_state(name: &str) -> Result<(), String> {
    if name == "any" || name.len() >= libc::IFNAMSIZ {
        return Ok(());
    }
    // SAFETY: a plain datagram socket, closed below; `req` is a zeroed ifreq
    // whose name holds at most IFNAMSIZ-1 bytes and a NUL (checked above).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Ok(());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        let r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return match err.raw_os_error() {
                Some(libc::ENODEV) | Some(libc::ENXIO) => Err("the interface was removed".into()),
                _ => Ok(()),
            };
        }
        if req.ifr_ifru.ifru_flags as libc::c_int & libc::IFF_UP == 0 {
            return Err("the interface went down".into());
        }
    }
    Ok(())
}

/// How long the kernel fills a block of the capture ring before handing it
/// over with what it holds (`tp_retire_blk_tov`): the most a packet waits
/// before the capture thread can read it; a stopping capture reads on for
/// three of them (`pipeline::live::capture`).
pub const BLOCK_TIMEOUT: Duration = Duration::from_millis(10);

/// Opens a capture as tcpdump would: promiscuous unless told otherwise, a large
/// kernel buffer, the filter compiled in the kernel.
///
/// Not in immediate mode: libpcap then uses the kernel's TPACKET_V2 ring,
/// whose slots are all sized for the largest packet the interface can hand
/// over (about 64 KiB on an Ethernet interface with receive offloads, as veth
/// and most NICs have), so a 64 MiB buffer held about a thousand packets of any
/// size, a millisecond and a half at 700,000 packets/s, and the capture
/// dropped packets whenever its thread waited that long for a core. Without
/// immediate mode libpcap uses TPACKET_V3, which packs packets into blocks by
/// their real size (a 64 MiB buffer holds about 190,000 packets of 350 bytes);
/// a block is handed over when full or after [`BLOCK_TIMEOUT`].
pub fn open(o: &LiveOptions) -> Result<Live, LiveError> {
    let name = match &o.interface {
        Some(n) => n.clone(),
        None => match pcap::Device::lookup() {
            Ok(Some(d)) => d.name,
            _ => return Err(LiveError::NoDefault),
        },
    };
    let available = pcap::Device::list()
        .map(|l| l.into_iter().map(|d| d.name).collect::<Vec<_>>())
        .unwrap_or_default();
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
        .open()
        .map_err(err)?;
    if let Some(f) = &o.filter {
        cap.filter(f, true)
            .map_err(|e| LiveError::Filter(pcap_message(&e)))?;
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
    })
}

/// Kernel counters of a live capture, widened to 64 bits (libpcap's are 32-bit and wrap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureCounters {
    /// Packets the kernel passed to the capture (after the filter).
    pub received: u64,
    /// Dropped because the kernel buffer was full (portflow did not read fast enough).
    pub dropped_kernel: u64,
    /// Dropped by the interface or its driver.
    pub dropped_interface: u64,
}

/// Turns successive 32-bit readings into 64-bit totals.
#[derive(Debug, Default)]
pub struct CounterWidener {
    last: [u32; 3],
    total: [u64; 3],
}

impl CounterWidener {
    pub fn update(&mut self, s: &pcap::Stat) -> CaptureCounters {
        for (i, v) in [s.received, s.dropped, s.if_dropped]
            .into_iter()
            .enumerate()
        {
            self.total[i] += v.wrapping_sub(self.last[i]) as u64;
            self.last[i] = v;
        }
        CaptureCounters {
            received: self.total[0],
            dropped_kernel: self.total[1],
            dropped_interface: self.total[2],
        }
    }
}

/// `-w`: a pcap file written under a temporary name and renamed into place when
/// closed, so the named file is always complete. Records go to the file whole:
/// when a write fails (disk full, I/O error), the file is cut back to the last
/// whole record and still renamed into place, so what was written stays readable.
pub struct PcapWriter {
    file: std::fs::File,
    /// Whole records not yet written.
    buf: Vec<u8>,
    /// Bytes of the file that hold the header and whole records.
    on_disk: u64,
    tmp: PathBuf,
    dest: PathBuf,
    /// Packets in the file or in `buf`.
    pub packets: u64,
    packets_on_disk: u64,
    /// The first write error; nothing more is written after it.
    failed: Option<std::io::Error>,
}

/// Bytes buffered before a write.
const WRITE_BUFFER: usize = 1 << 20;

/// How closing a `-w` file went.
#[derive(Debug)]
pub struct WriteOutcome {
    /// Where the packets are: the named file, or the temporary one when the
    /// rename failed.
    pub path: PathBuf,
    /// Whole packets in that file.
    pub packets: u64,
    pub error: Option<String>,
}

impl PcapWriter {
    pub fn create(dest: &Path, link: LinkType, snaplen: u32) -> std::io::Result<PcapWriter> {
        let name = dest
            .file_name()
            .ok_or_else(|| std::io::Error::other("not a file name"))?;
        let tmp = dest.with_file_name(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mut file = std::fs::File::create(&tmp)?;
        let h = PcapFormat::CLASSIC.header(link, snaplen.max(1));
        if let Err(e) = file.write_all(&h) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(PcapWriter {
            file,
            buf: Vec::with_capacity(WRITE_BUFFER + 65_536),
            on_disk: h.len() as u64,
            tmp,
            dest: dest.to_path_buf(),
            packets: 0,
            packets_on_disk: 0,
            failed: None,
        })
    }

    /// Appends one record, stamped `ts_ns` (written in microseconds). After a
    /// write error every call fails with it.
    #[inline]
    pub fn write(&mut self, ts_ns: u64, data: &[u8], wire_len: u32) -> std::io::Result<()> {
        if let Some(e) = &self.failed {
            return Err(std::io::Error::new(e.kind(), e.to_string()));
        }
        PcapFormat::CLASSIC.record(&mut self.buf, ts_ns, data, wire_len);
        self.packets += 1;
        if self.buf.len() >= WRITE_BUFFER {
            self.write_buffer()?;
        }
        Ok(())
    }

    /// Writes the buffered records; on an error cuts the file back to the last
    /// whole record and remembers the error.
    fn write_buffer(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        while done < self.buf.len() {
            match self.file.write(&self.buf[done..]) {
                Ok(0) => {
                    return self.fail(done, std::io::ErrorKind::WriteZero.into());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(done, e),
            }
        }
        self.on_disk += self.buf.len() as u64;
        self.packets_on_disk = self.packets;
        self.buf.clear();
        Ok(())
    }

    fn fail(&mut self, written: usize, e: std::io::Error) -> std::io::Result<()> {
        // The records of `buf` that made it to the file whole.
        let (mut at, mut whole) = (0usize, 0u64);
        while at + RECORD_HEADER <= written {
            let header = self.buf[at..at + RECORD_HEADER]
                .try_into()
                .expect("a record header");
            let end = at + RECORD_HEADER + PcapFormat::CLASSIC.caplen(&header) as usize;
            if end > written {
                break;
            }
            at = end;
            whole += 1;
        }
        self.on_disk += at as u64;
        self.packets_on_disk += whole;
        self.packets = self.packets_on_disk;
        self.buf.clear();
        let _ = self.file.set_len(self.on_disk);
        let err = std::io::Error::new(e.kind(), e.to_string());
        self.failed = Some(e);
        Err(err)
    }

    /// Writes what is buffered, syncs, and renames the file into place. After
    /// a write error the whole records written are still kept under the name;
    /// if the rename itself fails, they stay under the temporary name.
    pub fn finish(mut self) -> WriteOutcome {
        if self.failed.is_none() {
            let _ = self.write_buffer();
        }
        let mut error = self.failed.as_ref().map(|e| e.to_string());
        if let Err(e) = self.file.sync_all() {
            error.get_or_insert(e.to_string());
        }
        let tmp = std::mem::take(&mut self.tmp);
        let path = match std::fs::rename(&tmp, &self.dest) {
            Ok(()) => self.dest.clone(),
            Err(e) => {
                error.get_or_insert(format!(
                    "cannot rename {} to {}: {e}",
                    tmp.display(),
                    self.dest.display()
                ));
                tmp
            }
        };
        WriteOutcome {
            path,
            packets: self.packets_on_disk,
            error,
        }
    }
}

impl Drop for PcapWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_widen_across_wrap() {
        let mut w = CounterWidener::default();
        let st = |r| pcap::Stat {
            received: r,
            dropped: 0,
            if_dropped: 0,
        };
        assert_eq!(w.update(&st(u32::MAX - 5)).received, (u32::MAX - 5) as u64);
        assert_eq!(w.update(&st(10)).received, u32::MAX as u64 + 11);
    }

    #[test]
    fn writer_output_reads_back() {
        let dir = std::env::temp_dir().join(format!("portflow-w-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.pcap");
        let mut w = PcapWriter::create(&dest, LinkType::ETHERNET, 65535).unwrap();
        assert!(
            !dest.exists(),
            "only the temporary name exists while writing"
        );
        let frame = portflow_synth::build::eth_ip(&portflow_synth::build::udp(
            portflow_synth::build::v4(1, 1, 1, 1),
            1,
            portflow_synth::build::v4(2, 2, 2, 2),
            2,
            b"x",
        ));
        w.write(1_000_002_000, &frame, frame.len() as u32).unwrap();
        let done = w.finish();
        assert_eq!((done.path.as_path(), done.packets), (&*dest, 1));
        assert!(done.error.is_none());
        let mut n = 0;
        crate::source::read_capture(
            &crate::source::Input::Path(dest.clone()),
            std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
            &mut |p| {
                n += 1;
                assert_eq!(p.data, &frame[..]);
                assert_eq!(p.ts_ns, 1_000_002_000);
            },
        )
        .unwrap();
        assert_eq!(n, 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
