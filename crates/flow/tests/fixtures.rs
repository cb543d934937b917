//! Each special section, emitted the way the kernel's macros emit it, assembled with GNU `as`,
//! parsed, and compared with the records it must give.

use orc_elf::{ElfFile, SymbolKind};
use orc_flow::special::alternatives::{read_alternatives, AltLayout};
use orc_flow::special::annotations::{self, read_annotation_section, AnnotationKind, NonStandardTarget, SiteRule};
use orc_flow::special::extable::read_extable;
use orc_flow::special::hints::{read_unwind_hints, read_unwind_hints_for, HintBase, HintKind, HintLayout, HintTypes};
use orc_flow::special::jump_table::{read_jump_table, read_jump_table_for, JumpLayout};
use orc_flow::special::paravirt::read_parainstructions;
use orc_flow::special::sites::{read_site_table, read_static_call_sites};
use orc_flow::special::{
    AltFlags, AltPolicy, SpecialFeature, R_X86_64_32, R_X86_64_64, R_X86_64_PC32, R_X86_64_PC64, STB_GLOBAL,
};
use orc_flow::{At, KernelEra, Location, Problem, SpecialSectionError, SpecialSections};
use orc_format::Reg;
use orc_testkit::assemble;

fn section(file: &ElfFile<'_>, name: &str) -> usize {
    file.section_by_name(name).unwrap().unwrap_or_else(|| panic!("no section {name}")).index
}

fn at(file: &ElfFile<'_>, name: &str, offset: u64) -> Location {
    Location::new(section(file, name), offset)
}

/// One alternative site the way 6.3+'s C `ALTERNATIVE()` emits it.
fn alt_6_12(old: &str, new: &str, ft_flags: &str) -> String {
    format!(
        "771:\n\t{old}\n772:\n\
         \t.skip -(((775f-774f)-(772b-771b)) > 0) * ((775f-774f)-(772b-771b)),0x90\n773:\n\
         \t.pushsection .altinstructions,\"a\"\n\t.long 771b - .\n\t.long 774f - .\n\t.4byte {ft_flags}\n\
         \t.byte 773b-771b\n\t.byte 775f-774f\n\t.popsection\n\
         \t.pushsection .altinstr_replacement, \"ax\"\n774:\n\t{new}\n775:\n\t.popsection\n"
    )
}

#[test]
fn altinstructions_6_12() {
    let src = format!(
        "\t.text\n\tnop\n{}{}{}{}\
         \t.pushsection .altinstr_replacement, \"ax\"\n\tnop\n\t.popsection\n",
        // .text+1: POPCNT, call (5 bytes) vs popcnt (5 bytes).
        alt_6_12("call __sw_hweight64", "popcnt %rdi, %rax", "151"),
        // .text+6: ALT_NOT(SMAP), 3-byte stac vs nothing.
        alt_6_12("stac", "", "(1 << 16) | 308"),
        // .text+9: ALT_DIRECT_CALL on ALWAYS: 6-byte call through a pointer vs call BUG_func.
        alt_6_12("call *pv_ops+8(%rip)", "call BUG_func", "(2 << 16) | 117"),
        // .text+15: a 1-byte nop padded to the 3-byte replacement.
        alt_6_12("nop", "lfence", "642"),
    );
    let obj = assemble(&src);
    let file = ElfFile::parse(&obj).unwrap();
    let alts = read_alternatives(&file, AltLayout::FtFlags14).unwrap();
    assert_eq!(alts.len(), 4);
    let text = |o| at(&file, ".text", o);
    let repl = |o| at(&file, ".altinstr_replacement", o);

    let a = &alts[0];
    assert_eq!((a.orig, a.replacement), (text(1), Some(repl(0))));
    assert_eq!((a.feature, a.cpuid, a.flags, a.orig_len, a.repl_len, a.padlen), (151, 151, AltFlags(0), 5, 5, None));
    assert_eq!(a.special_feature(), Some(SpecialFeature::Popcnt));
    assert_eq!(a.objtool_policy(false), AltPolicy { skip_orig: true, skip_alt: false });

    let b = &alts[1];
    assert_eq!((b.orig, b.replacement), (text(6), None), "an empty replacement has no location");
    assert_eq!((b.feature, b.cpuid, b.orig_len, b.repl_len), (308, 308, 3, 0));
    assert!(b.flags.not() && !b.flags.direct_call());
    assert_eq!(b.objtool_policy(true), AltPolicy { skip_orig: true, skip_alt: false });
    assert_eq!(b.objtool_policy(false), AltPolicy { skip_orig: false, skip_alt: true });

    let c = &alts[2];
    assert_eq!((c.orig, c.replacement), (text(9), Some(repl(5))));
    assert_eq!((c.cpuid, c.orig_len, c.repl_len), (117, 6, 5));
    assert!(c.flags.direct_call() && !c.flags.not());
    assert_eq!(c.special_feature(), None);

    let d = &alts[3];
    assert_eq!((d.orig, d.replacement, d.orig_len, d.repl_len), (text(15), Some(repl(10)), 3, 3));
    assert!(alts.iter().all(|a| a.group_orig_len == a.orig_len && !a.replacement_biased));
}

