//! `portflow capture`: a live capture with a refreshing view (or interval
//! objects), then the same report as `read`.
use super::feeds::{check_streams, say_how_events_went, serve_metrics, start_events};
use super::feeds::{start_stream, streams_to_stdout, Streams};
use super::write_report;
use super::{add_findings, findings_of, load_policy, load_services, options, report_rows};
use super::{AppError, Output};
use crate::cli::{CaptureArgs, CaptureFormat, Format};
use portflow::detect::Finding;
use portflow::pipeline::live::{self, CaptureSpec, LiveSummary, Snapshot, StopReason};
use portflow::pipeline::Analysis;
use portflow::pipeline::Options;
use portflow::report::live::{draw, Interval, LiveState, Screen};
use portflow::report::metrics::Metrics;
use portflow::report::Report;
use portflow::services::Services;
use portflow::source::live::{fanout, Live, LiveOptions, PcapWriter, Rotation};
use portflow::source::privileges::{self, Dropped};
use portflow::source::PcapFormat;
use std::io::{self, IsTerminal, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// How the capture shows itself and writes its report, from `--format` and
/// whether standard output is a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// The refreshing view on the terminal.
    view: bool,
    /// One JSON object per interval on standard output.
    intervals: bool,
    /// How the final report is written.
    report: Format,
}

impl Shape {
    /// One stream, one format: on a terminal the view and the table; not on
    /// a terminal NDJSON throughout (interval objects, the report last)
    /// unless a format was asked for.
    fn of(format: Option<CaptureFormat>, tty: bool) -> Shape {
        match format.unwrap_or(if tty {
            CaptureFormat::Table
        } else {
            CaptureFormat::Ndjson
        }) {
            CaptureFormat::Table => Shape {
                view: tty,
                intervals: false,
                report: Format::Table,
            },
            CaptureFormat::Json => Shape {
                view: false,
                intervals: false,
                report: Format::Json,
            },
            CaptureFormat::Ndjson => Shape {
                view: false,
                intervals: true,
                report: Format::Ndjson,
            },
        }
    }
}

/// `portflow capture`.
pub fn run(args: CaptureArgs) -> Result<u8, AppError> {
    let services = Arc::new(load_services(&args.analysis.engine.services)?);
    let policy = load_policy(&args.analysis)?;
    let streaming = args.flows.is_some() || args.ipfix.is_some();
    let opts = Options {
        keep_flows: streaming,
        ..options(&args.analysis.engine, services.clone())
    };
    let to_stdout = streams_to_stdout(&args)?;
    let collector = check_streams(&args)?;
    let rotation = rotation(&args)?; // refused before anything opens
    if args.interval.is_zero() {
        return Err(AppError::Usage("--interval must be more than 0".into()));
    }
    let threads = live::capture_threads(opts.workers);
    let Opened {
        handles,
        who,
        write,
        metrics_socket,
    } = open(&args, threads, rotation)?;
    let threads = handles.len();
    let level = install_stop_signals()?;
    announce(&args, &handles, &who);
    let mut shape = Shape::of(args.format, io::stdout().is_terminal());
    if to_stdout {
        // Standard output carries the flows or the events alone.
        (shape.view, shape.intervals) = (false, false);
    }
    let interface = live::interface_names(&handles);
    let loopback = handles.iter().any(|h| h.loopback);
    let metrics = metrics_socket
        .map(|socket| serve_metrics(socket, &interface, threads, args.metrics_top as usize))
        .transpose()?;
    let streams = Streams {
        flows: start_stream(&args, streaming, collector, &services)?,
        events: start_events(&args, metrics.clone(), &services, policy.clone(), threads)?,
    };
    let spec = CaptureSpec {
        lives: handles,
        count: args.count,
        duration: args.duration,
        write,
        interval: args.interval,
        ended_flows: streams.flows.as_ref().map(|s| s.tx.clone()),
        active: (args.ipfix.is_some() && !args.ipfix_active.is_zero()).then_some(args.ipfix_active),
        observed: streams.events.as_ref().map(|e| e.tx.clone()),
    };
    let (tx, rx) = crossbeam_channel::bounded(256);
    let publish = (shape.view || shape.intervals || metrics.is_some()).then_some(tx);
    let worker = std::thread::Builder::new()
        .name("portflow-capture".into())
        .spawn(move || live::capture(&opts, spec, level, publish))
        .map_err(|e| AppError::Usage(format!("cannot start the capture thread: {e}")))?;
    let mut screen = shape.view.then(Screen::enter);
    let mut state = LiveState::new(&interface, loopback, threads);
    let top = args.analysis.top as usize;
    show(rx, &mut state, &services, top, shape, metrics.as_deref())?;
    let result = worker
        .join()
        .map_err(|_| AppError::Usage("capture thread panicked".into()))?;
    if let Some(s) = screen.as_mut() {
        s.leave();
    }
    let (flows_failed, mut events) = streams.finish(&args)?;
    let (mut analysis, summary) = result?;
    if summary.stopped_by == StopReason::Aborted {
        return Ok(aborted(&summary));
    }
    let failed = say_why_it_stopped(&interface, &summary) || flows_failed;
    if let Some(w) = events.as_mut() {
        w.complete(&mut analysis);
    }
    super::apply_bucket(&mut analysis, &args.analysis);
    let found = findings_of(&mut analysis, policy.as_ref(), &services, &args.analysis);
    let events_failed = events
        .as_mut()
        .is_some_and(|w| !say_how_events_went(&args, w, &found));
    let status = report(&args, shape, &analysis, summary, &services, &found)?;
    learn_policy(&args, &analysis, &services, &interface)?;
    Ok(if failed || events_failed { 2 } else { status })
}

