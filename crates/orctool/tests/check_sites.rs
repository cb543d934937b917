//! The site tables `orctool check` writes (`.static_call_sites`, `.retpoline_sites`,
//! `.return_sites`, `.call_sites`, `.ibt_endbr_seal`), read back with orc-flow's readers.

use std::process::Command;

use orc_elf::write::{add_sections, SiteRow, SiteTable, Slot};
use orc_elf::ElfFile;
use orc_flow::special::sites::{read_site_table, read_static_call_sites};
use orc_flow::Location;
use orc_testkit::assemble_in;

const TEXT: &str =
    "\t.text\nf:\n\tnop\n\tnop\n\tnop\n\tret\n\t.globl __SCK__k\n\t.data\n__SCK__k:\n\t.quad 0\n";

fn plain(name: &str, rows: &[(usize, u64)]) -> SiteTable {
    SiteTable {
        name: name.to_string(),
        rows: rows
            .iter()
            .map(|&(section, offset)| SiteRow {
                section,
                offset,
                key: None,
            })
            .collect(),
        slot: Slot::Pc32,
    }
}

#[test]
fn writer_tables_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(assemble_in(dir.path(), "w", TEXT)).unwrap();
    let file = ElfFile::parse(&input).unwrap();
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let key = file
        .symbols()
        .map(Result::unwrap)
        .find(|s| s.name == "__SCK__k")
        .expect("key symbol")
        .index;
    let tables = vec![
        SiteTable {
            name: ".static_call_sites".into(),
            rows: vec![
                SiteRow {
                    section: text,
                    offset: 0,
                    key: Some((key, 0)),
                },
                SiteRow {
                    section: text,
                    offset: 2,
                    key: Some((key, 1)),
                },
            ],
            slot: Slot::Pc32,
        },
        plain(".retpoline_sites", &[(text, 1), (text, 0)]),
        plain(".return_sites", &[]),
        plain(".call_sites", &[(text, 2)]),
        plain(".ibt_endbr_seal", &[(text, 3)]),
    ];
    let out = add_sections(&input, &tables, None).unwrap();
    let back = ElfFile::parse(&out).unwrap();
    let loc = |o| Location::new(text, o);
    assert_eq!(
        read_site_table(&back, ".retpoline_sites").unwrap(),
        Some(vec![loc(1), loc(0)])
    );
    assert_eq!(
        read_site_table(&back, ".return_sites").unwrap(),
        None,
        "empty tables are not written"
    );
    assert_eq!(
        read_site_table(&back, ".call_sites").unwrap(),
        Some(vec![loc(2)])
    );
    assert_eq!(
        read_site_table(&back, ".ibt_endbr_seal").unwrap(),
        Some(vec![loc(3)])
    );
    let calls = read_static_call_sites(&back)
        .unwrap()
        .expect("static calls written");
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].addr, calls[0].key.name, calls[0].is_tail()),
        (loc(0), "__SCK__k", false)
    );
    assert_eq!(
        (calls[1].addr, calls[1].key.name, calls[1].is_tail()),
        (loc(2), "__SCK__k", true)
    );
    assert!(calls.iter().all(|c| c.key.kind == 2), "R_X86_64_PC32");
    let scs = back.section_by_name(".static_call_sites").unwrap().unwrap();
    assert_eq!(
        (scs.flags, scs.entry_size),
        (2 | 1, 8),
        "SHF_ALLOC | SHF_WRITE"
    );
    let rs = back.section_by_name(".retpoline_sites").unwrap().unwrap();
    assert_eq!((rs.flags, rs.entry_size), (2, 4), "SHF_ALLOC");
    // The code is untouched, and a second write of the same table is refused.
    assert_eq!(
        back.section_by_name(".text").unwrap().unwrap().data,
        file.section_by_name(".text").unwrap().unwrap().data
    );
    assert!(add_sections(&out, &tables[1..2], None).is_err());
}

/// Functions with ENDBR (f is only called directly: sealed; g's address is taken: kept), a
/// retpoline call, a return-thunk jump, a static call and a static tail call, direct calls.
const MODULE: &str = r#"
	.text
	.globl f
	.type f, @function
f:
	endbr64
	call g
	call __x86_indirect_thunk_rax
	call __SCT__k
	jmp __x86_return_thunk
	int3
	.size f, .-f
	.globl g
	.type g, @function
g:
	endbr64
	call f
	jmp __SCT__k
	.size g, .-g
	.section .data
	.quad g
"#;