#[test]
fn nested_alternatives_share_the_longest_orig_len() {
    // ALTERNATIVE_2(old, new1, f1, new2, f2) = ALTERNATIVE(ALTERNATIVE(old, new1, f1), new2, f2):
    // the inner entry comes first and covers only the inner site.
    let src = "\t.text\n\
        1:\n2:\n\tnop\n3:\n\t.skip 2,0x90\n4:\n\t.skip 2,0x90\n5:\n\
        \t.pushsection .altinstructions,\"a\"\n\
        \t.long 2b - .\n\t.long 10f - .\n\t.4byte 297\n\t.byte 4b-2b\n\t.byte 11f-10f\n\
        \t.long 1b - .\n\t.long 11f - .\n\t.4byte 580\n\t.byte 5b-1b\n\t.byte 12f-11f\n\
        \t.long 5b - .\n\t.long 12f - .\n\t.4byte 117\n\t.byte 0\n\t.byte 0\n\
        \t.popsection\n\
        \t.pushsection .altinstr_replacement,\"ax\"\n10:\n\trep movsb\n11:\n\tcall memcpy_orig\n12:\n\t.popsection\n";
    let file_bytes = assemble(src);
    let file = ElfFile::parse(&file_bytes).unwrap();
    let alts = read_alternatives(&file, AltLayout::FtFlags14).unwrap();
    let lens: Vec<(u8, u8)> = alts.iter().map(|a| (a.orig_len, a.group_orig_len)).collect();
    assert_eq!(lens, [(3, 5), (5, 5), (0, 0)]);
    assert_eq!(alts[0].orig, alts[1].orig);
}

#[test]
fn altinstructions_6_1_and_5_10() {
    // 6.1: 12 bytes, ALT_NOT is bit 15 of the u16 feature.
    let src = "\t.text\n1:\n\tjmp 2f\n2:\n\tnop\n3:\n\
        \t.pushsection .altinstructions,\"a\"\n\
        \t.long 1b - .\n\t.long 10f - .\n\t.word 0x8000 | 272\n\t.byte 2\n\t.byte 11f-10f\n\
        \t.long 2b - .\n\t.long 11f - .\n\t.word 0x8000 | 308\n\t.byte 1\n\t.byte 12f-11f\n\
        \t.popsection\n\
        \t.pushsection .altinstr_replacement,\"ax\"\n10:\n\tnop\n\tnop\n11:\n\tclac\n12:\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let alts = read_alternatives(&file, KernelEra::V6_1.alt_layout()).unwrap();
    assert_eq!(alts.len(), 2);
    assert_eq!((alts[0].feature, alts[0].cpuid), (0x8000 | 272, 272));
    assert!(alts[0].flags.not());
    assert_eq!(alts[0].replacement, Some(at(&file, ".altinstr_replacement", 0)));
    assert_eq!(alts[1].orig, at(&file, ".text", 2));
    // objtool matches the raw u16: ALT_NOT(SMAP) is not SMAP to it.
    assert_eq!(alts[1].special_feature(), None);

    // The same table read with the 6.12 layout: the error points at the era.
    let err = read_alternatives(&file, AltLayout::FtFlags14).unwrap_err();
    assert_eq!(err.section, ".altinstructions");
    assert!(matches!(err.problem, Problem::Layout(_)), "{err}");
    assert!(err.to_string().contains("12-byte layout of 5.13-6.2"), "{err}");

    // 4.14-5.12: 13 bytes with padlen.
    let src = "\t.text\n1:\n\tnop\n\t.skip 2,0x90\n2:\n\
        \t.pushsection .altinstructions,\"a\"\n\
        \t.long 1b - .\n\t.long 10f - .\n\t.word 297\n\t.byte 2b-1b\n\t.byte 11f-10f\n\t.byte 2\n\
        \t.popsection\n\
        \t.pushsection .altinstr_replacement,\"ax\"\n10:\n\trep movsb\n11:\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let alts = read_alternatives(&file, KernelEra::new(5, 10).alt_layout()).unwrap();
    assert_eq!(alts.len(), 1);
    assert_eq!((alts[0].cpuid, alts[0].orig_len, alts[0].repl_len, alts[0].padlen), (297, 3, 2, Some(2)));
}

