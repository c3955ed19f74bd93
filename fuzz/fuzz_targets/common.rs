//! What the fuzz targets share.
use portflow::decode::LinkType;
use portflow::source::PcapFormat;

/// A pcap file whose three records each carry `data` as their packet (a
/// capture of a capture file being copied: record headers inside payloads
/// make wrong boundaries look valid).
pub fn wrapped_in_pcap(data: &[u8]) -> Vec<u8> {
    let mut wrapped = PcapFormat::CLASSIC
        .header(LinkType::ETHERNET, 262_144)
        .to_vec();
    for i in 0..3u64 {
        let ts = 1_700_000_000_000_000_000 + i * 1_000;
        PcapFormat::CLASSIC.record(&mut wrapped, ts, data, data.len() as u32);
    }
    wrapped
}
