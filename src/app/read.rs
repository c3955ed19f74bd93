//! `portflow read`: analyse capture files and folders, write the report.
use super::progress::Progress;
use super::{
    add_findings, apply_bucket, findings_of, load_policy, load_services, options, report_rows,
    write_report,
};
use super::{AppError, Output};
use crate::cli::{CsvTable, Format, ReadArgs, ReadFormat};
use portflow::detect::policy::Policy;
use portflow::pipeline::timings::{process_cpu, thread_cpu};
use portflow::pipeline::{analyze_files, Analysis, Options};
use portflow::report::{csv, flows::write_flows, Report};
use portflow::services::Services;
use portflow::source::expand_inputs;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `portflow read`. On success the process exits here, without freeing what
/// the analysis holds: millions of small allocations take longer to free one
/// by one than the report takes to write, and the system reclaims them at
/// once.
pub fn run(args: ReadArgs) -> Result<u8, AppError> {
    let started = Instant::now();
    remove_unfinished_on_signals()?;
    let services = Arc::new(load_services(&args.analysis.engine.services)?);
    let policy = load_policy(&args.analysis)?;
    if args.table.is_some() && (args.format != ReadFormat::Csv || args.flows) {
        return Err(AppError::Usage(
            "--table chooses the table of --format csv (and --flows writes flows, not a table)"
                .into(),
        ));
    }
    let inputs = expand_inputs(&args.files)?;
    // Resolved and connected before any reading.
    let collector = args
        .ipfix
        .as_deref()
        .map(super::ipfix::connect)
        .transpose()?;
    let opts = Options {
        keep_flows: args.flows || collector.is_some(),
        filter: args.filter.clone(),
        keep_going: args.keep_going,
        ..options(&args.analysis.engine, services.clone())
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
    let mut analysis = analysis?;
    for w in &analysis.filter_warnings {
        eprintln!("portflow: warning: {w}");
    }
    let mut failed = false;
    for f in &analysis.files {
        if let Some(e) = &f.error {
            eprintln!("portflow: {e}");
            failed = true;
        }
        if let Some(e) = &f.cut_short {
            eprintln!("portflow: warning: {}", portflow::report::cut_short(e));
        }
    }
    let building = Instant::now();
    let (status, built, _report) = write(&args, &mut analysis, &services, policy.as_ref(), out)?;
    if let Some(c) = &collector {
        failed |= !export(c, &analysis);
    }
    if args.timings {
        let report = built - building;
        print_timings(&analysis, report, built.elapsed(), started.elapsed());
    }
    exit_now(if failed { 2 } else { status })
}

/// `--ipfix`: sends the flows and says how it went; false when messages
/// could not be sent.
fn export(c: &super::ipfix::Collector, a: &Analysis) -> bool {
    let sent = c.export(&a.flows);
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    eprintln!(
        "portflow: sent {} of {} in {} to {}",
        plural(sent.records as usize, "IPFIX record"),
        plural(a.flows.len(), "flow"),
        plural(sent.messages as usize, "message"),
        c.addr()
    );
    if let Some(e) = &sent.error {
        eprintln!(
            "portflow: {} of {} IPFIX messages to {} could not be sent: {e}",
            sent.failed,
            sent.messages,
            c.addr()
        );
    }
    sent.failed == 0
}

/// Writes the flows or the report; returns the status findings give, when
/// the report was built (before it was written), and the report.
fn write(
    args: &ReadArgs,
    analysis: &mut Analysis,
    services: &Services,
    policy: Option<&Policy>,
    out: Output,
) -> Result<(u8, Instant, Option<Report>), AppError> {
    if args.flows {
        let (flows, names) = (&analysis.flows, Some(&analysis.names));
        let seed = args.community_id_seed;
        out.write_and_commit(|o| {
            match args.format {
                ReadFormat::Csv => csv::write_flows(flows, services, seed, names, o.writer())?,
                _ => write_flows(flows, services, seed, names, o.writer())?,
            }
            Ok(())
        })?;
        return Ok((0, Instant::now(), None));
    }
    let format = match args.format {
        ReadFormat::Table => Format::Table,
        ReadFormat::Json => Format::Json,
        ReadFormat::Csv => Format::Csv(args.table.unwrap_or(CsvTable::Ports).into()),
    };
    let rows = report_rows(format, &args.analysis);
    apply_bucket(analysis, &args.analysis);
    let mut report = Report::build(analysis, services, rows);
    let found = findings_of(analysis, policy, services, &args.analysis);
    let status = add_findings(
        &mut report,
        &found,
        services,
        &analysis.names,
        &args.analysis,
    );
    let built = Instant::now();
    out.write_and_commit(|o| write_report(&report, format, args.analysis.top, o))?;
    Ok((status, built, Some(report)))
}

/// `--timings`: wall time per phase and CPU time per thread, on stderr.
fn print_timings(a: &Analysis, report: Duration, write: Duration, total: Duration) {
    let lines = a
        .timings
        .lines(report, write, total, thread_cpu(), process_cpu());
    for l in lines {
        eprintln!("portflow: {l}");
    }
}

/// Ctrl-C, SIGTERM or SIGHUP while reading: the temporary file of `-o` is
/// removed, then the process ends as the signal would have ended it.
fn remove_unfinished_on_signals() -> Result<(), AppError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| AppError::Usage(format!("cannot install signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("portflow-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                portflow::output::remove_unfinished();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        })
        .map_err(|e| AppError::Usage(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

/// Ends the process with `status`, once standard output is flushed; what is
/// still held is not freed.
fn exit_now(status: u8) -> ! {
    let _ = io::stdout().flush();
    std::process::exit(status.into())
}
