//! One test per unwind rule, each on a stack of a few words, in every layout where the rule
//! can be expressed.

mod common;

use common::*;
use orc_format::{Entry, EntryType, Layout, Reg};
use orc_unwind::{
    pt_regs, Config, End, ModuleTables, OrcTable, RegsAt, SpIndirect, StackRange, Unreliable, UnwindError,
    Unwinder,
};

const TEXT: std::ops::Range<u64> = 0x1000..0x3000;
/// The bottom function: END_OF_STACK at 0x2000..0x2100.
const BOTTOM: u64 = 0x2010;
const STACK: u64 = 0x8000;

/// `pairs` plus a bottom-of-stack function at 0x2000 and terminators.
fn table_with(layout: Layout, pairs: &[(u64, Entry)]) -> Table {
    let mut all = pairs.to_vec();
    all.push((0x2000, Entry::END_OF_STACK));
    all.push((0x2100, Entry::UNDEFINED));
    Table::new(layout, TEXT, &all)
}

fn run(t: &Table, stacks: &[Words], ip: u64, sp: u64, bp: u64) -> (orc_unwind::Trace, Vec<orc_unwind::Frame>, Mem) {
    let table = t.table();
    let mut mem = Mem::new(stacks);
    let ranges = mem.ranges();
    let unwinder = Unwinder::new(&table, &ranges);
    let state = unwinder.start(ip, sp, bp, true);
    let (trace, frames) = walk(&unwinder, state, &mut mem);
    (trace, frames, mem)
}

#[test]
fn call_sp_plus_offset() {
    for layout in Layout::ALL {
        let t = table_with(layout, &[(0x1000, call(Reg::SP, 16, Reg::UNDEFINED, 0)), (0x1100, Entry::UNDEFINED)]);
        let stack = Words::new(STACK, &[0xaaaa, BOTTOM]);
        let (trace, frames, _) = run(&t, &[stack], 0x1050, STACK, 0x77);
        assert_eq!(trace.end, End::EndOfStack, "{layout:?}");
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1050, BOTTOM]);
        assert_eq!(frames[1].sp, STACK + 16);
        assert_eq!(frames[1].bp, 0x77, "bp_reg UNDEFINED leaves bp alone");
        assert!(!frames[1].signal, "a CALL frame's ip is a return address");
    }
}

#[test]
fn frame_pointer_frame_bp_plus_offset_and_bp_at_prev_sp() {
    // push %rbp; mov %rsp,%rbp; sub $16,%rsp: prev_sp = bp + 16, caller's bp at prev_sp - 16.
    for layout in Layout::ALL {
        let t = table_with(layout, &[(0x1000, call(Reg::BP, 16, Reg::PREV_SP, -16))]);
        // sp = STACK, locals at +0 and +8, saved bp at +16 (bp points here), return at +24.
        let stack = Words::new(STACK, &[1, 2, 0xb0b0, BOTTOM]);
        let (trace, frames, _) = run(&t, std::slice::from_ref(&stack), 0x1050, STACK, stack.at(2));
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1050, BOTTOM]);
        assert_eq!(frames[1].sp, stack.at(4));
        assert_eq!(frames[1].bp, 0xb0b0);
    }
}

#[test]
fn bp_at_bp_plus_offset() {
    // bp_reg BP: the caller's bp is at bp + off (before the frame pointer is torn down).
    for layout in Layout::ALL {
        let t = table_with(layout, &[(0x1000, call(Reg::SP, 24, Reg::BP, 0))]);
        let stack = Words::new(STACK, &[0x1234, 0, BOTTOM]);
        let (trace, frames, _) = run(&t, std::slice::from_ref(&stack), 0x1050, STACK, stack.at(0));
        assert!(trace.is_reliable(), "{:?}", trace.unreliable);
        assert_eq!(frames[1].bp, 0x1234);
        assert_eq!(frames[1].sp, stack.at(3));
    }
}

