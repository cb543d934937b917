//! The calls into `orc-linked` (table generation, sidecar files), kept in one place.
//!
//! Until `orc-linked` has `generate`/`sidecar`/`Source`, this module stands in with the
//! `.eh_frame` converter and a minimal sidecar of its own; a sidecar that does not decode is
//! regenerated, so switching formats only costs one regeneration.

use orc_format::{Endian, Layout, RawEntry};

/// Where a table's rows come from (mirrors `orc_linked::Source`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Source {
    /// The analysis of the machine code only.
    Analysis,
    /// The `.eh_frame` converter only.
    EhFrame,
    /// The analysis, completed by the converter (the default).
    #[default]
    Combined,
}

impl Source {
    /// The part of a sidecar file name that tells sources apart (`None` for the default).
    pub fn file_tag(self) -> Option<&'static str> {
        match self {
            Source::Analysis => Some("analysis"),
            Source::EhFrame => Some("eh-frame"),
            Source::Combined => None,
        }
    }
}

/// A table in link-time addresses, V3 layout.
pub(crate) struct Rows {
    pub ips: Vec<u64>,
    pub entries: Vec<RawEntry>,
}

pub(crate) fn generate(data: &[u8], _source: Source) -> Result<Rows, String> {
    let elf = orc_elf::ElfFile::parse(data).map_err(|e| e.to_string())?;
    let eh = elf.section_by_name(".eh_frame").map_err(|e| e.to_string())?.ok_or("no .eh_frame section")?;
    let text = elf.section_by_name(".text").ok().flatten().map(|s| s.address).unwrap_or(0);
    let conv = orc_linked::eh_frame::convert(eh.data, eh.address, text, Layout::V3).map_err(|e| format!(".eh_frame: {e}"))?;
    let (ips, entries) = conv.pairs.into_iter().unzip();
    Ok(Rows { ips, entries })
}

const MAGIC: &[u8; 8] = b"ORCPROC0";

pub(crate) fn encode(build_id: &[u8], rows: &Rows) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + build_id.len() + rows.ips.len() * 14);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(build_id.len() as u32).to_le_bytes());
    out.extend_from_slice(&(rows.ips.len() as u32).to_le_bytes());
    out.extend_from_slice(build_id);
    for (ip, e) in rows.ips.iter().zip(&rows.entries) {
        out.extend_from_slice(&ip.to_le_bytes());
        out.extend_from_slice(&e.to_bytes(Endian::Little));
    }
    out
}

/// The build-id and rows of a sidecar file.
pub(crate) fn decode(bytes: &[u8]) -> Result<(Vec<u8>, Rows), String> {
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a sidecar file")?;
    let word = |b: &[u8], at: usize| -> Option<u32> { Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?)) };
    let id_len = word(rest, 0).ok_or("truncated header")? as usize;
    let count = word(rest, 4).ok_or("truncated header")? as usize;
    let rest = &rest[8..];
    let id = rest.get(..id_len).ok_or("truncated build-id")?.to_vec();
    let body = &rest[id_len..];
    if count.checked_mul(14) != Some(body.len()) {
        return Err("row count does not match the size".into());
    }
    let mut ips = Vec::with_capacity(count);
    let mut entries = Vec::with_capacity(count);
    for row in body.chunks_exact(14) {
        ips.push(u64::from_le_bytes(row[..8].try_into().expect("8 bytes")));
        entries.push(RawEntry::from_bytes(row[8..].try_into().expect("6 bytes"), Endian::Little));
    }
    Ok((id, Rows { ips, entries }))
}
