//! Packet sources: capture files and folders, and live interfaces.
//!
//! - `file`: pcap and pcapng files, gzip-compressed or not, from a path or
//!   standard input, handed to a callback as [`RawPacket`]s borrowed from the
//!   file's bytes (no copy and no allocation per packet);
//! - `inputs`: command-line operands (files, folders, `-`) as [`Input`]s;
//! - `prefault`: a helper that maps a mapped file's pages ahead of the reader;
//! - [`live`]: interfaces through libpcap, and the `-w` writer;
//! - [`privileges`]: giving up root or capabilities once a capture is open;
//! - [`bpf`]: libpcap's filters on packets read from files;
//! - `pcap_format`: the pcap format as portflow writes it.

pub mod bpf;
mod file;
mod inputs;
pub mod live;
mod pcap_format;
pub mod prefault;
pub mod privileges;

pub use file::{ranges, split};
pub use file::{
    read_bytes, read_capture, read_from, read_stream_bytes, FileError, FileErrorKind, FileSummary,
    RawPacket, UNKNOWN_INTERFACE,
};
pub use inputs::{expand_inputs, Input, InputError};
pub use pcap_format::{PcapFormat, MAX_SNAPLEN};
