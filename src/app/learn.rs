//! `portflow learn` (and `capture --learn`): a policy from the traffic seen,
//! written whole when done, or added to an existing policy (`--update`).
use super::{load_services, options, AppError, Output};
use crate::cli::{LearnArgs, LearnOptions};
use portflow::detect::learn::{learn, Learned, Thresholds};
use portflow::detect::policy::{Policy, PolicyError};
use portflow::pipeline::{analyze_files, Analysis, Options};
use portflow::report::learned::{policy_text, update};
use portflow::services::Services;
use portflow::source::expand_inputs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A policy to add to, read and checked before any work.
pub struct Existing {
    path: PathBuf,
    text: String,
}

impl Existing {
    pub fn load(path: &Path) -> Result<Existing, AppError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AppError::Policy(PolicyError {
                path: path.display().to_string(),
                line: 0,
                column: 0,
                message: e.to_string(),
            })
        })?;
        Policy::parse(&path.display().to_string(), &text)?;
        Ok(Existing {
            path: path.to_path_buf(),
            text,
        })
    }
}

/// `portflow learn`.
pub fn run(args: LearnArgs) -> Result<u8, AppError> {
    let services = Arc::new(load_services(&args.engine.services)?);
    let existing = args.update.as_deref().map(Existing::load).transpose()?;
    let inputs = expand_inputs(&args.files)?;
    let opts = Options {
        filter: args.filter.clone(),
        ..options(&args.engine, services.clone())
    };
    // Opened first, so an unwritable path fails before the reading.
    let dest = args.output.as_deref().or(args.update.as_deref());
    let out = Output::open(dest)?;
    let analysis = analyze_files(&inputs, &opts, Arc::default())?;
    let mut failed = false;
    for f in &analysis.files {
        if let Some(e) = &f.error {
            eprintln!("portflow: {e}");
            failed = true;
        }
    }
    if failed {
        return Ok(2);
    }
    let source = match args.files.as_slice() {
        [one] => format!("{}", one.display()),
        many => format!("{} inputs", many.len()),
    };
    let source = format!("{source} ({})", span(&analysis));
    write_policy(
        &analysis,
        &services,
        &args.learn,
        existing.as_ref(),
        &source,
        out,
    )?;
    Ok(0)
}

/// The packets and their time span, for the file's header.
pub(super) fn span(a: &Analysis) -> String {
    let when = |ns| portflow::report::time::rfc3339(ns);
    format!(
        "{} packets, {} to {}",
        a.totals.packets,
        when(a.totals.first_ns),
        when(a.totals.last_ns)
    )
}

/// Learns from `analysis` and writes the policy (or the updated one) to
/// `out`; says on standard error what it holds.
pub fn write_policy(
    analysis: &Analysis,
    services: &Services,
    o: &LearnOptions,
    existing: Option<&Existing>,
    source: &str,
    out: Output,
) -> Result<(), AppError> {
    let th = Thresholds {
        min_flows: o.min_flows,
        min_clients: o.min_clients,
    };
    let learned = learn(&analysis.inventory, services, th, o.group);
    let text = match existing {
        Some(e) => update(&e.text, &e.path.display().to_string(), &learned)?,
        None => policy_text(&learned, source),
    };
    out.write_and_commit(|w| Ok(w.writer().write_all(text.as_bytes())?))?;
    say_what_was_learned(&learned, existing.is_some());
    Ok(())
}

fn say_what_was_learned(l: &Learned, updated: bool) {
    let ports = |allowed: bool| -> usize {
        l.entries
            .iter()
            .flat_map(|e| &e.ports)
            .filter(|p| p.allowed == allowed)
            .count()
    };
    eprintln!(
        "portflow: {} {} entries: {} ports allowed, {} below the thresholds (commented out)",
        if updated { "checked" } else { "learned" },
        l.entries.len(),
        ports(true),
        ports(false)
    );
}
