//! `orctool check --orc` and `orctool cfi-compare` on executables: the table written into the
//! file reads back through `orctool dump`, the rewritten program still runs, sidecar files
//! are named by build-id and decode to the same table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_elf::ElfFile;
use orc_format::Layout;
use orc_linked::{build_id, generate, sidecar, Source};
use orc_testkit::programs::{self, Build};

fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn program(name: &str, dir: &Path) -> PathBuf {
    let built = programs::build(name, &Build::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let copy = dir.join(name);
    std::fs::copy(&built, &copy).unwrap();
    copy
}

#[test]
fn check_writes_sections_that_dump_reads_back_and_the_program_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let prog = program("recursion", dir.path());
    let original = std::fs::read(&prog).unwrap();
    let expected = generate(&ElfFile::parse(&original).unwrap(), Source::Combined).unwrap();

    let out = orctool(&["check", "--orc", prog.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 problems") && stderr.contains("wrote"), "{stderr}");

    // Every loadable byte is unchanged: the sections are appended.
    let written = std::fs::read(&prog).unwrap();
    let elf = ElfFile::parse(&written).unwrap();
    let table = orc_elf::orc::read_orc_table(&elf, None).unwrap().expect("a table");
    assert_eq!(table.layout, Layout::V3);
    let ips: Vec<u64> = table
        .addresses
        .iter()
        .map(|a| match a {
            orc_elf::orc::OrcAddress::Absolute(ip) => *ip,
            other => panic!("unexpected address {other:?}"),
        })
        .collect();
    assert_eq!(ips, expected.ips);
    let entries: Vec<_> = (0..table.len()).map(|i| table.entry(i)).collect();
    assert_eq!(entries, expected.entries);

    let dump = orctool(&["dump", prog.to_str().unwrap()]);
    assert_eq!(dump.status.code(), Some(0));
    let text = String::from_utf8_lossy(&dump.stdout);
    assert_eq!(text.lines().count(), expected.ips.len(), "one dump line per entry");
    let start = elf.symbols().flatten().find(|s| s.name == "_start").unwrap().value;
    let start_line = text.lines().find(|l| l.starts_with(&format!("{start:x}:"))).expect("a row at _start");
    assert!(start_line.contains("type:end "), "{start_line}");

    let run = Command::new(&prog).output().unwrap();
    let before = Command::new(programs::build("recursion", &Build::default()).unwrap()).output().unwrap();
    assert_eq!(run.status.code(), before.status.code());
    assert_eq!(run.stdout, before.stdout);

    // A second run refuses: the file has ORC already.
    let again = orctool(&["check", "--orc", prog.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has ORC"));
}

#[test]
fn sidecar_is_named_by_build_id_and_decodes_to_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let prog = program("switch", dir.path());
    let cache = dir.path().join("cache");
    let before = std::fs::read(&prog).unwrap();
    let arg = format!("--sidecar={}", cache.display());
    let out = orctool(&["check", "--orc", &arg, prog.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&prog).unwrap(), before, "the binary is left alone");
    let elf = ElfFile::parse(&before).unwrap();
    let id = build_id(&elf).expect("gcc links a build-id");
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let bytes = std::fs::read(cache.join(format!("{hex}.orc"))).unwrap();
    let back = sidecar::decode(&bytes).unwrap();
    let table = generate(&elf, Source::Combined).unwrap();
    assert_eq!(back.build_id, id);
    assert_eq!(back.ips, table.ips);
    assert_eq!(back.entries, table.entries);
}

#[test]
fn cfi_compare_reports_no_difference_on_a_test_program_and_lists_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let prog = program("alloca_drap", dir.path());
    let out = orctool(&["cfi-compare", "--json", "-v", prog.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["differ"], 0, "{v}");
    assert!(v["agree"].as_u64().unwrap() > 50, "{v}");

    let bad = dir.path().join("not-elf");
    std::fs::write(&bad, b"hello").unwrap();
    let out = orctool(&["cfi-compare", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("orctool: ") && err.lines().count() == 1, "{err}");
}
