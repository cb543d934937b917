//! Each update rule on its own, with stack operations only: the idiom it models, the state it
//! leaves, and the errors objtool reports when code strays from the idioms.

mod common;

use common::{from_entry, orc, run};
use orc_decode::{Dest, Reg, Src, StackOp};
use orc_stack::{Base, CfiReg, CfiState, FrameType, OpContext, StackError};

const BP: Reg = Reg::BP;
const SP: Reg = Reg::SP;

fn push(r: Reg) -> StackOp {
    StackOp::push(r)
}
fn pop(r: Reg) -> StackOp {
    StackOp::pop(r)
}
fn mov(src: Reg, dest: Reg) -> StackOp {
    StackOp::mov(src, dest)
}
fn cfa(base: Base, offset: i32) -> CfiReg {
    CfiReg::new(base, offset)
}
fn at_cfa(offset: i32) -> CfiReg {
    CfiReg::new(Base::CFA, offset)
}
fn try_run(mut state: CfiState, ops: &[StackOp], ctx: OpContext) -> Result<CfiState, StackError> {
    state.apply_all(ops, &ctx)?;
    Ok(state)
}

#[test]
fn function_entry_state() {
    let s = CfiState::FUNCTION_ENTRY;
    assert_eq!(s.cfa, cfa(Base::SP, 8));
    assert_eq!(s.reg(Reg::RA), at_cfa(-8));
    assert_eq!(s.stack_size, 8);
    assert_eq!(s.frame_type, FrameType::CALL);
    assert!(Reg::all()
        .filter(|&r| r != Reg::RA)
        .all(|r| s.reg(r) == CfiReg::UNDEFINED));
    assert!(!s.has_modified_stack_frame());
    assert_eq!(orc(&s), "type:call sp:sp+8 bp:(und) signal:0");
}

#[test]
fn push_saves_callee_saved_registers_only() {
    // push %rbx; push %rax; push %r12
    let s = from_entry(&[push(Reg::BX), push(Reg::AX), push(Reg::R12)]);
    assert_eq!(s.cfa, cfa(Base::SP, 32));
    assert_eq!(s.stack_size, 32);
    assert_eq!(s.reg(Reg::BX), at_cfa(-16));
    assert_eq!(
        s.reg(Reg::AX),
        CfiReg::UNDEFINED,
        "rax is caller-saved: just stack traffic"
    );
    assert_eq!(s.reg(Reg::R12), at_cfa(-32));
    assert!(s.has_modified_stack_frame());
}

#[test]
fn only_the_first_save_of_a_register_counts() {
    // push %rbx; push %rbx: the second copy is not the caller's value
    let s = from_entry(&[push(Reg::BX), push(Reg::BX)]);
    assert_eq!(s.reg(Reg::BX), at_cfa(-16));
}

#[test]
fn pop_from_the_save_slot_restores() {
    // push %rbx; push %r12; pop %r12; pop %rbx
    let s = from_entry(&[push(Reg::BX), push(Reg::R12), pop(Reg::R12), pop(Reg::BX)]);
    assert_eq!(s, CfiState::FUNCTION_ENTRY);
    // Popped in the wrong order, the registers are not restored (and the frame stays modified).
    let s = from_entry(&[push(Reg::BX), push(Reg::R12), pop(Reg::BX), pop(Reg::R12)]);
    assert_eq!(s.cfa, cfa(Base::SP, 8));
    assert_eq!(s.reg(Reg::BX), at_cfa(-16));
    assert!(s.has_modified_stack_frame());
}

#[test]
fn push_and_pop_of_untracked_values() {
    // pushq mem; pushf; popf; popq mem
    let s = from_entry(&[StackOp::push_const(), StackOp::pushf()]);
    assert_eq!(s.cfa, cfa(Base::SP, 24));
    let s = run(s, &[StackOp::popf(), StackOp::pop_mem()]);
    assert_eq!(s, CfiState::FUNCTION_ENTRY);
}

#[test]
fn frame_pointer_setup_moves_the_cfa_to_rbp() {
    // push %rbp; mov %rsp,%rbp
    let s = from_entry(&[push(BP), mov(SP, BP)]);
    assert_eq!(s.cfa, cfa(Base::BP, 16));
    assert_eq!(s.reg(BP), at_cfa(-16));
    assert!(s.has_valid_stack_frame());
    assert_eq!(orc(&s), "type:call sp:bp+16 bp:prevsp-16 signal:0");
    // Later %rsp changes no longer move the CFA.
    let s = run(s, &[StackOp::sub_sp(0x40), push(Reg::BX)]);
    assert_eq!(s.cfa, cfa(Base::BP, 16));
    assert_eq!(s.stack_size, 16 + 0x40 + 8);
    assert_eq!(s.reg(Reg::BX), at_cfa(-16 - 0x40 - 8));
}

