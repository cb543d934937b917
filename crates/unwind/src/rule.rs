//! The unwind rules: what one ORC entry tells the unwinder to do, one enum variant per rule,
//! each documenting its arithmetic (the style of framehop's `UnwindRuleX86_64`).
//!
//! Registers: `sp`, `bp`, `ip` are the current frame's; `prev_sp` is the caller's stack
//! pointer (DWARF's CFA); `*(a)` is the 8-byte word at address `a` on a stack; `regs` is the
//! current `pt_regs` (see [`pt_regs`]), available only after a REGS/REGS_PARTIAL frame or
//! when the walk started from a `pt_regs`.

use orc_format::{Entry, EntryType, Layout, RawEntry, Reg};

/// Why an entry gives no rule (the unwinder adds the address and reports an
/// [`crate::UnwindError`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RuleError {
    /// Type UNDEFINED.
    Undefined,
    /// A type number no kernel defines (v3 numbering).
    UnknownType(u8),
    /// An `sp_reg` that gives no previous stack pointer.
    UnknownSpReg(Reg),
    /// A `bp_reg` other than UNDEFINED, PREV_SP and BP.
    UnknownBpReg(Reg),
}

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

/// Offsets in the x86-64 `struct sigcontext` (the `uc_mcontext` of the `ucontext` the kernel
/// pushes when it delivers a signal to a user-space handler, `arch/x86/include/uapi/asm/sigcontext.h`).
///
/// Layout, lowest address first: r8-r15 (0-63), di si bp bx dx ax cx sp ip (64-135), then
/// flags, segment words, err, trapno, oldmask, cr2, fpstate and reserved words (256 bytes in
/// all). When the handler returns into the signal trampoline (`__restore_rt`), the stack
/// pointer is the address of the `ucontext`, whose `uc_mcontext` is 40 bytes in
/// ([`sigcontext::IN_UCONTEXT`]).
pub mod sigcontext {
    /// `r10`.
    pub const R10: u64 = 16;
    /// `r13`.
    pub const R13: u64 = 40;
    /// `di`.
    pub const DI: u64 = 64;
    /// `bp`.
    pub const BP: u64 = 80;
    /// `dx`.
    pub const DX: u64 = 96;
    /// `ax`.
    pub const AX: u64 = 104;
    /// `sp` of the interrupted context.
    pub const SP: u64 = 120;
    /// `ip` of the interrupted instruction.
    pub const IP: u64 = 128;
    /// The words the unwinder may read: through `ip`.
    pub const SIZE: u64 = 136;
    /// Offset of `uc_mcontext` in `struct ucontext` (flags, link, the 24-byte `stack_t`).
    pub const IN_UCONTEXT: i16 = 40;
}

/// What a REGS frame points at: the kernel's `pt_regs`, or, in user space, the `sigcontext`
/// of a signal frame. An ORC entry of type REGS says "the caller's registers are saved in a
/// block at prev_sp"; only the block's layout differs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum RegsLayout {
    /// `struct pt_regs` (kernel entry code, interrupts, exceptions).
    #[default]
    PtRegs,
    /// `struct sigcontext` (a user-space signal frame; REGS_PARTIAL has no meaning here and
    /// keeps the kernel's).
    SigContext,
}

impl RegsLayout {
    /// Offset of the saved ip.
    pub const fn ip(self) -> u64 {
        match self {
            RegsLayout::PtRegs => pt_regs::IP,
            RegsLayout::SigContext => sigcontext::IP,
        }
    }

    /// Offset of the saved sp.
    pub const fn sp(self) -> u64 {
        match self {
            RegsLayout::PtRegs => pt_regs::SP,
            RegsLayout::SigContext => sigcontext::SP,
        }
    }

    /// Offset of the saved bp.
    pub const fn bp(self) -> u64 {
        match self {
            RegsLayout::PtRegs => pt_regs::BP,
            RegsLayout::SigContext => sigcontext::BP,
        }
    }

    /// Bytes that must lie on the stack for a REGS frame.
    pub const fn size(self) -> u64 {
        match self {
            RegsLayout::PtRegs => pt_regs::SIZE,
            RegsLayout::SigContext => sigcontext::SIZE,
        }
    }

