//! Writing a table into a linked file as three non-allocated sections.
//!
//! The program's loadable image must not move, so nothing is rebuilt: the new sections'
//! contents, a copy of the section name table with the three names added, and a new section
//! header table are appended to the file, and the ELF header is pointed at them. The old
//! header table stays behind as unused bytes. The sections are not loaded (no `SHF_ALLOC`),
//! so the program runs exactly as before.
//!
//! - `.orc_unwind_ip`: one `i32` per entry, relative to the slot's own position with the
//!   section at address 0 (slot `i` holds `ip - 4·i`), the way `orctool dump` reads the table
//!   of a linked file;
//! - `.orc_unwind`: the 6-byte entries;
//! - `.orc_header`: the hash of the v3 layout, so readers know it.

use orc_format::{Endian, Layout, ORC_ENTRY_SIZE, ORC_IP_SIZE};

use crate::LinkedTable;

/// Why the sections cannot be added.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file already has `.orc_unwind`.
    #[error("already has ORC sections (.orc_unwind); strip them first")]
    AlreadyHasOrc,
    /// An address does not fit a 32-bit slot.
    #[error("address {0:#x} does not fit .orc_unwind_ip's 32-bit slots")]
    AddressRange(u64),
    /// The ELF header or section headers are not what this writer handles.
    #[error("cannot add sections: {0}")]
    Layout(String),
}

const EHDR_SIZE: usize = 64;
const SHDR_SIZE: usize = 64;
const SHT_PROGBITS: u32 = 1;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while out.len() % align != 0 {
        out.push(0);
    }
}

/// A section header.
#[allow(clippy::too_many_arguments)]
fn shdr(name: u32, kind: u32, flags: u64, addr: u64, offset: u64, size: u64, link: u32, info: u32, align: u64, entsize: u64) -> [u8; SHDR_SIZE] {
    let mut h = [0u8; SHDR_SIZE];
    h[0..4].copy_from_slice(&name.to_le_bytes());
    h[4..8].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&addr.to_le_bytes());
    h[24..32].copy_from_slice(&offset.to_le_bytes());
    h[32..40].copy_from_slice(&size.to_le_bytes());
    h[40..44].copy_from_slice(&link.to_le_bytes());
    h[44..48].copy_from_slice(&info.to_le_bytes());
    h[48..56].copy_from_slice(&align.to_le_bytes());
    h[56..64].copy_from_slice(&entsize.to_le_bytes());
    h
}

/// The section header table of the input and its name table.
struct Sections<'a> {
    headers: &'a [u8],
    shnum: usize,
    shstrndx: usize,
    strtab: &'a [u8],
}

fn bad(what: &str) -> WriteError {
    WriteError::Layout(what.to_string())
}

fn sections(input: &[u8]) -> Result<Sections<'_>, WriteError> {
    if input.len() < EHDR_SIZE || &input[..4] != b"\x7fELF" || input[4] != 2 || input[5] != 1 {
        return Err(bad("not a little-endian ELF64 file"));
    }
    let shoff = u64_at(input, 0x28).ok_or_else(|| bad("no header"))? as usize;
    let shentsize = usize::from(u16_at(input, 0x3a).unwrap_or(0));
    let shnum = usize::from(u16_at(input, 0x3c).unwrap_or(0));
    let shstrndx = usize::from(u16_at(input, 0x3e).unwrap_or(0));
    if shentsize != SHDR_SIZE || shnum == 0 || shnum >= 0xff00 - 3 || shstrndx == 0 || shstrndx >= shnum {
        return Err(bad("unusual section header table (extended numbering or none)"));
    }
    let headers = input
        .get(shoff..shoff.checked_add(shnum * SHDR_SIZE).ok_or_else(|| bad("section headers out of range"))?)
        .ok_or_else(|| bad("section headers past the end of the file"))?;
    let strtab_hdr = &headers[shstrndx * SHDR_SIZE..(shstrndx + 1) * SHDR_SIZE];
    let str_off = u64_at(strtab_hdr, 24).unwrap_or(0) as usize;
    let str_size = u64_at(strtab_hdr, 32).unwrap_or(0) as usize;
    let strtab = input
        .get(str_off..str_off.checked_add(str_size).ok_or_else(|| bad("name table out of range"))?)
        .ok_or_else(|| bad("section name table past the end of the file"))?;
    Ok(Sections { headers, shnum, shstrndx, strtab })
}

