//! `.discard.unwind_hints`: `UNWIND_HINT*` annotations. Each record replaces the stack state
//! objtool tracks at one instruction.
//!
//! Records are 12 bytes (`struct unwind_hint`, `.balign 4`) in every era:
//!
//! | bytes | 4.14–6.2 | 6.3 | 6.4+ |
//! |---|---|---|---|
//! | 0–3 | ip: PC32 relocation to the instruction | same | same |
//! | 4–5 | s16 sp_offset | same | same |
//! | 6 | u8 sp_reg (`ORC_REG_*`) | same | same |
//! | 7 | u8 type | same | same |
//! | 8 | u8 end | u8 signal | u8 signal |
//! | 9 | padding | u8 end | padding |
//!
//! What `type` means changed several times ([`HintTypes`]); [`HintKind`] is the one
//! vocabulary for all eras. Before 6.4 an "empty" hint (`UNWIND_HINT_EMPTY`: the end of the
//! stack, or unknown) was a CALL hint with `sp_reg` UNDEFINED and `end` set; 6.4 split it into
//! the END_OF_STACK and UNDEFINED types ([`UnwindHint::normalized`]).

use orc_elf::ElfFile;
use orc_format::Reg;

use crate::era::KernelEra;
use crate::error::SpecialSectionError;
use crate::special::annotations::SiteRule;
use crate::special::reloc::{Location, RelocTarget, Table};

/// The section name.
pub const SECTION: &str = ".discard.unwind_hints";
/// Bytes per record (`sizeof(struct unwind_hint)`).
pub const ENTRY_SIZE: usize = 12;

/// What bytes 8 and 9 of a record hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HintLayout {
    /// 4.14–6.2: byte 8 is `end`.
    End,
    /// 6.3: byte 8 is `signal`, byte 9 is `end`.
    SignalEnd,
    /// 6.4+: byte 8 is `signal`.
    Signal,
}

/// A hint's meaning, whatever the era's numbering.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HintKind {
    /// 6.4+ `UNWIND_HINT_UNDEFINED` (6.5+ objtool: later stack operations are ignored).
    Undefined,
    /// 6.4+ `UNWIND_HINT_END_OF_STACK`.
    EndOfStack,
    /// `sp_reg + sp_offset` is the caller's SP before its call.
    Call,
    /// A full `pt_regs` at `sp_reg + sp_offset`.
    Regs,
    /// Only the IRET frame at `sp_reg + sp_offset` (called `REGS_IRET` before 5.10).
    RegsPartial,
    /// 5.12+: the state at a callable function's entry.
    Func,
    /// 5.19–6.3: an entry point for `--unret` validation; otherwise a CALL hint.
    Entry,
    /// Save the state here ...
    Save,
    /// ... and restore it here.
    Restore,
    /// 5.7–5.11: `sp_offset` is the expected offset at a return.
    RetOffset,
    /// A number this era does not define.
    Unknown,
}

/// The numbering of hint types in one span of kernels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HintTypes {
    /// 4.14–5.6: CALL 0, REGS 1, REGS_IRET 2, SAVE 3, RESTORE 4.
    V4_14,
    /// 5.7: as 4.14 plus RET_OFFSET 5.
    V5_7,
    /// 5.8–5.11: CALL 0, REGS 1, REGS_PARTIAL 2, RET_OFFSET 3 (SAVE/RESTORE removed).
    V5_8,
    /// 5.12–5.18: CALL 0, REGS 1, REGS_PARTIAL 2, FUNC 3.
    V5_12,
    /// 5.19–6.3: CALL 0, REGS 1, REGS_PARTIAL 2, FUNC 3, ENTRY 4, SAVE 5, RESTORE 6.
    V5_19,
    /// 6.4+: UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, REGS_PARTIAL 4, FUNC 5, SAVE 6,
    /// RESTORE 7 (the CALL/REGS/REGS_PARTIAL numbers equal the ORC v3 types).
    V6_4,
}