#[test]
fn check_writes_objtool_site_tables() {
    let dir = tempfile::tempdir().unwrap();
    let obj = assemble_in(dir.path(), "m", MODULE);
    let out = dir.path().join("out.o");
    let run = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args([
            "check",
            "--hacks=jump_label,noinstr,skylake",
            "--ibt",
            "--orc",
            "--retpoline",
            "--rethunk",
            "--sls",
        ])
        .args([
            "--static-call",
            "--uaccess",
            "--prefix=16",
            "--link",
            "--module",
            "--kernel",
            "6.12",
        ])
        .arg(&obj)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("not written yet"), "{stderr}");
    let bytes = std::fs::read(&out).unwrap();
    let file = ElfFile::parse(&bytes).unwrap();
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let loc = |o| Location::new(text, o);
    // f: endbr64 (4) call g (5) call thunk (5) call __SCT__k (5) jmp thunk (5) int3; g at 0x19.
    assert_eq!(
        read_site_table(&file, ".retpoline_sites").unwrap(),
        Some(vec![loc(9)])
    );
    assert_eq!(
        read_site_table(&file, ".return_sites").unwrap(),
        Some(vec![loc(0x13)])
    );
    assert_eq!(
        read_site_table(&file, ".call_sites").unwrap(),
        Some(vec![loc(4), loc(0x1d)])
    );
    assert_eq!(
        read_site_table(&file, ".ibt_endbr_seal").unwrap(),
        Some(vec![loc(0)])
    );
    let calls = read_static_call_sites(&file)
        .unwrap()
        .expect("static calls written");
    let got: Vec<_> = calls
        .iter()
        .map(|c| (c.addr, c.key.name, c.is_tail()))
        .collect();
    // No __SCK__k in a module: the key is the trampoline. objtool's order (checked with
    // objtool 6.12): tail calls are found with the jumps, before the calls.
    assert_eq!(
        got,
        vec![(loc(0x22), "__SCT__k", true), (loc(0xe), "__SCT__k", false)]
    );
    assert!(
        orc_elf::orc::read_orc_table(&file, Some(orc_format::Layout::V3))
            .unwrap()
            .is_some()
    );
}

fn check_with(dir: &std::path::Path, source: &str, extra: &[&str]) -> (Vec<u8>, String) {
    let obj = assemble_in(dir, "in", source);
    let out = dir.join("out.o");
    let run = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(["check", "--hacks=jump_label,noinstr,skylake", "--ibt", "--orc", "--retpoline", "--rethunk", "--sls"])
        .args(["--static-call", "--uaccess", "--prefix=16", "--link", "--kernel", "6.12"])
        .args(extra)
        .arg(&obj)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stderr}");
    (std::fs::read(&out).unwrap(), stderr)
}

/// Calls from `.init.text` are left out of `.call_sites` unless `--module`; a visible
/// `__SCK__` key is used; an ENDBR a data relocation points at (h) is not sealed. The expected
/// tables are what objtool 6.12 writes for this input.
const INIT_TEXT: &str = r#"	.text
	.globl f
	.type f, @function
f:
	endbr64
	call g
	call __SCT__k
	jmp __SCT__k
	.size f, .-f
	.globl g
	.type g, @function
g:
	endbr64
	call f
	call __x86_indirect_thunk_rax
	jmp __x86_return_thunk
	int3
	.size g, .-g
	.globl h
	.type h, @function
h:
	endbr64
	ret
	int3
	.size h, .-h
	.section .init.text,"ax"
	.globl i
	.type i, @function
i:
	endbr64
	call f
	call __SCT__k
	jmp __x86_return_thunk
	int3
	.size i, .-i
	.data
	.globl __SCK__k
__SCK__k:
	.quad h
"#;

#[test]
fn init_text_calls_keys_and_used_endbr_as_objtool() {
    for module in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, _) = check_with(dir.path(), INIT_TEXT, if module { &["--module"] } else { &[] });
        let file = ElfFile::parse(&bytes).unwrap();
        let text = file.section_by_name(".text").unwrap().unwrap().index;
        let init = file.section_by_name(".init.text").unwrap().unwrap().index;
        let t = |o| Location::new(text, o);
        let i = |o| Location::new(init, o);
        let calls = read_static_call_sites(&file).unwrap().expect("static calls written");
        let got: Vec<_> = calls.iter().map(|c| (c.addr, c.key.name, c.is_tail())).collect();
        assert_eq!(got, vec![(t(14), "__SCK__k", true), (t(9), "__SCK__k", false), (i(9), "__SCK__k", false)]);
        assert_eq!(read_site_table(&file, ".retpoline_sites").unwrap(), Some(vec![t(28)]));
        assert_eq!(read_site_table(&file, ".return_sites").unwrap(), Some(vec![t(33), i(14)]));
        let mut expect_calls = vec![t(4), t(23)];
        if module {
            expect_calls.push(i(4));
        }
        assert_eq!(read_site_table(&file, ".call_sites").unwrap(), Some(expect_calls), "module {module}");
        assert_eq!(read_site_table(&file, ".ibt_endbr_seal").unwrap(), Some(vec![t(0), t(19), i(0)]));
    }
}

/// objtool warns when a module's init_module would be sealed.
#[test]
fn sealed_init_module_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, stderr) = check_with(dir.path(), r#"	.text
	.globl init_module
	.type init_module, @function
init_module:
	endbr64
	xor %eax, %eax
	jmp __x86_return_thunk
	int3
	.size init_module, .-init_module
"#, &["--module"]);
    assert!(stderr.contains("warning: objtool: init_module(): not an indirect call target"), "{stderr}");
    let file = ElfFile::parse(&bytes).unwrap();
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    assert_eq!(read_site_table(&file, ".ibt_endbr_seal").unwrap(), Some(vec![Location::new(text, 0)]));
}
