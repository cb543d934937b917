//! The direct index and the unwinder's fast path against the reference: on random tables and
//! random stacks, a table with direct slots (every block order) answers every lookup as a
//! linear scan does, and a walk through it gives the same frames, end and verdict as a walk
//! that takes the general rule path for every frame over a plain binary search.

mod common;

use common::*;
use orc_format::{Entry, EntryType, Layout, RawEntry, Reg};
use orc_unwind::{
    block_index_len, build_block_index, build_direct_index, Index, OrcLookup, OrcTable, PackedEntry, Unwinder,
};
use proptest::prelude::*;

const TEXT: std::ops::Range<u64> = 0x1000..0x1300;

/// The general rule path: every packed entry marked "not on the fast path" (bit 51), so the
/// unwinder builds the full `UnwindRule` from the raw entry and its layout.
struct Reference<'a>(OrcTable<'a>);

impl OrcLookup for Reference<'_> {
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)> {
        let i = self.0.ips.iter().rposition(|&ip| ip <= addr).filter(|_| self.0.text.contains(&addr))?;
        Some((self.0.entries[i], self.0.layout))
    }
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        self.lookup(addr).map(|(raw, layout)| PackedEntry(PackedEntry::new(raw, layout).0 | 1 << 51))
    }
    fn is_text(&self, addr: u64) -> bool {
        self.0.text.contains(&addr)
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    let sp_reg = prop_oneof![6 => Just(Reg::SP), 2 => Just(Reg::BP), 1 => Just(Reg::SP_INDIRECT), 1 => Just(Reg::DI)];
    let bp_reg = prop_oneof![4 => Just(Reg::UNDEFINED), 2 => Just(Reg::PREV_SP), 1 => Just(Reg::BP)];
    let kind = prop_oneof![8 => Just(EntryType::Call), 1 => Just(EntryType::EndOfStack), 1 => Just(EntryType::Regs)];
    (kind, sp_reg, 1i16..6, bp_reg, -4i16..0, any::<bool>()).prop_map(|(kind, sp_reg, sp, bp_reg, bp, signal)| Entry {
        kind,
        sp_reg,
        sp_offset: sp * 8,
        bp_reg,
        bp_offset: if bp_reg == Reg::UNDEFINED { 0 } else { bp * 8 },
        signal: signal && kind == EntryType::Call,
    })
}

/// A sorted table of the pairs `layout` can encode (the others are left out).
fn table(layout: Layout, text: std::ops::Range<u64>, pairs: &[(u64, Entry)]) -> Table {
    let (mut ips, mut entries): (Vec<u64>, Vec<RawEntry>) =
        pairs.iter().filter_map(|&(ip, e)| Some((ip, layout.encode(fit(layout, e)).ok()?))).unzip();
    orc_unwind::sort_entries(&mut ips, &mut entries, layout);
    Table { ips, entries, layout, text }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::V1), Just(Layout::V2), Just(Layout::V3)]
}

proptest! {
    #[test]
    fn direct_index_answers_as_a_linear_scan(
        pairs in proptest::collection::vec((TEXT.start..TEXT.end + 0x40, entry()), 0..80),
        layout in layout(),
        order in 0u8..9,
        end in TEXT.start + 1..TEXT.end + 0x30,
    ) {
        let t = table(layout, TEXT.start..end, &pairs);
        let text = t.text.clone();
        let mut counts = vec![0u32; block_index_len(&text, order).unwrap()];
        build_block_index(&t.ips, &text, order, &mut counts).unwrap();
        let mut slots = vec![PackedEntry(0); counts.len() - 1];
        build_direct_index(&t.ips, &t.entries, layout, &text, order, &counts, &mut slots).unwrap();
        let direct = OrcTable { index: Index::Direct { order, counts: &counts, slots: &slots }, ..t.table() };
        let reference = Reference(t.table());
        for addr in TEXT.start - 0x10..end + 0x10 {
            prop_assert_eq!(direct.lookup(addr), reference.lookup(addr), "addr {:#x}", addr);
            prop_assert_eq!(direct.lookup_packed(addr), reference.lookup(addr).map(|(r, l)| PackedEntry::new(r, l)));
        }
    }

    #[test]
    fn fast_path_walks_as_the_reference_step(
        pairs in proptest::collection::vec((TEXT.start..TEXT.end, entry()), 1..60),
        layout in layout(),
        order in 2u8..7,
        words in proptest::collection::vec(prop_oneof![
            4 => TEXT.start..TEXT.end + 0x10,
            2 => 0x8000u64..0x8400,
            1 => any::<u64>(),
        ], 1..64),
        ip in TEXT.start..TEXT.end,
        sp_word in 0usize..16,
        bp in prop_oneof![0x8000u64..0x8400, any::<u64>()],
        exact in any::<bool>(),
    ) {
        let t = table(layout, TEXT, &pairs);
        let mut counts = vec![0u32; block_index_len(&TEXT, order).unwrap()];
        build_block_index(&t.ips, &TEXT, order, &mut counts).unwrap();
        let mut slots = vec![PackedEntry(0); counts.len() - 1];
        build_direct_index(&t.ips, &t.entries, layout, &TEXT, order, &counts, &mut slots).unwrap();
        let direct = OrcTable { index: Index::Direct { order, counts: &counts, slots: &slots }, ..t.table() };
        let stack = Words::new(0x8000, &words);
        let sp = stack.at(sp_word.min(words.len() - 1));
        let (mut m1, mut m2) = (Mem::new(&[stack.clone()]), Mem::new(&[stack]));
        let ranges = m1.ranges();
        let fast = Unwinder::new(&direct, &ranges);
        let slow = Unwinder::new(Reference(t.table()), &ranges);
        let (a, fa) = walk(&fast, fast.start(ip, sp, bp, exact), &mut m1);
        let (b, fb) = walk(&slow, slow.start(ip, sp, bp, exact), &mut m2);
        prop_assert_eq!(fa, fb);
        prop_assert_eq!(a, b);
        prop_assert_eq!(m1.reads, m2.reads, "the same words read");
    }
}
