//! A progress line on standard error while files are read (`indicatif`,
//! drawn only on a terminal).
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the line is brought up to date.
const TICK: Duration = Duration::from_millis(200);

/// A read shorter than this shows no line at all.
const QUIET_FOR: Duration = Duration::from_millis(800);

/// The line, drawn by a thread of its own from the bytes the readers have
/// consumed (an atomic they add to per block, not per packet): nothing on
/// the reading path waits for the terminal.
pub struct Progress {
    /// Dropped when the reading ends: the line goes at once.
    done: Option<Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts the line for `total` bytes (unknown: a byte count and a rate).
    pub fn start(total: Option<u64>, bytes: Arc<AtomicU64>) -> Progress {
        let (done, ended) = channel();
        let handle = std::thread::Builder::new()
            .name("portflow-progress".into())
            .spawn(move || draw(total, &bytes, &ended))
            .ok();
        Progress {
            done: Some(done),
            handle,
        }
    }
}

/// Follows `bytes` until `done`: hidden for [`QUIET_FOR`] (its rate is
/// measured from the start all the same), then on standard error.
fn draw(total: Option<u64>, bytes: &AtomicU64, ended: &Receiver<()>) {
    let started = Instant::now();
    let bar = match total {
        Some(t) if t > 0 => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::hidden())
            .with_style(style(
                "[{bar:30}] {percent:>3}% {bytes} of {total_bytes} {bytes_per_sec}",
            )),
        _ => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden())
            .with_style(style("{bytes} read, {bytes_per_sec}")),
    };
    let mut shown = false;
    while ended.recv_timeout(TICK) == Err(RecvTimeoutError::Timeout) {
        if !shown && started.elapsed() >= QUIET_FOR {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position(bytes.load(Ordering::Relaxed));
    }
    bar.finish_and_clear();
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("## ")
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
