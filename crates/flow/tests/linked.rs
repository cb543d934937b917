//! The linked-file mode: a small kernel image linked from an assembled object (the testkit's
//! `linked_image_source`) must say, table by table, what the object said through its
//! relocations, with every place mapped to the same section and offset.

use orc_elf::{ElfFile, FileKind};
use orc_flow::special::{alternatives, bug_table, jump_table};
use orc_flow::{AddressMap, KernelEra, Location};
use orc_testkit::{link, linked_image_g_table, linked_image_source, LINKED_IMAGE_SCRIPT};

fn fixture() -> (Vec<u8>, Vec<u8>) {
    link(
        &linked_image_source(&linked_image_g_table(false)),
        LINKED_IMAGE_SCRIPT,
    )
}

/// `section name + offset`: in the object, offsets are from its own input sections; the
/// script puts the object's `.text` and `.altinstr_replacement` first in their output
/// sections, so the offsets agree.
fn named(file: &ElfFile<'_>, at: Location) -> (String, u64) {
    (
        file.section(at.section).expect("section").name.to_string(),
        at.offset,
    )
}

#[test]
fn tables_of_the_linked_image_match_the_object() {
    let (obj, exe) = fixture();
    let obj = ElfFile::parse(&obj).unwrap();
    let exe = ElfFile::parse(&exe).unwrap();
    assert_eq!(exe.kind(), FileKind::Executable);
    assert_eq!(
        KernelEra::from_file(&exe),
        Some(KernelEra::V6_12),
        "era from the banner"
    );

    let a = alternatives::read_alternatives_for(&obj, KernelEra::V6_12).unwrap();
    let b = alternatives::read_alternatives_for(&exe, KernelEra::V6_12).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(named(&obj, x.orig), named(&exe, y.orig));
        assert_eq!(
            x.replacement.map(|r| named(&obj, r)),
            y.replacement.map(|r| named(&exe, r))
        );
        assert_eq!(
            (x.cpuid, x.flags, x.orig_len, x.repl_len),
            (y.cpuid, y.flags, y.orig_len, y.repl_len)
        );
    }

    // __jump_table is inside .data in the image, found by its __start_/__stop_ symbols.
    assert!(exe.section_by_name("__jump_table").unwrap().is_none());
    let a = jump_table::read_jump_table_for(&obj, KernelEra::V6_12).unwrap();
    let b = jump_table::read_jump_table_for(&exe, KernelEra::V6_12).unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(named(&obj, a[0].code), named(&exe, b[0].code));
    assert_eq!(named(&obj, a[0].target), named(&exe, b[0].target));
    assert_eq!(
        (a[0].branch(), b[0].branch()),
        (true, true),
        "the key's low bit"
    );
    let key = b[0].key.location().expect("key in a section");
    assert_eq!(exe.section(key.section).unwrap().name, ".data");

    let a = bug_table::read_bug_table(&obj, KernelEra::V6_12).unwrap();
    let b = bug_table::read_bug_table(&exe, KernelEra::V6_12).unwrap();
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(named(&obj, a[0].addr), named(&exe, b[0].addr));
    assert!(b[0].is_warning());
    // 7.x's entries are 16 bytes: the 12-byte table is read as a wrong era, not misread.
    let e = bug_table::read_bug_table(&exe, KernelEra::new(7, 2)).unwrap_err().to_string();
    assert!(e.contains("wrong kernel era?"), "{e}");
}

#[test]
fn addresses_map_to_sections_and_back() {
    let (_, exe) = fixture();
    let exe = ElfFile::parse(&exe).unwrap();
    let map = AddressMap::new(&exe);
    let text = exe.section_by_name(".text").unwrap().unwrap();
    let aux = exe.section_by_name(".altinstr_aux").unwrap().unwrap();
    assert_eq!(
        map.locate(text.address + 3),
        Some(Location::new(text.index, 3))
    );
    assert_eq!(map.address(Location::new(aux.index, 2)), aux.address + 2);
    assert_eq!(map.locate(0x1000), None, "below every section");
    // The end of .text is where its terminator sits.
    assert_eq!(
        map.ending_at(text.address + text.size),
        Some(Location::new(text.index, text.size))
    );
}

#[test]
fn a_field_pointing_nowhere_is_an_error_naming_the_table() {
    let (_, mut exe) = fixture();
    let file = ElfFile::parse(&exe).unwrap();
    let alt = file.section_by_name(".altinstructions").unwrap().unwrap();
    // The file offset of .altinstructions: where its bytes are in the file.
    let pos = exe
        .windows(alt.data.len())
        .position(|w| w == alt.data)
        .unwrap();
    exe[pos..pos + 4].copy_from_slice(&0x4000_0000i32.to_le_bytes());
    let file = ElfFile::parse(&exe).unwrap();
    let e = alternatives::read_alternatives_for(&file, KernelEra::V6_12).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(".altinstructions entry 0: the `orig` field points to 0x"),
        "{text}"
    );
    assert!(
        text.ends_with("which is in no section of the file"),
        "{text}"
    );
}
