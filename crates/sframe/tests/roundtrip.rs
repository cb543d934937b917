//! The writer's output read back, tables written byte by byte by hand, and malformed input.

use orc_sframe::read::{Error, Section};
use orc_sframe::unwind::{self, Memory, Regs, Step, StepError};
use orc_sframe::write::{write, Function};
use orc_sframe::{dwarf, Cfa, Row, Rule, Saved};
use proptest::prelude::*;

fn read_back(bytes: &[u8], addr: u64) -> Vec<(u64, u32, bool, Vec<Row>)> {
    let s = Section::parse(bytes, addr).expect("header");
    s.validate().expect("valid");
    s.fdes()
        .map(|f| {
            let f = f.unwrap();
            (f.start, f.size, f.signal, s.rows(&f).map(|r| r.unwrap()).collect())
        })
        .collect()
}

#[test]
fn a_hand_written_default_section_decodes() {
    // Header, one index entry, one function with two rows: sp+8 at 0, fp+16 with rbp at CFA-16 at 4.
    let mut b = vec![0xe2, 0xde, 3, 0x5, 3, 0, 0xf8, 0];
    for w in [1u32, 2, 5 + 3 + 4, 0, 16] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    // Start 0x1000, stored relative to the entry at section offset 28 (section at 0x2000).
    b.extend_from_slice(&(0x1000i64 - (0x2000 + 28)).to_le_bytes());
    b.extend_from_slice(&0x40u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[2, 0, 0, 0, 0]); // 2 rows, 1-byte starts, default FDE
    b.extend_from_slice(&[0, 0b0000_0011, 8]); // start 0, sp-based, 1 word of 1 byte
    b.extend_from_slice(&[4, 0b0000_0100, 16, 0xf0]); // start 4, fp-based, 2 words: 16, -16
    let s = Section::parse(&b, 0x2000).unwrap();
    let (fde, row) = s.find_row(0x1020).unwrap().unwrap();
    assert_eq!((fde.start, fde.size, fde.flexible), (0x1000, 0x40, false));
    assert_eq!(row, Row::frame(4, Cfa::fp(16), Saved::Default, Saved::AtCfa(-16)));
    assert_eq!(s.find_row(0x1003).unwrap().unwrap().1.rule, Rule::Frame { cfa: Cfa::sp(8), ra: Saved::Default, fp: Saved::Default });
    assert_eq!(s.find_row(0x1040).unwrap(), None);
    assert_eq!(s.find_row(0xfff).unwrap(), None);
    // The writer makes exactly these bytes from the same rows.
    let f = Function::new(0x1000, 0x40, vec![Row::frame(0, Cfa::sp(8), Saved::Default, Saved::Default), row]);
    assert_eq!(write(&[f], 0x2000).unwrap(), b);
}

#[test]
fn flexible_rows_round_trip() {
    let rows = vec![
        Row::frame(0, Cfa::sp(8), Saved::Default, Saved::Default),
        Row::frame(5, Cfa::Reg { reg: dwarf::R10, offset: 0 }, Saved::Default, Saved::Default),
        Row::frame(14, Cfa::Reg { reg: dwarf::R10, offset: 0 }, Saved::Default, Saved::Deref { reg: dwarf::RBP, offset: 0 }),
        Row::frame(19, Cfa::Deref { reg: dwarf::RBP, offset: -8 }, Saved::Default, Saved::Deref { reg: dwarf::RBP, offset: 0 }),
        Row::frame(22, Cfa::Reg { reg: dwarf::RBX, offset: 70_000 }, Saved::AtCfa(-16), Saved::Reg { reg: dwarf::R8 + 3, offset: 0 }),
        Row::frame(30, Cfa::sp(8), Saved::Deref { reg: dwarf::RDI, offset: 56 }, Saved::AtCfa(-24)),
        Row::outermost(40),
    ];
    let mut sig = Function::new(0x9000, 7, vec![Row::frame(
        0,
        Cfa::Deref { reg: dwarf::RSP, offset: 160 },
        Saved::Deref { reg: dwarf::RSP, offset: 168 },
        Saved::Deref { reg: dwarf::RSP, offset: 120 },
    )]);
    sig.signal = true;
    let fs = [Function::new(0x400000, 0x10000 + 3, rows.clone()), sig.clone()];
    let bytes = write(&fs, 0x7fff_0000).unwrap();
    let back = read_back(&bytes, 0x7fff_0000);
    assert_eq!(back[0], (0x9000, 7, true, sig.rows));
    assert_eq!(back[1], (0x400000, 0x10003, false, rows));
}

