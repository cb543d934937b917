//! Reading the ORC table of a file: `.orc_unwind`, `.orc_unwind_ip` and, in relocatable files,
//! `.rela.orc_unwind_ip`.

use orc_format::{Endian, Layout, RawEntry, ORC_ENTRY_SIZE, ORC_IP_SIZE};

use crate::error::ElfError;
use crate::file::{ElfFile, FileKind};
use crate::modinfo::{kernel_version, KernelVersion};

/// `R_X86_64_PC32`: the only relocation objtool emits for `.orc_unwind_ip`.
const R_X86_64_PC32: u32 = 2;

/// Where the instruction address of one entry comes from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OrcAddress<'data> {
    /// A relocatable file: the PC32 relocation of the slot names a symbol (usually the text
    /// section's symbol) and an addend (the instruction's offset from it; no `-4`, because the
    /// reference point is the slot itself).
    Relocated {
        /// Symbol name; a section symbol is named after its section.
        name: &'data str,
        /// Symbol index.
        symbol: usize,
        /// Section the symbol is defined in, if any.
        section: Option<usize>,
        /// Symbol value (0 for section symbols in relocatable files).
        symbol_value: u64,
        /// Relocation addend.
        addend: i64,
    },
    /// A linked file: `slot address + slot value`.
    Absolute(u64),
}

/// How the layout of a table was decided.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LayoutSource {
    /// The caller said so (`--orc-layout`).
    Given,
    /// `.orc_header` holds the hash of that layout.
    Header,
    /// No `.orc_header`; the file says which kernel it was built for.
    KernelVersion(KernelVersion),
    /// Nothing in the file tells: the newest layout was assumed.
    Assumed,
}

/// The ORC table of one file, in file order (not sorted).
pub struct OrcTable<'data> {
    /// How to read the entries' flag bits.
    pub layout: Layout,
    /// Why that layout.
    pub layout_source: LayoutSource,
    entries: &'data [u8],
    /// Address of each entry, same length as the entries.
    pub addresses: Vec<OrcAddress<'data>>,
}

impl<'data> OrcTable<'data> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// The stored entry `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn entry(&self, i: usize) -> RawEntry {
        let bytes: [u8; 6] = self.entries[i * ORC_ENTRY_SIZE..(i + 1) * ORC_ENTRY_SIZE]
            .try_into()
            .expect("slice of six bytes");
        RawEntry::from_bytes(bytes, Endian::Little)
    }

    /// Entries with their addresses, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (OrcAddress<'data>, RawEntry)> + '_ {
        self.addresses.iter().enumerate().map(|(i, &a)| (a, self.entry(i)))
    }
}

/// Decides the layout of `file`'s table: the caller's choice, else `.orc_header`, else the
/// kernel version the file names, else v3 (the layout of 6.4-7.0; the caller says so in a note).
pub fn detect_layout(file: &ElfFile<'_>, given: Option<Layout>) -> Result<(Layout, LayoutSource), ElfError> {
    if let Some(layout) = given {
        return Ok((layout, LayoutSource::Given));
    }
    if let Some(header) = file.section_by_name(".orc_header")? {
        return Ok((Layout::from_header(header.data)?, LayoutSource::Header));
    }
    if let Some(version) = kernel_version(file) {
        return Ok((Layout::from_kernel_version(version.major, version.minor), LayoutSource::KernelVersion(version)));
    }
    Ok((Layout::V3, LayoutSource::Assumed))
}

