//! Several capture handles on one interface sharing its packets: a Linux
//! `PACKET_FANOUT` group in hash mode, so that the kernel hands every packet
//! of a flow, both directions, to the same handle (its flow hash is
//! symmetric), and each handle's thread can account its own flows alone.
//!
//! libpcap has no call for it; the option is set on the socket of the
//! handle libpcap opened (after `pcap_activate`, which binds it to the
//! interface), as `tcpdump`'s and Suricata's fanout patches do. Each handle
//! keeps its own ring, filter and drop counters; the kernel buffer asked for
//! is shared out between the rings.
//!
//! The kernel hashes the fragments of an IP datagram on its addresses alone
//! (it has no ports for them), so they all go to one handle, where the later
//! fragments are attributed to the first one's ports as in a file. That
//! handle need not be the one the flow's whole packets go to: a flow that
//! mixes fragmented and whole datagrams (a large DNS answer to a small
//! query) can be counted as two flows, its packets and bytes still on the
//! right port. Defragmentation in the kernel (`PACKET_FANOUT_FLAG_DEFRAG`)
//! would avoid that but hand over reassembled datagrams instead of the
//! packets on the wire, so it is not used.
use super::{open, Live, LiveError, LiveOptions};
use std::io;
use std::os::unix::io::AsRawFd;

/// The fanout group of this process's `index`th interface: group ids are
/// per network namespace, a group holds one interface's sockets, and two
/// captures of the same interface must not share one.
pub fn group_id(index: u32) -> u16 {
    ((std::process::id() & 0xffff) as u16).wrapping_add((index as u16).wrapping_mul(0x1000))
}

/// Puts `cap`'s socket into fanout group `group` (hash mode).
pub fn join(cap: &pcap::Capture<pcap::Active>, group: u16) -> io::Result<()> {
    let mode = libc::PACKET_FANOUT_HASH;
    let arg = (group as u32 | mode << 16) as libc::c_int;
    // SAFETY: setsockopt on the handle's own open socket with a pointer to a
    // live c_int and its size; the kernel only reads it.
    let r = unsafe {
        libc::setsockopt(
            cap.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&arg as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The least kernel buffer each handle of a group gets, in KiB.
const MIN_RING_KIB: i32 = 4 * 1024;

/// Opens `n` captures of one interface as [`open`] does, in one fanout
/// group when `n` > 1: the kernel spreads the interface's flows over them.
/// `o.buffer_kib` is shared out between them (each gets at least
/// [`MIN_RING_KIB`]): a handle sees about a `n`th of the packets.
pub fn open_group(o: &LiveOptions, n: usize) -> Result<Vec<Live>, LiveError> {
    open_group_of(o, n, 0)
}

/// [`open_group`] for the capture's `index`th interface (its own group).
pub fn open_group_of(o: &LiveOptions, n: usize, index: u32) -> Result<Vec<Live>, LiveError> {
    let group = group_id(index);
    let n = n.max(1);
    let each = LiveOptions {
        buffer_kib: (o.buffer_kib / n as i32).max(MIN_RING_KIB.min(o.buffer_kib)),
        ..o.clone()
    };
    (0..n)
        .map(|_| {
            let mut live = open(&each)?;
            live.index = index;
            if n > 1 {
                join(&live.cap, group).map_err(|e| LiveError::Pcap {
                    interface: live.interface.clone(),
                    message: format!("cannot join the capture threads' fanout group: {e}"),
                })?;
            }
            Ok(live)
        })
        .collect()
}
