//! Inputs found by the fuzz targets (fuzz/, docs/fuzzing.md).

use orc_elf::write::{Changes, Rewriter};
use orc_elf::ElfFile;

/// Sets `sh_addralign` of section `name` of a little-endian ELF64 object.
fn set_alignment(bytes: &mut [u8], name: &str, align: u64) {
    let index = ElfFile::parse(bytes).unwrap().section_by_name(name).unwrap().unwrap().index;
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let at = shoff + 64 * index + 48;
    bytes[at..at + 8].copy_from_slice(&align.to_le_bytes());
}

/// fuzz target `check_kernel`: a section with `sh_addralign` 0 (which ELF allows) made the
/// builder compute `0 - 1` (a panic with overflow checks; with wrapping arithmetic the section
/// was placed at offset 0, over the ELF header). 0 now means 1; an alignment that is not a power
/// of two, or a huge one, is refused.
#[test]
fn section_alignments_of_zero_odd_and_huge() {
    let object = orc_testkit::assemble("\t.text\nf:\n\tret\n\t.section .comment.x,\"\"\n\t.byte 1, 2, 3\n");
    let changes = Changes { tables: &[], orc: None, patches: &[], symbols: &[] };
    let mut zero = object.clone();
    set_alignment(&mut zero, ".comment.x", 0);
    for append in [true, false] {
        let written = Rewriter::read_as(&zero, append).and_then(|r| r.finish(&changes)).expect("alignment 0 is no alignment");
        let back = ElfFile::parse(&written).unwrap();
        assert_eq!(back.section_by_name(".comment.x").unwrap().unwrap().data, [1, 2, 3]);
    }
    for bad in [3u64, 1 << 40] {
        let mut odd = object.clone();
        set_alignment(&mut odd, ".comment.x", bad);
        // The rebuilder lays sections out anew by their alignment: it refuses these.
        let e = Rewriter::read_as(&odd, false).err().expect("refused").to_string();
        assert!(e.contains("has alignment"), "{e}");
        // The appending writer leaves input sections where they are: their bytes stay.
        let written = Rewriter::read(&odd).and_then(|r| r.finish(&changes)).expect("appended");
        let back = ElfFile::parse(&written).unwrap();
        assert_eq!(back.section_by_name(".comment.x").unwrap().unwrap().data, [1, 2, 3]);
    }
}
