//! Findings raised while a live capture runs (`capture --events`, the
//! `portflow_findings_total` metric).
//!
//! The capture threads hand on, once per interval, what their ended flows
//! added to the inventory and the scan attempts ([`Observed`]); a [`Watch`]
//! keeps the sum, finds what it shows with the same [`findings`] a report
//! uses, and raises each finding the first time it appears, and again when
//! its severity rises. A finding is raised as it stands then: its evidence
//! keeps growing in the final report. Since a flow counts once it has
//! ended (closed, idle, evicted), a finding is raised an idle timeout after
//! its traffic at most (5 s after a TCP close, `--tcp-timeout` for a SYN
//! nobody answered).
use super::policy::Policy;
use super::{findings, Finding, Kind, Severity, Thresholds};
use crate::decode::Addr;
use crate::services::{Services, Transport};
use crate::stats::attempts::{Attempts, ATTEMPTS_CAP};
use crate::stats::flow::Observed;
use crate::stats::inventory::Inventory;
use std::collections::HashMap;
use std::sync::Arc;

/// What makes two findings the same one: its kind (with what a cleartext
/// finding saw) and what it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    kind: &'static str,
    exposure: Option<String>,
    transport: Transport,
    port: Option<u16>,
    host: Option<Addr>,
    src: Option<Addr>,
}

impl Identity {
    fn of(f: &Finding) -> Identity {
        Identity {
            kind: f.kind.name(),
            exposure: match &f.kind {
                Kind::Cleartext(e) => Some(format!("{e:?}")),
                _ => None,
            },
            transport: f.transport,
            port: f.port,
            host: f.host,
            src: f.src,
        }
    }
}

/// The sum of what a capture's threads observed, and the findings raised from it.
pub struct Watch {
    inventory: Inventory,
    attempts: Attempts,
    /// Each finding raised, at the severity it was last raised at.
    raised: HashMap<Identity, Severity>,
    policy: Option<Policy>,
    services: Arc<Services>,
    thresholds: Thresholds,
    /// Something was added since the last [`Self::raise`].
    fresh: bool,
}

impl Watch {
    /// A watch over a capture with `threads` capture threads: it keeps as
    /// many scan attempts as they would together.
    pub fn new(
        policy: Option<Policy>,
        services: Arc<Services>,
        thresholds: Thresholds,
        threads: usize,
    ) -> Watch {
        Watch {
            inventory: Inventory::default(),
            attempts: Attempts::with_cap(ATTEMPTS_CAP * threads.max(1)),
            raised: HashMap::new(),
            policy,
            services,
            thresholds,
            fresh: false,
        }
    }

    /// Adds one thread's part of an interval.
    pub fn add(&mut self, o: Observed) {
        self.fresh |= !o.is_empty();
        self.inventory.merge(o.inventory);
        for a in o.attempts {
            self.attempts.push(a);
        }
    }

    /// The findings not raised before (or raised at a lower severity), most
    /// severe first, now raised; none when nothing was added since the last call.
    pub fn raise(&mut self) -> Vec<Finding> {
        if !std::mem::take(&mut self.fresh) {
            return Vec::new();
        }
        let all = findings(
            &self.inventory,
            &mut self.attempts.list,
            self.policy.as_ref(),
            &self.services,
            self.thresholds,
        );
        self.raise_among(all)
    }

    /// Those of `all` (a capture's final findings) not raised before at
    /// their severity, now raised.
    pub fn raise_among(&mut self, all: impl IntoIterator<Item = Finding>) -> Vec<Finding> {
        all.into_iter()
            .filter(|f| {
                let before = self.raised.insert(Identity::of(f), f.severity);
                before.is_none_or(|s| s < f.severity)
            })
            .collect()
    }

    /// What was observed so far, moved out to be added to the capture's
    /// analysis (the findings raised are kept).
    pub fn take_observed(&mut self) -> (Inventory, Attempts) {
        let cap = Attempts::with_cap(0);
        (
            std::mem::take(&mut self.inventory),
            std::mem::replace(&mut self.attempts, cap),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::attempts::refused_tcp;

    fn watch() -> Watch {
        let th = Thresholds {
            ports: 3,
            hosts: 25,
            window: std::time::Duration::from_secs(300),
        };
        Watch::new(None, Arc::new(Services::iana()), th, 2)
    }

    fn attempts(ports: std::ops::Range<u16>) -> Observed {
        Observed {
            attempts: ports.map(|p| refused_tcp(1, 1, p, 0)).collect(),
            ..Observed::default()
        }
    }

    #[test]
    fn a_finding_is_raised_once_when_its_evidence_crosses_the_threshold() {
        let mut w = watch();
        w.add(attempts(1..3));
        assert!(w.raise().is_empty(), "two ports are below the threshold");
        w.add(attempts(3..4));
        let raised = w.raise();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].kind.name(), "port-scan");
        assert_eq!(raised[0].evidence.ports, Some(3));
        w.add(attempts(4..9));
        assert!(
            w.raise().is_empty(),
            "the same scan, grown, is not raised again"
        );
        assert!(w.raise().is_empty(), "nothing new");
        assert_eq!(w.raised.len(), 1);
        let (_, a) = w.take_observed();
        assert_eq!(a.list.len(), 8, "every attempt is kept for the report");
    }

    #[test]
    fn a_finding_is_raised_again_when_its_severity_rises() {
        let mut w = watch();
        let f = {
            w.add(attempts(1..4));
            w.raise().remove(0)
        };
        let higher = Finding {
            severity: Severity::High,
            ..f.clone()
        };
        assert!(w.raise_among([f.clone()]).is_empty());
        assert_eq!(w.raise_among([higher.clone()]), vec![higher.clone()]);
        assert!(w.raise_among([higher, f]).is_empty());
    }
}
