//! Random tables, random stacks, random registers: the walk never panics, always ends within
//! the frame limit, and never reads outside the stacks it was given.

mod common;

use common::*;
use orc_format::{Entry, EntryType, Layout, RawEntry, Reg};
use orc_unwind::{RegsLayout, 
    build_block_index, block_index_len, Config, End, Frame, Memory, ModuleTables, OrcTable, SpIndirect, StackRange,
    Unwinder,
};
use proptest::prelude::*;

const TEXT: std::ops::Range<u64> = 0x1000..0x1400;

/// A value that may refer to the text or to one of the stacks, resolved once they exist.
#[derive(Clone, Copy, Debug)]
enum Val {
    Text(u16),
    Stack(u8, u16),
    Small(u8),
    Any(u64),
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        5 => any::<u16>().prop_map(Val::Text),
        3 => (any::<u8>(), any::<u16>()).prop_map(|(s, o)| Val::Stack(s, o)),
        1 => any::<u8>().prop_map(Val::Small),
        1 => any::<u64>().prop_map(Val::Any),
    ]
}

fn resolve(v: Val, stacks: &[Words]) -> u64 {
    match v {
        Val::Text(o) => TEXT.start + u64::from(o) % (TEXT.end - TEXT.start + 0x20),
        Val::Stack(s, o) => {
            if stacks.is_empty() {
                return u64::from(o);
            }
            let st = &stacks[s as usize % stacks.len()];
            // Mostly aligned, inside or just past the stack.
            let span = 8 * st.words.len() as u64 + 16;
            let off = u64::from(o) % span.max(1);
            st.base.wrapping_add(if o % 7 == 0 { off } else { off & !7 })
        }
        Val::Small(x) => u64::from(x),
        Val::Any(x) => x,
    }
}

/// Mostly plausible entries (known types and registers, small offsets) in `layout`'s
/// encoding, sometimes arbitrary bits.
fn raw_entry(layout: Layout) -> impl Strategy<Value = RawEntry> {
    let kind = prop_oneof![
        6 => Just(EntryType::Call),
        1 => Just(EntryType::Regs),
        1 => Just(EntryType::RegsPartial),
        1 => Just(EntryType::EndOfStack),
        1 => Just(EntryType::Undefined),
        1 => (5u8..8).prop_map(EntryType::Other),
    ];
    let sp_reg = prop_oneof![
        6 => Just(Reg::SP),
        2 => Just(Reg::BP),
        1 => Just(Reg::SP_INDIRECT),
        1 => Just(Reg::BP_INDIRECT),
        2 => prop_oneof![Just(Reg::DX), Just(Reg::DI), Just(Reg::R10), Just(Reg::R13), Just(Reg::AX)],
        1 => (0u8..16).prop_map(Reg),
    ];
    let bp_reg = prop_oneof![
        4 => Just(Reg::UNDEFINED),
        2 => Just(Reg::PREV_SP),
        1 => Just(Reg::BP),
        1 => (0u8..16).prop_map(Reg),
    ];
    let plausible = (kind, sp_reg, -1i16..5, bp_reg, -4i16..2, any::<bool>()).prop_map(
        move |(kind, sp_reg, sp_off, bp_reg, bp_off, signal)| {
            let mut e = Entry { kind, sp_reg, sp_offset: sp_off * 8, bp_reg, bp_offset: bp_off * 8, signal };
            if !layout.has_typed_undefined() && matches!(kind, EntryType::Undefined | EntryType::EndOfStack) {
                e.sp_reg = Reg::UNDEFINED;
            }
            layout.encode(fit(layout, e)).unwrap_or_default()
        },
    );
    let arbitrary = (any::<i16>(), any::<i16>(), any::<u16>())
        .prop_map(|(s, b, f)| RawEntry { sp_offset: s, bp_offset: b, flags: f });
    prop_oneof![6 => plausible, 1 => arbitrary]
}