#[test]
fn mov_rsp_rbp_without_the_pushed_rbp_on_top_is_just_a_copy() {
    // push %rbp; push %rbx; mov %rsp,%rbp: %rbp is not saved right at the top of the stack
    let s = from_entry(&[push(BP), push(Reg::BX), mov(SP, BP)]);
    assert_eq!(s.cfa, cfa(Base::SP, 24));
    assert_eq!(
        s.vals[BP.index()],
        at_cfa(-24),
        "the copy of %rsp is remembered"
    );
    assert!(!s.has_valid_stack_frame());
}

#[test]
fn leave_and_pop_rbp_end_the_frame() {
    let framed = from_entry(&[push(BP), mov(SP, BP), push(Reg::BX), StackOp::sub_sp(0x18)]);
    // mov -8(%rbp),%rbx; leave
    let s = run(framed, &[StackOp::load(-8, BP, Reg::BX)]);
    assert_eq!(s.reg(Reg::BX), CfiReg::UNDEFINED, "restored from its slot");
    let [mov_bp_sp, pop_bp] = StackOp::leave();
    let s = run(s, &[mov_bp_sp]);
    assert_eq!(s.stack_size, 16, "mov %rbp,%rsp: back at the saved %rbp");
    let s = run(s, &[pop_bp]);
    assert_eq!(s, CfiState::FUNCTION_ENTRY);
}

#[test]
fn add_and_sub_on_rsp() {
    let s = from_entry(&[StackOp::sub_sp(0x28)]);
    assert_eq!((s.cfa, s.stack_size), (cfa(Base::SP, 0x30), 0x30));
    let s = run(s, &[StackOp::add_sp(0x28)]);
    assert_eq!(s, CfiState::FUNCTION_ENTRY);
}

#[test]
fn stores_and_loads_relative_to_rsp() {
    // sub $0x28,%rsp; mov %rbx,0x18(%rsp); mov %rbp,0x20(%rsp)
    let s = from_entry(&[
        StackOp::sub_sp(0x28),
        StackOp::store(Reg::BX, 0x18, SP),
        StackOp::store(BP, 0x20, SP),
    ]);
    assert_eq!(s.reg(Reg::BX), at_cfa(-0x18));
    assert_eq!(s.reg(BP), at_cfa(-0x10));
    assert_eq!(orc(&s), "type:call sp:sp+48 bp:prevsp-16 signal:0");
    // mov 0x18(%rsp),%rbx; mov 0x20(%rsp),%rbp; add $0x28,%rsp
    let s = run(
        s,
        &[
            StackOp::load(0x18, SP, Reg::BX),
            StackOp::load(0x20, SP, BP),
            StackOp::add_sp(0x28),
        ],
    );
    assert_eq!(s, CfiState::FUNCTION_ENTRY);
}

#[test]
fn store_through_rsp_while_the_cfa_is_on_rbp() {
    // push %rbp; mov %rsp,%rbp; sub $0x20,%rsp; mov %rbx,8(%rsp)
    let s = from_entry(&[
        push(BP),
        mov(SP, BP),
        StackOp::sub_sp(0x20),
        StackOp::store(Reg::BX, 8, SP),
    ]);
    assert_eq!(s.reg(Reg::BX), at_cfa(8 - 0x30));
    // mov 8(%rsp),%rbx finds the slot through the stack size
    let s = run(s, &[StackOp::load(8, SP, Reg::BX)]);
    assert_eq!(s.reg(Reg::BX), CfiReg::UNDEFINED);
}

#[test]
fn reloading_rbp_from_the_stack_moves_the_cfa_back_to_rsp() {
    // push %rbp; mov %rsp,%rbp; ...; mov (%rsp),%rbp
    let s = from_entry(&[push(BP), mov(SP, BP), StackOp::load(0, SP, BP)]);
    assert_eq!(s.cfa, cfa(Base::SP, 16));
    assert_eq!(
        s.reg(BP),
        CfiReg::UNDEFINED,
        "and %rbp is restored from its slot"
    );
}

