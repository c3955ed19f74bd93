//! `portflow capture`: a live capture with a refreshing view (or interval
//! objects), then the same report as `read`.
use super::{add_findings, load_policy, load_services, options, report_rows, write_report};
use super::{AppError, Output};
use crate::cli::{CaptureArgs, Format};
use portflow::pipeline::live::{self, CaptureSpec, LiveSummary, Snapshot, StopReason};
use portflow::report::live::{draw, LiveState, Screen};
use portflow::report::Report;
use portflow::services::Services;
use portflow::source::live::{Live, LiveOptions, PcapWriter};
use portflow::source::privileges::{self, Dropped};
use portflow::source::MAX_SNAPLEN;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// `portflow capture`.
pub fn run(args: CaptureArgs) -> Result<u8, AppError> {
    let services = Arc::new(load_services(&args.analysis.services)?);
    let policy = load_policy(&args.analysis)?;
    let opts = options(&args.analysis, services.clone())?;
    if args.interval.is_zero() {
        return Err(AppError::Usage("--interval must be more than 0".into()));
    }
    let handle = portflow::source::live::open(&live_options(&args))?;
    // Before any other thread starts and before any output file exists.
    let who = privileges::drop_after_open(args.user.as_deref())?;
    check_output_folders(&args, &who)?;
    let write = match &args.write {
        Some(path) => Some(
            PcapWriter::create(path, handle.link, handle.snaplen).map_err(|error| {
                AppError::Output {
                    path: path.clone(),
                    error,
                }
            })?,
        ),
        None => None,
    };
    let level = install_stop_signals()?;
    announce(&args, &handle, &who);
    let interface = handle.interface.clone();
    let tty = io::stdout().is_terminal() && args.output.is_none();
    let view = args.format == Format::Table && tty;
    let intervals = args.format == Format::Ndjson || (args.format == Format::Table && !tty);
    let (tx, rx) = crossbeam_channel::bounded(256);
    let spec = CaptureSpec {
        live: handle,
        count: args.count,
        duration: args.duration,
        write,
        interval: args.interval,
    };
    let publish = (view || intervals).then_some(tx);
    let worker = std::thread::Builder::new()
        .name("portflow-capture".into())
        .spawn(move || live::capture(&opts, spec, level, publish))
        .map_err(|e| AppError::Usage(format!("cannot start the capture thread: {e}")))?;
    let mut screen = view.then(Screen::enter);
    show(rx, &interface, &services, &args, view)?;
    let result = worker
        .join()
        .map_err(|_| AppError::Usage("capture thread panicked".into()))?;
    if let Some(s) = screen.as_mut() {
        s.leave();
    }
    let (mut analysis, summary) = result?;
    if summary.stopped_by == StopReason::Aborted {
        return Ok(aborted(&summary));
    }
    let failed = say_why_it_stopped(&interface, &summary);
    let mut report = Report::build(
        &analysis,
        &services,
        report_rows(args.format, &args.analysis),
    );
    report.live = Some(summary);
    let status = add_findings(
        &mut report,
        &mut analysis,
        policy.as_ref(),
        &services,
        &args.analysis,
    );
    let out = Output::open(args.output.as_deref())?;
    out.write_and_commit(|o| write_report(&report, args.format, args.analysis.top, o))?;
    Ok(if failed { 2 } else { status })
}

/// How to open the interface, from the flags.
fn live_options(args: &CaptureArgs) -> LiveOptions {
    LiveOptions {
        interface: args.interface.clone().or(args.interface_flag.clone()),
        snaplen: args.snaplen.clamp(1, MAX_SNAPLEN as i32),
        buffer_kib: args.buffer_kib.max(1),
        promisc: !args.no_promisc,
        filter: args.filter.clone(),
        ..LiveOptions::default()
    }
}

/// Refuses, before the capture starts, output folders the user the capture
/// runs as cannot create files in.
fn check_output_folders(args: &CaptureArgs, who: &Dropped) -> Result<(), AppError> {
    for path in [args.write.as_deref(), args.output.as_deref()]
        .into_iter()
        .flatten()
    {
        if !privileges::can_write_beside(path) {
            return Err(AppError::Usage(format!(
                "{}: user {} cannot create files in that folder (output is written after \
                 privileges are dropped; choose a folder {} can write, or -Z root)",
                path.display(),
                who.user,
                who.user
            )));
        }
    }
    Ok(())
}

/// The line tcpdump prints when it starts listening.
fn announce(args: &CaptureArgs, handle: &Live, who: &Dropped) {
    eprintln!(
        "portflow: listening on {}, link-type {}, snapshot length {} bytes{}{}",
        handle.interface,
        handle.link.name(),
        handle.snaplen,
        args.filter
            .as_deref()
            .map(|f| format!(", filter '{f}'"))
            .unwrap_or_default(),
        if who.changed {
            format!(", running as user {}", who.user)
        } else {
            String::new()
        }
    );
}

/// Ctrl-C and SIGTERM: the first stops the capture (report follows), a second
/// Ctrl-C aborts at once.
fn install_stop_signals() -> Result<Arc<AtomicU8>, AppError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let level = Arc::new(AtomicU8::new(live::RUN));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| AppError::Usage(format!("cannot install signal handlers: {e}")))?;
    let l = level.clone();
    std::thread::Builder::new()
        .name("portflow-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let was = l.load(Ordering::Relaxed);
                if was == live::RUN {
                    l.store(live::STOP, Ordering::Relaxed);
                } else if sig == SIGINT {
                    l.store(live::ABORT, Ordering::Relaxed);
                }
            }
        })
        .map_err(|e| AppError::Usage(format!("cannot start the signal thread: {e}")))?;
    Ok(level)
}

/// Draws the view (`view`) or writes interval objects from the capture's
/// snapshots until the capture ends.
fn show(
    rx: crossbeam_channel::Receiver<Snapshot>,
    interface: &str,
    services: &Services,
    args: &CaptureArgs,
    view: bool,
) -> Result<(), AppError> {
    let mut state = LiveState::new(interface);
    let rows = terminal_rows();
    let mut stdout = io::stdout().lock();
    for snap in rx.iter() {
        if let Some(i) = state.update(snap, services, args.analysis.top) {
            if view {
                let _ = draw(i, rows, &mut stdout);
            } else {
                serde_json::to_writer(&mut stdout, i).map_err(io::Error::from)?;
                stdout.write_all(b"\n")?;
                stdout.flush()?;
            }
        }
    }
    Ok(())
}

fn terminal_rows() -> usize {
    std::env::var("LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

/// A capture quit by a second Ctrl-C: what was kept, and status 130.
fn aborted(summary: &LiveSummary) -> u8 {
    if let Some(f) = &summary.written {
        eprintln!(
            "portflow: aborted; {f} is complete ({} packets)",
            summary.written_packets
        );
    } else {
        eprintln!("portflow: aborted");
    }
    130
}

/// Says why a capture that failed stopped; whether it failed.
fn say_why_it_stopped(interface: &str, summary: &LiveSummary) -> bool {
    if let StopReason::InterfaceError(m) | StopReason::WriteError(m) = &summary.stopped_by {
        eprintln!("portflow: capture on {interface} stopped: {m}");
    }
    if let (StopReason::WriteError(_), Some(f)) = (&summary.stopped_by, &summary.written) {
        eprintln!(
            "portflow: {f} holds the {} packets written whole before that",
            summary.written_packets
        );
    }
    summary.stopped_by.is_error()
}
