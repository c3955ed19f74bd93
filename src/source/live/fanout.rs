//! Several capture handles on one interface sharing its packets: a Linux
//! `PACKET_FANOUT` group in hash mode, so that the kernel hands every packet
//! of a flow, both directions, to the same handle (its flow hash is
//! symmetric), and each handle's thread can account its own flows alone.
//!
//! libpcap has no call for it; the option is set on the socket of the
//! handle libpcap opened (after `pcap_activate`, which binds it to the
//! interface), as `tcpdump`'s and Suricata's fanout patches do. Each handle
//! keeps its own ring, filter and drop counters. Defragmentation
//! (`PACKET_FANOUT_FLAG_DEFRAG`) sends the fragments of an IP datagram
//! where its first fragment goes.
use super::{open, Live, LiveError, LiveOptions};
use std::io;
use std::os::unix::io::AsRawFd;

/// The fanout group of this process: group ids are per network namespace,
/// and two captures of the same interface must not share one.
pub fn group_id() -> u16 {
    (std::process::id() & 0xffff) as u16
}

/// Puts `cap`'s socket into fanout group `group` (hash mode, fragments
/// reassembled for hashing).
pub fn join(cap: &pcap::Capture<pcap::Active>, group: u16) -> io::Result<()> {
    let mode = libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG;
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

/// Opens `n` captures of one interface as [`open`] does, in one fanout
/// group when `n` > 1: the kernel spreads the interface's flows over them.
pub fn open_group(o: &LiveOptions, n: usize) -> Result<Vec<Live>, LiveError> {
    let group = group_id();
    (0..n.max(1))
        .map(|_| {
            let live = open(o)?;
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