#[test]
fn copies_of_rsp_can_restore_the_frame() {
    // mov %rsp,%rax; sub $0x100,%rsp; mov %rax,%rsp
    let s = from_entry(&[mov(SP, Reg::AX), StackOp::sub_sp(0x100)]);
    assert_eq!(s.vals[Reg::AX.index()], at_cfa(-8));
    let s = run(s, &[mov(Reg::AX, SP)]);
    assert_eq!((s.cfa, s.stack_size), (cfa(Base::SP, 8), 8));
    // Through a chain of registers (Clang): mov %rsp,%rdx; mov %rdx,%rbx; mov %rbx,%rsp
    let s = from_entry(&[
        mov(SP, Reg::DX),
        StackOp::sub_sp(0x10),
        mov(Reg::DX, Reg::BX),
        mov(Reg::BX, SP),
    ]);
    assert_eq!(
        s,
        CfiState {
            vals: s.vals,
            drap_reg: s.drap_reg,
            ..CfiState::FUNCTION_ENTRY
        }
    );
    // lea 0x8(%rsp),%rcx; ...; mov %rcx,%rsp
    let s = from_entry(&[
        StackOp::add(SP, 8, Reg::CX),
        StackOp::sub_sp(0x20),
        mov(Reg::CX, SP),
    ]);
    assert_eq!((s.cfa, s.stack_size), (cfa(Base::SP, 0), 0));
}

#[test]
fn an_unknown_new_stack_pointer_loses_the_cfa() {
    // mov %rdi,%rsp with nothing known about %rdi
    let s = from_entry(&[mov(Reg::DI, SP)]);
    assert_eq!(s.cfa, CfiReg::UNDEFINED);
    // ... and any later stack operation in the function is an error
    let err = try_run(s, &[push(Reg::BX)], OpContext::IN_FUNCTION).unwrap_err();
    assert_eq!(err, StackError::UndefinedStackState);
    assert_eq!(err.to_string(), "undefined stack state");
    // ... but outside functions (entry code before its first hint) it is ignored.
    let outside = OpContext {
        in_function: false,
        ..OpContext::IN_FUNCTION
    };
    assert_eq!(try_run(s, &[push(Reg::BX)], outside), Ok(s));
}

#[test]
fn stack_swizzle() {
    // push %rbx; mov %rsp,(%rdi); mov %rdi,%rsp; call ...; pop %rsp; pop %rbx
    let s = from_entry(&[push(Reg::BX), StackOp::store(SP, 0, Reg::DI)]);
    assert_eq!(s.vals[Reg::DI.index()], cfa(Base::SP_INDIRECT, 16));
    let s = run(s, &[mov(Reg::DI, SP)]);
    assert_eq!(s.cfa, cfa(Base::SP_INDIRECT, 16));
    assert_eq!(orc(&s), "type:call sp:(sp)+16 bp:(und) signal:0");
    // Pushes on the new stack do not move the CFA (it is found through *%rsp)...
    let s = run(s, &[pop(SP)]);
    assert_eq!(s.cfa, cfa(Base::SP, 16), "pop %rsp: back on the old stack");
    let s = run(s, &[pop(Reg::BX)]);
    assert_eq!(
        s,
        CfiState {
            vals: s.vals,
            ..CfiState::FUNCTION_ENTRY
        }
    );
}

#[test]
fn stack_swizzle_under_a_frame_pointer_counts_as_a_push() {
    // push %rbp; mov %rsp,%rbp; mov %rsp,(%rdi); mov %rdi,%rsp; pop %rsp; pop %rbp
    let framed = from_entry(&[push(BP), mov(SP, BP), StackOp::store(SP, 0, Reg::DI)]);
    let s = run(framed, &[mov(Reg::DI, SP)]);
    assert_eq!(s.cfa, cfa(Base::BP, 16));
    assert_eq!(s.stack_size, 24);
    let s = run(s, &[pop(SP), pop(BP)]);
    assert_eq!(s.cfa, cfa(Base::SP, 8));
    assert!(!s.has_modified_stack_frame());
}

