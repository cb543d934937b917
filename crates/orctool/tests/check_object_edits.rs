//! What `orctool check` changes inside an object besides the sections it adds, as objtool
//! does: jump-label JMPs the kernel expects as NOPs (`--hacks=jump_label`), their relocations
//! made `R_X86_64_NONE`, and `__pfx_` symbols over function padding (`--prefix=16`); and
//! `orctool compare-objects`, which checks such objects the way a linker sees them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_elf::{ElfFile, SymbolKind};
use orc_testkit::assemble_in;

/// `g` (no padding before it), then 16 one-byte NOPs and `f`, which holds three jump-label
/// sites: a 2-byte JMP and a 5-byte JMP into another section that objtool must NOP (bit 1 of
/// the key's addend), and a 2-byte JMP of a `static_branch_likely`-style entry that stays.
const SOURCE: &str = "\t.text\n\t.globl g\n\t.type g, @function\ng:\n\tret\n\t.size g, .-g\n\
\t.fill 16, 1, 0x90\n\t.globl f\n\t.type f, @function\nf:\n\
1:\tjmp 3f\n\t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 1b - .\n\t.long 3f - .\n\t.quad some_key + 2 - .\n\t.popsection\n\
2:\tjmp far_away\n\t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 2b - .\n\t.long far_away - .\n\t.quad some_key + 2 - .\n\t.popsection\n\
4:\tjmp 3f\n\t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 4b - .\n\t.long 3f - .\n\t.quad some_key + 1 - .\n\t.popsection\n\
3:\tret\n\t.size f, .-f\n\
\t.section .text.unlikely, \"ax\"\n\t.type far_away, @function\nfar_away:\n\tret\n\t.size far_away, .-far_away\n";

/// Offsets in `.text`: `f` starts after `ret` and 16 NOPs.
const F: u64 = 17;

fn orctool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn check(input: &Path, output: &Path, flags: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["check".as_ref()];
    args.extend(flags.iter().map(|f| std::ffi::OsStr::new(f)));
    args.extend([input.as_os_str(), "-o".as_ref(), output.as_os_str()]);
    orctool(&args)
}

fn fixture(dir: &Path) -> PathBuf {
    assemble_in(dir, "edits", SOURCE)
}

fn text(file: &ElfFile<'_>, name: &str) -> (usize, Vec<u8>) {
    let s = file.section_by_name(name).unwrap().unwrap();
    (s.index, s.data.to_vec())
}