#[derive(Debug, Clone)]
struct Case {
    layout: Layout,
    entries: Vec<(u16, RawEntry)>,
    block_order: Option<u8>,
    stacks: Vec<(u64, Vec<Val>)>,
    start: (Val, Val, Val, bool),
    from_regs: Option<Val>,
    config: (bool, bool, bool, usize),
}

fn case() -> impl Strategy<Value = Case> {
    let layout = prop::sample::select(Layout::ALL.to_vec());
    let entries = layout.prop_flat_map(|l| (Just(l), proptest::collection::vec((0u16..0x420, raw_entry(l)), 0..40)));
    (
        entries,
        proptest::option::of(0u8..10),
        proptest::collection::vec(
            (
                prop_oneof![
                    Just(0x8000u64),
                    Just(0x5000),
                    Just(0xffff_ffff_ffff_ff00),
                    Just(0),
                    any::<u64>().prop_map(|x| x & !7),
                ],
                proptest::collection::vec(val(), 0..48),
            ),
            0..4,
        ),
        (val(), val(), val(), any::<bool>()),
        proptest::option::of(val()),
        (any::<bool>(), any::<bool>(), any::<bool>(), 1usize..80),
    )
        .prop_map(|((layout, entries), block_order, stacks, start, from_regs, config)| Case {
            layout,
            entries,
            block_order,
            stacks,
            start,
            from_regs,
            config,
        })
}

/// Memory that records reads and fails any read outside the stacks.
struct Checked {
    mem: Mem,
    ranges: Vec<StackRange>,
    outside: Vec<u64>,
}

impl Memory for Checked {
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        if !self.ranges.iter().any(|r| r.contains(addr, 8)) {
            self.outside.push(addr);
        }
        self.mem.read_u64(addr)
    }
}

/// The case's stacks, without ones that wrap around the address space or overlap another,
/// filled with the resolved values.
fn stacks_of(c: &Case) -> Vec<Words> {
    let mut stacks: Vec<Words> = Vec::new();
    for (base, vals) in &c.stacks {
        let len = 8 * vals.len() as u64;
        if base.checked_add(len).is_none()
            || stacks.iter().any(|s| *base < s.base + 8 * s.words.len() as u64 && s.base < base + len)
        {
            continue;
        }
        stacks.push(Words::new(*base, &vec![0; vals.len()]));
    }
    let snapshot = stacks.clone();
    for (base, vals) in &c.stacks {
        if let Some(s) = stacks.iter_mut().find(|s| s.base == *base && s.words.len() == vals.len()) {
            for (i, v) in vals.iter().enumerate() {
                s.words[i] = resolve(*v, &snapshot);
            }
        }
    }
    stacks
}

