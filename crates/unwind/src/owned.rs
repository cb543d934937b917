//! Owned tables (feature `alloc`): sort and index vectors once, then borrow an [`OrcTable`].

extern crate alloc;

use alloc::vec::Vec;
use core::ops::Range;

use orc_format::{Layout, RawEntry};

use crate::rule::PackedEntry;
use crate::table::{block_index_len, build_block_index, build_direct_index, sort_key, Index, IndexError, OrcTable};

/// The block size [`OwnedTable::build`] uses by default: 32-byte blocks (`order` 5).
///
/// Measured against the kernel's 256-byte blocks, other sizes and a plain binary search in
/// `docs/benchmarks.md` ("Unwinder"); `docs/unwinder.md` explains the choice. The index costs
/// `4 / 32` bytes per byte of text (12.5% of text size; the kernel's 256-byte blocks cost
/// 1.6%): about twice the kernel's lookup speed on the addresses a walk looks up, for a
/// user-space-sized table. A kernel-sized embedder may prefer [`KERNEL_BLOCK_ORDER`].
pub const DEFAULT_BLOCK_ORDER: u8 = 5;

/// The block size of the direct index [`OwnedTable::build`] makes by default
/// ([`IndexKind::default`]): 16-byte blocks (`order` 4), each with a 4-byte count and an
/// 8-byte slot, 75% of the text's size. Measured in `docs/benchmarks.md` ("Unwinder"): on a
/// walk's addresses 3 lookups in 4 are answered by the slot alone; 8-byte blocks answer
/// nearly all (150% of text), 32-byte blocks half (37.5%).
pub const DEFAULT_DIRECT_ORDER: u8 = 4;

/// The kernel's `LOOKUP_BLOCK_ORDER`: 256-byte blocks.
pub const KERNEL_BLOCK_ORDER: u8 = 8;

/// Which index an [`OwnedTable`] builds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IndexKind {
    /// None: every lookup is a binary search of the whole table.
    BinarySearch,
    /// A block table with blocks of `1 << order` bytes.
    Blocks(u8),
    /// A block table plus a direct slot per block ([`crate::Index::Direct`]): 8 more bytes
    /// per block.
    Direct(u8),
}

impl Default for IndexKind {
    fn default() -> Self {
        IndexKind::Direct(DEFAULT_DIRECT_ORDER)
    }
}

/// A sorted, indexed ORC table that owns its arrays (addresses, entries, the entries packed
/// with their rule summaries, and the block index: 22 bytes per entry plus the index).
#[derive(Clone, Debug)]
pub struct OwnedTable {
    ips: Vec<u64>,
    entries: Vec<RawEntry>,
    packed: Vec<PackedEntry>,
    counts: Vec<u32>,
    slots: Vec<PackedEntry>,
    layout: Layout,
    text: Range<u64>,
    index: IndexKind,
}

impl OwnedTable {
    /// Sorts `(ip, entry)` pairs the kernel's way (terminators before real entries at the
    /// same address) and builds the requested index over `text`.
    ///
    /// An empty text range (or an order of 64 or more) gives a table without index.
    pub fn build(
        pairs: impl IntoIterator<Item = (u64, RawEntry)>,
        layout: Layout,
        text: Range<u64>,
        index: IndexKind,
    ) -> Result<OwnedTable, IndexError> {
        let mut pairs: Vec<(u64, RawEntry)> = pairs.into_iter().collect();
        pairs.sort_unstable_by_key(|&(ip, raw)| sort_key(layout, ip, raw));
        let (ips, entries): (Vec<u64>, Vec<RawEntry>) = pairs.into_iter().unzip();
        let mut counts = Vec::new();
        let mut slots = Vec::new();
        let mut kind = IndexKind::BinarySearch;
        if let IndexKind::Blocks(order) | IndexKind::Direct(order) = index {
            if let Some(len) = block_index_len(&text, order) {
                counts.resize(len, 0);
                build_block_index(&ips, &text, order, &mut counts)?;
                if let IndexKind::Direct(_) = index {
                    slots.resize(len - 1, PackedEntry(0));
                    build_direct_index(&ips, &entries, layout, &text, order, &counts, &mut slots)?;
                }
                kind = index;
            }
        }
        let packed = entries.iter().map(|&raw| PackedEntry::new(raw, layout)).collect();
        Ok(OwnedTable { ips, entries, packed, counts, slots, layout, text, index: kind })
    }

    /// The borrowed view the unwinder searches.
    pub fn table(&self) -> OrcTable<'_> {
        let t = OrcTable::new(&self.ips, &self.entries, self.layout, self.text.clone()).with_packed(&self.packed);
        match self.index {
            IndexKind::BinarySearch => t,
            IndexKind::Blocks(order) => OrcTable { index: Index::Blocks { order, counts: &self.counts }, ..t },
            IndexKind::Direct(order) => OrcTable { index: Index::Direct { order, counts: &self.counts, slots: &self.slots }, ..t },
        }
    }

    /// The sorted addresses.
    pub fn ips(&self) -> &[u64] {
        &self.ips
    }

    /// The entries, in the order of [`OwnedTable::ips`].
    pub fn entries(&self) -> &[RawEntry] {
        &self.entries
    }

    /// Bytes used by the index (4 per block, 12 with direct slots).
    pub fn index_bytes(&self) -> usize {
        self.counts.len() * 4 + self.slots.len() * 8
    }

    /// The index kind actually built.
    pub fn index_kind(&self) -> IndexKind {
        self.index
    }
}
