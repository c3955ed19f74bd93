//! What each subcommand does, between the parsed arguments and the library.
use crate::cli::{AnalysisArgs, CaptureArgs, Format, InterfacesArgs, ReadArgs, ServicesArgs};
use crate::detect::{self, policy::Policy};
use crate::output::OutputFile;
use crate::pipeline::{analyze_files, live, Analysis, Options, RunError};
use crate::report::live::{draw, LiveState, Screen};
use crate::report::{flows::write_flows, table::write_table, Report};
use crate::services::{Services, Transport};
use crate::source::live::LiveOptions;
use crate::source::{expand_inputs, privileges, MAX_SNAPLEN};
use crate::stats::flow::Timeouts;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error that ends a command with exit status 2.
#[derive(Debug)]
pub enum AppError {
    Message(String),
    Io(io::Error),
}

impl AppError {
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, AppError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Message(m) => f.write_str(m),
            AppError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for AppError {
    fn from(e: io::Error) -> Self {
        AppError::Io(e)
    }
}

impl From<String> for AppError {
    fn from(m: String) -> Self {
        AppError::Message(m)
    }
}

fn load_services(path: &Option<PathBuf>) -> Result<Services, AppError> {
    let mut s = Services::iana();
    if let Some(p) = path {
        s.load_overrides(p)
            .map_err(|e| AppError::Message(e.to_string()))?;
    }
    Ok(s)
}

/// Output to stdout, or to a file written under a temporary name and renamed
/// into place only when complete ([`OutputFile`]); an error names the file.
pub struct Output {
    w: Sink,
}

enum Sink {
    Stdout(io::BufWriter<io::Stdout>),
    File(io::BufWriter<OutputFile>),
}

impl Output {
    pub fn open(path: Option<&Path>) -> Result<Output, AppError> {
        let w = match path {
            None => Sink::Stdout(io::BufWriter::with_capacity(1 << 16, io::stdout())),
            Some(p) => {
                let f = OutputFile::create(p).map_err(|e| format!("{}: {e}", p.display()))?;
                Sink::File(io::BufWriter::with_capacity(1 << 16, f))
            }
        };
        Ok(Output { w })
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        match &mut self.w {
            Sink::Stdout(w) => w,
            Sink::File(w) => w,
        }
    }

    /// The file's name, for messages (`None` for standard output).
    pub fn name(&self) -> Option<&Path> {
        match &self.w {
            Sink::Stdout(_) => None,
            Sink::File(w) => Some(w.get_ref().dest()),
        }
    }

    /// Writes with `f`, then commits; an error writing a file names the file
    /// (and the temporary file is removed).
    pub fn write_and_commit(
        mut self,
        f: impl FnOnce(&mut Output) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        if let Err(e) = f(&mut self) {
            return Err(match self.name() {
                Some(dest) if !e.is_broken_pipe() => format!("{}: {e}", dest.display()).into(),
                _ => e,
            });
        }
        self.commit()
    }

