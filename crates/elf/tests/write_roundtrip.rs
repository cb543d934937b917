//! The writer: tables written into an object read back the same, and real modules whose ORC
//! was stripped get the identical table back.

use orc_elf::orc::{read_orc_table, OrcAddress};
use orc_elf::write::{add_orc_sections, OrcRow};
use orc_elf::ElfFile;
use orc_format::{Entry, Layout};
use orc_testkit::{assemble, ORC_HEADER_V3};

const TWO_SECTIONS: &str = "\t.text\nf:\n\tpush %rbp\n\tpop %rbp\n\tret\n\t.section .init.text,\"ax\"\ng:\n\tret\n";

fn rows_of(bytes: &[u8]) -> Vec<(String, i64, orc_format::RawEntry)> {
    let file = ElfFile::parse(bytes).unwrap();
    let table = read_orc_table(&file, Some(Layout::V3)).unwrap().expect("table written");
    table
        .iter()
        .map(|(a, raw)| match a {
            OrcAddress::Relocated { name, addend, .. } => (name.to_string(), addend, raw),
            OrcAddress::Absolute(_) => panic!("relocatable"),
        })
        .collect()
}

#[test]
fn written_rows_read_back() {
    let input = assemble(&format!("{TWO_SECTIONS}{ORC_HEADER_V3}"));
    let file = ElfFile::parse(&input).unwrap();
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let init = file.section_by_name(".init.text").unwrap().unwrap().index;
    let enc = |e: Entry| Layout::V3.encode(e).unwrap();
    let rows = [
        OrcRow { section: text, offset: 0, raw: enc(Entry::call(8)) },
        OrcRow { section: text, offset: 1, raw: enc(Entry::call(16)) },
        OrcRow { section: text, offset: 2, raw: enc(Entry::call(8)) },
        OrcRow { section: text, offset: 3, raw: enc(Entry::UNDEFINED) },
        OrcRow { section: init, offset: 0, raw: enc(Entry::call(8)) },
        OrcRow { section: init, offset: 1, raw: enc(Entry::UNDEFINED) },
    ];
    let out = add_orc_sections(&input, &rows).unwrap();
    let back = rows_of(&out);
    let expect: Vec<_> = rows
        .iter()
        .map(|r| (if r.section == text { ".text" } else { ".init.text" }.to_string(), r.offset as i64, r.raw))
        .collect();
    assert_eq!(back, expect);
    // Everything else survives: the code is unchanged.
    let after = ElfFile::parse(&out).unwrap();
    assert_eq!(after.section_by_name(".text").unwrap().unwrap().data, file.section_by_name(".text").unwrap().unwrap().data);
    // A second run is refused, as objtool refuses it.
    let err = add_orc_sections(&out, &rows).unwrap_err();
    assert!(err.to_string().contains("already has ORC sections"), "{err}");
}

#[test]
fn rows_naming_a_missing_section_are_an_error() {
    let input = assemble(TWO_SECTIONS);
    let rows = [OrcRow { section: 999, offset: 0, raw: Default::default() }];
    assert!(add_orc_sections(&input, &rows).is_err());
}

