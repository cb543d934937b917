//! From states to ORC entries (objtool's `init_orc_entry`), for 6.4+ and for the older
//! layouts.

mod common;

use common::{from_entry, orc};
use orc_decode::{Reg, StackOp};
use orc_format::{Entry, EntryType, Layout, Reg as OrcReg};
use orc_stack::{orc_entry, orc_entry_exact, Base, CfiReg, CfiState, FrameType, OrcError};

#[test]
fn reference_worked_example() {
    // push %rbp, no frame pointer yet: prev SP = SP+16, caller's BP at prev_sp-16.
    let s = from_entry(&[StackOp::push(Reg::BP)]);
    let entry = s.orc_entry().unwrap();
    assert_eq!(
        entry,
        Entry {
            kind: EntryType::Call,
            sp_reg: OrcReg::SP,
            sp_offset: 16,
            bp_reg: OrcReg::PREV_SP,
            bp_offset: -16,
            signal: false
        }
    );
    assert_eq!(
        Layout::V3
            .encode(entry)
            .unwrap()
            .to_bytes(orc_format::Endian::Little),
        [0x10, 0x00, 0xf0, 0xff, 0x15, 0x02]
    );
}

#[test]
fn no_state_is_undefined() {
    assert_eq!(orc_entry(None, Layout::V3), Ok(Entry::UNDEFINED));
    assert_eq!(orc_entry(None, Layout::V1), Ok(Entry::UNDEFINED));
}

#[test]
fn every_cfa_base_orc_can_name() {
    for (base, reg, text) in [
        (Base::SP, OrcReg::SP, "sp:sp+8"),
        (Base::BP, OrcReg::BP, "sp:bp+8"),
        (Base::SP_INDIRECT, OrcReg::SP_INDIRECT, "sp:(sp)+8"),
        (Base::BP_INDIRECT, OrcReg::BP_INDIRECT, "sp:(bp+8)"),
        (Base::reg(Reg::R10), OrcReg::R10, "sp:r10+8"),
        (Base::reg(Reg::R13), OrcReg::R13, "sp:r13+8"),
        (Base::reg(Reg::DI), OrcReg::DI, "sp:di+8"),
        (Base::reg(Reg::DX), OrcReg::DX, "sp:dx+8"),
    ] {
        let s = CfiState {
            cfa: CfiReg::new(base, 8),
            ..CfiState::FUNCTION_ENTRY
        };
        assert_eq!(s.orc_entry().unwrap().sp_reg, reg);
        assert!(orc(&s).contains(text), "{}", orc(&s));
    }
}

#[test]
fn bases_orc_cannot_name_are_errors() {
    let s = CfiState {
        cfa: CfiReg::new(Base::reg(Reg::AX), 0),
        ..CfiState::FUNCTION_ENTRY
    };
    assert_eq!(s.orc_entry(), Err(OrcError::UnknownCfaBase(0)));
    // A CALL frame whose CFA was lost (objtool fails the object with this).
    let s = CfiState {
        cfa: CfiReg::UNDEFINED,
        ..CfiState::FUNCTION_ENTRY
    };
    assert_eq!(
        s.orc_entry().unwrap_err().to_string(),
        "unknown CFA base reg -1"
    );
    let mut s = CfiState::FUNCTION_ENTRY;
    s.regs[Reg::BP.index()] = CfiReg::new(Base::SP, 0);
    assert_eq!(
        s.orc_entry().unwrap_err().to_string(),
        "unknown BP base reg 4"
    );
}

#[test]
fn undefined_and_end_types_are_bare() {
    let s = CfiState {
        cfa: CfiReg::new(Base::SP, 8),
        signal: true,
        frame_type: FrameType::END_OF_STACK,
        ..CfiState::UNKNOWN
    };
    assert_eq!(s.orc_entry(), Ok(Entry::END_OF_STACK));
    assert_eq!(CfiState::UNKNOWN.orc_entry(), Ok(Entry::UNDEFINED));
}

#[test]
fn offsets_are_truncated_to_16_bits() {
    let s = CfiState {
        cfa: CfiReg::new(Base::SP, 0x1_0010),
        ..CfiState::FUNCTION_ENTRY
    };
    assert_eq!(s.orc_entry().unwrap().sp_offset, 0x10);
}

