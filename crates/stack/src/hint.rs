//! Unwind hints: annotations (`UNWIND_HINT_*` in the kernel's assembly) that replace the state
//! objtool tracks at one instruction (objtool's `read_unwind_hints`, the state part).
//!
//! Parsing the 12-byte records of `.discard.unwind_hints` and their per-kernel numbering is the
//! job of the special-section reader; this module takes a record's meaning ([`Hint`]) and says
//! what it does to the instruction ([`HintAction`]).

use orc_format::Reg as OrcReg;

use crate::state::{Base, CfiState, FrameType};
use orc_decode::Reg;

/// What a hint means, whatever the kernel's numbering of hint types.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HintType {
    /// 6.4+ `UNWIND_HINT_UNDEFINED`: no unwind information here, and stack operations are
    /// ignored until the next hint (6.5+ objtool).
    Undefined,
    /// 6.4+ `UNWIND_HINT_END_OF_STACK`: the bottom of the stack.
    EndOfStack,
    /// A call frame at `sp_reg + sp_offset`.
    Call,
    /// A full `pt_regs` at `sp_reg + sp_offset`.
    Regs,
    /// An iret frame at `sp_reg + sp_offset` (`REGS_IRET` before 5.10).
    RegsPartial,
    /// 5.12+ `UNWIND_HINT_FUNC`: the state at a callable function's entry.
    Func,
    /// Remember the state at this instruction ...
    Save,
    /// ... and take it back here (from the nearest preceding SAVE in the function).
    Restore,
    /// 5.19-6.3 `UNWIND_HINT_ENTRY`: an entry point for `--unret`; a CALL hint otherwise.
    Entry,
    /// 5.7-5.11 `UNWIND_HINT_RET_OFFSET`: the expected stack offset at a return.
    RetOffset,
    /// A type number no rule knows; objtool stores it in the state as is, and fails later,
    /// when making the ORC entry ("unknown unwind hint type").
    Other(u8),
}

/// One unwind hint record's meaning.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Hint {
    /// What kind of hint.
    pub hint_type: HintType,
    /// The CFA base, as an ORC register number (`ORC_REG_*`).
    pub sp_reg: OrcReg,
    /// The CFA offset.
    pub sp_offset: i16,
    /// The frame was interrupted (6.3+ records).
    pub signal: bool,
    /// The end of the stack (records before 6.4).
    pub end: bool,
}

/// What a hint does to its instruction.
// One value per hint record, moved straight into the instruction: boxing the state would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HintAction {
    /// The instruction's state is this one, whatever path reaches it, and merge checks are
    /// skipped there (objtool: `insn->hint`, `insn->cfi`).
    State(CfiState),
    /// The instruction is a SAVE point; it is *not* a hint instruction (a SAVE clears the hint
    /// flag even if another record on the same instruction set it).
    Save,
    /// The instruction is a hint whose state is the one of the nearest preceding SAVE
    /// instruction of its function, resolved by the walker when it gets there.
    Restore,
    /// 5.7-5.11: the expected stack offset at the return this hint annotates; no state.
    RetOffset(i16),
}

impl HintAction {
    /// Whether the instruction counts as hinted (objtool's `insn->hint`) after this record.
    pub fn is_hint(&self) -> bool {
        !matches!(self, HintAction::Save)
    }
}

/// A hint objtool rejects, failing the whole object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum HintError {
    /// The record's `sp_reg` is not a register objtool accepts as a CFA base.
    #[error("unsupported unwind_hint sp base reg {0}")]
    UnsupportedBaseReg(u8),
}

/// The CFA base a hint's ORC register stands for (objtool's `arch_decode_hint_reg`): the
/// bases ORC can express and objtool's state can hold.
pub fn hint_base(sp_reg: OrcReg) -> Result<Base, HintError> {
    Ok(match sp_reg {
        OrcReg::UNDEFINED => Base::UNDEFINED,
        OrcReg::SP => Base::SP,
        OrcReg::BP => Base::BP,
        OrcReg::SP_INDIRECT => Base::SP_INDIRECT,
        OrcReg::R10 => Base::reg(Reg::R10),
        OrcReg::R13 => Base::reg(Reg::R13),
        OrcReg::DI => Base::reg(Reg::DI),
        OrcReg::DX => Base::reg(Reg::DX),
        // Only v3+ax and v4 read a field as AX (objtool of those kernels accepts it).
        OrcReg::AX => Base::reg(Reg::AX),
        // objtool prints the record's number; the numbering matters only for named registers
        // it refuses (PREV_SP, BP_INDIRECT), which read the same before 7.1.
        other => return Err(HintError::UnsupportedBaseReg(other.unknown_field().unwrap_or(other.0))),
    })
}

/// Applies the hint records of one object, in section order.
///
/// Objtool builds each hint's state from a *running* state that every record (except
/// UNDEFINED, FUNC, SAVE and RESTORE) updates: only the CFA, type, signal and end bits are
/// set from the record, everything else carries over from the previous such record, or from
/// the state an earlier record gave the same instruction. Records therefore have to be applied
/// in order, through one `HintReader`.
#[derive(Clone, Debug)]
pub struct HintReader {
    carry: CfiState,
}

impl Default for HintReader {
    fn default() -> HintReader {
        HintReader::new()
    }
}

impl HintReader {
    /// A reader whose running state is [`CfiState::UNKNOWN`].
    pub fn new() -> HintReader {
        HintReader {
            carry: CfiState::UNKNOWN,
        }
    }

    /// What `hint` does to its instruction. `current` is the state an earlier record already
    /// gave the same instruction, if any.
    pub fn apply(
        &mut self,
        hint: &Hint,
        current: Option<&CfiState>,
    ) -> Result<HintAction, HintError> {
        let frame_type = match hint.hint_type {
            // Stack operations are ignored from here on (6.5+).
            HintType::Undefined => return Ok(HintAction::State(CfiState::FORCE_UNDEFINED)),
            HintType::Save => return Ok(HintAction::Save),
            HintType::Restore => return Ok(HintAction::Restore),
            // Code that behaves like a function's entry, e.g. a trampoline without a symbol.
            HintType::Func => return Ok(HintAction::State(CfiState::FUNCTION_ENTRY)),
            HintType::RetOffset => return Ok(HintAction::RetOffset(hint.sp_offset)),
            HintType::Call | HintType::Entry => FrameType::CALL,
            HintType::EndOfStack => FrameType::END_OF_STACK,
            HintType::Regs => FrameType::REGS,
            HintType::RegsPartial => FrameType::REGS_PARTIAL,
            HintType::Other(n) => FrameType(n),
        };
        if let Some(state) = current {
            self.carry = *state;
        }
        self.carry.cfa.base = hint_base(hint.sp_reg)?;
        self.carry.cfa.offset = i32::from(hint.sp_offset);
        self.carry.frame_type = frame_type;
        self.carry.signal = hint.signal;
        self.carry.end = hint.end;
        Ok(HintAction::State(self.carry))
    }
}
