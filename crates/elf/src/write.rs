//! Writing ORC tables into a relocatable object, as objtool does: three new sections,
//! `.orc_unwind`, `.orc_unwind_ip` and `.rela.orc_unwind_ip`, one PC32 relocation per entry
//! against the text section's symbol.
//!
//! The file is rebuilt with `object::build::elf::Builder`, which keeps every existing section,
//! symbol and relocation and lays the file out anew (objtool's libelf appends instead; the
//! contents are the same, the offsets are not). The builder refuses `SHT_GROUP` and
//! `.llvm_addrsig` sections; such inputs get a clear error.

use object::build::elf::{Builder, Relocation as BuildRelocation, SectionData, SymbolId};
use object::build::ByteString;
use object::elf;
use orc_format::{Endian, RawEntry, ORC_ENTRY_SIZE, ORC_IP_SIZE};

use crate::error::ElfError;

/// One row of the table to write: the entry for the instruction at `offset` in section
/// `section` (an index in the input file).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OrcRow {
    /// Input section index of the text section.
    pub section: usize,
    /// Offset of the instruction in that section.
    pub offset: u64,
    /// The stored entry.
    pub raw: RawEntry,
}

/// Returns `input` with the ORC sections for `rows` added, rows in the given order.
///
/// Fails if the input already has `.orc_unwind` (objtool refuses too: run it on an object
/// only once), or cannot be rebuilt.
pub fn add_orc_sections(input: &[u8], rows: &[OrcRow]) -> Result<Vec<u8>, ElfError> {
    let mut builder = Builder::read64(input).map_err(|e| ElfError::Malformed(format!("cannot rewrite: {e}")))?;
    if builder.sections.iter().any(|s| s.name.as_slice() == b".orc_unwind" || s.name.as_slice() == b".orc_unwind_ip") {
        return Err(ElfError::Malformed("already has ORC sections (.orc_unwind); strip them first".into()));
    }
    let symtab = builder
        .sections
        .iter()
        .find(|s| matches!(s.data, SectionData::Symbol))
        .map(|s| s.id())
        .ok_or_else(|| ElfError::Malformed("has no symbol table".into()))?;

    // The builder's section ids are input indices minus one (it drops the null section).
    let section_ids: Vec<_> = builder.sections.iter().map(|s| s.id()).collect();
    let section_id = |index: usize| {
        index.checked_sub(1).and_then(|i| section_ids.get(i).copied()).ok_or_else(|| {
            ElfError::Malformed(format!("ORC row names section {index}, which does not exist"))
        })
    };

    // One section symbol per text section, made if the file lacks it (objtool does the same).
    let mut section_symbols: Vec<(usize, SymbolId)> = Vec::new();
    for row in rows {
        if section_symbols.iter().any(|&(s, _)| s == row.section) {
            continue;
        }
        let id = section_id(row.section)?;
        let existing = builder
            .symbols
            .iter()
            .find(|sym| sym.section == Some(id) && sym.st_type() == elf::STT_SECTION)
            .map(|sym| sym.id());
        let sym = match existing {
            Some(sym) => sym,
            None => {
                let sym = builder.symbols.add();
                sym.name = ByteString::from(&b""[..]);
                sym.section = Some(id);
                sym.set_st_info(elf::STB_LOCAL, elf::STT_SECTION);
                sym.id()
            }
        };
        section_symbols.push((row.section, sym));
    }

    let mut orc = Vec::with_capacity(rows.len() * ORC_ENTRY_SIZE);
    let mut relocations = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        orc.extend_from_slice(&row.raw.to_bytes(Endian::Little));
        let symbol = section_symbols.iter().find(|&&(s, _)| s == row.section).map(|&(_, sym)| sym);
        let addend = i64::try_from(row.offset)
            .map_err(|_| ElfError::Malformed(format!("offset {:#x} does not fit a relocation addend", row.offset)))?;
        relocations.push(BuildRelocation {
            r_offset: (i * ORC_IP_SIZE) as u64,
            symbol,
            r_type: elf::R_X86_64_PC32,
            r_addend: addend,
        });
    }

    let orc_section = builder.sections.add();
    orc_section.name = ByteString::from(&b".orc_unwind"[..]);
    orc_section.sh_type = elf::SHT_PROGBITS;
    orc_section.sh_flags = elf::SHF_ALLOC;
    orc_section.sh_addralign = 1;
    orc_section.sh_entsize = ORC_ENTRY_SIZE as u64;
    orc_section.data = SectionData::Data(orc.into());

    let ip_section = builder.sections.add();
    ip_section.name = ByteString::from(&b".orc_unwind_ip"[..]);
    ip_section.sh_type = elf::SHT_PROGBITS;
    ip_section.sh_flags = elf::SHF_ALLOC;
    ip_section.sh_addralign = 1;
    ip_section.sh_entsize = ORC_IP_SIZE as u64;
    ip_section.data = SectionData::Data(vec![0u8; rows.len() * ORC_IP_SIZE].into());
    let ip_id = ip_section.id();

    let rela = builder.sections.add();
    rela.name = ByteString::from(&b".rela.orc_unwind_ip"[..]);
    rela.sh_type = elf::SHT_RELA;
    rela.sh_flags = elf::SHF_INFO_LINK;
    rela.sh_addralign = 8;
    rela.sh_entsize = 24;
    rela.sh_link_section = Some(symtab);
    rela.sh_info_section = Some(ip_id);
    rela.data = SectionData::Relocation(relocations);

    let mut out = Vec::with_capacity(input.len() + rows.len() * 40 + 4096);
    builder.write(&mut out).map_err(|e| ElfError::Malformed(format!("cannot write: {e}")))?;
    Ok(out)
}
