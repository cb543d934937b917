//! The rewrite of a relocatable object without rebuilding it: every input section stays
//! where it is, byte for byte, except the instructions overwritten and the relocation
//! sections whose symbol numbers move; the new sections, a new symbol table with its string
//! table, a new section-name table and a new section header table are appended at the end.
//! objtool's libelf appends in the same way.
//!
//! This is what [`crate::write::Rewriter`] does for the objects it can: it streams the new
//! file in one pass over the (memory-mapped) input, holding nothing the size of the object.
//! `vmlinux.o`'s rebuild through `object::build::elf::Builder` held every relocation and
//! symbol in memory twice over. Objects this writer does not take (section groups, an
//! extended section index table, too many sections for the 16-bit header fields, several
//! symbol tables) go through the builder, which lays the whole file out anew.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use orc_format::{Endian, ORC_ENTRY_SIZE, ORC_IP_SIZE};

use crate::error::ElfError;
use crate::write::{Changes, Slot};

const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHT_GROUP: u32 = 17;
const SHT_SYMTAB_SHNDX: u32 = 18;
const SHT_PROGBITS: u32 = 1;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_INFO_LINK: u64 = 0x40;
const STB_LOCAL: u8 = 0;
const STT_SECTION: u8 = 3;
const R_X86_64_NONE: u32 = 0;
const R_X86_64_64: u32 = 1;
const R_X86_64_PC32: u32 = 2;
const SHN_LORESERVE: usize = 0xff00;
const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SYM_SIZE: usize = 24;
const RELA_SIZE: usize = 24;

fn malformed(what: impl Into<String>) -> ElfError {
    ElfError::Malformed(what.into())
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or_else(|| malformed("header out of bounds"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    b.get(at..at + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap_or_default())).ok_or_else(|| malformed("header out of bounds"))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    b.get(at..at + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap_or_default())).ok_or_else(|| malformed("header out of bounds"))
}

/// A section header, as read.
#[derive(Clone, Copy, Debug)]
struct Shdr {
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

impl Shdr {
    fn read(b: &[u8], at: usize) -> Result<Shdr, ElfError> {
        Ok(Shdr {
            name: u32_at(b, at)?,
            kind: u32_at(b, at + 4)?,
            flags: u64_at(b, at + 8)?,
            addr: u64_at(b, at + 16)?,
            offset: u64_at(b, at + 24)?,
            size: u64_at(b, at + 32)?,
            link: u32_at(b, at + 40)?,
            info: u32_at(b, at + 44)?,
            align: u64_at(b, at + 48)?,
            entsize: u64_at(b, at + 56)?,
        })
    }

    fn bytes(&self) -> [u8; SHDR_SIZE] {
        let mut out = [0u8; SHDR_SIZE];
        out[0..4].copy_from_slice(&self.name.to_le_bytes());
        out[4..8].copy_from_slice(&self.kind.to_le_bytes());
        out[8..16].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.addr.to_le_bytes());
        out[24..32].copy_from_slice(&self.offset.to_le_bytes());
        out[32..40].copy_from_slice(&self.size.to_le_bytes());
        out[40..44].copy_from_slice(&self.link.to_le_bytes());
        out[44..48].copy_from_slice(&self.info.to_le_bytes());
        out[48..56].copy_from_slice(&self.align.to_le_bytes());
        out[56..64].copy_from_slice(&self.entsize.to_le_bytes());
        out
    }

    /// The bytes of the section in the file (none for `SHT_NOBITS`).
    fn data<'a>(&self, input: &'a [u8]) -> Result<&'a [u8], ElfError> {
        if self.kind == SHT_NOBITS {
            return Ok(&[]);
        }
        usize::try_from(self.offset)
            .ok()
            .zip(usize::try_from(self.size).ok())
            .and_then(|(o, s)| input.get(o..o.checked_add(s)?))
            .ok_or_else(|| malformed("a section lies outside the file"))
    }
}

/// An object this writer can rewrite: its section headers and where its tables are.
pub(crate) struct Layout<'data> {
    input: &'data [u8],
    shdrs: Vec<Shdr>,
    shstrndx: usize,
    symtab: usize,
}