#[test]
fn sp_indirect_deref_then_add_since_5_12() {
    // prev_sp = *(sp) + off: the word at sp holds the old stack pointer (another stack).
    let task = Words::new(0x5000, &[0, BOTTOM]);
    let irq = Words::new(STACK, &[task.at(0)]);
    let t = table_with(Layout::V3, &[(0x1000, call(Reg::SP_INDIRECT, 16, Reg::UNDEFINED, 0))]);
    let (trace, frames, _) = run(&t, &[irq, task.clone()], 0x1050, STACK, 0);
    assert!(trace.is_reliable(), "{:?}", trace.unreliable);
    assert_eq!(ips(&frames), [0x1050, BOTTOM]);
    assert_eq!(frames[1].sp, task.at(2));
}

#[test]
fn sp_indirect_add_then_deref_before_5_12() {
    // prev_sp = *(sp + off).
    for layout in [Layout::V1, Layout::V3] {
        let task = Words::new(0x5000, &[0, BOTTOM]);
        let irq = Words::new(STACK, &[0xdead, task.at(2)]);
        let t = table_with(layout, &[(0x1000, call(Reg::SP_INDIRECT, 8, Reg::UNDEFINED, 0))]);
        let table = t.table();
        let mut mem = Mem::new(&[irq, task.clone()]);
        let ranges = mem.ranges();
        let config = Config { sp_indirect: SpIndirect::AddThenDeref, ..Config::default() };
        let unwinder = Unwinder::new(&table, &ranges).with_config(config);
        let (trace, frames) = walk(&unwinder, unwinder.start(0x1050, STACK, 0, true), &mut mem);
        assert!(trace.is_reliable(), "{:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1050, BOTTOM]);
        assert_eq!(frames[1].sp, task.at(2));
    }
}

#[test]
fn bp_indirect() {
    // prev_sp = *(bp + off).
    for layout in Layout::ALL {
        let stack = Words::new(STACK, &[0, 0x99, 0, 0, BOTTOM]);
        let t = table_with(layout, &[(0x1000, call(Reg::BP_INDIRECT, 8, Reg::UNDEFINED, 0))]);
        // *(bp + 8) = stack.at(5): the return address is at at(4).
        let mut s = stack.clone();
        s.words[1] = stack.at(5);
        let (trace, frames, _) = run(&t, &[s], 0x1050, STACK, stack.at(0));
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1050, BOTTOM]);
        assert_eq!(frames[1].sp, stack.at(5));
    }
}

/// A full pt_regs at `base` (21 words) with the given fields set.
fn pt_regs_words(fields: &[(u64, u64)]) -> Vec<u64> {
    let mut w = vec![0u64; 21];
    for &(off, v) in fields {
        w[(off / 8) as usize] = v;
    }
    w
}

