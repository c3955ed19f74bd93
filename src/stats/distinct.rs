//! Distinct addresses (clients, servers) with bounded memory.
//!
//! Exact up to [`EXACT_MAX`] addresses; beyond it a HyperLogLog sketch
//! (2^14 one-byte registers, 16 KiB, standard error 0.8%) takes over, so a flood
//! from millions of spoofed sources costs 16 KiB per port instead of 16 bytes
//! per source. The ten lowest addresses are listed exactly, for the client
//! lists of findings: picked from the exact set when asked for, and kept as
//! addresses arrive only once the sketch has taken over. Merging is exact for
//! both forms (set union; register maximum), so the result does not depend on
//! how addresses were spread over workers:
//! a count is exact when the union has at most [`EXACT_MAX`] addresses and the
//! sketch's estimate of the union otherwise.
//!
//! Most ports and servers see a handful of clients, so up to [`SAMPLE`]
//! addresses the sample is the whole set and no hash set is allocated.
use crate::decode::{ip_order, Addr};
use rustc_hash::FxHashSet;

/// Addresses counted exactly before the sketch takes over.
pub const EXACT_MAX: usize = 10_000;
/// Lowest addresses kept for listing.
pub const SAMPLE: usize = 10;
const P: u32 = 14;
const REGISTERS: usize = 1 << P;

#[derive(Debug, Clone, Default)]
pub struct Distinct {
    /// Every address, once there are more than [`SAMPLE`] (empty before: the
    /// sample holds them all) and until the sketch takes over.
    exact: Exact,
    sketch: Option<Box<[u8; REGISTERS]>>,
    /// Up to [`SAMPLE`] addresses, in arrival order, the whole set while
    /// there are no more (`lowest` sorts a copy); empty while `exact` holds
    /// the set; with the sketch, the lowest addresses seen, in `IpAddr` order.
    sample: Vec<Addr>,
}

