//! What can be wrong with a special section: one error type naming the section, the entry (or
//! relocation) and the problem.

use core::fmt;

use orc_elf::ElfError;
use thiserror::Error;

/// Which part of a section an error is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum At {
    /// Entry `n` of a table (`.altinstructions`, `__jump_table`, ...).
    Entry(usize),
    /// Relocation `n` of the section's relocation section. Annotation sections are read the
    /// way objtool reads them, one relocation at a time, so their errors point at relocations.
    Relocation(usize),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Entry(n) => write!(f, "entry {n}"),
            At::Relocation(n) => write!(f, "relocation {n}"),
        }
    }
}

/// A special section that cannot be read, with where and why.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
#[error("{section}{}: {problem}", at.map(|a| format!(" {a}")).unwrap_or_default())]
pub struct SpecialSectionError {
    /// The section's name (`.altinstructions`, `.discard.unwind_hints`, ...).
    pub section: String,
    /// The entry or relocation, when the problem is in one.
    pub at: Option<At>,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a special section.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum Problem {
    /// The ELF model could not give a section, symbol or relocation.
    #[error("{0}")]
    Elf(ElfError),
    /// The section's size is not a whole number of entries.
    #[error("size {size} is not a multiple of the {entry_size}-byte entry")]
    BadSize {
        /// Section size.
        size: u64,
        /// Entry size of the layout in use.
        entry_size: usize,
    },
    /// The section header claims contents the file does not hold (`SHT_NOBITS`).
    #[error("section has no contents in the file")]
    NoContents,
    /// A table whose fields need relocations has no relocation section.
    #[error("no relocation section")]
    NoRelocations,
    /// A field that objtool resolves through a relocation has none.
    #[error("no relocation for the `{field}` field at offset {offset:#x}")]
    MissingRelocation {
        /// Field name (`orig`, `new`, `key`, `insn`, ...).
        field: &'static str,
        /// Offset of the field in the section.
        offset: u64,
    },
    /// Two relocations apply to the same offset.
    #[error("two relocations at offset {offset:#x}")]
    DuplicateRelocation {
        /// The offset.
        offset: u64,
    },
    /// A relocation names a symbol index the symbol table does not have.
    #[error("relocation names symbol {symbol}, which does not exist")]
    BadSymbol {
        /// The symbol index.
        symbol: usize,
    },
    /// A field that must point into this file points at an undefined (or absolute) symbol.
    #[error("the `{field}` field points to `{name}`, which is not defined in a section")]
    Undefined {
        /// Field name.
        field: &'static str,
        /// Symbol name (`""` for symbol 0).
        name: String,
    },
    /// Symbol value plus addend is negative or does not fit.
    #[error("the `{field}` field resolves to `{name}` {value:#x} + ({addend}), outside its section")]
    OutOfRange {
        /// Field name.
        field: &'static str,
        /// Symbol name.
        name: String,
        /// Symbol value.
        value: u64,
        /// Relocation addend.
        addend: i64,
    },
    /// The relocation is against a kind of symbol objtool rejects for this section.
    #[error("relocation against {kind} symbol `{name}`; objtool accepts {accepted}")]
    UnexpectedSymbol {
        /// Symbol name.
        name: String,
        /// Its kind, as text (`FUNC`, `NOTYPE`, ...).
        kind: String,
        /// What the section's rule accepts.
        accepted: &'static str,
    },
    /// A linked file's field holds an address that is in none of its sections.
    #[error("the `{field}` field points to {address:#x}, which is in no section of the file")]
    Unmapped {
        /// Field name.
        field: &'static str,
        /// The address.
        address: u64,
    },
    /// The section does not fit the layout of the kernel era in use.
    #[error("{0}")]
    Layout(String),
}

impl SpecialSectionError {
    pub(crate) fn new(section: &str, at: Option<At>, problem: Problem) -> Self {
        SpecialSectionError { section: section.to_string(), at, problem }
    }
}