#[test]
fn altinstructions_malformed() {
    let entry = |orig: &str, new: &str| {
        format!(
            "\t.text\n1:\n\tnop\n\t.pushsection .altinstructions,\"a\"\n\t.long {orig}\n\t.long {new}\n\
             \t.4byte 151\n\t.byte 1\n\t.byte 1\n\t.popsection\n\
             \t.pushsection .altinstr_replacement,\"ax\"\n10:\n\tnop\n\t.popsection\n"
        )
    };
    let read = |src: &str| {
        let obj = assemble(src);
        let file = ElfFile::parse(&obj).unwrap();
        read_alternatives(&file, AltLayout::FtFlags14)
    };
    let err = read(&entry("0", "10f - .")).unwrap_err();
    assert_eq!(err.at, Some(At::Entry(0)));
    assert_eq!(err.problem, Problem::MissingRelocation { field: "orig", offset: 0 });
    assert_eq!(err.to_string(), ".altinstructions entry 0: no relocation for the `orig` field at offset 0x0");

    let err = read(&entry("1b - .", "0")).unwrap_err();
    assert_eq!(err.problem, Problem::MissingRelocation { field: "new", offset: 4 });

    let err = read(&entry("somewhere_else - .", "10f - .")).unwrap_err();
    assert_eq!(err.problem, Problem::Undefined { field: "orig", name: "somewhere_else".into() });

    let err = read(&entry("1b - 64 - .", "10f - .")).unwrap_err();
    assert!(matches!(err.problem, Problem::OutOfRange { field: "orig", addend: -64, .. }), "{err}");

    // 15 bytes fit no layout.
    let err = read("\t.pushsection .altinstructions,\"a\"\n\t.skip 15\n\t.popsection\n").unwrap_err();
    assert_eq!(err.problem, Problem::BadSize { size: 15, entry_size: 14 });
    assert_eq!(err.to_string(), ".altinstructions: size 15 is not a multiple of the 14-byte entry");

    // No relocation section at all.
    let err = read("\t.pushsection .altinstructions,\"a\"\n\t.skip 14\n\t.popsection\n").unwrap_err();
    assert_eq!(err.problem, Problem::NoRelocations);

    // Two relocations at one offset.
    let src = entry("1b - .", "10f - .")
        + "\t.pushsection .altinstructions,\"a\"\n\t.reloc 0, R_X86_64_PC32, 1b\n\t.popsection\n";
    let err = read(&src).unwrap_err();
    assert_eq!(err.problem, Problem::DuplicateRelocation { offset: 0 });
    assert!(matches!(err.at, Some(At::Relocation(_))));
}

const JUMP_LABELS_6_12: &str = "\t.text\n\
    1:\n\t.byte 0x0f,0x1f,0x44,0x00,0x00\n\
    \t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 1b - .\n\t.long 4f - .\n\t.quad some_key + 0 - .\n\t.popsection\n\
    2:\n\tjmp 4f\n\
    \t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 2b - .\n\t.long 4f - .\n\t.quad some_key + (2 | 1) - .\n\t.popsection\n\
    3:\n\tjmp 4f\n\
    \t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 3b - .\n\t.long 4f - .\n\t.quad local_key + 1 - .\n\t.popsection\n\
    \tnop\n4:\n\tret\n\
    \t.data\n\t.balign 8\n\t.quad 0, 0\nlocal_key:\n\t.quad 0, 0\n";

#[test]
fn jump_table_6_12() {
    let obj = assemble(JUMP_LABELS_6_12);
    let file = ElfFile::parse(&obj).unwrap();
    let entries = read_jump_table_for(&file, KernelEra::V6_12).unwrap();
    assert_eq!(entries.len(), 3);
    let text = |o| at(&file, ".text", o);
    // nop5 at 0, jmp at 5 (2 bytes), jmp at 7, nop at 9, ret at 10.
    assert_eq!((entries[0].code, entries[0].target), (text(0), text(10)));
    assert_eq!((entries[1].code, entries[1].target), (text(5), text(10)));
    assert_eq!(entries[2].code, text(7));

    let k0 = &entries[0].key;
    assert_eq!((k0.name, k0.kind, k0.section, k0.addend, k0.binding), ("some_key", R_X86_64_PC64, None, 0, STB_GLOBAL));
    assert!(!entries[0].branch() && !entries[0].objtool_nops_jump());
    assert!(entries[1].branch() && entries[1].objtool_nops_jump());
    assert_eq!(entries[1].key_addend(), 3);

    // A key local to the object: section symbol, addend = key offset + flags.
    let k2 = &entries[2].key;
    assert_eq!(k2.symbol_kind, SymbolKind::Section);
    assert_eq!(k2.location(), Some(at(&file, ".data", 16 + 1)));
    assert!(entries[2].branch() && !entries[2].objtool_nops_jump());
}

#[test]
fn jump_table_old_absolute_layout() {
    let src = "\t.text\n1:\n\t.byte 0x0f,0x1f,0x44,0x00,0x00\n2:\n\tret\n\
        \t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.quad 1b\n\t.quad 2b\n\t.quad some_key\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let entries = read_jump_table(&file, KernelEra::new(4, 14).jump_layout()).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].code, entries[0].target), (at(&file, ".text", 0), at(&file, ".text", 5)));
    assert_eq!((entries[0].key.name, entries[0].key.kind), ("some_key", R_X86_64_64));
    // The same bytes in the 16-byte layout: 24 bytes are not whole entries, and the
    // relocations say which layout they are.
    let err = read_jump_table(&file, JumpLayout::Relative16).unwrap_err();
    assert_eq!(
        err.to_string(),
        "__jump_table: size 24 is not a multiple of the 16-byte entry of 4.20+ but fits the 24-byte layout of before 4.20: wrong kernel era?"
    );
}

