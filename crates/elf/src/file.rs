//! The read-only object model: one ELF file, its sections, symbols and relocations.

use object::elf;
use object::read::elf::{FileHeader, RelocationSections, SectionHeader as _, SectionTable, Sym as _, SymbolTable};
use object::{LittleEndian as LE, SectionIndex, SymbolIndex};

use crate::error::ElfError;

type Header = elf::FileHeader64<LE>;
type RawSection = elf::SectionHeader64<LE>;

/// What kind of ELF file this is, which decides how ORC addresses are found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileKind {
    /// `ET_REL`: `.o` and `.ko`; addresses come from relocations.
    Relocatable,
    /// `ET_EXEC`: `vmlinux`, non-PIE executables.
    Executable,
    /// `ET_DYN`: shared libraries and PIE executables.
    Shared,
    /// Core dumps and anything else.
    Other,
}

/// A parsed x86-64 ELF64 file. Cheap to create: it validates the headers and finds the tables,
/// and reads nothing else until asked.
pub struct ElfFile<'data> {
    data: &'data [u8],
    header: &'data Header,
    sections: SectionTable<'data, Header>,
    symbols: SymbolTable<'data, Header>,
    relocation_sections: RelocationSections,
}

/// One section header, with its name and contents.
#[derive(Clone, Copy, Debug)]
pub struct Section<'data> {
    /// Index in the section header table.
    pub index: usize,
    /// Name (from the section header string table); `""` if unreadable.
    pub name: &'data str,
    /// `sh_type`.
    pub kind: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub address: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_entsize`.
    pub entry_size: u64,
    /// `sh_addralign`.
    pub align: u64,
    /// `sh_link`.
    pub link: u32,
    /// `sh_info`.
    pub info: u32,
    /// File contents (empty for `SHT_NOBITS`).
    pub data: &'data [u8],
}

impl Section<'_> {
    /// `SHF_EXECINSTR`.
    pub fn is_executable(&self) -> bool {
        self.flags & elf::SHF_EXECINSTR.0 != 0
    }

    /// `SHF_ALLOC`.
    pub fn is_alloc(&self) -> bool {
        self.flags & elf::SHF_ALLOC.0 != 0
    }
}

/// The `STT_*` type of a symbol, as far as orctool cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SymbolKind {
    /// `STT_NOTYPE`.
    NoType,
    /// `STT_OBJECT`.
    Object,
    /// `STT_FUNC`.
    Func,
    /// `STT_SECTION`.
    Section,
    /// `STT_FILE`.
    File,
    /// Anything else (`STT_TLS`, `STT_GNU_IFUNC`, ...), with its number.
    Other(u8),
}

/// One symbol table entry.
#[derive(Clone, Copy, Debug)]
pub struct Symbol<'data> {
    /// Index in `.symtab`.
    pub index: usize,
    /// Name; for a section symbol, the name of its section (as objtool names it).
    pub name: &'data str,
    /// Type.
    pub kind: SymbolKind,
    /// `STB_*` binding.
    pub binding: u8,
    /// Defining section index, if defined in a regular section.
    pub section: Option<usize>,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_other` (visibility).
    pub other: u8,
}

/// One relocation with an explicit addend.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Relocation {
    /// Offset in the section it applies to.
    pub offset: u64,
    /// `R_X86_64_*` type.
    pub kind: u32,
    /// Symbol index (0: none).
    pub symbol: usize,
    /// Addend.
    pub addend: i64,
}

fn utf8(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).unwrap_or("")
}

