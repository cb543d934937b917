//! Control flow for `orctool check`, part 1: the special sections.
//!
//! objtool learns most of what it knows about control flow beyond plain branches from
//! sections the kernel's macros emit beside the code: alternatives (`.altinstructions`),
//! static keys (`__jump_table`), exception fixups (`__ex_table`), unwind hints and the
//! `.discard.*` annotations. Each is parsed here in exactly one module ([`special`]), with its
//! layouts per kernel release chosen by a [`KernelEra`], into typed records whose relocated
//! fields are already resolved to a [`Location`] (section index, offset), the way objtool
//! resolves them. [`SpecialSections::read`] gathers them all for one file. The [`noreturn`]
//! module holds objtool's lists of functions that never return.
//!
//! Nothing here decodes instructions or panics on malformed input: every problem is a
//! [`SpecialSectionError`] naming the section, the entry and what is wrong.
//!
//! ```no_run
//! use orc_elf::ElfFile;
//! use orc_flow::{KernelEra, SpecialSections};
//!
//! let bytes = std::fs::read("foo.ko").unwrap();
//! let file = ElfFile::parse(&bytes).unwrap();
//! let era = KernelEra::from_file(&file).unwrap_or(KernelEra::V6_12);
//! let special = SpecialSections::read(&file, era).unwrap();
//! for alt in &special.alternatives {
//!     println!("{} -> {:?} feature {}", alt.orig, alt.replacement, alt.cpuid);
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod era;
mod error;
pub mod noreturn;
pub mod special;

pub use era::KernelEra;
pub use error::{At, Problem, SpecialSectionError};
pub use noreturn::{NoreturnVerdict, Noreturns};
pub use special::{Counts, Location, ObjtoolOutputs, RelocTarget, SpecialSections};