#[test]
fn jump_table_missing_key() {
    let src = "\t.text\n1:\n\t.byte 0x0f,0x1f,0x44,0x00,0x00\n2:\n\tret\n\
        \t.pushsection __jump_table, \"aw\"\n\t.balign 8\n\t.long 1b - .\n\t.long 2b - .\n\t.quad some_key - .\n\
        \t.long 1b - .\n\t.long 2b - .\n\t.quad 0\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let err = read_jump_table(&file, JumpLayout::Relative16).unwrap_err();
    assert_eq!(err.to_string(), "__jump_table entry 1: no relocation for the `key` field at offset 0x18");
}

#[test]
fn exception_table() {
    let src = "\t.text\n1:\n\tmovq (%rdi), %rax\n2:\n\tret\n3:\n\txor %eax, %eax\n\tret\n\
        \t.pushsection \"__ex_table\",\"a\"\n\t.balign 4\n\
        \t.long 1b - .\n\t.long 3b - .\n\t.long 3 | (2 << 8) | (1 << 12) | (-14 << 16)\n\
        \t.long 2b - .\n\t.long 3b - . + 0x7ffffff0\n\t.long 0\n\
        \t.long 1b - .\n\t.long 2b - .\n\t.long ex_handler_default - .\n\
        \t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let ex = read_extable(&file).unwrap();
    assert_eq!(ex.len(), 3);
    let text = |o| at(&file, ".text", o);
    assert_eq!((ex[0].insn, ex[0].fixup, ex[0].fixup_biased), (text(0), text(4), false));
    assert_eq!((ex[0].fixup_type(), ex[0].reg(), ex[0].flags(), ex[0].imm()), (3, 2, 1, -14));
    assert!(ex[0].handler.is_none());
    // Old _ASM_EXTABLE_EX: objtool removes the bias.
    assert_eq!((ex[1].insn, ex[1].fixup, ex[1].fixup_biased), (text(3), text(4), true));
    // Before 5.16 the third word pointed at a handler.
    let h = ex[2].handler.unwrap();
    assert_eq!((h.name, h.kind, h.section), ("ex_handler_default", R_X86_64_PC32, None));
}

/// `UNWIND_HINT type sp_reg sp_offset signal` as 6.4+ emits it.
fn hint_6_12(ty: u8, sp_reg: u8, sp_offset: i16, signal: u8) -> String {
    format!(
        ".Lh{ty}_{sp_reg}_{}:\n\t.pushsection .discard.unwind_hints\n\t.long .Lh{ty}_{sp_reg}_{} - .\n\t.short {sp_offset}\n\
         \t.byte {sp_reg}\n\t.byte {ty}\n\t.byte {signal}\n\t.balign 4\n\t.popsection\n\tnop\n",
        sp_offset.unsigned_abs(),
        sp_offset.unsigned_abs()
    )
}

#[test]
fn unwind_hints_6_12() {
    let src = format!(
        "\t.text\n{}{}{}{}{}{}{}",
        hint_6_12(1, 0, 0, 0),   // END_OF_STACK at 0
        hint_6_12(3, 5, 160, 1), // REGS sp+160 signal at 1
        hint_6_12(4, 5, 8, 1),   // REGS_PARTIAL (IRET) at 2
        hint_6_12(5, 5, 8, 0),   // FUNC at 3
        hint_6_12(6, 0, 0, 0),   // SAVE at 4
        hint_6_12(7, 0, 0, 0),   // RESTORE at 5
        hint_6_12(2, 1, -8, 0),  // CALL with PREV_SP: objtool rejects the register
    );
    let obj = assemble(&src);
    let file = ElfFile::parse(&obj).unwrap();
    let hints = read_unwind_hints_for(&file, KernelEra::V6_12).unwrap();
    let kinds: Vec<HintKind> = hints.iter().map(|h| h.kind).collect();
    use HintKind::*;
    assert_eq!(kinds, [EndOfStack, Regs, RegsPartial, Func, Save, Restore, Call]);
    let sites: Vec<u64> = hints.iter().map(|h| h.site.offset).collect();
    assert_eq!(sites, [0, 1, 2, 3, 4, 5, 6]);
    assert!(hints.iter().all(|h| h.site.section == section(&file, ".text") && h.end.is_none()));
    assert_eq!((hints[1].sp_reg, hints[1].sp_offset, hints[1].signal), (Reg::SP, 160, Some(true)));
    assert_eq!(hints[1].base(), Some(HintBase::Sp));
    assert_eq!((hints[6].sp_offset, hints[6].base()), (-8, None));
    assert_eq!(hints[0].normalized(), EndOfStack);
    assert_eq!(hints[6].reloc.symbol_kind, SymbolKind::Section);
}

