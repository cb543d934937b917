//! From a relocated field to the place it points at: what every special-section parser shares.

use core::fmt;
use std::collections::BTreeMap;

use orc_elf::{ElfFile, FileKind, Relocation, Section, SymbolKind};

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

/// A linked file's allocated sections by address, to turn an address into a [`Location`]
/// (section index, offset). A linked file (an executable such as vmlinux) has no relocations:
/// its tables hold resolved values, place-relative (`field address + value`) or absolute,
/// and the same tables then say the same things once each address is mapped back to its
/// section.
#[derive(Clone, Debug, Default)]
pub struct AddressMap {
    /// `(start, end, section index)` of every allocated section with an address and a size,
    /// sorted by start.
    ranges: Vec<(u64, u64, usize)>,
    /// Each section's address, by section index.
    addresses: Vec<u64>,
}

impl AddressMap {
    /// The allocated sections of `file`. Sections at address 0 (vmlinux's `.data..percpu`,
    /// whose variables are offsets, not addresses) are left out.
    pub fn new(file: &ElfFile<'_>) -> AddressMap {
        let mut ranges = Vec::new();
        let mut addresses = vec![0; file.section_count()];
        for s in file.sections().flatten() {
            if let Some(a) = addresses.get_mut(s.index) {
                *a = s.address;
            }
            if s.is_alloc() && s.address != 0 && s.size != 0 {
                if let Some(end) = s.address.checked_add(s.size) {
                    ranges.push((s.address, end, s.index));
                }
            }
        }
        ranges.sort_unstable();
        AddressMap { ranges, addresses }
    }

    /// The section holding `address`, and the offset in it. Where sections overlap, the one
    /// starting last.
    pub fn locate(&self, address: u64) -> Option<Location> {
        let n = self.ranges.partition_point(|r| r.0 <= address);
        self.ranges[..n]
            .iter()
            .rev()
            .find(|r| address < r.1)
            .map(|&(start, _, index)| Location::new(index, address - start))
    }

    /// The section that ends exactly at `address` (where a section's end-of-code terminator
    /// sits, which is also the next section's first byte).
    pub fn ending_at(&self, address: u64) -> Option<Location> {
        self.ranges.iter().find(|r| r.1 == address).map(|&(start, end, index)| Location::new(index, end - start))
    }

    /// The section's address (0 for an unknown section).
    pub fn section_address(&self, section: usize) -> u64 {
        self.addresses.get(section).copied().unwrap_or(0)
    }

    /// The address of a location.
    pub fn address(&self, at: Location) -> u64 {
        self.section_address(at.section).wrapping_add(at.offset)
    }
}

/// How a field of a table is stored in a linked file (in a relocatable file the relocation
/// says where it points, whatever the field's width).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Field {
    /// `s32`, relative to the field's own address (`.long 661b - .`).
    Relative32,
    /// `u64` absolute address (`.quad 661b`).
    Absolute64,
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
    /// A linked file: fields are resolved values, read through this map; relocations (if a
    /// linker left any with `--emit-relocs`) are not used.
    pub linked: Option<AddressMap>,
}

