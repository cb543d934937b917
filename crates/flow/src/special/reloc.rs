//! From a relocated field to the place it points at: what every special-section parser shares.

use core::fmt;
use std::collections::BTreeMap;

use orc_elf::{ElfFile, Relocation, Section, SymbolKind};

use crate::error::{At, Problem, SpecialSectionError};

/// `R_X86_64_64`.
pub const R_X86_64_64: u32 = 1;
/// `R_X86_64_PC32`.
pub const R_X86_64_PC32: u32 = 2;
/// `R_X86_64_32`.
pub const R_X86_64_32: u32 = 10;
/// `R_X86_64_32S`.
pub const R_X86_64_32S: u32 = 11;
/// `R_X86_64_PC64`.
pub const R_X86_64_PC64: u32 = 24;

/// `STB_LOCAL`.
pub const STB_LOCAL: u8 = 0;
/// `STB_GLOBAL`.
pub const STB_GLOBAL: u8 = 1;
/// `STB_WEAK`.
pub const STB_WEAK: u8 = 2;

/// A place in a section of the file: what objtool's `reloc_to_sec_off` computes for a
/// relocated field (the symbol's section; the symbol's value plus the addend).
///
/// For the self-relative fields of the kernel's tables (`.long 661b - .`) the assembler's
/// addend already is the target's offset from the section symbol: the reference point is the
/// field itself, so there is no `-4` to undo (unlike a PC32 relocation inside an instruction).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Location {
    /// Section index.
    pub section: usize,
    /// Byte offset in that section.
    pub offset: u64,
}

impl Location {
    /// A location.
    pub const fn new(section: usize, offset: u64) -> Location {
        Location { section, offset }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]+{:#x}", self.section, self.offset)
    }
}

/// A relocation with its symbol looked up: for fields that may point outside the file (jump
/// label and static call keys) or whose symbol kind matters (annotations).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RelocTarget<'data> {
    /// `R_X86_64_*` type.
    pub kind: u32,
    /// Symbol index.
    pub symbol: usize,
    /// Symbol name (a section symbol is named after its section).
    pub name: &'data str,
    /// Symbol type.
    pub symbol_kind: SymbolKind,
    /// `STB_*` binding.
    pub binding: u8,
    /// Defining section; `None` for undefined and absolute symbols.
    pub section: Option<usize>,
    /// Symbol value (0 for section symbols).
    pub value: u64,
    /// Relocation addend.
    pub addend: i64,
}

impl RelocTarget<'_> {
    /// objtool's `reloc_to_sec_off`: the symbol's section, at value + addend. `None` for an
    /// undefined symbol or a negative result.
    pub fn location(&self) -> Option<Location> {
        let section = self.section?;
        let offset = i128::from(self.value) + i128::from(self.addend);
        Some(Location::new(section, u64::try_from(offset).ok()?))
    }

    /// True for an `STT_SECTION` symbol.
    pub fn is_section_symbol(&self) -> bool {
        self.symbol_kind == SymbolKind::Section
    }

    /// objtool's `local_label`: an `STT_NOTYPE` symbol whose name starts with `.L`.
    pub fn is_local_label(&self) -> bool {
        self.symbol_kind == SymbolKind::NoType && self.name.starts_with(".L")
    }
}

/// The text objtool would use for a symbol kind in a message.
pub(crate) fn kind_name(kind: SymbolKind) -> String {
    match kind {
        SymbolKind::NoType => "NOTYPE".into(),
        SymbolKind::Object => "OBJECT".into(),
        SymbolKind::Func => "FUNC".into(),
        SymbolKind::Section => "SECTION".into(),
        SymbolKind::File => "FILE".into(),
        SymbolKind::Other(n) => format!("type {n}"),
    }
}

/// One special section: its header, contents and relocations by offset.
pub(crate) struct Table<'data, 'file> {
    pub file: &'file ElfFile<'data>,
    pub section: Section<'data>,
    /// The relocation section's index, if any.
    pub rela: Option<usize>,
    /// Relocations by the offset they apply to, with their index in the relocation section.
    pub by_offset: BTreeMap<u64, (usize, Relocation)>,
    /// Relocations in file order.
    pub relocations: Vec<Relocation>,
}

impl<'data, 'file> Table<'data, 'file> {
    /// The section called `name` and its relocations, or `None` if the file has no such
    /// section. The relocation section is the one whose `sh_info` names it, or else the one
    /// called `.rela<name>` (objtool finds annotation relocations by name).
    pub fn open(file: &'file ElfFile<'data>, name: &str) -> Result<Option<Self>, SpecialSectionError> {
        let err = |p| SpecialSectionError::new(name, None, p);
        let Some(section) = file.section_by_name(name).map_err(|e| err(Problem::Elf(e)))? else {
            return Ok(None);
        };
        if section.data.len() as u64 != section.size {
            return Err(err(Problem::NoContents));
        }
        let rela = match file.relocation_section_for(section.index) {
            Some(r) => Some(r),
            None => file.section_by_name(&format!(".rela{name}")).map_err(|e| err(Problem::Elf(e)))?.map(|s| s.index),
        };
        let relocations = match rela {
            Some(r) => file.relocations(r).map_err(|e| err(Problem::Elf(e)))?,
            None => Vec::new(),
        };
        let mut by_offset = BTreeMap::new();
        for (i, r) in relocations.iter().enumerate() {
            if by_offset.insert(r.offset, (i, *r)).is_some() {
                return Err(SpecialSectionError::new(
                    name,
                    Some(At::Relocation(i)),
                    Problem::DuplicateRelocation { offset: r.offset },
                ));
            }
        }
        Ok(Some(Table { file, section, rela, by_offset, relocations }))
    }