fn run_case(c: &Case) -> Result<(), TestCaseError> {
    let stacks = stacks_of(c);

    let pairs: Vec<(u64, orc_format::Entry)> = Vec::new();
    let mut t = Table::new(c.layout, TEXT, &pairs);
    t.ips = c.entries.iter().map(|e| TEXT.start + u64::from(e.0)).collect();
    t.entries = c.entries.iter().map(|e| e.1).collect();
    orc_unwind::sort_entries(&mut t.ips, &mut t.entries, c.layout);
    let mut counts = Vec::new();
    let mut table = t.table();
    if let Some(order) = c.block_order {
        counts.resize(block_index_len(&TEXT, order).unwrap(), 0);
        build_block_index(&t.ips, &TEXT, order, &mut counts).unwrap();
        table = table.with_blocks(order, &counts);
    }
    // Pre-packed entries on half the cases.
    let mut packed = vec![orc_unwind::PackedEntry(0); t.entries.len()];
    orc_unwind::pack_entries(&t.entries, c.layout, &mut packed).unwrap();
    if c.block_order.is_some_and(|o| o % 2 == 0) {
        table = table.with_packed(&packed);
    }
    // A second, empty "module" so that module dispatch is exercised too.
    let none_ips: [u64; 0] = [];
    let none_entries: [RawEntry; 0] = [];
    let tables = [table, OrcTable::new(&none_ips, &none_entries, c.layout, 0x2000..0x2100)];
    let modules = ModuleTables::new(&tables);

    let ranges: Vec<StackRange> = stacks.iter().map(|s| s.range()).collect();
    let mut mem = Checked { mem: Mem::new(&stacks), ranges: ranges.clone(), outside: Vec::new() };
    let (sp_ind, fallback, user, max_frames) = c.config;
    let config = Config {
        sp_indirect: if sp_ind { SpIndirect::DerefThenAdd } else { SpIndirect::AddThenDeref },
        frame_pointer_fallback: fallback,
        stop_at_user_mode: user,
        max_frames,
        // The signal-frame layout on odd frame counts: both layouts see random blocks.
        regs: if max_frames % 2 == 1 { RegsLayout::SigContext } else { RegsLayout::PtRegs },
    };
    let unwinder = Unwinder::new(modules, &ranges).with_config(config);
    let state = match c.from_regs {
        Some(addr) => unwinder.start_from_regs(&mut mem, resolve(addr, &stacks)).ok(),
        None => {
            let (ip, sp, bp, exact) = c.start;
            Some(unwinder.start(resolve(ip, &stacks), resolve(sp, &stacks), resolve(bp, &stacks), exact))
        }
    };
    if let Some(mut state) = state {
        let mut out = vec![Frame::default(); 100];
        let trace = unwinder.walk(&mut state, &mut mem, &mut out);
        prop_assert!(trace.frames <= max_frames);
        prop_assert!(trace.frames >= 1);
        if trace.end == End::FrameLimit {
            prop_assert_eq!(trace.frames, max_frames);
        }
        // After the end, a step keeps returning the end.
        prop_assert_eq!(unwinder.step(&mut state, &mut mem), Err(trace.end));
        // Each step reads at most a handful of words.
        prop_assert!(mem.mem.reads.len() <= 8 * (trace.frames + 1), "{} reads", mem.mem.reads.len());
        // Within one stack, sp went strictly up.
        for w in out[..trace.frames].windows(2) {
            let same = ranges.iter().position(|r| r.holds_sp(w[0].sp)) == ranges.iter().position(|r| r.holds_sp(w[1].sp));
            prop_assert!(!same || w[1].sp > w[0].sp, "{:?}", w);
        }
        // A small lookup cache in front of the tables (collisions galore) changes nothing.
        let cached = orc_unwind::CachedLookup::<_, 4>::new(modules);
        let unwinder2 = Unwinder::new(&cached, &ranges).with_config(config);
        let mut state2 = match c.from_regs {
            Some(addr) => unwinder2.start_from_regs(&mut mem, resolve(addr, &stacks)).unwrap(),
            None => {
                let (ip, sp, bp, exact) = c.start;
                unwinder2.start(resolve(ip, &stacks), resolve(sp, &stacks), resolve(bp, &stacks), exact)
            }
        };
        for _ in 0..2 {
            let mut out2 = vec![Frame::default(); 100];
            let mut s = state2;
            let trace2 = unwinder2.walk(&mut s, &mut mem, &mut out2);
            prop_assert_eq!(trace2, trace);
            prop_assert_eq!(&out2[..trace2.frames], &out[..trace.frames]);
        }
        let _ = &mut state2;
    }
    prop_assert!(mem.outside.is_empty(), "reads outside the stacks: {:x?}", mem.outside);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, .. ProptestConfig::default() })]

    #[test]
    fn walk_never_panics_loops_or_reads_outside_the_stacks(c in case()) {
        run_case(&c)?;
    }
}