    /// Offset of a register that can hold the previous stack pointer.
    pub const fn field(self, field: RegsField) -> u64 {
        match self {
            RegsLayout::PtRegs => field.offset(),
            RegsLayout::SigContext => match field {
                RegsField::Dx => sigcontext::DX,
                RegsField::Di => sigcontext::DI,
                RegsField::R10 => sigcontext::R10,
                RegsField::R13 => sigcontext::R13,
                RegsField::Ax => sigcontext::AX,
            },
        }
    }
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
    /// [`crate::UnwindError::MissingRegs`].
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
    /// The rule an entry stands for, or why the kernel would stop with an error.
    ///
    /// Checks in the kernel's order: the type (UNDEFINED is an error, END_OF_STACK the end),
    /// then `sp_reg`, then `bp_reg`.
    ///
    /// This is the definition; [`UnwindRule::from_raw`] is the same function, precomputed.
    #[inline(always)]
    pub const fn from_entry(entry: &Entry, sp_indirect: SpIndirect) -> Result<Decision, RuleError> {
        let frame = match entry.kind {
            EntryType::Undefined => return Err(RuleError::Undefined),
            EntryType::EndOfStack => return Ok(Decision::EndOfStack),
            EntryType::Call => FrameRule::Call,
            EntryType::Regs => FrameRule::Regs,
            EntryType::RegsPartial => FrameRule::RegsPartial,
            EntryType::Other(n) => return Err(RuleError::UnknownType(n)),
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
            reg => return Err(RuleError::UnknownSpReg(reg)),
        };
        let bp = match entry.bp_reg {
            Reg::UNDEFINED => BpRule::Unchanged,
            Reg::PREV_SP => BpRule::AtPrevSp(entry.bp_offset),
            Reg::BP => BpRule::AtBp(entry.bp_offset),
            reg => return Err(RuleError::UnknownBpReg(reg)),
        };
        Ok(Decision::Unwind(UnwindRule { sp, frame, bp, signal: entry.signal }))
    }
}

impl UnwindRule {
    /// [`UnwindRule::from_entry`] of `layout.decode(raw)`, through a table computed at compile
    /// time from those two functions: one load instead of a decode and a dozen branches.
    ///
    /// The decision depends only on the 12 low flag bits (the top 4 are unused in every
    /// layout); the offsets are taken from `raw` as they are. A test checks all 5 x 65536
    /// flag values against the definition.
    #[inline(always)]
    pub fn from_raw(layout: Layout, raw: RawEntry, sp_indirect: SpIndirect) -> Result<Decision, RuleError> {
        let shape = rule_shape(layout, raw);
        match shape & 0xf {
            CLASS_UNWIND => {}
            CLASS_END => return Ok(Decision::EndOfStack),
            _ => return Self::from_entry(&layout.decode(raw), sp_indirect),
        }
        let off = raw.sp_offset;
        let sp = match (shape >> 4) & 0xf {
            0 => SpRule::Sp(off),
            1 => SpRule::Bp(off),
            2 => match sp_indirect {
                SpIndirect::DerefThenAdd => SpRule::SpDerefThenAdd(off),
                SpIndirect::AddThenDeref => SpRule::SpAddThenDeref(off),
            },
            3 => SpRule::BpAddThenDeref(off),
            4 => SpRule::Regs(RegsField::Dx),
            5 => SpRule::Regs(RegsField::Di),
            6 => SpRule::Regs(RegsField::R10),
            7 => SpRule::Regs(RegsField::R13),
            _ => SpRule::Regs(RegsField::Ax),
        };
        let frame = match (shape >> 8) & 3 {
            0 => FrameRule::Call,
            1 => FrameRule::Regs,
            _ => FrameRule::RegsPartial,
        };
        let bp = match (shape >> 10) & 3 {
            0 => BpRule::Unchanged,
            1 => BpRule::AtPrevSp(raw.bp_offset),
            _ => BpRule::AtBp(raw.bp_offset),
        };
        Ok(Decision::Unwind(UnwindRule { sp, frame, bp, signal: shape & (1 << 12) != 0 }))
    }
}

/// The precomputed shape of `UnwindRule::from_entry(layout.decode(raw))` (see `SHAPES`).
#[inline(always)]
pub(crate) fn rule_shape(layout: Layout, raw: RawEntry) -> u16 {
    SHAPES[layout as usize][(raw.flags & 0xfff) as usize]
}

/// An entry, its layout and the fast-path summary of its rule in one word, which is what the
/// unwinder asks an [`crate::OrcLookup`] for and what [`crate::CachedLookup`] stores.
///
/// Bits 0-15 `sp_offset`, 16-31 `bp_offset`, 32-47 flags, 48-50 layout (its index in
/// [`Layout::ALL`]), 51 "not on the fast path", 52 "prev_sp from bp", 53 "bp saved at prev_sp",
/// 54 signal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PackedEntry(pub u64);

/// Set in a [`PackedEntry`] whose rule is not a fast-path one.
pub(crate) const PACKED_SLOW: u64 = 1 << 51;
/// In a fast-path [`PackedEntry`]: `prev_sp = bp + sp_offset` (else `sp + sp_offset`).
pub(crate) const PACKED_SP_IS_BP: u64 = 1 << 52;
/// In a fast-path [`PackedEntry`]: `bp = *(prev_sp + bp_offset)` (else unchanged).
pub(crate) const PACKED_BP_AT_PREV_SP: u64 = 1 << 53;
/// In a [`PackedEntry`]: the rule's signal flag.
pub(crate) const PACKED_SIGNAL: u64 = 1 << 54;

