//! `orctool unwind` on a small linked program whose ORC table `orctool check` wrote, with a
//! hand-built stack: leaf interrupted after `push %rbx`, called from mid (24 bytes of locals),
//! called from _start, whose END_OF_STACK hint ends the walk.

use std::path::Path;
use std::process::Command;

use orc_elf::ElfFile;
use orc_testkit::assemble_in;

const PROGRAM: &str = r#"
    .text
    .globl _start
    .type _start,@function
_start:
661:
    call mid
    ud2
    .size _start,.-_start
    .type mid,@function
mid:
    sub $24,%rsp
    call leaf
    add $24,%rsp
    ret
    .size mid,.-mid
    .type leaf,@function
leaf:
    push %rbx
    nop
    pop %rbx
    ret
    .size leaf,.-leaf
    /* UNWIND_HINT_END_OF_STACK at _start (6.4+ record: ip, sp_offset, sp_reg, type, signal) */
    .section .discard.unwind_hints,"a"
    .long 661b - .
    .short 0
    .byte 0, 1, 0, 0
    .short 0
"#;

fn orctool(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn symbol(file: &ElfFile<'_>, name: &str) -> u64 {
    file.symbols().flatten().find(|s| s.name == name).map(|s| s.value).expect(name)
}

fn hex(words: &[u64]) -> String {
    words.iter().flat_map(|w| w.to_le_bytes()).map(|b| format!("{b:02x}")).collect()
}

#[test]
fn unwinds_a_linked_program_through_its_orc_table() {
    if Command::new("ld").arg("--version").output().is_err() {
        eprintln!("ld not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let obj = assemble_in(dir.path(), "prog", PROGRAM);
    let with_orc = dir.path().join("prog.orc.o");
    let out = orctool(&["check", "--orc", "--kernel", "6.12", obj.to_str().unwrap(), "-o", with_orc.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let linked = dir.path().join("prog");
    let st = Command::new("ld").args(["-Ttext=0x401000", "-e", "_start", "-o"]).arg(&linked).arg(&with_orc).status().unwrap();
    assert!(st.success());

    let bytes = std::fs::read(&linked).unwrap();
    let file = ElfFile::parse(&bytes).unwrap();
    let (start, mid, leaf) = (symbol(&file, "_start"), symbol(&file, "mid"), symbol(&file, "leaf"));
    // leaf is interrupted at its nop (after push %rbx), exact ip.
    let sp: u64 = 0x7fff_0000_1000;
    let ret_to_mid = mid + 4 + 5; // after `sub $24,%rsp` (4) and `call leaf` (5)
    let ret_to_start = start + 5; // after `call mid`
    let stack = [0x1111, ret_to_mid, 0, 0, 0, ret_to_start, 0];
    let snapshot = format!(
        r#"{{"regs": {{"rip": "{:#x}", "rsp": "{sp:#x}", "rbp": "0x0"}}, "ip_is_exact": true, "pt_regs": null,
            "stacks": [{{"name": "task", "base": "{sp:#x}", "bytes": "{}"}}], "kernel": {{"version": "6.12"}}}}"#,
        leaf + 1,
        hex(&stack)
    );
    let snap = dir.path().join("snap.json");
    std::fs::write(&snap, snapshot).unwrap();
    let out = orctool(&["unwind", "--snapshot", snap.to_str().unwrap(), "--vmlinux", linked.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].contains("leaf+0x1/") && lines[0].contains("(exact)"), "{text}");
    assert!(lines[1].contains("mid+0x9/") && lines[1].contains(&format!("sp={:#x}", sp + 16)), "{text}");
    assert!(lines[2].contains("_start+0x5/") && lines[2].contains(&format!("sp={:#x}", sp + 48)), "{text}");
    assert_eq!(lines[3], "end: end of stack; reliable");

    // JSON carries the same frames.
    let out = orctool(&["unwind", "--json", "--snapshot", snap.to_str().unwrap(), "--vmlinux", linked.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["frames"].as_array().unwrap().len(), 3);
    assert_eq!(doc["reliable"], true);
    assert_eq!(doc["frames"][1]["ip"], format!("{ret_to_mid:#x}"));

    // A corrupted return address makes the trace end in an error, reported, not a panic.
    let bad = [0x1111, 0xdead_beef, 0, 0, 0, ret_to_start, 0];
    std::fs::write(&snap, format!(r#"{{"regs": {{"rip": "{:#x}", "rsp": "{sp:#x}", "rbp": "0"}}, "stacks": [{{"base": "{sp:#x}", "bytes": "{}"}}]}}"#, leaf + 1, hex(&bad))).unwrap();
    let out = orctool(&["unwind", "--snapshot", snap.to_str().unwrap(), "--vmlinux", linked.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unreliable") || !text.contains("end of stack; reliable"), "{text}");
}

#[test]
fn bad_snapshots_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.json");
    for (content, message) in [("not json", "not a snapshot"), ("{}", "no \"regs\""), (r#"{"regs": {"rip": "0x1", "rsp": "0x2", "rbp": "0"}, "stacks": [{"base": "0x10", "bytes": "abc"}]}"#, "not hex")] {
        std::fs::write(&snap, content).unwrap();
        let out = orctool(&["unwind", "--snapshot", snap.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(message) && err.lines().count() == 1, "{err}");
    }
    let _ = Path::new("");
}
