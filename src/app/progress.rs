//! A progress line on standard error while files are read.
use portflow::report::table::human_bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A progress line on stderr while files are read (only on a terminal).
pub struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(total: Option<u64>, bytes: Arc<AtomicU64>) -> Progress {
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
                            human_bytes(b),
                            human_bytes(t),
                            human_bytes(rate as u64)
                        )
                    }
                    _ => format!("{} read, {}/s", human_bytes(b), human_bytes(rate as u64)),
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
