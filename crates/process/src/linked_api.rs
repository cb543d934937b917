//! The calls into `orc-linked` (table generation, build-ids, sidecar files), kept in one place.

use orc_format::{Layout, RawEntry};
pub use orc_linked::Source;

/// The part of a sidecar file name that tells sources apart (`None` for the default,
/// [`Source::Combined`]).
pub(crate) fn file_tag(source: Source) -> Option<&'static str> {
    match source {
        Source::Analysis => Some("analysis"),
        Source::EhFrame => Some("eh-frame"),
        Source::Combined => None,
    }
}

/// A table in link-time addresses, V3 layout.
pub(crate) struct Rows {
    pub ips: Vec<u64>,
    pub entries: Vec<RawEntry>,
}

pub(crate) fn generate(data: &[u8], source: Source) -> Result<Rows, String> {
    let elf = orc_elf::ElfFile::parse(data).map_err(|e| e.to_string())?;
    let t = orc_linked::generate(&elf, source).map_err(|e| e.to_string())?;
    Ok(Rows { ips: t.ips, entries: t.entries })
}

pub(crate) fn encode(build_id: &[u8], rows: Rows) -> (Vec<u8>, Rows) {
    let table = orc_linked::LinkedTable { ips: rows.ips, entries: rows.entries, ..Default::default() };
    let bytes = orc_linked::sidecar::encode(build_id, &table);
    (bytes, Rows { ips: table.ips, entries: table.entries })
}

/// The build-id and rows of a sidecar file (V3 only: other layouts are regenerated).
pub(crate) fn decode(bytes: &[u8]) -> Result<(Vec<u8>, Rows), String> {
    let s = orc_linked::sidecar::decode(bytes).map_err(|e| e.to_string())?;
    if s.layout != Layout::V3 {
        return Err("not a V3 table".into());
    }
    if s.generator != orc_linked::GENERATOR {
        return Err(format!("made by table generator {}, this orctool is {}", s.generator, orc_linked::GENERATOR));
    }
    Ok((s.build_id, Rows { ips: s.ips, entries: s.entries }))
}

/// The SFrame v3 section of an ELF file, at address 0.
pub(crate) fn generate_sframe(data: &[u8]) -> Result<Vec<u8>, String> {
    let elf = orc_elf::ElfFile::parse(data).map_err(|e| e.to_string())?;
    let t = orc_linked::sframe::generate(&elf).map_err(|e| e.to_string())?;
    orc_sframe::write::write(&t.functions, 0).map_err(|e| e.to_string())
}