#[test]
fn drap_registers_come_from_pt_regs() {
    for (reg, off) in [
        (Reg::DX, pt_regs::DX),
        (Reg::DI, pt_regs::DI),
        (Reg::R10, pt_regs::R10),
        (Reg::R13, pt_regs::R13),
        (Reg::AX, pt_regs::AX),
    ] {
      for layout in Layout::ALL.into_iter().filter(|l| l.has_reg(reg)) {
        // The walk starts from a pt_regs copy on its own "stack"; the register holds the
        // previous sp on the task stack; the offset in the entry is ignored.
        let task = Words::new(0x5000, &[0, BOTTOM]);
        let regs = Words::new(STACK, &pt_regs_words(&[(pt_regs::IP, 0x1050), (pt_regs::SP, 0x4ff0), (off, task.at(2))]));
        let t = table_with(layout, &[(0x1000, call(reg, 1234, Reg::UNDEFINED, 0))]);
        let table = t.table();
        let mut mem = Mem::new(&[regs, task.clone()]);
        let ranges = mem.ranges();
        let unwinder = Unwinder::new(&table, &ranges);
        let state = unwinder.start_from_regs(&mut mem, STACK).unwrap();
        assert_eq!(state.frame().regs, Some(RegsAt { addr: STACK, full: true }));
        let (trace, frames) = walk(&unwinder, state, &mut mem);
        assert!(trace.is_reliable(), "{reg:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1050, BOTTOM], "{reg:?}");
        assert_eq!(frames[1].sp, task.at(2));
      }
    }
}

/// Field value 10 is `AX` only where a kernel defined it (the backport, renumbered in 7.1 to
/// 1); before, an unwinder of that kernel knows no such register and stops.
#[test]
fn ax_field_means_ax_only_in_its_layouts() {
    let task = Words::new(0x5000, &[0, BOTTOM]);
    let regs = Words::new(STACK, &pt_regs_words(&[(pt_regs::IP, 0x1050), (pt_regs::SP, 0x4ff0), (pt_regs::AX, task.at(2))]));
    for (layout, field) in [(Layout::V3, 10u16), (Layout::V3Ax, 10), (Layout::V4, 1), (Layout::V4, 11), (Layout::V2, 10)] {
        let raw = orc_format::RawEntry { sp_offset: 0, bp_offset: 0, flags: field | layout.encode(Entry::call(0)).unwrap().flags & 0xff00 };
        let entry = layout.decode(raw);
        let t = table_with(layout, &[(0x1000, entry)]);
        let table = t.table();
        let mut mem = Mem::new(&[regs.clone(), task.clone()]);
        let ranges = mem.ranges();
        let unwinder = Unwinder::new(&table, &ranges);
        let state = unwinder.start_from_regs(&mut mem, STACK).unwrap();
        let (trace, frames) = walk(&unwinder, state, &mut mem);
        if layout.reg(field as u8) == Reg::AX {
            assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
            assert_eq!(ips(&frames), [0x1050, BOTTOM]);
        } else {
            assert_eq!(frames.len(), 1, "{layout:?}");
            assert!(matches!(trace.end, End::Error(UnwindError::UnknownSpReg { ip: 0x1050, .. })), "{layout:?} {:?}", trace.end);
        }
    }
}

#[test]
fn drap_register_without_pt_regs_is_an_error() {
    let t = table_with(Layout::V3, &[(0x1000, call(Reg::R10, 0, Reg::UNDEFINED, 0))]);
    let (trace, frames, _) = run(&t, &[Words::new(STACK, &[0, BOTTOM])], 0x1050, STACK, 0);
    assert_eq!(frames.len(), 1);
    assert_eq!(trace.end, End::Error(UnwindError::MissingRegs { ip: 0x1050, reg: Reg::R10 }));
    assert_eq!(trace.unreliable, Some(Unreliable::Error(UnwindError::MissingRegs { ip: 0x1050, reg: Reg::R10 })));
}

#[test]
fn regs_frame_reads_ip_sp_bp_from_full_pt_regs() {
    // An exception in f: the entry code's frame (at 0x1100, type REGS, sp+0) has a full
    // pt_regs at sp. The interrupted f (at 0x1000) is looked up at its exact ip.
    for layout in Layout::ALL {
        let t = table_with(
            layout,
            &[(0x1000, call(Reg::SP, 8, Reg::UNDEFINED, 0)), (0x1100, regs(EntryType::Regs, Reg::SP, 0))],
        );
        let mut words = pt_regs_words(&[
            (pt_regs::IP, 0x1000), // interrupted at f's first instruction: ip-1 would be wrong
            (pt_regs::SP, STACK + 168),
            (pt_regs::BP, 0xb0),
            (pt_regs::CS, 0x10),
        ]);
        words.push(BOTTOM); // f's return address, at the interrupted sp
        let (trace, frames, _) = run(&t, &[Words::new(STACK, &words)], 0x1150, STACK, 0x1);
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1150, 0x1000, BOTTOM]);
        assert_eq!(frames[1].sp, STACK + 168);
        assert_eq!(frames[1].bp, 0xb0, "bp_reg UNDEFINED after REGS takes regs->bp");
        assert!(frames[1].signal);
        assert_eq!(frames[1].regs, Some(RegsAt { addr: STACK, full: true }));
        assert_eq!(frames[2].regs, None, "a CALL frame forgets the regs");
    }
}