#[test]
fn older_layouts() {
    let framed = from_entry(&[StackOp::push(Reg::BP), StackOp::mov(Reg::SP, Reg::BP)]);
    // Same registers in every layout; v1 has no signal bit (implied by the type).
    let regs = CfiState {
        frame_type: FrameType::REGS,
        cfa: CfiReg::new(Base::SP, 0),
        ..CfiState::UNKNOWN
    };
    for layout in [Layout::V1, Layout::V2, Layout::V3] {
        assert_eq!(orc_entry(Some(&framed), layout), framed.orc_entry());
        let e = orc_entry(Some(&regs), layout).unwrap();
        assert_eq!(e.signal, layout == Layout::V1, "{layout}");
    }
    // Before 6.4 the unknown state (type 0 = CALL then) with no CFA is UNDEFINED, with the end
    // bit END_OF_STACK; 6.4+ requires a CALL frame to have a CFA.
    assert_eq!(
        orc_entry(Some(&CfiState::UNKNOWN), Layout::V1),
        Ok(Entry::UNDEFINED)
    );
    let lost = CfiState {
        cfa: CfiReg::UNDEFINED,
        ..CfiState::FUNCTION_ENTRY
    };
    assert_eq!(orc_entry(Some(&lost), Layout::V2), Ok(Entry::UNDEFINED));
    let end = CfiState { end: true, ..lost };
    assert_eq!(orc_entry(Some(&end), Layout::V1), Ok(Entry::END_OF_STACK));
    for layout in [Layout::V1, Layout::V2] {
        assert!(layout
            .encode(orc_entry(Some(&end), layout).unwrap())
            .is_ok());
    }
}

#[test]
fn offsets_beyond_16_bits_truncate_like_objtool_or_are_refused_exactly() {
    // `push %r12; push %rbp; push %rbx; sub $0x10020,%rsp` (python3.11 has such a function):
    // the CFA is sp + 65600.
    let s = from_entry(&[
        StackOp::push(Reg::R12),
        StackOp::push(Reg::BP),
        StackOp::push(Reg::BX),
        StackOp::add_sp(-0x10020),
    ]);
    assert_eq!(s.cfa, CfiReg::new(Base::SP, 65600));
    // objtool assigns to a 16-bit field: 65600 becomes 64, a wrong rule.
    assert_eq!(orc_entry(Some(&s), Layout::V3).unwrap().sp_offset, 64);
    assert_eq!(
        orc_entry_exact(Some(&s), Layout::V3),
        Err(OrcError::OffsetRange { what: "sp", offset: 65600 })
    );
    // Below the limit both agree.
    let small = from_entry(&[StackOp::push(Reg::BP), StackOp::add_sp(-0x7000)]);
    assert_eq!(orc_entry_exact(Some(&small), Layout::V3), orc_entry(Some(&small), Layout::V3));
}

/// Clang's DRAP through `%rax` (`lea 0x8(%rsp),%rax; and $-32,%rsp`): the CFA is based on
/// `%rax`, which only the layouts with `ORC_REG_AX` can name (field 10 in v3+ax, 1 in v4);
/// objtool before them fails with "unknown CFA base reg 0" (`CFI_AX`).
#[test]
fn rax_drap_needs_a_layout_with_ax() {
    let s = common::run(from_entry(&[StackOp::add(Reg::SP, 8, Reg::AX)]), &[StackOp::and_sp(-32)]);
    assert_eq!(s.cfa, CfiReg::new(Base::reg(Reg::AX), 0));
    for layout in [Layout::V1, Layout::V2, Layout::V3] {
        let err = orc_entry(Some(&s), layout).unwrap_err();
        assert_eq!(err, OrcError::UnknownCfaBase(0));
        assert_eq!(err.to_string(), "unknown CFA base reg 0");
    }
    for (layout, field) in [(Layout::V3Ax, 10u16), (Layout::V4, 1)] {
        let entry = orc_entry(Some(&s), layout).unwrap();
        assert_eq!((entry.kind, entry.sp_reg, entry.sp_offset), (EntryType::Call, OrcReg::AX, 0));
        assert_eq!(layout.encode(entry).unwrap().flags & 0xf, field);
    }
}