#[test]
fn unwind_hints_6_1_and_6_3() {
    // 6.1: UNWIND_HINT(sp_reg, sp_offset, type, end): byte 8 is end. UNWIND_HINT_EMPTY is
    // sp_reg UNDEFINED, type CALL, end 1; UNWIND_HINT_ENTRY is type 4.
    let rec = |label: &str, sp_reg: u8, off: i16, ty: u8, b8: u8, b9: u8| {
        format!(
            "{label}:\n\t.pushsection .discard.unwind_hints\n\t.long {label} - .\n\t.short {off}\n\t.byte {sp_reg}\n\
             \t.byte {ty}\n\t.byte {b8}\n\t.byte {b9}\n\t.balign 4\n\t.popsection\n\tnop\n"
        )
    };
    let src = format!(
        "\t.text\n{}{}{}{}",
        rec(".La", 0, 0, 0, 1, 0),
        rec(".Lb", 5, 8, 2, 0, 0),
        rec(".Lc", 7, 0, 4, 0, 0),
        rec(".Ld", 0, 0, 0, 0, 0)
    );
    let obj = assemble(&src);
    let file = ElfFile::parse(&obj).unwrap();
    let hints = read_unwind_hints_for(&file, KernelEra::V6_1).unwrap();
    use HintKind::*;
    let got: Vec<(HintKind, Option<bool>, Option<bool>, HintKind)> =
        hints.iter().map(|h| (h.kind, h.signal, h.end, h.normalized())).collect();
    assert_eq!(
        got,
        [
            (Call, None, Some(true), EndOfStack),
            (RegsPartial, None, Some(false), RegsPartial),
            (Entry, None, Some(false), Entry),
            (Call, None, Some(false), Undefined)
        ]
    );
    assert_eq!(hints[2].base(), Some(HintBase::R13));

    // 6.3: signal in byte 8, end in byte 9; the 5.19 numbering.
    let hints = read_unwind_hints(&file, HintLayout::SignalEnd, HintTypes::V5_19, orc_format::Layout::V2, SiteRule::AddendOnly).unwrap();
    let got: Vec<(Option<bool>, Option<bool>)> = hints.iter().map(|h| (h.signal, h.end)).collect();
    assert_eq!(
        got,
        [(Some(true), Some(false)), (Some(false), Some(false)), (Some(false), Some(false)), (Some(false), Some(false))]
    );
}

#[test]
fn unwind_hints_site_rules() {
    // A hint relocated against a global label (not a section symbol, not a .L label).
    let src = "\t.text\n\tnop\n\t.globl entry_here\nentry_here:\n\tnop\n\
        \t.pushsection .discard.unwind_hints\n\t.long entry_here - .\n\t.short 8\n\t.byte 5\n\t.byte 2\n\t.byte 0\n\t.balign 4\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let err = read_unwind_hints_for(&file, KernelEra::V6_12).unwrap_err();
    assert_eq!(err.at, Some(At::Entry(0)));
    assert!(
        matches!(&err.problem, Problem::UnexpectedSymbol { name, kind, .. } if name == "entry_here" && kind == "NOTYPE"),
        "{err}"
    );
    // objtool 6.1 takes the addend alone (here 0), whatever the symbol.
    let hints = read_unwind_hints_for(&file, KernelEra::V6_1).unwrap();
    assert_eq!(hints[0].site, at(&file, ".text", 0));
    assert_eq!((hints[0].reloc.value, hints[0].reloc.addend), (1, 0));

    // A `.L` label that stays a symbol (weak, so `as` keeps the relocation against it):
    // objtool 6.12 takes its value.
    let src = "\t.text\n\tnop\n\tnop\n\t.weak .Lkept\n.Lkept:\n\tnop\n\
        \t.pushsection .discard.unwind_hints\n\t.long .Lkept - .\n\t.short 8\n\t.byte 5\n\t.byte 2\n\t.byte 0\n\t.balign 4\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let hints = read_unwind_hints_for(&file, KernelEra::V6_12).unwrap();
    assert_eq!((hints[0].reloc.name, hints[0].reloc.symbol_kind), (".Lkept", SymbolKind::NoType));
    assert!(hints[0].reloc.is_local_label());
    assert_eq!(hints[0].site, at(&file, ".text", 2));
}

