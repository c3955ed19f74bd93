//! Committing chunks in file order: each must begin where the one before
//! landed, and what depends on every packet before it is done here, in
//! packet order.
use super::super::count::{Fragments, SweepClock};
use super::super::FileReport;
use super::chunk::{shard_of, Chunk, ChunkReader, Entry, FragEvent, Span};
use super::{Shared, State};
use crate::services::Transport;
use crate::source::ranges::{MappedPcap, Section};
use crate::source::split::Landing;
use crate::source::FileError;
use crate::stats::flow::{FlowKey, FlowPacket};
use crate::stats::Totals;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// What committing needs to know across chunks, in packet order.
pub(super) struct Order {
    /// Chunks committed so far.
    pub(super) committed: usize,
    /// Where the last committed chunk's walk landed in its file, and
    /// (pcapng) what the section had said there.
    pub(super) landed: usize,
    pub(super) section: Option<Section>,
    pub(super) frags: Fragments,
    /// Latest packet time, and when the next sweep is due.
    pub(super) clock: u64,
    pub(super) sweeps: SweepClock,
    pub(super) totals: Totals,
    pub(super) files: Vec<FileReport>,
    /// The error that stops the run (without `--keep-going`), with the
    /// inputs after it.
    pub(super) failed: Option<(FileError, usize)>,
    /// Inputs before this one whose failure was looked at.
    pub(super) failed_before: usize,
    pub(super) redone: usize,
}

impl Order {
    /// Nothing committed yet, over `files`.
    pub(super) fn new(files: &[Entry]) -> Order {
        let report = |f: &Entry| match f {
            Entry::Mapped(m) => FileReport {
                path: m.path().to_string(),
                format: m.format(),
                compressed: false,
                packets: 0,
                error: None,
                cut_short: None,
            },
            Entry::Failed(e) => FileReport {
                path: e.path.clone(),
                format: e.format,
                compressed: e.compressed,
                packets: 0,
                error: Some(e.clone()),
                cut_short: None,
            },
        };
        Order {
            committed: 0,
            landed: 0,
            section: None,
            frags: Fragments::default(),
            clock: 0,
            sweeps: SweepClock::default(),
            totals: Totals::default(),
            files: files.iter().map(report).collect(),
            failed_before: 0,
            failed: None,
            redone: 0,
        }
    }
}

/// Commits the chunks read, in order, as far as they go.
pub(super) fn commit_ready(sh: &Shared, g: &mut MutexGuard<State>, reader: &mut ChunkReader) {
    loop {
        let k = g.order.committed;
        if k >= g.end {
            return;
        }
        let st: &mut State = g;
        let w = st.slots.len();
        // The slot may still hold the chunk read `w` chunks before, which
        // some thread has yet to account.
        let Some(slot) = st.slots[k % w].as_mut().filter(|c| c.index == k) else {
            return;
        };
        let c = Arc::get_mut(slot).expect("an uncommitted chunk is held by nobody");
        commit(sh, k, c, &mut st.order, reader);
        st.order.committed += 1;
        if st.order.failed.is_some() {
            // The run stops here: nothing after this chunk is accounted.
            st.end = st.order.committed;
        }
    }
}

/// Commits chunk `span` (`c`, read): checks that it begins where the chunk
/// before landed (reading it again from there if not), then does in packet
/// order what depends on every packet before it.
pub(super) fn commit(
    sh: &Shared,
    k: usize,
    c: &mut Chunk,
    o: &mut Order,
    reader: &mut ChunkReader,
) {
    let span = sh.spans[k];
    let f = span.file;
    let file = sh.files[f].mapped();
    let first_of_file = span.from == file.first();
    if first_of_file && failed_inputs(sh.files, sh.keep_going, o, f) {
        c.skip = true;
        return;
    }
    // A file stops at its first damaged or cut record.
    if o.files[f].error.is_some() || o.files[f].cut_short.is_some() {
        c.skip = true;
        return;
    }
    let (expected, section) = if first_of_file {
        (file.first(), None)
    } else {
        (o.landed, o.section.take())
    };
    // Read from the wrong place, or (pcapng) as if the section had said
    // what it had not: read again.
    if c.start != Some(expected) || c.assumed != section {
        o.redone += 1;
        read_span(sh, k, Some((expected, section)), reader, c);
    }
    sh.progress
        .fetch_add((span.to - span.from) as u64, Ordering::Relaxed);
    // Idle flows are swept before the chunk, as of the packets before it.
    if o.sweeps.due(o.clock) {
        c.sweep = Some(o.clock);
    }
    resolve_fragments(c, o, sh.threads);
    o.clock = o.clock.max(c.clock);
    o.sweeps.sent(c.dispatched);
    o.totals.merge(&c.totals);
    let report = &mut o.files[f];
    let before = report.packets;
    report.packets += c.packets;
    match c.landing.expect("a chunk is read before it is committed") {
        Landing::At(at) => {
            o.landed = at;
            o.section = c.section.take();
        }
        Landing::Stopped(_) => {
            let mut e = c.error.take().expect("a walk stops with an error");
            e.packets_before += before;
            if FileReport::is_cut_short(&e) {
                report.cut_short = Some(e);
            } else {
                report.error = Some(e.clone());
                if !sh.keep_going {
                    o.failed = Some((e, sh.files.len() - f - 1));
                }
            }
        }
    }
}