#[test]
fn jump_label_jmps_become_nops_and_lose_their_relocation() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let out = dir.path().join("out.o");
    let r = check(&input, &out, &["--hacks=jump_label", "--orc"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let before = std::fs::read(&input).unwrap();
    let before = ElfFile::parse(&before).unwrap();
    let after = std::fs::read(&out).unwrap();
    let after = ElfFile::parse(&after).unwrap();
    let (_, old) = text(&before, ".text");
    let (index, new) = text(&after, ".text");
    let f = F as usize;
    // The assembler's JMPs are where the fixture put them.
    assert_eq!(&old[f..f + 2], &[0xeb, 0x07]);
    assert_eq!(old[f + 2], 0xe9);
    // The two marked sites hold the kernel's NOPs of their length; the third is untouched;
    // nothing else changed.
    assert_eq!(&new[f..f + 2], &[0x66, 0x90]);
    assert_eq!(&new[f + 2..f + 7], &[0x0f, 0x1f, 0x44, 0x00, 0x00]);
    assert_eq!(&new[f + 7..], &old[f + 7..]);
    assert_eq!(&new[..f], &old[..f]);

    // The 5-byte JMP's relocation is still there, now R_X86_64_NONE; others keep their type.
    let rela = after.relocation_section_for(index).expect(".rela.text");
    let relocs = after.relocations(rela).unwrap();
    let in_site = relocs.iter().find(|r| r.offset == F + 3).expect("relocation inside the JMP");
    assert_eq!(in_site.kind, 0, "R_X86_64_NONE");
    let rela_before = before.relocation_section_for(before.section_by_name(".text").unwrap().unwrap().index).unwrap();
    let old_relocs = before.relocations(rela_before).unwrap();
    assert_ne!(old_relocs.iter().find(|r| r.offset == F + 3).unwrap().kind, 0);
    assert_eq!(relocs.len(), old_relocs.len());
}

#[test]
fn without_the_hack_the_jmps_stay() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let out = dir.path().join("out.o");
    let r = check(&input, &out, &["--orc"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let before = std::fs::read(&input).unwrap();
    let after = std::fs::read(&out).unwrap();
    let (_, old) = text(&ElfFile::parse(&before).unwrap(), ".text");
    let (_, new) = text(&ElfFile::parse(&after).unwrap(), ".text");
    assert_eq!(old, new);
}

#[test]
fn prefix_symbols_cover_exactly_the_padding() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let out = dir.path().join("out.o");
    let r = check(&input, &out, &["--prefix=16", "--orc"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let after = std::fs::read(&out).unwrap();
    let after = ElfFile::parse(&after).unwrap();
    let syms: Vec<_> = after.symbols().map(Result::unwrap).collect();
    let f = syms.iter().find(|s| s.name == "f").unwrap();
    let pfx: Vec<_> = syms.iter().filter(|s| s.name.starts_with("__pfx_")).collect();
    // `f` has 16 NOP bytes before it; `g` and `far_away` start their sections.
    assert_eq!(pfx.len(), 1, "{:?}", pfx.iter().map(|s| s.name).collect::<Vec<_>>());
    let p = pfx[0];
    assert_eq!(p.name, "__pfx_f");
    assert_eq!((p.kind, p.binding, p.section), (SymbolKind::Func, f.binding, f.section));
    assert_eq!((p.value, p.size), (F - 16, 16));

    // A 12-byte prefix is not exactly what precedes f: no symbol.
    let out12 = dir.path().join("out12.o");
    let r = check(&input, &out12, &["--prefix=12", "--orc"]);
    assert!(r.status.success());
    let b = std::fs::read(&out12).unwrap();
    let f12 = ElfFile::parse(&b).unwrap();
    let n = f12.symbols().map(Result::unwrap).filter(|s| s.name.starts_with("__pfx_")).count();
    // 16 one-byte NOPs: the walk back from f meets a NOP exactly 12 bytes before it.
    assert_eq!(n, 1);
    let p12 = f12.symbols().map(Result::unwrap).find(|s| s.name == "__pfx_f").unwrap();
    assert_eq!((p12.value, p12.size), (F - 12, 12));
}

#[test]
fn compare_objects_sees_what_check_changed() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let out = dir.path().join("out.o");
    let r = check(&input, &out, &["--hacks=jump_label", "--prefix=16", "--orc"]);
    assert!(r.status.success());

    let same = orctool(&["compare-objects".as_ref(), input.as_os_str(), input.as_os_str()]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).starts_with("identical: "));

    let diff = orctool(&["compare-objects".as_ref(), input.as_os_str(), out.as_os_str(), "--json".as_ref()]);
    assert_eq!(diff.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(v["identical"], false);
    let diffs = v["differences"].as_array().unwrap();
    let has = |kind: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        diffs.iter().any(|d| d["kind"] == kind && pred(d))
    };
    // `eb 07` -> `66 90` (2 bytes differ), `e9 00 00 00 00` -> `0f 1f 44 00 00` (3 differ).
    assert!(has("bytes", &|d| d["section"] == ".text" && d["offset"] == F && d["count"] == 5));
    assert!(has("symbol", &|d| d["symbol"].as_str().unwrap().starts_with("__pfx_f ") && d["surplus"] == -1));
    assert!(has("missing-section", &|d| d["section"] == ".orc_unwind" && d["in_first"] == false));
    assert!(has("relocation", &|d| d["section"] == ".text" && d["relocation"].as_str().unwrap().contains(" type 0 ")));

    // Checking the same input twice gives the same object.
    let again = dir.path().join("again.o");
    assert!(check(&input, &again, &["--hacks=jump_label", "--prefix=16", "--orc"]).status.success());
    let r = orctool(&["compare-objects".as_ref(), out.as_os_str(), again.as_os_str()]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stdout));
}

#[test]
fn compare_objects_bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture(dir.path());
    let junk = dir.path().join("junk.o");
    std::fs::write(&junk, b"not an object").unwrap();
    let r = orctool(&["compare-objects".as_ref(), input.as_os_str(), junk.as_os_str()]);
    assert_eq!(r.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("orctool: {}: ", junk.display())), "{stderr}");
    let missing = dir.path().join("missing.o");
    let r = orctool(&["compare-objects".as_ref(), missing.as_os_str(), input.as_os_str()]);
    assert_eq!(r.status.code(), Some(2));
}