#[test]
fn unwind_hints_malformed() {
    let read = |src: &str| {
        let obj = assemble(src);
        let file = ElfFile::parse(&obj).unwrap();
        read_unwind_hints_for(&file, KernelEra::V6_12).map(|h| h.len())
    };
    let err = read(
        "\t.pushsection .discard.unwind_hints\n\t.long 0\n\t.short 0\n\t.byte 0, 2, 0\n\t.balign 4\n\t.popsection\n",
    )
    .unwrap_err();
    assert_eq!(err.to_string(), ".discard.unwind_hints: no relocation section");
    let err =
        read("\t.text\n1:\tnop\n\t.pushsection .discard.unwind_hints\n\t.long 1b - .\n\t.short 0\n\t.popsection\n")
            .unwrap_err();
    assert_eq!(err.problem, Problem::BadSize { size: 6, entry_size: 12 });
    let err = read(
        "\t.text\n1:\tnop\n\t.pushsection .discard.unwind_hints\n\t.long 1b - .\n\t.short 0\n\t.byte 0, 2, 0\n\t.balign 4\n\
         \t.long 0\n\t.short 0\n\t.byte 0, 2, 0\n\t.balign 4\n\t.popsection\n",
    )
    .unwrap_err();
    assert_eq!(err.to_string(), ".discard.unwind_hints entry 1: no relocation for the `ip` field at offset 0xc");
}

/// Every per-kind annotation, in the 6.12 macros' forms.
const ANNOTATIONS_6_12: &str = "\t.text\n\
    \t.globl func_a\n\t.type func_a, @function\nfunc_a:\n\
    .Lnoendbr:\n\t.pushsection .discard.noendbr\n\t.long .Lnoendbr\n\t.popsection\n\tnop\n\
    999:\n\t.pushsection .discard.intra_function_calls\n\t.long 999b\n\t.popsection\n\tcall 1f\n1:\n\
    .Lrs:\n\t.pushsection .discard.retpoline_safe\n\t.long .Lrs\n\t.popsection\n\tjmp *%rax\n\
    998:\n\t.pushsection .discard.ignore_alts\n\t.long 998b\n\t.popsection\n\tnop\n\
    7:\tnop\n\t.pushsection .discard.instr_begin\n\t.long 7b - .\n\t.popsection\n\
    8:\tnop\n\t.pushsection .discard.instr_end\n\t.long 8b - .\n\t.popsection\n\
    \tud2\n998:\n\t.pushsection .discard.reachable\n\t.long 998b\n\t.popsection\n\
    .Lu:\n\t.pushsection .discard.validate_unret\n\t.long .Lu - .\n\t.popsection\n\tret\n\
    \t.size func_a, .-func_a\n\
    \t.type local_fn, @function\nlocal_fn:\n\tret\n\t.size local_fn, .-local_fn\n\
    \t.pushsection .discard.ibt_endbr_noseal\n\t.quad func_a\n\t.popsection\n\
    \t.pushsection .discard.func_stack_frame_non_standard, \"aw\"\n\t.quad func_a\n\t.quad local_fn\n\
    \t.long func_a - .\n\t.long untyped - .\n\t.popsection\n\
    \t.globl untyped\nuntyped:\n\tret\n";

#[test]
fn annotations_6_12() {
    let obj = assemble(ANNOTATIONS_6_12);
    let file = ElfFile::parse(&obj).unwrap();
    let s = SpecialSections::read(&file, KernelEra::V6_12).unwrap();
    let text = |o| at(&file, ".text", o);
    let got: Vec<(AnnotationKind, Location)> = s.annotations.iter().map(|a| (a.kind, a.site)).collect();
    use AnnotationKind::*;
    // nop@0, call@1 (5), jmp *%rax@6 (2), nop@8, nop@9, nop@10, ud2@11 (2), ret@13, local_fn@14.
    assert_eq!(
        got,
        [
            (Reachable, text(13)),
            (IntraFunctionCall, text(1)),
            (RetpolineSafe, text(6)),
            (NoEndbr, text(0)),
            (IgnoreAlts, text(8)),
            (InstrBegin, text(9)),
            (InstrEnd, text(10)),
            (UnretBegin, text(13)),
            (IbtEndbrNoseal, text(0)),
        ]
    );
    let noseal = s.annotations_of(IbtEndbrNoseal).next().unwrap();
    assert_eq!(
        (noseal.reloc.name, noseal.reloc.kind, noseal.section),
        ("func_a", R_X86_64_64, ".discard.ibt_endbr_noseal")
    );
    let reachable = s.annotations_of(Reachable).next().unwrap();
    assert_eq!(reachable.reloc.kind, R_X86_64_32);

    let frames: Vec<NonStandardTarget<'_>> = s.non_standard_frames.iter().map(|f| f.target).collect();
    assert_eq!(
        frames,
        [
            NonStandardTarget::Function { symbol: frames_symbol(&file, "func_a"), name: "func_a" },
            NonStandardTarget::FunctionAt(text(14)),
            NonStandardTarget::Function { symbol: frames_symbol(&file, "func_a"), name: "func_a" },
            NonStandardTarget::Unsupported { kind: SymbolKind::NoType },
        ]
    );
    let c = s.counts();
    assert_eq!((c.reachable, c.noendbr, c.non_standard_frames, c.alternatives), (1, 1, 4, 0));
}

