//! The unwinder over arbitrary tables and memory: any entries in any layout, with and without
//! the block index and packed entries, two stacks of arbitrary words, any start registers,
//! every configuration. Checks the walk's promises: bounded frames, no reads outside the stacks,
//! the same answer through the lookup cache.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_format::{Layout, RawEntry};
use orc_unwind::{
    Config, Frame, IndexKind, Memory, ModuleTables, OwnedTable, RegsLayout, SpIndirect, StackRange, StackSnapshot, Unwinder,
};

const TEXT: std::ops::Range<u64> = 0x1000..0x2000;

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u16()) | u64::from(self.u16()) << 16 | u64::from(self.u16()) << 32 | u64::from(self.u16()) << 48
    }
}

/// Memory over the stacks that records reads outside them.
struct Checked<'a> {
    stacks: [StackSnapshot<'a>; 2],
    outside: usize,
}

impl Memory for Checked<'_> {
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        let word = self.stacks.iter().find_map(|s| s.word(addr));
        if word.is_none() && !self.stacks.iter().any(|s| s.range().contains(addr, 8)) {
            self.outside += 1;
        }
        word
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor(data);
    let mode = c.u8();
    let layout = Layout::ALL[usize::from(mode) % Layout::ALL.len()];
    let index = match c.u8() {
        o @ 0..=12 => IndexKind::Blocks(o),
        _ => IndexKind::BinarySearch,
    };
    let count = usize::from(c.u8());
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let ip = TEXT.start + u64::from(c.u16()) % (TEXT.end - TEXT.start);
        let raw = RawEntry { sp_offset: c.u16() as i16, bp_offset: c.u16() as i16, flags: c.u16() };
        pairs.push((ip, raw));
    }
    let Ok(table) = OwnedTable::build(pairs, layout, TEXT, index) else { return };
    let views = [table.table()];
    let modules = ModuleTables::new(&views);
    // Two stacks: the task's at 0x8000 and an IRQ stack at 0x20000 (or at the very top of the
    // address space), of the lengths asked, filled with what remains.
    let split = usize::from(c.u16());
    let top = mode & 0x80 != 0;
    let (ip, sp, bp, regs_at) = (c.u64(), c.u64(), c.u64(), c.u64());
    let rest = c.0;
    let (a, b) = rest.split_at(split.min(rest.len()));
    let b_base = if top { 0u64.wrapping_sub(b.len() as u64) } else { 0x20000 };
    let stacks = [StackSnapshot::new(0x8000, a), StackSnapshot::new(b_base, b)];
    let ranges: Vec<StackRange> = stacks.iter().map(StackSnapshot::range).collect();
    // Start values near the stacks and text most of the time.
    let near = |v: u64, sel: u64| match sel % 4 {
        0 => v,
        1 => 0x8000 + v % 0x1000,
        2 => b_base.wrapping_add(v % 0x1000),
        _ => TEXT.start + v % 0x1100,
    };
    let max_frames = 1 + usize::from(mode >> 3 & 0xf) * 8;
    let config = Config {
        sp_indirect: if mode & 0x04 != 0 { SpIndirect::DerefThenAdd } else { SpIndirect::AddThenDeref },
        frame_pointer_fallback: mode & 0x08 != 0,
        stop_at_user_mode: mode & 0x10 != 0,
        max_frames,
        regs: if mode & 0x20 != 0 { RegsLayout::SigContext } else { RegsLayout::PtRegs },
    };
    let unwinder = Unwinder::new(&modules, &ranges).with_config(config);
    let mut mem = Checked { stacks, outside: 0 };
    let state = if regs_at & 1 == 1 {
        unwinder.start_from_regs(&mut mem, near(regs_at >> 2, regs_at >> 1)).ok()
    } else {
        Some(unwinder.start(near(ip >> 2, ip), near(sp >> 2, sp), near(bp >> 2, bp), mode & 0x40 != 0))
    };
    let Some(state) = state else { return };
    let mut out = vec![Frame::default(); 200];
    let mut s1 = state;
    let trace = unwinder.walk(&mut s1, &mut mem, &mut out);
    assert!(trace.frames >= 1 && trace.frames <= max_frames, "{} frames, limit {max_frames}", trace.frames);
    assert_eq!(mem.outside, 0, "reads outside the stacks");
    // A small lookup cache in front of the tables changes nothing.
    let cached = orc_unwind::CachedLookup::<_, 4>::new(&modules);
    let unwinder2 = Unwinder::new(&cached, &ranges).with_config(config);
    let mut s2 = state;
    let mut out2 = vec![Frame::default(); 200];
    let trace2 = unwinder2.walk(&mut s2, &mut mem, &mut out2);
    assert_eq!(trace2, trace);
    assert_eq!(&out2[..trace.frames], &out[..trace.frames]);
});
