//! SFrame version 3, the stack trace format of binutils 2.46 (February 2026), for x86-64.
//!
//! An SFrame section is a header, a sorted index of functions (FDEs) and, per function, a list of
//! rows (FREs) that say how to find the caller's stack pointer (the CFA), return address and frame
//! pointer from any instruction. Version 3 adds *flexible* FDEs, whose rows can say what the
//! default ones cannot: a CFA on any register or loaded from memory, and a return address or frame
//! pointer in a register or at an address computed from one.
//!
//! - [`Row`], [`Cfa`], [`Saved`]: what a row means, the vocabulary the reader, the writer and
//!   the unwind step share.
//! - [`read::Section`]: a zero-copy reader with precise errors ([`read::Error`]).
//! - `write::write` (feature `alloc`): a section from [`write::Function`]s.
//! - [`unwind::step`]: one frame, with the rules of a row.
//!
//! ```
//! use orc_sframe::{read::Section, write::{write, Function}, Cfa, Row, Saved};
//! // A function at 0x1000 that pushes %rbp and sets it up as its frame pointer.
//! let f = Function::new(0x1000, 32, vec![
//!     Row::frame(0, Cfa::sp(8), Saved::Default, Saved::Default),
//!     Row::frame(1, Cfa::sp(16), Saved::Default, Saved::AtCfa(-16)),
//!     Row::frame(4, Cfa::fp(16), Saved::Default, Saved::AtCfa(-16)),
//! ]);
//! let bytes = write(&[f], 0x2000).unwrap();
//! let section = Section::parse(&bytes, 0x2000).unwrap();
//! let (_, row) = section.find_row(0x1010).unwrap().unwrap();
//! assert_eq!(row.rule, orc_sframe::Rule::Frame { cfa: Cfa::fp(16), ra: Saved::Default, fp: Saved::AtCfa(-16) });
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod read;
pub mod unwind;
#[cfg(feature = "alloc")]
pub mod write;

use core::fmt;

/// The magic number, in the section's byte order.
pub const MAGIC: u16 = 0xdee2;
/// The version this crate reads and writes.
pub const VERSION_3: u8 = 3;
/// The size of the fixed header.
pub const HEADER_SIZE: usize = 28;
/// The size of one entry of the function index (`sframe_func_desc_idx`).
pub const FDE_INDEX_SIZE: usize = 16;
/// The size of the attributes at the start of each function's rows (`sframe_func_desc_attr`).
pub const FDE_ATTR_SIZE: usize = 5;
/// ABI/arch identifier of x86-64 (little-endian).
pub const ABI_AMD64_LITTLE: u8 = 3;
/// On x86-64 the return address is always at CFA - 8 unless a flexible row says otherwise.
pub const AMD64_FIXED_RA_OFFSET: i8 = -8;

/// Header flag: the function index is sorted by start address.
pub const F_FDE_SORTED: u8 = 0x1;
/// Header flag: every function was compiled with a frame pointer (never set by orctool).
pub const F_FRAME_POINTER: u8 = 0x2;
/// Header flag: a function's start is stored relative to its index entry, not to the section.
pub const F_FDE_FUNC_START_PCREL: u8 = 0x4;

/// DWARF register numbers of x86-64 (System V psABI), which SFrame uses.
pub mod dwarf {
    /// `%rax`
    pub const RAX: u8 = 0;
    /// `%rdx`
    pub const RDX: u8 = 1;
    /// `%rcx`
    pub const RCX: u8 = 2;
    /// `%rbx`
    pub const RBX: u8 = 3;
    /// `%rsi`
    pub const RSI: u8 = 4;
    /// `%rdi`
    pub const RDI: u8 = 5;
    /// `%rbp`, the frame pointer.
    pub const RBP: u8 = 6;
    /// `%rsp`, the stack pointer.
    pub const RSP: u8 = 7;
    /// `%r8`; `%r9`..`%r15` follow.
    pub const R8: u8 = 8;
    /// `%r10`, GCC's usual DRAP register.
    pub const R10: u8 = 10;
    /// `%r15`, the last general register.
    pub const R15: u8 = 15;
    /// The return address column (`%rip`).
    pub const RA: u8 = 16;

    /// The AT&T name of a general register, as objtool and gdb print it.
    pub fn name(reg: u8) -> &'static str {
        const NAMES: [&str; 17] =
            ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"];
        NAMES.get(usize::from(reg)).copied().unwrap_or("?")
    }
}