impl HintTypes {
    /// The meaning of type number `raw`.
    pub const fn kind(self, raw: u8) -> HintKind {
        use HintKind::*;
        let table: &[HintKind] = match self {
            HintTypes::V4_14 => &[Call, Regs, RegsPartial, Save, Restore],
            HintTypes::V5_7 => &[Call, Regs, RegsPartial, Save, Restore, RetOffset],
            HintTypes::V5_8 => &[Call, Regs, RegsPartial, RetOffset],
            HintTypes::V5_12 => &[Call, Regs, RegsPartial, Func],
            HintTypes::V5_19 => &[Call, Regs, RegsPartial, Func, Entry, Save, Restore],
            HintTypes::V6_4 => &[Undefined, EndOfStack, Call, Regs, RegsPartial, Func, Save, Restore],
        };
        if (raw as usize) < table.len() {
            table[raw as usize]
        } else {
            Unknown
        }
    }

    /// The number of `kind` in this numbering, if it has one.
    pub fn number(self, kind: HintKind) -> Option<u8> {
        (0..=u8::MAX).find(|&n| self.kind(n) == kind && kind != HintKind::Unknown)
    }
}

/// The CFA base objtool derives from a hint's `sp_reg` (its `arch_decode_hint_reg`). Other
/// registers (PREV_SP, BP_INDIRECT, ...) make objtool fail with "unsupported unwind_hint sp
/// base reg", for the hint types that use the register.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HintBase {
    /// `ORC_REG_UNDEFINED`.
    Undefined,
    /// `ORC_REG_SP`.
    Sp,
    /// `ORC_REG_BP`.
    Bp,
    /// `ORC_REG_SP_INDIRECT`.
    SpIndirect,
    /// `ORC_REG_R10`.
    R10,
    /// `ORC_REG_R13`.
    R13,
    /// `ORC_REG_DI`.
    Di,
    /// `ORC_REG_DX`.
    Dx,
}

impl HintBase {
    /// objtool's mapping (6.1 and 6.12 agree).
    pub const fn from_reg(reg: Reg) -> Option<HintBase> {
        Some(match reg {
            Reg::UNDEFINED => HintBase::Undefined,
            Reg::SP => HintBase::Sp,
            Reg::BP => HintBase::Bp,
            Reg::SP_INDIRECT => HintBase::SpIndirect,
            Reg::R10 => HintBase::R10,
            Reg::R13 => HintBase::R13,
            Reg::DI => HintBase::Di,
            Reg::DX => HintBase::Dx,
            _ => return None,
        })
    }
}

/// One unwind hint.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UnwindHint<'data> {
    /// Record index.
    pub index: usize,
    /// The hinted instruction.
    pub site: Location,
    /// The `ip` relocation, as found.
    pub reloc: RelocTarget<'data>,
    /// `sp_offset`.
    pub sp_offset: i16,
    /// `sp_reg`, an `ORC_REG_*` number.
    pub sp_reg: Reg,
    /// The `type` byte as stored.
    pub raw_type: u8,
    /// Its meaning in the era read with.
    pub kind: HintKind,
    /// `signal` (6.3+); `None` in eras without the byte (there, REGS and REGS_PARTIAL imply a
    /// signal frame).
    pub signal: Option<bool>,
    /// `end` (before 6.4); `None` from 6.4 on.
    pub end: Option<bool>,
}

impl UnwindHint<'_> {
    /// The CFA base objtool uses for `sp_reg`, if it accepts the register.
    pub const fn base(&self) -> Option<HintBase> {
        HintBase::from_reg(self.sp_reg)
    }

    /// The kind in 6.4+ terms: before 6.4, a CALL/REGS/REGS_PARTIAL hint with `sp_reg`
    /// UNDEFINED is END_OF_STACK when `end` is set and UNDEFINED otherwise (which is what the
    /// unwinder makes of the ORC entry it becomes).
    pub const fn normalized(&self) -> HintKind {
        match (self.kind, self.end) {
            (HintKind::Call | HintKind::Regs | HintKind::RegsPartial | HintKind::Entry, Some(end))
                if self.sp_reg.0 == Reg::UNDEFINED.0 =>
            {
                if end {
                    HintKind::EndOfStack
                } else {
                    HintKind::Undefined
                }
            }
            (kind, _) => kind,
        }
    }
}

