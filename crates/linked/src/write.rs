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
    /// The file already has one of the three sections.
    #[error("already has ORC sections (.orc_unwind, .orc_unwind_ip or .orc_header); strip them first")]
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

/// `input` with `.orc_unwind_ip`, `.orc_unwind` and `.orc_header` for `table` appended.
pub fn add_orc_sections(input: &[u8], table: &LinkedTable) -> Result<Vec<u8>, WriteError> {
    let bad = |what: &str| WriteError::Layout(what.to_string());
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
    for h in headers.chunks_exact(SHDR_SIZE) {
        let name_at = u32_at(h, 0).unwrap_or(0) as usize;
        let name = strtab.get(name_at..).map(|s| s.split(|&b| b == 0).next().unwrap_or(&[]));
        // Any of the three: a second `.orc_header` beside ours would leave readers two hashes.
        if matches!(name, Some(b".orc_unwind" | b".orc_unwind_ip" | b".orc_header")) {
            return Err(WriteError::AlreadyHasOrc);
        }
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
    let mut new_strtab = strtab.to_vec();
    let mut name = |s: &str| {
        let at = new_strtab.len() as u32;
        new_strtab.extend_from_slice(s.as_bytes());
        new_strtab.push(0);
        at
    };
    let names = [name(".orc_unwind_ip"), name(".orc_unwind"), name(".orc_header")];
    let mut added = Vec::new();
    for (data, align, entsize) in [(&ip_bytes, 4, ORC_IP_SIZE), (&orc_bytes, 2, ORC_ENTRY_SIZE), (&header_bytes, 4, 0)] {
        pad_to(&mut out, align);
        added.push((out.len() as u64, data.len() as u64, align as u64, entsize as u64));
        out.extend_from_slice(data);
    }
    let strtab_at = out.len() as u64;
    out.extend_from_slice(&new_strtab);
    pad_to(&mut out, 8);
    let new_shoff = out.len() as u64;
    for (i, h) in headers.chunks_exact(SHDR_SIZE).enumerate() {
        if i == shstrndx {
            let mut h = h.to_vec();
            h[24..32].copy_from_slice(&strtab_at.to_le_bytes());
            h[32..40].copy_from_slice(&(new_strtab.len() as u64).to_le_bytes());
            out.extend_from_slice(&h);
        } else {
            out.extend_from_slice(h);
        }
    }
    for (&name, &(offset, size, align, entsize)) in names.iter().zip(&added) {
        out.extend_from_slice(&shdr(name, SHT_PROGBITS, 0, 0, offset, size, 0, 0, align, entsize));
    }
    out[0x28..0x30].copy_from_slice(&new_shoff.to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&((shnum + 3) as u16).to_le_bytes());
    reads_back(&out, &table.ips[..n], &table.entries[..n])?;
    Ok(out)
}

/// The written file's table, read as every reader reads it, is the table written. This writer
/// patches headers by hand; a file whose headers it misreads (a name table that is not where
/// the reader finds it, say: the fuzz target `check_linked` found several) must be refused,
/// never written with a table nobody can read.
fn reads_back(out: &[u8], ips: &[u64], entries: &[orc_format::RawEntry]) -> Result<(), WriteError> {
    let refuse = |what: String| WriteError::Layout(format!("the written table would not read back ({what})"));
    let file = orc_elf::ElfFile::parse(out).map_err(|e| refuse(e.to_string()))?;
    // Without a layout given: the reader finds the layout by the `.orc_header` it finds.
    let table = orc_elf::orc::read_orc_table(&file, None)
        .map_err(|e| refuse(e.to_string()))?
        .ok_or_else(|| refuse("no .orc_unwind".into()))?;
    if table.layout != Layout::V3 {
        return Err(refuse(format!("read as layout {:?}", table.layout)));
    }
    if table.len() != entries.len() {
        return Err(refuse(format!("{} entries instead of {}", table.len(), entries.len())));
    }
    for (i, (address, raw)) in table.iter().enumerate() {
        if address != orc_elf::orc::OrcAddress::Absolute(ips[i]) || raw != entries[i] {
            return Err(refuse(format!("entry {i} differs")));
        }
    }
    Ok(())
}