#[inline]
fn hash(a: &Addr) -> u64 {
    let (hi, lo) = a.split_at(8);
    let mut h = u64::from_le_bytes(hi.try_into().expect("8 bytes"))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ u64::from_le_bytes(lo.try_into().expect("8 bytes"));
    // splitmix64's finaliser
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn add_to_sketch(r: &mut [u8; REGISTERS], a: &Addr) {
    let h = hash(a);
    let idx = (h >> (64 - P)) as usize;
    let rank = ((h << P) | (1 << (P - 1))).leading_zeros() as u8 + 1;
    if rank > r[idx] {
        r[idx] = rank;
    }
}

/// A set of addresses that keeps IPv4 ones (IPv4-mapped, most of them) as
/// 4 bytes: a port's client set is a quarter of the size in memory (it is
/// hashed into on every new flow, mostly as a cache miss) and hashes one word.
/// Boxed, and absent until the first address: most sets never leave the
/// sample, and [`Distinct`] stays 40 bytes (three per port's statistics, one
/// or two per inventory entry).
#[derive(Debug, Clone, Default)]
struct Exact(Option<Box<ExactSets>>);

#[derive(Debug, Clone, Default)]
struct ExactSets {
    v4: V4Set,
    v6: FxHashSet<Addr>,
}

/// IPv4 addresses: open addressing with linear probing, at most three
/// quarters full, 4 bytes a slot. Simpler than std's set for 4-byte keys (no
/// control bytes, no group probe; a probe of these small sets stays in one
/// cache line). 0 marks an empty slot, so 0.0.0.0 (a DHCP client's source) is
/// kept apart.
#[derive(Debug, Clone, Default)]
struct V4Set {
    /// A power of two long, or empty.
    slots: Vec<u32>,
    /// Non-zero addresses held.
    held: usize,
    zero: bool,
}

impl V4Set {
    /// Where a probe for `v` starts (`slots` not empty).
    #[inline]
    fn home(&self, v: u32) -> usize {
        // Multiply-shift on the 64-bit product: the high half mixes every bit.
        ((v as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (self.slots.len() - 1)
    }

    /// Adds `v`; whether it was new.
    #[inline]
    fn insert(&mut self, v: u32) -> bool {
        if v == 0 {
            return !std::mem::replace(&mut self.zero, true);
        }
        if (self.held + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        self.put(v)
    }

    /// Adds non-zero `v` into a set with room for it.
    #[inline]
    fn put(&mut self, v: u32) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = self.home(v);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = v;
                    self.held += 1;
                    return true;
                }
                x if x == v => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    #[cold]
    fn grow(&mut self) {
        self.resize((self.slots.len() * 2).max(16));
    }

    fn resize(&mut self, n: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; n]);
        self.held = 0;
        for v in old.into_iter().filter(|&v| v != 0) {
            self.put(v);
        }
    }

    /// Room for `n` more addresses without growing.
    fn reserve(&mut self, n: usize) {
        let want = ((self.held + n) * 4)
            .div_ceil(3)
            .next_power_of_two()
            .max(16);
        if want > self.slots.len() {
            self.resize(want);
        }
    }

    fn len(&self) -> usize {
        self.held + self.zero as usize
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.zero
            .then_some(0)
            .into_iter()
            .chain(self.slots.iter().copied().filter(|&v| v != 0))
    }
}

impl Exact {
    /// Adds `a`; whether it was new.
    #[inline]
    fn insert(&mut self, a: Addr) -> bool {
        let sets = self.0.get_or_insert_with(Default::default);
        match crate::decode::mapped_v4(&a) {
            Some(v4) => sets.v4.insert(v4),
            None => sets.v6.insert(a),
        }
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.v4.len() + s.v6.len())
    }

    /// Whether no address was added: the sets exist only once one was (a
    /// set is made on promotion, with the sample's ten addresses, and dropped
    /// whole for the sketch), so this reads no further than the pointer.
    fn is_empty(&self) -> bool {
        debug_assert_eq!(self.0.is_none(), self.len() == 0);
        self.0.is_none()
    }

    fn reserve(&mut self, n: usize) {
        self.0.get_or_insert_with(Default::default).v4.reserve(n);
    }

    fn extend(&mut self, it: impl Iterator<Item = Addr>) {
        for a in it {
            self.insert(a);
        }
    }

    fn iter(&self) -> impl Iterator<Item = Addr> + '_ {
        self.0.iter().flat_map(|s| {
            s.v4.iter()
                .map(|v4| crate::decode::v4_mapped(&v4.to_be_bytes()))
                .chain(s.v6.iter().copied())
        })
    }
}

impl Distinct {
    /// Adds one address.
    #[inline]
    pub fn insert(&mut self, a: Addr) {
        match self.sketch.as_mut() {
            Some(r) => {
                add_to_sketch(r, &a);
                self.sample_add(a);
            }
            None if self.exact.is_empty() => {
                // The sample is the whole set, until an eleventh address.
                if self.sample.contains(&a) {
                    return;
                }
                if self.sample.len() == SAMPLE {
                    self.promote();
                    self.exact.insert(a);
                    return;
                }
                self.sample_push(a);
            }
            None => {
                // The lowest addresses are picked from the set when asked
                // for: keeping them sorted as addresses arrive would cost
                // more than the insert itself.
                if self.exact.insert(a) && self.exact.len() > EXACT_MAX {
                    self.switch_to_sketch();
                }
            }
        }
    }

    /// Whether the sample alone holds every address.
    fn is_small(&self) -> bool {
        self.sketch.is_none() && self.exact.is_empty()
    }

    /// Moves a small set into the exact set.
    fn promote(&mut self) {
        if self.is_small() {
            self.exact.reserve(4 * SAMPLE);
            let sample = std::mem::take(&mut self.sample);
            self.exact.extend(sample.into_iter());
        }
    }

    /// The addresses of a small set (none otherwise: they are in `exact` or
    /// the sketch).
    fn members(&self) -> &[Addr] {
        if self.is_small() {
            &self.sample
        } else {
            &[]
        }
    }