impl<'data> ElfFile<'data> {
    /// Parses the headers of an x86-64 ELF64 little-endian file.
    pub fn parse(data: &'data [u8]) -> Result<Self, ElfError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        if data.len() < 6 {
            return Err(ElfError::Malformed("file ends inside the ELF identification".into()));
        }
        if data[4] != elf::ELFCLASS64.0 {
            return Err(ElfError::Unsupported("not 64-bit"));
        }
        if data[5] != elf::ELFDATA2LSB.0 {
            return Err(ElfError::Unsupported("not little-endian"));
        }
        let header = Header::parse(data).map_err(|e| ElfError::Malformed(e.to_string()))?;
        let endian = LE;
        if header.e_machine(endian) != elf::EM_X86_64 {
            return Err(ElfError::Unsupported("not an x86-64 file"));
        }
        let sections = header.sections(endian, data)?;
        let symbols = sections.symbols(endian, data, elf::SHT_SYMTAB)?;
        let relocation_sections = RelocationSections::parse(endian, &sections, symbols.section())?;
        Ok(ElfFile { data, header, sections, symbols, relocation_sections })
    }

    /// The whole file.
    pub fn data(&self) -> &'data [u8] {
        self.data
    }

    /// The kind of file.
    pub fn kind(&self) -> FileKind {
        match self.header.e_type(LE) {
            elf::ET_REL => FileKind::Relocatable,
            elf::ET_EXEC => FileKind::Executable,
            elf::ET_DYN => FileKind::Shared,
            _ => FileKind::Other,
        }
    }

    /// Number of section headers (including the null section 0).
    pub fn section_count(&self) -> usize {
        self.sections.len()
    }

    fn make_section(&self, index: usize, raw: &'data RawSection) -> Result<Section<'data>, ElfError> {
        let name = self.sections.section_name(LE, raw).map(utf8).unwrap_or("");
        let data = if raw.sh_type(LE) == elf::SHT_NOBITS {
            &[][..]
        } else {
            raw.data(LE, self.data).map_err(|_| {
                ElfError::Malformed(format!("section {index} ({name}) extends past the end of the file"))
            })?
        };
        Ok(Section {
            index,
            name,
            kind: raw.sh_type(LE).0,
            flags: raw.sh_flags(LE).0,
            address: raw.sh_addr(LE),
            size: raw.sh_size(LE),
            entry_size: raw.sh_entsize(LE),
            align: raw.sh_addralign(LE),
            link: raw.sh_link(LE),
            info: raw.sh_info(LE),
            data,
        })
    }

    /// The section at `index`.
    pub fn section(&self, index: usize) -> Result<Section<'data>, ElfError> {
        let raw = self
            .sections
            .section(SectionIndex(index))
            .map_err(|_| ElfError::Malformed(format!("no section with index {index}")))?;
        self.make_section(index, raw)
    }

    /// The first section called `name`, if any.
    pub fn section_by_name(&self, name: &str) -> Result<Option<Section<'data>>, ElfError> {
        match self.sections.section_by_name(LE, name.as_bytes()) {
            Some((index, raw)) => self.make_section(index.0, raw).map(Some),
            None => Ok(None),
        }
    }

    /// All sections, in header order, skipping the null section.
    pub fn sections(&self) -> impl Iterator<Item = Result<Section<'data>, ElfError>> + '_ {
        self.sections.enumerate().skip(1).map(move |(i, raw)| self.make_section(i.0, raw))
    }

    /// Number of symbols in `.symtab` (0 if there is none).
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    /// The symbol at `index` in `.symtab`.
    pub fn symbol(&self, index: usize) -> Result<Symbol<'data>, ElfError> {
        let raw = self
            .symbols
            .symbol(SymbolIndex(index))
            .map_err(|_| ElfError::Malformed(format!("no symbol with index {index}")))?;
        let kind = match raw.st_type() {
            elf::STT_NOTYPE => SymbolKind::NoType,
            elf::STT_OBJECT => SymbolKind::Object,
            elf::STT_FUNC => SymbolKind::Func,
            elf::STT_SECTION => SymbolKind::Section,
            elf::STT_FILE => SymbolKind::File,
            other => SymbolKind::Other(other.0),
        };
        let section = self.symbols.symbol_section(LE, raw, SymbolIndex(index)).ok().flatten().map(|s| s.0);
        let name = if kind == SymbolKind::Section {
            // Section symbols have no name of their own: objtool (and every reader) uses the
            // section's.
            match section {
                Some(s) => self.section(s).map(|s| s.name).unwrap_or(""),
                None => "",
            }
        } else {
            self.symbols.symbol_name(LE, raw).map(utf8).unwrap_or("")
        };
        Ok(Symbol {
            index,
            name,
            kind,
            binding: raw.st_bind().0,
            section,
            value: raw.st_value(LE),
            size: raw.st_size(LE),
            other: raw.st_other().0,
        })
    }

    /// All symbols of `.symtab`, skipping the null symbol 0.
    pub fn symbols(&self) -> impl Iterator<Item = Result<Symbol<'data>, ElfError>> + '_ {
        (1..self.symbols.len()).map(move |i| self.symbol(i))
    }

    /// The index of the `SHT_RELA` section that relocates section `target`, if any.
    pub fn relocation_section_for(&self, target: usize) -> Option<usize> {
        self.relocation_sections.get(SectionIndex(target)).map(|s| s.0)
    }

    /// The relocations of `SHT_RELA` section `rela_index`, in file order.
    pub fn relocations(&self, rela_index: usize) -> Result<Vec<Relocation>, ElfError> {
        let raw = self
            .sections
            .section(SectionIndex(rela_index))
            .map_err(|_| ElfError::Malformed(format!("no section with index {rela_index}")))?;
        let name = self.sections.section_name(LE, raw).map(utf8).unwrap_or("");
        let Some((relas, _)) = raw.rela(LE, self.data).map_err(|_| ElfError::BadSectionSize {
            section: name.to_string(),
            size: raw.sh_size(LE),
            entry_size: 24,
        })?
        else {
            return Ok(Vec::new());
        };
        Ok(relas
            .iter()
            .map(|r| Relocation {
                offset: r.r_offset.get(LE),
                kind: r.r_type(LE, false).0,
                symbol: r.r_sym(LE, false) as usize,
                addend: r.r_addend.get(LE),
            })
            .collect())
    }
}
