//! x86-64 machine code in, instructions out: the first stage of `orctool check`.
//!
//! Each [`Instruction`] carries what stack validation needs and nothing more:
//!
//! - its [`InsnKind`]: how it affects control flow (jumps, calls, returns, traps, context
//!   switches) and a few flags objtool tracks (`stac`/`clac`, `std`/`cld`, `endbr`);
//! - its [`StackOps`]: what it does to the stack pointer, the frame pointer and stack slots,
//!   as [`StackOp`]s from a [`Src`] to a [`Dest`];
//! - where its constant fields are ([`Field`]), so that the caller can match relocations, and
//!   the destination of a direct branch ([`Branch`]).
//!
//! The classification is exactly the one objtool's x86 decoder (Linux 6.12) makes, including
//! its blind spots: only 64-bit (`REX.W`) arithmetic on `%rsp` counts, `mov` only to and from
//! memory based on `%rsp`/`%rbp` with no index, and VEX-encoded instructions are ignored. The
//! point is ORC tables identical to objtool's, so an instruction objtool would misread is
//! misread here the same way; the doc comments of [`InsnKind`] and [`StackOp`] list the
//! encodings.
//!
//! Registers are numbered in ModRM order ([`Reg`]), as objtool has done since 5.12.
//!
//! ```
//! use orc_decode::{decode_one, InsnKind, Reg, StackOp};
//!
//! // push %rbp
//! let insn = decode_one(&[0x55], 0x40, false).unwrap();
//! assert_eq!(insn.kind, InsnKind::Other);
//! assert_eq!(insn.stack_ops.iter().copied().collect::<Vec<_>>(), [StackOp::push(Reg::BP)]);
//!
//! // sub $0x10,%rsp
//! let insn = decode_one(&[0x48, 0x83, 0xec, 0x10], 0x41, false).unwrap();
//! assert_eq!(insn.stack_ops.iter().next().unwrap().to_string(), "add(%rsp, -16) -> %rsp");
//! ```
//!
//! Relocations are not this crate's business: a `call` to an external function decodes with
//! a [`Branch`] whose target is wherever the zero displacement points, and the caller replaces
//! it with the relocation's symbol.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod insn;
mod op;
mod reg;
mod x86;

pub use insn::{Branch, DecodeError, DecodeWarning, Field, InsnKind, Instruction};
pub use op::{Dest, Src, StackOp, StackOps};
pub use reg::Reg;
pub use x86::{decode_one, disassemble, SectionDecoder};