impl Sections<'_> {
    fn has(&self, wanted: &[u8]) -> bool {
        self.headers.chunks_exact(SHDR_SIZE).any(|h| {
            let name_at = u32_at(h, 0).unwrap_or(0) as usize;
            self.strtab.get(name_at..).map(|s| s.split(|&b| b == 0).next().unwrap_or(&[])) == Some(wanted)
        })
    }

    /// Appends a name table with `added`'s names and a section header table with `added`'s
    /// headers to `out`, and points the ELF header at them. `added`: name and the header
    /// fields after it (type, flags, address, offset, size, alignment, entry size).
    fn append(&self, out: &mut Vec<u8>, added: &[(&str, u32, u64, u64, u64, u64, u64, u64)]) {
        let mut new_strtab = self.strtab.to_vec();
        let mut names = Vec::new();
        for a in added {
            names.push(new_strtab.len() as u32);
            new_strtab.extend_from_slice(a.0.as_bytes());
            new_strtab.push(0);
        }
        let strtab_at = out.len() as u64;
        out.extend_from_slice(&new_strtab);
        pad_to(out, 8);
        let new_shoff = out.len() as u64;
        for (i, h) in self.headers.chunks_exact(SHDR_SIZE).enumerate() {
            if i == self.shstrndx {
                let mut h = h.to_vec();
                h[24..32].copy_from_slice(&strtab_at.to_le_bytes());
                h[32..40].copy_from_slice(&(new_strtab.len() as u64).to_le_bytes());
                out.extend_from_slice(&h);
            } else {
                out.extend_from_slice(h);
            }
        }
        for (&name, &(_, kind, flags, addr, offset, size, align, entsize)) in names.iter().zip(added) {
            out.extend_from_slice(&shdr(name, kind, flags, addr, offset, size, 0, 0, align, entsize));
        }
        out[0x28..0x30].copy_from_slice(&new_shoff.to_le_bytes());
        out[0x3c..0x3e].copy_from_slice(&((self.shnum + added.len()) as u16).to_le_bytes());
    }
}

/// `input` with `.orc_unwind_ip`, `.orc_unwind` and `.orc_header` for `table` appended.
pub fn add_orc_sections(input: &[u8], table: &LinkedTable) -> Result<Vec<u8>, WriteError> {
    let secs = sections(input)?;
    if secs.has(b".orc_unwind") || secs.has(b".orc_unwind_ip") {
        return Err(WriteError::AlreadyHasOrc);
    }
    let n = table.ips.len().min(table.entries.len());
    let mut ip_bytes = Vec::with_capacity(n * ORC_IP_SIZE);
    for (i, &ip) in table.ips[..n].iter().enumerate() {
        let rel = ip.wrapping_sub((i * ORC_IP_SIZE) as u64) as i64;
        let slot = i32::try_from(rel).map_err(|_| WriteError::AddressRange(ip))?;
        ip_bytes.extend_from_slice(&slot.to_le_bytes());
    }
    let mut orc_bytes = Vec::with_capacity(n * ORC_ENTRY_SIZE);
    for e in &table.entries[..n] {
        orc_bytes.extend_from_slice(&e.to_bytes(Endian::Little));
    }
    let header_bytes = Layout::V3.header_hash().map(|h| h.to_vec()).unwrap_or_default();

    let mut out = input.to_vec();
    let mut added = Vec::new();
    for (name, data, align, entsize) in
        [(".orc_unwind_ip", &ip_bytes, 4, ORC_IP_SIZE), (".orc_unwind", &orc_bytes, 2, ORC_ENTRY_SIZE), (".orc_header", &header_bytes, 4, 0)]
    {
        pad_to(&mut out, align);
        added.push((name, SHT_PROGBITS, 0, 0, out.len() as u64, data.len() as u64, align as u64, entsize as u64));
        out.extend_from_slice(data);
    }
    secs.append(&mut out, &added);
    Ok(out)
}

const PHDR_SIZE: usize = 56;
const PT_LOAD: u32 = 1;
const PT_PHDR: u32 = 6;
/// `PT_GNU_SFRAME`: where a loaded program's SFrame section is.
pub const PT_GNU_SFRAME: u32 = 0x6474_e554;
/// `SHT_GNU_SFRAME`: the section type of `.sframe`.
pub const SHT_GNU_SFRAME: u32 = 0x6fff_fff4;
const SHF_ALLOC: u64 = 2;
const PF_R: u32 = 4;
const PAGE: u64 = 0x1000;