#[test]
fn regs_partial_reads_the_iret_frame_and_keeps_full_regs_as_prev_regs() {
    // Frame 0 (0x1100): REGS at sp: full pt_regs with bp=0xb0; its ip is in 0x1200 (partial
    // iret frame at sp+0); that one's ip is 0x1000 (CALL, sp+8, bp undefined).
    for layout in Layout::ALL {
        let t = table_with(
            layout,
            &[
                (0x1000, call(Reg::SP, 8, Reg::UNDEFINED, 0)),
                (0x1100, regs(EntryType::Regs, Reg::SP, 0)),
                (0x1200, regs(EntryType::RegsPartial, Reg::SP, 0)),
                (0x1300, Entry::UNDEFINED),
            ],
        );
        let iret = STACK + 168;
        let mut words = pt_regs_words(&[
            (pt_regs::IP, 0x1250),
            (pt_regs::SP, iret),
            (pt_regs::BP, 0xb0),
            (pt_regs::CS, 0x10),
        ]);
        // The iret frame: ip, cs, flags, sp, ss.
        words.extend_from_slice(&[0x1000, 0x10, 0x246, iret + 40, 0x18]);
        words.push(BOTTOM);
        let (trace, frames, _) = run(&t, &[Words::new(STACK, &words)], 0x1150, STACK, 0x1);
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1150, 0x1250, 0x1000, BOTTOM]);
        assert_eq!(frames[2].regs, Some(RegsAt { addr: iret - 128, full: false }));
        assert_eq!(frames[2].sp, iret + 40);
        assert_eq!(frames[2].bp, 0xb0, "bp from the full regs kept as prev_regs");
    }
}

#[test]
fn user_mode_regs_end_the_walk_reliably() {
    let t = table_with(Layout::V3, &[(0x1100, regs(EntryType::Regs, Reg::SP, 0))]);
    let words = pt_regs_words(&[(pt_regs::IP, 0x4000_1234), (pt_regs::SP, 0x7ffe_0000), (pt_regs::CS, 0x33)]);
    let (trace, frames, _) = run(&t, &[Words::new(STACK, &words)], 0x1150, STACK, 0);
    assert_eq!(trace.end, End::UserMode);
    assert!(trace.is_reliable(), "{:?}", trace.unreliable);
    assert_eq!(ips(&frames), [0x1150, 0x4000_1234]);
    assert!(frames[1].user_mode);
}

#[test]
fn regs_must_fit_on_the_stack() {
    let t = table_with(Layout::V3, &[(0x1100, regs(EntryType::Regs, Reg::SP, 0))]);
    // Only 20 of the 21 words: the pt_regs straddles the end of the stack.
    let words = vec![0u64; 20];
    let (trace, _, mem) = run(&t, &[Words::new(STACK, &words)], 0x1150, STACK, 0);
    assert_eq!(trace.end, End::Error(UnwindError::BadRead { addr: STACK }));
    assert!(mem.reads.is_empty(), "nothing read once the block is known not to fit");
}

#[test]
fn end_of_stack_in_every_layout() {
    for layout in Layout::ALL {
        let t = table_with(layout, &[]);
        let (trace, frames, _) = run(&t, &[Words::new(STACK, &[0])], 0x2050, STACK, 0);
        assert_eq!(trace.end, End::EndOfStack, "{layout:?}");
        assert!(trace.is_reliable());
        assert_eq!(frames.len(), 1);
    }
}

#[test]
fn undefined_entry_is_an_error() {
    for layout in Layout::ALL {
        // 0x1100 is a terminator: an ip right after the last function is not covered.
        let t = table_with(layout, &[(0x1000, Entry::call(8)), (0x1100, Entry::UNDEFINED)]);
        let (trace, _, _) = run(&t, &[Words::new(STACK, &[0x1180])], 0x1050, STACK, 0);
        assert_eq!(trace.end, End::Error(UnwindError::UndefinedEntry { ip: 0x117f }), "{layout:?}");
        assert!(!trace.is_reliable());
    }
}

