//! The CFI state of objtool's stack validation and the rules that update it: the second stage
//! of `orctool check`, testable with stack operations alone.
//!
//! A [`CfiState`] says, before one instruction, where the caller's frame is (the CFA: a base
//! register plus an offset), where callee-saved registers and the return address were saved,
//! and a few facts needed to follow frame setups objtool understands (DRAP stack realignment,
//! stack swizzles, copies of `%rsp` in other registers). The path walker starts each function
//! at [`CfiState::FUNCTION_ENTRY`], applies each instruction's [`orc_decode::StackOp`]s with
//! [`CfiState::apply`] (or [`update`]), compares states where paths join with [`mismatch`],
//! replaces states at hinted instructions with [`HintReader`], and finally turns each stored
//! state into an ORC entry with [`orc_entry`].
//!
//! Everything follows objtool 6.12's `check.c` rule for rule, down to the idioms it does not
//! understand, because the goal is its ORC tables byte for byte:
//!
//! ```
//! use orc_decode::{Reg, StackOp};
//! use orc_stack::{CfiState, OpContext};
//!
//! // push %rbp; mov %rsp,%rbp
//! let mut state = CfiState::FUNCTION_ENTRY;
//! state.apply(&StackOp::push(Reg::BP), &OpContext::IN_FUNCTION).unwrap();
//! state.apply(&StackOp::mov(Reg::SP, Reg::BP), &OpContext::IN_FUNCTION).unwrap();
//!
//! let entry = state.orc_entry().unwrap();
//! assert_eq!((entry.sp_reg, entry.sp_offset), (orc_format::Reg::BP, 16));
//! assert_eq!((entry.bp_reg, entry.bp_offset), (orc_format::Reg::PREV_SP, -16));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod compare;
mod hint;
mod intern;
mod orc;
mod state;
mod update;

pub use compare::{mismatch, Mismatch};
pub use hint::{hint_base, Hint, HintAction, HintError, HintReader, HintType};
pub use intern::{CfiId, Interner};
pub use orc::{orc_entry, orc_entry_exact, OrcError};
pub use state::{Base, CfiReg, CfiState, FrameType, INITIAL_CFA, NUM_REGS};
pub use update::{update, OpContext, StackError};
