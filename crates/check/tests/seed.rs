//! The seed of the project as fixtures: the 2017 paravirt site and the layout its rule
//! refuses (`crates/orctool/seed/*.S`, assembled with GNU as), checked table for table.

use orc_check::{check, Options};
use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_format::{Entry, EntryType, Reg};
use orc_testkit::assemble;

fn module_flags() -> Options {
    Options::kernel_module()
}

fn seed(name: &str) -> Vec<u8> {
    assemble(&orc_testkit::seed_source(name))
}

/// `(offset, entry)` rows of `.text`.
fn rows(bytes: &[u8]) -> (Vec<(u64, Entry)>, Vec<String>) {
    let file = ElfFile::parse(bytes).unwrap();
    let analysis = check(&file, KernelEra::V6_12, &module_flags());
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let rows = analysis.orc.expect("ORC rows").iter().filter(|r| r.section == text).map(|r| (r.offset, r.entry)).collect();
    let warnings = analysis.warnings.iter().map(|w| w.render("f.o")).collect();
    (rows, warnings)
}

fn call(sp: i16) -> Entry {
    Entry::call(sp)
}

#[test]
fn paravirt_site_gets_the_union_of_its_streams() {
    let (rows, warnings) = rows(&seed("pv_save_fl"));
    assert_eq!(warnings, Vec::<String>::new());
    // endbr64 at 0, the 7-byte site at 4, jmp __x86_return_thunk at 0xb, int3 at 0x10.
    // site+0 (4) is the entry state (deduplicated against 0); site+1 (5) is after pushfq:
    // the caller's SP is 16 bytes up; site+2 (6) after pop %rax: back to 8. The Xen stream's
    // boundary at site+5 agrees with 8 and adds nothing. The int3 is unreachable: undefined.
    assert_eq!(
        rows,
        [(0x0, call(8)), (0x5, call(16)), (0x6, call(8)), (0x10, Entry::UNDEFINED), (0x11, Entry::UNDEFINED)]
    );
    assert_eq!(rows[1].1.sp_reg, Reg::SP);
    assert_eq!(rows[1].1.kind, EntryType::Call);
}

#[test]
fn conflicting_boundary_is_refused_with_the_site_and_offset() {
    let (_, warnings) = rows(&seed("pv_conflict"));
    assert_eq!(
        warnings,
        ["f.o: warning: objtool: bad_save_flags+0x4: stack layout conflict in alternatives: bad_save_flags+0xb"]
    );
}

/// A frame-pointer function: push %rbp; mov %rsp,%rbp; ...; pop %rbp; ret.
#[test]
fn frame_pointer_prologue_and_epilogue() {
    let src = "
        .text
        .globl f
        .type f,@function
    f:
        push %rbp
        mov %rsp,%rbp
        push %rbx
        sub $16,%rsp
        add $16,%rsp
        pop %rbx
        pop %rbp
        ret
        int3
        .size f,.-f
    ";
    let (rows, warnings) = rows(&assemble(src));
    // push %rbp @0, mov %rsp,%rbp @1, push %rbx @4, sub @5, add @9, pop %rbx @0xd,
    // pop %rbp @0xe, ret @0xf, int3 @0x10.
    let at = |off: u64| rows.iter().rev().find(|(o, _)| *o <= off).map(|(_, e)| *e).unwrap();
    let pushed_bp = Entry { bp_reg: Reg::PREV_SP, bp_offset: -16, ..call(16) };
    let framed = Entry { sp_reg: Reg::BP, ..pushed_bp };
    assert_eq!(at(0), call(8));
    assert_eq!(at(1), pushed_bp, "after push %rbp: CFA sp+16, caller's bp at CFA-16");
    assert_eq!(at(4), framed, "after mov %rsp,%rbp the CFA is bp+16");
    assert_eq!(at(9), framed, "sub/add on rsp do not move a bp-based CFA");
    assert_eq!(at(0xe), framed, "still framed until %rbp is popped");
    assert_eq!(at(0xf), call(8), "pop %rbp: back to sp+8 with bp restored");
    assert_eq!(at(0x10), Entry::UNDEFINED, "int3 after ret is not reached");
    assert_eq!(rows.last(), Some(&(0x11, Entry::UNDEFINED)), "section terminator");
    assert!(warnings.iter().all(|w| w.contains("'naked' return")), "{warnings:?}");
}

/// Peter Zijlstra's hazard: no shared boundary disagrees, so the union rule (and objtool)
/// accept the site, but both calls return to addresses whose ip-1 lookup finds the native
/// stream's sp+16.
#[test]
fn return_address_hazard_needs_the_strict_check() {
    let bytes = seed("pv_hazard");
    let (plain_rows, plain) = rows(&bytes);
    assert_eq!(plain, Vec::<String>::new(), "objtool's rules accept it");
    // site at 4: +0 sp+8, +2 (6) sp+16 after pushfq, +5 (9) the Xen call's return address,
    // +6 (0xa) sp+16 before pop, +7 (0xb) sp+8.
    assert_eq!(
        plain_rows,
        [(0, call(8)), (6, call(16)), (9, call(8)), (0xa, call(16)), (0xb, call(8)), (0x10, Entry::UNDEFINED), (0x11, Entry::UNDEFINED)]
    );
    let file = ElfFile::parse(&bytes).unwrap();
    let strict = check(&file, KernelEra::V6_12, &Options { strict_alternatives: true, ..module_flags() });
    let found: Vec<String> = strict.warnings.iter().map(|w| w.message.clone()).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("returns to site+0x7") && found[0].contains("finds sp+16") && found[0].contains("frame is sp+8"));
    assert!(found[1].contains("returns to site+0x5") && found[1].contains("looks up site+0x4"));
    let text = file.section_by_name(".text").unwrap().unwrap().index;
    let strict_rows: Vec<(u64, Entry)> = strict.orc.unwrap().iter().filter(|r| r.section == text).map(|r| (r.offset, r.entry)).collect();
    assert_eq!(strict_rows, plain_rows, "the table itself is unchanged");
}
