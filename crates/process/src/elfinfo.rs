//! What the process side needs from a linked ELF file beyond `orc-elf`'s model: its loadable
//! segments (to place it in an address space), its build-id, and its function symbols.

use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _, Sym as _};
use object::LittleEndian as LE;

type Header = elf::FileHeader64<LE>;

/// One `PT_LOAD` segment: where a range of the file goes at link time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Segment {
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_offset`.
    pub offset: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `PF_X`.
    pub executable: bool,
}

impl Segment {
    /// The segment a `PT_LOAD` program header describes.
    pub fn of(ph: &elf::ProgramHeader64<LE>) -> Segment {
        Segment {
            vaddr: ph.p_vaddr(LE),
            memsz: ph.p_memsz(LE),
            offset: ph.p_offset(LE),
            filesz: ph.p_filesz(LE),
            executable: ph.p_flags(LE).0 & elf::PF_X.0 != 0,
        }
    }

    /// The link-time address the byte at file offset `file_offset` would have if this segment
    /// maps it (page-rounding included: a mapping may start before `p_offset` in the same
    /// page); `None` if the offset is not in this segment's pages.
    pub fn vaddr_of_offset(&self, file_offset: u64, page: u64) -> Option<u64> {
        let first_page = self.offset - self.offset % page.max(1);
        let end = self.offset.checked_add(self.filesz)?;
        if file_offset < first_page || file_offset >= end {
            return None;
        }
        let vaddr = i128::from(self.vaddr) + i128::from(file_offset) - i128::from(self.offset);
        u64::try_from(vaddr).ok()
    }
}

/// The headers of a linked file that the process side reads.
#[derive(Clone, Debug)]
pub struct ElfInfo {
    /// The `PT_LOAD` segments, in header order.
    pub segments: Vec<Segment>,
    /// The `NT_GNU_BUILD_ID` note's bytes.
    pub build_id: Option<Vec<u8>>,
    /// The link-time address of those bytes (in the note segment), where a process that maps
    /// the file has them too.
    pub build_id_vaddr: Option<u64>,
    /// `e_type` is `ET_CORE`.
    pub is_core: bool,
}

/// Reads the program headers and the build-id note of an x86-64 ELF64 file.
pub fn read_info(data: &[u8]) -> Result<ElfInfo, String> {
    let header = parse_header(data)?;
    let phdrs = header.program_headers(LE, data).map_err(|e| format!("bad program headers: {e}"))?;
    let mut segments = Vec::new();
    let mut build_id = None;
    let mut build_id_vaddr = None;
    for ph in phdrs {
        match ph.p_type(LE) {
            elf::PT_LOAD => segments.push(Segment::of(ph)),
            elf::PT_NOTE if build_id.is_none() => {
                // A malformed note segment only costs the build-id (the file is then not cached).
                if let Ok(Some(mut notes)) = ph.notes(LE, data) {
                    while let Ok(Some(note)) = notes.next() {
                        if note.name() == b"GNU" && note.n_type(LE) == elf::NT_GNU_BUILD_ID && !note.desc().is_empty() {
                            build_id = Some(note.desc().to_vec());
                            // The descriptor's file offset, from where the slice lies in `data`.
                            let file_off = (note.desc().as_ptr() as usize).wrapping_sub(data.as_ptr() as usize) as u64;
                            build_id_vaddr = file_off.checked_sub(ph.p_offset(LE)).map(|d| ph.p_vaddr(LE).wrapping_add(d));
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ElfInfo { segments, build_id, build_id_vaddr, is_core: header.e_type(LE) == elf::ET_CORE })
}

pub(crate) fn parse_header(data: &[u8]) -> Result<&Header, String> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    let header = Header::parse(data).map_err(|e| format!("bad ELF header: {e}"))?;
    if header.e_machine(LE) != elf::EM_X86_64 {
        return Err("not an x86-64 file".into());
    }
    Ok(header)
}

/// A function symbol: link-time address, size and where its name is in the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FuncSym {
    pub start: u64,
    pub size: u64,
    name_at: u32,
    name_len: u32,
}

impl FuncSym {
    pub fn name<'d>(&self, data: &'d [u8]) -> &'d str {
        let at = self.name_at as usize;
        data.get(at..at + self.name_len as usize).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("?")
    }
}

/// The function symbols (`STT_FUNC`, `STT_GNU_IFUNC`) of `.symtab`, or of `.dynsym` when
/// there is no `.symtab` (a stripped file) and `symtab_only` is false, sorted by address;
/// and whether they are `.symtab`'s. Unreadable tables give none.
pub(crate) fn read_symbols(data: &[u8], symtab_only: bool) -> (Vec<FuncSym>, bool) {
    let Ok(header) = parse_header(data) else { return (Vec::new(), false) };
    let Ok(sections) = header.sections(LE, data) else { return (Vec::new(), false) };
    let mut out = Vec::new();
    let mut from_symtab = false;
    let kinds: &[_] = if symtab_only { &[elf::SHT_SYMTAB] } else { &[elf::SHT_SYMTAB, elf::SHT_DYNSYM] };
    for &kind in kinds {
        let Ok(table) = sections.symbols(LE, data, kind) else { continue };
        let base = data.as_ptr() as usize;
        for sym in table.symbols() {
            let t = sym.st_type();
            if (t != elf::STT_FUNC && t != elf::STT_GNU_IFUNC) || sym.st_shndx(LE) == elf::SHN_UNDEF || sym.st_value(LE) == 0 {
                continue;
            }
            let Ok(name) = table.symbol_name(LE, sym) else { continue };
            if name.is_empty() {
                continue;
            }
            // The name is a slice of `data` (object reads in place): keep its position, not a copy.
            let at = name.as_ptr() as usize - base;
            let (Ok(name_at), Ok(name_len)) = (u32::try_from(at), u32::try_from(name.len())) else { continue };
            out.push(FuncSym { start: sym.st_value(LE), size: sym.st_size(LE), name_at, name_len });
        }
        if !out.is_empty() {
            from_symtab = kind == elf::SHT_SYMTAB;
            break;
        }
    }
    // At one address, the largest first: aliases share it, and a sized symbol beats a label.
    out.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.size.cmp(&a.size)));
    out.dedup_by_key(|s| s.start);
    (out, from_symtab)
}

/// The function containing link-time address `addr`: the last symbol starting at or before
/// it, if `addr` is inside its size (a size-0 symbol covers up to the next symbol).
pub(crate) fn find_symbol(syms: &[FuncSym], addr: u64) -> Option<&FuncSym> {
    let i = syms.partition_point(|s| s.start <= addr).checked_sub(1)?;
    let s = &syms[i];
    if s.size == 0 || addr - s.start < s.size {
        Some(s)
    } else {
        None
    }
}
