//! Where a run's time went: wall time per phase of the pipeline and CPU time
//! per thread, for `portflow read --timings` and the benchmark scripts.
//!
//! Two threads share the work of a file: the reader (read, decode, dispatch)
//! and a flow worker (flows, ports, detection). The run takes as long as the
//! busier of the two over each stretch of the capture, plus what only one
//! thread can do at the end (ending the flows still open, the report). The CPU
//! time of each thread next to the phases shows which one set the pace.
use std::ops::{Add, Sub};
use std::time::Duration;

/// CPU time used, in user space and in the kernel on the thread's behalf
/// (page faults, `madvise`, channel wake-ups).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

impl Add for Cpu {
    type Output = Cpu;
    fn add(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user + o.user,
            system: self.system + o.system,
        }
    }
}

impl Sub for Cpu {
    type Output = Cpu;
    /// What is left of `self` after `o` (never below zero).
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(o.user),
            system: self.system.saturating_sub(o.system),
        }
    }
}

impl std::iter::Sum for Cpu {
    fn sum<I: Iterator<Item = Cpu>>(it: I) -> Cpu {
        it.fold(Cpu::default(), Add::add)
    }
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> Cpu {
    usage(libc::RUSAGE_THREAD)
}

/// CPU time the process has used so far, over all its threads (ended ones
/// included).
pub fn process_cpu() -> Cpu {
    usage(libc::RUSAGE_SELF)
}

fn usage(who: libc::c_int) -> Cpu {
    // SAFETY: getrusage fills the zeroed struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Cpu::default();
    }
    let d = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64)
            + Duration::from_micros(t.tv_usec.clamp(0, 999_999) as u64)
    };
    Cpu {
        user: d(ru.ru_utime),
        system: d(ru.ru_stime),
    }
}

/// The pipeline's share of a run's time.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// From the start of the analysis until the reader had read every input
    /// and handed over its last batch.
    pub reading: Duration,
    /// From then until every worker had accounted its last batch and ended
    /// the flows still open.
    pub ending: Duration,
    /// Merging the workers' tables into one analysis.
    pub merge: Duration,
    /// Of that, the time a second thread merged alongside (the ports).
    pub merge_alongside: Duration,
    /// CPU time of the reader thread (with `--workers 1`, which keeps the
    /// flow table itself, the whole analysis but the end).
    pub reader_cpu: Cpu,
    /// CPU time of each flow worker thread, the flows it ended at the end
    /// included (reading on every thread: of each thread).
    pub worker_cpu: Vec<Cpu>,
    /// Reading on every thread ([`super::parallel`]): how it went.
    pub parallel: Option<Parallel>,
}

/// How reading on every thread went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Parallel {
    /// Wall time in which at most one thread worked (the serial part).
    pub serial: Duration,
    /// Chunks read, and those read again because their guessed first record
    /// was not where the chunk before ended.
    pub chunks: usize,
    pub redone: usize,
}

/// Milliseconds with one decimal.
fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A thread's CPU time: "112.2 ms (6.1 in the kernel)".
fn cpu_ms(c: Cpu) -> String {
    format!("{} ms ({} in the kernel)", ms(c.total()), ms(c.system))
}