#[test]
fn malformed_sections_are_errors() {
    let f = Function::new(0x1000, 16, vec![Row::frame(0, Cfa::sp(8), Saved::Default, Saved::Default)]);
    let good = write(&[f], 0).unwrap();
    assert_eq!(Section::parse(&good[..10], 0).unwrap_err(), Error::Truncated { what: "header", offset: 0 });
    let mut b = good.clone();
    b[2] = 2;
    assert_eq!(Section::parse(&b, 0).unwrap_err(), Error::Version(2));
    let mut b = good.clone();
    b[0..2].copy_from_slice(&[0xde, 0xe2]);
    assert_eq!(Section::parse(&b, 0).unwrap_err(), Error::BigEndian);
    let mut b = good.clone();
    b[4] = 2;
    assert_eq!(Section::parse(&b, 0).unwrap_err(), Error::Abi(2));
    let mut b = good.clone();
    b[28 + 16 + 2] = 3; // FRE type 3
    assert_eq!(Section::parse(&b, 0).unwrap().fde(0).unwrap_err(), Error::FreType { fde: 0, value: 3 });
    let mut b = good.clone();
    b[28 + 16 + 3] = 7;
    assert_eq!(Section::parse(&b, 0).unwrap().fde(0).unwrap_err(), Error::FdeType { fde: 0, value: 7 });
    let b = &good[..good.len() - 1];
    assert!(matches!(Section::parse(b, 0).unwrap_err(), Error::Truncated { what: "row area", .. }));
}

/// A stack as a map of words.
struct Stack(Vec<(u64, u64)>);

impl Memory for Stack {
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self.0.iter().find(|w| w.0 == addr).map(|w| w.1)
    }
}

#[test]
fn steps_through_a_register_based_cfa_a_signal_frame_and_the_outermost_frame() {
    // f: CFA = %rbx + 16 (the caller's frame), called from g (DRAP-less, sp+8), called through a
    // signal trampoline from h, which is outermost.
    let f = Function::new(0x1000, 0x100, vec![Row::frame(0, Cfa::Reg { reg: dwarf::RBX, offset: 16 }, Saved::Default, Saved::AtCfa(-16))]);
    let g = Function::new(0x2000, 0x100, vec![Row::frame(0, Cfa::sp(8), Saved::Default, Saved::Default)]);
    let mut t = Function::new(0x3000, 8, vec![Row::frame(
        0,
        Cfa::Deref { reg: dwarf::RSP, offset: 160 },
        Saved::Deref { reg: dwarf::RSP, offset: 168 },
        Saved::Deref { reg: dwarf::RSP, offset: 120 },
    )]);
    t.signal = true;
    let h = Function::new(0x4000, 0x100, vec![Row::outermost(0)]);
    let bytes = write(&[f, g, t, h], 0x10_0000).unwrap();
    let s = Section::parse(&bytes, 0x10_0000).unwrap();
    let mut mem = Stack(vec![
        (0x7000, 0xbbbb),      // f's saved rbp, at CFA-16
        (0x7008, 0x2010),      // return into g
        (0x7010, 0x3000),      // g returns into the trampoline
        (0x7018 + 120, 0x1234), // sigcontext rbp
        (0x7018 + 160, 0x8000), // sigcontext rsp
        (0x7018 + 168, 0x4040), // sigcontext rip (exact)
    ]);
    let mut regs = Regs::new(0x1050, 0x6000, 0xaaaa);
    regs.values[usize::from(dwarf::RBX)] = Some(0x7000);
    let Step::Caller { regs: r1, exact } = unwind::step(&s, &regs, true, &mut mem).unwrap() else { panic!() };
    assert_eq!((r1.ip(), r1.sp(), r1.get(dwarf::RBP), exact), (0x2010, 0x7010, Some(0xbbbb), false));
    let Step::Caller { regs: r2, exact } = unwind::step(&s, &r1, false, &mut mem).unwrap() else { panic!() };
    assert_eq!((r2.ip(), r2.sp(), exact), (0x3000, 0x7018, false));
    // The trampoline's row is looked up at its first byte: a return address there is exact.
    let Step::Caller { regs: r3, exact } = unwind::step(&s, &r2, true, &mut mem).unwrap() else { panic!() };
    assert_eq!((r3.ip(), r3.sp(), r3.get(dwarf::RBP), exact), (0x4040, 0x8000, Some(0x1234), true));
    assert_eq!(unwind::step(&s, &r3, true, &mut mem).unwrap(), Step::Outermost);
    // %rbx is not known past the first frame.
    let deeper = Regs::new(0x1051, 0x6000, 0);
    assert_eq!(unwind::step(&s, &deeper, false, &mut mem).unwrap_err(), StepError::UnknownRegister(dwarf::RBX));
}