    /// Offers `a` to the lowest addresses a sketch keeps. Until the sample is
    /// full it is kept in arrival order; it is sorted once when it fills, and
    /// kept sorted from then on, so an address above the tenth lowest is
    /// turned away with one comparison.
    fn sample_add(&mut self, a: Addr) {
        let n = self.sample.len();
        if n < SAMPLE {
            if !self.sample.contains(&a) {
                self.sample_push(a);
                if n + 1 == SAMPLE {
                    self.sample.sort_unstable_by_key(ip_order);
                }
            }
            return;
        }
        let ip = ip_order(&a);
        if ip >= ip_order(&self.sample[SAMPLE - 1]) {
            return;
        }
        let at = self.sample.partition_point(|x| ip_order(x) < ip);
        if self.sample.get(at) == Some(&a) {
            return;
        }
        self.sample.pop();
        self.sample.insert(at, a);
    }

    /// Appends `a` to a sample that is not full. Most sets stay small: room
    /// for four, then for all ten.
    fn sample_push(&mut self, a: Addr) {
        match self.sample.len() {
            0 => self.sample.reserve_exact(4),
            4 => self.sample.reserve_exact(SAMPLE - 4),
            _ => {}
        }
        self.sample.push(a);
    }

    fn switch_to_sketch(&mut self) {
        let mut r: Box<[u8; REGISTERS]> = crate::hint::zeroed_written::<u8>(REGISTERS)
            .into_boxed_slice()
            .try_into()
            .expect("REGISTERS bytes");
        for a in self.exact.iter().chain(self.members().iter().copied()) {
            add_to_sketch(&mut r, &a);
        }
        let mut lowest = self.lowest();
        lowest.shrink_to_fit();
        self.sample = lowest;
        self.exact = Exact::default();
        self.sketch = Some(r);
    }

    /// Adds every address of `o`, taking it over: the larger exact set is kept
    /// and the smaller one added to it (same result as [`Self::merge`]).
    pub fn absorb(&mut self, mut o: Distinct) {
        if self.sketch.is_none() && o.sketch.is_none() && self.len() < o.len() {
            std::mem::swap(self, &mut o);
        }
        self.merge(&o);
    }

    /// Adds every address of `o`.
    pub fn merge(&mut self, o: &Distinct) {
        match (&mut self.sketch, &o.sketch) {
            (None, None) if o.is_small() => {
                for a in &o.sample {
                    self.insert(*a);
                }
                return;
            }
            (None, None) => {
                self.promote();
                self.exact.extend(o.exact.iter());
                if self.exact.len() > EXACT_MAX {
                    self.switch_to_sketch();
                }
            }
            (Some(r), None) => {
                for a in o.exact.iter().chain(o.members().iter().copied()) {
                    add_to_sketch(r, &a);
                }
            }
            (_, Some(or)) => {
                if self.sketch.is_none() {
                    self.switch_to_sketch();
                }
                let r = self.sketch.as_mut().expect("a sketch");
                for (x, y) in r.iter_mut().zip(or.iter()) {
                    *x = (*x).max(*y);
                }
            }
        }
        // A sketch's lowest addresses (made from the exact set when it took
        // over) see the other set's.
        if self.sketch.is_some() {
            for a in o.lowest() {
                self.sample_add(a);
            }
        }
    }

    /// How many distinct addresses: exact, or the sketch's estimate.
    pub fn len(&self) -> u64 {
        let Some(r) = &self.sketch else {
            return self.exact.len().max(self.sample.len()) as u64;
        };
        let m = REGISTERS as f64;
        let zeros = r.iter().filter(|&&v| v == 0).count();
        let sum: f64 = r.iter().map(|&v| 2f64.powi(-(v as i32))).sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let est = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln() // linear counting for the small range
        } else {
            raw
        };
        // Never below what the exact part alone proved.
        (est.round() as u64).max(EXACT_MAX as u64 + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.sample.is_empty() && self.exact.is_empty() && self.sketch.is_none()
    }

    /// Whether [`Self::len`] is an estimate.
    pub fn is_estimate(&self) -> bool {
        self.sketch.is_some()
    }