    pub fn error(&self, at: Option<At>, problem: Problem) -> SpecialSectionError {
        SpecialSectionError::new(self.section.name, at, problem)
    }

    /// The number of `entry_size`-byte entries, or an error if the size is not a multiple.
    pub fn entries(&self, entry_size: usize) -> Result<usize, SpecialSectionError> {
        let size = self.section.data.len();
        if size % entry_size != 0 {
            return Err(self.error(None, Problem::BadSize { size: size as u64, entry_size }));
        }
        Ok(size / entry_size)
    }

    /// The error for a table whose size does not fit the `size`-byte layout of `kernels` but
    /// fits the `other_size`-byte one of `other_kernels` (and only that one).
    pub fn wrong_era(&self, size: usize, kernels: &str, other_size: usize, other_kernels: &str) -> SpecialSectionError {
        self.error(
            None,
            Problem::Layout(format!(
                "size {} is not a multiple of the {size}-byte entry of {kernels} but fits the {other_size}-byte layout of {other_kernels}: wrong kernel era?",
                self.section.data.len()
            )),
        )
    }

    /// Requires a relocation section (when the table is not empty).
    pub fn require_relocations(&self) -> Result<(), SpecialSectionError> {
        if self.rela.is_none() && !self.section.data.is_empty() {
            return Err(self.error(None, Problem::NoRelocations));
        }
        Ok(())
    }

    pub fn u8_at(&self, offset: usize) -> u8 {
        self.section.data[offset]
    }

    pub fn u16_at(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.section.data[offset], self.section.data[offset + 1]])
    }

    pub fn u32_at(&self, offset: usize) -> u32 {
        let d = &self.section.data[offset..offset + 4];
        u32::from_le_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Resolves a relocation's symbol.
    pub fn target(&self, at: At, rel: &Relocation) -> Result<RelocTarget<'data>, SpecialSectionError> {
        if rel.symbol >= self.file.symbol_count().max(1) {
            return Err(self.error(Some(at), Problem::BadSymbol { symbol: rel.symbol }));
        }
        let (name, symbol_kind, binding, section, value) = if rel.symbol == 0 {
            ("", SymbolKind::NoType, STB_LOCAL, None, 0)
        } else {
            let s = self.file.symbol(rel.symbol).map_err(|e| self.error(Some(at), Problem::Elf(e)))?;
            (s.name, s.kind, s.binding, s.section, s.value)
        };
        Ok(RelocTarget {
            kind: rel.kind,
            symbol: rel.symbol,
            name,
            symbol_kind,
            binding,
            section,
            value,
            addend: rel.addend,
        })
    }

    /// The relocation target of the field at `offset` (entry `entry`), required.
    pub fn field_target(
        &self,
        entry: usize,
        offset: usize,
        field: &'static str,
    ) -> Result<RelocTarget<'data>, SpecialSectionError> {
        let at = At::Entry(entry);
        let Some((_, rel)) = self.by_offset.get(&(offset as u64)) else {
            return Err(self.error(Some(at), Problem::MissingRelocation { field, offset: offset as u64 }));
        };
        self.target(at, rel)
    }

    /// The location the field at `offset` points at, required: objtool's `reloc_to_sec_off`.
    pub fn field_location(
        &self,
        entry: usize,
        offset: usize,
        field: &'static str,
    ) -> Result<Location, SpecialSectionError> {
        let t = self.field_target(entry, offset, field)?;
        self.location_of(At::Entry(entry), &t, field)
    }

    /// `t.location()`, or the error saying why there is none.
    pub fn location_of(
        &self,
        at: At,
        t: &RelocTarget<'_>,
        field: &'static str,
    ) -> Result<Location, SpecialSectionError> {
        if t.section.is_none() {
            return Err(self.error(Some(at), Problem::Undefined { field, name: t.name.to_string() }));
        }
        t.location().ok_or_else(|| {
            self.error(
                Some(at),
                Problem::OutOfRange { field, name: t.name.to_string(), value: t.value, addend: t.addend },
            )
        })
    }
}

/// objtool's "_ASM_EXTABLE_EX hack": a replacement offset at or above 0x7ffffff0 has that bias
/// subtracted. Old kernels (`_ASM_EXTABLE_EX`, 4.x) added it to `__ex_table` fixups to encode
/// a class; objtool applies the subtraction to the `new` field of all three tables it reads
/// (`.altinstructions`, `__jump_table`, `__ex_table`). Returns the location and whether the
/// bias was removed.
pub fn remove_extable_bias(location: Location) -> (Location, bool) {
    const BIAS: u64 = 0x7fff_fff0;
    if location.offset >= BIAS {
        (Location::new(location.section, location.offset - BIAS), true)
    } else {
        (location, false)
    }
}
