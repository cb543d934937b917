//! The merge check where paths join, and the states' identity for interning.

mod common;

use common::from_entry;
use orc_decode::{Reg, StackOp};
use orc_stack::{mismatch, Base, CfiReg, CfiState, FrameType, Interner, Mismatch};

#[test]
fn different_cfa() {
    // One path did push %rbp; mov %rsp,%rbp, the other did not.
    let stored = from_entry(&[StackOp::push(Reg::BP), StackOp::mov(Reg::SP, Reg::BP)]);
    let current = CfiState::FUNCTION_ENTRY;
    let m = mismatch(&stored, &current).unwrap();
    assert_eq!(
        m,
        Mismatch::Cfa {
            stored: CfiReg::new(Base::BP, 16),
            current: CfiReg::new(Base::SP, 8)
        }
    );
    assert_eq!(m.to_string(), "stack state mismatch: cfa1=5+16 cfa2=4+8");
}

#[test]
fn different_saved_register() {
    // Same CFA: push %rbx vs sub $8,%rsp
    let stored = from_entry(&[StackOp::push(Reg::BX)]);
    let current = from_entry(&[StackOp::sub_sp(8)]);
    let m = mismatch(&stored, &current).unwrap();
    assert_eq!(
        m.to_string(),
        "stack state mismatch: reg1[3]=-2-16 reg2[3]=-1+0"
    );
}

#[test]
fn different_type() {
    let stored = CfiState {
        frame_type: FrameType::REGS,
        ..CfiState::FUNCTION_ENTRY
    };
    let m = mismatch(&stored, &CfiState::FUNCTION_ENTRY).unwrap();
    assert_eq!(m.to_string(), "stack state mismatch: type1=3 type2=2");
}

#[test]
fn different_drap() {
    let drap = CfiState {
        cfa: CfiReg::new(Base::reg(Reg::R10), 0),
        drap: true,
        drap_reg: Base::reg(Reg::R10),
        drap_offset: -16,
        ..CfiState::FUNCTION_ENTRY
    };
    let other = CfiState {
        drap: false,
        drap_reg: Base::UNDEFINED,
        drap_offset: -1,
        ..drap
    };
    assert_eq!(
        mismatch(&drap, &other).unwrap().to_string(),
        "stack state mismatch: drap1=1(10,-16) drap2=0(-1,-1)"
    );
    // The DRAP register and slot only matter while DRAP is active.
    let candidate = CfiState {
        drap_reg: Base::reg(Reg::R10),
        ..CfiState::FUNCTION_ENTRY
    };
    assert_eq!(mismatch(&candidate, &CfiState::FUNCTION_ENTRY), None);
}

#[test]
fn differences_the_check_tolerates() {
    // Different stack size (the CFA is on %rbp), remembered values and flags: compatible.
    let framed = from_entry(&[StackOp::push(Reg::BP), StackOp::mov(Reg::SP, Reg::BP)]);
    let deeper = from_entry(&[
        StackOp::push(Reg::BP),
        StackOp::mov(Reg::SP, Reg::BP),
        StackOp::sub_sp(32),
        StackOp::mov(Reg::SP, Reg::AX),
    ]);
    assert_ne!(framed, deeper);
    assert_eq!(mismatch(&framed, &deeper), None);
    let signalled = CfiState {
        signal: true,
        bp_scratch: true,
        ..framed
    };
    assert_eq!(mismatch(&framed, &signalled), None);
}

#[test]
fn interning_shares_identical_states_only() {
    let mut interner = Interner::new();
    assert_eq!(interner.intern(&CfiState::UNKNOWN), Interner::UNKNOWN);
    assert_eq!(
        interner.intern(&CfiState::FUNCTION_ENTRY),
        Interner::FUNCTION_ENTRY
    );
    let a = interner.intern(&from_entry(&[StackOp::push(Reg::BX)]));
    let b = interner.intern(&from_entry(&[StackOp::push(Reg::BX)]));
    assert_eq!(a, b);
    // Equal for the merge check, but not identical: two entries.
    let c = interner.intern(&CfiState {
        signal: true,
        ..*interner.get(a)
    });
    assert_ne!(a, c);
    assert_eq!(interner.len(), 4);
    assert_eq!(interner.get(a), &from_entry(&[StackOp::push(Reg::BX)]));
}

/// objtool 6.12 on
/// ```text
/// e_mis2: test %rdi,%rdi; je 1f; push %rbx; sub $8,%rsp; jmp 2f
///      1: sub $16,%rsp
///      2: add $8,%rsp; pop %rbx; ret
/// ```
/// warns `e_mis2+0x10: stack state mismatch: reg1[3]=-1+0 reg2[3]=-2-16`: it follows the
/// taken jump first, so the state stored at `2:` is the one without %rbx saved ("1"), and the
/// fall-through path brings the other ("2").
#[test]
fn objtool_message_for_a_join_with_different_saves() {
    let taken = from_entry(&[StackOp::sub_sp(16)]);
    let fallthrough = from_entry(&[StackOp::push(Reg::BX), StackOp::sub_sp(8)]);
    assert_eq!(taken.cfa, fallthrough.cfa);
    let m = mismatch(&taken, &fallthrough).unwrap();
    assert_eq!(
        m.to_string(),
        "stack state mismatch: reg1[3]=-1+0 reg2[3]=-2-16"
    );
}
