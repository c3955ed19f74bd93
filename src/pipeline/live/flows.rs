//! Flows handed from the capture threads to a stream (`capture --flows`,
//! `--ipfix`): each flow when it ends, whole, and, with an active timeout,
//! each long flow while it lasts, as what it carried since its last report
//! (as softflowd's `maxlife` and NetFlow's active timeout do).
use crate::stats::flow::{FlowKey, FlowRecord, FlowTable};
use crate::stats::Count;
use std::collections::HashMap;

/// What one capture thread hands the stream, once per interval.
#[derive(Debug, Default)]
pub struct FlowBatch {
    /// Flows that ended, whole.
    pub ended: Vec<FlowRecord>,
    /// For each of `ended`, what reports of it while it lasted carried
    /// (`None`: there were none).
    pub reported: Vec<Option<Reported>>,
    /// Long flows still open: what each carried since its last report
    /// (`first_ns`: that report's time, or the flow's start; `end`:
    /// active timeout).
    pub interim: Vec<FlowRecord>,
}

impl FlowBatch {
    pub fn is_empty(&self) -> bool {
        self.ended.is_empty() && self.interim.is_empty()
    }

    /// The flows in it, ended or reported.
    pub fn len(&self) -> usize {
        self.ended.len() + self.interim.len()
    }
}

/// What the reports of a long flow carried so far, and when the last was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    pub to_server: Count,
    pub to_client: Count,
    pub at_ns: u64,
}

impl Reported {
    /// What `r` carried since this report (`first_ns` set to its time).
    pub fn since(&self, r: &FlowRecord) -> FlowRecord {
        let less = |a: Count, b: Count| Count {
            packets: a.packets.saturating_sub(b.packets),
            bytes: a.bytes.saturating_sub(b.bytes),
        };
        FlowRecord {
            first_ns: self.at_ns.min(r.last_ns),
            to_server: less(r.to_server, self.to_server),
            to_client: less(r.to_client, self.to_client),
            ..*r
        }
    }
}

/// One capture thread's long flows reported so far, by flow (key and
/// first packet, so that a new flow on the same ports is another).
#[derive(Debug, Default)]
pub struct ActiveReports {
    reported: HashMap<(FlowKey, u64), Reported>,
}

impl ActiveReports {
    /// A batch of the flows that ended, with what was reported of each
    /// (forgotten here: they are done).
    pub fn ended(&mut self, ended: Vec<FlowRecord>) -> FlowBatch {
        let reported = ended
            .iter()
            .map(|r| self.reported.remove(&(r.key, r.first_ns)))
            .collect();
        FlowBatch {
            ended,
            reported,
            interim: Vec::new(),
        }
    }

    /// Adds to `out` every open flow of `table` whose last report (or start)
    /// is `active_ns` or more before `now_ns`: what it carried since (a flow
    /// that carried nothing since gives no record, its time moves on).
    pub fn due(
        &mut self,
        table: &FlowTable,
        now_ns: u64,
        active_ns: u64,
        out: &mut Vec<FlowRecord>,
    ) {
        table.open_since(now_ns.saturating_sub(active_ns), |r| {
            let key = (r.key, r.first_ns);
            let before = self.reported.get(&key).copied().unwrap_or(Reported {
                to_server: Count::default(),
                to_client: Count::default(),
                at_ns: r.first_ns,
            });
            if now_ns.saturating_sub(before.at_ns) < active_ns {
                return;
            }
            let since = before.since(&r);
            if since.to_server.packets + since.to_client.packets > 0 {
                out.push(since);
            }
            self.reported.insert(
                key,
                Reported {
                    to_server: r.to_server,
                    to_client: r.to_client,
                    at_ns: now_ns,
                },
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use crate::services::{Services, Transport};
    use crate::stats::flow::{FlowPacket, Timeouts};
    use std::sync::Arc;

    const SEC: u64 = 1_000_000_000;

    fn packet(ts: u64, to_server: bool) -> FlowPacket {
        let (key, from_lo) = FlowKey::new(
            Transport::Udp,
            v4_mapped(&[10, 0, 0, 1]),
            40000,
            v4_mapped(&[10, 0, 0, 2]),
            53,
        );
        FlowPacket::new(key, from_lo == to_server, ts, 100, 0)
    }

    #[test]
    fn a_long_flow_is_reported_in_parts_that_add_up_to_the_whole() {
        let mut table = FlowTable::new(
            Arc::new(Services::iana()),
            Timeouts {
                udp: 3600 * SEC,
                ..Timeouts::default()
            },
            1024,
            true,
        );
        let mut reports = ActiveReports::default();
        let mut parts = Vec::new();
        // One packet a second each way for 10 s, reports due every 3 s.
        for s in 0..10 {
            table.account(&packet(s * SEC, true), &[]);
            table.account(&packet(s * SEC + 1, false), &[]);
            reports.due(&table, s * SEC + 2, 3 * SEC, &mut parts);
        }
        assert_eq!(parts.len(), 3, "at 3, 6 and 9 s: {parts:?}");
        assert_eq!(parts[0].to_server.packets, 4, "0..=3 s");
        assert_eq!(parts[1].first_ns, 3 * SEC + 2);
        table.finish_all();
        let batch = reports.ended(std::mem::take(&mut table.records));
        assert_eq!(batch.ended.len(), 1);
        let whole = batch.ended[0];
        assert_eq!(whole.to_server.packets, 10, "the ended record is whole");
        let rest = batch.reported[0]
            .expect("reported while it lasted")
            .since(&whole);
        let sum: u64 =
            parts.iter().map(|p| p.to_server.packets).sum::<u64>() + rest.to_server.packets;
        assert_eq!(sum, 10);
        let bytes: u64 =
            parts.iter().map(|p| p.to_client.bytes).sum::<u64>() + rest.to_client.bytes;
        assert_eq!(bytes, whole.to_client.bytes);
        assert!(reports.reported.is_empty(), "forgotten once ended");
    }
}