#[test]
fn gcc_drap_realignment_with_r10() {
    let r10 = Reg::R10;
    // lea 0x8(%rsp),%r10: a DRAP candidate holding the CFA
    let s = from_entry(&[StackOp::add(SP, 8, r10)]);
    assert_eq!(s.drap_reg, Base::reg(r10));
    assert_eq!(s.vals[r10.index()], at_cfa(0));
    // and $-64,%rsp: the CFA is now %r10
    let s = run(s, &[StackOp::and_sp(-64)]);
    assert!(s.drap);
    assert_eq!((s.cfa, s.stack_size), (cfa(Base::reg(r10), 0), 0));
    // pushq -8(%r10); push %rbp; mov %rsp,%rbp
    let s = run(s, &[StackOp::push_const(), push(BP)]);
    assert_eq!(
        s.stack_size, 0,
        "push %rbp restarts the count for the realigned frame"
    );
    let s = run(s, &[mov(SP, BP)]);
    assert_eq!(s.reg(BP), cfa(Base::BP, 0));
    assert!(s.has_valid_stack_frame());
    // push %r12; push %r10: the saved DRAP register now leads to the CFA
    let s = run(s, &[push(Reg::R12), push(r10)]);
    assert_eq!(s.reg(Reg::R12), cfa(Base::BP, -8));
    assert_eq!((s.cfa, s.drap_offset), (cfa(Base::BP_INDIRECT, -16), -16));
    assert_eq!(orc(&s), "type:call sp:(bp-16) bp:bp+0 signal:0");
    // pop %r10; pop %r12; pop %rbp; lea -0x8(%r10),%rsp
    let s = run(s, &[pop(r10)]);
    assert_eq!((s.cfa, s.drap_offset), (cfa(Base::reg(r10), 0), -1));
    let s = run(s, &[pop(Reg::R12), pop(BP), StackOp::add(r10, -8, SP)]);
    assert_eq!(
        (s.cfa, s.stack_size, s.drap, s.drap_reg),
        (cfa(Base::SP, 8), 8, false, Base::UNDEFINED)
    );
    assert!(!s.has_modified_stack_frame());
}

#[test]
fn drap_register_saved_with_a_store() {
    // lea 8(%rsp),%r10; and $-16,%rsp; pushq -8(%r10); push %rbp; mov %rsp,%rbp;
    // mov %r10,-0x18(%rbp); mov %rbx,-0x20(%rbp)
    let s = from_entry(&[
        StackOp::add(SP, 8, Reg::R10),
        StackOp::and_sp(-16),
        StackOp::push_const(),
        push(BP),
        mov(SP, BP),
        StackOp::store(Reg::R10, -0x18, BP),
        StackOp::store(Reg::BX, -0x20, BP),
    ]);
    assert_eq!(
        (s.cfa, s.drap_offset),
        (cfa(Base::BP_INDIRECT, -0x18), -0x18)
    );
    assert_eq!(s.reg(Reg::BX), cfa(Base::BP, -0x20));
    // mov -0x18(%rbp),%r10; mov -0x20(%rbp),%rbx
    let s = run(
        s,
        &[
            StackOp::load(-0x18, BP, Reg::R10),
            StackOp::load(-0x20, BP, Reg::BX),
        ],
    );
    assert_eq!(s.cfa, cfa(Base::reg(Reg::R10), 0));
    assert_eq!(s.reg(Reg::BX), CfiReg::UNDEFINED);
}

#[test]
fn realignment_needs_a_drap_candidate_or_a_frame_pointer() {
    // and $-16,%rsp with the CFA on %rsp and no candidate
    let err = try_run(
        CfiState::FUNCTION_ENTRY,
        &[StackOp::and_sp(-16)],
        OpContext::IN_FUNCTION,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "unsupported stack pointer realignment");
    // Old GCC: push %rbp; mov %rsp,%rbp; and $-16,%rsp: the frame pointer holds the CFA.
    let s = from_entry(&[push(BP), mov(SP, BP)]);
    assert_eq!(run(s, &[StackOp::and_sp(-16)]), s);
    // A candidate, but the CFA already moved to %rbp.
    let s = from_entry(&[push(BP), mov(SP, BP), StackOp::add(SP, 8, Reg::R10)]);
    assert_eq!(
        s.drap_reg,
        Base::UNDEFINED,
        "lea off(%rsp) only makes a candidate while the CFA is on %rsp"
    );
    let s = from_entry(&[StackOp::add(SP, 8, Reg::R10), push(BP), mov(SP, BP)]);
    let err = try_run(s, &[StackOp::and_sp(-16)], OpContext::IN_FUNCTION).unwrap_err();
    assert_eq!(err, StackError::UnsupportedStackPointerRealignment);
}