    /// The lowest addresses (up to [`SAMPLE`]), in `IpAddr` order.
    pub fn lowest(&self) -> Vec<Addr> {
        // A small set's sample is all of it, a sketch's its lowest addresses.
        let mut v: Vec<Addr> = if self.exact.is_empty() {
            self.sample.clone()
        } else {
            let mut all: Vec<Addr> = self.exact.iter().collect();
            if all.len() > SAMPLE {
                all.select_nth_unstable_by_key(SAMPLE - 1, ip_order);
                all.truncate(SAMPLE);
            }
            all
        };
        v.sort_unstable_by_key(ip_order);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;

    fn addr(i: u32) -> Addr {
        v4_mapped(&i.to_be_bytes())
    }

    #[test]
    fn ipv4_and_ipv6_addresses_are_one_set() {
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        v6[1] = 0x01;
        // ::1.2.3.4 is not IPv4-mapped: it stays a distinct IPv6 address.
        let compat = {
            let mut a = [0u8; 16];
            a[12..].copy_from_slice(&[1, 2, 3, 4]);
            a
        };
        let mut d = Distinct::default();
        let mut all = vec![compat, addr(0x0102_0304)];
        all.extend((0..30u8).map(|i| {
            let mut a = v6;
            a[15] = i;
            a
        }));
        all.extend((0..30u32).map(addr));
        for a in all.iter().chain(all.iter()) {
            d.insert(*a);
        }
        assert_eq!(d.len(), all.len() as u64);
        let mut members: Vec<Addr> = d.exact.iter().collect();
        members.sort_unstable();
        let mut want = all.clone();
        want.sort_unstable();
        assert_eq!(members, want);
    }

    #[test]
    fn exact_up_to_the_limit() {
        let mut d = Distinct::default();
        for i in 0..EXACT_MAX as u32 {
            d.insert(addr(i));
            d.insert(addr(i));
        }
        assert_eq!(d.len(), EXACT_MAX as u64);
        assert!(!d.is_estimate());
        assert_eq!(d.lowest(), &(0..10).map(addr).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn estimates_within_two_percent_beyond_it() {
        for n in [20_000u32, 100_000, 1_000_000] {
            let mut d = Distinct::default();
            for i in 0..n {
                d.insert(addr(i.wrapping_mul(2_654_435_761)));
            }
            let err = (d.len() as f64 - n as f64).abs() / n as f64;
            assert!(err < 0.02, "{n}: estimated {} ({err:.4})", d.len());
            assert!(d.is_estimate());
        }
    }

    #[test]
    fn the_lowest_addresses_survive_the_switch_to_the_sketch() {
        // Descending: the lowest arrive last, some before and some after the
        // sketch takes over (they are picked from the exact set, then kept).
        let n = EXACT_MAX as u32 + 2_000;
        let mut d = Distinct::default();
        (0..n).rev().for_each(|i| d.insert(addr(i + 1)));
        assert!(d.is_estimate());
        assert_eq!(d.lowest(), (1..=10).map(addr).collect::<Vec<_>>());
        // Ascending: the lowest were all in the exact set when it was dropped.
        let mut e = Distinct::default();
        (0..n).for_each(|i| e.insert(addr(i + 5)));
        assert_eq!(e.lowest(), (5..15).map(addr).collect::<Vec<_>>());
        // An exact set lists its lowest whatever the order they came in.
        let mut f = Distinct::default();
        (0..500u32).rev().for_each(|i| f.insert(addr(i * 13 % 500)));
        assert_eq!(f.lowest(), (0..10).map(addr).collect::<Vec<_>>());
    }

    #[test]
    fn merge_does_not_depend_on_the_split() {
        let all: Vec<Addr> = (0..50_000u32).map(|i| addr(i * 7 + 3)).collect();
        let mut one = Distinct::default();
        all.iter().for_each(|a| one.insert(*a));
        for parts in [2usize, 3, 8] {
            let mut split = vec![Distinct::default(); parts];
            for (i, a) in all.iter().enumerate() {
                split[i % parts].insert(*a);
            }
            let mut merged = Distinct::default();
            for s in &split {
                merged.merge(s);
            }
            assert_eq!(merged.len(), one.len(), "{parts} parts");
            assert_eq!(merged.lowest(), one.lowest());
        }
        // Small sets merge exactly.
        let (mut a, mut b) = (Distinct::default(), Distinct::default());
        (0..600u32).for_each(|i| a.insert(addr(i)));
        (300..900u32).for_each(|i| b.insert(addr(i)));
        a.merge(&b);
        assert_eq!((a.len(), a.is_estimate()), (900, false));
    }

    #[test]
    fn the_lowest_addresses_come_sorted_whatever_the_arrival_order() {
        let mut v6 = [0u8; 16];
        v6[0] = 0x20;
        for n in [1u32, 3, 9, 10, 11, 25] {
            let mut d = Distinct::default();
            let mut want = vec![v6];
            d.insert(v6);
            // Scrambled, each address twice.
            for i in (0..n).rev() {
                let a = addr((i * 7) % 101 + 1);
                d.insert(a);
                d.insert(a);
                want.push(a);
            }
            want.sort_by_key(ip_order);
            assert_eq!(d.len(), want.len() as u64, "{n}");
            assert_eq!(d.lowest(), &want[..want.len().min(SAMPLE)], "{n}");
        }
    }

    #[test]
    fn small_sets_count_and_merge_across_the_sample_size() {
        for (na, nb) in [
            (0u32, 3u32),
            (4, 4),
            (6, 9),
            (10, 1),
            (11, 0),
            (3, 40),
            (40, 3),
        ] {
            let (mut a, mut b) = (Distinct::default(), Distinct::default());
            (0..na).for_each(|i| a.insert(addr(i * 2)));
            (0..nb).for_each(|i| b.insert(addr(i * 3)));
            a.insert(addr(0));
            let mut want: Vec<Addr> = (0..na).map(|i| addr(i * 2)).collect();
            want.extend((0..nb).map(|i| addr(i * 3)));
            want.push(addr(0));
            want.sort();
            want.dedup();
            let merged_len = want.len() as u64;
            let mut m = a.clone();
            m.merge(&b);
            assert_eq!(m.len(), merged_len, "{na}+{nb}");
            assert_eq!(m.lowest(), &want[..want.len().min(SAMPLE)], "{na}+{nb}");
            a.absorb(b);
            assert_eq!(a.len(), merged_len, "{na}+{nb} absorbed");
            assert!(!a.is_empty());
        }
        assert!(Distinct::default().is_empty());
    }

    #[test]
    fn the_ipv4_set_holds_each_address_once_zero_included() {
        let mut set = V4Set::default();
        let mut want = std::collections::HashSet::new();
        // Seeded (xorshift), clustered and spread values, each several times:
        // the set grows from empty through many doublings.
        let mut x = 0x2545_f491_u32;
        for i in 0..60_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let v = match i % 4 {
                0 => x,
                1 => i / 3, // 0, 0, 0, 1, ...: repeats, and 0.0.0.0
                2 => 0x0a00_0000 | (x & 0xff),
                _ => x.rotate_left(16) & 0xffff_0000, // only the high bits differ
            };
            assert_eq!(set.insert(v), want.insert(v), "{v:#x}");
            assert_eq!(set.len(), want.len());
            assert!(
                set.held * 4 <= set.slots.len() * 3,
                "at most three quarters full"
            );
        }
        let mut got: Vec<u32> = set.iter().collect();
        got.sort_unstable();
        let mut all: Vec<u32> = want.into_iter().collect();
        all.sort_unstable();
        assert_eq!(got, all);
        assert!(got.contains(&0));
        // Room made ahead keeps what is there and does not grow again.
        set.reserve(10_000);
        let slots = set.slots.len();
        for v in 1..=10_000u32 {
            set.insert(v.wrapping_mul(0x9e37_79b9));
        }
        assert_eq!(set.slots.len(), slots);
        let mut small = V4Set::default();
        small.reserve(40);
        assert_eq!(small.slots.len(), 64);
        assert_eq!((small.len(), small.iter().count()), (0, 0));
    }

    #[test]
    fn ipv4_lists_before_ipv6_as_ipaddr_orders() {
        let mut d = Distinct::default();
        let mut v6 = [0u8; 16];
        v6[15] = 1; // ::1
        d.insert(v6);
        d.insert(addr(0x0a00_0001));
        assert_eq!(d.lowest()[0], addr(0x0a00_0001));
    }
}
