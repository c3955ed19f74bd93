//! `capture --flows FILE|-` and `capture --ipfix HOST:PORT`: each flow as it
//! ends, as one NDJSON line (the `read --flows` record, Community ID
//! included) a log shipper can tail, and as IPFIX records for a collector.
//! The capture threads hand over the flows that ended once per interval; a
//! thread of its own writes and sends them, so a slow disk or collector
//! never holds a capture thread (it loses batches instead, counted). The
//! flows still open when the capture stops follow at the end.
use super::ipfix::{now_s, Collector, Sent};
use super::AppError;
use crossbeam_channel::{bounded, Receiver, Sender};
use portflow::pipeline::live::FlowBatch;
use portflow::report::flows::write_flows;
use portflow::report::ipfix::Exporter;
use portflow::services::Services;
use std::io::Write;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Batches (one per capture thread and interval) that may wait.
const BACKLOG: usize = 256;

/// How the stream went.
#[derive(Default)]
pub struct Streamed {
    pub flows: u64,
    /// The first error writing the flows file (nothing more is written).
    pub write_error: Option<std::io::Error>,
    /// IPFIX records and messages sent (failed: refused, or not taken at once).
    pub ipfix: Sent,
}

/// The stream's thread and the end its batches go in at.
pub struct FlowStream {
    pub tx: Sender<FlowBatch>,
    handle: JoinHandle<Streamed>,
}

impl FlowStream {
    /// Starts the thread that writes flows to `file` and sends them to
    /// `collector`.
    pub fn start(
        file: Option<Box<dyn Write + Send>>,
        collector: Option<Collector>,
        services: Arc<Services>,
        seed: u16,
    ) -> Result<FlowStream, AppError> {
        let (tx, rx) = bounded(BACKLOG);
        let handle = std::thread::Builder::new()
            .name("portflow-flows".into())
            .spawn(move || stream(&rx, file, collector, &services, seed))
            .map_err(|e| AppError::Usage(format!("cannot start the flow stream: {e}")))?;
        Ok(FlowStream { tx, handle })
    }

    /// Waits for the stream to write and send what the capture threads
    /// handed over (they hand over the flows still open at the end last).
    pub fn finish(self) -> Streamed {
        drop(self.tx);
        self.handle.join().unwrap_or_default()
    }
}

fn stream(
    rx: &Receiver<FlowBatch>,
    mut file: Option<Box<dyn Write + Send>>,
    collector: Option<Collector>,
    services: &Services,
    seed: u16,
) -> Streamed {
    let mut out = Streamed::default();
    let mut exporter = Exporter::new(super::ipfix::DOMAIN);
    for batch in rx.iter() {
        out.flows += batch.ended.len() as u64;
        if let Some(w) = file.as_mut() {
            let written =
                write_flows(&batch.ended, services, seed, None, w).and_then(|()| w.flush());
            if let Err(e) = written {
                out.write_error = Some(e);
                file = None;
            }
        }
        if let Some(c) = &collector {
            let now = now_s();
            let mut send = |m: &[u8]| c.send(m, &mut out.ipfix);
            // Long flows' parts, then the flows that ended: whole, or what
            // they carried since their last part.
            for f in &batch.interim {
                exporter.add(f, now, &mut send);
            }
            for (f, reported) in batch.ended.iter().zip(&batch.reported) {
                match reported {
                    Some(r) => exporter.add(&r.since(f), now, &mut send),
                    None => exporter.add(f, now, &mut send),
                }
            }
            exporter.flush(now, &mut send);
            out.ipfix.records = exporter.records();
        }
    }
    out
}
