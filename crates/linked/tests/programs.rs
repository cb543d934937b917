//! The analysis on the project's C test programs: it must agree with the compiler's CFI at
//! every instruction both describe, analyse every function of the program's own code, and
//! express the shapes each program exists for.

use orc_elf::ElfFile;
use orc_format::{EntryType, Reg};
use orc_linked::compare::compare;
use orc_linked::{generate, Source};
use orc_testkit::programs::{self, Build};

fn build(name: &str) -> Vec<u8> {
    let path = programs::build(name, &Build::default()).unwrap_or_else(|e| panic!("building {name}: {e}"));
    std::fs::read(path).unwrap()
}

#[test]
fn analysis_and_converter_agree_on_every_test_program() {
    let mut failures = Vec::new();
    for name in programs::names() {
        let bytes = build(name);
        let elf = ElfFile::parse(&bytes).unwrap();
        let c = compare(&elf).unwrap();
        assert!(c.instructions > 50, "{name}: only {} instructions compared", c.instructions);
        for d in &c.differences {
            failures.push(format!("{name}: {}+{:#x} ({:#x}): analysis {:?}, converter {:?}", d.function, d.offset, d.addr, d.analysis, d.converter));
        }
        for (addr, function, offset) in &c.missing {
            failures.push(format!("{name}: {function}+{offset:#x} ({addr:#x}): the analysis has no entry"));
        }
        let table = generate(&elf, Source::Analysis).unwrap();
        for p in &table.report.problems {
            failures.push(format!("{name}: {}", p.render(name)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The address of a `.symtab` function.
fn symbol(elf: &ElfFile<'_>, name: &str) -> u64 {
    elf.symbols().flatten().find(|s| s.name == name).unwrap_or_else(|| panic!("no symbol {name}")).value
}

#[test]
fn drap_function_is_described_through_the_saved_drap_pointer() {
    let bytes = build("alloca_drap");
    let elf = ElfFile::parse(&bytes).unwrap();
    let table = generate(&elf, Source::Analysis).unwrap();
    // Some row of the program's tables uses BP_INDIRECT (GCC's DRAP) or a BP-based CFA
    // (alloca with a frame pointer): the shapes the program exists for.
    let regs: Vec<Reg> = table.ips.iter().map(|&ip| table.lookup(ip).unwrap().sp_reg).collect();
    assert!(regs.contains(&Reg::BP_INDIRECT) || regs.contains(&Reg::R10), "no DRAP rows");
    assert!(regs.contains(&Reg::BP), "no frame-pointer rows");
}

#[test]
fn entry_point_ends_the_stack() {
    let bytes = build("recursion");
    let elf = ElfFile::parse(&bytes).unwrap();
    let start = symbol(&elf, "_start");
    for source in [Source::Analysis, Source::Combined] {
        let table = generate(&elf, source).unwrap();
        assert_eq!(table.lookup(start).unwrap().kind, EntryType::EndOfStack, "{source:?}");
    }
}

/// Compiles `source` (C) with gcc -O2 -fomit-frame-pointer into a temporary file; `None` when
/// gcc is missing.
fn compile(tag: &str, source: &str) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("orc-linked-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let c = dir.join("t.c");
    let exe = dir.join("t");
    std::fs::write(&c, source).ok()?;
    let status = std::process::Command::new("gcc")
        .args(["-O2", "-fomit-frame-pointer", "-o"])
        .arg(&exe)
        .arg(&c)
        .status()
        .ok()?;
    let bytes = status.success().then(|| std::fs::read(&exe).ok()).flatten();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

#[test]
fn a_frame_beyond_16_bits_is_undefined_never_truncated() {
    // A 70,000-byte frame: its CFA offset does not fit ORC's sp_offset. objtool's mapping
    // would keep the low 16 bits (a wrong rule); the table must say UNDEFINED instead.
    let source = r#"
        #include <string.h>
        __attribute__((noinline)) int big(int n) {
            volatile char buf[70000];
            memset((char *)buf, n, sizeof buf);
            return buf[n] + buf[69999 - n];
        }
        int main(int argc, char **argv) { (void)argv; return big(argc) & 1; }
    "#;
    let Some(bytes) = compile("bigframe", source) else {
        eprintln!("SKIP: gcc not available");
        return;
    };
    let elf = ElfFile::parse(&bytes).unwrap();
    let start = symbol(&elf, "big");
    for source in [Source::Analysis, Source::Combined] {
        let table = generate(&elf, source).unwrap();
        let rows: Vec<_> = table.ips.iter().zip(&table.entries).filter(|(ip, _)| **ip >= start && **ip < start + 0x80).collect();
        assert!(!rows.is_empty(), "{source:?}: no rows for big()");
        for (ip, raw) in rows {
            let e = orc_format::Layout::V3.decode(*raw);
            if e.kind == EntryType::Call {
                assert!(e.sp_offset >= 8 && e.sp_offset < 64, "{source:?}: {ip:#x}: a CALL entry {e:?} in a 70 KB frame");
            }
        }
        if source == Source::Analysis {
            assert!(
                table.report.problems.iter().any(|p| p.render("t").contains("16 bits")),
                "the analysis says why it has no entry"
            );
        }
    }
}

#[test]
fn loader_called_functions_of_a_stripped_program_get_rows() {
    // A destructor and crtstuff's `__do_global_dtors_aux` are called only by the loader,
    // through `.fini_array`. Stripped, they have no symbol; GCC still gives the destructor an
    // FDE, crtstuff's helpers none. The table must cover both.
    let source = r#"
        #include <stdio.h>
        static __attribute__((destructor, noinline)) void bye(void) { puts("bye"); }
        int main(void) { return 0; }
    "#;
    let Some(bytes) = compile("loader", source) else {
        eprintln!("SKIP: gcc not available");
        return;
    };
    let elf = ElfFile::parse(&bytes).unwrap();
    let dtors = symbol(&elf, "__do_global_dtors_aux");
    let path = std::env::temp_dir().join(format!("orc-linked-loader-stripped-{}", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let stripped = std::process::Command::new("strip").arg(&path).status().is_ok_and(|s| s.success());
    let data = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    if !stripped {
        eprintln!("SKIP: strip not available");
        return;
    }
    let elf = ElfFile::parse(&data).unwrap();
    assert_eq!(elf.symbols().count(), 0, "stripped");
    let table = generate(&elf, Source::Analysis).unwrap();
    let entry = table.lookup(dtors).expect("a row covers __do_global_dtors_aux");
    assert_eq!((entry.kind, entry.sp_reg, entry.sp_offset), (EntryType::Call, Reg::SP, 8), "{entry:?}");
    assert!(table.report.functions.loader >= 1, "{:?}", table.report.functions);
    assert!(table.report.problems.is_empty(), "{:?}", table.report.problems.iter().map(|p| p.render("t")).collect::<Vec<_>>());
}
