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
