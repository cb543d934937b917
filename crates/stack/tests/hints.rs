//! Unwind hints: what each kind does to its instruction's state, and objtool's habit of
//! carrying the previous hint's state into the next.

mod common;

use common::{orc, run};
use orc_decode::{Reg, StackOp};
use orc_format::Reg as OrcReg;
use orc_stack::{
    Base, CfiReg, CfiState, FrameType, Hint, HintAction, HintError, HintReader, HintType,
};

fn hint(hint_type: HintType, sp_reg: OrcReg, sp_offset: i16) -> Hint {
    Hint {
        hint_type,
        sp_reg,
        sp_offset,
        signal: false,
        end: false,
    }
}

fn state(action: HintAction) -> CfiState {
    match action {
        HintAction::State(s) => s,
        other => panic!("expected a state, got {other:?}"),
    }
}

#[test]
fn unwind_hint_regs() {
    // UNWIND_HINT_REGS: a full pt_regs at %rsp (entry code after PUSH_AND_CLEAR_REGS)
    let mut reader = HintReader::new();
    let s = state(
        reader
            .apply(&hint(HintType::Regs, OrcReg::SP, 0), None)
            .unwrap(),
    );
    assert_eq!(s.cfa, CfiReg::new(Base::SP, 0));
    assert_eq!(s.frame_type, FrameType::REGS);
    assert_eq!(orc(&s), "type:regs sp:sp+0 bp:(und) signal:0");
}

#[test]
fn unwind_hint_iret_regs_with_signal() {
    // UNWIND_HINT_IRET_REGS offset=8 signal=1 (an exception entry with an error code)
    let h = Hint {
        signal: true,
        ..hint(HintType::RegsPartial, OrcReg::SP, 8)
    };
    let s = state(HintReader::new().apply(&h, None).unwrap());
    assert_eq!(orc(&s), "type:regs (partial) sp:sp+8 bp:(und) signal:1");
}

#[test]
fn unwind_hint_func_and_undefined_and_end_of_stack() {
    let mut reader = HintReader::new();
    let func = hint(HintType::Func, OrcReg::UNDEFINED, 0);
    assert_eq!(
        reader.apply(&func, None),
        Ok(HintAction::State(CfiState::FUNCTION_ENTRY))
    );
    let undefined = hint(HintType::Undefined, OrcReg::UNDEFINED, 0);
    let s = state(reader.apply(&undefined, None).unwrap());
    assert!(s.force_undefined);
    assert_eq!(orc(&s), "type:(und) sp:(und) bp:(und) signal:0");
    // Stack operations after UNWIND_HINT_UNDEFINED change nothing.
    assert_eq!(run(s, &[StackOp::push(Reg::BX)]), s);
    let end = hint(HintType::EndOfStack, OrcReg::UNDEFINED, 0);
    let s = state(reader.apply(&end, None).unwrap());
    assert_eq!(s.cfa.base, Base::UNDEFINED);
    assert_eq!(orc(&s), "type:end sp:(und) bp:(und) signal:0");
}

#[test]
fn save_is_not_a_hint_but_restore_is() {
    let mut reader = HintReader::new();
    let save = reader
        .apply(&hint(HintType::Save, OrcReg::UNDEFINED, 0), None)
        .unwrap();
    assert_eq!(save, HintAction::Save);
    assert!(!save.is_hint());
    let restore = reader
        .apply(&hint(HintType::Restore, OrcReg::UNDEFINED, 0), None)
        .unwrap();
    assert_eq!(restore, HintAction::Restore);
    assert!(restore.is_hint());
}

#[test]
fn the_running_state_carries_from_hint_to_hint() {
    let mut reader = HintReader::new();
    // Two hints on one instruction: UNDEFINED, then REGS. The second starts from the first's
    // state, so the REGS state still ignores stack operations...
    let first = state(
        reader
            .apply(&hint(HintType::Undefined, OrcReg::UNDEFINED, 0), None)
            .unwrap(),
    );
    let second = state(
        reader
            .apply(&hint(HintType::Regs, OrcReg::SP, 0), Some(&first))
            .unwrap(),
    );
    assert!(second.force_undefined);
    assert_eq!(second.frame_type, FrameType::REGS);
    // ... and so does the next hint anywhere, built from the running state.
    let third = state(
        reader
            .apply(&hint(HintType::Call, OrcReg::SP, 8), None)
            .unwrap(),
    );
    assert!(third.force_undefined);
    assert_eq!(orc(&third), "type:call sp:sp+8 bp:(und) signal:0");
}

#[test]
fn hint_registers_objtool_accepts() {
    let mut reader = HintReader::new();
    for (reg, base) in [
        (OrcReg::UNDEFINED, Base::UNDEFINED),
        (OrcReg::SP, Base::SP),
        (OrcReg::BP, Base::BP),
        (OrcReg::SP_INDIRECT, Base::SP_INDIRECT),
        (OrcReg::R10, Base::reg(Reg::R10)),
        (OrcReg::R13, Base::reg(Reg::R13)),
        (OrcReg::DI, Base::reg(Reg::DI)),
        (OrcReg::DX, Base::reg(Reg::DX)),
        // AX reaches the vocabulary only from layouts that define it (v3+ax, v4).
        (OrcReg::AX, Base::reg(Reg::AX)),
    ] {
        let s = state(reader.apply(&hint(HintType::Call, reg, 16), None).unwrap());
        assert_eq!(s.cfa, CfiReg::new(base, 16));
    }
    for reg in [OrcReg::PREV_SP, OrcReg::BP_INDIRECT] {
        let err = reader
            .apply(&hint(HintType::Call, reg, 0), None)
            .unwrap_err();
        assert_eq!(err, HintError::UnsupportedBaseReg(reg.0));
    }
    // Field 10 of a 6.12 object is no register: objtool 6.12 reports the number.
    let err = reader.apply(&hint(HintType::Call, OrcReg::unknown(10), 0), None).unwrap_err();
    assert_eq!(err, HintError::UnsupportedBaseReg(10));
    assert_eq!(
        HintError::UnsupportedBaseReg(8).to_string(),
        "unsupported unwind_hint sp base reg 8"
    );
}

