//! Inputs found by the fuzz targets (fuzz/, docs/fuzzing.md), each rebuilt here from a real
//! program so that the test says what was wrong.

use orc_elf::ElfFile;
use orc_linked::write::{add_orc_sections, WriteError};
use orc_linked::{generate, Source};
use orc_testkit::programs::{self, Build};

/// fuzz target `check_linked`: a file that already had a section named `.orc_header` (but no
/// `.orc_unwind`) got a second one, and the written file's table could not be read back.
#[test]
fn a_file_with_an_orc_header_already_is_refused() {
    let path = programs::build("recursion", &Build::default()).unwrap_or_else(|e| panic!("building recursion: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let header = dir.path().join("header");
    std::fs::write(&header, [0u8; 20]).unwrap();
    let with_header = dir.path().join("with-header");
    let status = std::process::Command::new("objcopy")
        .arg(format!("--add-section=.orc_header={}", header.display()))
        .arg(&path)
        .arg(&with_header)
        .status()
        .expect("objcopy runs");
    assert!(status.success());
    let bytes = std::fs::read(&with_header).unwrap();
    let elf = ElfFile::parse(&bytes).unwrap();
    let table = generate(&elf, Source::Combined).unwrap();
    assert!(matches!(add_orc_sections(&bytes, &table), Err(WriteError::AlreadyHasOrc)));
    // The program itself still gets its sections, and they read back.
    let plain = std::fs::read(&path).unwrap();
    let table = generate(&ElfFile::parse(&plain).unwrap(), Source::Combined).unwrap();
    let written = add_orc_sections(&plain, &table).unwrap();
    let orc = orc_elf::orc::read_orc_table(&ElfFile::parse(&written).unwrap(), None).unwrap().unwrap();
    assert_eq!(orc.len(), table.ips.len());
}

/// fuzz target `check_linked`: files whose section headers the writer read differently from
/// every reader (here: the section name table marked SHT_NOBITS, so readers see no names) got
/// a table written that did not read back. The writer now reads its output back and refuses.
#[test]
fn a_table_that_would_not_read_back_is_not_written() {
    let path = programs::build("recursion", &Build::default()).unwrap_or_else(|e| panic!("building recursion: {e}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let shstrndx = usize::from(u16::from_le_bytes(bytes[0x3e..0x40].try_into().unwrap()));
    let sh_type = shoff + 64 * shstrndx + 4;
    bytes[sh_type..sh_type + 4].copy_from_slice(&8u32.to_le_bytes());
    let elf = ElfFile::parse(&bytes).unwrap();
    let table = generate(&elf, Source::Combined).unwrap();
    match add_orc_sections(&bytes, &table) {
        Err(WriteError::Layout(e)) => assert!(e.contains("would not read back"), "{e}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(written) => {
            let orc = orc_elf::orc::read_orc_table(&ElfFile::parse(&written).unwrap(), None).unwrap().unwrap();
            assert_eq!(orc.len(), table.ips.len());
        }
    }
}
