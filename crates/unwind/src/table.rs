//! Lookup tables: sorted ORC entries of one object, the block index over them, and a set of
//! modules each with its own table.
//!
//! Everything here borrows: a kernel-like embedder points an [`OrcTable`] at its own sorted
//! arrays (as `scripts/sorttable` leaves them) and at a block index it built once with
//! [`build_block_index`] into a buffer it owns. The `alloc` feature adds
//! [`crate::OwnedTable`], which sorts and indexes vectors for you.

use core::ops::Range;

use orc_format::{Entry, EntryType, Layout, RawEntry};

use crate::rule::PackedEntry;

/// Finds the ORC entry that covers an address. The unwinder is generic over it.
pub trait OrcLookup {
    /// The entry of the rightmost table address `<= addr`, in the table whose text covers
    /// `addr`, with that table's layout; `None` when no table covers `addr` or `addr` is
    /// before its first entry.
    ///
    /// (`addr == 0` is handled by the unwinder itself: the kernel's null entry.)
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)>;

    /// [`OrcLookup::lookup`], packed with its rule summary for the unwinder. Override it to
    /// cache the packed word (see [`crate::CachedLookup`]).
    #[inline(always)]
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        self.lookup(addr).map(|(raw, layout)| PackedEntry::new(raw, layout))
    }

    /// [`OrcLookup::lookup`], decoded.
    #[inline]
    fn find(&self, addr: u64) -> Option<Entry> {
        self.lookup(addr).map(|(raw, layout)| layout.decode(raw))
    }

    /// True when `addr` is in the text of some table: a return address that is not is what
    /// makes the kernel's reliable stack walk give up (`__kernel_text_address`).
    fn is_text(&self, addr: u64) -> bool;
}

impl<T: OrcLookup + ?Sized> OrcLookup for &T {
    #[inline(always)]
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)> {
        (**self).lookup(addr)
    }
    #[inline(always)]
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        (**self).lookup_packed(addr)
    }
    #[inline]
    fn is_text(&self, addr: u64) -> bool {
        (**self).is_text(addr)
    }
}

/// How [`OrcTable::find`] narrows the search before its final binary search.
#[derive(Clone, Copy, Debug)]
pub enum Index<'a> {
    /// Binary search of the whole table.
    None,
    /// A block table in the style of the kernel's `.orc_lookup` (reference 1.6), built by
    /// [`build_block_index`]: the text is cut into blocks of `1 << order` bytes and
    /// `counts[i]` is the number of entries whose ip is `<= text.start + (i << order)`;
    /// `counts[last]` the number `<= text.end`. An address in block `i` then has its entry
    /// among `ips[counts[i] - 1 .. counts[i + 1]]`, usually a handful.
    ///
    /// The kernel's table uses `order = 8` (256 bytes) and stores the index of the rightmost
    /// entry rather than a count; a count avoids the special case of a block with no entry at
    /// or before its start.
    Blocks {
        /// log2 of the block size in bytes (the kernel's `LOOKUP_BLOCK_ORDER` is 8).
        order: u8,
        /// One count per block plus one for the end of the text.
        counts: &'a [u32],
    },
    /// [`Index::Blocks`] plus one word per block that answers the lookup by itself: when one
    /// entry covers the whole block (no entry starts inside it, the common case inside a
    /// function body), `slots[i]` is that entry, packed; else it has [`DIRECT_MISS`] set and
    /// the lookup searches through `counts` as [`Index::Blocks`] does. Built by
    /// [`build_direct_index`]. One load answers most lookups, with no dependent chain of
    /// count, addresses, entry.
    Direct {
        /// log2 of the block size in bytes.
        order: u8,
        /// As in [`Index::Blocks`].
        counts: &'a [u32],
        /// One per block (`counts.len() - 1`).
        slots: &'a [PackedEntry],
    },
}

/// Set in an [`Index::Direct`] slot whose block is not covered by a single entry (no packed
/// entry has bit 63 set).
pub const DIRECT_MISS: u64 = 1 << 63;

