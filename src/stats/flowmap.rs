//! A hash table of flows whose size is bounded by its entry cap: it starts
//! small and doubles as flows arrive, up to the slot count the cap needs, and
//! never past it.
//!
//! `std`'s table (hashbrown) leaves tombstones where flows are removed; once
//! they use up its spare room it rehashes into a table twice the size, so a
//! table held at its cap by evictions would double past the memory the cap
//! promises. Here: open addressing with linear probing and backward-shift
//! deletion (Knuth's algorithm R), which leaves no tombstones, at most 7/8
//! full. One control byte per slot (0 = empty,
//! else 0x80 | 7 bits of the hash, to skip most key comparisons); slots are
//! allocated uninitialised. Growing (rather than allocating the largest table
//! at once and letting pages become resident as flows land on them) keeps the
//! flows of a capture packed: 100,000 flows in a table sized for 450,000 would
//! touch every page of it, scattered, and pay a page fault for each.
use super::flow::FlowKey;
use crate::hint::{populate_for_write, prefetch, prefetch_lines, PAGE};
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};

/// A table's memory, mapped from the kernel for it alone and given back the
/// moment it is dropped, whatever the process's allocator does with freed
/// memory. A table that doubles frees the old half-size one at once (the
/// binary's allocator, mimalloc, keeps freed memory for reuse, which would
/// raise the peak of a growing table by a third).
struct Pages<T> {
    map: memmap2::MmapMut,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T> Pages<T> {
    /// `len` values, every byte zero.
    ///
    /// # Safety
    /// A `T` whose bytes are all zero must be a valid `T` (a byte; any
    /// `MaybeUninit`).
    unsafe fn zeroed(len: usize) -> Self {
        const { assert!(std::mem::align_of::<T>() <= PAGE) };
        let bytes = (len * std::mem::size_of::<T>()).max(1);
        // Page-aligned, so aligned for `T` (checked above).
        let map = memmap2::MmapMut::map_anon(bytes).expect("memory for a flow table");
        Pages {
            map,
            len,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T> Deref for Pages<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` values of `T`, is page-aligned, and
        // its zeroed bytes are valid values (`zeroed`'s contract).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast(), self.len) }
    }
}

impl<T> DerefMut for Pages<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().cast(), self.len) }
    }
}

/// Control bytes, all empty, for `n` slots; every page is mapped now (a table
/// read before it is written would map the shared zero page first, and the
/// first write then replace it on every core: hint::zeroed_written).
fn empty_ctrl(n: usize) -> Pages<u8> {
    // SAFETY: a zero byte is a `u8`.
    let mut c = unsafe { Pages::<u8>::zeroed(n) };
    populate_for_write(&mut c);
    c
}

fn uninit_slots<E>(n: usize) -> Pages<MaybeUninit<E>> {
    // SAFETY: any bytes are a valid `MaybeUninit`.
    unsafe { Pages::zeroed(n) }
}

pub struct FlowMap<V: Copy> {
    ctrl: Pages<u8>,
    slots: Pages<MaybeUninit<(FlowKey, V)>>,
    mask: usize,
    len: usize,
    cap: usize,
    /// The slot count the cap needs; the table never grows past it.
    max_slots: usize,
}

/// Slots a new table starts with (when its cap needs at least that many).
const START_SLOTS: usize = 1 << 12;

#[inline]
fn mix(h: u32) -> u64 {
    (h as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The hash a key is stored under: the low half of its shard hash, which the
/// reader computed already ([`crate::stats::flow::FlowPacket::hash`]); workers
/// are chosen by the high bits, so these stay well spread inside a worker.
#[inline]
pub fn key_hash(key: &FlowKey) -> u32 {
    key.shard_hash() as u32
}

impl<V: Copy> FlowMap<V> {
    /// A table for up to `cap` entries (at most the next power of two at or
    /// above `cap * 8 / 7` slots).
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.max(1);
        let max_slots = (cap * 8 / 7 + 1).next_power_of_two().max(16);
        let slots = max_slots.min(START_SLOTS);
        FlowMap {
            ctrl: empty_ctrl(slots),
            slots: uninit_slots(slots),
            mask: slots - 1,
            len: 0,
            cap,
            max_slots,
        }
    }

    /// Slots allocated now.
    pub fn slots(&self) -> usize {
        self.ctrl.len()
    }

    /// Doubles the slot count and re-inserts every entry.
    #[cold]
    fn grow(&mut self) {
        let n = self.ctrl.len() * 2;
        let ctrl = std::mem::replace(&mut self.ctrl, empty_ctrl(n));
        let slots = std::mem::replace(&mut self.slots, uninit_slots(n));
        // About half of the new slots are written right below, spread over
        // the whole table: its pages are mapped in one call rather than one
        // fault at a time.
        populate_for_write(&mut self.slots);
        self.mask = n - 1;
        for (i, &c) in ctrl.iter().enumerate() {
            if c != 0 {
                // SAFETY: occupied slot of the old table, read once.
                let e = unsafe { slots[i].assume_init_read() };
                let mut j = self.home(key_hash(&e.0));
                while self.ctrl[j] != 0 {
                    j = (j + 1) & self.mask;
                }
                self.slots[j].write(e);
                self.ctrl[j] = c;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries the table takes.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    #[inline]
    fn home(&self, h: u32) -> usize {
        (mix(h) >> 32) as usize & self.mask
    }

    #[inline]
    fn tag(h: u32) -> u8 {
        0x80 | ((mix(h) >> 24) as u8 & 0x7f)
    }

    #[inline]
    fn key_at(&self, i: usize) -> &FlowKey {
        // SAFETY: callers only ask for slots whose control byte is non-zero,
        // and a slot's control byte is set only after the slot was written.
        unsafe { &self.slots[i].assume_init_ref().0 }
    }

    /// Where `key` is, if present.
    #[inline]
    fn find(&self, key: &FlowKey, h: u32) -> Option<usize> {
        let tag = Self::tag(h);
        let mut i = self.home(h);
        loop {
            let c = self.ctrl[i];
            if c == 0 {
                return None;
            }
            if c == tag && self.key_at(i) == key {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The entry of `key`, whose [`key_hash`] is `h`.
    #[inline]
    pub fn get_mut(&mut self, key: &FlowKey, h: u32) -> Option<&mut V> {
        debug_assert_eq!(h, key_hash(key));
        let i = self.find(key, h)?;
        // SAFETY: `find` returns occupied slots only.
        Some(unsafe { &mut self.slots[i].assume_init_mut().1 })
    }

    /// Asks the CPU to start loading the control bytes where a key hashed `h`
    /// starts probing (stage 1 of 2; the batch loop prefetches a few packets
    /// ahead: flows arrive in no order a cache can predict).
    #[inline]
    pub fn prefetch_ctrl(&self, h: u32) {
        prefetch(self.ctrl.as_ptr().wrapping_add(self.home(h)));
    }

    /// Asks the CPU to start loading the slot a look-up of a key hashed `h`
    /// will end at (stage 2 of 2, once the control bytes are in cache): the
    /// first one whose control byte carries the key's tag (nearly always the
    /// key's own slot) or is empty (where the key would be inserted). Probes
    /// often end a slot or more past the home slot, so fetching the home
    /// slot's lines alone would leave a cache miss. Scans at most eight
    /// control bytes.
    #[inline]
    pub fn prefetch_slot(&self, h: u32) {
        const SCAN: usize = 8;
        let tag = Self::tag(h);
        let mut i = self.home(h);
        for _ in 0..SCAN {
            let c = self.ctrl[i];
            if c == 0 || c == tag {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Every line the slot spans, not only its first and last: a flow's
        // slot is 96 bytes and spans two lines, a slot of other sizes may
        // span three, and the middle one would hold most of the key the
        // look-up compares.
        prefetch_lines(
            self.slots.as_ptr().wrapping_add(i).cast(),
            std::mem::size_of::<(FlowKey, V)>(),
        );
    }

    /// Inserts a key that is not present. Panics when the table is full (the
    /// flow table evicts before that).
    #[inline]
    pub fn insert_new(&mut self, key: FlowKey, h: u32, v: V) {
        assert!(self.len < self.cap, "flow map full");
        debug_assert_eq!(h, key_hash(&key));
        if (self.len + 1) * 8 > self.ctrl.len() * 7 && self.ctrl.len() < self.max_slots {
            self.grow();
        }
        let mut i = self.home(h);
        while self.ctrl[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i].write((key, v));
        self.ctrl[i] = Self::tag(h);
        self.len += 1;
    }

    pub fn remove(&mut self, key: &FlowKey, h: u32) -> Option<V> {
        let i = self.find(key, h)?;
        // SAFETY: `find` returns occupied slots only.
        let v = unsafe { self.slots[i].assume_init_read().1 };
        self.erase(i);
        Some(v)
    }

    /// Empties slot `i` and shifts later members of its cluster back, so no
    /// probe sequence is broken and no tombstone is left.
    fn erase(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            if self.ctrl[j] == 0 {
                break;
            }
            let k = self.home(key_hash(self.key_at(j)));
            // Move j back to i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                self.ctrl[i] = self.ctrl[j];
                i = j;
            }
        }
        self.ctrl[i] = 0;
        self.len -= 1;
    }

    /// Removes the entries `keep` rejects and hands them to `gone`, in one
    /// pass over the slots. A kept entry that a removal left a hole before
    /// moves back to the first empty slot from its home, so no probe sequence
    /// meets an empty slot before its entry and no tombstone is left; each entry
    /// moves at most once (erasing entries one by one shifted the rest of a
    /// cluster for each, which cost a flood's evictions a fifth of its time).
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&FlowKey, &V) -> bool,
        mut gone: impl FnMut(FlowKey, V),
    ) {
        if self.len == 0 {
            return;
        }
        // Start after an empty slot: no cluster crosses it. Holes are only made
        // in slots already visited, so a slot found empty ends a cluster.
        let start = self.ctrl.iter().position(|&c| c == 0).expect("never full");
        let n = self.ctrl.len();
        // Whether this pass emptied a slot in the current cluster.
        let mut holes = false;
        let mut step = 1;
        while step <= n {
            let i = (start + step) & self.mask;
            // Skip empty stretches eight slots at a time (tables are mostly empty
            // between sweeps of a small capture).
            if i.is_multiple_of(8) && step + 8 <= n + 1 {
                let w = u64::from_ne_bytes(self.ctrl[i..i + 8].try_into().expect("8 bytes"));
                if w == 0 {
                    holes = false;
                    step += 8;
                    continue;
                }
            }
            step += 1;
            if self.ctrl[i] == 0 {
                holes = false;
                continue;
            }
            // SAFETY: occupied slot.
            let (k, v) = unsafe { self.slots[i].assume_init_ref() };
            if !keep(k, v) {
                // SAFETY: occupied slot, read once: its control byte is cleared.
                let (k, v) = unsafe { self.slots[i].assume_init_read() };
                self.ctrl[i] = 0;
                self.len -= 1;
                holes = true;
                gone(k, v);
                continue;
            }
            if holes {
                // Its home lies in this cluster, at or before i.
                let mut j = self.home(key_hash(k));
                while j != i && self.ctrl[j] != 0 {
                    j = (j + 1) & self.mask;
                }
                if j != i {
                    self.slots[j] = self.slots[i];
                    self.ctrl[j] = self.ctrl[i];
                    self.ctrl[i] = 0;
                }
            }
        }
    }

    /// The entries in every `stride`-th slot, in slot order.
    pub fn every_nth(&self, stride: usize) -> impl Iterator<Item = (&FlowKey, &V)> {
        self.ctrl
            .iter()
            .enumerate()
            .step_by(stride.max(1))
            .filter(|(_, &c)| c != 0)
            .map(|(i, _)| {
                // SAFETY: occupied slot.
                let e = unsafe { self.slots[i].assume_init_ref() };
                (&e.0, &e.1)
            })
    }

    /// Every entry, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&FlowKey, &V)> {
        self.every_nth(1)
    }

    /// Removes every entry, handing each to `gone`.
    pub fn drain(&mut self, mut gone: impl FnMut(FlowKey, V)) {
        for i in 0..self.ctrl.len() {
            if self.ctrl[i] != 0 {
                // SAFETY: occupied slot.
                let (k, v) = unsafe { self.slots[i].assume_init_read() };
                self.ctrl[i] = 0;
                gone(k, v);
            }
        }
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::v4_mapped;
    use crate::services::Transport;
    use std::collections::HashMap;

    #[test]
    fn table_memory_starts_empty_and_keeps_what_is_written() {
        let mut c = empty_ctrl(100_000);
        assert_eq!(c.len(), 100_000);
        assert!(c.iter().all(|&b| b == 0));
        c[99_999] = 0x81;
        let mut s = uninit_slots::<(FlowKey, u64)>(3);
        s[2].write((key(7), 9));
        // SAFETY: written just above.
        assert_eq!(unsafe { s[2].assume_init_read() }, (key(7), 9));
        assert_eq!(c[99_999], 0x81);
        assert!(empty_ctrl(0).is_empty());
    }

    fn key(i: u32) -> FlowKey {
        FlowKey::new(
            Transport::Tcp,
            v4_mapped(&i.to_be_bytes()),
            (i % 60_000) as u16,
            v4_mapped(&[10, 0, 0, 1]),
            80,
        )
        .0
    }

    #[test]
    fn behaves_like_a_hash_map_under_churn() {
        churn(1000, 3000, 200_000, 1);
    }

    #[test]
    fn behaves_like_a_hash_map_while_growing() {
        // Starts at 4,096 slots and doubles to 131,072 on the way.
        churn(100_000, 150_000, 600_000, 2000);
    }

    #[test]
    fn behaves_like_a_hash_map_near_its_cap() {
        // 7,000 entries in 8,192 slots (85% full, as the default flow cap
        // fills its table): long clusters, where `retain` moves entries back.
        churn(7_000, 9_000, 300_000, 20);
    }

    #[test]
    fn grows_with_its_entries_and_stops_at_its_cap() {
        let mut m = FlowMap::<u32>::with_capacity(100_000);
        assert_eq!(m.slots(), START_SLOTS);
        for i in 0..10_000 {
            m.insert_new(key(i), key_hash(&key(i)), i);
        }
        assert_eq!(m.slots(), 16_384);
        for i in 10_000..100_000 {
            m.insert_new(key(i), key_hash(&key(i)), i);
        }
        assert_eq!(m.slots(), 131_072);
        for i in 0..100_000 {
            assert_eq!(m.get_mut(&key(i), key_hash(&key(i))).copied(), Some(i));
        }
    }

    /// Random gets, inserts and removes against a std map; one step in four
    /// (times `retain_one_in`) is a `retain` with a random cut.
    fn churn(cap: usize, keys: u64, steps: u64, retain_one_in: u64) {
        let mut m = FlowMap::<u64>::with_capacity(cap);
        let mut model = HashMap::new();
        let mut rng = portflow_synth::Rng::new(3);
        for step in 0..steps {
            let k = key(rng.range(0, keys) as u32);
            match rng.range(0, 3) {
                0 | 1 => {
                    if let Some(v) = m.get_mut(&k, key_hash(&k)) {
                        *v += 1;
                        *model.get_mut(&k).unwrap() += 1;
                    } else if m.len() < m.capacity() {
                        m.insert_new(k, key_hash(&k), step);
                        model.insert(k, step);
                    }
                }
                2 => assert_eq!(m.remove(&k, key_hash(&k)), model.remove(&k)),
                _ if rng.range(1, retain_one_in) == 1 => {
                    let cut = rng.range(0, steps);
                    let mut gone = Vec::new();
                    m.retain(|_, v| *v >= cut, |k, v| gone.push((k, v)));
                    for (k, v) in gone {
                        assert_eq!(model.remove(&k), Some(v));
                    }
                    assert!(model.values().all(|v| *v >= cut));
                }
                _ => {}
            }
            assert_eq!(m.len(), model.len());
        }
        let mut all: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        let mut want: Vec<_> = model.into_iter().collect();
        all.sort();
        want.sort();
        assert_eq!(all, want);
    }

    #[test]
    fn retain_visits_every_entry_once_and_drain_empties() {
        let mut m = FlowMap::<u32>::with_capacity(5000);
        for i in 0..5000 {
            m.insert_new(key(i), key_hash(&key(i)), i);
        }
        let mut seen = 0;
        m.retain(
            |_, v| {
                seen += 1;
                v % 3 != 0
            },
            |_, _| {},
        );
        assert_eq!(seen, 5000);
        assert_eq!(m.len(), 5000 - 1667);
        for i in 0..5000 {
            assert_eq!(
                m.get_mut(&key(i), key_hash(&key(i))).is_some(),
                i % 3 != 0,
                "{i}"
            );
        }
        let mut n = 0;
        m.drain(|_, _| n += 1);
        assert_eq!((n, m.len()), (3333, 0));
        assert!(m.get_mut(&key(1), key_hash(&key(1))).is_none());
    }
}
