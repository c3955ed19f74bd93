//! The packet decoder and payload protocol detection on arbitrary bytes.
//! Input: the link type (2 bytes, little-endian), then the frame; seeds are
//! the packets of fixtures/ (`cargo run --example fuzz_seeds`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use portflow::decode::{decode, Decoded, Kind, LinkType};
use portflow::inspect::{identify, FlowInspect};
use portflow::services::Transport;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (head, frame) = data.split_at(2);
    let link = LinkType(u16::from_le_bytes([head[0], head[1]]) as u32);
    let mut d = Decoded::default();
    decode(link, frame, &mut d);
    // What the decoder points at must lie inside the frame.
    let start = d.payload_offset as usize;
    let end = start + d.payload_len as usize;
    assert!(
        end <= frame.len(),
        "payload {start}..{end} of {}",
        frame.len()
    );
    if d.kind == Kind::Transport {
        if let Some(t) = Transport::from_ip_proto(d.proto) {
            let payload = &frame[start..end];
            let _ = identify(t, head[0] & 1 == 0, payload);
            let mut f = FlowInspect::default();
            f.inspect(t, true, payload);
            f.inspect(t, false, payload);
            let _ = f.protocol();
        }
    }
});