#[test]
fn return_address_is_looked_up_at_ip_minus_one() {
    // f (0x1000..0x1100) ends with a call to a noreturn function: its return address is the
    // first byte of g (0x1100), whose own entry (sp+8) would be wrong for f's frame (sp+24).
    for layout in Layout::ALL {
        let t = table_with(
            layout,
            &[(0x1000, call(Reg::SP, 24, Reg::UNDEFINED, 0)), (0x1100, Entry::call(8)), (0x1200, Entry::UNDEFINED)],
        );
        // Start in the noreturn callee (0x1180, in g's range for simplicity: sp+8), whose
        // return address is 0x1100.
        let stack = Words::new(STACK, &[0x1100, 0, 0, BOTTOM]);
        let (trace, frames, _) = run(&t, &[stack], 0x1180, STACK, 0);
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1180, 0x1100, BOTTOM]);
    }
}

#[test]
fn explicit_signal_bit_makes_the_next_lookup_exact() {
    // v2/v3 can mark a CALL-type frame as signal (an UNWIND_HINT with signal=1); its caller's
    // ip is then looked up exactly. v1 cannot express this (signal is implied by the type).
    for layout in [Layout::V2, Layout::V3] {
        let hint = Entry { signal: true, ..Entry::call(8) };
        let t = table_with(
            layout,
            &[(0x1000, call(Reg::SP, 24, Reg::UNDEFINED, 0)), (0x1100, Entry::call(16)), (0x1180, hint)],
        );
        // Return "address" 0x1100 from the signal frame: exact lookup gives g's sp+16.
        let stack = Words::new(STACK, &[0x1100, 0, BOTTOM]);
        let (trace, frames, _) = run(&t, &[stack], 0x1190, STACK, 0);
        assert!(trace.is_reliable(), "{layout:?} {:?}", trace.unreliable);
        assert_eq!(ips(&frames), [0x1190, 0x1100, BOTTOM]);
        assert!(frames[1].signal);
    }
}

#[test]
fn v1_signal_is_implied_by_type() {
    let t = table_with(Layout::V1, &[(0x1100, regs(EntryType::RegsPartial, Reg::SP, 0))]);
    let raw = t.entries[t.ips.iter().position(|&ip| ip == 0x1100).unwrap()];
    assert!(Layout::V1.decode(raw).signal);
}

#[test]
fn null_ip_uses_the_null_entry() {
    // A call through a NULL pointer: ip 0 (exact), the return address on top of the stack.
    for layout in Layout::ALL {
        let t = table_with(layout, &[(0x1000, Entry::call(8))]);
        let stack = Words::new(STACK, &[0x1050, BOTTOM]);
        let (trace, frames, _) = run(&t, &[stack], 0, STACK, 0);
        assert_eq!(ips(&frames), [0], "the walk stops: 0 is not text");
        assert_eq!(trace.end, End::NotText);
        assert_eq!(trace.unreliable, Some(Unreliable::NotText { ip: 0 }));

        // Stepping anyway (as the kernel's unwinder does) pops the return address.
        let table = t.table();
        let mut mem = Mem::new(&[Words::new(STACK, &[0x1050, BOTTOM])]);
        let ranges = mem.ranges();
        let unwinder = Unwinder::new(&table, &ranges);
        let mut state = unwinder.start(0, STACK, 0, true);
        let f = unwinder.step(&mut state, &mut mem).unwrap();
        assert_eq!((f.ip, f.sp), (0x1050, STACK + 8));
        let f = unwinder.step(&mut state, &mut mem).unwrap();
        assert_eq!(f.ip, BOTTOM);
        assert_eq!(unwinder.step(&mut state, &mut mem), Err(End::EndOfStack));
    }
}

