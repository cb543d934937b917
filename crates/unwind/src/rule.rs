//! The unwind rules: what one ORC entry tells the unwinder to do, one enum variant per rule,
//! each documenting its arithmetic (the style of framehop's `UnwindRuleX86_64`).
//!
//! Registers: `sp`, `bp`, `ip` are the current frame's; `prev_sp` is the caller's stack
//! pointer (DWARF's CFA); `*(a)` is the 8-byte word at address `a` on a stack; `regs` is the
//! current `pt_regs` (see [`pt_regs`]), available only after a REGS/REGS_PARTIAL frame or
//! when the walk started from a `pt_regs`.

use orc_format::{Entry, EntryType, Reg};

use crate::unwinder::UnwindError;

/// Offsets in the x86-64 `struct pt_regs` (168 bytes, `arch/x86/include/asm/ptrace.h`), the
/// frame that entry code saves on an interrupt, exception or system call.
///
/// Layout, lowest address first: r15 r14 r13 r12 bp bx (callee-saved, 0-47), r11 r10 r9 r8 ax
/// cx dx si di (48-119), orig_ax (120), then the hardware iret frame: ip cs flags sp ss
/// (128-167). Only the offsets below are used by the unwinder.
pub mod pt_regs {
    /// `r13` (the DRAP register GCC may pick).
    pub const R13: u64 = 16;
    /// `bp`: where the caller's frame pointer is found after a REGS frame.
    pub const BP: u64 = 32;
    /// `r10` (GCC's usual DRAP register).
    pub const R10: u64 = 56;
    /// `ax` (Clang's DRAP register, 2026 kernels).
    pub const AX: u64 = 80;
    /// `dx` (entry code that keeps the old stack pointer in dx).
    pub const DX: u64 = 96;
    /// `di` (entry code that keeps the old stack pointer in di).
    pub const DI: u64 = 112;
    /// `ip`, first word of the hardware iret frame (`IRET_FRAME_OFFSET`).
    pub const IP: u64 = 128;
    /// `cs`: its low two bits are the privilege level; non-zero means user mode.
    pub const CS: u64 = 136;
    /// `sp` of the interrupted context.
    pub const SP: u64 = 152;
    /// Size of the whole structure.
    pub const SIZE: u64 = 168;
    /// Offset of the hardware iret frame (ip, cs, flags, sp, ss): the notional `pt_regs` of a
    /// REGS_PARTIAL frame starts this far below `prev_sp`.
    pub const IRET_FRAME_OFFSET: u64 = 128;
    /// Size of the hardware iret frame.
    pub const IRET_FRAME_SIZE: u64 = 40;
}

/// Which meaning `ORC_REG_SP_INDIRECT` has: it changed in 5.12 (87ccc826bf1c).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum SpIndirect {
    /// 5.12 and later: `prev_sp = *(sp) + sp_offset` (the stack-swizzle convention: the old
    /// stack pointer is saved at the top of the new stack).
    #[default]
    DerefThenAdd,
    /// 4.14 to 5.11: `prev_sp = *(sp + sp_offset)`.
    AddThenDeref,
}

/// A register of the current `pt_regs` that can hold the previous stack pointer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RegsField {
    /// `regs->dx` (ORC_REG_DX).
    Dx,
    /// `regs->di` (ORC_REG_DI).
    Di,
    /// `regs->r10` (ORC_REG_R10).
    R10,
    /// `regs->r13` (ORC_REG_R13).
    R13,
    /// `regs->ax` (ORC_REG_AX).
    Ax,
}

impl RegsField {
    /// Offset of the field in `struct pt_regs`.
    pub const fn offset(self) -> u64 {
        match self {
            RegsField::Dx => pt_regs::DX,
            RegsField::Di => pt_regs::DI,
            RegsField::R10 => pt_regs::R10,
            RegsField::R13 => pt_regs::R13,
            RegsField::Ax => pt_regs::AX,
        }
    }

    /// The ORC register number.
    pub const fn reg(self) -> Reg {
        match self {
            RegsField::Dx => Reg::DX,
            RegsField::Di => Reg::DI,
            RegsField::R10 => Reg::R10,
            RegsField::R13 => Reg::R13,
            RegsField::Ax => Reg::AX,
        }
    }
}

/// How the caller's stack pointer (`prev_sp`) is found: the entry's `sp_reg` and `sp_offset`.
/// All additions are checked; an overflow stops the walk with an error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SpRule {
    /// ORC_REG_SP: `prev_sp = sp + off`. The common case: no frame pointer.
    Sp(i16),
    /// ORC_REG_BP: `prev_sp = bp + off`. A frame-pointer frame (`off` is 16 after
    /// `push %rbp; mov %rsp,%rbp`).
    Bp(i16),
    /// ORC_REG_SP_INDIRECT, 5.12+: `prev_sp = *(sp) + off`.
    SpDerefThenAdd(i16),
    /// ORC_REG_SP_INDIRECT, before 5.12: `prev_sp = *(sp + off)`.
    SpAddThenDeref(i16),
    /// ORC_REG_BP_INDIRECT: `prev_sp = *(bp + off)`.
    BpAddThenDeref(i16),
    /// ORC_REG_DX/DI/R10/R13/AX: `prev_sp = regs->field`. The offset is ignored, as in the
    /// kernel. `regs` is the current `pt_regs` if it is full, else the full one kept from
    /// before a REGS_PARTIAL frame; without either, the walk stops with
    /// [`UnwindError::MissingRegs`].
    Regs(RegsField),
}