impl<'data> Layout<'data> {
    /// The object's layout, or `None` when it is not one this writer takes (the builder
    /// then rebuilds it). Errors are for headers that do not fit the file.
    pub(crate) fn read(input: &'data [u8]) -> Result<Option<Layout<'data>>, ElfError> {
        if input.len() < EHDR_SIZE || &input[..4] != b"\x7fELF" || input[4] != 2 || input[5] != 1 || u16_at(input, 16)? != 1 {
            return Ok(None);
        }
        let shoff = usize::try_from(u64_at(input, 0x28)?).map_err(|_| malformed("section headers out of bounds"))?;
        let shentsize = usize::from(u16_at(input, 0x3a)?);
        let shnum = usize::from(u16_at(input, 0x3c)?);
        let shstrndx = usize::from(u16_at(input, 0x3e)?);
        if shnum == 0 || shentsize != SHDR_SIZE || shstrndx >= shnum || shnum + 16 >= SHN_LORESERVE {
            return Ok(None);
        }
        let end = shnum.checked_mul(SHDR_SIZE).and_then(|n| n.checked_add(shoff));
        if end.is_none_or(|e| e > input.len()) {
            return Err(malformed("section headers out of bounds"));
        }
        let shdrs = (0..shnum).map(|i| Shdr::read(input, shoff + i * SHDR_SIZE)).collect::<Result<Vec<_>, _>>()?;
        let symtabs: Vec<usize> = (0..shnum).filter(|&i| shdrs[i].kind == SHT_SYMTAB).collect();
        let [symtab] = symtabs[..] else { return Ok(None) };
        let unusual = shdrs.iter().any(|s| {
            matches!(s.kind, SHT_GROUP | SHT_SYMTAB_SHNDX | SHT_REL) || (s.kind == SHT_RELA && s.link as usize != symtab)
        });
        let st = &shdrs[symtab];
        let strtab = st.link as usize;
        if unusual
            || st.entsize != SYM_SIZE as u64
            || st.size % SYM_SIZE as u64 != 0
            || strtab >= shnum
            || shdrs[strtab].kind != SHT_STRTAB
            || shdrs[shstrndx].kind != SHT_STRTAB
            || shdrs.iter().any(|s| s.kind == SHT_RELA && (s.entsize != RELA_SIZE as u64 || s.size % RELA_SIZE as u64 != 0))
        {
            return Ok(None);
        }
        for s in &shdrs {
            s.data(input)?;
        }
        // A name offset past the end of its string table names nothing in the input, but would
        // name one of the strings this writer appends (the fuzz target `check_kernel` found a
        // section read back as `.orc_unwind_ip`): such files go to the rebuilder.
        let shstrtab_len = shdrs[shstrndx].size;
        if shdrs.iter().skip(1).any(|s| u64::from(s.name) >= shstrtab_len) {
            return Ok(None);
        }
        let strtab_len = shdrs[strtab].size;
        let symbols = shdrs[symtab].data(input)?;
        if symbols.chunks_exact(SYM_SIZE).skip(1).any(|sym| u64::from(u32::from_le_bytes([sym[0], sym[1], sym[2], sym[3]])) >= strtab_len) {
            return Ok(None);
        }
        Ok(Some(Layout { input, shdrs, shstrndx, symtab }))
    }

    fn name(&self, s: &Shdr) -> &'data [u8] {
        let Ok(table) = self.shdrs[self.shstrndx].data(self.input) else { return b"" };
        let rest = table.get(s.name as usize..).unwrap_or(b"");
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// Writes the rewritten object to `out`.
    pub(crate) fn write(&self, changes: &Changes<'_>, out: &mut impl Write) -> Result<(), ElfError> {
        let input = self.input;
        let io = |e: std::io::Error| malformed(format!("cannot write: {e}"));
        let orc = changes.orc.filter(|r| !r.is_empty());
        let has = |name: &[u8]| self.shdrs.iter().any(|s| self.name(s) == name);
        if orc.is_some() && (has(b".orc_unwind") || has(b".orc_unwind_ip")) {
            return Err(malformed("already has ORC sections (.orc_unwind); strip them first"));
        }
        let tables: Vec<_> = changes.tables.iter().filter(|t| !t.rows.is_empty()).collect();
        for t in &tables {
            if has(t.name.as_bytes()) {
                return Err(malformed(format!("already has {}; strip it first", t.name)));
            }
        }
        let section_exists = |index: usize, what: &str| {
            if index == 0 || index >= self.shdrs.len() {
                Err(malformed(format!("a {what} names section {index}, which does not exist")))
            } else {
                Ok(())
            }
        };

        // Symbols: the old locals, then the new locals, then the old globals, then the new
        // globals (an ELF symbol table lists its locals first).
        let st = self.shdrs[self.symtab];
        let symtab = st.data(input)?;
        let old_count = symtab.len() / SYM_SIZE;
        let first_global = (st.info as usize).min(old_count);
        let mut new_locals: Vec<[u8; SYM_SIZE]> = Vec::new();
        let mut new_globals: Vec<[u8; SYM_SIZE]> = Vec::new();
        let strtab_index = st.link as usize;
        let mut strtab_extra: Vec<u8> = Vec::new();
        let mut shstrtab_extra: Vec<u8> = Vec::new();
        let strtab_len = self.shdrs[strtab_index].size as usize;
        let shstrtab_len = self.shdrs[self.shstrndx].size as usize;
        let shared_strtab = strtab_index == self.shstrndx;
        let add_symbol_name = |name: &[u8], extra: &mut Vec<u8>| -> u32 {
            let at = strtab_len + extra.len();
            extra.extend_from_slice(name);
            extra.push(0);
            at as u32
        };
        let sym_bytes = |name: u32, info: u8, shndx: usize, value: u64, size: u64| {
            let mut b = [0u8; SYM_SIZE];
            b[0..4].copy_from_slice(&name.to_le_bytes());
            b[4] = info;
            b[6..8].copy_from_slice(&(shndx as u16).to_le_bytes());
            b[8..16].copy_from_slice(&value.to_le_bytes());
            b[16..24].copy_from_slice(&size.to_le_bytes());
            b
        };
        for new in changes.symbols {
            section_exists(new.section, "symbol")?;
            let name = add_symbol_name(new.name.as_bytes(), &mut strtab_extra);
            let b = sym_bytes(name, new.info, new.section, new.value, new.size);
            if new.info >> 4 == STB_LOCAL {
                new_locals.push(b);
            } else {
                new_globals.push(b);
            }
        }
        // One section symbol per section the new tables point into: the file's first, else
        // a new one (as objtool makes). The symbols of new relocations are named before the
        // renumbering: an old index, or `usize::MAX - k` for the k-th new local.
        let mut section_symbols: HashMap<usize, usize> = HashMap::new();
        let mut section_symbol = |section: usize, new_locals: &mut Vec<[u8; SYM_SIZE]>| -> Result<usize, ElfError> {
            section_exists(section, "row")?;
            if let Some(&sym) = section_symbols.get(&section) {
                return Ok(sym);
            }
            let existing = (1..old_count).find(|&i| {
                let s = &symtab[i * SYM_SIZE..(i + 1) * SYM_SIZE];
                s[4] & 0xf == STT_SECTION && usize::from(u16::from_le_bytes([s[6], s[7]])) == section
            });
            let sym = existing.unwrap_or_else(|| {
                new_locals.push(sym_bytes(0, STT_SECTION, section, 0, 0));
                usize::MAX - (new_locals.len() - 1)
            });
            section_symbols.insert(section, sym);
            Ok(sym)
        };
        let addend_of = |offset: u64| {
            i64::try_from(offset).map_err(|_| malformed(format!("offset {offset:#x} does not fit a relocation addend")))
        };
        struct NewSection {
            name: u32,
            shdr: Shdr,
            data: Vec<u8>,
            /// (offset, symbol before renumbering, type, addend) for a relocation section.
            relocs: Vec<(u64, usize, u32, i64)>,
        }
        let mut added: Vec<NewSection> = Vec::new();
        let add_section_name = |name: &[u8], strtab_extra: &Vec<u8>, shstrtab_extra: &mut Vec<u8>| -> u32 {
            // A table shared by symbols and sections gets both kinds of names, the symbols'
            // first.
            let base = if shared_strtab { strtab_len + strtab_extra.len() } else { shstrtab_len };
            let at = base + shstrtab_extra.len();
            shstrtab_extra.extend_from_slice(name);
            shstrtab_extra.push(0);
            at as u32
        };
        let first_new = self.shdrs.len();
        let rela_shdr = |target: usize| Shdr {
            name: 0,
            kind: SHT_RELA,
            flags: SHF_INFO_LINK,
            addr: 0,
            offset: 0,
            size: 0,
            link: self.symtab as u32,
            info: target as u32,
            align: 8,
            entsize: RELA_SIZE as u64,
        };
        let mut pending_names: Vec<Vec<u8>> = Vec::new();
        for t in &tables {
            let size = if t.slot == Slot::Abs64 || t.rows.iter().any(|r| r.key.is_some()) { 8 } else { 4 };
            let (r_type, align) = match t.slot {
                Slot::Pc32 => (R_X86_64_PC32, 1),
                Slot::Abs64 => (R_X86_64_64, 8),
            };
            let mut relocs = Vec::with_capacity(t.rows.len() * size / 4);
            for (i, row) in t.rows.iter().enumerate() {
                let sym = section_symbol(row.section, &mut new_locals)?;
                relocs.push(((i * size) as u64, sym, r_type, addend_of(row.offset)?));
                if t.slot == Slot::Pc32 && size == 8 {
                    let (key, addend) = row.key.ok_or_else(|| malformed(format!("{}: row {i} has no key", t.name)))?;
                    if key == 0 || key >= old_count {
                        return Err(malformed(format!("a row names symbol {key}, which does not exist")));
                    }
                    relocs.push(((i * size + 4) as u64, key, R_X86_64_PC32, addend));
                }
            }
            let flags = if t.slot == Slot::Pc32 && size == 8 { SHF_ALLOC | SHF_WRITE } else { SHF_ALLOC };
            let index = first_new + added.len();
            let shdr = Shdr { name: 0, kind: SHT_PROGBITS, flags, addr: 0, offset: 0, size: (t.rows.len() * size) as u64, link: 0, info: 0, align, entsize: size as u64 };
            added.push(NewSection { name: 0, shdr, data: vec![0u8; t.rows.len() * size], relocs: Vec::new() });
            pending_names.push(t.name.as_bytes().to_vec());
            added.push(NewSection { name: 0, shdr: rela_shdr(index), data: Vec::new(), relocs });
            pending_names.push(format!(".rela{}", t.name).into_bytes());
        }
        if let Some(rows) = orc {
            let mut data = Vec::with_capacity(rows.len() * ORC_ENTRY_SIZE);
            let mut relocs = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                data.extend_from_slice(&row.raw.to_bytes(Endian::Little));
                let sym = section_symbol(row.section, &mut new_locals)?;
                relocs.push(((i * ORC_IP_SIZE) as u64, sym, R_X86_64_PC32, addend_of(row.offset)?));
            }
            let plain = |size: usize, entsize: usize| Shdr { name: 0, kind: SHT_PROGBITS, flags: SHF_ALLOC, addr: 0, offset: 0, size: size as u64, link: 0, info: 0, align: 1, entsize: entsize as u64 };
            added.push(NewSection { name: 0, shdr: plain(data.len(), ORC_ENTRY_SIZE), data, relocs: Vec::new() });
            pending_names.push(b".orc_unwind".to_vec());
            let ip = first_new + added.len();
            added.push(NewSection { name: 0, shdr: plain(rows.len() * ORC_IP_SIZE, ORC_IP_SIZE), data: vec![0u8; rows.len() * ORC_IP_SIZE], relocs: Vec::new() });
            pending_names.push(b".orc_unwind_ip".to_vec());
            added.push(NewSection { name: 0, shdr: rela_shdr(ip), data: Vec::new(), relocs });
            pending_names.push(b".rela.orc_unwind_ip".to_vec());
        }
        for (s, name) in added.iter_mut().zip(&pending_names) {
            s.name = add_section_name(name, &strtab_extra, &mut shstrtab_extra);
        }

        // Renumbering: old globals move up by the number of new locals.
        let shift = new_locals.len();
        let new_first_global = first_global + shift;
        let renumber = |old: usize| if old >= first_global { old + shift } else { old };
        let resolve = |sym: usize| if sym > old_count && sym >= usize::MAX - new_locals.len() { first_global + (usize::MAX - sym) } else { renumber(sym) };

        // Instructions overwritten, by section; relocations made R_X86_64_NONE, by section.
        let mut patches: BTreeMap<usize, Vec<(usize, &[u8])>> = BTreeMap::new();
        let mut none_at: HashMap<usize, HashSet<u64>> = HashMap::new();
        for p in changes.patches {
            section_exists(p.section, "patch")?;
            let s = &self.shdrs[p.section];
            let data = s.data(input)?;
            let name = String::from_utf8_lossy(self.name(s)).into_owned();
            if s.kind == SHT_NOBITS {
                return Err(malformed(format!("section {name} holds no bytes to patch")));
            }
            let range = usize::try_from(p.offset)
                .ok()
                .and_then(|start| Some(start..start.checked_add(p.bytes.len())?))
                .filter(|r| r.end <= data.len())
                .ok_or_else(|| malformed(format!("patch at {name}+{:#x} ({} bytes) lies outside the section", p.offset, p.bytes.len())))?;
            patches.entry(s.offset as usize + range.start).or_default().push((p.bytes.len(), &p.bytes));
            if let Some(r) = p.reloc_offset {
                none_at.entry(p.section).or_default().insert(r);
            }
        }

        // The input, in file order, with the changed parts replaced as they go by.
        let mut edits: BTreeMap<usize, Edit> = BTreeMap::new();
        enum Edit {
            /// Overwrite with these bytes.
            Bytes(Vec<u8>),
            /// Rewrite the relocation section with this header index.
            Rela(usize),
        }
        for (at, list) in patches {
            for (_, bytes) in list {
                edits.insert(at, Edit::Bytes(bytes.to_vec()));
            }
        }
        for (i, s) in self.shdrs.iter().enumerate() {
            if s.kind == SHT_RELA && (shift != 0 || none_at.contains_key(&(s.info as usize))) && s.size != 0 {
                edits.insert(s.offset as usize, Edit::Rela(i));
            }
        }
        // Where everything appended goes (known before anything is written: the header,
        // which comes first, points at the section header table, which comes last).
        let align_up = |len: usize, align: u64| len.div_ceil(align.max(1) as usize) * align.max(1) as usize;
        let mut len = input.len();
        let mut new_shdrs: Vec<Shdr> = Vec::with_capacity(added.len());
        for s in &added {
            let mut shdr = s.shdr;
            shdr.name = s.name;
            len = align_up(len, shdr.align);
            shdr.offset = len as u64;
            shdr.size = if shdr.kind == SHT_RELA { (s.relocs.len() * RELA_SIZE) as u64 } else { s.data.len() as u64 };
            len += shdr.size as usize;
            new_shdrs.push(shdr);
        }
        let mut shdrs = self.shdrs.clone();
        len = align_up(len, 8);
        let count = old_count + new_locals.len() + new_globals.len();
        shdrs[self.symtab].offset = len as u64;
        shdrs[self.symtab].size = (count * SYM_SIZE) as u64;
        shdrs[self.symtab].info = new_first_global as u32;
        len += count * SYM_SIZE;
        let mut string_tables: Vec<(usize, Vec<u8>)> = Vec::new();
        if shared_strtab {
            let mut both = strtab_extra;
            both.extend_from_slice(&shstrtab_extra);
            string_tables.push((strtab_index, both));
        } else {
            if !strtab_extra.is_empty() {
                string_tables.push((strtab_index, strtab_extra));
            }
            if !shstrtab_extra.is_empty() {
                string_tables.push((self.shstrndx, shstrtab_extra));
            }
        }
        for (index, extra) in &string_tables {
            let old = self.shdrs[*index].data(input)?;
            shdrs[*index].offset = len as u64;
            shdrs[*index].size = (old.len() + extra.len()) as u64;
            len += old.len() + extra.len();
        }
        let shoff = align_up(len, 8);
        let shnum = shdrs.len() + new_shdrs.len();
        let mut header = input[..EHDR_SIZE].to_vec();
        header[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        header[0x3c..0x3e].copy_from_slice(&(shnum as u16).to_le_bytes());

        // The input, in file order, with the changed parts replaced as they go by.
        out.write_all(&header).map_err(io)?;
        let mut pos = EHDR_SIZE;
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let flush = |buf: &mut Vec<u8>, out: &mut dyn Write, force: bool| -> Result<(), ElfError> {
            if force || buf.len() >= 1 << 16 {
                out.write_all(buf).map_err(io)?;
                buf.clear();
            }
            Ok(())
        };
        for (at, edit) in &edits {
            if *at < pos {
                return Err(malformed("changed parts of the object overlap"));
            }
            out.write_all(&input[pos..*at]).map_err(io)?;
            match edit {
                Edit::Bytes(b) => {
                    out.write_all(b).map_err(io)?;
                    pos = at + b.len();
                }
                Edit::Rela(i) => {
                    let s = &self.shdrs[*i];
                    let data = s.data(input)?;
                    let none = none_at.get(&(s.info as usize));
                    for (k, e) in data.chunks_exact(RELA_SIZE).enumerate() {
                        let offset = u64::from_le_bytes(e[0..8].try_into().unwrap_or_default());
                        let info = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
                        let sym = (info >> 32) as usize;
                        if sym >= old_count {
                            let name = String::from_utf8_lossy(self.name(s)).into_owned();
                            return Err(malformed(format!("{name}: relocation {k} names symbol {sym}, which does not exist")));
                        }
                        let mut kind = info as u32;
                        if none.is_some_and(|n| n.contains(&offset)) {
                            kind = R_X86_64_NONE;
                        }
                        buf.extend_from_slice(&e[0..8]);
                        buf.extend_from_slice(&(((renumber(sym) as u64) << 32) | u64::from(kind)).to_le_bytes());
                        buf.extend_from_slice(&e[16..24]);
                        flush(&mut buf, out, false)?;
                    }
                    flush(&mut buf, out, true)?;
                    pos = at + data.len();
                }
            }
        }
        out.write_all(&input[pos..]).map_err(io)?;
        let mut written = input.len();
        let pad_to = |written: &mut usize, to: u64, out: &mut dyn Write| -> Result<(), ElfError> {
            let to = to as usize;
            out.write_all(&vec![0u8; to - *written]).map_err(io)?;
            *written = to;
            Ok(())
        };

        // The new sections.
        for (s, shdr) in added.iter().zip(&new_shdrs) {
            pad_to(&mut written, shdr.offset, out)?;
            if shdr.kind == SHT_RELA {
                for &(offset, sym, kind, addend) in &s.relocs {
                    buf.extend_from_slice(&offset.to_le_bytes());
                    buf.extend_from_slice(&(((resolve(sym) as u64) << 32) | u64::from(kind)).to_le_bytes());
                    buf.extend_from_slice(&addend.to_le_bytes());
                    flush(&mut buf, out, false)?;
                }
                flush(&mut buf, out, true)?;
            } else {
                out.write_all(&s.data).map_err(io)?;
            }
            written += shdr.size as usize;
        }

        // The symbol table, renumbered, and the string tables, extended.
        pad_to(&mut written, shdrs[self.symtab].offset, out)?;
        out.write_all(&symtab[..first_global * SYM_SIZE]).map_err(io)?;
        for b in &new_locals {
            out.write_all(b).map_err(io)?;
        }
        out.write_all(&symtab[first_global * SYM_SIZE..]).map_err(io)?;
        for b in &new_globals {
            out.write_all(b).map_err(io)?;
        }
        written += count * SYM_SIZE;
        for (index, extra) in &string_tables {
            let old = self.shdrs[*index].data(input)?;
            out.write_all(old).map_err(io)?;
            out.write_all(extra).map_err(io)?;
            written += old.len() + extra.len();
        }

        // The section header table.
        pad_to(&mut written, shoff as u64, out)?;
        for s in shdrs.iter().chain(&new_shdrs) {
            out.write_all(&s.bytes()).map_err(io)?;
        }
        Ok(())
    }
}