/// The sorted ORC table of one object (vmlinux, a module, a user-space binary).
///
/// `ips` must be sorted ascending with section terminators before real entries at the same
/// address ([`sort_entries`] does that); a table that is not sorted gives wrong answers but
/// never a panic.
#[derive(Clone, Debug)]
pub struct OrcTable<'a> {
    /// Absolute instruction addresses, sorted.
    pub ips: &'a [u64],
    /// `entries[i]` describes the state before the instruction at `ips[i]`.
    pub entries: &'a [RawEntry],
    /// How the flag bits of `entries` are laid out.
    pub layout: Layout,
    /// The text this table covers: addresses outside it are not looked up here.
    pub text: Range<u64>,
    /// The search accelerator.
    pub index: Index<'a>,
    /// Optionally, `entries` already packed with their rule summaries ([`pack_entries`]),
    /// which saves the unwinder a table load per frame.
    pub packed: Option<&'a [PackedEntry]>,
}

impl<'a> OrcTable<'a> {
    /// A table without an index (binary search over all of `ips`).
    pub fn new(ips: &'a [u64], entries: &'a [RawEntry], layout: Layout, text: Range<u64>) -> Self {
        OrcTable { ips, entries, layout, text, index: Index::None, packed: None }
    }

    /// The same table with `entries` also given packed (from [`pack_entries`]).
    pub fn with_packed(self, packed: &'a [PackedEntry]) -> Self {
        OrcTable { packed: Some(packed), ..self }
    }

    /// The same table with direct slots over its block index (see [`build_direct_index`]).
    pub fn with_direct(self, order: u8, counts: &'a [u32], slots: &'a [PackedEntry]) -> Self {
        OrcTable { index: Index::Direct { order, counts, slots }, ..self }
    }

    /// The same table searched through a block index (see [`build_block_index`]).
    pub fn with_blocks(self, order: u8, counts: &'a [u32]) -> Self {
        OrcTable { index: Index::Blocks { order, counts }, ..self }
    }

    /// Number of entries (the shorter of the two arrays, if they disagree).
    #[inline]
    pub fn len(&self) -> usize {
        self.ips.len().min(self.entries.len())
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Position of the entry that covers `addr` (the rightmost `ips[i] <= addr`), if any.
    #[inline(always)]
    pub fn position(&self, addr: u64) -> Option<usize> {
        // One compare for both ends: below the start, `off` wraps to a huge number.
        let off = addr.wrapping_sub(self.text.start);
        if off >= self.text.end.wrapping_sub(self.text.start) || self.text.end < self.text.start {
            return None;
        }
        let ips = self.ips.get(..self.entries.len()).unwrap_or(self.ips);
        let (lo, hi) = match self.index {
            Index::None => (0, ips.len()),
            Index::Blocks { order, counts } | Index::Direct { order, counts, .. } => {
                let block = usize::try_from(off.checked_shr(u32::from(order)).unwrap_or(0)).ok()?;
                match counts.get(block..block.wrapping_add(2)) {
                    Some(&[lo, hi]) => (lo as usize, hi as usize),
                    _ => (0, ips.len()), // address past the indexed text: whole table
                }
            }
        };
        // `lo` entries are known to be <= addr; find how many more in ips[lo..hi] are.
        let range = ips.get(lo..hi)?; // a corrupt index gives None, not a panic
        let p = lo + match range {
            [] => 0,
            [ip] => usize::from(*ip <= addr),
            _ => rightmost_le(range, addr),
        };
        p.checked_sub(1)
    }

    /// The raw entry that covers `addr`.
    #[inline(always)]
    pub fn find_raw(&self, addr: u64) -> Option<RawEntry> {
        if let Some(p) = self.direct(addr) {
            return Some(p.raw());
        }
        self.entries.get(self.position(addr)?).copied()
    }

    /// The answer of an [`Index::Direct`] slot, if the table has one and the block of `addr`
    /// is covered by a single entry.
    #[inline(always)]
    fn direct(&self, addr: u64) -> Option<PackedEntry> {
        let Index::Direct { order, slots, .. } = self.index else { return None };
        let off = addr.wrapping_sub(self.text.start);
        if off >= self.text.end.wrapping_sub(self.text.start) || self.text.end < self.text.start {
            return None;
        }
        let block = usize::try_from(off.checked_shr(u32::from(order))?).ok()?;
        let slot = *slots.get(block)?;
        (slot.0 & DIRECT_MISS == 0).then_some(slot)
    }
}

/// Number of elements `<= addr` in a sorted slice: a branchless binary search (the
/// comparison feeds a conditional move, not a branch, so random addresses cost no
/// mispredictions); for the short ranges the block index leaves it loops once or twice.
#[inline]
fn rightmost_le(ips: &[u64], addr: u64) -> usize {
    let mut size = ips.len();
    if size == 0 {
        return 0;
    }
    let mut base = 0usize;
    while size > 1 {
        let half = size / 2;
        let mid = base + half;
        // mid < base + size <= ips.len()
        // A mask select, which compilers keep as arithmetic (a plain `if` here becomes a
        // mispredicted branch).
        let take = 0usize.wrapping_sub(usize::from(ips[mid] <= addr));
        base = (mid & take) | (base & !take);
        size -= half;
    }
    base + usize::from(ips[base] <= addr)
}

impl OrcLookup for OrcTable<'_> {
    #[inline(always)]
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)> {
        self.find_raw(addr).map(|raw| (raw, self.layout))
    }

    #[inline(always)]
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        if let Some(p) = self.direct(addr) {
            return Some(p);
        }
        let i = self.position(addr)?;
        match self.packed {
            Some(packed) if packed.len() == self.entries.len() => packed.get(i).copied(),
            _ => self.entries.get(i).map(|&raw| PackedEntry::new(raw, self.layout)),
        }
    }

    #[inline]
    fn is_text(&self, addr: u64) -> bool {
        self.text.contains(&addr)
    }
}