/// What kind of frame this is, which says where the caller's ip and sp are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FrameRule {
    /// ORC_TYPE_CALL: `ip = *(prev_sp - 8)` (the return address), `sp = prev_sp`; any
    /// `pt_regs` is forgotten.
    Call,
    /// ORC_TYPE_REGS: a full `pt_regs` starts at `prev_sp`: `ip = *(prev_sp + 128)`,
    /// `sp = *(prev_sp + 152)`, `regs = prev_sp` (full). All 168 bytes must be on one stack.
    Regs,
    /// ORC_TYPE_REGS_PARTIAL: only the 40-byte iret frame is at `prev_sp`:
    /// `ip = *(prev_sp)`, `sp = *(prev_sp + 24)`, `regs = prev_sp - 128` (partial; a full
    /// `regs` before it is kept as `prev_regs`). The 40 bytes must be on one stack.
    RegsPartial,
}

/// Where the caller's frame pointer is: the entry's `bp_reg` and `bp_offset`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BpRule {
    /// ORC_REG_UNDEFINED: this frame did not touch bp. `bp = regs->bp` (at `regs + 32`) if a
    /// full `pt_regs` (or a kept `prev_regs`) is known after this step, else `bp` unchanged.
    Unchanged,
    /// ORC_REG_PREV_SP: `bp = *(prev_sp + off)`.
    AtPrevSp(i16),
    /// ORC_REG_BP: `bp = *(bp + off)`, with the current (callee's) bp.
    AtBp(i16),
}

/// The whole rule for one frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct UnwindRule {
    /// How to find `prev_sp`.
    pub sp: SpRule,
    /// How to find the caller's ip and sp from `prev_sp`.
    pub frame: FrameRule,
    /// How to find the caller's bp.
    pub bp: BpRule,
    /// The caller's ip will be exact (look it up as is) rather than a return address (look
    /// up `ip - 1`). v2/v3: the entry's signal bit; v1: implied by REGS and REGS_PARTIAL.
    pub signal: bool,
}

/// What an entry says, before any memory is read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Decision {
    /// Unwind one frame with this rule.
    Unwind(UnwindRule),
    /// END_OF_STACK: the walk is complete (reliably).
    EndOfStack,
}

impl UnwindRule {
    /// The rule an entry stands for, or the error the kernel would report for it.
    ///
    /// `ip` is the address looked up, for the error. Checks in the kernel's order: the type
    /// (UNDEFINED is an error, END_OF_STACK the end), then `sp_reg`, then `bp_reg`.
    pub fn from_entry(entry: &Entry, ip: u64, sp_indirect: SpIndirect) -> Result<Decision, UnwindError> {
        let frame = match entry.kind {
            EntryType::Undefined => return Err(UnwindError::UndefinedEntry { ip }),
            EntryType::EndOfStack => return Ok(Decision::EndOfStack),
            EntryType::Call => FrameRule::Call,
            EntryType::Regs => FrameRule::Regs,
            EntryType::RegsPartial => FrameRule::RegsPartial,
            EntryType::Other(n) => return Err(UnwindError::UnknownType { ip, kind: n }),
        };
        let off = entry.sp_offset;
        let sp = match entry.sp_reg {
            Reg::SP => SpRule::Sp(off),
            Reg::BP => SpRule::Bp(off),
            Reg::SP_INDIRECT => match sp_indirect {
                SpIndirect::DerefThenAdd => SpRule::SpDerefThenAdd(off),
                SpIndirect::AddThenDeref => SpRule::SpAddThenDeref(off),
            },
            Reg::BP_INDIRECT => SpRule::BpAddThenDeref(off),
            Reg::DX => SpRule::Regs(RegsField::Dx),
            Reg::DI => SpRule::Regs(RegsField::Di),
            Reg::R10 => SpRule::Regs(RegsField::R10),
            Reg::R13 => SpRule::Regs(RegsField::R13),
            Reg::AX => SpRule::Regs(RegsField::Ax),
            reg => return Err(UnwindError::UnknownSpReg { ip, reg }),
        };
        let bp = match entry.bp_reg {
            Reg::UNDEFINED => BpRule::Unchanged,
            Reg::PREV_SP => BpRule::AtPrevSp(entry.bp_offset),
            Reg::BP => BpRule::AtBp(entry.bp_offset),
            reg => return Err(UnwindError::UnknownBpReg { ip, reg }),
        };
        Ok(Decision::Unwind(UnwindRule { sp, frame, bp, signal: entry.signal }))
    }
}
