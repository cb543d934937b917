//! The parts of a linked file the analysis reads beyond `orc-elf`'s model: the build-id note,
//! `.dynsym`, the dynamic relocations that name PLT and GOT slots, and bytes by virtual
//! address.

use std::collections::HashMap;

use orc_elf::{ElfError, ElfFile};

/// `SHT_NOTE`.
const SHT_NOTE: u32 = 7;
/// `NT_GNU_BUILD_ID`.
const NT_GNU_BUILD_ID: u32 = 3;

/// The build-id of `elf` (the descriptor of its `NT_GNU_BUILD_ID` note), if it has one.
pub fn build_id<'data>(elf: &ElfFile<'data>) -> Option<&'data [u8]> {
    elf.sections().flatten().filter(|s| s.kind == SHT_NOTE).find_map(|s| gnu_build_id(s.data))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    Some(u64::from_le_bytes(w))
}

/// Walks the notes of one note section (4-byte aligned name and descriptor) for the GNU
/// build-id.
fn gnu_build_id(notes: &[u8]) -> Option<&[u8]> {
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    let mut at = 0usize;
    while at.checked_add(12)? <= notes.len() {
        let namesz = u32_at(notes, at)? as usize;
        let descsz = u32_at(notes, at + 4)? as usize;
        let kind = u32_at(notes, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align4(namesz)?)?;
        let end = desc_at.checked_add(align4(descsz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
        let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc);
        }
        at = end;
    }
    None
}

/// `SHT_RELA`.
const SHT_RELA: u32 = 4;
/// `SHT_DYNSYM`.
const SHT_DYNSYM: u32 = 11;
/// `STT_FUNC`.
const STT_FUNC: u8 = 2;
/// `STT_GNU_IFUNC`: an indirect function's resolver, code like any other.
const STT_GNU_IFUNC: u8 = 10;
/// `R_X86_64_64`.
const R_X86_64_64: u32 = 1;
/// `R_X86_64_GLOB_DAT`.
const R_X86_64_GLOB_DAT: u32 = 6;
/// `R_X86_64_JUMP_SLOT`.
const R_X86_64_JUMP_SLOT: u32 = 7;
/// `R_X86_64_RELATIVE`.
const R_X86_64_RELATIVE: u32 = 8;

/// An allocated section with contents, by virtual address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapped<'data> {
    pub name: &'data str,
    pub address: u64,
    pub data: &'data [u8],
    pub exec: bool,
}

impl Mapped<'_> {
    pub fn end(&self) -> u64 {
        self.address.saturating_add(self.data.len() as u64)
    }

    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.address && addr < self.end()
    }
}

/// A defined function symbol of `.dynsym`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DynSym<'data> {
    pub name: &'data str,
    pub value: u64,
    pub size: u64,
}

/// What the analysis needs to know about a linked file besides its symbols.
pub(crate) struct Image<'data> {
    /// Allocated sections with contents, sorted by address.
    pub mapped: Vec<Mapped<'data>>,
    /// `e_entry`.
    pub entry: u64,
    /// Defined `STT_FUNC`/`STT_GNU_IFUNC` symbols of `.dynsym`, sorted by address.
    pub dynsyms: Vec<DynSym<'data>>,
    /// GOT slot address to the imported symbol it is bound to (`JUMP_SLOT`, `GLOB_DAT`, `64`).
    pub slot_names: HashMap<u64, &'data str>,
    /// `.rela.plt`'s symbols in order: the lazy PLT entry `push $n` names entry `n`.
    pub plt_names: Vec<&'data str>,
    /// Words relocated with `R_X86_64_RELATIVE`: their value once loaded (the addend).
    pub relative: HashMap<u64, u64>,
    /// Addresses inside executable sections that data holds (relocated or absolute pointers),
    /// sorted: candidates for the targets of computed jumps.
    pub code_pointers: Vec<u64>,
}

