//! Sorting (terminators are weak), the block index, and module dispatch.

mod common;

use common::*;
use orc_format::{Entry, Layout, RawEntry};
use orc_unwind::{
    block_index_len, build_block_index, is_weak, sort_entries, IndexError, ModuleTables, OrcLookup, OrcTable,
};
use proptest::prelude::*;

#[test]
fn terminator_sorts_before_the_real_entry_at_the_same_address() {
    for layout in Layout::ALL {
        // Function a ends at 0x1100 where b starts: a's terminator and b's first entry share
        // the address, and arrive in the "wrong" order (terminator last).
        let pairs = [(0x1100, Entry::call(16)), (0x1000, Entry::call(8)), (0x1100, Entry::UNDEFINED)];
        let t = Table::new(layout, 0x1000..0x2000, &pairs);
        assert_eq!(t.ips, [0x1000, 0x1100, 0x1100]);
        assert!(is_weak(layout, t.entries[1]), "{layout:?}: terminator first");
        assert!(!is_weak(layout, t.entries[2]));
        let table = t.table();
        assert_eq!(table.find(0x1100), Some(fit(layout, Entry::call(16))), "{layout:?}: rightmost match is real");
        assert_eq!(table.find(0x10ff), Some(fit(layout, Entry::call(8))));
    }
}

#[test]
fn end_of_stack_is_not_weak() {
    // Only UNDEFINED is weak; an END_OF_STACK entry (v1/v2: sp_reg undefined *with* end) is
    // a real entry.
    for layout in Layout::ALL {
        let raw = layout.encode(Entry::END_OF_STACK).unwrap();
        assert!(!is_weak(layout, raw), "{layout:?}");
        assert!(is_weak(layout, layout.encode(Entry::UNDEFINED).unwrap()));
    }
}

#[test]
fn lookup_outside_text_or_before_first_entry_finds_nothing() {
    let t = Table::new(Layout::V3, 0x1000..0x2000, &[(0x1010, Entry::call(8))]);
    let table = t.table();
    assert_eq!(table.find(0x0fff), None);
    assert_eq!(table.find(0x1000), None, "in text but before the first entry");
    assert_eq!(table.find(0x2000), None, "text end is exclusive");
    assert!(table.find(0x1fff).is_some());
}

#[test]
fn block_index_buffer_and_range_errors() {
    let ips = [0x1000u64, 0x1100];
    let mut small = [0u32; 2];
    assert_eq!(
        build_block_index(&ips, &(0x1000..0x1200), 8, &mut small),
        Err(IndexError::BufferTooSmall { needed: 3 })
    );
    let mut buf = [0u32; 8];
    assert_eq!(build_block_index(&ips, &(0x1000..0x1000), 8, &mut buf), Err(IndexError::BadRange));
    assert_eq!(build_block_index(&ips, &(0x1000..0x1200), 64, &mut buf), Err(IndexError::BadRange));
    assert_eq!(block_index_len(&(0x1000..0x1201), 8), Some(4));
    assert_eq!(build_block_index(&ips, &(0x1000..0x1200), 8, &mut buf).unwrap(), [1, 2, 2]);
}

#[test]
fn corrupt_block_index_does_not_panic() {
    let ips = [0x1000u64, 0x1100, 0x1200];
    let entries = [RawEntry::default(); 3];
    let counts = [7u32, 1, u32::MAX];
    let table = OrcTable::new(&ips, &entries, Layout::V3, 0x1000..0x1300).with_blocks(8, &counts);
    for addr in (0x1000..0x1300).step_by(0x40) {
        let _ = table.position(addr);
    }
    let short = [0u32];
    let table = OrcTable::new(&ips, &entries, Layout::V3, 0x1000..0x1300).with_blocks(8, &short);
    assert_eq!(table.position(0x1250), Some(2), "past the index: whole-table search");
}

#[test]
fn modules_dispatch_by_text_range() {
    let a = Table::new(Layout::V3, 0x1000..0x2000, &[(0x1000, Entry::call(8))]);
    let b = Table::new(Layout::V1, 0x8000..0x9000, &[(0x8000, Entry::call(16))]);
    let tables = [a.table(), b.table()];
    let m = ModuleTables::new(&tables);
    assert_eq!(m.find(0x1500), Some(Entry::call(8)));
    assert_eq!(m.find(0x8500), Some(Entry::call(16)));
    assert_eq!(m.find(0x5000), None);
    assert!(m.is_text(0x8fff) && !m.is_text(0x9000) && !m.is_text(0x500));
}

/// The reference: the rightmost entry whose address is <= addr, by a linear scan.
fn reference(ips: &[u64], addr: u64) -> Option<usize> {
    ips.iter().rposition(|&ip| ip <= addr)
}