#[test]
fn no_entry_falls_back_to_frame_pointer_and_is_unreliable() {
    // Generated code (a JIT) that ORC knows nothing about: a module with text but no entries.
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(8)), (0x1100, Entry::UNDEFINED)]);
    let jit_ips: [u64; 0] = [];
    let jit_entries: [orc_format::RawEntry; 0] = [];
    let tables =
        [t.table(), OrcTable::new(&jit_ips, &jit_entries, Layout::V3, 0x9000_0000..0x9000_1000)];
    let modules = ModuleTables::new(&tables);
    // push %rbp; mov %rsp,%rbp frame: bp -> [saved bp][return address]
    let stack = Words::new(STACK, &[0, 0xb0b0, BOTTOM]);
    let mut mem = Mem::new(std::slice::from_ref(&stack));
    let ranges = mem.ranges();
    let unwinder = Unwinder::new(modules, &ranges);
    let (trace, frames) = walk(&unwinder, unwinder.start(0x9000_0010, STACK, stack.at(1), true), &mut mem);
    assert_eq!(ips(&frames), [0x9000_0010, BOTTOM]);
    assert_eq!(frames[1].bp, 0xb0b0);
    assert_eq!(trace.end, End::EndOfStack, "the walk goes on");
    assert_eq!(trace.unreliable, Some(Unreliable::FramePointerGuess { ip: 0x9000_0010 }));

    // Without the fallback (kernels before 6.3): an error.
    let config = Config { frame_pointer_fallback: false, ..Config::default() };
    let unwinder = unwinder.with_config(config);
    let (trace, _) = walk(&unwinder, unwinder.start(0x9000_0010, STACK, stack.at(1), true), &mut mem);
    assert_eq!(trace.end, End::Error(UnwindError::NoEntry { ip: 0x9000_0010 }));
}

#[test]
fn return_address_outside_text_is_unreliable() {
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(8))]);
    let (trace, frames, _) = run(&t, &[Words::new(STACK, &[0xdead_beef, 0])], 0x1050, STACK, 0);
    assert_eq!(ips(&frames), [0x1050, 0xdead_beef]);
    assert_eq!(trace.end, End::NotText);
    assert_eq!(trace.unreliable, Some(Unreliable::NotText { ip: 0xdead_beef }));
}

#[test]
fn reads_outside_the_stacks_are_refused() {
    // sp+4096 is past the end of the one-word stack.
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(4096))]);
    let (trace, _, mem) = run(&t, &[Words::new(STACK, &[BOTTOM])], 0x1050, STACK, 0);
    assert_eq!(trace.end, End::Error(UnwindError::BadRead { addr: STACK + 4088 }));
    assert!(mem.reads.is_empty());
}

#[test]
fn memory_that_fails_is_a_bad_read() {
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(16))]);
    let table = t.table();
    let ranges = [StackRange::new(STACK, STACK + 64)];
    let unwinder = Unwinder::new(&table, &ranges);
    let mut state = unwinder.start(0x1050, STACK, 0, true);
    let mut mem = |_addr: u64| -> Option<u64> { None };
    assert_eq!(unwinder.step(&mut state, &mut mem), Err(End::Error(UnwindError::BadRead { addr: STACK + 8 })));
}

#[test]
fn going_the_wrong_way_on_one_stack_is_an_error() {
    // sp_offset 0: prev_sp == sp. A loop without the guard.
    for layout in Layout::ALL {
        let t = table_with(layout, &[(0x1000, Entry::call(0))]);
        let stack = Words::new(STACK, &[0, 0x1050, BOTTOM]);
        let (trace, frames, _) = run(&t, &[stack], 0x1050, STACK + 8, 0);
        assert_eq!(frames.len(), 1);
        assert_eq!(trace.end, End::Error(UnwindError::WrongDirection { sp: STACK + 8, new_sp: STACK + 8 }));
    }
}

#[test]
fn lower_address_on_another_stack_is_fine_but_going_back_is_not() {
    // f (0x1000) switched stacks: prev_sp = *(sp) (SP_INDIRECT, offset 0). g (0x1100): sp+8.
    let t = table_with(
        Layout::V3,
        &[(0x1000, call(Reg::SP_INDIRECT, 0, Reg::UNDEFINED, 0)), (0x1100, Entry::call(8)), (0x1200, Entry::UNDEFINED)],
    );
    // IRQ stack at 0x8000 (higher), task stack at 0x5000 (lower): the step from the IRQ
    // stack to the task stack lowers sp, which is allowed because the stack changed.
    let task = Words::new(0x5000, &[0x1150, BOTTOM]);
    let irq = Words::new(STACK, &[0x5008]);
    let (trace, frames, _) = run(&t, &[irq, task], 0x1050, STACK, 0);
    assert!(trace.is_reliable(), "{:?}", trace.unreliable);
    assert_eq!(ips(&frames), [0x1050, 0x1150, BOTTOM]);
    assert_eq!(frames[1].sp, 0x5008);

    // Back onto the IRQ stack after leaving it: refused. Frame 0 on the IRQ stack goes to
    // the task stack (sp 0x5008, ip 0x1050 = f again); f's *(sp) points back at the IRQ stack.
    let task = Words::new(0x5000, &[0x1050, STACK + 16]);
    let irq = Words::new(STACK, &[0x5008, 0x1050, 0]);
    let (trace, frames, _) = run(&t, &[irq, task], 0x1050, STACK, 0);
    assert_eq!(ips(&frames), [0x1050, 0x1050]);
    assert_eq!(trace.end, End::Error(UnwindError::StackRevisited { new_sp: STACK + 16 }));
}

