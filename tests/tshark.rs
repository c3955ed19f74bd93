//! portflow's per-flow packet and byte counts, and its totals, equal tshark's
//! on every fixture. tshark must be installed (`make test` installs it); the
//! test fails, it does not skip, without it.
mod support;
use support::*;

fn fixtures_for_oracle() -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in ["generated", "corpus"] {
        let d = fixture(dir);
        let mut stack = vec![d];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if p.is_dir() {
                    stack.push(p);
                } else if !name.starts_with("bad-")
                    && !name.ends_with(".md")
                    && !name.ends_with(".txt")
                {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn flows_and_totals_equal_tsharks() {
    let files = fixtures_for_oracle();
    assert!(
        files.len() >= 20,
        "expected the fixture set, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let theirs = tshark_counts(f).unwrap_or_else(|e| panic!("{e}"));
        let ours = portflow_counts(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            theirs.packets > 0,
            "{}: tshark read no packets",
            f.display()
        );
        let d = diff(&ours, &theirs);
        if !d.is_empty() {
            failures.push(format!("{}:\n  {}", f.display(), d.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
}

/// Every capture under `corpus` (README and index left out), sorted.
fn corpus_files(corpus: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(corpus)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                if !n.ends_with(".md") && !n.ends_with(".tsv") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    files
}

/// One file: what tshark and portflow count.
type Compared = (
    std::path::PathBuf,
    Result<Counts, String>,
    Result<Counts, String>,
);

/// tshark's and portflow's counts of every file, on every core.
fn compare_all(files: Vec<std::path::PathBuf>) -> Vec<Compared> {
    let jobs = std::sync::Mutex::new(files.into_iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
        {
            s.spawn(|| loop {
                let Some(f) = jobs.lock().unwrap().next() else {
                    break;
                };
                let theirs = tshark_counts(&f);
                let ours = portflow_counts(&f);
                results.lock().unwrap().push((f, theirs, ours));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results
}

/// How far the two tools agree over a corpus.
#[derive(Default)]
struct Tally {
    compared: u64,
    agree: u64,
    both_reject: u64,
    only_tshark_reads: u64,
    only_we_read: u64,
    flows: u64,
    flows_equal: u64,
    pkts: u64,
    pkts_equal_flows: u64,
    /// One line per file that differs.
    lines: Vec<String>,
}

impl Tally {
    fn add(&mut self, name: &str, theirs: &Result<Counts, String>, ours: &Result<Counts, String>) {
        match (theirs, ours) {
            (Ok(t), Ok(o)) if t.packets > 0 || o.packets > 0 => {
                self.compared += 1;
                self.flows += t.flows.len() as u64;
                for (k, v) in &t.flows {
                    self.pkts += v.0;
                    if o.flows.get(k) == Some(v) {
                        self.flows_equal += 1;
                        self.pkts_equal_flows += v.0;
                    }
                }
                let d = diff(o, t);
                if d.is_empty() {
                    self.agree += 1;
                } else {
                    self.lines.push(format!(
                        "- `{name}`: {} difference(s); first: {}",
                        d.len(),
                        d[0]
                    ));
                }
            }
            (Ok(_), Ok(_)) | (Err(_), Err(_)) => self.both_reject += 1,
            (Ok(t), Err(e)) => {
                self.only_tshark_reads += 1;
                self.lines.push(format!(
                    "- `{name}`: portflow refused ({}), tshark read {} packets",
                    e.trim(),
                    t.packets
                ));
            }
            (Err(_), Ok(_)) => self.only_we_read += 1,
        }
    }

    fn summary(&self, files: usize) -> String {
        format!(
            "files: {files}\ncompared (both read packets): {}\nfiles in full agreement: {}\n\
             tshark flows: {}, equal in packets and bytes: {} ({:.2}%)\n\
             flow packets in equal flows: {} of {} ({:.2}%)\n\
             only tshark reads: {}; only portflow reads: {}; neither/empty: {}\n",
            self.compared,
            self.agree,
            self.flows,
            self.flows_equal,
            100.0 * self.flows_equal as f64 / self.flows.max(1) as f64,
            self.pkts_equal_flows,
            self.pkts,
            100.0 * self.pkts_equal_flows as f64 / self.pkts.max(1) as f64,
            self.only_tshark_reads,
            self.only_we_read,
            self.both_reject,
        )
    }
}

/// Agreement with tshark over a whole corpus (default `../shared/corpus`, or
/// `PORTFLOW_CORPUS`). Not part of the test run: `scripts/tshark-agreement.sh`
/// runs it and writes the figures to `docs/TSHARK-AGREEMENT.md`.
#[test]
#[ignore]
fn corpus_agreement() {
    let corpus = std::env::var("PORTFLOW_CORPUS")
        .unwrap_or_else(|_| root().join("../shared/corpus").display().to_string());
    let results = compare_all(corpus_files(&corpus));
    let mut tally = Tally::default();
    for (f, theirs, ours) in &results {
        let name = f.strip_prefix(&corpus).unwrap_or(f).display().to_string();
        tally.add(&name, theirs, ours);
    }
    let summary = tally.summary(results.len());
    println!("{summary}");
    if let Ok(out) = std::env::var("PORTFLOW_AGREEMENT_OUT") {
        std::fs::write(
            out,
            format!(
                "{summary}\nfiles that differ:\n{}\n",
                tally.lines.join("\n")
            ),
        )
        .unwrap();
    }
}
