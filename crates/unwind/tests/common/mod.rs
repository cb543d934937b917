//! Tiny hand-built stacks and tables.
#![allow(dead_code)]

use orc_format::{Entry, EntryType, Layout, RawEntry, Reg};
use orc_unwind::{sort_entries, Frame, Memory, OrcTable, StackRange, Trace, UnwindState, Unwinder};

/// A table built from `(ip, entry)` pairs, sorted the kernel's way.
pub struct Table {
    pub ips: Vec<u64>,
    pub entries: Vec<RawEntry>,
    pub layout: Layout,
    pub text: std::ops::Range<u64>,
}

impl Table {
    pub fn new(layout: Layout, text: std::ops::Range<u64>, pairs: &[(u64, Entry)]) -> Table {
        let mut ips: Vec<u64> = pairs.iter().map(|p| p.0).collect();
        let mut entries: Vec<RawEntry> =
            pairs.iter().map(|p| layout.encode(fit(layout, p.1)).expect("encodable")).collect();
        sort_entries(&mut ips, &mut entries, layout);
        Table { ips, entries, layout, text }
    }

    pub fn table(&self) -> OrcTable<'_> {
        OrcTable::new(&self.ips, &self.entries, self.layout, self.text.clone())
    }
}

/// Adjusts an entry to what `layout` can hold: v1 implies signal from the type.
pub fn fit(layout: Layout, e: Entry) -> Entry {
    match layout {
        Layout::V1 => Entry { signal: e.kind.implies_signal(), ..e },
        _ => e,
    }
}

pub fn call(sp_reg: Reg, sp_offset: i16, bp_reg: Reg, bp_offset: i16) -> Entry {
    Entry { kind: EntryType::Call, sp_reg, sp_offset, bp_reg, bp_offset, signal: false }
}

pub fn regs(kind: EntryType, sp_reg: Reg, sp_offset: i16) -> Entry {
    Entry { kind, sp_reg, sp_offset, bp_reg: Reg::UNDEFINED, bp_offset: 0, signal: true }
}

/// A stack of words starting at `base`.
#[derive(Clone)]
pub struct Words {
    pub base: u64,
    pub words: Vec<u64>,
}

impl Words {
    pub fn new(base: u64, words: &[u64]) -> Words {
        Words { base, words: words.to_vec() }
    }
    pub fn range(&self) -> StackRange {
        StackRange::new(self.base, self.base + 8 * self.words.len() as u64)
    }
    pub fn at(&self, i: usize) -> u64 {
        self.base + 8 * i as u64
    }
}

/// Memory over several word stacks that also records every address read.
pub struct Mem {
    pub stacks: Vec<Words>,
    pub reads: Vec<u64>,
}

impl Mem {
    pub fn new(stacks: &[Words]) -> Mem {
        Mem { stacks: stacks.to_vec(), reads: Vec::new() }
    }
    pub fn ranges(&self) -> Vec<StackRange> {
        self.stacks.iter().map(|s| s.range()).collect()
    }
}

impl Memory for Mem {
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self.reads.push(addr);
        for s in &self.stacks {
            if addr >= s.base && (addr - s.base) % 8 == 0 {
                if let Some(w) = s.words.get(((addr - s.base) / 8) as usize) {
                    return Some(*w);
                }
            }
        }
        None
    }
}

/// Runs a whole walk and returns the trace and its frames.
pub fn walk<L: orc_unwind::OrcLookup>(
    unwinder: &Unwinder<'_, L>,
    mut state: UnwindState,
    mem: &mut Mem,
) -> (Trace, Vec<Frame>) {
    let mut out = vec![Frame::default(); 64];
    let trace = unwinder.walk(&mut state, mem, &mut out);
    out.truncate(trace.frames);
    (trace, out)
}

pub fn ips(frames: &[Frame]) -> Vec<u64> {
    frames.iter().map(|f| f.ip).collect()
}
