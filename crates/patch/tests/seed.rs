//! Proof by patching on the project's seed sources and small fixtures: assembly in, a table
//! written by hand beside it, the verdict out.

use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_format::{Entry, EntryType};
use orc_patch::{sites, verify, CheckKind, Options, Report, SiteKind};
use orc_testkit::assemble;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../orctool/seed");

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!("{SEED}/{name}")).expect("seed source")
}

/// One row of a hand-written table: the address expression and the entry.
enum Row<'a> {
    /// A call frame, `sp + offset`, bp not saved.
    Sp(&'a str, i16),
    /// A call frame, `sp + offset`, bp saved at `prevsp + bp`.
    SpBp(&'a str, i16, i16),
    /// An undefined entry (the section terminator, code without state).
    Und(&'a str),
}

/// `.orc_unwind_ip` and `.orc_unwind` in the v3 (6.4+) or v1 (4.14-6.2) layout.
fn table(rows: &[Row<'_>], v1: bool) -> String {
    let call = if v1 { 0 } else { 2 };
    let mut ip = String::from("\t.section .orc_unwind_ip,\"a\"\n");
    let mut orc = String::from("\t.section .orc_unwind,\"a\"\n");
    for r in rows {
        let (at, sp, bp, flags) = match *r {
            Row::Sp(at, sp) => (at, sp, 0, 0x05 | (call << 8)),
            Row::SpBp(at, sp, bp) => (at, sp, bp, 0x15 | (call << 8)),
            Row::Und(at) => (at, 0, 0, 0),
        };
        ip.push_str(&format!("\t.long {at} - .\n"));
        orc.push_str(&format!("\t.short {sp}, {bp}\n\t.byte {:#x}, {:#x}\n", flags & 0xff, flags >> 8));
    }
    ip + &orc
}

fn run(source: &str, era: Option<KernelEra>) -> Report {
    let bytes = assemble(source);
    let file = ElfFile::parse(&bytes).expect("parse");
    verify(&file, &Options { era }).expect("verify")
}

/// The union table objtool writes for `pv_save_fl.S` (see `orctool annotate`).
fn save_fl_table(without_site_plus_1: bool) -> String {
    let mut rows = vec![Row::Sp(".text+0x0", 8)];
    if !without_site_plus_1 {
        rows.push(Row::Sp(".text+0x5", 16)); // site+1: after pushfq
    }
    rows.extend([Row::Sp(".text+0x6", 8), Row::Und(".text+0x10"), Row::Und(".text+0x11")]);
    table(&rows, false)
}

#[test]
fn good_site_every_choice_verifies() {
    let r = run(&format!("{}{}", seed("pv_save_fl.S"), save_fl_table(false)), None);
    assert_eq!(r.era, KernelEra::V6_12, "era from the v3 table");
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.unmodelled.is_empty(), "{:#?}", r.unmodelled);
    let c = r.counts;
    assert_eq!((c.alternative_sites, c.choices), (1, 3), "original, !XENPV, XENPV");
    // !XENPV: after pushfq (+1) and after pop (+2); XENPV: after the call (+5).
    assert_eq!(c.boundaries, 3);
    // The original's indirect call and Xen's direct call.
    assert_eq!(c.return_addresses, 2);
    assert_eq!(c.exits, 3);
}

#[test]
fn missing_entry_after_pushfq_is_reported_at_site_plus_1() {
    let r = run(&format!("{}{}", seed("pv_save_fl.S"), save_fl_table(true)), None);
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    let f = &r.failures[0];
    assert_eq!(f.check, CheckKind::Interrupt);
    assert_eq!(f.choice, "!XENPV");
    assert_eq!(f.boundary, Some(1));
    assert_eq!(f.site_name, "arch_local_save_flags+0x4 (.text+0x4)");
    assert_eq!(f.lookup_name, "arch_local_save_flags+0x5 (.text+0x5)");
    assert_eq!(f.derived, Entry::call(16));
    let (row, at) = f.table.as_ref().expect("an entry");
    assert_eq!((row.entry, at.as_str()), (Entry::call(8), ".text+0x0"));
    assert_eq!(
        f.instruction.as_deref().map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")),
        Some("pop %rax".into())
    );
}

#[test]
fn xen_call_return_address_lands_on_the_native_streams_entry() {
    let t = table(
        &[
            Row::Sp(".text+0x0", 8),
            Row::Sp(".text+0x6", 16), // native: site+2, after pushf
            Row::Sp(".text+0x9", 8),  // Xen: site+5, after the call and its padding NOP
            Row::Sp(".text+0xa", 16), // native: site+6
            Row::Sp(".text+0xb", 8),
            Row::Und(".text+0x10"),
            Row::Und(".text+0x11"),
        ],
        false,
    );
    let r = run(&format!("{}{t}", seed("pv_hazard.S")), None);
    type Seen<'a> = (CheckKind, &'a str, Option<u64>, &'a str, i16, i16);
    let mut got: Vec<Seen<'_>> = r
        .failures
        .iter()
        .map(|f| {
            (
                f.check,
                f.choice.as_str(),
                f.boundary,
                f.lookup_name.as_str(),
                f.derived.sp_offset,
                f.table.as_ref().unwrap().0.entry.sp_offset,
            )
        })
        .collect();
    got.sort_by_key(|g| g.1);
    assert_eq!(
        got,
        [
            // Xen's 5-byte call returns to site+5; site+4 is covered by site+2's sp+16.
            (CheckKind::ReturnAddress, "XENPV", Some(0), "hazard_save_flags+0x8 (.text+0x8)", 8, 16),
            // The original's 7-byte indirect call returns to site+7; site+6 holds sp+16.
            (CheckKind::ReturnAddress, "original", Some(0), "hazard_save_flags+0xa (.text+0xa)", 8, 16),
        ]
    );
    assert!(r.unmodelled.is_empty());
}

/// A function with one static key: `push %rbx`, a 5-byte NOP the key turns into a `jmp` to
/// `2:`, both paths at sp+16.
const JUMP_LABEL: &str = r#"
    .text
    .globl f
    .type f,@function
f:
    push %rbx
1:  .byte 0x0f, 0x1f, 0x44, 0x00, 0x00
    pop %rbx
    ret
2:  mov $1, %eax
    pop %rbx
    ret
    .size f, .-f
    .section __jump_table,"aw"
    .balign 8
    .long 1b - .
    .long 2b - .
    .quad some_key - .
"#;

#[test]
fn jump_label_both_directions() {
    let good = [
        Row::Sp(".text+0", 8),
        Row::Sp(".text+1", 16),
        Row::Sp(".text+7", 8),
        Row::Sp(".text+8", 16),
        Row::Sp(".text+0xe", 8),
        Row::Und(".text+0xf"),
    ];
    let r = run(&format!("{JUMP_LABEL}{}{}", table(&good, false), orc_testkit::ORC_HEADER_V3), None);
    assert_eq!((r.counts.jump_label_sites, r.counts.choices, r.counts.exits), (1, 2, 2));
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    // The target's entry says sp+8: the `jmp` direction's exit fails, the NOP's does not.
    let bad = [Row::Sp(".text+0", 8), Row::Sp(".text+1", 16), Row::Sp(".text+7", 8), Row::Und(".text+0xf")];
    let r = run(&format!("{JUMP_LABEL}{}", table(&bad, false)), None);
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    let f = &r.failures[0];
    assert_eq!(
        (f.check, f.site_kind, f.choice.as_str(), f.boundary),
        (CheckKind::Exit, SiteKind::JumpLabel, "jmp", None)
    );
    assert_eq!(f.lookup_name, "f+0x8 (.text+0x8)");
}

/// FILL_RETURN_BUFFER as Debian's 6.1 spells it: `ALTERNATIVE_2 "jmp skip",
/// __FILL_RETURN_BUFFER (a loop of intra-function calls), X86_FEATURE_RETPOLINE,
/// __FILL_ONE_RETURN, ALT_NOT(X86_FEATURE_ALWAYS)`, 12-byte entries, in a frame at sp+16.
fn rsb_6_1(table: &str) -> String {
    format!(
        r#"
    .text
    .globl f
    .type f,@function
f:
    push %rbp
140:
    jmp .Lskip
141:
    .skip 31 - (141b - 140b), 0x90
142:
    .pushsection .altinstructions,"a"
    .long 140b - .
    .long 143f - .
    .word 11 * 32 + 12
    .byte 142b - 140b
    .byte 144f - 143f
    .long 140b - .
    .long 144f - .
    .word 0x8000 | (3 * 32 + 21)
    .byte 142b - 140b
    .byte 145f - 144f
    .popsection
    .pushsection .altinstr_replacement,"ax"
143:
    mov $16, %rax
771:
    call 772f
    int3
772:
    call 773f
    int3
773:
    add $16, %rsp
    dec %rax
    jnz 771b
    lfence
144:
    call 774f
    int3
774:
    add $8, %rsp
    lfence
145:
    .popsection
.Lskip:
    pop %rbp
    ret
    .size f, .-f
    .section .modinfo,"a"
    .asciz "vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions "
{table}"#
    )
}

#[test]
fn rsb_stuffing_loop_is_missing_from_the_6_1_table() {
    // What objtool 6.1.192 writes for it (checked with Debian's objtool): only the last
    // entry's stream, __FILL_ONE_RETURN, which ALT_NOT(ALWAYS) never patches in.
    let objtool_6_1 = table(
        &[
            Row::Sp(".text+0", 8),
            Row::SpBp(".text+1", 16, -16),
            Row::SpBp(".text+7", 24, -16),
            Row::SpBp(".text+0xb", 16, -16),
            Row::Sp(".text+0x21", 8),
            Row::Und(".text+0x22"),
        ],
        true,
    );
    let r = run(&rsb_6_1(&objtool_6_1), None);
    assert_eq!(r.era, KernelEra::V6_1);
    let got: Vec<(&str, Option<u64>, i16, i16)> = r
        .failures
        .iter()
        .map(|f| (f.choice.as_str(), f.boundary, f.derived.sp_offset, f.table.as_ref().unwrap().0.entry.sp_offset))
        .collect();
    assert_eq!(
        got,
        [("RETPOLINE", Some(7), 16, 24), ("RETPOLINE", Some(0xd), 24, 16), ("RETPOLINE", Some(0x13), 32, 16)]
    );
    // The intra-function calls are jumps that push: nothing returns to them.
    assert!(r.failures.iter().all(|f| f.check == CheckKind::Interrupt));

    // The loop's own entries (what objtool writes when the loop is the only alternative):
    // the RETPOLINE choice verifies, and the !ALWAYS one now fails where they overlap.
    let loop_table = table(
        &[
            Row::Sp(".text+0", 8),
            Row::SpBp(".text+1", 16, -16),
            Row::SpBp(".text+0xe", 24, -16),
            Row::SpBp(".text+0x14", 32, -16),
            Row::SpBp(".text+0x18", 16, -16),
            Row::Sp(".text+0x21", 8),
            Row::Und(".text+0x22"),
        ],
        true,
    );
    let r = run(&rsb_6_1(&loop_table), None);
    assert!(r.failures.iter().all(|f| f.choice == "!ALWAYS"), "{:#?}", r.failures);
    assert!(!r.failures.is_empty());
}

/// Debian 6.1's save_fl: a paravirt site (`call *pv_ops+0xf0(%rip)`, slot 30) that is also
/// the original of `ALTERNATIVE(..., <native>, ALT_NOT(X86_FEATURE_XENPV))`.
fn pv_6_1(native: &str, table: &str) -> String {
    format!(
        r#"
    .text
    .globl g
    .type g,@function
g:
    push %rbx
661:
771:
    call *pv_ops+0xf0(%rip)
772:
662:
    .skip -(((665f - 664f) - (662b - 661b)) > 0) * ((665f - 664f) - (662b - 661b)), 0x90
663:
    pop %rbx
    ret
    .size g, .-g
    .pushsection .parainstructions,"a"
    .balign 8
    .quad 771b
    .byte 30
    .byte 772b - 771b
    .short 0
    .balign 8
    .popsection
    .pushsection .altinstructions,"a"
    .long 661b - .
    .long 664f - .
    .word 0x8000 | (8 * 32 + 16)
    .byte 663b - 661b
    .byte 665f - 664f
    .popsection
    .pushsection .altinstr_replacement,"ax"
664:
    {native}
665:
    .popsection
    .section .modinfo,"a"
    .asciz "vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions "
{table}"#
    )
}

#[test]
fn paravirt_sites_of_6_1() {
    // pushf at +0, pop at +1: the union has sp+24 at +1 and sp+16 from +2 on.
    let t = table(
        &[
            Row::Sp(".text+0", 8),
            Row::Sp(".text+1", 16),
            Row::Sp(".text+2", 24),
            Row::Sp(".text+3", 16),
            Row::Sp(".text+8", 8),
            Row::Und(".text+9"),
        ],
        true,
    );
    let r = run(&pv_6_1("pushf; pop %rax", &t), None);
    assert_eq!((r.counts.paravirt_sites, r.counts.alternative_sites), (1, 1));
    // Paravirt: a direct call plus a one-byte NOP, and six bytes of NOP; alternative:
    // original and !XENPV.
    assert_eq!(r.counts.choices, 4);
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert!(r.unmodelled.is_empty(), "{:#?}", r.unmodelled);

    // A native sequence with its push at +3: site+4 is sp+24 in the union, and that is where
    // the direct call apply_paravirt() writes is looked up when its callee unwinds.
    let t = table(
        &[
            Row::Sp(".text+0", 8),
            Row::Sp(".text+1", 16),
            Row::Sp(".text+5", 24),
            Row::Sp(".text+6", 16),
            Row::Sp(".text+8", 8),
            Row::Und(".text+9"),
        ],
        true,
    );
    let r = run(&pv_6_1("nop; nop; nop; pushf; pop %rax", &t), None);
    let got: Vec<(SiteKind, &str, CheckKind)> =
        r.failures.iter().map(|f| (f.site_kind, f.choice.as_str(), f.check)).collect();
    // The original indirect call (6 bytes) is looked up at site+5, where the union has sp+16
    // again; the 5-byte direct call at site+4, inside the native stream's pushf..pop.
    assert_eq!(got, [(SiteKind::Paravirt, "irq.save_fl: call", CheckKind::ReturnAddress)]);
    assert_eq!(r.failures[0].lookup_name, "g+0x5 (.text+0x5)");
    assert_eq!((r.failures[0].derived.sp_offset, r.failures[0].table.as_ref().unwrap().0.entry.sp_offset), (16, 24));
}

#[test]
fn direct_call_and_long_padding_are_built_as_the_kernel_does() {
    // 6.12: ALT_CALL_ALWAYS over `call *ptr(%rip)`, and a two-byte replacement in a
    // 16-byte site (ten bytes of padding in the original).
    let source = r#"
    .text
    .globl h
    .type h,@function
h:
1:  call *pv_ops+8(%rip)
2:
    ret
3:  call *pv_ops+16(%rip)
    .skip 10, 0x90
4:
    ret
    .size h, .-h
    .pushsection .altinstructions,"a"
    .long 1b - .
    .long 5f - .
    .4byte (3 * 32 + 21) | (1 << 17)
    .byte 2b - 1b
    .byte 6f - 5f
    .long 3b - .
    .long 6f - .
    .4byte (1 << 16) | (8 * 32 + 16)
    .byte 4b - 3b
    .byte 7f - 6f
    .popsection
    .pushsection .altinstr_replacement,"ax"
5:  call BUG_func
6:  push %rax
    pop %rax
7:
    .popsection
"#;
    let bytes = assemble(source);
    let file = ElfFile::parse(&bytes).unwrap();
    let all = sites(&file, KernelEra::V6_12).unwrap();
    let shown: Vec<Vec<(String, Vec<u8>)>> =
        all.iter().map(|s| s.choices.iter().map(|c| (c.name.clone(), c.bytes.clone())).collect()).collect();
    let int3 = |n| vec![0xcc; n];
    assert_eq!(
        shown,
        [
            vec![
                ("original".into(), vec![0xff, 0x15, 0, 0, 0, 0]),
                ("ALWAYS (direct call)".into(), vec![0xe8, 0, 0, 0, 0, 0x90]),
                ("ALWAYS (nop_func)".into(), vec![0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00]),
            ],
            vec![
                // Ten NOPs after the call: one NOP10.
                ("original".into(), [vec![0xff, 0x15, 0, 0, 0, 0], orc_patch::nops::NOPS[10].to_vec()].concat()),
                // Fourteen bytes of padding after push/pop, more than the longest NOP: a jmp
                // over twelve int3s.
                ("!XENPV".into(), [vec![0x50, 0x58, 0xeb, 0x0c], int3(12)].concat()),
            ],
        ]
    );
    // The walk goes over the jmp to the end of the site: +1 (sp+16), +2 (the jmp) and the
    // exit; the int3s are never boundaries.
    let t =
        table(&[Row::Sp(".text+0", 8), Row::Sp(".text+8", 16), Row::Sp(".text+9", 8), Row::Und(".text+0x18")], false);
    let r = run(&format!("{source}{t}{}", orc_testkit::ORC_HEADER_V3), None);
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!(r.counts.choices, 5);
    // direct call: +5; !XENPV: +1, +2; original of the second site: +6 (the NOP10).
    assert_eq!(r.counts.boundaries, 4);
    // Both originals' indirect calls and the direct call.
    assert_eq!(r.counts.return_addresses, 3);
}

#[test]
fn undefined_state_before_a_site_is_counted_not_walked() {
    let r =
        run(&format!("{}{}", seed("pv_save_fl.S"), table(&[Row::Und(".text+0"), Row::Und(".text+0x11")], false)), None);
    assert_eq!((r.counts.choices, r.counts.choices_without_state), (0, 3));
    assert_eq!(r.without_state.len(), 1);
    assert_eq!(r.without_state[0].entry.map(|e| e.kind), Some(EntryType::Undefined));
}
