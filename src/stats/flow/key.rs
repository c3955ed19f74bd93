//! The canonical flow key and the hash that shards flows over workers.
use crate::decode::Addr;
use crate::services::Transport;

/// Canonical flow key: the lower (address, port) endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo: Addr,
    pub hi: Addr,
    pub lo_port: u16,
    pub hi_port: u16,
    pub transport: Transport,
}

impl Default for FlowKey {
    fn default() -> Self {
        FlowKey {
            lo: [0; 16],
            hi: [0; 16],
            lo_port: 0,
            hi_port: 0,
            transport: Transport::Tcp,
        }
    }
}

impl FlowKey {
    /// Builds the canonical key; the bool is true when `src` is the `lo` side.
    #[inline]
    pub fn new(
        transport: Transport,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
    ) -> (FlowKey, bool) {
        // Big-endian integers order as the bytes do, without a memcmp call.
        let (a, b) = (u128::from_be_bytes(src), u128::from_be_bytes(dst));
        if (a, sport) <= (b, dport) {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    lo_port: sport,
                    hi_port: dport,
                    transport,
                },
                true,
            )
        } else {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    lo_port: dport,
                    hi_port: sport,
                    transport,
                },
                false,
            )
        }
    }

    /// The server's and then the client's (address, port), given which side serves.
    #[inline]
    pub fn sides(&self, server_is_lo: bool) -> ((Addr, u16), (Addr, u16)) {
        let (lo, hi) = ((self.lo, self.lo_port), (self.hi, self.hi_port));
        if server_is_lo {
            (lo, hi)
        } else {
            (hi, lo)
        }
    }

    /// The (address, port) a packet comes from: the `lo` side when `from_lo`.
    #[inline]
    pub fn source(&self, from_lo: bool) -> (Addr, u16) {
        if from_lo {
            (self.lo, self.lo_port)
        } else {
            (self.hi, self.hi_port)
        }
    }

    /// A hash that is the same for both directions (the key is canonical) and
    /// independent of the process, for sharding.
    #[inline]
    pub fn shard_hash(&self) -> u64 {
        let mix = |h: u64, v: u64| (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        let word =
            |a: &Addr, i: usize| u64::from_le_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        // Two independent chains, one per address, joined with the ports: the
        // reader computes this for every packet, and one chain of five
        // dependent multiplications was on its critical path.
        let a = mix(
            mix(
                0xcbf2_9ce4_8422_2325 ^ self.transport as u64,
                word(&self.lo, 0),
            ),
            word(&self.lo, 8),
        );
        let b = mix(
            mix(0x8422_2325_cbf2_9ce4, word(&self.hi, 0)),
            word(&self.hi, 8),
        );
        let h = mix(
            a ^ b.rotate_left(32),
            (self.lo_port as u64) << 16 | self.hi_port as u64,
        );
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    #[test]
    fn both_directions_make_one_key_and_one_hash() {
        let (a, from_lo) = FlowKey::new(
            Transport::Tcp,
            v4_mapped(&[1, 2, 3, 4]),
            5,
            v4_mapped(&[6, 7, 8, 9]),
            10,
        );
        let (b, b_from_lo) = FlowKey::new(
            Transport::Tcp,
            v4_mapped(&[6, 7, 8, 9]),
            10,
            v4_mapped(&[1, 2, 3, 4]),
            5,
        );
        assert_eq!(a, b);
        assert_ne!(from_lo, b_from_lo);
        assert_eq!(a.shard_hash(), b.shard_hash());
    }
}
