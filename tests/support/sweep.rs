//! Reading many hostile files with a time and a memory limit, and summing up
//! what happened (the corpus and corruption sweeps).
use super::portflow;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Wall-clock limit per file.
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Address-space limit per run (RLIMIT_AS): a claimed length that became an
/// allocation of that size fails here instead of passing unnoticed.
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// How one read ended.
pub struct Outcome {
    pub file: PathBuf,
    /// Exit code; `None` when killed (time limit) or ended by a signal.
    pub code: Option<i32>,
    pub timed_out: bool,
    pub stderr: String,
    pub report: Option<Value>,
}

impl Outcome {
    /// What breaks the guarantees (exit 0 with a report and at most warnings
    /// naming the file, or exit 2 with one line naming the file), if anything.
    pub fn problem(&self) -> Option<String> {
        let name = self.file.display().to_string();
        if self.timed_out {
            return Some(format!("{name}: still running after {TIME_LIMIT:?}"));
        }
        let warning = format!("portflow: warning: {name}: ");
        match self.code {
            // A file cut short inside its last record: read to the cut, with
            // one warning naming the file.
            Some(0)
                if self.report.is_some()
                    && !self.stderr.lines().all(|l| l.starts_with(&warning)) =>
            {
                Some(format!(
                    "{name}: exit 0 with more than a warning naming the file: {}",
                    self.stderr
                ))
            }
            Some(0) if self.report.is_some() => None,
            Some(0) => Some(format!("{name}: exit 0 without a JSON report")),
            Some(2) => {
                let one_line = self.stderr.lines().count() == 1;
                let named = self.stderr.starts_with(&format!("portflow: {name}: "));
                (!one_line || !named)
                    .then(|| format!("{name}: exit 2 without one clear line: {}", self.stderr))
            }
            Some(c) => Some(format!("{name}: exit {c}: {}", self.stderr)),
            None => Some(format!("{name}: killed by a signal: {}", self.stderr)),
        }
    }
}

/// Reads `file` as `portflow read -q --format json FILE` under the limits.
pub fn read_limited(file: &Path) -> Outcome {
    let mut cmd = portflow();
    cmd.args(["read", "-q", "--format", "json"])
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY_LIMIT,
                rlim_max: MEMORY_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run portflow");
    // Drain both pipes while waiting, so a large report cannot block the child.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out_pipe, &mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
        s
    });
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break (Some(st), false);
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            break (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let code = if timed_out {
        None
    } else {
        status.and_then(|s| s.code())
    };
    Outcome {
        file: file.to_path_buf(),
        code,
        timed_out,
        stderr,
        report: serde_json::from_slice(&stdout).ok(),
    }
}

/// Reads every file on two threads; the outcomes in file order.
pub fn read_all(files: &[PathBuf]) -> Vec<Outcome> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::with_capacity(files.len()));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let o = read_limited(f);
                out.lock().unwrap().push((i, o));
            });
        }
    });
    let mut v = out.into_inner().unwrap();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, o)| o).collect()
}

/// `msg` with every run of digits replaced by N (so messages group by kind).
fn digits_as_n(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_digits = false;
    for c in msg.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The kind of the message that is part `nth` of `line` split at ": ": up
/// to "at byte offset", digits as N.
fn kind(line: &str, nth: usize) -> String {
    let msg = line
        .split(": ")
        .nth(nth)
        .unwrap_or("")
        .split(" at byte offset")
        .next()
        .unwrap_or("")
        .trim();
    digits_as_n(msg)
}

/// Files, exit codes and decode errors by layer and reason, as Markdown.
pub fn summary(title: &str, outcomes: &[Outcome]) -> String {
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors: BTreeMap<(String, String), (u64, usize)> = BTreeMap::new();
    let mut file_errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    let (mut packets, mut error_packets) = (0u64, 0u64);
    for o in outcomes {
        let code = match (o.timed_out, o.code) {
            (true, _) => "timed out".to_string(),
            (_, Some(c)) => format!("exit {c}"),
            (_, None) => "signal".to_string(),
        };
        *codes.entry(code).or_default() += 1;
        if o.code == Some(2) {
            // "portflow: FILE: MESSAGE at byte offset ..."
            let msg = kind(&o.stderr, 2);
            *file_errors
                .entry(msg.split(" (").next().unwrap_or("").to_string())
                .or_default() += 1;
        }
        if o.code == Some(0) {
            // "portflow: warning: FILE: MESSAGE at byte offset ..."
            for line in o.stderr.lines() {
                *warnings.entry(kind(line, 3)).or_default() += 1;
            }
        }
        let Some(r) = &o.report else { continue };
        packets += r["totals"]["packets"].as_u64().unwrap_or(0);
        error_packets += r["totals"]["decode_errors"].as_u64().unwrap_or(0);
        for row in r["totals"]["decode_error_detail"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let k = (
                row["layer"].as_str().unwrap_or("?").to_string(),
                row["reason"].as_str().unwrap_or("?").to_string(),
            );
            let e = errors.entry(k).or_default();
            e.0 += row["packets"].as_u64().unwrap_or(0);
            e.1 += 1;
        }
    }
    let mut s = format!("## {title}\n\n");
    s += &format!(
        "{} files; limits per file: {} s, {} MiB of address space.\n\n",
        outcomes.len(),
        TIME_LIMIT.as_secs(),
        MEMORY_LIMIT >> 20
    );
    s += "| outcome | files |\n|---|---|\n";
    for (c, n) in &codes {
        s += &format!("| {c} | {n} |\n");
    }
    if !file_errors.is_empty() {
        s += "\nFile errors (exit 2), by message:\n\n| message | files |\n|---|---|\n";
        for (m, n) in &file_errors {
            s += &format!("| {m} | {n} |\n");
        }
    }
    if !warnings.is_empty() {
        s += "\nFiles cut short inside their last record (exit 0: read to the cut, with a warning), \
              by message:\n\n| message | files |\n|---|---|\n";
        for (m, n) in &warnings {
            s += &format!("| {m} | {n} |\n");
        }
    }
    s += &format!(
        "\nPackets read from the files that exited 0: {packets}, of which {error_packets} with a decode \
         error, by layer and reason:\n\n| layer | reason | packets | files |\n|---|---|---|---|\n"
    );
    for ((l, r), (p, f)) in &errors {
        s += &format!("| {l} | {r} | {p} | {f} |\n");
    }
    s
}

/// Writes a sweep summary to `target/` (and to `$PORTFLOW_SWEEP_DOCS/NAME`
/// when set, to refresh the copy in docs/).
pub fn write_summary(name: &str, text: &str) {
    let target = super::root().join("target").join(name);
    let _ = std::fs::write(&target, text);
    if let Ok(dir) = std::env::var("PORTFLOW_SWEEP_DOCS") {
        std::fs::write(Path::new(&dir).join(name), text).expect("write the summary");
    }
    eprintln!("summary written to {}", target.display());
}