fn frames_symbol(file: &ElfFile<'_>, name: &str) -> usize {
    file.symbols().map(Result::unwrap).find(|s| s.name == name).unwrap().index
}

#[test]
fn annotations_6_1_forms() {
    // 6.1: noendbr is a .quad, reachable and unreachable are self-relative.
    let src = "\t.text\n\
        986:\n\t.pushsection .discard.noendbr\n\t.quad 986b\n\t.popsection\n\tnop\n\
        \tud2\n998:\n\t.pushsection .discard.reachable\n\t.long 998b - .\n\t.popsection\n\
        \tcall panic\n998:\n\t.pushsection .discard.unreachable\n\t.long 998b - .\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let s = SpecialSections::read(&file, KernelEra::V6_1).unwrap();
    let got: Vec<(AnnotationKind, u64, u32)> =
        s.annotations.iter().map(|a| (a.kind, a.site.offset, a.reloc.kind)).collect();
    assert_eq!(
        got,
        [
            (AnnotationKind::Unreachable, 8, R_X86_64_PC32),
            (AnnotationKind::Reachable, 3, R_X86_64_PC32),
            (AnnotationKind::NoEndbr, 0, R_X86_64_64)
        ]
    );
    assert!(KernelEra::V6_1.reads_unreachable_annotations());
}

#[test]
fn annotation_symbol_rules() {
    // retpoline_safe accepts only section symbols.
    let src = "\t.text\n\t.globl thunk\nthunk:\n\tjmp *%rax\n\
        \t.pushsection .discard.retpoline_safe\n\t.long thunk\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let err = SpecialSections::read(&file, KernelEra::V6_12).unwrap_err();
    assert_eq!(err.section, ".discard.retpoline_safe");
    assert_eq!(err.at, Some(At::Relocation(0)));
    assert_eq!(
        err.to_string(),
        ".discard.retpoline_safe relocation 0: relocation against NOTYPE symbol `thunk`; objtool accepts only section symbols"
    );
    // noendbr takes any symbol, at value + addend.
    let list =
        read_annotation_section(&file, ".discard.retpoline_safe", AnnotationKind::NoEndbr, SiteRule::ValuePlusAddend)
            .unwrap();
    assert_eq!(list[0].site, at(&file, ".text", 0));
    // An undefined symbol has no location under any rule.
    let src = "\t.pushsection .discard.noendbr\n\t.long elsewhere\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let err = SpecialSections::read(&file, KernelEra::V6_12).unwrap_err();
    assert_eq!(err.problem, Problem::Undefined { field: "site", name: "elsewhere".into() });
}

#[test]
fn unified_annotations_6_13() {
    let src = "\t.text\n\
        911:\n\t.pushsection .discard.annotate_insn,\"M\",@progbits,8\n\t.long 911b - .\n\t.long 2\n\t.popsection\n\tjmp *%rax\n\
        912:\n\t.pushsection .discard.annotate_insn,\"M\",@progbits,8\n\t.long 912b - .\n\t.long 7\n\t.popsection\n\tcall 1f\n1:\n\
        913:\n\t.pushsection .discard.annotate_insn,\"M\",@progbits,8\n\t.long 913b - .\n\t.long 42\n\t.popsection\n\tnop\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let list = annotations::read_unified_annotations(&file).unwrap();
    let got: Vec<(AnnotationKind, u64)> = list.iter().map(|a| (a.kind, a.site.offset)).collect();
    assert_eq!(
        got,
        [(AnnotationKind::RetpolineSafe, 0), (AnnotationKind::IntraFunctionCall, 2), (AnnotationKind::Other(42), 7)]
    );
    let s = SpecialSections::read(&file, KernelEra::new(6, 13)).unwrap();
    assert_eq!(s.counts().other_annotations, 1);
    assert_eq!(AnnotationKind::from_annotype(8), AnnotationKind::Reachable);
}

#[test]
fn parainstructions() {
    let src = "\t.text\n\tnop\n771:\n\tcall *pv_ops+8(%rip)\n772:\n\
        \t.pushsection .parainstructions,\"a\"\n\t.balign 8\n\t.quad 771b\n\t.byte 1\n\t.byte 772b-771b\n\t.short 0x1ff\n\
        \t.balign 8\n\t.popsection\n\
        773:\n\tpushfq\n\tpopq %rax\n774:\n\
        \t.pushsection .parainstructions,\"a\"\n\t.balign 8\n\t.quad 773b\n\t.byte 2\n\t.byte 774b-773b\n\t.balign 8\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let sites = read_parainstructions(&file).unwrap();
    let got: Vec<(Location, u8, u8, u16)> = sites.iter().map(|s| (s.instr, s.pv_type, s.len, s.clobbers)).collect();
    assert_eq!(got, [(at(&file, ".text", 1), 1, 6, 0x1ff), (at(&file, ".text", 7), 2, 2, 0)]);
}

