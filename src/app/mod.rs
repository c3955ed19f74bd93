//! What each command does, between the parsed arguments and the library:
//! `read`, `capture`, and the two listings (`interfaces`, `services`).

pub mod capture;
pub mod diff;
pub mod docs;
mod events;
mod feeds;
pub mod firewall;
mod ipfix;
pub mod learn;
pub mod listings;
mod metrics;
mod output;
mod progress;
pub mod read;
mod stream;

use crate::cli::{AnalysisArgs, EngineArgs, Format};
use portflow::detect::{self, policy::Policy, policy::PolicyError};
use portflow::pipeline::{Analysis, Options, RunError};
use portflow::report::{findings::FindingRow, table::write_table, Report, Rows};
use portflow::services::{Services, ServicesFileError};
use portflow::source::live::LiveError;
use portflow::source::privileges::PrivilegeError;
use portflow::source::{FileError, InputError};
use portflow::stats::flow::{Timeouts, MIN_FLOWS};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use output::Output;

/// An error that ends a command with exit status 2.
#[derive(Debug)]
pub enum AppError {
    /// Writing to standard output failed.
    Io(io::Error),
    /// A file the user asked for could not be written.
    Output {
        path: PathBuf,
        error: io::Error,
    },
    Input(InputError),
    File(FileError),
    Run(RunError),
    Live(LiveError),
    Policy(PolicyError),
    Services(ServicesFileError),
    Privileges(PrivilegeError),
    /// A request that cannot be carried out (a flag's value, a folder the
    /// capture could not write to...): the message says why.
    Usage(String),
}

impl AppError {
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, AppError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Io(e) => write!(f, "{e}"),
            AppError::Output { path, error } => write!(f, "{}: {error}", path.display()),
            AppError::Input(e) => write!(f, "{e}"),
            AppError::File(e) => write!(f, "{e}"),
            AppError::Run(e) => write!(f, "{e}"),
            AppError::Live(e) => write!(f, "{e}"),
            AppError::Policy(e) => write!(f, "{e}"),
            AppError::Services(e) => write!(f, "{e}"),
            AppError::Privileges(e) => write!(f, "cannot drop privileges: {e}"),
            AppError::Usage(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for AppError {}

macro_rules! from_error {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for AppError {
            fn from(e: $t) -> Self {
                AppError::$v(e)
            }
        })*
    };
}

from_error!(
    io::Error => Io,
    InputError => Input,
    FileError => File,
    RunError => Run,
    LiveError => Live,
    PolicyError => Policy,
    ServicesFileError => Services,
    PrivilegeError => Privileges,
);

/// The IANA registry, with a `--services` file's names over it.
fn load_services(path: &Option<PathBuf>) -> Result<Services, AppError> {
    let mut s = Services::iana();
    if let Some(p) = path {
        s.load_overrides(p)?;
    }
    Ok(s)
}

/// Loads `--policy` once, before any work, so a bad file fails fast.
fn load_policy(a: &AnalysisArgs) -> Result<Option<Policy>, AppError> {
    Ok(a.policy.as_deref().map(Policy::load).transpose()?)
}

/// Pipeline options from the shared analysis flags. The flow cap is shared
/// by the flow tables: one per flow worker, or the reader's own with one
/// thread.
fn options(a: &EngineArgs, services: Arc<Services>) -> Options {
    let workers = a
        .workers
        .map_or_else(|| Options::default().workers, |w| w as usize);
    let tables = portflow::pipeline::flow_tables(workers);
    let flow_cap = a.flow_cap as usize;
    if flow_cap / tables < MIN_FLOWS {
        eprintln!(
            "portflow: note: --flow-cap {flow_cap} over {tables} flow workers holds {MIN_FLOWS} \
             flows in each, {} in all",
            MIN_FLOWS * tables
        );
    }
    Options {
        workers,
        flow_cap,
        timeouts: Timeouts {
            tcp: a.tcp_timeout.saturating_mul(1_000_000_000),
            udp: a.udp_timeout.saturating_mul(1_000_000_000),
            ..Timeouts::default()
        },
        services,
        ..Options::default()
    }
}

/// `--bucket`: the time line's buckets at least that wide.
fn apply_bucket(a: &mut Analysis, args: &AnalysisArgs) {
    if let Some(b) = args.bucket {
        let level = portflow::stats::timeline::level_for(b.as_nanos() as u64);
        portflow::stats::align_timelines(&mut a.totals, &mut a.ports, level);
    }
}

/// The scan thresholds asked for.
fn thresholds(args: &AnalysisArgs) -> detect::Thresholds {
    detect::Thresholds {
        ports: args.scan_ports as usize,
        hosts: args.sweep_hosts as usize,
        window: args.scan_window,
    }
}

/// Every finding of an analysis.
fn findings_of(
    a: &mut Analysis,
    policy: Option<&Policy>,
    services: &Services,
    args: &AnalysisArgs,
) -> Vec<detect::Finding> {
    let th = thresholds(args);
    detect::findings(&a.inventory, &mut a.attempts.list, policy, services, th)
}

/// Adds findings to a report; returns 1 when one reaches `--fail-on`.
fn add_findings(
    report: &mut Report,
    found: &[detect::Finding],
    services: &Services,
    names: &portflow::stats::names::Names,
    args: &AnalysisArgs,
) -> u8 {
    report.findings = found
        .iter()
        .map(|f| FindingRow::new(f, services).named(f, names))
        .collect();
    if let Some(t) = report.timeline.as_mut() {
        t.place(found);
    }
    match args.fail_on {
        Some(level) if found.iter().any(|f| f.severity >= level.into()) => 1,
        _ => 0,
    }
}

/// The rows a report in `format` shows: the table, its `--top`; JSON, all.
fn report_rows(format: Format, a: &AnalysisArgs) -> Rows {
    match format {
        Format::Table => Rows::Top(a.top as usize),
        Format::Json | Format::Ndjson | Format::Csv(_) => Rows::All,
    }
}

/// Writes the report of an analysis in the chosen format.
fn write_report(
    report: &Report,
    format: Format,
    top: u64,
    out: &mut Output,
) -> Result<(), AppError> {
    match format {
        Format::Table => write_table(report, top as usize, out.writer())?,
        Format::Json => {
            serde_json::to_writer_pretty(out.writer(), report).map_err(io::Error::from)?;
            out.writer().write_all(b"\n")?;
        }
        Format::Ndjson => {
            serde_json::to_writer(out.writer(), report).map_err(io::Error::from)?;
            out.writer().write_all(b"\n")?;
        }
        Format::Csv(table) => portflow::report::csv::write_table(report, table, out.writer())?,
    }
    Ok(())
}