/// With `ORCTOOL_REAL_MODULES`: strip a few real modules' ORC with objcopy, write the table
/// back, and compare every row.
#[test]
fn real_modules_round_trip() {
    let Some(dir) = std::env::var_os("ORCTOOL_REAL_MODULES") else {
        eprintln!("ORCTOOL_REAL_MODULES not set: real-module round trip skipped");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut done = 0;
    for name in ["null_blk.ko", "kvm.ko", "ext4.ko", "xfs.ko", "libcrc32c.ko"] {
        let Some(path) = find(std::path::Path::new(&dir), name) else { continue };
        let original = std::fs::read(&path).unwrap();
        let stripped_path = tmp.path().join(name);
        let status = std::process::Command::new("objcopy")
            .args(["--remove-section=.orc_unwind", "--remove-section=.orc_unwind_ip", "--remove-section=.rela.orc_unwind_ip"])
            .arg(&path)
            .arg(&stripped_path)
            .status()
            .unwrap();
        assert!(status.success());
        let stripped = std::fs::read(&stripped_path).unwrap();
        let file = ElfFile::parse(&original).unwrap();
        let target = ElfFile::parse(&stripped).unwrap();
        let table = read_orc_table(&file, None).unwrap().unwrap();
        let rows: Vec<OrcRow> = table
            .iter()
            .map(|(a, raw)| match a {
                OrcAddress::Relocated { section, addend, .. } => {
                    let sec_name = file.section(section.unwrap()).unwrap().name;
                    OrcRow { section: target.section_by_name(sec_name).unwrap().unwrap().index, offset: addend as u64, raw }
                }
                OrcAddress::Absolute(_) => unreachable!(),
            })
            .collect();
        let out = add_orc_sections(&stripped, &rows).unwrap();
        assert_eq!(rows_of(&out), rows_of(&original), "{name}");
        done += 1;
    }
    assert!(done > 0, "none of the chosen modules is in ORCTOOL_REAL_MODULES");
    eprintln!("round-tripped {done} real modules");
}

fn find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// The appending writer (sections kept in place) and the rebuilder (`object`'s builder) make
/// the same object, as a linker sees it, for every kind of change: instructions overwritten
/// with their relocation made `R_X86_64_NONE`, local and global symbols added (the globals
/// renumbered behind the new locals), site tables of each slot kind, keys, ORC rows, and a
/// section symbol made for a section that has none.
#[test]
fn appending_and_rebuilding_make_the_same_object() {
    use orc_elf::write::{Changes, InsnPatch, NewSymbol, Rewriter, SiteRow, SiteTable, Slot};
    let source = "\t.text\n\t.globl f\n\t.type f,@function\nf:\n\tcall g\n\tjmp h\n\tret\n\t.size f, .-f\n\
                  \t.globl key\n\t.data\nkey:\n\t.quad f\n\t.quad g\n\
                  \t.section .text.other,\"ax\"\nh:\n\tret\n";
    let input = assemble(source);
    let file = ElfFile::parse(&input).unwrap();
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let other = file.section_by_name(".text.other").unwrap().unwrap().index;
    let key = file.symbols().position(|s| s.is_ok_and(|s| s.name == "key")).unwrap() + 1;
    let enc = |e: Entry| Layout::V3.encode(e).unwrap();
    let orc = [
        OrcRow { section: text, offset: 0, raw: enc(Entry::call(8)) },
        OrcRow { section: text, offset: 10, raw: enc(Entry::UNDEFINED) },
        OrcRow { section: other, offset: 0, raw: enc(Entry::call(8)) },
        OrcRow { section: other, offset: 1, raw: enc(Entry::UNDEFINED) },
    ];
    let site = |section, offset, key| SiteRow { section, offset, key };
    let tables = [
        SiteTable { name: ".static_call_sites".into(), rows: vec![site(text, 0, Some((key, 0))), site(text, 5, Some((key, 1)))], slot: Slot::Pc32 },
        SiteTable { name: ".return_sites".into(), rows: vec![site(text, 10, None), site(other, 0, None)], slot: Slot::Pc32 },
        SiteTable { name: "__mcount_loc".into(), rows: vec![site(text, 0, None)], slot: Slot::Abs64 },
        SiteTable { name: ".call_sites".into(), rows: vec![], slot: Slot::Pc32 },
    ];
    let patches = [InsnPatch { section: text, offset: 0, bytes: vec![0x0f, 0x1f, 0x44, 0x00, 0x00], reloc_offset: Some(1) }];
    let symbols = [
        NewSymbol { name: "__pfx_f".into(), section: text, value: 0, size: 0, info: 0x12 },
        NewSymbol { name: "__pfx_local".into(), section: other, value: 0, size: 1, info: 0x02 },
    ];
    let changes = Changes { tables: &tables, orc: Some(&orc), patches: &patches, symbols: &symbols };
    let appended = Rewriter::read_as(&input, true).unwrap().finish(&changes).unwrap();
    let rebuilt = Rewriter::read_as(&input, false).unwrap().finish(&changes).unwrap();
    let mut streamed = Vec::new();
    Rewriter::read(&input).unwrap().finish_to(&changes, &mut streamed).unwrap();
    assert_eq!(streamed, appended);
    let (a, b) = (ElfFile::parse(&appended).unwrap(), ElfFile::parse(&rebuilt).unwrap());
    let comparison = orc_elf::compare::compare_objects(&a, &b, 20).unwrap();
    assert!(comparison.identical(), "{comparison:?}");
    // The appended object keeps the input's sections where they were.
    let before = file.section_by_name(".data").unwrap().unwrap();
    let after = a.section_by_name(".data").unwrap().unwrap();
    let at = |data: &[u8], file: &[u8]| data.as_ptr() as usize - file.as_ptr() as usize;
    assert_eq!((at(before.data, &input), before.data), (at(after.data, &appended), after.data));
    // Refused twice, by both.
    for append in [true, false] {
        let err = Rewriter::read_as(&appended, append).unwrap().finish(&changes).unwrap_err();
        assert!(err.to_string().contains("already has"), "{err}");
    }
}
