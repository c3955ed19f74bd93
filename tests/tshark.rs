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

/// Agreement with tshark over a whole corpus (default `../shared/corpus`, or
/// `PORTFLOW_CORPUS`). Not part of the test run: `scripts/tshark-agreement.sh`
/// runs it and writes the figures to `docs/TSHARK-AGREEMENT.md`.
#[test]
#[ignore]
fn corpus_agreement() {
    let corpus = std::env::var("PORTFLOW_CORPUS")
        .unwrap_or_else(|_| root().join("../shared/corpus").display().to_string());
    let mut files = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(&corpus)];
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
    let jobs = std::sync::Mutex::new(files.clone().into_iter());
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
    let (mut compared, mut agree, mut both_reject, mut only_tshark_reads, mut only_we_read) =
        (0, 0, 0, 0, 0);
    let (mut flows, mut flows_equal, mut pkts, mut pkts_equal_flows) = (0u64, 0u64, 0u64, 0u64);
    let mut lines = Vec::new();
    for (f, theirs, ours) in &results {
        let name = f.strip_prefix(&corpus).unwrap_or(f).display().to_string();
        match (theirs, ours) {
            (Ok(t), Ok(o)) if t.packets > 0 || o.packets > 0 => {
                compared += 1;
                flows += t.flows.len() as u64;
                for (k, v) in &t.flows {
                    pkts += v.0;
                    if o.flows.get(k) == Some(v) {
                        flows_equal += 1;
                        pkts_equal_flows += v.0;
                    }
                }
                let d = diff(o, t);
                if d.is_empty() {
                    agree += 1;
                } else {
                    lines.push(format!(
                        "- `{name}`: {} difference(s); first: {}",
                        d.len(),
                        d[0]
                    ));
                }
            }
            (Ok(_), Ok(_)) => both_reject += 1,
            (Ok(t), Err(e)) => {
                only_tshark_reads += 1;
                lines.push(format!(
                    "- `{name}`: portflow refused ({}), tshark read {} packets",
                    e.trim(),
                    t.packets
                ));
            }
            (Err(_), Ok(_)) => only_we_read += 1,
            (Err(_), Err(_)) => both_reject += 1,
        }
    }
    let summary = format!(
        "files: {}\ncompared (both read packets): {compared}\nfiles in full agreement: {agree}\n\
         tshark flows: {flows}, equal in packets and bytes: {flows_equal} ({:.2}%)\n\
         flow packets in equal flows: {pkts_equal_flows} of {pkts} ({:.2}%)\n\
         only tshark reads: {only_tshark_reads}; only portflow reads: {only_we_read}; neither/empty: {both_reject}\n",
        results.len(),
        100.0 * flows_equal as f64 / flows.max(1) as f64,
        100.0 * pkts_equal_flows as f64 / pkts.max(1) as f64,
    );
    println!("{summary}");
    if let Ok(out) = std::env::var("PORTFLOW_AGREEMENT_OUT") {
        std::fs::write(
            out,
            format!("{summary}\nfiles that differ:\n{}\n", lines.join("\n")),
        )
        .unwrap();
    }
}
