//! The parts of a linked file the analysis reads beyond `orc-elf`'s model: the build-id note,
//! `.dynsym`, the dynamic relocations that name PLT and GOT slots, and bytes by virtual
//! address.

use orc_elf::ElfFile;

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
