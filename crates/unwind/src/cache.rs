//! An optional lookup cache: a small direct-mapped array in front of any [`OrcLookup`].
//!
//! The kernel has no such cache; its lookup is the block index plus a binary search. A
//! profiler that unwinds the same code over and over (framehop keeps a 509-slot rule cache
//! for that reason) can put one in front of its tables: a hit costs one load and one compare
//! instead of the index's chain of dependent loads (block count, addresses, entry). The
//! answers are the same as without it: the cache maps a looked-up address to the entry the
//! tables gave for it, nothing else. Allocation-free (the slots live in the struct), and not
//! `Sync` (one cache per thread or CPU).

use core::cell::Cell;

use orc_format::{Layout, RawEntry};

use crate::rule::PackedEntry;
use crate::table::OrcLookup;

/// `N` slots (a power of two) caching `address -> (entry, layout)` for the lookup `L`.
pub struct CachedLookup<L, const N: usize> {
    inner: L,
    /// `(address, packed entry)`; address 0 marks an empty slot (the unwinder never looks up
    /// address 0: that is the null entry).
    slots: [Cell<(u64, PackedEntry)>; N],
}

impl<L: OrcLookup, const N: usize> CachedLookup<L, N> {
    const CHECK: () = assert!(N.is_power_of_two(), "the number of slots must be a power of two");

    /// An empty cache in front of `inner`.
    pub fn new(inner: L) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        CachedLookup { inner, slots: core::array::from_fn(|_| Cell::new((0, PackedEntry(0)))) }
    }

    /// Forgets everything (after tables change: a module unloaded, say).
    pub fn clear(&self) {
        for s in &self.slots {
            s.set((0, PackedEntry(0)));
        }
    }

    /// The lookup behind the cache.
    pub fn inner(&self) -> &L {
        &self.inner
    }

    #[inline(always)]
    fn slot(&self, addr: u64) -> &Cell<(u64, PackedEntry)> {
        // The low bits: nearby return addresses spread over the slots, and the hash costs
        // nothing on the walk's critical path (return address -> slot -> next read).
        let h = addr as usize & (N - 1);
        &self.slots[h]
    }
}

impl<L: OrcLookup, const N: usize> OrcLookup for CachedLookup<L, N> {
    #[inline(always)]
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)> {
        self.lookup_packed(addr).map(|p| (p.raw(), p.layout()))
    }

    #[inline(always)]
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        let slot = self.slot(addr);
        let (key, packed) = slot.get();
        if key == addr && addr != 0 {
            return Some(packed);
        }
        let found = self.inner.lookup_packed(addr);
        if let Some(packed) = found {
            slot.set((addr, packed));
        }
        found
    }

    #[inline(always)]
    fn is_text(&self, addr: u64) -> bool {
        self.inner.is_text(addr)
    }
}
