//! `__bug_table`: where the kernel's `BUG()` and `WARN()` put their `ud2`.
//!
//! objtool does not read this table: it learns that the `ud2` of a `WARN()` is not a dead end
//! from the `.discard.reachable` annotation `WARN()` emits beside it. The final link drops
//! `.discard.*`, but a linked image keeps `__bug_table`, whose `BUGFLAG_WARNING` entries mark
//! the same instructions; reading a function of an image (orc-check's `image`) rebuilds the
//! annotation from them.
//!
//! | era | size | layout (`CONFIG_GENERIC_BUG_RELATIVE_POINTERS`, `CONFIG_DEBUG_BUGVERBOSE`) |
//! |---|---|---|
//! | before 7.0 | 12 | s32 bug_addr (place-relative) @0, s32 file @4, u16 line @8, u16 flags @10 |
//! | 7.0+ | 16 | s32 bug_addr @0, s32 format @4, s32 file @8, u16 line @12, u16 flags @14 |
//!
//! Pinned on Debian's 6.1 and 6.12 (12 bytes) and sid's 7.2 (16 bytes: `WARN()`'s format
//! string moved into the entry); the release in between where it changed is not pinned, 7.0
//! is used. In 7.2 not every entry points at a `ud2`: the bytes at the address say which.

use orc_elf::ElfFile;

use crate::era::KernelEra;
use crate::error::SpecialSectionError;
use crate::special::reloc::{Location, Table};

/// The section name.
pub const SECTION: &str = "__bug_table";
/// Bytes per entry (x86-64, relative pointers, verbose) before 7.0.
pub const ENTRY_SIZE: usize = 12;
/// Bytes per entry from 7.0 on.
pub const ENTRY_SIZE_7: usize = 16;
/// `BUGFLAG_WARNING`: a `WARN()`, after which execution goes on.
pub const BUGFLAG_WARNING: u16 = 1 << 0;

/// One `__bug_table` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BugEntry {
    /// Entry index.
    pub index: usize,
    /// The `ud2`.
    pub addr: Location,
    /// `BUGFLAG_*`.
    pub flags: u16,
}

impl BugEntry {
    /// A `WARN()`: the `ud2` returns.
    pub const fn is_warning(&self) -> bool {
        self.flags & BUGFLAG_WARNING != 0
    }
}

/// Reads `__bug_table` with the layout of `era`; an empty list if the file has none.
pub fn read_bug_table(file: &ElfFile<'_>, era: KernelEra) -> Result<Vec<BugEntry>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    let (size, other, kernels, other_kernels) = if era.at_least(7, 0) {
        (ENTRY_SIZE_7, ENTRY_SIZE, "7.0+", "before 7.0")
    } else {
        (ENTRY_SIZE, ENTRY_SIZE_7, "before 7.0", "7.0+")
    };
    let count = match table.entries(size) {
        Ok(n) => n,
        Err(_) if table.section.data.len() % other == 0 => {
            return Err(table.wrong_era(size, kernels, other, other_kernels))
        }
        Err(e) => return Err(e),
    };
    table.require_relocations()?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * size;
        let addr = table.field_location(i, base, "bug_addr")?;
        out.push(BugEntry { index: i, addr, flags: table.u16_at(base + size - 2) });
    }
    Ok(out)
}
