//! libpcap's capture counters, widened to 64 bits.
use serde::Serialize;

/// Kernel counters of a live capture, widened to 64 bits (libpcap's are 32-bit and wrap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureCounters {
    /// Packets the kernel passed to the capture (after the filter).
    pub received: u64,
    /// Dropped because the kernel buffer was full (portflow did not read fast enough).
    pub dropped_kernel: u64,
    /// Dropped by the interface or its driver.
    pub dropped_interface: u64,
}

impl std::ops::AddAssign for CaptureCounters {
    fn add_assign(&mut self, o: CaptureCounters) {
        self.received += o.received;
        self.dropped_kernel += o.dropped_kernel;
        self.dropped_interface += o.dropped_interface;
    }
}

impl CaptureCounters {
    /// The counters of several sockets on one interface (a fanout group):
    /// each socket counts its own packets and kernel drops, so those add up;
    /// libpcap reads the interface's drops from the interface itself, the
    /// same for every socket, so they are taken once (the highest reading).
    pub fn combine(sockets: &[CaptureCounters]) -> CaptureCounters {
        CaptureCounters {
            received: sockets.iter().map(|s| s.received).sum(),
            dropped_kernel: sockets.iter().map(|s| s.dropped_kernel).sum(),
            dropped_interface: sockets
                .iter()
                .map(|s| s.dropped_interface)
                .max()
                .unwrap_or(0),
        }
    }
}

/// Turns successive 32-bit readings into 64-bit totals.
#[derive(Debug, Default)]
pub struct CounterWidener {
    last: [u32; 3],
    total: [u64; 3],
}

impl CounterWidener {
    pub fn update(&mut self, s: &pcap::Stat) -> CaptureCounters {
        for (i, v) in [s.received, s.dropped, s.if_dropped]
            .into_iter()
            .enumerate()
        {
            self.total[i] += v.wrapping_sub(self.last[i]) as u64;
            self.last[i] = v;
        }
        CaptureCounters {
            received: self.total[0],
            dropped_kernel: self.total[1],
            dropped_interface: self.total[2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_add_their_own_counts_and_share_the_interface_drops() {
        let s = |received, dropped_kernel, dropped_interface| CaptureCounters {
            received,
            dropped_kernel,
            dropped_interface,
        };
        assert_eq!(
            CaptureCounters::combine(&[s(10, 1, 4), s(7, 2, 5)]),
            s(17, 3, 5)
        );
        assert_eq!(CaptureCounters::combine(&[]), s(0, 0, 0));
    }

    #[test]
    fn counters_widen_across_wrap() {
        let mut w = CounterWidener::default();
        let st = |r| pcap::Stat {
            received: r,
            dropped: 0,
            if_dropped: 0,
        };
        assert_eq!(w.update(&st(u32::MAX - 5)).received, (u32::MAX - 5) as u64);
        assert_eq!(w.update(&st(10)).received, u32::MAX as u64 + 11);
    }
}