#[test]
fn other_changes_to_the_cfa_base_are_unsupported() {
    // push %rbp; mov %rsp,%rbp; lea 8(%rbp),%rbp
    let s = from_entry(&[push(BP), mov(SP, BP)]);
    let bump = StackOp::add(BP, 8, BP);
    let err = try_run(s, &[bump], OpContext::IN_FUNCTION).unwrap_err();
    assert_eq!(err.to_string(), "unsupported stack register modification");
    // ... unless the next instruction has a hint, which replaces the state anyway.
    let hinted = OpContext {
        next_has_hint: true,
        ..OpContext::IN_FUNCTION
    };
    assert_eq!(try_run(s, &[bump], hinted), Ok(s));
    // add %rax,%rsp: an unknown amount
    let err = try_run(
        CfiState::FUNCTION_ENTRY,
        &[StackOp::new(
            Src::Add {
                reg: Reg::AX,
                offset: 0,
            },
            Dest::Reg(SP),
        )],
        OpContext::IN_FUNCTION,
    );
    assert_eq!(err, Err(StackError::UnsupportedStackRegisterModification));
}

#[test]
fn only_pops_write_untracked_memory() {
    let op = StackOp::new(Src::Const, Dest::Mem);
    let err = try_run(CfiState::FUNCTION_ENTRY, &[op], OpContext::IN_FUNCTION).unwrap_err();
    assert_eq!(err.to_string(), "unknown stack-related memory operation");
    let op = StackOp::new(Src::Const, Dest::Reg(Reg::AX));
    let err = try_run(CfiState::FUNCTION_ENTRY, &[op], OpContext::IN_FUNCTION).unwrap_err();
    assert_eq!(err.to_string(), "unknown stack-related instruction");
}

#[test]
fn regs_frames_track_only_the_cfa_offset() {
    // UNWIND_HINT_REGS: CFA = %rsp + 0 at a full pt_regs
    let regs = CfiState {
        cfa: cfa(Base::SP, 0),
        frame_type: FrameType::REGS,
        ..CfiState::UNKNOWN
    };
    // push %rbx; sub $8,%rsp; mov %rsp,%rbp; pop %rax
    let s = run(
        regs,
        &[push(Reg::BX), StackOp::sub_sp(8), mov(SP, BP), pop(Reg::AX)],
    );
    assert_eq!(s.cfa, cfa(Base::SP, 8));
    assert_eq!(s.stack_size, 0, "the stack size is not tracked");
    assert_eq!(s.reg(Reg::BX), CfiReg::UNDEFINED, "nor are saved registers");
    assert_eq!(s.cfa.base, Base::SP, "mov %rsp,%rbp does not move the CFA");
    assert_eq!(orc(&s), "type:regs sp:sp+8 bp:(und) signal:0");
    // Based on %rbp, nothing changes at all.
    let on_bp = CfiState {
        cfa: cfa(Base::BP, 0),
        frame_type: FrameType::REGS_PARTIAL,
        ..CfiState::UNKNOWN
    };
    assert_eq!(run(on_bp, &[push(Reg::BX), StackOp::sub_sp(8)]), on_bp);
}

#[test]
fn force_undefined_ignores_everything() {
    let s = run(
        CfiState::FORCE_UNDEFINED,
        &[push(Reg::BX), mov(Reg::DI, SP), StackOp::and_sp(-16)],
    );
    assert_eq!(s, CfiState::FORCE_UNDEFINED);
    assert_eq!(orc(&s), "type:(und) sp:(und) bp:(und) signal:0");
}

#[test]
fn bp_scratch_is_tracked_only_with_stackval() {
    let stackval = OpContext {
        stackval: true,
        ..OpContext::IN_FUNCTION
    };
    let s = try_run(CfiState::FUNCTION_ENTRY, &[push(BP)], stackval).unwrap();
    assert!(s.bp_scratch, "push %rbp with the CFA not on %rbp");
    let s = try_run(s, &[mov(SP, BP)], stackval).unwrap();
    assert!(!s.bp_scratch, "cleared when it becomes the frame pointer");
    assert!(!from_entry(&[push(BP)]).bp_scratch);
}

#[test]
fn iret_to_self_pops_its_frame() {
    // sync_core(): push five words (ss, rsp, flags, cs, rip); iretq is an add of 40 to %rsp
    let five = [StackOp::push_const(); 5];
    let s = run(from_entry(&five), &[StackOp::add_sp(40)]);
    assert_eq!(s, CfiState::FUNCTION_ENTRY);
}

#[test]
fn arithmetic_wraps_instead_of_panicking() {
    let s = CfiState {
        cfa: cfa(Base::SP, i32::MAX),
        stack_size: i32::MAX,
        ..CfiState::FUNCTION_ENTRY
    };
    let s = run(s, &[push(Reg::BX), StackOp::sub_sp(i32::MIN)]);
    assert_eq!(
        s.cfa.offset,
        i32::MIN.wrapping_add(7).wrapping_add(i32::MIN)
    );
}
