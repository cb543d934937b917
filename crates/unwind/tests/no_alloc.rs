//! The hot path (lookup, step, walk) never allocates: counted by a global allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;

use common::*;
use orc_format::{Entry, EntryType, Layout, Reg};
use orc_unwind::{build_block_index, pt_regs, Frame, OrcLookup, StackSnapshot, Unwinder};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(|c| c.get())
}

#[test]
fn walking_does_not_allocate() {
    // A chain through a REGS frame, a REGS_PARTIAL frame and call frames, ending at
    // END_OF_STACK, so that every kind of step runs.
    let t = Table::new(
        Layout::V3,
        0x1000..0x3000,
        &[
            (0x1000, Entry::call(8)),
            (0x1100, Entry { kind: EntryType::Regs, signal: true, ..Entry::call(0) }),
            (0x1200, Entry { kind: EntryType::RegsPartial, signal: true, ..Entry::call(0) }),
            (0x1300, Entry::UNDEFINED),
            (0x2000, Entry::END_OF_STACK),
            (0x2100, Entry::UNDEFINED),
        ],
    );
    let base = 0x8000u64;
    let iret = base + 168;
    let mut words = vec![0u64; 21];
    words[(pt_regs::IP / 8) as usize] = 0x1250;
    words[(pt_regs::SP / 8) as usize] = iret;
    words[(pt_regs::CS / 8) as usize] = 0x10;
    words.extend_from_slice(&[0x1000, 0x10, 0x246, iret + 40, 0x18, 0x2010]);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();

    let mut counts = vec![0u32; orc_unwind::block_index_len(&t.text, 6).unwrap()];
    let counts = build_block_index(&t.ips, &t.text, 6, &mut counts).unwrap().to_vec();
    let table = t.table().with_blocks(6, &counts);
    let mut stack = StackSnapshot::new(base, &bytes);
    let ranges = [stack.range()];
    let unwinder = Unwinder::new(&table, &ranges);
    let mut out = [Frame::default(); 16];

    let before = allocs();
    let mut total = 0;
    for _ in 0..1000 {
        let mut state = unwinder.start(0x1150, base, 0, true);
        let trace = unwinder.walk(&mut state, &mut stack, &mut out);
        assert!(trace.is_reliable());
        total += trace.frames;
        let mut state = unwinder.start(0x1150, base, 0, true);
        while unwinder.step(&mut state, &mut stack).is_ok() {}
        total += usize::from(table.find(0x1234).is_some());
    }
    let after = allocs();
    assert_eq!(total, 1000 * 5);
    assert_eq!(after - before, 0, "the walk allocated");
    let _ = Reg::SP;
}
