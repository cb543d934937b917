//! `orctool dump` as a user runs it: output, exit codes, messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_testkit::{assemble_in, ORC_HEADER_V3};

const TABLE: &str = r#"
    .text
f:
    push %rbp
    pop %rbp
    ret
    .section .orc_unwind_ip,"a"
    .long .text+0 - .
    .long .text+1 - .
    .long .text+2 - .
    .long .text+3 - .
    .section .orc_unwind,"a"
    .short 8, 0
    .byte 0x05, 0x02
    .short 16, -16
    .byte 0x15, 0x02
    .short 8, 0
    .byte 0x05, 0x02
    .short 0, 0
    .byte 0x00, 0x00
"#;

fn orctool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn run(args: &[&str], files: &[&Path]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    all.extend(files.iter().map(|f| f.as_os_str()));
    orctool(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(dir: &Path, name: &str, extra: &str) -> PathBuf {
    assemble_in(dir, name, &format!("{TABLE}{extra}"))
}

#[test]
fn v3_text_is_objtools() {
    let dir = tempfile::tempdir().unwrap();
    let obj = fixture(dir.path(), "m", ORC_HEADER_V3);
    let out = run(&["dump"], &[&obj]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        ".text+0:type:call sp:sp+8 bp:(und) signal:0\n\
         .text+1:type:call sp:sp+16 bp:prevsp-16 signal:0\n\
         .text+2:type:call sp:sp+8 bp:(und) signal:0\n\
         .text+3:type:(und) sp:(und) bp:(und) signal:0\n"
    );
    assert_eq!(text(&out.stderr), "");
    // objtool's own spelling gives the same.
    let same = run(&["--dump=orc"], &[&obj]);
    assert_eq!(same.stdout, out.stdout);
}

#[test]
fn v1_text_from_the_modules_kernel_version() {
    let dir = tempfile::tempdir().unwrap();
    // The same table with v1 flag bytes (CALL is type 0 there).
    let v1_table = TABLE.replace(", 0x02", ", 0x00");
    let src = format!("{v1_table}\t.section .modinfo,\"a\"\n\t.asciz \"vermagic=6.1.0-56-amd64 SMP\"\n");
    let obj = assemble_in(dir.path(), "m", &src);
    let out = run(&["dump"], &[&obj]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        ".text+0: sp:sp+8 bp:(und) type:call end:0\n\
         .text+1: sp:sp+16 bp:prevsp-16 type:call end:0\n\
         .text+2: sp:sp+8 bp:(und) type:call end:0\n\
         .text+3: sp:(und) bp:(und) type:call end:0\n"
    );
    // The layout flag overrides the file: the same bytes read as v3 are untyped.
    let v3 = run(&["dump", "--orc-layout", "v3"], &[&obj]);
    assert!(text(&v3.stdout).starts_with(".text+0:type:(und) sp:sp+8"), "{}", text(&v3.stdout));
}

#[test]
fn json_carries_the_meaning() {
    let dir = tempfile::tempdir().unwrap();
    let obj = fixture(dir.path(), "m", ORC_HEADER_V3);
    let out = run(&["dump", "--json"], &[&obj]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(doc["layout"], "v3");
    assert_eq!(doc["layout_source"], "orc_header");
    let e = &doc["entries"][1];
    assert_eq!(e["ip"]["symbol"], ".text");
    assert_eq!(e["ip"]["addend"], 1);
    assert_eq!(e["type"], "call");
    assert_eq!(e["sp_reg"], "sp");
    assert_eq!(e["sp_offset"], 16);
    assert_eq!(e["bp_reg"], "prevsp");
    assert_eq!(e["bp_offset"], -16);
    assert_eq!(e["raw"], "1000f0ff1502");
    assert_eq!(doc["entries"][3]["type"], "undefined");
}

#[test]
fn directories_are_walked_in_order_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    fixture(dir.path(), "b", ORC_HEADER_V3);
    fixture(&dir.path().join("sub"), "a", ORC_HEADER_V3);
    assemble_in(dir.path(), "plain", "\t.text\n\tret\n");
    std::fs::write(dir.path().join("notes.txt"), "not picked up").unwrap();
    let out = run(&["dump"], &[dir.path()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("File: ")).collect();
    assert_eq!(headers.len(), 2, "{stdout}");
    assert!(headers[0].ends_with("b.o") && headers[1].ends_with("sub/a.o"), "{headers:?}");
    assert!(text(&out.stderr).contains("dumped 3 files: 2 with ORC, 1 without, 0 failed"), "{}", text(&out.stderr));
}

#[test]
fn xz_modules_are_read_directly() {
    if Command::new("xz").arg("--version").output().is_err() {
        eprintln!("xz not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let obj = fixture(dir.path(), "m", ORC_HEADER_V3);
    let plain = run(&["dump"], &[&obj]);
    assert!(Command::new("xz").arg("-k").arg(&obj).status().unwrap().success());
    let xz = run(&["dump"], &[&dir.path().join("m.o.xz")]);
    assert!(xz.status.success(), "{}", text(&xz.stderr));
    assert_eq!(xz.stdout, plain.stdout);
}

/// Bad input: one line on stderr naming the file and the problem, exit code 2, no panic.
#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(PathBuf, &str)> = {
        let not_elf = dir.path().join("not_elf.ko");
        std::fs::write(&not_elf, "hello").unwrap();
        let good = std::fs::read(fixture(dir.path(), "good", ORC_HEADER_V3)).unwrap();
        let truncated = dir.path().join("truncated.ko");
        std::fs::write(&truncated, &good[..100]).unwrap();
        let mismatch = fixture(dir.path(), "mismatch", &format!("{ORC_HEADER_V3}\t.section .orc_unwind,\"a\"\n\t.short 0,0\n\t.byte 0,0\n"));
        let bad_header = fixture(dir.path(), "hash", "\t.section .orc_header,\"a\"\n\t.fill 20,1,0xab\n");
        let bad_xz = dir.path().join("bad.ko.xz");
        std::fs::write(&bad_xz, b"\xfd7zXZ\x00garbage").unwrap();
        vec![
            (not_elf, "not an ELF file"),
            (truncated, "malformed ELF"),
            (mismatch, ".orc_unwind has 5 entries but .orc_unwind_ip has 4"),
            (bad_header, "unknown .orc_header hash abab"),
            (bad_xz, "cannot decompress xz"),
            (dir.path().join("missing.ko"), "No such file"),
        ]
    };
    for (path, message) in cases {
        let out = run(&["dump"], &[&path]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&*path.to_string_lossy()) && err.contains(message), "{}: {err}", path.display());
        assert!(!err.contains("panicked"));
        assert!(out.stdout.is_empty());
    }
}
