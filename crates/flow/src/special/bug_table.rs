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
//! | 4.14-7.x | 12 | s32 bug_addr (place-relative) @0, s32 file @4, u16 line @8, u16 flags @10 |

use orc_elf::ElfFile;

use crate::error::SpecialSectionError;
use crate::special::reloc::{Location, Table};

/// The section name.
pub const SECTION: &str = "__bug_table";
/// Bytes per entry (x86-64, relative pointers, verbose).
pub const ENTRY_SIZE: usize = 12;
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

/// Reads `__bug_table`; an empty list if the file has none.
pub fn read_bug_table(file: &ElfFile<'_>) -> Result<Vec<BugEntry>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    let count = table.entries(ENTRY_SIZE)?;
    table.require_relocations()?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * ENTRY_SIZE;
        out.push(BugEntry {
            index: i,
            addr: table.field_location(i, base, "bug_addr")?,
            flags: table.u16_at(base + 10),
        });
    }
    Ok(out)
}