    /// Flushes and, for a file, syncs it and renames it into place.
    pub fn commit(self) -> Result<(), AppError> {
        match self.w {
            Sink::Stdout(mut w) => Ok(w.flush()?),
            Sink::File(w) => {
                let dest = w.get_ref().dest().to_path_buf();
                let done = w
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(OutputFile::commit);
                done.map_err(|e| format!("{}: {e}", dest.display()).into())
            }
        }
    }
}

/// A progress line on stderr while files are read (only on a terminal).
struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(total: Option<u64>, bytes: Arc<AtomicU64>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut shown = false;
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if started.elapsed() < Duration::from_millis(800) {
                    continue;
                }
                let b = bytes.load(Ordering::Relaxed);
                let rate = b as f64 / started.elapsed().as_secs_f64();
                let line = match total {
                    Some(t) if t > 0 => {
                        let frac = (b as f64 / t as f64).min(1.0);
                        let filled = (frac * 30.0) as usize;
                        format!(
                            "[{}{}] {:>3.0}% {} of {} {}/s",
                            "#".repeat(filled),
                            " ".repeat(30 - filled),
                            frac * 100.0,
                            crate::report::table::human_bytes(b),
                            crate::report::table::human_bytes(t),
                            crate::report::table::human_bytes(rate as u64)
                        )
                    }
                    _ => format!(
                        "{} read, {}/s",
                        crate::report::table::human_bytes(b),
                        crate::report::table::human_bytes(rate as u64)
                    ),
                };
                eprint!("\r\x1b[2K{line}");
                shown = true;
            }
            if shown {
                eprint!("\r\x1b[2K");
            }
        });
        Progress {
            done,
            handle: Some(handle),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Pipeline options from the shared analysis flags.
fn options(a: &AnalysisArgs, services: Arc<Services>) -> Result<Options, AppError> {
    if a.workers == Some(0) {
        return Err("--workers must be at least 1".to_string().into());
    }
    Ok(Options {
        workers: a.workers.unwrap_or_else(|| Options::default().workers),
        flow_cap: a.flow_cap.max(1),
        timeouts: Timeouts {
            tcp: a.tcp_timeout.saturating_mul(1_000_000_000),
            udp: a.udp_timeout.saturating_mul(1_000_000_000),
            ..Timeouts::default()
        },
        services,
        ..Options::default()
    })
}

/// Loads `--policy` once, before any work, so a bad file fails fast.
fn load_policy(a: &AnalysisArgs) -> Result<Option<Policy>, AppError> {
    a.policy
        .as_deref()
        .map(Policy::load)
        .transpose()
        .map_err(|e| AppError::Message(e.to_string()))
}

/// Adds the findings to a report; returns 1 when one reaches `--fail-on`.
fn add_findings(
    report: &mut Report,
    a: &mut Analysis,
    policy: Option<&Policy>,
    services: &Services,
    args: &AnalysisArgs,
) -> u8 {
    let th = detect::Thresholds {
        ports: args.scan_ports.max(1),
        hosts: args.sweep_hosts.max(1),
        window: args.scan_window,
    };
    let found = detect::findings(&a.inventory, &mut a.attempts.list, policy, services, th);
    report.findings = found
        .iter()
        .map(|f| crate::report::findings::FindingRow::new(f, services))
        .collect();
    match args.fail_on {
        Some(level) if found.iter().any(|f| f.severity >= level.into()) => 1,
        _ => 0,
    }
}

/// The rows a report in `format` shows: the table, its `--top`; JSON, all.
fn report_rows(format: Format, a: &AnalysisArgs) -> crate::report::Rows {
    match format {
        Format::Table => crate::report::Rows::Top(a.top),
        Format::Json | Format::Ndjson => crate::report::Rows::All,
    }
}

/// Writes the report of an analysis in the chosen format.
fn write_report(
    report: &Report,
    format: Format,
    top: usize,
    out: &mut Output,
) -> Result<(), AppError> {
    match format {
        Format::Table => write_table(report, top, out.writer())?,
        Format::Json => {
            serde_json::to_writer_pretty(out.writer(), report).map_err(io::Error::from)?;
            out.writer().write_all(b"\n")?;
        }
        Format::Ndjson => {
            serde_json::to_writer(out.writer(), report).map_err(io::Error::from)?;
            out.writer().write_all(b"\n")?;
        }
    }
    Ok(())
}

/// `portflow read`.
pub fn read(args: ReadArgs) -> Result<u8, AppError> {
    let started = Instant::now();
    let services = Arc::new(load_services(&args.analysis.services)?);
    let policy = load_policy(&args.analysis)?;
    let inputs = expand_inputs(&args.files)?;
    let opts = Options {
        keep_flows: args.flows,
        filter: args.filter.clone(),
        keep_going: args.keep_going,
        ..options(&args.analysis, services.clone())?
    };
    // Opened first, so an unwritable -o fails before the reading.
    let out = Output::open(args.output.as_deref())?;
    let bytes = Arc::new(AtomicU64::new(0));
    let progress = (!args.quiet && io::stderr().is_terminal()).then(|| {
        let total = inputs.iter().map(|i| i.size()).sum::<Option<u64>>();
        Progress::start(total, bytes.clone())
    });
    let analysis = analyze_files(&inputs, &opts, bytes);
    drop(progress);
    let mut analysis = match analysis {
        Ok(a) => a,
        Err(RunError::File(e)) => return Err(AppError::Message(e.to_string())),
        Err(e) => return Err(AppError::Message(e.to_string())),
    };
    for w in &analysis.filter_warnings {
        eprintln!("portflow: warning: {w}");
    }
    let mut failed = false;
    for f in &analysis.files {
        if let Some(e) = &f.error {
            eprintln!("portflow: {e}");
            failed = true;
        }
    }
    let mut status = 0;
    let building = Instant::now();
    let mut built = building;
    if args.flows {
        out.write_and_commit(|o| Ok(write_flows(&analysis.flows, &services, o.writer())?))?;
    } else {
        let mut report = Report::build(
            &analysis,
            &services,
            report_rows(args.format, &args.analysis),
        );
        status = add_findings(
            &mut report,
            &mut analysis,
            policy.as_ref(),
            &services,
            &args.analysis,
        );
        built = Instant::now();
        out.write_and_commit(|o| write_report(&report, args.format, args.analysis.top, o))?;
        // Freeing millions of small allocations one by one takes longer than
        // writing the report; the process ends right after this.
        std::mem::forget(report);
    }
    if args.timings {
        let lines = analysis.timings.lines(
            built - building,
            built.elapsed(),
            started.elapsed(),
            crate::pipeline::timings::thread_cpu(),
            crate::pipeline::timings::process_cpu(),
        );
        for l in lines {
            eprintln!("portflow: {l}");
        }
    }
    std::mem::forget(analysis);
    Ok(if failed { 2 } else { status })
}

/// `portflow services`.
pub fn services(args: ServicesArgs) -> Result<u8, AppError> {
    let services = load_services(&args.services)?;
    let mut found = Vec::new();
    for q in &args.queries {
        let (num, proto) = match q.split_once('/') {
            Some((n, p)) => (
                n,
                Some(
                    Transport::from_name(p)
                        .ok_or_else(|| format!("unknown protocol '{p}' in '{q}'"))?,
                ),
            ),
            None => (q.as_str(), None),
        };
        let entries = match num.parse::<u32>() {
            Ok(n) if n <= 65535 => services.by_port(n as u16),
            Ok(n) => return Err(format!("port {n} is out of range (0-65535)").into()),
            Err(_) => services.by_name(num),
        };
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| proto.is_none_or(|p| e.transport == p))
            .collect();
        if entries.is_empty() {
            eprintln!("portflow: no registry entry for '{q}'");
        }
        found.extend(entries);
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        Format::Json | Format::Ndjson => {
            serde_json::to_writer_pretty(&mut out, &found).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Table => {
            for e in &found {
                let range = if e.port_end != e.port {
                    format!("{}-{}", e.port, e.port_end)
                } else {
                    e.port.to_string()
                };
                writeln!(
                    out,
                    "{:<6} {:<5} {:<24} {:<10} {}{}",
                    range,
                    e.transport.as_str(),
                    e.name,
                    e.class.as_str(),
                    e.description,
                    if e.source == crate::services::Source::Local {
                        " (local)"
                    } else {
                        ""
                    }
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if found.is_empty() { 2 } else { 0 })
}

/// Ctrl-C and SIGTERM: the first stops the capture (report follows), a second
/// Ctrl-C aborts at once.
fn install_stop_signals() -> Result<Arc<AtomicU8>, AppError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let level = Arc::new(AtomicU8::new(live::RUN));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
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
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(level)
}

/// `portflow capture`.
pub fn capture(args: CaptureArgs) -> Result<u8, AppError> {
    let services = Arc::new(load_services(&args.analysis.services)?);
    let policy = load_policy(&args.analysis)?;
    let opts = options(&args.analysis, services.clone())?;
    if args.interval.is_zero() {
        return Err("--interval must be more than 0".to_string().into());
    }
    let live_opts = LiveOptions {
        interface: args.interface.clone().or(args.interface_flag.clone()),
        snaplen: args.snaplen.clamp(1, MAX_SNAPLEN as i32),
        buffer_kib: args.buffer_kib.max(1),
        promisc: !args.no_promisc,
        filter: args.filter.clone(),
        ..LiveOptions::default()
    };
    let handle =
        crate::source::live::open(&live_opts).map_err(|e| AppError::Message(e.to_string()))?;
    // Before any other thread starts and before any output file exists.
    let who = privileges::drop_after_open(args.user.as_deref())
        .map_err(|e| AppError::Message(format!("cannot drop privileges: {e}")))?;
    for path in [args.write.as_deref(), args.output.as_deref()]
        .into_iter()
        .flatten()
    {
        if !privileges::can_write_beside(path) {
            return Err(AppError::Message(format!(
                "{}: user {} cannot create files in that folder (output is written after \
                 privileges are dropped; choose a folder {} can write, or -Z root)",
                path.display(),
                who.user,
                who.user
            )));
        }
    }
    let interface = handle.interface.clone();
    let level = install_stop_signals()?;
    eprintln!(
        "portflow: listening on {interface}, link-type {}, snapshot length {} bytes{}{}",
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
    let tty = io::stdout().is_terminal() && args.output.is_none();
    let view = args.format == Format::Table && tty;
    let intervals = args.format == Format::Ndjson || (args.format == Format::Table && !tty);
    let (tx, rx) = crossbeam_channel::bounded(256);
    let spec = live::CaptureSpec {
        live: handle,
        count: args.count,
        duration: args.duration,
        write: args.write.clone(),
        interval: args.interval,
    };
    let worker = {
        let level = level.clone();
        let publish = (view || intervals).then_some(tx);
        std::thread::Builder::new()
            .name("portflow-capture".into())
            .spawn(move || live::capture(&opts, spec, level, publish))
            .map_err(|e| format!("cannot start the capture thread: {e}"))?
    };
    let mut screen = view.then(Screen::enter);
    let mut state = LiveState::new(&interface);
    let rows = terminal_rows();
    let mut stdout = io::stdout().lock();
    for snap in rx.iter() {
        if let Some(i) = state.update(snap, &services, args.analysis.top) {
            if view {
                let _ = draw(i, rows, &mut stdout);
            } else if intervals {
                serde_json::to_writer(&mut stdout, i).map_err(io::Error::from)?;
                stdout.write_all(b"\n")?;
                stdout.flush()?;
            }
        }
    }
    drop(stdout);
    let result = worker
        .join()
        .map_err(|_| "capture thread panicked".to_string())?;
    if let Some(s) = screen.as_mut() {
        s.leave();
    }
    let (mut analysis, summary) = result.map_err(|e| AppError::Message(e.to_string()))?;
    if summary.stopped_by == live::StopReason::Aborted {
        if let Some(f) = &summary.written {
            eprintln!(
                "portflow: aborted; {f} is complete ({} packets)",
                summary.written_packets
            );
        } else {
            eprintln!("portflow: aborted");
        }
        return Ok(130);
    }
    let failed = summary.stopped_by.is_error();
    if let live::StopReason::InterfaceError(m) | live::StopReason::WriteError(m) =
        &summary.stopped_by
    {
        eprintln!("portflow: capture on {interface} stopped: {m}");
    }
    if let (live::StopReason::WriteError(_), Some(f)) = (&summary.stopped_by, &summary.written) {
        eprintln!(
            "portflow: {f} holds the {} packets written whole before that",
            summary.written_packets
        );
    }
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

fn terminal_rows() -> usize {
    std::env::var("LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

/// `portflow interfaces`.
pub fn interfaces(args: InterfacesArgs) -> Result<u8, AppError> {
    let list = crate::source::live::interfaces().map_err(AppError::Message)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        Format::Json | Format::Ndjson => {
            serde_json::to_writer_pretty(&mut out, &list).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Table => {
            for i in &list {
                let mut flags = Vec::new();
                for (on, name) in [
                    (i.up, "up"),
                    (i.running, "running"),
                    (i.loopback, "loopback"),
                    (i.wireless, "wireless"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                writeln!(
                    out,
                    "{:<16} {:<24} {}{}",
                    i.name,
                    flags.join(","),
                    i.addresses.join(" "),
                    i.description
                        .as_deref()
                        .map(|d| format!("  ({d})"))
                        .unwrap_or_default()
                )?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}
