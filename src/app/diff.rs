//! `portflow diff`: two periods, from their JSON reports or their captures.
use super::{load_services, options, AppError, Output};
use crate::cli::{DiffArgs, ListFormat};
use portflow::pipeline::{analyze_files, Options};
use portflow::report::diff::{diff, table, DiffReport, Limits, Side};
use portflow::report::{Report, Rows};
use portflow::source::expand_inputs;
use std::path::Path;
use std::sync::Arc;

/// `portflow diff`.
pub fn run(args: DiffArgs) -> Result<u8, AppError> {
    let before = side(&args, &args.before)?;
    let after = side(&args, &args.after)?;
    let limits = Limits {
        factor: args.factor,
        min_flows: args.min_flows,
    };
    let changes = diff(&before, &after, limits);
    let (b, a) = (
        args.before.display().to_string(),
        args.after.display().to_string(),
    );
    let out = Output::open(args.output.as_deref())?;
    out.write_and_commit(|o| {
        match args.format {
            ListFormat::Table => o.writer().write_all(table(&b, &a, &changes).as_bytes())?,
            ListFormat::Json => {
                let r = DiffReport {
                    schema: "portflow.diff/1",
                    before: &b,
                    after: &a,
                    changes: &changes,
                };
                serde_json::to_writer_pretty(o.writer(), &r).map_err(std::io::Error::from)?;
                o.writer().write_all(b"\n")?;
            }
        }
        Ok(())
    })?;
    Ok(match args.fail_on {
        Some(level) if changes.iter().any(|c| c.level >= level.into()) => 1,
        _ => 0,
    })
}

/// One period: a JSON report (its last line, for `capture --format ndjson`
/// output), or the report of analysing a capture file or folder.
fn side(args: &DiffArgs, path: &Path) -> Result<Side, AppError> {
    if let Some(text) = json_text(path) {
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let parsed: Result<Side, _> =
            serde_json::from_str(&text).or_else(|_| serde_json::from_str(last));
        return match parsed {
            Ok(s) if s.schema.starts_with("portflow.report/") => Ok(s),
            Ok(s) => Err(AppError::Usage(format!(
                "{}: a {} document, not a portflow report",
                path.display(),
                s.schema
            ))),
            Err(e) => Err(AppError::Usage(format!(
                "{}: not a portflow JSON report: {e}",
                path.display()
            ))),
        };
    }
    let services = Arc::new(load_services(&args.engine.services)?);
    let opts = Options {
        filter: args.filter.clone(),
        ..options(&args.engine, services.clone())
    };
    let inputs = expand_inputs(&[path.to_path_buf()])?;
    let analysis = analyze_files(&inputs, &opts, Arc::default())?;
    if let Some(e) = analysis.first_error() {
        return Err(AppError::Usage(e.to_string()));
    }
    let report = Report::build(&analysis, &services, Rows::All);
    let value = serde_json::to_value(&report).map_err(std::io::Error::from)?;
    serde_json::from_value(value).map_err(|e| AppError::Usage(format!("{}: {e}", path.display())))
}

/// The file's text when it is JSON: its first byte that is not white space
/// (within the first 4 KiB; a capture is not read whole here) is `{`.
fn json_text(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    let first = head.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    std::fs::read_to_string(path).ok()
}