impl<'data, 'file> Table<'data, 'file> {
    /// The section called `name` and its relocations, or `None` if the file has no such
    /// section. The relocation section is the one whose `sh_info` names it, or else the one
    /// called `.rela<name>` (objtool finds annotation relocations by name).
    pub fn open(file: &'file ElfFile<'data>, name: &str) -> Result<Option<Self>, SpecialSectionError> {
        let err = |p| SpecialSectionError::new(name, None, p);
        let linked = file.kind() != FileKind::Relocatable;
        let found = file.section_by_name(name).map_err(|e| err(Problem::Elf(e)))?;
        let found = match found {
            None if linked => bounded_by_symbols(file, name).map_err(err)?,
            s => s,
        };
        let Some(section) = found else {
            return Ok(None);
        };
        if section.data.len() as u64 != section.size {
            return Err(err(Problem::NoContents));
        }
        if linked {
            return Ok(Some(Table {
                file,
                section,
                rela: None,
                by_offset: BTreeMap::new(),
                relocations: Vec::new(),
                linked: Some(AddressMap::new(file)),
            }));
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
        Ok(Some(Table { file, section, rela, by_offset, relocations, linked: None }))
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

    /// Requires a relocation section (when the table is not empty and the file is not linked).
    pub fn require_relocations(&self) -> Result<(), SpecialSectionError> {
        if self.rela.is_none() && self.linked.is_none() && !self.section.data.is_empty() {
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

    pub fn u64_at(&self, offset: usize) -> u64 {
        let d = &self.section.data[offset..offset + 8];
        u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
    }

    /// A linked file's field at `offset`: the address it holds (place-relative fields are
    /// added to their own address). `None` in a relocatable file.
    pub fn linked_address(&self, offset: usize, encoding: Field) -> Option<u64> {
        self.linked.as_ref()?;
        Some(match encoding {
            Field::Relative32 => {
                let place = self.section.address.wrapping_add(offset as u64);
                place.wrapping_add(self.u32_at(offset) as i32 as i64 as u64)
            }
            Field::Absolute64 => self.u64_at(offset),
        })
    }

    /// What a linked file's field stands for, as the relocation a relocatable file would
    /// carry: no symbol, the target's section and offset as the value, and the address bits
    /// under `flag_mask` (flags the kernel keeps in the low bits of an aligned pointer, such
    /// as a jump label's `branch`) as the addend. An address in no section is undefined.
    fn linked_target(&self, address: u64, flag_mask: u64) -> RelocTarget<'data> {
        let map = self.linked.as_ref().expect("linked table");
        let kind = R_X86_64_PC32;
        let flags = address & flag_mask;
        let (section, value) = match map.locate(address & !flag_mask) {
            Some(l) => (Some(l.section), l.offset),
            None => (None, address & !flag_mask),
        };
        RelocTarget {
            kind,
            symbol: 0,
            name: "",
            symbol_kind: SymbolKind::NoType,
            binding: STB_LOCAL,
            section,
            value,
            addend: flags as i64,
        }
    }

    /// The relocation target of the field at `offset` (entry `entry`), required; in a linked
    /// file, what the place-relative field points at (see [`Table::linked_target`]).
    pub fn field_target(
        &self,
        entry: usize,
        offset: usize,
        field: &'static str,
    ) -> Result<RelocTarget<'data>, SpecialSectionError> {
        self.field_target_with_flags(entry, offset, field, Field::Relative32, 0)
    }

    /// [`Table::field_target`] for a pointer stored as `encoding` whose low bits under
    /// `flag_mask` are flags: in a relocatable file they are in the addend already; in a
    /// linked file they are split off the address into the addend.
    pub fn field_target_with_flags(
        &self,
        entry: usize,
        offset: usize,
        field: &'static str,
        encoding: Field,
        flag_mask: u64,
    ) -> Result<RelocTarget<'data>, SpecialSectionError> {
        if let Some(address) = self.linked_address(offset, encoding) {
            return Ok(self.linked_target(address, flag_mask));
        }
        let at = At::Entry(entry);
        let Some((_, rel)) = self.by_offset.get(&(offset as u64)) else {
            return Err(self.error(Some(at), Problem::MissingRelocation { field, offset: offset as u64 }));
        };
        self.target(at, rel)
    }

    /// The location the field at `offset` points at, required: objtool's `reloc_to_sec_off`;
    /// in a linked file, the section and offset of the address a place-relative field holds.
    pub fn field_location(
        &self,
        entry: usize,
        offset: usize,
        field: &'static str,
    ) -> Result<Location, SpecialSectionError> {
        self.field_location_as(entry, offset, field, Field::Relative32)
    }

    /// [`Table::field_location`] for a field stored as `encoding` in a linked file.
    pub fn field_location_as(
        &self,
        entry: usize,
        offset: usize,
        field: &'static str,
        encoding: Field,
    ) -> Result<Location, SpecialSectionError> {
        if let Some(address) = self.linked_address(offset, encoding) {
            let map = self.linked.as_ref().expect("linked table");
            return map
                .locate(address)
                .ok_or_else(|| self.error(Some(At::Entry(entry)), Problem::Unmapped { field, address }));
        }
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

/// A table the final link put inside a bigger output section (vmlinux keeps `__jump_table`,
/// `.static_call_sites` and `__mcount_loc` in `.data` or `.init.data`), found through the
/// symbols the linker script puts around it: `__start_<name>` and `__stop_<name>`, with the
/// name's leading `.` dropped (`__start___jump_table`, `__start_static_call_sites`), or with
/// its leading `__` dropped (`__start_mcount_loc`). Returns a section view of just the table:
/// the containing section's index, the table's address and bytes, and the table's name.
fn bounded_by_symbols<'data>(file: &ElfFile<'data>, name: &str) -> Result<Option<Section<'data>>, Problem> {
    let base = name.strip_prefix('.').unwrap_or(name);
    let mut wanted: Vec<(String, String)> = vec![(format!("__start_{base}"), format!("__stop_{base}"))];
    if let Some(short) = base.strip_prefix("__") {
        wanted.push((format!("__start_{short}"), format!("__stop_{short}")));
    }
    let mut found: Vec<(Option<u64>, Option<u64>)> = vec![(None, None); wanted.len()];
    for sym in file.symbols().flatten() {
        if !sym.name.starts_with("__st") || sym.kind == SymbolKind::Section {
            continue;
        }
        for (k, (start, stop)) in wanted.iter().enumerate() {
            if sym.name == start.as_str() && found[k].0.is_none() {
                found[k].0 = Some(sym.value);
            } else if sym.name == stop.as_str() && found[k].1.is_none() {
                found[k].1 = Some(sym.value);
            }
        }
    }
    let Some((start, stop)) = found.into_iter().find_map(|(a, b)| Some((a?, b?))) else {
        return Ok(None);
    };
    if stop < start {
        return Err(Problem::Layout(format!("its end symbol {stop:#x} is before its start symbol {start:#x}")));
    }
    let map = AddressMap::new(file);
    let Some(at) = map.locate(start) else {
        // An empty table at the end of a section, or symbols in no section: nothing to read.
        return Ok(None);
    };
    let outer = file.section(at.section).map_err(Problem::Elf)?;
    if outer.data.len() as u64 != outer.size {
        return Err(Problem::NoContents);
    }
    let len = stop - start;
    let data = usize::try_from(at.offset)
        .ok()
        .and_then(|from| outer.data.get(from..from.checked_add(usize::try_from(len).ok()?)?))
        .ok_or_else(|| {
            Problem::Layout(format!("its symbols {start:#x}..{stop:#x} run past the end of {}", outer.name))
        })?;
    Ok(Some(Section { name: outer_name(name, outer.name), address: start, size: len, data, ..outer }))
}

/// The name a table view carries: its own when the caller passed a `'static` one; the
/// containing section's otherwise. Errors name the table, so the view keeps the table's name
/// where it can.
fn outer_name<'data>(table: &str, outer: &'data str) -> &'data str {
    match KNOWN_TABLES.iter().find(|&&t| t == table) {
        Some(t) => t,
        None => outer,
    }
}

/// Tables that may live inside another output section of a linked file.
const KNOWN_TABLES: [&str; 10] = [
    "__jump_table",
    ".static_call_sites",
    "__mcount_loc",
    "__ex_table",
    ".altinstructions",
    ".parainstructions",
    ".retpoline_sites",
    ".return_sites",
    ".call_sites",
    ".ibt_endbr_seal",
];

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
