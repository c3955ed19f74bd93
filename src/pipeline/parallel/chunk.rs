//! A chunk: which bytes of which file, and what a thread makes of it (its
//! packets, one part per shard, with what committing needs).
use super::super::count::{
    count_layers, count_packet, count_portless, decode_raw, FragKey, Fragments,
};
use crate::decode::{tcp_flags as F, Addr, Decoded, Kind};
use crate::inspect::INSPECT_BYTES;
use crate::services::Transport;
use crate::source::bpf::Filter;
use crate::source::prefault;
use crate::source::ranges::{MappedPcap, Section};
use crate::source::split::Landing;
use crate::source::{FileError, RawPacket};
use crate::stats::flow::{FlowKey, FlowPacket, LATER_FRAGMENT};
use crate::stats::Totals;
use rustc_hash::FxHashSet;

/// One input: a file read in chunks, or one that fails before its first
/// packet (as the sequential reader would say).
pub(in crate::pipeline) enum Entry {
    Mapped(MappedPcap),
    Failed(FileError),
}

impl Entry {
    pub(super) fn mapped(&self) -> &MappedPcap {
        match self {
            Entry::Mapped(m) => m,
            Entry::Failed(_) => unreachable!("chunks are only made of mapped files"),
        }
    }
}

/// One chunk of one file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) file: usize,
    pub(super) from: usize,
    pub(super) to: usize,
}

/// The chunk size: [`CHUNK_BYTES`], or `PORTFLOW_CHUNK_BYTES` (at least
/// 1,024), which the tests set to cut small captures into many chunks.
pub(super) fn chunk_bytes() -> usize {
    std::env::var("PORTFLOW_CHUNK_BYTES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(super::CHUNK_BYTES, |n| n.max(1024))
}

/// The chunks of `files`, in order: each file's records cut every
/// `size` bytes (at least one chunk per file).
pub(super) fn chunks(files: &[Entry], size: usize) -> Vec<Span> {
    let mut v = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Entry::Mapped(f) = f else { continue };
        let (first, len) = (f.first(), f.data().len());
        let mut from = first;
        loop {
            let to = (from + size).min(len);
            v.push(Span { file: i, from, to });
            if to >= len {
                break;
            }
            from = to;
        }
    }
    v
}

/// The first fragment of a datagram, or a later one, in packet order.
#[derive(Debug, Clone, Copy)]
pub(super) enum FragEvent {
    First {
        key: FragKey,
        sport: u16,
        dport: u16,
        ts: u64,
    },
    Later(u32),
}

/// A later fragment, to be given its datagram's ports at commit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Later {
    pub(super) key: FragKey,
    pub(super) ts: u64,
    pub(super) wire: u32,
}

/// What a thread made of one chunk, then what committing it added.
#[derive(Default)]
pub(super) struct Chunk {
    /// Its place in the run's chunks.
    pub(super) index: usize,
    /// pcapng: what the section was taken to have said at the chunk's start,
    /// and what it had said at its end.
    pub(super) assumed: Option<Section>,
    pub(super) section: Option<Section>,
    /// Where its walk began (`None`: no record boundary was found in it)
    /// and where it landed.
    pub(super) start: Option<usize>,
    pub(super) landing: Option<Landing>,
    pub(super) error: Option<FileError>,
    pub(super) packets: u64,
    pub(super) totals: Totals,
    /// One per shard: its packets in file order.
    pub(super) parts: Vec<Vec<FlowPacket>>,
    pub(super) frag_events: Vec<FragEvent>,
    pub(super) later: Vec<Later>,
    /// Latest packet time, and packets handed to shards.
    pub(super) clock: u64,
    pub(super) dispatched: u64,
    // Set at commit:
    /// Sweep the idle flows at this packet time before the chunk's packets.
    pub(super) sweep: Option<u64>,
    /// Each later fragment's shard and record, when its datagram was known.
    pub(super) resolved: Vec<Option<(usize, FlowPacket)>>,
    /// The file this chunk is of, and whether it is to be accounted at all
    /// (not when it lies past a stop in its file).
    pub(super) file: usize,
    pub(super) skip: bool,
}

impl Chunk {
    /// A chunk with room for the records of `bytes` of file (of 64 bytes or
    /// more each, shared over `shards` parts): reserved, not touched, so
    /// only what a chunk holds becomes resident, and reading allocates
    /// nothing per chunk.
    pub(super) fn with_room(shards: usize, bytes: usize) -> Chunk {
        let mut c = Chunk::default();
        c.reset(shards, 0, bytes);
        c
    }

    /// Empties the chunk for `file`'s next `bytes`, over `shards` shards:
    /// each part gets room for its share of the records (of 64 bytes or
    /// more) once, so that chunks read into again do not grow.
    pub(super) fn reset(&mut self, shards: usize, file: usize, bytes: usize) {
        self.assumed = None;
        self.section = None;
        self.start = None;
        self.landing = None;
        self.error = None;
        self.packets = 0;
        // The time line keeps its room (a chunk does not allocate it again)
        // and its step: the last chunk's part of the capture needed it, so
        // the whole does too, and this one need not climb the ladder again.
        let mut timeline = std::mem::take(&mut self.totals.timeline);
        timeline.clear();
        self.totals = Totals {
            timeline,
            timeline_level: self.totals.timeline_level,
            ..Totals::default()
        };
        self.parts.resize_with(shards, Vec::new);
        for p in &mut self.parts {
            p.clear();
            p.reserve(bytes / 64 / shards + 64);
        }
        self.frag_events.clear();
        self.later.clear();
        self.clock = 0;
        self.dispatched = 0;
        self.sweep = None;
        self.resolved.clear();
        self.file = file;
        self.skip = false;
    }
}