proptest! {
    #[test]
    fn block_index_agrees_with_binary_search(
        mut ips in proptest::collection::vec(0x1000u64..0x3000, 0..200),
        order in 0u8..12,
        queries in proptest::collection::vec(0x0f00u64..0x3100, 1..50),
    ) {
        ips.sort_unstable();
        let entries = vec![RawEntry::default(); ips.len()];
        let text = 0x1000u64..0x3000;
        let plain = OrcTable::new(&ips, &entries, Layout::V3, text.clone());
        let mut counts = vec![0u32; block_index_len(&text, order).unwrap()];
        build_block_index(&ips, &text, order, &mut counts).unwrap();
        let indexed = plain.clone().with_blocks(order, &counts);
        for addr in queries {
            let expect = if text.contains(&addr) { reference(&ips, addr) } else { None };
            // Duplicated addresses: any of the equal ones is the same entry for the unwinder,
            // but both searches must pick the rightmost.
            prop_assert_eq!(plain.position(addr), expect);
            prop_assert_eq!(indexed.position(addr), expect);
        }
    }

    #[test]
    fn sort_is_total_and_puts_weak_entries_first(
        pairs in proptest::collection::vec((0u64..64, any::<u16>(), any::<i16>()), 0..100),
        layout in prop_oneof![Just(Layout::V1), Just(Layout::V2), Just(Layout::V3)],
    ) {
        let mut ips: Vec<u64> = pairs.iter().map(|p| p.0 * 16).collect();
        let mut entries: Vec<RawEntry> =
            pairs.iter().map(|p| RawEntry { sp_offset: p.2, bp_offset: 0, flags: p.1 }).collect();
        let mut expect: Vec<_> = ips.iter().zip(&entries).map(|(&ip, &e)| orc_unwind::sort_key(layout, ip, e)).collect();
        expect.sort();
        sort_entries(&mut ips, &mut entries, layout);
        let got: Vec<_> = ips.iter().zip(&entries).map(|(&ip, &e)| orc_unwind::sort_key(layout, ip, e)).collect();
        prop_assert_eq!(got, expect);
    }
}

#[cfg(feature = "alloc")]
mod owned {
    use super::*;
    use orc_unwind::{IndexKind, OwnedTable};

    #[test]
    fn owned_table_sorts_and_indexes() {
        for kind in [IndexKind::BinarySearch, IndexKind::Blocks(8), IndexKind::Blocks(4)] {
            let raw = |e| Layout::V3.encode(e).unwrap();
            let t = OwnedTable::build(
                [(0x1100, raw(Entry::call(16))), (0x1000, raw(Entry::call(8))), (0x1100, raw(Entry::UNDEFINED))],
                Layout::V3,
                0x1000..0x2000,
                kind,
            )
            .unwrap();
            assert_eq!(t.ips(), [0x1000, 0x1100, 0x1100]);
            assert_eq!(t.table().find(0x1100), Some(Entry::call(16)));
            assert_eq!(t.index_kind(), kind);
        }
    }
}

#[test]
fn precomputed_rules_equal_the_definition_for_every_flag_value() {
    use orc_unwind::{PackedEntry, SpIndirect, UnwindRule};
    for layout in Layout::ALL {
        for flags in 0..=u16::MAX {
            for (sp_offset, bp_offset) in [(0i16, 0i16), (16, -16), (-8, 8)] {
                let raw = RawEntry { sp_offset, bp_offset, flags };
                for sp_ind in [SpIndirect::DerefThenAdd, SpIndirect::AddThenDeref] {
                    assert_eq!(
                        UnwindRule::from_raw(layout, raw, sp_ind),
                        UnwindRule::from_entry(&layout.decode(raw), sp_ind),
                        "{layout:?} {raw:?}"
                    );
                }
                let p = PackedEntry::new(raw, layout);
                assert_eq!((p.raw(), p.layout()), (raw, layout));
            }
        }
    }
}

#[test]
fn cached_lookup_gives_the_same_answers() {
    use orc_unwind::CachedLookup;
    let pairs: Vec<(u64, Entry)> = (0..200u64).map(|i| (0x1000 + i * 12, Entry::call(8 * (i % 5) as i16 + 8))).collect();
    let t = Table::new(Layout::V3, 0x1000..0x2000, &pairs);
    let table = t.table();
    let cached = CachedLookup::<_, 16>::new(table.clone());
    for round in 0..3 {
        for addr in (0x0f00u64..0x2100).step_by(7) {
            assert_eq!(cached.lookup(addr), table.lookup(addr), "round {round} addr {addr:#x}");
            assert_eq!(cached.lookup_packed(addr), table.lookup_packed(addr));
            assert_eq!(cached.is_text(addr), table.is_text(addr));
        }
    }
    cached.clear();
    assert_eq!(cached.find(0x1010), table.find(0x1010));
    assert_eq!(cached.lookup(0), table.lookup(0));
}

#[test]
fn packed_tables_give_the_same_answers() {
    use orc_unwind::{pack_entries, PackedEntry};
    for layout in Layout::ALL {
        let pairs: Vec<(u64, Entry)> =
            (0..100u64).map(|i| (0x1000 + i * 20, if i % 7 == 0 { Entry::UNDEFINED } else { Entry::call(8 * (i % 4) as i16 + 8) })).collect();
        let t = Table::new(layout, 0x1000..0x2000, &pairs);
        let mut packed = vec![PackedEntry(0); t.entries.len()];
        assert!(pack_entries(&t.entries, layout, &mut packed[..3]).is_none() || t.entries.len() <= 3);
        pack_entries(&t.entries, layout, &mut packed).unwrap();
        let plain = t.table();
        let fast = t.table().with_packed(&packed);
        for addr in (0x0f00u64..0x2100).step_by(3) {
            assert_eq!(fast.lookup_packed(addr), plain.lookup_packed(addr));
            assert_eq!(fast.lookup(addr), plain.lookup(addr));
        }
        // A packed slice of the wrong length is ignored, not trusted.
        let short = t.table().with_packed(&packed[..10]);
        assert_eq!(short.lookup_packed(0x1500), plain.lookup_packed(0x1500));
    }
}