impl Timings {
    /// The two lines `--timings` prints: wall time per phase, then CPU time
    /// per thread. `report` and `write` are the app's phases after the
    /// pipeline's; `total` the wall time since the command started, `main`
    /// the main thread's CPU time and `process` the whole process's.
    pub fn lines(
        &self,
        report: Duration,
        write: Duration,
        total: Duration,
        main: Cpu,
        process: Cpu,
    ) -> [String; 2] {
        let phases = format!(
            "timings: reading {} ms, ending open flows {} ms, merge {} ms, report {} ms, \
             writing {} ms; {} ms since the command started",
            ms(self.reading),
            ms(self.ending),
            ms(self.merge),
            ms(report),
            ms(write),
            ms(total),
        );
        let workers: Cpu = self.worker_cpu.iter().copied().sum();
        if let Some(p) = self.parallel {
            let merge_alone = self.merge.saturating_sub(self.merge_alongside);
            let serial = p.serial + merge_alone + report + write;
            let run = self.reading + self.merge + report + write;
            let threads = self.worker_cpu.len();
            let phases = format!(
                "timings: reading {} ms on {threads} thread{} ({} chunk{}, {} read again), merge {} ms \
                 ({} on two threads), report {} ms, writing {} ms; {} ms since the command started, \
                 {} ms of them ({:.1}%) with at most one thread working",
                ms(self.reading),
                if threads == 1 { "" } else { "s" },
                p.chunks,
                if p.chunks == 1 { "" } else { "s" },
                p.redone,
                ms(self.merge),
                ms(self.merge.min(self.merge_alongside)),
                ms(report),
                ms(write),
                ms(total),
                ms(serial),
                100.0 * serial.as_secs_f64() / run.as_secs_f64().max(1e-9),
            );
            let mut cpu = String::from("CPU:");
            for (i, w) in self.worker_cpu.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                cpu.push_str(&format!("{sep}thread {i} {}", cpu_ms(*w)));
            }
            let other = process - (workers + main);
            cpu.push_str(&format!(
                ", main {}, other threads {}; {} in all",
                cpu_ms(main),
                cpu_ms(other),
                cpu_ms(process),
            ));
            return [phases, cpu];
        }
        let mut cpu = format!("CPU: reader {}", cpu_ms(self.reader_cpu));
        if self.worker_cpu.is_empty() {
            cpu.push_str(", which kept the flow table itself");
        }
        for (i, w) in self.worker_cpu.iter().enumerate() {
            cpu.push_str(&format!(", worker {i} {}", cpu_ms(*w)));
        }
        let other = process - (self.reader_cpu + workers + main);
        cpu.push_str(&format!(
            ", main {}, other threads {} (prefault and flow-ending helpers); {} in all",
            cpu_ms(main),
            cpu_ms(other),
            cpu_ms(process),
        ));
        [phases, cpu]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_works_uses_cpu_time_and_one_that_sleeps_does_not() {
        let spin = std::thread::spawn(|| {
            let start = thread_cpu();
            let mut x = 1u64;
            let wall = std::time::Instant::now();
            while wall.elapsed() < Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
            }
            thread_cpu() - start
        });
        let nap = std::thread::spawn(|| {
            let start = thread_cpu();
            std::thread::sleep(Duration::from_millis(30));
            thread_cpu() - start
        });
        let (busy, idle) = (spin.join().expect("spin"), nap.join().expect("nap"));
        // Spinning for 30 ms of wall time: at least some of it on a CPU, even on a
        // loaded machine; sleeping: next to none.
        assert!(busy.total() >= Duration::from_millis(5), "busy {busy:?}");
        assert!(idle.total() < Duration::from_millis(5), "idle {idle:?}");
        // The process's time counts ended threads too.
        assert!(process_cpu().total() >= busy.total());
    }

    #[test]
    fn the_lines_name_every_phase_and_thread_and_what_is_left_over() {
        let c = |user_ms: u64, system_ms: u64| Cpu {
            user: Duration::from_millis(user_ms),
            system: Duration::from_millis(system_ms),
        };
        let t = Timings {
            reading: Duration::from_micros(131_800),
            ending: Duration::from_micros(8_400),
            merge: Duration::from_micros(40),
            merge_alongside: Duration::ZERO,
            reader_cpu: c(120, 8),
            worker_cpu: vec![c(94, 1)],
            parallel: None,
        };
        let [phases, cpu] = t.lines(
            Duration::from_micros(2_300),
            Duration::from_micros(120),
            Duration::from_micros(143_000),
            c(2, 1),
            c(220, 16),
        );
        assert_eq!(
            phases,
            "timings: reading 131.8 ms, ending open flows 8.4 ms, merge 0.0 ms, report 2.3 ms, \
             writing 0.1 ms; 143.0 ms since the command started"
        );
        assert_eq!(
            cpu,
            "CPU: reader 128.0 ms (8.0 in the kernel), worker 0 95.0 ms (1.0 in the kernel), \
             main 3.0 ms (1.0 in the kernel), other threads 10.0 ms (6.0 in the kernel) \
             (prefault and flow-ending helpers); 236.0 ms (16.0 in the kernel) in all"
        );
        let zero = Duration::ZERO;
        let none = Cpu::default();
        let two = Timings {
            worker_cpu: vec![c(50, 0), c(45, 0)],
            ..t.clone()
        };
        let line = &two.lines(zero, zero, zero, none, none)[1];
        assert!(
            line.starts_with(
                "CPU: reader 128.0 ms (8.0 in the kernel), worker 0 50.0 ms (0.0 in the kernel), \
                 worker 1 45.0 ms (0.0 in the kernel), main 0.0 ms"
            ),
            "{line}"
        );
        // Less in all than the threads named (clock granularity): no negative rest.
        assert!(
            line.contains("other threads 0.0 ms (0.0 in the kernel)"),
            "{line}"
        );
        let inline = Timings {
            worker_cpu: vec![],
            ..t
        };
        let line = &inline.lines(zero, zero, zero, none, none)[1];
        assert!(
            line.starts_with(
                "CPU: reader 128.0 ms (8.0 in the kernel), which kept the flow table itself, main"
            ),
            "{line}"
        );
    }
}
