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

/// `.orc_header` of `layout`, as assembler lines.
fn header_of(layout: orc_format::Layout) -> String {
    let hash = layout.header_hash().expect("layout has a header");
    let bytes: Vec<String> = hash.iter().map(|b| format!("{b:#04x}")).collect();
    format!("\t.section .orc_header,\"a\"\n\t.byte {}\n", bytes.join(","))
}

/// The same four rows in each layout since 6.4, selected by each header: the register fields
/// are renumbered in v4, and field 10 is `ax` only in v3+ax.
#[test]
fn each_header_selects_its_register_numbering() {
    use orc_format::Layout;
    let dir = tempfile::tempdir().unwrap();
    let want = ".text+0:type:call sp:sp+8 bp:(und) signal:0\n\
                .text+1:type:call sp:sp+16 bp:prevsp-16 signal:0\n\
                .text+2:type:call sp:sp+8 bp:(und) signal:0\n\
                .text+3:type:(und) sp:(und) bp:(und) signal:0\n";
    // 7.1+: sp is field 3, prevsp field 8 (objtool 7.2 prints these bytes as above).
    let v4_table = TABLE.replace("0x05, 0x02", "0x03, 0x02").replace("0x15, 0x02", "0x83, 0x02");
    let v4 = assemble_in(dir.path(), "v4", &format!("{v4_table}{}", header_of(Layout::V4)));
    let out = run(&["dump"], &[&v4]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), want);
    // Read with 6.4-7.0's numbering, the same bytes name other registers.
    let wrong = run(&["dump", "--orc-layout", "v3"], &[&v4]);
    assert!(text(&wrong.stdout).starts_with(".text+0:type:call sp:di+8"), "{}", text(&wrong.stdout));
    // A 7.2 module without its header: the kernel version decides.
    let src = format!("{v4_table}\t.section .modinfo,\"a\"\n\t.asciz \"vermagic=7.2.13+deb14-amd64 SMP preempt mod_unload modversions \"\n");
    let by_version = assemble_in(dir.path(), "v4ver", &src);
    assert_eq!(text(&run(&["dump"], &[&by_version]).stdout), want);

    // The AX backport: old numbering plus field 10 = ax.
    let ax_table = TABLE.replacen("0x05, 0x02", "0x0a, 0x02", 1);
    let ax = assemble_in(dir.path(), "ax", &format!("{ax_table}{}", header_of(Layout::V3Ax)));
    let out = run(&["dump"], &[&ax]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(".text+0:type:call sp:ax+8 bp:(und)"), "{}", text(&out.stdout));
    // A 6.12 kernel without the backport has no register 10: objtool prints `?`.
    let v3 = assemble_in(dir.path(), "v3", &format!("{ax_table}{ORC_HEADER_V3}"));
    assert!(text(&run(&["dump"], &[&v3]).stdout).starts_with(".text+0:type:call sp:?+8 bp:(und)"));
}

/// A header no layout has: one error line naming the file, the hash and the flag to use,
/// and no rows at all (never a dump in a guessed layout); the flag then reads it.
#[test]
fn unknown_header_is_one_clear_error_never_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "0102030405060708090a0b0c0d0e0f1011121314";
    let bytes: Vec<String> = (1..=20).map(|b| format!("{b}")).collect();
    let obj = fixture(dir.path(), "future", &format!("\t.section .orc_header,\"a\"\n\t.byte {}\n", bytes.join(",")));
    let out = run(&["dump"], &[&obj]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for part in [&*obj.to_string_lossy(), hash, "--orc-layout", "v4"] {
        assert!(err.contains(part), "{err} lacks {part}");
    }
    assert!(out.stdout.is_empty());
    let forced = run(&["dump", "--orc-layout", "v3+ax"], &[&obj]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert!(text(&forced.stdout).starts_with(".text+0:type:call sp:sp+8"));
}