fn saved_strategy() -> impl Strategy<Value = Saved> {
    prop_oneof![
        Just(Saved::Default),
        any::<i32>().prop_map(Saved::AtCfa),
        (0u8..16, any::<i32>()).prop_map(|(reg, offset)| Saved::Reg { reg, offset }),
        (0u8..16, any::<i32>()).prop_map(|(reg, offset)| Saved::Deref { reg, offset }),
    ]
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    prop_oneof![
        1 => Just(Rule::Outermost),
        8 => ((0u8..16, any::<i32>(), any::<bool>()), saved_strategy(), saved_strategy()).prop_map(|((reg, offset, d), ra, fp)| Rule::Frame {
            cfa: if d { Cfa::Deref { reg, offset } } else { Cfa::Reg { reg, offset } },
            ra,
            fp,
        }),
    ]
}

fn function_strategy() -> impl Strategy<Value = (u32, bool, Vec<Row>)> {
    (1u32..0x2_0000, any::<bool>(), prop::collection::vec((any::<u32>(), rule_strategy()), 1..12)).prop_map(|(size, signal, rows)| {
        let mut starts: Vec<u32> = rows.iter().map(|r| r.0 % size).collect();
        starts[0] = 0;
        starts.sort();
        starts.dedup();
        let rows = starts.iter().zip(rows).map(|(&start, (_, rule))| Row { start, rule }).collect();
        (size, signal, rows)
    })
}

proptest! {
    #[test]
    fn what_is_written_reads_back(fs in prop::collection::vec(function_strategy(), 0..8), addr in any::<u64>()) {
        let mut start = 0x40_0000u64;
        let functions: Vec<Function> = fs.into_iter().map(|(size, signal, rows)| {
            let f = Function { start, size, rows, signal };
            start += u64::from(size) + 16;
            f
        }).collect();
        let bytes = write(&functions, addr).unwrap();
        let back = read_back(&bytes, addr);
        let want: Vec<_> = functions.iter().map(|f| (f.start, f.size, f.signal, f.rows.clone())).collect();
        prop_assert_eq!(back, want);
    }

    #[test]
    fn corrupted_sections_never_panic(fs in prop::collection::vec(function_strategy(), 1..4), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut start = 0x1000u64;
        let functions: Vec<Function> = fs.into_iter().map(|(size, signal, rows)| {
            let f = Function { start, size, rows, signal };
            start += u64::from(size);
            f
        }).collect();
        let mut bytes = write(&functions, 0).unwrap();
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] ^= v;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(s) = Section::parse(&bytes, 0) {
            let _ = s.validate();
            for pc in [0x1000u64, 0x1001, 0x2000, u64::MAX] {
                let _ = s.find_row(pc);
            }
        }
    }
}
