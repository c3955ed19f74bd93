//! Seeded test traffic for portflow: packet builders, pcap/pcapng files in
//! memory, the scenarios that make the files in `fixtures/generated/`, and the
//! scale and flood generators the benchmarks use. A development tool: the
//! tests, benchmarks and fixture scripts use it; the shipped library does not.

pub mod build;
pub mod fixtures;
pub mod scale;
pub mod write;

/// A small deterministic generator (xorshift64*), so fixtures are reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}
