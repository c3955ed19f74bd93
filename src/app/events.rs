//! `capture --events FILE|-` and the `portflow_findings_total` metric: each
//! finding as it is raised, as one NDJSON line a log shipper can tail (the
//! report's finding object with the event's name and time), counted in the
//! metrics. The capture threads hand on what their ended flows observed
//! once per interval; a thread of its own sums it and looks for findings
//! ([`Watch`]) at most once a second, so no capture thread waits for it.
//! When the capture stops, the findings of its report not raised yet
//! follow, so the lines hold every finding the report has.
use super::AppError;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use portflow::detect::watch::Watch;
use portflow::detect::Finding;
use portflow::pipeline::Analysis;
use portflow::report::findings::FindingRow;
use portflow::report::metrics::Metrics;
use portflow::report::time::rfc3339;
use portflow::services::Services;
use portflow::stats::flow::Observed;
use serde::Serialize;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Parts (one per capture thread and interval) that may wait; a thread
/// whose part finds no room keeps it for the next interval.
const BACKLOG: usize = 64;

/// Findings are looked for at most this often.
const EVERY: Duration = Duration::from_secs(1);

/// How long the first part of an interval waits for the other threads'
/// (they hand theirs on at the same tick), so that a finding seen by two
/// threads is raised once, whole.
const GRACE: Duration = Duration::from_millis(200);

/// One `--events` line (`docs/SCHEMA.md`, schema `portflow.event/1`).
#[derive(Serialize)]
struct EventLine<'a> {
    /// `finding`.
    event: &'static str,
    /// When portflow raised it (wall clock).
    raised: String,
    #[serde(flatten)]
    finding: &'a FindingRow,
}

/// Where raised findings go.
pub struct Sinks {
    pub file: Option<Box<dyn Write + Send>>,
    pub metrics: Option<Arc<Mutex<Metrics>>>,
    pub services: Arc<Services>,
}

/// The watch, where its findings went, and how writing them went.
pub struct Watched {
    watch: Watch,
    sinks: Sinks,
    /// Lines written.
    pub written: u64,
    /// The first error writing the events file (nothing more is written).
    pub write_error: Option<std::io::Error>,
}

/// The thread that raises findings while the capture runs.
pub struct Events {
    pub tx: Sender<Observed>,
    handle: JoinHandle<Watched>,
}

impl Events {
    pub fn start(watch: Watch, sinks: Sinks) -> Result<Events, AppError> {
        let (tx, rx) = bounded(BACKLOG);
        let watched = Watched {
            watch,
            sinks,
            written: 0,
            write_error: None,
        };
        let handle = std::thread::Builder::new()
            .name("portflow-events".into())
            .spawn(move || run(&rx, watched))
            .map_err(|e| AppError::Usage(format!("cannot start the event stream: {e}")))?;
        Ok(Events { tx, handle })
    }

    /// Waits for the thread to take every part the capture threads handed
    /// on (their senders are gone once the capture returned).
    pub fn finish(self) -> Result<Watched, AppError> {
        drop(self.tx);
        self.handle
            .join()
            .map_err(|_| AppError::Usage("the event stream panicked".into()))
    }
}

/// Takes parts until the capture ends, raising findings when something
/// came: [`GRACE`] after it came, and after the last time at least
/// [`EVERY`] or ten times what looking took then (a flood's scan attempts
/// make looking slow; the thread takes a tenth of a core at most).
fn run(rx: &Receiver<Observed>, mut w: Watched) -> Watched {
    let mut last: Option<Instant> = None;
    let mut gap = EVERY;
    // When the first part not looked at yet came.
    let mut pending: Option<Instant> = None;
    loop {
        let due = |pending: Instant| {
            let since_last = last.map_or(gap, |l| l.elapsed());
            GRACE
                .saturating_sub(pending.elapsed())
                .max(gap.saturating_sub(since_last))
        };
        let wait = pending.map_or(Duration::from_secs(3600), due);
        match rx.recv_timeout(wait) {
            Ok(part) => {
                w.watch.add(part);
                pending.get_or_insert_with(Instant::now);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if pending.is_some_and(|p| due(p).is_zero()) {
            let started = Instant::now();
            let raised = w.watch.raise();
            gap = EVERY.max(started.elapsed() * 10);
            w.emit(&raised);
            (last, pending) = (Some(Instant::now()), None);
        }
    }
    w
}

impl Watched {
    /// Adds what the watch summed to the capture's analysis, which lacks
    /// it (the threads handed it on), so the report counts every flow.
    pub fn complete(&mut self, analysis: &mut Analysis) {
        let (inventory, mut attempts) = self.watch.take_observed();
        analysis.inventory.merge(inventory);
        analysis.attempts.merge(&mut attempts);
    }

    /// Raises those of the report's findings not raised yet.
    pub fn last(&mut self, all: &[Finding]) {
        let raised = self.watch.raise_among(all.iter().cloned());
        self.emit(&raised);
    }

    /// Writes and counts findings just raised.
    fn emit(&mut self, raised: &[Finding]) {
        if raised.is_empty() {
            return;
        }
        if let Some(m) = &self.sinks.metrics {
            m.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .raised(raised);
        }
        let Some(out) = self.sinks.file.as_mut() else {
            return;
        };
        let at = rfc3339(now_ns());
        let mut write = || -> std::io::Result<u64> {
            for f in raised {
                let line = EventLine {
                    event: "finding",
                    raised: at.clone(),
                    finding: &FindingRow::new(f, &self.sinks.services),
                };
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(raised.len() as u64)
        };
        match write() {
            Ok(n) => self.written += n,
            Err(e) => {
                self.write_error = Some(e);
                self.sinks.file = None;
            }
        }
    }
}

/// Now, in nanoseconds since the Unix epoch.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