/// What the capture opened before and after giving up its privileges.
struct Opened {
    handles: Vec<Live>,
    who: Dropped,
    write: Option<PcapWriter>,
    /// `--metrics`: the socket bound, not yet served.
    metrics_socket: Option<TcpListener>,
}

/// Opens the interface (`threads` handles in one fanout group) and binds the
/// metrics socket, gives up the privileges opening needed, and makes the
/// `-w` file: before the drop when the user the capture goes on as could not
/// create it in its folder, else after.
fn open(args: &CaptureArgs, threads: usize, rotation: Rotation) -> Result<Opened, AppError> {
    let handles = open_interfaces(args, threads)?;
    let metrics_socket = args
        .metrics
        .as_deref()
        .map(super::metrics::bind)
        .transpose()?;
    let handle = &handles[0];
    let target = privileges::plan(args.user.as_deref())?;
    let format = PcapFormat {
        nanos: args.nano,
        ..PcapFormat::CLASSIC
    };
    let early = match (&args.write, target.switches_to()) {
        (Some(path), Some((uid, gid))) if !privileges::target_can_write_beside(path, &target) => {
            if rotation.is_on() {
                return Err(AppError::Usage(format!(
                    "{}: -C and -G make new files after the capture gives up its privileges, \
                     and that user cannot create files in that folder: use a folder it can \
                     write, or keep root with -Z root",
                    path.display()
                )));
            }
            let w = PcapWriter::create_for(path, handle.link, handle.snaplen, format, (uid, gid))
                .map_err(|error| output_error(path, error))?;
            Some(w)
        }
        _ => None,
    };
    // Before any other thread starts and before any other output file exists.
    let who = privileges::drop_to(&target)?;
    check_output_folders(args, &who, early.is_some())?;
    let write = match (early, &args.write) {
        (Some(w), _) => Some(w),
        (None, Some(path)) => Some(
            PcapWriter::rotating(
                path,
                handle.link,
                handle.snaplen,
                format,
                rotation,
                now_ns(),
            )
            .map_err(|error| output_error(path, error))?,
        ),
        (None, None) => None,
    };
    Ok(Opened {
        handles,
        who,
        write,
        metrics_socket,
    })
}

/// `-C`, `-G` and `-W` as a rotation (`-W` needs one of the others).
fn rotation(args: &CaptureArgs) -> Result<Rotation, AppError> {
    if args.file_count.is_some() && args.file_size.is_none() && args.rotate_seconds.is_none() {
        return Err(AppError::Usage(
            "-W COUNT keeps a ring of files that -C or -G start".into(),
        ));
    }
    Ok(Rotation {
        max_bytes: args.file_size.map(|mb| mb * 1_000_000),
        every: args.rotate_seconds.map(std::time::Duration::from_secs),
        keep: args.file_count.map(|n| n as u32),
    })
}

/// Now, in nanoseconds since the Unix epoch (a rotating `-w`'s first file starts then).
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub(super) fn output_error(path: &Path, error: std::io::Error) -> AppError {
    AppError::Output {
        path: path.to_path_buf(),
        error,
    }
}

/// How to open the interface, from the flags.
/// The interfaces asked for: the positional one, each `-i`, or libpcap's
/// default (`None`).
fn interfaces_asked(args: &CaptureArgs) -> Vec<Option<String>> {
    match (&args.interface, args.interface_flag.as_slice()) {
        (Some(i), _) => vec![Some(i.clone())],
        (None, []) => vec![None],
        (None, flags) => flags.iter().cloned().map(Some).collect(),
    }
}

