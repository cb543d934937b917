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
//! # Facts by era
//!
//! Checked against the sources of Debian's 6.1.192 and 6.12.117 (objtool, the kernel's
//! macros) and against those kernels' modules; boundaries for other releases come from
//! upstream history as far as it could be traced and are approximate where marked.
//!
//! | what | 6.1 | 6.12 | other eras |
//! |---|---|---|---|
//! | `.altinstructions` entry | 12 bytes, `u16` cpuid with `ALT_NOT` = bit 15 | 14 bytes, `u32` ft_flags (NOT = bit 16, DIRECT_CALL = bit 17) | 13 bytes with padlen before 5.13 |
//! | `__jump_table` entry | 16 bytes, relative | same | 24 bytes absolute before 4.20 |
//! | `__ex_table` entry | 12 bytes, data = type encoding | same | data = handler before 5.16 |
//! | unwind hint bytes 8/9 | end | signal | 6.3: signal, end |
//! | hint types | CALL 0, REGS 1, PARTIAL 2, FUNC 3, ENTRY 4, SAVE 5, RESTORE 6 | UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, PARTIAL 4, FUNC 5, SAVE 6, RESTORE 7 | see [`special::HintTypes`] (5.7/5.8/5.12/5.19 boundaries approximate) |
//! | hint relocation | addend, any symbol | section symbol (addend) or `.L` label (value) | boundary 6.6, not pinned |
//! | `.discard.unreachable` | read | not read | dropped before 6.12 |
//! | `.discard.noendbr` entry | `.quad` | `.long` | (read per relocation either way) |
//! | `.discard.reachable` entry | `.long 1b - .` | `.long 1b` | (same addend either way) |
//! | unified `.discard.annotate_insn` | no | no | 6.13+ |
//! | `.parainstructions` | yes (206 modules) | no | removed in 6.8 |
//! | noreturn list | 25 names, global only | 45 names, global or weak, plus Rust patterns | list moved around 6.5 |
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
pub use special::{AddressMap, Counts, Location, ObjtoolOutputs, RelocTarget, SpecialSections};
