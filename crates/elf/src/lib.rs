//! ELF for orctool.
//!
//! Reading is kept apart from writing, as in `object` and `gimli`: [`ElfFile`] is a read-only,
//! zero-copy object model of one x86-64 ELF file (sections, symbols, relocations), and
//! [`orc::OrcTable`] is the ORC table found in it, with each instruction address already
//! resolved to either a relocation target (relocatable objects: `.o`, `.ko`) or an absolute
//! address (linked files: `vmlinux`, executables). The analysis never touches ELF bytes: it
//! works on this model.
//!
//! Every malformed input is a variant of [`ElfError`]; nothing here panics on bad bytes.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod file;
mod append;
pub mod compare;
pub mod modinfo;
pub mod orc;
pub mod write;

pub use error::ElfError;
pub use file::{ElfFile, FileKind, Relocation, Section, Symbol, SymbolKind};