#[test]
fn older_kernels_hints() {
    let mut reader = HintReader::new();
    // Before 6.4, UNWIND_HINT_EMPTY: a CALL hint with sp undefined and the end bit.
    let empty = Hint {
        end: true,
        ..hint(HintType::Call, OrcReg::UNDEFINED, 0)
    };
    let s = state(reader.apply(&empty, None).unwrap());
    assert!(s.end);
    assert_eq!(
        orc_stack::orc_entry(Some(&s), orc_format::Layout::V1).unwrap(),
        orc_format::Entry::END_OF_STACK
    );
    // 5.19-6.3 UNWIND_HINT_ENTRY is a CALL hint for the state.
    let s = state(
        reader
            .apply(&hint(HintType::Entry, OrcReg::SP, 8), None)
            .unwrap(),
    );
    assert_eq!(s.frame_type, FrameType::CALL);
    // 5.7-5.11 RET_OFFSET carries an offset, no state.
    let a = reader
        .apply(&hint(HintType::RetOffset, OrcReg::UNDEFINED, 8), None)
        .unwrap();
    assert_eq!(a, HintAction::RetOffset(8));
}

#[test]
fn unknown_hint_types_fail_only_when_the_entry_is_made() {
    let s = state(
        HintReader::new()
            .apply(&hint(HintType::Other(9), OrcReg::SP, 8), None)
            .unwrap(),
    );
    assert_eq!(s.frame_type, FrameType(9));
    assert_eq!(
        s.orc_entry().unwrap_err().to_string(),
        "unknown unwind hint type 9"
    );
}

/// Entry code with hints, walked straight through: the ORC before each instruction is what
/// objtool 6.12 generated for these bytes with these `.discard.unwind_hints` records. At 0x10
/// an UNDEFINED and a REGS hint share one instruction: the REGS state inherits
/// `force_undefined`, so the following push is ignored, and so do all later hint states.
#[test]
fn entry_code_listing_matches_objtool() {
    use HintType::*;
    let sp = |t, off| hint(t, OrcReg::SP, off);
    let rows: &[(&str, &[u8], &[Hint], &str)] = &[
        (
            "push %rax",
            &[0x50],
            &[sp(Regs, 0)],
            "type:regs sp:sp+0 bp:(und) signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            &[],
            "type:regs sp:sp+8 bp:(und) signal:0",
        ),
        (
            "sub $0x8,%rsp",
            &[0x48, 0x83, 0xec, 0x08],
            &[],
            "type:regs sp:sp+16 bp:(und) signal:0",
        ),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            &[],
            "type:regs sp:sp+24 bp:(und) signal:0",
        ),
        (
            "add $0x8,%rsp",
            &[0x48, 0x83, 0xc4, 0x08],
            &[],
            "type:regs sp:sp+24 bp:(und) signal:0",
        ),
        (
            "pop %rbx",
            &[0x5b],
            &[],
            "type:regs sp:sp+16 bp:(und) signal:0",
        ),
        (
            "pop %rax",
            &[0x58],
            &[],
            "type:regs sp:sp+8 bp:(und) signal:0",
        ),
        (
            "nop",
            &[0x90],
            &[Hint {
                signal: true,
                ..sp(RegsPartial, 8)
            }],
            "type:regs (partial) sp:sp+8 bp:(und) signal:1",
        ),
        (
            "push %rax",
            &[0x50],
            &[hint(Undefined, OrcReg::UNDEFINED, 0), sp(Regs, 16)],
            "type:regs sp:sp+16 bp:(und) signal:0",
        ),
        (
            "pop %rax",
            &[0x58],
            &[],
            "type:regs sp:sp+16 bp:(und) signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            &[sp(Call, 8)],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "pop %rbx",
            &[0x5b],
            &[],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "ud2",
            &[0x0f, 0x0b],
            &[hint(EndOfStack, OrcReg::UNDEFINED, 0)],
            "type:end sp:(und) bp:(und) signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            &[sp(Call, 8)],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "pop %rbx",
            &[0x5b],
            &[],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "nop",
            &[0x90],
            &[hint(Call, OrcReg::SP_INDIRECT, 8)],
            "type:call sp:(sp)+8 bp:(und) signal:0",
        ),
        (
            "ud2",
            &[0x0f, 0x0b],
            &[],
            "type:call sp:(sp)+8 bp:(und) signal:0",
        ),
    ];
    let mut reader = HintReader::new();
    let mut running = CfiState::UNKNOWN;
    for (n, &(asm, bytes, hints, expected)) in rows.iter().enumerate() {
        let mut current: Option<CfiState> = None;
        for h in hints {
            current = Some(state(reader.apply(h, current.as_ref()).unwrap()));
        }
        if let Some(s) = current {
            running = s;
        }
        assert_eq!(common::orc(&running), expected, "before `{asm}` (row {n})");
        let next_has_hint = rows.get(n + 1).is_some_and(|r| !r.2.is_empty());
        let ctx = orc_stack::OpContext {
            in_function: false,
            next_has_hint,
            stackval: false,
        };
        running.apply_all(&common::ops_of(bytes), &ctx).unwrap();
    }
}