/// Several objects, each with its own table: vmlinux and its modules, or a process's
/// executable and libraries. `tables` must be sorted by `text.start` with no overlaps.
#[derive(Clone, Copy, Debug)]
pub struct ModuleTables<'t, 'a> {
    /// The tables, sorted by text start.
    pub tables: &'t [OrcTable<'a>],
}

impl<'t, 'a> ModuleTables<'t, 'a> {
    /// The set over `tables` (sorted by `text.start`).
    pub const fn new(tables: &'t [OrcTable<'a>]) -> Self {
        ModuleTables { tables }
    }

    /// The table whose text contains `addr`.
    #[inline]
    pub fn table_for(&self, addr: u64) -> Option<&'t OrcTable<'a>> {
        let i = self.tables.partition_point(|t| t.text.start <= addr).checked_sub(1)?;
        let t = &self.tables[i];
        (addr < t.text.end).then_some(t)
    }
}

impl OrcLookup for ModuleTables<'_, '_> {
    #[inline]
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)> {
        self.table_for(addr)?.lookup(addr)
    }

    #[inline]
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        self.table_for(addr)?.lookup_packed(addr)
    }

    #[inline]
    fn is_text(&self, addr: u64) -> bool {
        self.table_for(addr).is_some()
    }
}

/// Packs `entries` of `layout` with their rule summaries into `out` (as long as `entries`),
/// for [`OrcTable::with_packed`]. Allocation-free; returns the part of `out` used, or `None`
/// if `out` is too short.
pub fn pack_entries<'o>(entries: &[RawEntry], layout: Layout, out: &'o mut [PackedEntry]) -> Option<&'o [PackedEntry]> {
    let out = out.get_mut(..entries.len())?;
    for (o, &raw) in out.iter_mut().zip(entries) {
        *o = PackedEntry::new(raw, layout);
    }
    Some(out)
}

/// Builds the slots of an [`Index::Direct`] into `out` (one per block: `counts.len() - 1`)
/// from sorted `ips`, their `entries` of `layout`, and the block counts `build_block_index`
/// made with the same `text` and `order`; returns the part of `out` used. Allocation-free,
/// one merge pass.
pub fn build_direct_index<'o>(
    ips: &[u64],
    entries: &[RawEntry],
    layout: Layout,
    text: &Range<u64>,
    order: u8,
    counts: &[u32],
    out: &'o mut [PackedEntry],
) -> Result<&'o [PackedEntry], IndexError> {
    let needed = block_index_len(text, order).ok_or(IndexError::BadRange)?;
    if counts.len() != needed {
        return Err(IndexError::BadRange);
    }
    let blocks = needed - 1;
    let out = out.get_mut(..blocks).ok_or(IndexError::BufferTooSmall { needed: blocks })?;
    let n = ips.len().min(entries.len());
    // `below` = number of ips <= the last address of the current block.
    let mut below = 0usize;
    for (i, slot) in out.iter_mut().enumerate() {
        let next = text.start.saturating_add(((i as u64) + 1) << order).min(text.end);
        let last = next - 1;
        while below < n && ips[below] <= last {
            below += 1;
        }
        let at_start = counts[i] as usize;
        *slot = if at_start > 0 && at_start == below && at_start <= n {
            PackedEntry::new(entries[at_start - 1], layout)
        } else {
            PackedEntry(DIRECT_MISS)
        };
    }
    Ok(out)
}

