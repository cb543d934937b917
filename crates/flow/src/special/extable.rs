//! `__ex_table`: exception fixups. An instruction that may fault (`insn`) continues at
//! `fixup` when it does; objtool treats the fixup as one more place control can go from the
//! faulting instruction, validated with the state at the fault.
//!
//! Layout (every era objtool reads, 12 bytes, `.balign 4`): s32 insn @0, s32 fixup @4,
//! s32 data @8, the first two self-relative (PC32 relocations). The third word was a
//! self-relative pointer to a handler function before 5.16 (a PC32 relocation) and is a
//! constant since: type in bits 0–7, register in 8–11, flags in 12–15, a signed immediate in
//! 16–31 (`EX_DATA_*`).
//!
//! Old kernels' `_ASM_EXTABLE_EX` added 0x7ffffff0 to the fixup; objtool subtracts it when
//! the resolved offset is at least that ([`ExEntry::fixup_biased`]).

use orc_elf::ElfFile;

use crate::error::{At, SpecialSectionError};
use crate::special::reloc::{remove_extable_bias, Location, RelocTarget, Table};

/// The section name.
pub const SECTION: &str = "__ex_table";
/// Bytes per entry (objtool's `EX_ENTRY_SIZE`).
pub const ENTRY_SIZE: usize = 12;

/// One `__ex_table` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ExEntry<'data> {
    /// Entry index.
    pub index: usize,
    /// The instruction that may fault (objtool's `orig`).
    pub insn: Location,
    /// Where execution continues after a fault (objtool's `new`), bias removed.
    pub fixup: Location,
    /// True if objtool's 0x7ffffff0 bias was removed from `fixup`.
    pub fixup_biased: bool,
    /// The third word as stored (0 when a relocation fills it).
    pub data: i32,
    /// The relocation of the third word, if any: the handler function before 5.16.
    pub handler: Option<RelocTarget<'data>>,
}

impl ExEntry<'_> {
    /// 5.16+: the fixup type (`EX_TYPE_*`, bits 0–7 of `data`).
    pub const fn fixup_type(&self) -> u8 {
        self.data as u8
    }

    /// 5.16+: the register operand (bits 8–11 of `data`).
    pub const fn reg(&self) -> u8 {
        ((self.data >> 8) & 0xf) as u8
    }

    /// 5.16+: the flags (bits 12–15 of `data`; `EX_FLAG_CLEAR_AX` = 1, `_DX` = 2).
    pub const fn flags(&self) -> u8 {
        ((self.data >> 12) & 0xf) as u8
    }

    /// 5.16+: the signed immediate (bits 16–31 of `data`).
    pub const fn imm(&self) -> i16 {
        (self.data >> 16) as i16
    }
}

/// Reads `__ex_table`; an empty list if the file has none. Fails like objtool when the size
/// is not a multiple of 12 or an entry lacks its `insn` or `fixup` relocation; also when
/// either is not defined in the file.
pub fn read_extable<'data>(file: &ElfFile<'data>) -> Result<Vec<ExEntry<'data>>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    let count = table.entries(ENTRY_SIZE)?;
    table.require_relocations()?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * ENTRY_SIZE;
        let insn = table.field_location(i, base, "insn")?;
        let (fixup, fixup_biased) = remove_extable_bias(table.field_location(i, base + 4, "fixup")?);
        let data = table.u32_at(base + 8) as i32;
        let handler = match table.by_offset.get(&((base + 8) as u64)) {
            Some((_, rel)) => Some(table.target(At::Entry(i), rel)?),
            None => None,
        };
        out.push(ExEntry { index: i, insn, fixup, fixup_biased, data, handler });
    }
    Ok(out)
}
