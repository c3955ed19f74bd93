//! Every capture of the shared corpus (default `../shared/corpus`, or
//! `PORTFLOW_CORPUS`) — 1,750 files, many deliberately malformed by tcpdump's
//! and libpcap's authors — is read without a panic or a hang: exit 0 with a
//! report, or exit 2 with one line naming the file. Skipped, with a message,
//! where the corpus is absent (it is not part of the repository).
mod support;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn whole_corpus_reads_without_panic_or_hang() {
    let corpus = std::env::var("PORTFLOW_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root().join("../shared/corpus"));
    if !corpus.is_dir() {
        eprintln!(
            "skipped: no corpus at {} (set PORTFLOW_CORPUS)",
            corpus.display()
        );
        return;
    }
    let mut files = Vec::new();
    let mut stack = vec![corpus.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.extension().is_some_and(|x| x == "md" || x == "tsv") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(
        files.len() > 100,
        "corpus at {} looks empty",
        corpus.display()
    );
    let jobs = std::sync::Mutex::new(files.iter());
    let problems = std::sync::Mutex::new(Vec::new());
    let codes = std::sync::Mutex::new([0usize; 3]);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(f) = jobs.lock().unwrap().next() else {
                    break;
                };
                let mut child = portflow()
                    .args(["read", "-q", "--format", "json"])
                    .arg(f)
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let started = Instant::now();
                let status = loop {
                    if let Some(st) = child.try_wait().unwrap() {
                        break Some(st);
                    }
                    if started.elapsed() > LIMIT {
                        let _ = child.kill();
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                };
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                let name = f.display().to_string();
                match status.and_then(|s| s.code()) {
                    Some(0) => codes.lock().unwrap()[0] += 1,
                    Some(2) => {
                        codes.lock().unwrap()[2] += 1;
                        if err.lines().count() != 1
                            || !err.starts_with(&format!("portflow: {name}: "))
                        {
                            problems
                                .lock()
                                .unwrap()
                                .push(format!("{name}: exit 2 without one clear line: {err}"));
                        }
                    }
                    None => problems
                        .lock()
                        .unwrap()
                        .push(format!("{name}: still running after {LIMIT:?}")),
                    Some(c) => problems
                        .lock()
                        .unwrap()
                        .push(format!("{name}: exit {c}: {err}")),
                }
            });
        }
    });
    let codes = codes.into_inner().unwrap();
    eprintln!(
        "corpus: {} files, {} read (exit 0), {} refused with an error (exit 2)",
        files.len(),
        codes[0],
        codes[2]
    );
    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
