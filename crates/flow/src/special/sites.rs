//! The sections objtool *writes*, read back so that the corpus harness can compare ours with
//! objtool's.
//!
//! | section | entry | written for |
//! |---|---|---|
//! | `.retpoline_sites` | s32, PC32 to the instruction | calls/jumps through `__x86_indirect_*` thunks (`--retpoline`) |
//! | `.return_sites` | s32 | jumps to the return thunk (`--rethunk`) |
//! | `.call_sites` | s32 | direct calls, for call depth tracking (6.2+) |
//! | `.ibt_endbr_seal` | s32 | `endbr` instructions never used as indirect targets (`--ibt`) |
//! | `.cfi_sites` | s32 | kCFI `__cfi_` preambles (Clang) |
//! | `.static_call_sites` | s32 addr, s32 key | calls and tail calls to `__SCT__*` trampolines (`--static-call`) |
//! | `__mcount_loc` | u64, `R_X86_64_64` | `__fentry__` calls (`--mcount`; Debian's modules get it from gcc instead) |
//!
//! objtool relocates each site against the text section symbol with the instruction offset as
//! the addend (or against the function symbol when the section has no symbol). A static call
//! key is relocated against the `__SCK__*` key symbol (or, in modules whose key is not
//! visible, the `__SCT__*` trampoline), with `STATIC_CALL_SITE_TAIL` (1) in the addend for a
//! tail call; bit 1 (`STATIC_CALL_SITE_INIT`) is set at run time only.

use orc_elf::ElfFile;

use crate::error::SpecialSectionError;
use crate::special::reloc::{Field, Location, RelocTarget, Table};

/// The 4-byte site tables objtool writes, by name.
pub const SITE_SECTIONS: [&str; 5] =
    [".retpoline_sites", ".return_sites", ".call_sites", ".ibt_endbr_seal", ".cfi_sites"];
/// `.static_call_sites`.
pub const STATIC_CALL_SECTION: &str = ".static_call_sites";
/// `__mcount_loc`.
pub const MCOUNT_SECTION: &str = "__mcount_loc";
/// `__patchable_function_entries`: written by the compiler, not objtool (gcc's
/// `-fpatchable-function-entry=N,M` with the kernel's call padding): one 8-byte `R_X86_64_64`
/// entry per function, pointing at the start of the NOPs the compiler put before it.
pub const PATCHABLE_ENTRIES_SECTION: &str = "__patchable_function_entries";

/// Reads a table of `width`-byte entries, each one relocated field at the entry's start.
fn read_locations(file: &ElfFile<'_>, name: &str, width: usize) -> Result<Option<Vec<Location>>, SpecialSectionError> {
    let Some(table) = Table::open(file, name)? else {
        return Ok(None);
    };
    let count = table.entries(width)?;
    table.require_relocations()?;
    let encoding = if width == 8 { Field::Absolute64 } else { Field::Relative32 };
    (0..count).map(|i| table.field_location_as(i, i * width, "site", encoding)).collect::<Result<Vec<_>, _>>().map(Some)
}

/// Reads one of the 4-byte site tables ([`SITE_SECTIONS`]); `None` if the file has none.
pub fn read_site_table(file: &ElfFile<'_>, name: &str) -> Result<Option<Vec<Location>>, SpecialSectionError> {
    read_locations(file, name, 4)
}

/// Reads `__mcount_loc` (8-byte absolute entries); `None` if the file has none.
pub fn read_mcount_loc(file: &ElfFile<'_>) -> Result<Option<Vec<Location>>, SpecialSectionError> {
    read_locations(file, MCOUNT_SECTION, 8)
}

/// Reads `__patchable_function_entries` ([`PATCHABLE_ENTRIES_SECTION`]); `None` if the file has
/// none. objtool 7.x puts its `__pfx_` symbols where these point
/// ([`crate::KernelEra::prefix_symbols_from_patchable_entries`]).
pub fn read_patchable_function_entries(file: &ElfFile<'_>) -> Result<Option<Vec<Location>>, SpecialSectionError> {
    read_locations(file, PATCHABLE_ENTRIES_SECTION, 8)
}

/// One `.static_call_sites` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StaticCallSite<'data> {
    /// Entry index.
    pub index: usize,
    /// The call or jump instruction.
    pub addr: Location,
    /// The key relocation (symbol and flag addend).
    pub key: RelocTarget<'data>,
}

impl StaticCallSite<'_> {
    /// `STATIC_CALL_SITE_TAIL`: the site is a tail call (`jmp`).
    pub const fn is_tail(&self) -> bool {
        self.key.addend & 1 != 0
    }
}

/// Reads `.static_call_sites` (8-byte entries); `None` if the file has none.
pub fn read_static_call_sites<'data>(
    file: &ElfFile<'data>,
) -> Result<Option<Vec<StaticCallSite<'data>>>, SpecialSectionError> {
    let Some(table) = Table::open(file, STATIC_CALL_SECTION)? else {
        return Ok(None);
    };
    let count = table.entries(8)?;
    table.require_relocations()?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let addr = table.field_location(i, i * 8, "addr")?;
        let key = table.field_target_with_flags(i, i * 8 + 4, "key", Field::Relative32, 3)?;
        out.push(StaticCallSite { index: i, addr, key });
    }
    Ok(Some(out))
}