/// Takes the inputs before input `upto` that failed before their first
/// packet, in order; whether one of them stops the run.
pub(super) fn failed_inputs(files: &[Entry], keep_going: bool, o: &mut Order, upto: usize) -> bool {
    while o.failed_before < upto {
        let i = o.failed_before;
        o.failed_before += 1;
        if let Entry::Failed(e) = &files[i] {
            if !keep_going {
                o.failed = Some((e.clone(), files.len() - i - 1));
                return true;
            }
        }
    }
    false
}

/// Gives the chunk's later fragments the ports of their datagram's first
/// fragment, in packet order, as the sequential reader does.
pub(super) fn resolve_fragments(c: &mut Chunk, o: &mut Order, shards: usize) {
    if c.frag_events.is_empty() {
        return;
    }
    c.resolved.resize(c.later.len(), None);
    for ev in &c.frag_events {
        match *ev {
            FragEvent::First {
                key,
                sport,
                dport,
                ts,
            } => o.frags.insert(key, sport, dport, ts),
            FragEvent::Later(i) => {
                let l = c.later[i as usize];
                let t = &mut c.totals;
                let (src, dst, _, proto) = l.key;
                match (o.frags.ports(&l.key), Transport::from_ip_proto(proto)) {
                    (Some((sp, dp)), Some(tr)) => {
                        t.fragments_attributed += 1;
                        t.transport[tr as usize].add(l.wire);
                        let (key, from_lo) = FlowKey::new(tr, src, sp, dst, dp);
                        let hash = key.shard_hash();
                        let p = FlowPacket {
                            key,
                            ts: l.ts,
                            wire_len: l.wire,
                            from_lo,
                            hash: hash as u32,
                            ..FlowPacket::default()
                        };
                        c.resolved[i as usize] = Some((shard_of(hash, shards), p));
                        c.dispatched += 1;
                    }
                    (Some(_), None) => t.fragments_attributed += 1,
                    (None, _) => {
                        t.fragments_unattributed += 1;
                        t.unattributed.add(l.wire);
                    }
                }
            }
        }
    }
}

/// Where chunk `span` of `file` starts when nothing says otherwise: at the
/// file's first record, or at a guessed boundary inside the chunk.
fn guessed_start(file: &MappedPcap, span: Span) -> Option<usize> {
    if span.from == file.first() {
        return Some(span.from);
    }
    file.guess(span.from).filter(|&g| g < span.to)
}

/// Reads chunk `k` into `c`: from `from` (where the chunk before landed,
/// and what its pcapng section had said there, when committing found the
/// chunk read from the wrong place), else from its guessed start; up to
/// where the next chunk of the file will guess it starts (so a guess that
/// passed over true boundaries costs nothing: this chunk reads up to it),
/// else to its end.
pub(super) fn read_span(
    sh: &Shared,
    k: usize,
    from: Option<(usize, Option<Section>)>,
    reader: &mut ChunkReader,
    c: &mut Chunk,
) {
    let span = sh.spans[k];
    let file = sh.files[span.file].mapped();
    c.reset(sh.threads, span.file, span.to - span.from);
    let end = sh
        .spans
        .get(k + 1)
        .filter(|n| n.file == span.file)
        .and_then(|n| guessed_start(file, *n))
        .unwrap_or(span.to);
    let given = from.is_some();
    let start = match from {
        Some((at, section)) => Some((at, section)),
        None => guessed_start(file, span).map(|at| (at, file.assumed(at))),
    };
    match start {
        Some((at, section)) if at < end => reader.read(file, at, end, section, c),
        // The chunk before ran past where this one ends: nothing begins here.
        Some((at, section)) if given => {
            c.start = Some(at);
            c.landing = Some(Landing::At(at));
            c.assumed = section.clone();
            c.section = section;
        }
        // No record boundary found in the chunk's bytes: committing reads
        // it again from where the chunk before landed.
        _ => {}
    }
}