#[test]
fn frame_limit_stops_a_long_walk() {
    // A recursion 20 deep in f (sp+8 each).
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(8))]);
    let mut words = vec![0x1051u64; 20];
    words.push(BOTTOM);
    let table = t.table();
    let mut mem = Mem::new(&[Words::new(STACK, &words)]);
    let ranges = mem.ranges();
    let config = Config { max_frames: 5, ..Config::default() };
    let unwinder = Unwinder::new(&table, &ranges).with_config(config);
    let (trace, frames) = walk(&unwinder, unwinder.start(0x1050, STACK, 0, true), &mut mem);
    assert_eq!(frames.len(), 5);
    assert_eq!(trace.end, End::FrameLimit);
    assert_eq!(trace.unreliable, Some(Unreliable::FrameLimit));

    // Without the limit it completes: 1 + 20 + 1 frames.
    let unwinder = unwinder.with_config(Config::default());
    let (trace, frames) = walk(&unwinder, unwinder.start(0x1050, STACK, 0, true), &mut mem);
    assert!(trace.is_reliable(), "{:?}", trace.unreliable);
    assert_eq!(frames.len(), 22);
}

#[test]
fn small_buffer_is_reported() {
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(8))]);
    let table = t.table();
    let mut mem = Mem::new(&[Words::new(STACK, &[0x1051, BOTTOM])]);
    let ranges = mem.ranges();
    let unwinder = Unwinder::new(&table, &ranges);
    let mut state = unwinder.start(0x1050, STACK, 0, true);
    let mut out = [orc_unwind::Frame::default(); 2];
    let trace = unwinder.walk(&mut state, &mut mem, &mut out);
    assert_eq!(trace.end, End::BufferFull);
    assert_eq!(trace.frames, 2);
}

#[test]
fn garbage_registers_overflow_without_panic() {
    let t = table_with(Layout::V3, &[(0x1000, call(Reg::BP, i16::MAX, Reg::UNDEFINED, 0))]);
    let (trace, _, _) = run(&t, &[Words::new(STACK, &[0])], 0x1050, STACK, u64::MAX - 10);
    assert_eq!(trace.end, End::Error(UnwindError::Overflow { ip: 0x1050 }));
    let t = table_with(Layout::V3, &[(0x1000, call(Reg::SP, -16, Reg::UNDEFINED, 0))]);
    let (trace, _, _) = run(&t, &[Words::new(0, &[0])], 0x1050, 0, 0);
    assert_eq!(trace.end, End::Error(UnwindError::Overflow { ip: 0x1050 }));
}

#[test]
fn unknown_registers_and_types_are_errors() {
    let cases = [
        (call(Reg::unknown(11), 8, Reg::UNDEFINED, 0), UnwindError::UnknownSpReg { ip: 0x1050, reg: Reg::unknown(11) }),
        (call(Reg::PREV_SP, 8, Reg::UNDEFINED, 0), UnwindError::UnknownSpReg { ip: 0x1050, reg: Reg::PREV_SP }),
        (call(Reg::SP, 8, Reg::SP, 0), UnwindError::UnknownBpReg { ip: 0x1050, reg: Reg::SP }),
        (Entry { kind: EntryType::Other(6), ..Entry::call(8) }, UnwindError::UnknownType { ip: 0x1050, kind: 6 }),
    ];
    for (entry, err) in cases {
        let t = table_with(Layout::V3, &[(0x1000, entry)]);
        let (trace, _, _) = run(&t, &[Words::new(STACK, &[BOTTOM])], 0x1050, STACK, 0);
        assert_eq!(trace.end, End::Error(err));
    }
}