/// Opens every interface asked for, each in its own fanout group of
/// `threads` shared out over them (at least one each). One `-w` file holds
/// one link type, so interfaces that differ are refused with `-w`.
fn open_interfaces(args: &CaptureArgs, threads: usize) -> Result<Vec<Live>, AppError> {
    let asked = interfaces_asked(args);
    let each = (threads / asked.len()).max(1);
    let mut handles = Vec::new();
    for (k, name) in asked.into_iter().enumerate() {
        let o = LiveOptions {
            interface: name,
            ..live_options(args)
        };
        handles.extend(fanout::open_group_of(&o, each, k as u32)?);
    }
    if args.write.is_some() && handles.iter().any(|h| h.link != handles[0].link) {
        return Err(AppError::Usage(format!(
            "-w writes one pcap file of one link type, and {} differ ({}): capture them apart",
            live::interface_names(&handles),
            handles
                .iter()
                .map(|h| h.link.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(handles)
}

fn live_options(args: &CaptureArgs) -> LiveOptions {
    LiveOptions {
        interface: None,
        snaplen: args.snaplen as i32,
        buffer_kib: args.buffer_kib as i32,
        promisc: !args.no_promisc,
        filter: args.filter.clone(),
        nanos: args.nano,
        ..LiveOptions::default()
    }
}

/// Refuses, before the capture starts, a folder the user the capture runs as
/// cannot create the report (or a `-w` file not made yet) in, saying what
/// works instead.
fn check_output_folders(args: &CaptureArgs, who: &Dropped, written: bool) -> Result<(), AppError> {
    let write = args.write.as_deref().filter(|_| !written);
    fn file(p: &Option<std::path::PathBuf>) -> Option<&Path> {
        p.as_deref().filter(|p| *p != Path::new("-"))
    }
    for (path, flag) in [
        (write, "-w"),
        (args.output.as_deref(), "-o"),
        (args.learn.as_deref(), "--learn"),
        (file(&args.flows), "--flows"),
        (file(&args.events), "--events"),
    ] {
        let Some(path) = path else { continue };
        if privileges::can_write_beside(path) {
            continue;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        return Err(AppError::Usage(format!(
            "{}: user {} cannot create files in that folder, and {flag} is written after \
             the capture gives up its privileges: use {flag} /tmp/{}, a folder {} can write, \
             or keep root with -Z root",
            path.display(),
            who.user,
            name.unwrap_or_else(|| "report".into()),
            who.user
        )));
    }
    Ok(())
}

/// The line tcpdump prints when it starts listening.
fn announce(args: &CaptureArgs, handles: &[Live], who: &Dropped) {
    let (handle, threads) = (&handles[0], handles.len());
    eprintln!(
        "portflow: listening on {}, link-type {}, snapshot length {} bytes{}{}{}",
        live::interface_names(handles),
        handle.link.name(),
        handle.snaplen,
        if threads > 1 {
            format!(", {threads} capture threads (kernel fanout by flow)")
        } else {
            String::new()
        },
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

/// Ctrl-C, SIGTERM and SIGHUP (the terminal went away): the first stops the
/// capture (the `-w` file is finished, the report follows), a second Ctrl-C
/// aborts at once (the `-w` file is still finished).
fn install_stop_signals() -> Result<Arc<AtomicU8>, AppError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let level = Arc::new(AtomicU8::new(live::RUN));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
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

/// Draws the view or writes interval objects, and updates the metrics, once
/// per completed tick, until the capture ends.
fn show(
    rx: crossbeam_channel::Receiver<Snapshot>,
    state: &mut LiveState,
    services: &Services,
    top: usize,
    shape: Shape,
    metrics: Option<&Mutex<Metrics>>,
) -> Result<(), AppError> {
    let rows = terminal_rows();
    let mut stdout = io::stdout().lock();
    for snap in rx.iter() {
        let Some(i) = state.update(snap, services, top) else {
            continue;
        };
        if let Some(m) = metrics {
            m.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .update(state.ports(), &i.totals, services);
        }
        if shape.view {
            let _ = draw(&i, rows, &mut stdout);
        } else if shape.intervals {
            write_interval(&i, &mut stdout)?;
        }
    }
    Ok(())
}

fn write_interval(i: &Interval, out: &mut impl Write) -> Result<(), AppError> {
    serde_json::to_writer(&mut *out, i).map_err(io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
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

/// `--learn`: the policy the capture shows, written whole.
fn learn_policy(
    args: &CaptureArgs,
    analysis: &Analysis,
    services: &Services,
    interface: &str,
) -> Result<(), AppError> {
    let Some(path) = &args.learn else {
        return Ok(());
    };
    let source = format!(
        "a capture on {interface} ({})",
        super::learn::span(analysis)
    );
    let out = Output::open(Some(path))?;
    super::learn::write_policy(analysis, services, &args.learning, None, &source, out)
}

/// Builds the report with its findings and writes it where it goes; the
/// status the findings give.
fn report(
    args: &CaptureArgs,
    shape: Shape,
    analysis: &Analysis,
    summary: LiveSummary,
    services: &Services,
    found: &[Finding],
) -> Result<u8, AppError> {
    let mut report = Report::build(
        analysis,
        services,
        report_rows(shape.report, &args.analysis),
    );
    report.live = Some(summary);
    let status = add_findings(
        &mut report,
        found,
        services,
        &analysis.names,
        &args.analysis,
    );
    let out = Output::open(args.output.as_deref())?;
    out.write_and_commit(|o| write_report(&report, shape.report, args.analysis.top, o))?;
    Ok(status)
}