/// Reads the ORC table of `file`, or `None` if it has none.
///
/// Checks what the kernel checks before trusting a table (sizes multiples of 4 and 6, equal
/// counts), and, for relocatable files, that every slot has exactly one PC32 relocation to an
/// existing symbol. Relocations are matched to slots by their offset, not by their position in
/// the relocation section (objtool's dump assumes the two agree; they always do in files
/// objtool wrote).
pub fn read_orc_table<'data>(file: &ElfFile<'data>, given: Option<Layout>) -> Result<Option<OrcTable<'data>>, ElfError> {
    let orc = file.section_by_name(".orc_unwind")?;
    let ip = file.section_by_name(".orc_unwind_ip")?;
    let (orc, ip) = match (orc, ip) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(ElfError::Malformed("has .orc_unwind but no .orc_unwind_ip".into())),
        (None, Some(_)) => return Err(ElfError::Malformed("has .orc_unwind_ip but no .orc_unwind".into())),
        (Some(orc), Some(ip)) => (orc, ip),
    };
    if orc.data.len() % ORC_ENTRY_SIZE != 0 {
        return Err(ElfError::BadSectionSize {
            section: ".orc_unwind".into(),
            size: orc.data.len() as u64,
            entry_size: ORC_ENTRY_SIZE as u64,
        });
    }
    if ip.data.len() % ORC_IP_SIZE != 0 {
        return Err(ElfError::BadSectionSize {
            section: ".orc_unwind_ip".into(),
            size: ip.data.len() as u64,
            entry_size: ORC_IP_SIZE as u64,
        });
    }
    let count = orc.data.len() / ORC_ENTRY_SIZE;
    let ip_count = ip.data.len() / ORC_IP_SIZE;
    if count != ip_count {
        return Err(ElfError::OrcCountMismatch { orc: count, ip: ip_count });
    }
    let (layout, layout_source) = detect_layout(file, given)?;

    // A linked file's slots are resolved (place-relative); the relocations a linker keeps
    // with `--emit-relocs` (Debian's 6.1 vmlinux) describe the slots before `sorttable`
    // sorted them, so they are not used.
    let rela_index = match file.section_by_name(".rela.orc_unwind_ip")? {
        _ if file.kind() != FileKind::Relocatable => None,
        Some(s) => Some(s.index),
        None => file.relocation_section_for(ip.index),
    };
    let addresses = match rela_index {
        Some(rela_index) => relocated_addresses(file, rela_index, count)?,
        None => absolute_addresses(ip.address, ip.data),
    };
    Ok(Some(OrcTable { layout, layout_source, entries: orc.data, addresses }))
}

fn absolute_addresses<'data>(base: u64, slots: &[u8]) -> Vec<OrcAddress<'data>> {
    slots
        .chunks_exact(ORC_IP_SIZE)
        .enumerate()
        .map(|(i, slot)| {
            let rel = i32::from_le_bytes(slot.try_into().expect("four bytes"));
            let slot_addr = base.wrapping_add((i * ORC_IP_SIZE) as u64);
            OrcAddress::Absolute(slot_addr.wrapping_add(rel as i64 as u64))
        })
        .collect()
}

fn relocated_addresses<'data>(file: &ElfFile<'data>, rela_index: usize, count: usize) -> Result<Vec<OrcAddress<'data>>, ElfError> {
    let relocations = file.relocations(rela_index)?;
    let rela_name = || file.section(rela_index).map(|s| s.name.to_string()).unwrap_or_default();
    let mut slots: Vec<Option<OrcAddress<'data>>> = vec![None; count];
    for (index, rel) in relocations.iter().enumerate() {
        let bad = |problem: String| ElfError::BadRelocation { section: rela_name(), index, problem };
        if rel.kind != R_X86_64_PC32 {
            return Err(bad(format!("type {}, expected R_X86_64_PC32", rel.kind)));
        }
        if rel.offset % ORC_IP_SIZE as u64 != 0 || rel.offset / ORC_IP_SIZE as u64 >= count as u64 {
            return Err(bad(format!("offset {:#x} is not a slot of .orc_unwind_ip", rel.offset)));
        }
        let slot = (rel.offset / ORC_IP_SIZE as u64) as usize;
        if slots[slot].is_some() {
            return Err(bad(format!("second relocation for slot {slot}")));
        }
        if rel.symbol == 0 || rel.symbol >= file.symbol_count() {
            return Err(bad(format!("symbol index {} does not exist", rel.symbol)));
        }
        let sym = file.symbol(rel.symbol)?;
        slots[slot] = Some(OrcAddress::Relocated {
            name: sym.name,
            symbol: rel.symbol,
            section: sym.section,
            symbol_value: sym.value,
            addend: rel.addend,
        });
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(slot, a)| a.ok_or(ElfError::MissingRelocation { slot, offset: (slot * ORC_IP_SIZE) as u64 }))
        .collect()
}
