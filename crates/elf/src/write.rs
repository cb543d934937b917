//! Writing ORC tables into a relocatable object, as objtool does: three new sections,
//! `.orc_unwind`, `.orc_unwind_ip` and `.rela.orc_unwind_ip`, one PC32 relocation per entry
//! against the text section's symbol; and the site tables objtool writes before them
//! (`.static_call_sites`, `.retpoline_sites`, `.return_sites`, `.call_sites`,
//! `.ibt_endbr_seal`, `__mcount_loc`), each with its `.rela` section; and the changes objtool
//! makes inside the object ([`Changes`]): instructions overwritten in place, their relocations
//! made `R_X86_64_NONE`, symbols added.
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

/// One row of a site table: a 4-byte slot relocated (`R_X86_64_PC32`) to the instruction at
/// `offset` in input section `section`; for `.static_call_sites` a second slot relocated to
/// the key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SiteRow {
    /// Input section index of the instruction.
    pub section: usize,
    /// Offset of the instruction in that section.
    pub offset: u64,
    /// For `.static_call_sites`: the key's `.symtab` index and the addend of its relocation
    /// (`STATIC_CALL_SITE_TAIL` for a tail call).
    pub key: Option<(usize, i64)>,
}

/// How a site table's slots point at their instructions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Slot {
    /// A 4-byte place-relative slot (`R_X86_64_PC32`): the tables the kernel walks with
    /// `offset_to_ptr`.
    #[default]
    Pc32,
    /// An 8-byte absolute address (`R_X86_64_64`), 8-byte aligned: `__mcount_loc`, which
    /// ftrace reads as an array of addresses.
    Abs64,
}

/// A table of sites to add: `.retpoline_sites`, `.return_sites`, `.call_sites`,
/// `.ibt_endbr_seal` (4-byte entries), `.static_call_sites` (8-byte entries, every row with
/// a key, written `SHF_WRITE` so that modules may change the key's low bits) or
/// `__mcount_loc` ([`Slot::Abs64`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SiteTable {
    /// Section name.
    pub name: String,
    /// Rows, in order.
    pub rows: Vec<SiteRow>,
    /// What a slot holds.
    pub slot: Slot,
}

impl SiteTable {
    fn entry_size(&self) -> usize {
        if self.slot == Slot::Abs64 || self.rows.iter().any(|r| r.key.is_some()) {
            8
        } else {
            4
        }
    }
}

/// One instruction objtool overwrites in place.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InsnPatch {
    /// Input section index.
    pub section: usize,
    /// Offset of the instruction in that section.
    pub offset: u64,
    /// The new bytes (as many as the instruction had).
    pub bytes: Vec<u8>,
    /// The offset (in the same section) of the relocation inside the instruction, which
    /// becomes `R_X86_64_NONE`; `None` when the instruction had none.
    pub reloc_offset: Option<u64>,
}

