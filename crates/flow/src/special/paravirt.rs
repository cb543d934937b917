//! `.parainstructions`: paravirt patch sites, kernels before 6.8 (6.8 turned them into
//! alternatives). objtool never read this section; orctool does, because the code at these
//! sites is rewritten at boot just as alternatives are.
//!
//! Layout (`struct paravirt_patch_site`, 8-aligned, 16 bytes): u64 instr @0 (absolute, an
//! `R_X86_64_64` relocation), u8 type @8 (the `pv_ops` slot number), u8 len @9, and in the
//! C macro (`_paravirt_alt`) a u16 clobbers @10 (the assembler macro leaves it 0); padding to
//! 16.

use orc_elf::ElfFile;

use crate::error::SpecialSectionError;
use crate::special::reloc::{Field, Location, Table};

/// The section name.
pub const SECTION: &str = ".parainstructions";
/// Bytes per entry.
pub const ENTRY_SIZE: usize = 16;

/// One paravirt patch site.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ParaSite {
    /// Entry index.
    pub index: usize,
    /// The patched instructions.
    pub instr: Location,
    /// The `pv_ops` slot (`PARAVIRT_PATCH(op)`: the offset of the op in `struct
    /// paravirt_patch_template` divided by 8).
    pub pv_type: u8,
    /// Length of the site.
    pub len: u8,
    /// `CLBR_*` clobber mask (0 where the macro did not write one).
    pub clobbers: u16,
}

/// Reads `.parainstructions`; an empty list if the file has none.
pub fn read_parainstructions(file: &ElfFile<'_>) -> Result<Vec<ParaSite>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    let count = table.entries(ENTRY_SIZE)?;
    table.require_relocations()?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * ENTRY_SIZE;
        out.push(ParaSite {
            index: i,
            instr: table.field_location_as(i, base, "instr", Field::Absolute64)?,
            pv_type: table.u8_at(base + 8),
            len: table.u8_at(base + 9),
            clobbers: table.u16_at(base + 10),
        });
    }
    Ok(out)
}