#[test]
fn trace_from_return_address_looks_up_ip_minus_one() {
    // Blocked-task start: the ip is a return address.
    let t = table_with(Layout::V3, &[(0x1000, Entry::call(8)), (0x1100, Entry::call(16)), (0x1200, Entry::UNDEFINED)]);
    let table = t.table();
    let mut mem = Mem::new(&[Words::new(STACK, &[BOTTOM])]);
    let ranges = mem.ranges();
    let unwinder = Unwinder::new(&table, &ranges);
    let (trace, frames) = walk(&unwinder, unwinder.start(0x1100, STACK, 0, false), &mut mem);
    assert!(trace.is_reliable(), "{:?}", trace.unreliable);
    assert_eq!(ips(&frames), [0x1100, BOTTOM]);
}

#[test]
fn user_space_signal_frame_reads_the_sigcontext() {
    // A handler at 0x1000 (frame: its return address only) returns into the signal trampoline
    // at 0x1800, whose REGS entry says the interrupted registers are the sigcontext 40 bytes
    // above sp (inside the ucontext). The interrupted leaf at 0x1400 has an 8-byte frame;
    // its caller is the bottom function.
    let layout = Layout::V3;
    let trampoline = Entry { sp_offset: orc_unwind::sigcontext::IN_UCONTEXT, ..regs(EntryType::Regs, Reg::SP, 0) };
    let t = table_with(
        layout,
        &[
            (0x1000, call(Reg::SP, 8, Reg::UNDEFINED, 0)),
            (0x1100, Entry::UNDEFINED),
            (0x1400, call(Reg::SP, 8, Reg::UNDEFINED, 0)),
            (0x1500, Entry::UNDEFINED),
            // From one byte before the trampoline, as glibc's CFI does: the handler's return
            // address is looked up at ip - 1.
            (0x17ff, trampoline),
            (0x1810, Entry::UNDEFINED),
        ],
    );
    // Signal stack: [ret to 0x1800][ucontext: flags link stack_t(3)][sigcontext (17 words)...]
    let leaf_stack: u64 = 0x9000;
    let mut words = vec![0x1800, 0, 0, 0, 0, 0];
    let mut sc = vec![0u64; 17];
    sc[(orc_unwind::sigcontext::BP / 8) as usize] = 0xbeef;
    sc[(orc_unwind::sigcontext::SP / 8) as usize] = leaf_stack;
    sc[(orc_unwind::sigcontext::IP / 8) as usize] = 0x1404;
    words.extend(sc);
    let signal_stack = Words::new(STACK, &words);
    let leaf = Words::new(leaf_stack, &[BOTTOM]);
    let table = t.table();
    let mut mem = Mem::new(&[signal_stack, leaf]);
    let ranges = mem.ranges();
    let unwinder = Unwinder::new(&table, &ranges).with_config(Config::user_space());
    let state = unwinder.start(0x1010, STACK, 0x55, true);
    let (trace, frames) = walk(&unwinder, state, &mut mem);
    assert_eq!(trace.end, End::EndOfStack, "{:?}", trace);
    assert_eq!(ips(&frames), [0x1010, 0x1800, 0x1404, BOTTOM]);
    assert!(frames[2].signal, "the interrupted ip is exact: looked up as is");
    assert_eq!(frames[2].bp, 0xbeef, "bp comes from the sigcontext");
    assert_eq!(frames[2].sp, leaf_stack);

    // The kernel's layout reads the same block as a pt_regs and finds something else.
    let kernel = Unwinder::new(&table, &ranges);
    let state = kernel.start(0x1010, STACK, 0x55, true);
    let (_, frames) = walk(&kernel, state, &mut mem);
    assert_ne!(ips(&frames).get(2), Some(&0x1404));
}
