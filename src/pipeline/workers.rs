//! The flow worker threads behind a reader, and the batches they share.
//!
//! Reading files, a worker starts when the reader first has packets for it:
//! a run never starts a thread it gives nothing to (a 38-packet file with
//! `--workers 256` starts as many workers as it has flows, at most). A live
//! capture has none: each capture thread keeps its own flow table
//! ([`super::live`]).
use super::batch::{Batch, BATCH};
use super::timings::{thread_cpu, Cpu};
use super::{recv_polling, Options, RunError};
use crate::stats::flow::FlowTable;
use crossbeam_channel::{bounded, Receiver, Sender};

/// Batches queued per worker before the reader waits.
const QUEUE_DEPTH: usize = 8;

/// Flow worker threads besides the reader for `--workers n`: none when one
/// thread reads a file alone (it keeps the flow table itself).
pub(crate) fn flow_workers(n: usize) -> usize {
    n.saturating_sub(1)
}

type Handle = std::thread::JoinHandle<(FlowTable, Cpu)>;

/// The workers: the reader's ends of their channels, and the threads.
pub(crate) struct Workers {
    /// One per worker, whether started or not.
    pub senders: Vec<Sender<Batch>>,
    /// Where workers return emptied batches for the reader to fill again.
    pub recycle: Receiver<Batch>,
    recycle_tx: Sender<Batch>,
    /// A worker's receiving end until it starts.
    receivers: Vec<Option<Receiver<Batch>>>,
    handles: Vec<Option<Handle>>,
    opts: Options,
    polls: u32,
}

impl Workers {
    /// The workers of `opts.workers`, none started yet; `polls`: how many
    /// times a worker looks for a batch before it blocks ([`recv_polling`]).
    pub fn new(opts: &Options, polls: u32) -> Workers {
        Workers::with(opts, flow_workers(opts.workers), polls)
    }

    /// No workers: for a dispatcher that keeps its flow table itself.
    pub fn none(opts: &Options) -> Workers {
        Workers::with(opts, 0, 0)
    }

    fn with(opts: &Options, n: usize, polls: u32) -> Workers {
        // Room for every batch all workers' queues and hands can hold; the
        // batches themselves are made as workers start.
        let (recycle_tx, recycle) = bounded::<Batch>(n * (QUEUE_DEPTH + 2));
        let (senders, receivers) = (0..n)
            .map(|_| {
                let (tx, rx) = bounded::<Batch>(QUEUE_DEPTH);
                (tx, Some(rx))
            })
            .unzip();
        Workers {
            senders,
            recycle,
            recycle_tx,
            receivers,
            handles: (0..n).map(|_| None).collect(),
            opts: opts.clone(),
            polls,
        }
    }

    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_started(&self, i: usize) -> bool {
        self.handles[i].is_some()
    }

    /// Starts worker `i` (once), with the batches it can hold: reading
    /// allocates none after that, whatever the timing (a batch's payload
    /// buffer is reserved at its largest and only touched as used).
    pub fn start(&mut self, i: usize) {
        let Some(rx) = self.receivers[i].take() else {
            return;
        };
        for _ in 0..QUEUE_DEPTH + 2 {
            let _ = self.recycle_tx.try_send(Batch::with_capacity(BATCH));
        }
        let n = self.len();
        let recycle = self.recycle_tx.clone();
        let mut table = self.opts.flow_table(n);
        let polls = self.polls;
        let h = std::thread::Builder::new()
            .name(format!("portflow-worker-{i}"))
            .spawn(move || {
                while let Ok(mut batch) = recv_polling(&rx, polls) {
                    table.account_batch(&batch.pkts, &batch.bytes);
                    batch.clear();
                    let _ = recycle.try_send(batch);
                }
                // The reader's core is free by now; with one worker, ending
                // the flows still open can use it.
                table.finish_all_on(if n == 1 { 2 } else { 1 });
                (table, thread_cpu())
            })
            .expect("spawn worker thread");
        self.handles[i] = Some(h);
    }

    /// Closes the channels, waits for the workers that started and returns
    /// their tables and CPU times, in worker order.
    pub fn join(mut self) -> Result<(Vec<FlowTable>, Vec<Cpu>), RunError> {
        self.senders.clear();
        let mut tables = Vec::new();
        let mut cpu = Vec::new();
        for h in self.handles.into_iter().flatten() {
            let (table, c) = h
                .join()
                .map_err(|_| RunError::Worker("worker thread panicked".into()))?;
            tables.push(table);
            cpu.push(c);
        }
        Ok((tables, cpu))
    }
}
