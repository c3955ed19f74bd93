//! Packet sources: live interfaces ([`live`], through libpcap) and capture files.
//! Capture files (pcap in both byte orders and both time
//! resolutions, pcapng with any mix of interfaces, gzip-compressed or not,
//! from a path or standard input) are read here: legacy pcap records of a
//! mapped file by a loop of our own, everything else with `pcap-parser`; a
//! [`prefault`] helper maps a mapped file's pages ahead of the reader.
//!
//! A file yields [`RawPacket`]s to a callback, borrowed from one large read
//! buffer: no copy and no allocation per packet.

mod file;
mod inputs;
pub mod live;
mod pcap_format;
mod prefault;
pub mod privileges;

pub use file::{
    read_bytes, read_capture, read_from, read_stream_bytes, FileError, FileErrorKind, FileSummary,
    RawPacket, UNKNOWN_INTERFACE,
};
pub use inputs::{expand_inputs, Input};
pub use pcap_format::{PcapFormat, MAX_SNAPLEN};
