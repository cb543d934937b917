//! The merge check: when a path reaches an instruction another path already visited, its state
//! must agree with the one stored there (objtool's `insn_cfi_match`).

use core::fmt;

use orc_decode::Reg;

use crate::state::{Base, CfiReg, CfiState, FrameType};

/// The first difference between the state stored at an instruction and the state a new path
/// brings, in the order objtool checks them. Rendered exactly as objtool's warning, e.g.
/// `stack state mismatch: cfa1=4+16 cfa2=5+8`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mismatch {
    /// Different CFA.
    Cfa {
        /// The stored state's CFA.
        stored: CfiReg,
        /// The arriving state's CFA.
        current: CfiReg,
    },
    /// Same CFA, but the first register (lowest number) saved in different places.
    Reg {
        /// The register.
        reg: Reg,
        /// Where the stored state has it.
        stored: CfiReg,
        /// Where the arriving state has it.
        current: CfiReg,
    },
    /// Same CFA and registers, different frame type.
    Type {
        /// The stored state's type.
        stored: FrameType,
        /// The arriving state's type.
        current: FrameType,
    },
    /// Same CFA, registers and type, different DRAP state (the register and save slot only
    /// count while DRAP is active).
    Drap {
        /// The stored state's `(drap, drap_reg, drap_offset)`.
        stored: (bool, Base, i32),
        /// The arriving state's.
        current: (bool, Base, i32),
    },
}

/// Compares the state `stored` at an instruction with the state `current` of a path arriving
/// there. `None` when objtool considers them compatible: equal CFA, saved registers, type and
/// DRAP state (the stack size, known values, signal and the other flags may differ; the stored
/// state then stands).
pub fn mismatch(stored: &CfiState, current: &CfiState) -> Option<Mismatch> {
    if stored.cfa != current.cfa {
        return Some(Mismatch::Cfa {
            stored: stored.cfa,
            current: current.cfa,
        });
    }
    if let Some(reg) = Reg::all().find(|&r| stored.reg(r) != current.reg(r)) {
        return Some(Mismatch::Reg {
            reg,
            stored: stored.reg(reg),
            current: current.reg(reg),
        });
    }
    if stored.frame_type != current.frame_type {
        return Some(Mismatch::Type {
            stored: stored.frame_type,
            current: current.frame_type,
        });
    }
    if stored.drap != current.drap
        || (stored.drap && stored.drap_reg != current.drap_reg)
        || (stored.drap && stored.drap_offset != current.drap_offset)
    {
        return Some(Mismatch::Drap {
            stored: (stored.drap, stored.drap_reg, stored.drap_offset),
            current: (current.drap, current.drap_reg, current.drap_offset),
        });
    }
    None
}

impl fmt::Display for Mismatch {
    /// objtool's warning text (without the `SEC+0xOFF: ` location prefix).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stack state mismatch: ")?;
        match *self {
            Mismatch::Cfa { stored, current } => {
                write!(
                    f,
                    "cfa1={} cfa2={}",
                    stored.objtool_text(),
                    current.objtool_text()
                )
            }
            Mismatch::Reg {
                reg,
                stored,
                current,
            } => {
                let i = reg.number();
                write!(
                    f,
                    "reg1[{i}]={} reg2[{i}]={}",
                    stored.objtool_text(),
                    current.objtool_text()
                )
            }
            Mismatch::Type { stored, current } => {
                write!(f, "type1={} type2={}", stored.0, current.0)
            }
            Mismatch::Drap {
                stored: (d1, r1, o1),
                current: (d2, r2, o2),
            } => write!(
                f,
                "drap1={}({},{}) drap2={}({},{})",
                d1 as i32,
                r1.number(),
                o1,
                d2 as i32,
                r2.number(),
                o2
            ),
        }
    }
}