impl<'data> Image<'data> {
    pub fn new(elf: &ElfFile<'data>) -> Result<Self, ElfError> {
        let data = elf.data();
        let entry = u64_at(data, 24).unwrap_or(0);
        let mut mapped = Vec::new();
        let mut dynsyms = Vec::new();
        let mut dynsym_names: Vec<&'data str> = Vec::new();
        let mut dynsym_index = None;
        let mut relas = Vec::new();
        for section in elf.sections() {
            let section = section?;
            if section.is_alloc() && !section.data.is_empty() && section.kind != 8 {
                mapped.push(Mapped {
                    name: section.name,
                    address: section.address,
                    data: section.data,
                    exec: section.is_executable(),
                });
            }
            if section.kind == SHT_DYNSYM && dynsym_index.is_none() {
                dynsym_index = Some(section.index);
                let strtab = elf.section(section.link as usize).map(|s| s.data).unwrap_or(&[]);
                for sym in section.data.chunks_exact(24) {
                    let name = cstr(strtab, u32_at(sym, 0).unwrap_or(0) as usize);
                    dynsym_names.push(name);
                    let kind = sym[4] & 0xf;
                    let shndx = u16::from_le_bytes([sym[6], sym[7]]);
                    let value = u64_at(sym, 8).unwrap_or(0);
                    let size = u64_at(sym, 16).unwrap_or(0);
                    if (kind == STT_FUNC || kind == STT_GNU_IFUNC) && shndx != 0 && value != 0 {
                        dynsyms.push(DynSym { name, value, size });
                    }
                }
            }
            if section.kind == SHT_RELA {
                relas.push(section);
            }
        }
        mapped.sort_by_key(|m| m.address);
        dynsyms.sort_by_key(|s| (s.value, std::cmp::Reverse(s.size)));

        let mut slot_names = HashMap::new();
        let mut plt_names = Vec::new();
        let mut relative = HashMap::new();
        for rela in relas {
            // Only the dynamic relocations (against .dynsym, or none) name GOT slots.
            if rela.link as usize != dynsym_index.unwrap_or(usize::MAX) && rela.link != 0 {
                continue;
            }
            let is_plt = rela.name == ".rela.plt";
            for r in rela.data.chunks_exact(24) {
                let offset = u64_at(r, 0).unwrap_or(0);
                let info = u64_at(r, 8).unwrap_or(0);
                let addend = u64_at(r, 16).unwrap_or(0);
                let (sym, kind) = ((info >> 32) as usize, info as u32);
                let name = dynsym_names.get(sym).copied().unwrap_or("");
                match kind {
                    R_X86_64_JUMP_SLOT | R_X86_64_GLOB_DAT | R_X86_64_64 if !name.is_empty() => {
                        slot_names.insert(offset, name);
                    }
                    R_X86_64_RELATIVE => {
                        relative.insert(offset, addend);
                    }
                    _ => {}
                }
                if is_plt {
                    plt_names.push(name);
                }
            }
        }

        let mut image = Image { mapped, entry, dynsyms, slot_names, plt_names, relative, code_pointers: Vec::new() };
        image.code_pointers = image.find_code_pointers();
        Ok(image)
    }

    /// Relocated words and aligned words of data sections that point into code.
    fn find_code_pointers(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.relative.values().copied().filter(|&v| self.is_code(v)).collect();
        for m in &self.mapped {
            let skip = m.exec
                || m.name.starts_with(".eh_frame")
                || m.name.starts_with(".gcc_except")
                || m.name.starts_with(".note")
                || m.name.starts_with(".rela")
                || m.name.starts_with(".dyn")
                || m.name.starts_with(".gnu")
                || m.name == ".got.plt";
            if skip {
                continue;
            }
            let lead = (8 - (m.address % 8) as usize) % 8;
            let Some(words) = m.data.get(lead..) else { continue };
            for w in words.chunks_exact(8) {
                let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                if self.is_code(v) {
                    out.push(v);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The mapped section holding `addr`.
    pub fn section_of(&self, addr: u64) -> Option<&Mapped<'data>> {
        let i = self.mapped.partition_point(|m| m.address <= addr).checked_sub(1)?;
        self.mapped.get(i).filter(|m| m.contains(addr))
    }

    /// `addr` is in an executable section.
    pub fn is_code(&self, addr: u64) -> bool {
        self.section_of(addr).is_some_and(|m| m.exec)
    }

    /// The bytes from `addr` to the end of its section.
    pub fn bytes_from(&self, addr: u64) -> Option<&'data [u8]> {
        let m = self.section_of(addr)?;
        m.data.get(usize::try_from(addr - m.address).ok()?..)
    }

    /// The 32-bit word at `addr`.
    pub fn read_i32(&self, addr: u64) -> Option<i32> {
        let b = self.bytes_from(addr)?;
        Some(i32::from_le_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]))
    }

    /// The 64-bit pointer at `addr` as the loaded program sees it: the relocated value of a
    /// `RELATIVE` slot, else the file's word.
    pub fn read_pointer(&self, addr: u64) -> Option<u64> {
        if let Some(&v) = self.relative.get(&addr) {
            return Some(v);
        }
        u64_at(self.bytes_from(addr)?, 0)
    }

    /// Code pointers in `[start, end)`.
    pub fn code_pointers_in(&self, start: u64, end: u64) -> &[u64] {
        let a = self.code_pointers.partition_point(|&p| p < start);
        let b = self.code_pointers.partition_point(|&p| p < end);
        &self.code_pointers[a..b.max(a)]
    }
}

/// The NUL-terminated string at `at` in a string table (`""` if out of range or not UTF-8).
fn cstr(table: &[u8], at: usize) -> &str {
    let Some(rest) = table.get(at..) else { return "" };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    core::str::from_utf8(&rest[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_gnu_build_id_after_another_note() {
        let mut notes = Vec::new();
        // An ABI tag note first: namesz 4, descsz 16, type 1.
        notes.extend_from_slice(&[4, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0]);
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[0; 16]);
        notes.extend_from_slice(&[4, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0]);
        notes.extend_from_slice(b"GNU\0");
        notes.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0]);
        assert_eq!(gnu_build_id(&notes), Some(&[0xaa, 0xbb, 0xcc][..]));
        // Truncated descriptor: nothing, no panic.
        assert_eq!(gnu_build_id(&notes[..notes.len() - 3]), None);
        assert_eq!(u64_at(&[0; 7], 0), None);
    }
}