/// One symbol objtool adds to `.symtab` (`st_other` 0, as objtool leaves it).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewSymbol {
    /// Name.
    pub name: String,
    /// Input section index of the defining section.
    pub section: usize,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_info` (binding and type).
    pub info: u8,
}

/// Everything to change in an object, in objtool's order: the site tables, then the ORC
/// sections, added; instructions overwritten; symbols added.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Changes<'a> {
    /// Site tables to add (empty ones are left out).
    pub tables: &'a [SiteTable],
    /// ORC rows; `None` or empty: no ORC sections.
    pub orc: Option<&'a [OrcRow]>,
    /// Instructions to overwrite.
    pub patches: &'a [InsnPatch],
    /// Symbols to add.
    pub symbols: &'a [NewSymbol],
}

/// Returns `input` with the ORC sections for `rows` added, rows in the given order.
///
/// Fails if the input already has `.orc_unwind` (objtool refuses too: run it on an object
/// only once), or cannot be rebuilt.
pub fn add_orc_sections(input: &[u8], rows: &[OrcRow]) -> Result<Vec<u8>, ElfError> {
    add_sections(input, &[], Some(rows))
}

/// Returns `input` with the site tables (in the given order, empty ones left out) and then,
/// if `orc` is given and not empty, the ORC sections added: what objtool writes, in its
/// order. Each table `T` comes with `.rela.T`, one `R_X86_64_PC32` per slot: a site against
/// its section's symbol (made if missing) with the offset as addend, a key against the key
/// symbol.
///
/// Fails if the input already has a section about to be added, or cannot be rebuilt.
pub fn add_sections(
    input: &[u8],
    tables: &[SiteTable],
    orc: Option<&[OrcRow]>,
) -> Result<Vec<u8>, ElfError> {
    rewrite(input, &Changes { tables, orc, ..Changes::default() })
}

/// Returns `input` with every change of `changes` made: what objtool does to an object.
///
/// Fails if the input already has a section about to be added, a patch or symbol names a
/// section that does not exist or lies outside it, or the file cannot be rebuilt.
pub fn rewrite(input: &[u8], changes: &Changes<'_>) -> Result<Vec<u8>, ElfError> {
    Rewriter::read(input)?.finish(changes)
}

/// The largest section alignment a rewrite keeps (16 MB; kernel objects use up to 2 MB).
const MAX_ALIGN: u64 = 1 << 24;

/// An object read for rewriting, before the changes are known: reading a large object
/// (`vmlinux.o`: millions of relocations) takes as long as a good part of the analysis, so a
/// caller may read it on another thread while the analysis runs, then [`Rewriter::finish`].
pub struct Rewriter<'data> {
    how: How<'data>,
    input_len: usize,
}

/// How an object is rewritten.
enum How<'data> {
    /// Sections kept in place, the new ones appended ([`crate::append`]): most objects.
    Append(crate::append::Layout<'data>),
    /// Rebuilt and laid out anew by `object`'s builder: the others.
    Rebuild(Box<Builder<'data>>),
}

impl<'data> Rewriter<'data> {
    /// Reads `input` for rewriting: its section headers when the appending writer takes it
    /// (cheap), else the whole object into the rebuilder.
    pub fn read(input: &'data [u8]) -> Result<Self, ElfError> {
        Self::read_as(input, true)
    }

    /// [`Rewriter::read`], always through the rebuilder (`append: false`): the two writers
    /// must make the same object, and tests compare them.
    pub fn read_as(input: &'data [u8], append: bool) -> Result<Self, ElfError> {
        let how = match append.then(|| crate::append::Layout::read(input)).transpose()?.flatten() {
            Some(layout) => How::Append(layout),
            None => How::Rebuild(Box::new(Self::builder(input)?)),
        };
        Ok(Rewriter { how, input_len: input.len() })
    }

    /// The rebuilder's view of `input`, with every section's alignment one it can lay out.
    fn builder(input: &'data [u8]) -> Result<Builder<'data>, ElfError> {
        let mut builder = Builder::read64(input)
            .map_err(|e| ElfError::Malformed(format!("cannot rewrite: {e}")))?;
        // The builder aligns each section's new offset by its `sh_addralign` as if it were a
        // power of two of at least 1. ELF allows 0 (no alignment: 1 here); one that is not a
        // power of two, or so large that aligning would place the section gigabytes out, is
        // refused (the fuzz target `check_kernel` found the builder computing 0 - 1 for 0: an
        // overflow, and with wrapping arithmetic a section written over the ELF header).
        for section in builder.sections.iter_mut() {
            match section.sh_addralign {
                0 => section.sh_addralign = 1,
                a if !a.is_power_of_two() || a > MAX_ALIGN => {
                    return Err(ElfError::Malformed(format!(
                        "cannot rewrite: section {} has alignment {a:#x} (a power of two up to {MAX_ALIGN:#x} expected)",
                        section.name
                    )));
                }
                _ => {}
            }
        }
        Ok(builder)
    }

    /// Makes `changes` and returns the new file.
    pub fn finish(self, changes: &Changes<'_>) -> Result<Vec<u8>, ElfError> {
        let mut out = Vec::with_capacity(self.input_len + self.input_len / 8);
        match self.how {
            How::Append(layout) => layout.write(changes, &mut out)?,
            How::Rebuild(builder) => apply(*builder, changes)?
                .write(&mut out)
                .map_err(|e| ElfError::Malformed(format!("cannot write: {e}")))?,
        }
        Ok(out)
    }

    /// Makes `changes` and writes the new file to `out` as it is laid out, without holding a
    /// copy of it in memory (`vmlinux.o`'s is as large as the input). On an error part of it
    /// may have been written: write to a temporary file.
    pub fn finish_to(self, changes: &Changes<'_>, out: impl std::io::Write) -> Result<(), ElfError> {
        let io = |e: std::io::Error| ElfError::Malformed(format!("cannot write: {e}"));
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        match self.how {
            How::Append(layout) => {
                layout.write(changes, &mut out)?;
                std::io::Write::flush(&mut out).map_err(io)
            }
            How::Rebuild(builder) => {
                let mut stream = object::write::StreamingBuffer::new(out);
                apply(*builder, changes)?
                    .write(&mut stream)
                    .map_err(|e| ElfError::Malformed(format!("cannot write: {e}")))?;
                stream.flush().map_err(io)
            }
        }
    }
}

/// Makes `changes` in the rebuilder: what is left is laying the file out.
fn apply<'data>(mut builder: Builder<'data>, changes: &Changes<'_>) -> Result<Builder<'data>, ElfError> {
    let tables = changes.tables;
    let orc = changes.orc.filter(|r| !r.is_empty());
    if orc.is_some()
        && builder
            .sections
            .iter()
            .any(|s| s.name.as_slice() == b".orc_unwind" || s.name.as_slice() == b".orc_unwind_ip")
    {
        return Err(ElfError::Malformed(
            "already has ORC sections (.orc_unwind); strip them first".into(),
        ));
    }
    for t in tables.iter().filter(|t| !t.rows.is_empty()) {
        if builder
            .sections
            .iter()
            .any(|s| s.name.as_slice() == t.name.as_bytes())
        {
            return Err(ElfError::Malformed(format!(
                "already has {}; strip it first",
                t.name
            )));
        }
    }
    let symtab = builder
        .sections
        .iter()
        .find(|s| matches!(s.data, SectionData::Symbol))
        .map(|s| s.id())
        .ok_or_else(|| ElfError::Malformed("has no symbol table".into()))?;

    // The builder's section and symbol ids are input indices minus one (it drops the null
    // entries).
    let section_ids: Vec<_> = builder.sections.iter().map(|s| s.id()).collect();
    let section_id = |index: usize| {
        index
            .checked_sub(1)
            .and_then(|i| section_ids.get(i).copied())
            .ok_or_else(|| {
                ElfError::Malformed(format!("a row names section {index}, which does not exist"))
            })
    };
    let symbol_ids: Vec<SymbolId> = builder.symbols.iter().map(|s| s.id()).collect();
    let symbol_id = |index: usize| {
        index
            .checked_sub(1)
            .and_then(|i| symbol_ids.get(i).copied())
            .ok_or_else(|| {
                ElfError::Malformed(format!("a row names symbol {index}, which does not exist"))
            })
    };

    // One section symbol per text section, made if the file lacks it (objtool does the same).
    let mut section_symbols: Vec<(usize, SymbolId)> = Vec::new();
    let mut section_symbol =
        |builder: &mut Builder<'_>, section: usize| -> Result<SymbolId, ElfError> {
            if let Some(&(_, sym)) = section_symbols.iter().find(|&&(s, _)| s == section) {
                return Ok(sym);
            }
            let id = section_id(section)?;
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
            section_symbols.push((section, sym));
            Ok(sym)
        };
    let addend_of = |offset: u64| {
        i64::try_from(offset).map_err(|_| {
            ElfError::Malformed(format!(
                "offset {offset:#x} does not fit a relocation addend"
            ))
        })
    };

    apply_patches(&mut builder, &section_ids, changes.patches)?;
    for new in changes.symbols {
        let section = section_id(new.section)?;
        let sym = builder.symbols.add();
        sym.name = ByteString::from(new.name.as_bytes().to_vec());
        sym.section = Some(section);
        sym.st_info = elf::SymbolInfo(new.info);
        sym.st_other = elf::SymbolOther(0);
        sym.st_value = new.value;
        sym.st_size = new.size;
    }

    for t in tables.iter().filter(|t| !t.rows.is_empty()) {
        let size = t.entry_size();
        let (r_type, align) = match t.slot {
            Slot::Pc32 => (elf::R_X86_64_PC32, 1),
            Slot::Abs64 => (elf::R_X86_64_64, 8),
        };
        let mut relocations = Vec::with_capacity(t.rows.len() * size / 4);
        for (i, row) in t.rows.iter().enumerate() {
            let symbol = section_symbol(&mut builder, row.section)?;
            relocations.push(BuildRelocation {
                r_offset: (i * size) as u64,
                symbol: Some(symbol),
                r_type,
                r_addend: addend_of(row.offset)?,
            });
            if t.slot == Slot::Pc32 && size == 8 {
                let (key, addend) = row.key.ok_or_else(|| {
                    ElfError::Malformed(format!("{}: row {i} has no key", t.name))
                })?;
                relocations.push(BuildRelocation {
                    r_offset: (i * size + 4) as u64,
                    symbol: Some(symbol_id(key)?),
                    r_type: elf::R_X86_64_PC32,
                    r_addend: addend,
                });
            }
        }
        let section = builder.sections.add();
        section.name = ByteString::from(t.name.as_bytes().to_vec());
        section.sh_type = elf::SHT_PROGBITS;
        section.sh_flags = if t.slot == Slot::Pc32 && size == 8 {
            elf::SHF_ALLOC | elf::SHF_WRITE
        } else {
            elf::SHF_ALLOC
        };
        section.sh_addralign = align;
        section.sh_entsize = size as u64;
        section.data = SectionData::Data(vec![0u8; t.rows.len() * size].into());
        let section_id = section.id();
        add_rela(&mut builder, &t.name, symtab, section_id, relocations);
    }

    if let Some(rows) = orc {
        let mut orc = Vec::with_capacity(rows.len() * ORC_ENTRY_SIZE);
        let mut relocations = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            orc.extend_from_slice(&row.raw.to_bytes(Endian::Little));
            let symbol = section_symbol(&mut builder, row.section)?;
            relocations.push(BuildRelocation {
                r_offset: (i * ORC_IP_SIZE) as u64,
                symbol: Some(symbol),
                r_type: elf::R_X86_64_PC32,
                r_addend: addend_of(row.offset)?,
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
        add_rela(&mut builder, ".orc_unwind_ip", symtab, ip_id, relocations);
    }

    Ok(builder)
}

/// Overwrites instructions in their sections' data and makes the relocation inside each
/// `R_X86_64_NONE`. Patches are grouped by section, so that a large text section is copied
/// once however many sites it has.
fn apply_patches(
    builder: &mut Builder<'_>,
    section_ids: &[object::build::elf::SectionId],
    patches: &[InsnPatch],
) -> Result<(), ElfError> {
    use std::collections::{BTreeMap, HashSet};
    let mut by_section: BTreeMap<usize, Vec<&InsnPatch>> = BTreeMap::new();
    for p in patches {
        by_section.entry(p.section).or_default().push(p);
    }
    for (index, patches) in by_section {
        let id = index
            .checked_sub(1)
            .and_then(|i| section_ids.get(i).copied())
            .ok_or_else(|| {
                ElfError::Malformed(format!("a patch names section {index}, which does not exist"))
            })?;
        let section = builder.sections.get_mut(id);
        let name = String::from_utf8_lossy(section.name.as_slice()).into_owned();
        let SectionData::Data(data) = &section.data else {
            return Err(ElfError::Malformed(format!(
                "section {name} holds no bytes to patch"
            )));
        };
        let mut bytes = data.to_vec();
        for p in &patches {
            let range = usize::try_from(p.offset)
                .ok()
                .and_then(|start| Some(start..start.checked_add(p.bytes.len())?))
                .filter(|r| r.end <= bytes.len())
                .ok_or_else(|| {
                    ElfError::Malformed(format!(
                        "patch at {name}+{:#x} ({} bytes) lies outside the section",
                        p.offset,
                        p.bytes.len()
                    ))
                })?;
            bytes[range].copy_from_slice(&p.bytes);
        }
        section.data = SectionData::Data(bytes.into());
        let offsets: HashSet<u64> = patches.iter().filter_map(|p| p.reloc_offset).collect();
        if offsets.is_empty() {
            continue;
        }
        for rela in builder.sections.iter_mut() {
            if rela.sh_info_section != Some(id) {
                continue;
            }
            if let SectionData::Relocation(relocs) = &mut rela.data {
                for r in relocs.iter_mut().filter(|r| offsets.contains(&r.r_offset)) {
                    r.r_type = elf::R_X86_64_NONE;
                }
            }
        }
    }
    Ok(())
}

/// Adds `.rela<name>` for the section `target`, as objtool's `elf_create_rela_section`.
fn add_rela(
    builder: &mut Builder<'_>,
    name: &str,
    symtab: object::build::elf::SectionId,
    target: object::build::elf::SectionId,
    relocations: Vec<BuildRelocation>,
) {
    let rela = builder.sections.add();
    rela.name = ByteString::from(format!(".rela{name}").into_bytes());
    rela.sh_type = elf::SHT_RELA;
    rela.sh_flags = elf::SHF_INFO_LINK;
    rela.sh_addralign = 8;
    rela.sh_entsize = 24;
    rela.sh_link_section = Some(symtab);
    rela.sh_info_section = Some(target);
    rela.data = SectionData::Relocation(relocations);
}