/// Reads `.discard.unwind_hints` with `layout`, `types`, the register numbering of the ORC
/// layout `regs` (a hint's `sp_reg` is an `ORC_REG_*` number, renumbered in 7.1) and the site
/// `rule`; an empty list if
/// the file has none. Fails like objtool when there is no relocation section ("missing
/// .rela.discard.unwind_hints section"), the size is not a multiple of 12, a record has no
/// relocation, or (6.12) the relocation's symbol is neither a section symbol nor a `.L`
/// label.
pub fn read_unwind_hints<'data>(
    file: &ElfFile<'data>,
    layout: HintLayout,
    types: HintTypes,
    regs: orc_format::Layout,
    rule: SiteRule,
) -> Result<Vec<UnwindHint<'data>>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    if table.rela.is_none() {
        return Err(table.error(None, crate::error::Problem::NoRelocations));
    }
    let count = table.entries(ENTRY_SIZE)?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * ENTRY_SIZE;
        let reloc = table.field_target(i, base, "ip")?;
        let site = rule.apply(&table, crate::error::At::Entry(i), &reloc)?;
        let raw_type = table.u8_at(base + 7);
        let (signal, end) = match layout {
            HintLayout::End => (None, Some(table.u8_at(base + 8) != 0)),
            HintLayout::SignalEnd => (Some(table.u8_at(base + 8) != 0), Some(table.u8_at(base + 9) != 0)),
            HintLayout::Signal => (Some(table.u8_at(base + 8) != 0), None),
        };
        out.push(UnwindHint {
            index: i,
            site,
            reloc,
            sp_offset: table.u16_at(base + 4) as i16,
            sp_reg: regs.reg(table.u8_at(base + 6)),
            raw_type,
            kind: types.kind(raw_type),
            signal,
            end,
        });
    }
    Ok(out)
}

/// Reads `.discard.unwind_hints` as objtool of `era` does.
pub fn read_unwind_hints_for<'data>(
    file: &ElfFile<'data>,
    era: KernelEra,
) -> Result<Vec<UnwindHint<'data>>, SpecialSectionError> {
    read_unwind_hints(file, era.hint_layout(), era.hint_types(), era.orc_layout(), era.hint_site_rule())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering() {
        assert_eq!(HintTypes::V6_4.kind(0), HintKind::Undefined);
        assert_eq!(HintTypes::V6_4.kind(2), HintKind::Call);
        assert_eq!(HintTypes::V6_4.kind(7), HintKind::Restore);
        assert_eq!(HintTypes::V6_4.kind(8), HintKind::Unknown);
        assert_eq!(HintTypes::V5_19.kind(0), HintKind::Call);
        assert_eq!(HintTypes::V5_19.kind(4), HintKind::Entry);
        assert_eq!(HintTypes::V5_19.kind(6), HintKind::Restore);
        assert_eq!(HintTypes::V4_14.kind(3), HintKind::Save);
        assert_eq!(HintTypes::V5_8.kind(3), HintKind::RetOffset);
        assert_eq!(HintTypes::V5_12.kind(3), HintKind::Func);
        assert_eq!(HintTypes::V6_4.number(HintKind::Func), Some(5));
        assert_eq!(HintTypes::V5_19.number(HintKind::Func), Some(3));
        assert_eq!(HintTypes::V5_12.number(HintKind::Save), None);
        assert_eq!(HintTypes::V6_4.number(HintKind::Unknown), None);
    }

    #[test]
    fn bases() {
        assert_eq!(HintBase::from_reg(Reg::SP), Some(HintBase::Sp));
        assert_eq!(HintBase::from_reg(Reg::DX), Some(HintBase::Dx));
        assert_eq!(HintBase::from_reg(Reg::PREV_SP), None);
        assert_eq!(HintBase::from_reg(Reg::BP_INDIRECT), None);
        assert_eq!(HintBase::from_reg(Reg::AX), None);
    }
}