/// Why a block index could not be built.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IndexError {
    /// The output buffer is shorter than [`block_index_len`] says.
    BufferTooSmall {
        /// Entries needed.
        needed: usize,
    },
    /// The text range is empty or inverted, or the order is 64 or more.
    BadRange,
    /// More than `u32::MAX` entries.
    TooManyEntries,
}

/// Number of `u32`s a block index of `text` with blocks of `1 << order` bytes needs:
/// one per block plus one for the end (the kernel's `(ceil(size / 256) + 1)`).
pub fn block_index_len(text: &Range<u64>, order: u8) -> Option<usize> {
    if text.end <= text.start || order >= 64 {
        return None;
    }
    let size = text.end - text.start;
    let blocks = size.div_ceil(1u64 << order);
    usize::try_from(blocks).ok()?.checked_add(1)
}

/// Builds a block index over sorted `ips` into `out` and returns the part of `out` used.
///
/// `out[i]` = number of `ips <= text.start + (i << order)` for each block, and the last
/// element = number of `ips <= text.end`. Allocation-free: the caller owns the buffer (its
/// length from [`block_index_len`]). One merge pass, `O(blocks + entries)`.
pub fn build_block_index<'o>(
    ips: &[u64],
    text: &Range<u64>,
    order: u8,
    out: &'o mut [u32],
) -> Result<&'o [u32], IndexError> {
    let needed = block_index_len(text, order).ok_or(IndexError::BadRange)?;
    if ips.len() > u32::MAX as usize {
        return Err(IndexError::TooManyEntries);
    }
    let out = out.get_mut(..needed).ok_or(IndexError::BufferTooSmall { needed })?;
    let mut count = 0usize;
    let blocks = needed - 1;
    for (i, slot) in out.iter_mut().enumerate() {
        let bound = if i < blocks { text.start + ((i as u64) << order) } else { text.end };
        while count < ips.len() && ips[count] <= bound {
            count += 1;
        }
        *slot = count as u32;
    }
    Ok(out)
}

/// True for an entry that is a section terminator (or any other "no information" entry):
/// such entries are weak and sort before a real entry at the same address, so that the
/// rightmost-match search picks the real one (reference 1.4).
///
/// v3: type UNDEFINED. v1/v2: `sp_reg == UNDEFINED` with the `end` bit clear.
#[inline]
pub fn is_weak(layout: Layout, raw: RawEntry) -> bool {
    matches!(layout.decode(raw).kind, EntryType::Undefined)
}

/// The sort key: address, then weak entries first; the rest of the bytes only make the order
/// total (two real entries at one address are a generator bug; the last one wins, as in the
/// kernel, and this makes "last" deterministic).
#[inline]
pub fn sort_key(layout: Layout, ip: u64, raw: RawEntry) -> (u64, bool, u16, i16, i16) {
    (ip, !is_weak(layout, raw), raw.flags, raw.sp_offset, raw.bp_offset)
}

/// Sorts two parallel arrays as the kernel does at module load (and `sorttable` at build
/// time): by address, a weak entry (terminator) before a real one at the same address.
///
/// In place and allocation-free (a heapsort, as the kernel's `sort()`); both slices are
/// truncated to the shorter length first.
pub fn sort_entries(ips: &mut [u64], entries: &mut [RawEntry], layout: Layout) {
    let n = ips.len().min(entries.len());
    let (ips, entries) = (&mut ips[..n], &mut entries[..n]);
    let key = |ips: &[u64], entries: &[RawEntry], i: usize| sort_key(layout, ips[i], entries[i]);
    let sift_down = |ips: &mut [u64], entries: &mut [RawEntry], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            break;
        }
        if child + 1 < end && key(ips, entries, child) < key(ips, entries, child + 1) {
            child += 1;
        }
        if key(ips, entries, root) >= key(ips, entries, child) {
            break;
        }
        ips.swap(root, child);
        entries.swap(root, child);
        root = child;
    };
    for start in (0..n / 2).rev() {
        sift_down(ips, entries, start, n);
    }
    for end in (1..n).rev() {
        ips.swap(0, end);
        entries.swap(0, end);
        sift_down(ips, entries, 0, end);
    }
}