#[test]
fn objtool_output_sections() {
    let src = "\t.text\n1:\n\tcall __x86_indirect_thunk_rax\n2:\n\tjmp __x86_return_thunk\n3:\n\tcall __SCT__foo\n4:\n\tjmp __SCT__bar\n\
        \t.pushsection .retpoline_sites,\"a\"\n\t.long 1b - .\n\t.popsection\n\
        \t.pushsection .return_sites,\"a\"\n\t.long 2b - .\n\t.popsection\n\
        \t.pushsection .call_sites,\"a\"\n\t.long 1b - .\n\t.long 3b - .\n\t.popsection\n\
        \t.pushsection .static_call_sites,\"aw\"\n\t.long 3b - .\n\t.long __SCK__foo - .\n\t.long 4b - .\n\t.long __SCK__bar + 1 - .\n\t.popsection\n";
    let obj = assemble(src);
    let file = ElfFile::parse(&obj).unwrap();
    let text = |o| at(&file, ".text", o);
    assert_eq!(read_site_table(&file, ".retpoline_sites").unwrap(), Some(vec![text(0)]));
    assert_eq!(read_site_table(&file, ".return_sites").unwrap(), Some(vec![text(5)]));
    assert_eq!(read_site_table(&file, ".call_sites").unwrap(), Some(vec![text(0), text(10)]));
    assert_eq!(read_site_table(&file, ".ibt_endbr_seal").unwrap(), None);
    let sc = read_static_call_sites(&file).unwrap().unwrap();
    assert_eq!(sc.len(), 2);
    assert_eq!((sc[0].addr, sc[0].key.name, sc[0].is_tail()), (text(10), "__SCK__foo", false));
    assert_eq!((sc[1].addr, sc[1].key.name, sc[1].is_tail()), (text(15), "__SCK__bar", true));
    let s = SpecialSections::read(&file, KernelEra::V6_12).unwrap();
    let c = s.counts();
    assert_eq!(
        (c.retpoline_sites, c.return_sites, c.call_sites, c.static_call_sites, c.ibt_endbr_seal),
        (1, 1, 2, 2, 0)
    );
    assert_eq!(c.to_string(), ".static_call_sites 2\n.retpoline_sites 1\n.return_sites 1\n.call_sites 2\n");
}

#[test]
fn everything_at_once() {
    let src = format!(
        "{JUMP_LABELS_6_12}\t.text\n{}{}",
        alt_6_12("call __sw_hweight64", "popcnt %rdi, %rax", "151"),
        hint_6_12(2, 5, 8, 0)
    );
    let obj = assemble(&src);
    let file = ElfFile::parse(&obj).unwrap();
    let s = SpecialSections::read(&file, KernelEra::V6_12).unwrap();
    assert_eq!(s.era, KernelEra::V6_12);
    assert!(s.has_unwind_hints_section);
    let c = s.counts();
    assert_eq!((c.alternatives, c.jump_labels, c.unwind_hints, c.exception_table), (1, 3, 1, 0));
    // No vermagic in a bare object.
    assert_eq!(KernelEra::from_file(&file), None);
}

/// Random corruption of a fixture's special sections and their relocations gives errors or
/// records, never a panic.
#[test]
fn corrupted_fixtures_never_panic() {
    let src = format!(
        "{JUMP_LABELS_6_12}{ANNOTATIONS_6_12}\t.text\n{}{}\t.pushsection \"__ex_table\",\"a\"\n\t.balign 4\n\
         \t.long 1b - .\n\t.long 2b - .\n\t.long 1\n\t.popsection\n",
        alt_6_12("call __sw_hweight64", "popcnt %rdi, %rax", "151"),
        hint_6_12(2, 5, 8, 0)
    );
    let obj = assemble(&src);
    let file = ElfFile::parse(&obj).unwrap();
    let ranges: Vec<std::ops::Range<usize>> = file
        .sections()
        .map(Result::unwrap)
        .filter(|s| {
            s.name.contains("discard") || s.name.contains("alt") || s.name.contains("__") || s.name == ".symtab"
        })
        .filter_map(|s| {
            let start = s.data.as_ptr() as usize - obj.as_ptr() as usize;
            (!s.data.is_empty()).then(|| start..start + s.data.len())
        })
        .collect();
    assert!(ranges.len() > 10);
    let mut rng = orc_testkit::Rng::new(7);
    let mut errors = 0;
    for _ in 0..3000 {
        let mut bytes = obj.clone();
        rng.mutate(&mut bytes, &ranges, 8);
        let Ok(file) = ElfFile::parse(&bytes) else { continue };
        for era in [KernelEra::V6_12, KernelEra::V6_1, KernelEra::new(4, 14)] {
            if let Err(SpecialSectionError { .. }) = SpecialSections::read(&file, era) {
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "the mutations never broke anything: not a useful test");
}
