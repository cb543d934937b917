use thiserror::Error;

/// Everything that can be wrong with an input file. Messages are one line and say what is
/// wrong; the caller adds the file name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file at all.
    #[error("not an ELF file")]
    NotElf,
    /// An ELF file of another class, byte order or machine.
    #[error("unsupported ELF file: {0} (orctool reads x86-64 little-endian ELF64)")]
    Unsupported(&'static str),
    /// The headers or a table do not fit in the file, or are otherwise unreadable.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// A section's size is not a multiple of its entry size.
    #[error("section {section} is {size} bytes, not a multiple of {entry_size}")]
    BadSectionSize {
        /// Section name.
        section: String,
        /// Its size.
        size: u64,
        /// The entry size it must be a multiple of.
        entry_size: u64,
    },
    /// The two ORC arrays disagree on the number of entries.
    #[error(".orc_unwind has {orc} entries but .orc_unwind_ip has {ip}")]
    OrcCountMismatch {
        /// Entries in `.orc_unwind`.
        orc: usize,
        /// Slots in `.orc_unwind_ip`.
        ip: usize,
    },
    /// A relocation names a symbol that does not exist, or is otherwise unusable.
    #[error("{section}: relocation {index}: {problem}")]
    BadRelocation {
        /// The relocation section.
        section: String,
        /// Index of the relocation within it.
        index: usize,
        /// What is wrong.
        problem: String,
    },
    /// An `.orc_unwind_ip` slot has no relocation, in a file that relocates the others.
    #[error(".orc_unwind_ip slot {slot} (offset {offset:#x}) has no relocation")]
    MissingRelocation {
        /// Slot index.
        slot: usize,
        /// Byte offset in the section.
        offset: u64,
    },
    /// `.orc_header` is present but unusable.
    #[error("{0}")]
    Layout(#[from] LayoutErrorDisplay),
    /// Compressed input could not be decompressed.
    #[error("cannot decompress: {0}")]
    Decompress(String),
}

/// A layout error, carried as its message (the format crate is `no_std` and has no `Error`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct LayoutErrorDisplay(pub String);

impl From<orc_format::LayoutError> for ElfError {
    fn from(e: orc_format::LayoutError) -> Self {
        ElfError::Layout(LayoutErrorDisplay(e.to_string()))
    }
}

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> Self {
        ElfError::Malformed(e.to_string())
    }
}
