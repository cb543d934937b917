//! From a CFI state to the ORC entry that describes it (objtool's `init_orc_entry`).

use orc_decode::Reg;
use orc_format::{Entry, EntryType, Layout, Reg as OrcReg};

use crate::state::{Base, CfiState, FrameType};

/// A state objtool cannot express as an ORC entry; it fails the whole object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum OrcError {
    /// A hint put a type number in the state that ORC has no type for.
    #[error("unknown unwind hint type {0}")]
    UnknownHintType(u8),
    /// The CFA is based on something ORC cannot name (objtool's base number).
    #[error("unknown CFA base reg {0}")]
    UnknownCfaBase(i32),
    /// The caller's `%rbp` was saved relative to something other than the CFA or `%rbp`.
    #[error("unknown BP base reg {0}")]
    UnknownBpBase(i32),
    /// An offset does not fit ORC's 16 bits ([`orc_entry_exact`] only).
    #[error("{what} offset {offset} does not fit ORC's 16 bits")]
    OffsetRange {
        /// `sp` (the CFA) or `bp`.
        what: &'static str,
        /// The offset.
        offset: i32,
    },
}

/// The ORC register for a CFA base, if `layout` can name it (`%rax`, Clang's DRAP register, only
/// from the layouts that added `ORC_REG_AX`; objtool before them fails with base 0, `CFI_AX`).
fn sp_reg(base: Base, layout: Layout) -> Result<OrcReg, OrcError> {
    Ok(match base {
        Base::SP => OrcReg::SP,
        Base::SP_INDIRECT => OrcReg::SP_INDIRECT,
        Base::BP => OrcReg::BP,
        Base::BP_INDIRECT => OrcReg::BP_INDIRECT,
        b if b == Reg::R10 => OrcReg::R10,
        b if b == Reg::R13 => OrcReg::R13,
        b if b == Reg::DI => OrcReg::DI,
        b if b == Reg::DX => OrcReg::DX,
        b if b == Reg::AX && layout.has_reg(OrcReg::AX) => OrcReg::AX,
        b => return Err(OrcError::UnknownCfaBase(b.number())),
    })
}

/// The ORC register for where the caller's `%rbp` is: not saved, CFA-relative (`prevsp`), or
/// `%rbp`-relative (a realigned frame).
fn bp_reg(base: Base) -> Result<OrcReg, OrcError> {
    Ok(match base {
        Base::UNDEFINED => OrcReg::UNDEFINED,
        Base::CFA => OrcReg::PREV_SP,
        Base::BP => OrcReg::BP,
        b => return Err(OrcError::UnknownBpBase(b.number())),
    })
}

/// The ORC entry for an instruction whose state is `cfi` (`None`: an instruction no path
/// reached, or an ignored function), as the objtool of `layout`'s kernels makes it.
///
/// - [`Layout::V3`], [`Layout::V3Ax`], [`Layout::V4`] (objtool 6.4+): UNDEFINED and END_OF_STACK types give the bare entry of
///   that type; CALL, REGS and REGS_PARTIAL map the CFA to `sp_reg`/`sp_offset` and the saved
///   `%rbp` to `bp_reg`/`bp_offset`, with the signal bit. An undefined CFA in a CALL frame
///   (a lost frame in a function) is an error there.
/// - [`Layout::V2`] (6.3) and [`Layout::V1`] (up to 6.2): an undefined CFA gives the
///   UNDEFINED entry, or END_OF_STACK if the state has the end bit (a pre-6.4 "empty" hint);
///   the signal bit exists only in 6.3 and is implied by the type before. (The end bit of a
///   state with a defined CFA has no place in the normalised entry and is dropped.)
///
/// The entry is in the vocabulary shared by all layouts ([`Entry`]); `layout` decides the rules
/// above and which registers exist (a `%rax`-based CFA needs v3+ax or v4).
///
/// Offsets are truncated to 16 bits, as objtool's assignment to the bitfield does.
pub fn orc_entry(cfi: Option<&CfiState>, layout: Layout) -> Result<Entry, OrcError> {
    let Some(cfi) = cfi else {
        return Ok(Entry::UNDEFINED);
    };
    let typed = layout.has_typed_undefined();
    let kind = match cfi.frame_type {
        FrameType::CALL => EntryType::Call,
        // Before 6.4 type 0 was CALL, and the unknown state objtool starts with has type 0.
        FrameType::UNDEFINED if !typed => EntryType::Call,
        FrameType::REGS => EntryType::Regs,
        FrameType::REGS_PARTIAL => EntryType::RegsPartial,
        FrameType::UNDEFINED if typed => return Ok(Entry::UNDEFINED),
        FrameType::END_OF_STACK if typed => return Ok(Entry::END_OF_STACK),
        FrameType(n) if typed => return Err(OrcError::UnknownHintType(n)),
        FrameType(n) => EntryType::Other(n),
    };
    let signal = match layout {
        Layout::V1 => kind.implies_signal(),
        Layout::V2 | Layout::V3 | Layout::V3Ax | Layout::V4 => cfi.signal,
    };
    if !typed && cfi.cfa.base == Base::UNDEFINED {
        let kind = if cfi.end {
            EntryType::EndOfStack
        } else {
            EntryType::Undefined
        };
        let signal = if layout == Layout::V2 {
            cfi.signal
        } else {
            false
        };
        return Ok(Entry {
            kind,
            signal,
            ..Entry::UNDEFINED
        });
    }
    let bp = cfi.reg(Reg::BP);
    Ok(Entry {
        kind,
        sp_reg: sp_reg(cfi.cfa.base, layout)?,
        sp_offset: cfi.cfa.offset as i16,
        bp_reg: bp_reg(bp.base)?,
        bp_offset: bp.offset as i16,
        signal,
    })
}

/// [`orc_entry`] without objtool's truncation: a state whose CFA or saved-`%rbp` offset does
/// not fit in 16 bits is an error, not an entry with the offset's low bits. The kernel's tables
/// must be objtool's, truncation included (kernel stack frames never get there); a user-space
/// function can have a 64 KiB frame (python3.11 has one), and a truncated entry would send the
/// unwinder to a wrong return address where no entry would stop it honestly.
pub fn orc_entry_exact(cfi: Option<&CfiState>, layout: Layout) -> Result<Entry, OrcError> {
    if let Some(cfi) = cfi {
        let fits = |o: i32| i16::try_from(o).is_ok();
        if cfi.cfa.base != Base::UNDEFINED && !fits(cfi.cfa.offset) {
            return Err(OrcError::OffsetRange { what: "sp", offset: cfi.cfa.offset });
        }
        let bp = cfi.reg(Reg::BP);
        if bp.base != Base::UNDEFINED && !fits(bp.offset) {
            return Err(OrcError::OffsetRange { what: "bp", offset: bp.offset });
        }
    }
    orc_entry(cfi, layout)
}

impl CfiState {
    /// The ORC entry objtool 6.4+ makes for this state ([`orc_entry`] with [`Layout::V3`]).
    pub fn orc_entry(&self) -> Result<Entry, OrcError> {
        orc_entry(Some(self), Layout::V3)
    }
}