/// `f` and `g` call `__fentry__` first; `h`, in `.noinstr.text`, calls a KCOV hook and
/// tail-calls a KCSAN one.
const MCOUNT: &str = "\t.text\n\t.globl f\n\t.type f, @function\nf:\n\tcall __fentry__\n\tret\n\t.size f, .-f\n\t.globl g\n\t.type g, @function\ng:\n\tcall __fentry__\n\tcall f\n\tret\n\t.size g, .-g\n\t.section .noinstr.text, \"ax\"\n\t.globl h\n\t.type h, @function\nh:\n\tcall __sanitizer_cov_trace_pc\n\tjmp __tsan_func_entry\n\t.size h, .-h\n";

#[test]
fn fentry_calls_are_listed_and_with_mnop_become_nops() {
    let dir = tempfile::tempdir().unwrap();
    let input = assemble_in(dir.path(), "mcount", MCOUNT);
    for mnop in [false, true] {
        let out = dir.path().join(format!("out{mnop}.o"));
        let flags: &[&str] = if mnop { &["--mcount", "--mnop", "--orc"] } else { &["--mcount", "--orc"] };
        let r = check(&input, &out, flags);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let bytes = std::fs::read(&out).unwrap();
        let file = ElfFile::parse(&bytes).unwrap();
        let (text, data) = text(&file, ".text");
        // __mcount_loc: one absolute 8-byte slot per __fentry__ call, f+0 and g+0.
        let loc = file.section_by_name("__mcount_loc").unwrap().expect("__mcount_loc");
        assert_eq!((loc.size, loc.entry_size, loc.align), (16, 8, 8));
        let relocs = file.relocations(file.relocation_section_for(loc.index).unwrap()).unwrap();
        let targets: Vec<_> = relocs.iter().map(|r| (r.offset, r.kind, file.symbol(r.symbol).unwrap().section, r.addend)).collect();
        let g = file.symbols().map(Result::unwrap).find(|s| s.name == "g").unwrap().value as i64;
        assert_eq!(targets, [(0, 1, Some(text), 0), (8, 1, Some(text), g)], "R_X86_64_64 = 1");
        // The calls: NOPs with --mnop (relocation R_X86_64_NONE), untouched without.
        let call_reloc = file.relocations(file.relocation_section_for(text).unwrap()).unwrap();
        let at = |o: u64| call_reloc.iter().find(|r| r.offset == o).unwrap().kind;
        if mnop {
            assert_eq!(&data[0..5], &[0x0f, 0x1f, 0x44, 0x00, 0x00]);
            assert_eq!(at(1), 0);
            assert_eq!(at(g as u64 + 1), 0);
            assert_ne!(at(g as u64 + 6), 0, "the call to f stays");
        } else {
            assert_eq!(data[0], 0xe8);
            assert_ne!(at(1), 0);
        }
    }
}

#[test]
fn kcov_calls_in_noinstr_code_become_nops_and_tail_calls_rets() {
    let dir = tempfile::tempdir().unwrap();
    let input = assemble_in(dir.path(), "kcov", MCOUNT);
    let out = dir.path().join("out.o");
    let r = check(&input, &out, &["--hacks=noinstr", "--orc", "--link"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(&out).unwrap();
    let file = ElfFile::parse(&bytes).unwrap();
    let (sec, data) = text(&file, ".noinstr.text");
    assert_eq!(&data[0..5], &[0x0f, 0x1f, 0x44, 0x00, 0x00], "call -> nop5");
    assert_eq!(&data[5..10], &[0xc3, 0xcc, 0x0f, 0x1f, 0x00], "jmp -> ret; int3; nop3");
    let relocs = file.relocations(file.relocation_section_for(sec).unwrap()).unwrap();
    assert!(relocs.iter().all(|r| r.kind == 0), "{relocs:?}");
    // Outside noinstr code, and without the hack, calls to the hooks stay.
    let out2 = dir.path().join("out2.o");
    assert!(check(&input, &out2, &["--orc", "--link"]).status.success());
    let bytes = std::fs::read(&out2).unwrap();
    let (_, data) = text(&ElfFile::parse(&bytes).unwrap(), ".noinstr.text");
    assert_eq!(data[0], 0xe8);
}