/// A thread's reading side: its filter, and the servers it has told the
/// other shards of in the current chunk.
pub(super) struct ChunkReader {
    pub(super) filter: Option<Filter>,
    pub(super) shards: usize,
    pub(super) told: FxHashSet<(Addr, u16)>,
}

impl ChunkReader {
    /// Reads `file`'s records from `start` that begin before `end` into `c`.
    pub(super) fn read(
        &mut self,
        file: &MappedPcap,
        start: usize,
        end: usize,
        section: Option<Section>,
        c: &mut Chunk,
    ) {
        self.told.clear();
        prefault::populate(file.data(), start..end);
        c.start = Some(start);
        let base = file.data().as_ptr() as usize + start;
        let r = file.read_range(start, end, section.as_ref(), &mut |raw| {
            self.packet(raw, base, c)
        });
        c.assumed = section;
        c.section = r.section;
        c.landing = Some(r.landing);
        c.error = r.error;
        c.packets = r.packets;
    }

    /// Decodes one packet into the chunk; `base`: the address payload
    /// offsets count from.
    #[inline]
    pub(super) fn packet(&mut self, raw: &RawPacket, base: usize, c: &mut Chunk) {
        if let Some(f) = self.filter.as_mut() {
            if !f.matches(raw.link, raw.data, raw.wire_len) {
                c.totals.filtered_out += 1;
                return;
            }
        }
        c.clock = c.clock.max(raw.ts_ns);
        let t = &mut c.totals;
        let (wire, bogus_len) = count_packet(t, raw);
        let mut d = Decoded::default();
        decode_raw(raw, &mut d);
        count_layers(t, &d, bogus_len, wire);
        match d.kind {
            Kind::Transport => {
                if d.frag.is_fragment {
                    t.fragments += 1;
                    c.frag_events.push(FragEvent::First {
                        key: Fragments::key(&d),
                        sport: d.sport,
                        dport: d.dport,
                        ts: raw.ts_ns,
                    });
                }
                // Read at their own width, as the sequential reader does.
                // SAFETY: reads of two initialised fields of a local.
                let (sp, dp) = unsafe {
                    (
                        std::ptr::read_volatile(&d.sport),
                        std::ptr::read_volatile(&d.dport),
                    )
                };
                self.dispatch(c, &d, sp, dp, raw, wire, base);
            }
            Kind::Fragment => {
                t.fragments += 1;
                let i = c.later.len() as u32;
                c.later.push(Later {
                    key: Fragments::key(&d),
                    ts: raw.ts_ns,
                    wire,
                });
                c.frag_events.push(FragEvent::Later(i));
                // Its place in every shard's part (which shard it is for is
                // known at commit); `payload_at`: its index in the chunk's list.
                let mark = FlowPacket {
                    hints: LATER_FRAGMENT,
                    payload_at: i,
                    ..FlowPacket::default()
                };
                for p in &mut c.parts {
                    p.push(mark);
                }
            }
            _ => count_portless(t, &d, wire),
        }
    }

    /// Hands a packet with ports to its shard's part, with where its
    /// payload prefix lies (the flow decides whether to look).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn dispatch(
        &mut self,
        c: &mut Chunk,
        d: &Decoded,
        sport: u16,
        dport: u16,
        raw: &RawPacket,
        wire: u32,
        base: usize,
    ) {
        let Some(tr) = Transport::from_ip_proto(d.proto) else {
            return;
        };
        c.totals.transport[tr as usize].add(wire);
        let (key, from_lo) = FlowKey::new(tr, d.src, sport, d.dst, dport);
        let hash = key.shard_hash();
        let shard = shard_of(hash, self.shards);
        if tr == Transport::Tcp
            && d.tcp_flags & (F::SYN | F::ACK) == F::SYN | F::ACK
            && self.shards > 1
            && self.told.insert((d.src, sport))
        {
            let r = FlowPacket::server(d.src, sport);
            for (i, p) in c.parts.iter_mut().enumerate() {
                if i != shard {
                    p.push(r);
                }
            }
        }
        let mut p = FlowPacket {
            key,
            ts: raw.ts_ns,
            wire_len: wire,
            from_lo,
            tcp_flags: d.tcp_flags,
            hints: 0,
            payload_at: 0,
            payload_len: 0,
            hash: hash as u32,
        };
        if d.payload_len > 0 && matches!(tr, Transport::Tcp | Transport::Udp) {
            let at = d.payload_offset as usize;
            let len = (d.payload_len as usize).min(INSPECT_BYTES);
            if at + len <= raw.data.len() {
                p.payload_at = (raw.data.as_ptr() as usize + at - base) as u32;
                p.payload_len = len as u16;
            }
        }
        c.parts[shard].push(p);
        c.dispatched += 1;
    }
}

/// The shard of a flow hash among `n`.
#[inline(always)]
pub(super) fn shard_of(hash: u64, n: usize) -> usize {
    if n == 1 {
        0
    } else {
        ((hash as u128 * n as u128) >> 64) as usize
    }
}