/// Valid call chains up to 40 deep (functions with frames of 8 to 64 bytes, a bottom
/// function with END_OF_STACK), then a few words and entries corrupted: deep walks over
/// garbage, where purely random cases mostly stop within a few frames.
fn chain_case() -> impl Strategy<Value = (Case, bool)> {
    let layout = prop::sample::select(Layout::ALL.to_vec());
    (
        layout,
        proptest::collection::vec(1i16..9, 16),
        proptest::collection::vec(0usize..16, 1..40),
        proptest::collection::vec((any::<u16>(), any::<u64>()), 0..3),
        proptest::collection::vec((any::<u16>(), any::<u16>(), any::<i16>()), 0..2),
        1usize..80,
    )
        .prop_map(|(layout, offs, seq, word_bugs, entry_bugs, max_frames)| {
            let start_of = |f: usize| 0x1000u64 + 0x20 * f as u64;
            let mut entries: Vec<(u16, RawEntry)> = offs
                .iter()
                .enumerate()
                .map(|(f, &o)| ((0x20 * f) as u16, layout.encode(fit(layout, Entry::call(o * 8))).unwrap()))
                .collect();
            entries.push((0x300, layout.encode(Entry::END_OF_STACK).unwrap()));
            entries.push((0x320, layout.encode(Entry::UNDEFINED).unwrap()));
            let mut words: Vec<u64> = Vec::new();
            for (j, &f) in seq.iter().enumerate() {
                let n = offs[f] as usize;
                words.extend(std::iter::repeat_n(0x5a5a_5a5a, n - 1));
                let caller = seq.get(j + 1).map_or(0x1305, |&g| start_of(g) + 5);
                words.push(caller);
            }
            let clean = word_bugs.is_empty() && entry_bugs.is_empty();
            for (at, v) in word_bugs {
                if !words.is_empty() {
                    let i = at as usize % words.len();
                    words[i] = v;
                }
            }
            for (at, flags, off) in entry_bugs {
                let i = at as usize % entries.len();
                entries[i].1 = RawEntry { sp_offset: off, bp_offset: 0, flags };
            }
            let base = 0x8000u64;
            let case = Case {
                layout,
                entries,
                block_order: Some(4),
                stacks: vec![(base, words.into_iter().map(Val::Any).collect())],
                start: (Val::Any(start_of(seq[0]) + 4), Val::Any(base), Val::Any(0), true),
                from_regs: None,
                config: (true, true, true, max_frames),
            };
            (case, clean && seq.len() < max_frames)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn corrupted_deep_chains_never_panic_loop_or_read_outside((c, clean) in chain_case()) {
        run_case(&c)?;
        if clean {
            // Uncorrupted: the whole chain, reliably.
            let depth = c.stacks[0].1.len();
            prop_assert!(depth > 0);
            prop_assert_eq!(depth_of(&c), chain_len(&c));
        }
    }
}

fn chain_len(c: &Case) -> usize {
    // The start frame, one frame per return address that points into text, the bottom one.
    1 + c.stacks[0].1.iter().filter(|v| matches!(v, Val::Any(x) if (0x1000..0x1400).contains(x))).count()
}

/// Frames a walk with the default configuration reports.
fn depth_of(c: &Case) -> usize {
    let stacks = stacks_of(c);
    let mut ips: Vec<u64> = c.entries.iter().map(|e| TEXT.start + u64::from(e.0)).collect();
    let mut entries: Vec<RawEntry> = c.entries.iter().map(|e| e.1).collect();
    orc_unwind::sort_entries(&mut ips, &mut entries, c.layout);
    let table = OrcTable::new(&ips, &entries, c.layout, TEXT);
    let ranges: Vec<StackRange> = stacks.iter().map(|s| s.range()).collect();
    let mut mem = Mem::new(&stacks);
    let unwinder = Unwinder::new(&table, &ranges);
    let (ip, sp, bp, exact) = c.start;
    let mut state = unwinder.start(resolve(ip, &stacks), resolve(sp, &stacks), resolve(bp, &stacks), exact);
    let mut out = vec![Frame::default(); 100];
    unwinder.walk(&mut state, &mut mem, &mut out).frames
}
