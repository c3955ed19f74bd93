//! What a capture feeds while it runs, beside its view: the flow stream
//! (`--flows`, `--ipfix`), the findings raised (`--events`, the metrics)
//! and the metrics endpoint; which of them takes standard output.
use super::capture::output_error;
use super::events::{Events, Sinks, Watched};
use super::ipfix::Collector;
use super::stream::{FlowStream, Streamed};
use super::{thresholds, AppError};
use crate::cli::CaptureArgs;
use portflow::detect::policy::Policy;
use portflow::detect::watch::Watch;
use portflow::detect::Finding;
use portflow::report::metrics::Metrics;
use portflow::services::Services;
use std::io::{self, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Whether `--flows -` or `--events -` streams on standard output; refuses
/// both at once, and either without `-o` (the report needs a place).
pub(super) fn streams_to_stdout(args: &CaptureArgs) -> Result<bool, AppError> {
    let stdout = |p: &Option<std::path::PathBuf>| p.as_deref() == Some(Path::new("-"));
    match (stdout(&args.flows), stdout(&args.events)) {
        (true, true) => Err(AppError::Usage(
            "--flows - and --events - cannot share standard output: write one to a file".into(),
        )),
        (false, false) => Ok(false),
        (flows, _) if args.output.is_none() => Err(AppError::Usage(format!(
            "{} streams on standard output: write the report with -o FILE",
            if flows { "--flows -" } else { "--events -" }
        ))),
        _ => Ok(true),
    }
}

/// Connects the `--ipfix` collector (before any capture).
pub(super) fn check_streams(args: &CaptureArgs) -> Result<Option<Collector>, AppError> {
    args.ipfix
        .as_deref()
        .map(|spec| {
            super::ipfix::connect(spec)?
                .nonblocking()
                .map_err(|e| AppError::Usage(format!("--ipfix {spec}: {e}")))
        })
        .transpose()
}

/// The streams a capture feeds while it runs.
pub(super) struct Streams {
    pub flows: Option<FlowStream>,
    pub events: Option<Events>,
}

impl Streams {
    /// Waits for both to take what the capture handed on and says how the
    /// flows went: whether writing them failed, and the event stream.
    pub fn finish(self, args: &CaptureArgs) -> Result<(bool, Option<Watched>), AppError> {
        let flows_failed = self
            .flows
            .is_some_and(|s| !say_how_flows_went(args, &s.finish()));
        Ok((flows_failed, self.events.map(Events::finish).transpose()?))
    }
}

/// The thread that writes and sends the flows as they end, when asked for.
pub(super) fn start_stream(
    args: &CaptureArgs,
    streaming: bool,
    collector: Option<Collector>,
    services: &Arc<Services>,
) -> Result<Option<FlowStream>, AppError> {
    if !streaming {
        return Ok(None);
    }
    let file = stream_file(args.flows.as_deref())?;
    let seed = args.community_id_seed;
    FlowStream::start(file, collector, services.clone(), seed).map(Some)
}

/// The thread that raises findings while the capture runs, for `--events`
/// and the metrics.
pub(super) fn start_events(
    args: &CaptureArgs,
    metrics: Option<Arc<Mutex<Metrics>>>,
    services: &Arc<Services>,
    policy: Option<Policy>,
    threads: usize,
) -> Result<Option<Events>, AppError> {
    if args.events.is_none() && metrics.is_none() {
        return Ok(None);
    }
    let th = thresholds(&args.analysis);
    let watch = Watch::new(policy, services.clone(), th, threads);
    let sinks = Sinks {
        file: stream_file(args.events.as_deref())?,
        metrics,
        services: services.clone(),
    };
    Events::start(watch, sinks).map(Some)
}

/// Raises the report's findings not raised yet and says how the events
/// went; false when the events file could not be written whole.
pub(super) fn say_how_events_went(args: &CaptureArgs, w: &mut Watched, found: &[Finding]) -> bool {
    w.last(found);
    let Some(path) = &args.events else {
        return true;
    };
    match &w.write_error {
        Some(e) => eprintln!("portflow: --events {}: {e}", path.display()),
        None if path != Path::new("-") => {
            eprintln!(
                "portflow: {} findings written to {}",
                w.written,
                path.display()
            )
        }
        None => {}
    }
    w.write_error.is_none()
}

/// The capture's metrics, served on `socket` from now on.
pub(super) fn serve_metrics(
    socket: TcpListener,
    interface: &str,
    threads: usize,
    top: usize,
) -> Result<Arc<Mutex<Metrics>>, AppError> {
    let m = Arc::new(Mutex::new(Metrics::new(interface, threads, top)));
    if let Ok(addr) = socket.local_addr() {
        eprintln!("portflow: metrics at http://{addr}/metrics");
    }
    super::metrics::serve(socket, m.clone())?;
    Ok(m)
}

/// Where `--flows` or `--events` lines go: standard output, or the file
/// (written in place as the lines come, so that a log shipper can follow
/// it; a device or FIFO is written as it is).
fn stream_file(path: Option<&Path>) -> Result<Option<Box<dyn Write + Send>>, AppError> {
    let Some(path) = path else {
        return Ok(None);
    };
    if path == Path::new("-") {
        return Ok(Some(Box::new(io::stdout())));
    }
    let f = std::fs::File::create(path).map_err(|error| output_error(path, error))?;
    Ok(Some(Box::new(io::BufWriter::new(f))))
}

/// Says how the flow stream went; false when the flows file could not be
/// written whole.
fn say_how_flows_went(args: &CaptureArgs, s: &Streamed) -> bool {
    if let Some(path) = &args.flows {
        match &s.write_error {
            Some(e) => eprintln!("portflow: --flows {}: {e}", path.display()),
            None if path != Path::new("-") => {
                eprintln!("portflow: {} flows written to {}", s.flows, path.display())
            }
            None => {}
        }
    }
    if let Some(spec) = &args.ipfix {
        let sent = &s.ipfix;
        eprintln!(
            "portflow: sent {} IPFIX records in {} messages to {spec}{}",
            sent.records,
            sent.messages,
            match &sent.error {
                Some(e) => format!("; {} messages lost: {e}", sent.failed),
                None => String::new(),
            }
        );
    }
    s.write_error.is_none()
}
