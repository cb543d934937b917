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

/// fuzz target `check_kernel` (after the appending writer came): a section whose name offset is
/// past the end of the section name table names nothing, but once the writer appended its own
/// names there it named `.orc_unwind_ip`, and the table read back from the wrong section. Such
/// a file goes to the rebuilder, and whatever is written reads back as written.
#[test]
fn a_section_name_past_the_name_table() {
    use orc_elf::write::OrcRow;
    use orc_format::{Entry, Layout};
    let object = orc_testkit::assemble("\t.text\nf:\n\tpush %rbp\n\tpop %rbp\n\tret\n\t.section .comment.x,\"\"\n\t.byte 1, 2, 3\n");
    let file = ElfFile::parse(&object).unwrap();
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let comment = file.section_by_name(".comment.x").unwrap().unwrap().index;
    let shstrndx = usize::from(u16::from_le_bytes([object[0x3e], object[0x3f]]));
    let shoff = u64::from_le_bytes(object[0x28..0x30].try_into().unwrap()) as usize;
    let shstrtab_size = u64::from_le_bytes(object[shoff + 64 * shstrndx + 32..shoff + 64 * shstrndx + 40].try_into().unwrap());
    let mut bad = object.clone();
    // The first name the writer appends starts right at the old end of the table.
    let name_at = shoff + 64 * comment;
    bad[name_at..name_at + 4].copy_from_slice(&(shstrtab_size as u32).to_le_bytes());
    let enc = |e: Entry| Layout::V3.encode(e).unwrap();
    let rows = [OrcRow { section: text, offset: 0, raw: enc(Entry::call(8)) }, OrcRow { section: text, offset: 1, raw: enc(Entry::call(16)) }];
    let changes = Changes { tables: &[], orc: Some(&rows), patches: &[], symbols: &[] };
    if let Ok(written) = Rewriter::read(&bad).and_then(|r| r.finish(&changes)) {
        let back = ElfFile::parse(&written).unwrap();
        let table = orc_elf::orc::read_orc_table(&back, Some(Layout::V3)).expect("the written table reads").expect("a table");
        assert_eq!(table.len(), rows.len());
    }
}