/// How the CFA (the caller's stack pointer, the address just above the return address) is found.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cfa {
    /// `CFA = reg + offset`.
    Reg {
        /// DWARF register number.
        reg: u8,
        /// Added to the register.
        offset: i32,
    },
    /// `CFA = *(reg + offset)` (a DRAP frame's CFA saved on the stack, a signal frame's `rsp`).
    Deref {
        /// DWARF register number.
        reg: u8,
        /// Added to the register before the load.
        offset: i32,
    },
}

impl Cfa {
    /// `CFA = %rsp + offset`.
    pub const fn sp(offset: i32) -> Cfa {
        Cfa::Reg { reg: dwarf::RSP, offset }
    }
    /// `CFA = %rbp + offset`.
    pub const fn fp(offset: i32) -> Cfa {
        Cfa::Reg { reg: dwarf::RBP, offset }
    }
}

/// Where the caller's return address or frame pointer is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Saved {
    /// What the ABI says without a rule: the return address at `CFA - 8` (x86-64's fixed RA
    /// offset), the frame pointer unchanged (still in `%rbp`).
    Default,
    /// `value = *(CFA + offset)`.
    AtCfa(i32),
    /// `value = reg + offset` (the value is in a register, e.g. `%rbp` copied to `%r11`).
    Reg {
        /// DWARF register number.
        reg: u8,
        /// Added to the register.
        offset: i32,
    },
    /// `value = *(reg + offset)`.
    Deref {
        /// DWARF register number.
        reg: u8,
        /// Added to the register before the load.
        offset: i32,
    },
}

/// What one row says.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Rule {
    /// The return address is undefined: this is the outermost frame (`_start`, a thread's
    /// entry); the stack trace is complete.
    Outermost,
    /// An ordinary frame.
    Frame {
        /// The caller's stack pointer.
        cfa: Cfa,
        /// The return address.
        ra: Saved,
        /// The caller's frame pointer.
        fp: Saved,
    },
}

impl Rule {
    /// True when a default (non-flexible) FDE can hold this row on x86-64: CFA on `%rsp` or
    /// `%rbp` plus an offset, the return address at its fixed place, the frame pointer
    /// unchanged or saved relative to the CFA.
    pub fn fits_default(&self) -> bool {
        match *self {
            Rule::Outermost => true,
            Rule::Frame { cfa, ra, fp } => {
                matches!(cfa, Cfa::Reg { reg: dwarf::RSP | dwarf::RBP, .. })
                    && ra == Saved::Default
                    && matches!(fp, Saved::Default | Saved::AtCfa(_))
            }
        }
    }
}

/// One row: the rule from `start` (bytes from the function's start) up to the next row.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Row {
    /// Offset of the first instruction the row covers, from the function's start.
    pub start: u32,
    /// What it says.
    pub rule: Rule,
}

impl Row {
    /// A row of an ordinary frame.
    pub const fn frame(start: u32, cfa: Cfa, ra: Saved, fp: Saved) -> Row {
        Row { start, rule: Rule::Frame { cfa, ra, fp } }
    }
    /// A row of the outermost frame.
    pub const fn outermost(start: u32) -> Row {
        Row { start, rule: Rule::Outermost }
    }
}

impl fmt::Display for Cfa {
    /// The notation of binutils' `objdump --sframe`: `sp+8`, `fp+16`, `r10+0`, `(fp-8)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cfa::Reg { reg, offset } => write!(f, "{}{:+}", objdump_reg(reg), offset),
            Cfa::Deref { reg, offset } => write!(f, "({}{:+})", objdump_reg(reg), offset),
        }
    }
}

/// How `objdump --sframe` names a register: `sp`, `fp`, else `r<DWARF number>`.
fn objdump_reg(reg: u8) -> RegName {
    RegName(reg)
}

struct RegName(u8);

impl fmt::Display for RegName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            dwarf::RSP => f.write_str("sp"),
            dwarf::RBP => f.write_str("fp"),
            r => write!(f, "r{r}"),
        }
    }
}

impl fmt::Display for Saved {
    /// The notation of `objdump --sframe`: `u` (default; for the return address objdump
    /// prints `f`, fixed), `c-16` (at CFA-16), `r11+0`, `(fp+0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Saved::Default => f.write_str("u"),
            Saved::AtCfa(o) => write!(f, "c{o:+}"),
            Saved::Reg { reg, offset } => write!(f, "{}{:+}", objdump_reg(reg), offset),
            Saved::Deref { reg, offset } => write!(f, "({}{:+})", objdump_reg(reg), offset),
        }
    }
}