fn phdr(kind: u32, flags: u32, offset: u64, vaddr: u64, size: u64, align: u64) -> [u8; PHDR_SIZE] {
    let mut p = [0u8; PHDR_SIZE];
    p[0..4].copy_from_slice(&kind.to_le_bytes());
    p[4..8].copy_from_slice(&flags.to_le_bytes());
    for (at, v) in [(8, offset), (16, vaddr), (24, vaddr), (32, size), (40, size), (48, align)] {
        p[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    p
}

/// `input` with a loaded `.sframe` section: the bytes `make(section_address)` returns, in a
/// new read-only `PT_LOAD` segment after the last one, described by a new `PT_GNU_SFRAME`
/// program header. The program header table moves into that segment too (it must grow by two
/// entries and cannot in place); `PT_PHDR` follows it. Nothing that was loaded moves.
pub fn add_sframe_segment<E: std::fmt::Display>(input: &[u8], make: impl FnOnce(u64) -> Result<Vec<u8>, E>) -> Result<(Vec<u8>, u64), WriteError> {
    let secs = sections(input)?;
    if secs.has(b".sframe") {
        return Err(WriteError::Layout("already has an .sframe section".to_string()));
    }
    let phoff = u64_at(input, 0x20).ok_or_else(|| bad("no header"))? as usize;
    let phentsize = usize::from(u16_at(input, 0x36).unwrap_or(0));
    let phnum = usize::from(u16_at(input, 0x38).unwrap_or(0));
    if phentsize != PHDR_SIZE || phnum == 0 || phnum >= 0xfff0 {
        return Err(bad("no program headers, or an unusual table"));
    }
    let phdrs = input
        .get(phoff..phoff.checked_add(phnum * PHDR_SIZE).ok_or_else(|| bad("program headers out of range"))?)
        .ok_or_else(|| bad("program headers past the end of the file"))?;
    let kind_of = |p: &[u8]| u32_at(p, 0).unwrap_or(0);
    if phdrs.chunks_exact(PHDR_SIZE).any(|p| kind_of(p) == PT_GNU_SFRAME) {
        return Err(bad("already has a PT_GNU_SFRAME program header"));
    }
    let mut end = 0u64;
    let mut last_load = None;
    for (i, p) in phdrs.chunks_exact(PHDR_SIZE).enumerate() {
        if kind_of(p) == PT_LOAD {
            let (vaddr, memsz) = (u64_at(p, 16).unwrap_or(0), u64_at(p, 40).unwrap_or(0));
            end = end.max(vaddr.checked_add(memsz).ok_or_else(|| bad("segment wraps around"))?);
            last_load = Some(i);
        }
    }
    let last_load = last_load.ok_or_else(|| bad("no PT_LOAD segment"))?;
    let mut out = input.to_vec();
    pad_to(&mut out, PAGE as usize);
    let seg_off = out.len() as u64;
    let seg_vaddr = end.checked_add(PAGE - 1).ok_or_else(|| bad("segment wraps around"))? & !(PAGE - 1);
    let table_len = ((phnum + 2) * PHDR_SIZE) as u64;
    let sframe_addr = seg_vaddr + table_len.next_multiple_of(8);
    let data = make(sframe_addr).map_err(|e| WriteError::Layout(e.to_string()))?;
    let seg_len = table_len.next_multiple_of(8) + data.len() as u64;
    let load = phdr(PT_LOAD, PF_R, seg_off, seg_vaddr, seg_len, PAGE);
    let sframe = phdr(PT_GNU_SFRAME, PF_R, seg_off + (sframe_addr - seg_vaddr), sframe_addr, data.len() as u64, 8);
    for (i, p) in phdrs.chunks_exact(PHDR_SIZE).enumerate() {
        if kind_of(p) == PT_PHDR {
            let mut p = p.to_vec();
            for (at, v) in [(8, seg_off), (16, seg_vaddr), (24, seg_vaddr), (32, table_len), (40, table_len)] {
                p[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&p);
        } else {
            out.extend_from_slice(p);
        }
        if i == last_load {
            out.extend_from_slice(&load);
        }
    }
    out.extend_from_slice(&sframe);
    pad_to(&mut out, 8);
    out.extend_from_slice(&data);
    out[0x20..0x28].copy_from_slice(&seg_off.to_le_bytes());
    out[0x38..0x3a].copy_from_slice(&((phnum + 2) as u16).to_le_bytes());
    let section_off = seg_off + (sframe_addr - seg_vaddr);
    secs.append(&mut out, &[(".sframe", SHT_GNU_SFRAME, SHF_ALLOC, sframe_addr, section_off, data.len() as u64, 8, 0)]);
    Ok((out, sframe_addr))
}