impl PackedEntry {
    /// Packs `raw` of `layout`, with its rule summary.
    #[inline(always)]
    pub fn new(raw: RawEntry, layout: Layout) -> PackedEntry {
        let shape = rule_shape(layout, raw);
        let mut w = u64::from(raw.sp_offset as u16)
            | u64::from(raw.bp_offset as u16) << 16
            | u64::from(raw.flags) << 32
            | (layout as u64) << 48;
        if shape & FAST_MASK != 0 {
            w |= PACKED_SLOW;
        }
        if shape & SHAPE_SP_IS_BP != 0 {
            w |= PACKED_SP_IS_BP;
        }
        if shape & SHAPE_BP_AT_PREV_SP != 0 {
            w |= PACKED_BP_AT_PREV_SP;
        }
        if shape & SHAPE_SIGNAL != 0 {
            w |= PACKED_SIGNAL;
        }
        PackedEntry(w)
    }

    /// The stored entry.
    #[inline(always)]
    pub fn raw(self) -> RawEntry {
        RawEntry { sp_offset: self.0 as u16 as i16, bp_offset: (self.0 >> 16) as u16 as i16, flags: (self.0 >> 32) as u16 }
    }

    /// Its layout.
    #[inline(always)]
    pub fn layout(self) -> Layout {
        let index = ((self.0 >> 48) & 7) as usize;
        Layout::ALL[index.min(Layout::ALL.len() - 1)]
    }
}

/// Shape bits that must all be clear for the unwinder's fast path: class UNWIND, sp rule Sp
/// or Bp (code 0 or 1), frame CALL, bp rule Unchanged or AtPrevSp (code 0 or 1).
pub(crate) const FAST_MASK: u16 = 0xf | 0xe << 4 | 3 << 8 | 2 << 10;
/// In a fast-path shape: the sp rule is Bp (else Sp).
pub(crate) const SHAPE_SP_IS_BP: u16 = 1 << 4;
/// In a fast-path shape: the bp rule is AtPrevSp (else Unchanged).
pub(crate) const SHAPE_BP_AT_PREV_SP: u16 = 1 << 10;
/// The rule's signal flag.
pub(crate) const SHAPE_SIGNAL: u16 = 1 << 12;

const CLASS_UNWIND: u16 = 0;
const CLASS_END: u16 = 1;
const CLASS_ERROR: u16 = 2;

/// The shape of the decision for every (layout, 12 flag bits): class in bits 0-3, sp rule in
/// 4-7, frame rule in 8-9, bp rule in 10-11, signal in 12. 40 KiB; a walk touches a few lines.
/// Indexed by `layout as usize`, the order of [`Layout::ALL`].
static SHAPES: [[u16; 4096]; 5] =
    [shapes(Layout::ALL[0]), shapes(Layout::ALL[1]), shapes(Layout::ALL[2]), shapes(Layout::ALL[3]), shapes(Layout::ALL[4])];

const fn shapes(layout: Layout) -> [u16; 4096] {
    let mut out = [0u16; 4096];
    let mut flags = 0usize;
    while flags < 4096 {
        let raw = RawEntry { sp_offset: 0, bp_offset: 0, flags: flags as u16 };
        let entry = layout.decode(raw);
        out[flags] = match UnwindRule::from_entry(&entry, SpIndirect::DerefThenAdd) {
            Err(_) => CLASS_ERROR,
            Ok(Decision::EndOfStack) => CLASS_END,
            Ok(Decision::Unwind(rule)) => {
                let sp: u16 = match rule.sp {
                    SpRule::Sp(_) => 0,
                    SpRule::Bp(_) => 1,
                    SpRule::SpDerefThenAdd(_) | SpRule::SpAddThenDeref(_) => 2,
                    SpRule::BpAddThenDeref(_) => 3,
                    SpRule::Regs(RegsField::Dx) => 4,
                    SpRule::Regs(RegsField::Di) => 5,
                    SpRule::Regs(RegsField::R10) => 6,
                    SpRule::Regs(RegsField::R13) => 7,
                    SpRule::Regs(RegsField::Ax) => 8,
                };
                let frame: u16 = match rule.frame {
                    FrameRule::Call => 0,
                    FrameRule::Regs => 1,
                    FrameRule::RegsPartial => 2,
                };
                let bp: u16 = match rule.bp {
                    BpRule::Unchanged => 0,
                    BpRule::AtPrevSp(_) => 1,
                    BpRule::AtBp(_) => 2,
                };
                CLASS_UNWIND | sp << 4 | frame << 8 | bp << 10 | (rule.signal as u16) << 12
            }
        };
        flags += 1;
    }
    out
}
