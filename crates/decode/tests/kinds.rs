//! Bytes in, instruction kinds out, plus the fields later stages look up relocations with.

mod table;

use orc_decode::{decode_one, Branch, DecodeWarning, Field, InsnKind, SectionDecoder};

#[test]
fn every_kind_in_the_table() {
    for case in table::KINDS.iter().chain(table::KINDS_BYTES_ONLY) {
        let insn = decode_one(case.bytes, 0, false).unwrap_or_else(|e| panic!("{}: {e}", case.asm));
        assert_eq!(insn.len as usize, case.bytes.len(), "{}: length", case.asm);
        assert_eq!(insn.kind, case.kind, "{} ({:02x?})", case.asm, case.bytes);
    }
}

#[test]
fn direct_branches_expose_target_and_displacement() {
    // jne .+0x106 at 0x40: the rel32 is bytes 2..6, the target 0x40 + 6 + 0x100.
    let insn = decode_one(&[0x0f, 0x85, 0x00, 0x01, 0x00, 0x00], 0x40, false).unwrap();
    assert_eq!(
        insn.branch,
        Some(Branch {
            target: 0x146,
            field: Field { offset: 2, size: 4 }
        })
    );
    assert_eq!(insn.immediate, 0x100);
    // jmp .-2 (a tight loop) at 0x10: rel8 0xfe.
    let insn = decode_one(&[0xeb, 0xfe], 0x10, false).unwrap();
    assert_eq!(
        insn.branch,
        Some(Branch {
            target: 0x10,
            field: Field { offset: 1, size: 1 }
        })
    );
    assert_eq!(insn.immediate, -2);
    // call with a zero displacement (an external call awaiting its relocation).
    let insn = decode_one(&[0xe8, 0, 0, 0, 0], 0x20, false).unwrap();
    assert_eq!(
        insn.branch,
        Some(Branch {
            target: 0x25,
            field: Field { offset: 1, size: 4 }
        })
    );
    // cs call: the displacement moves one byte along with the prefix.
    let insn = decode_one(&[0x2e, 0xe8, 0, 0, 0, 0], 0, false).unwrap();
    assert_eq!(insn.branch.unwrap().field, Field { offset: 2, size: 4 });
    // Indirect jumps and returns have no direct target.
    assert_eq!(decode_one(&[0xff, 0xe0], 0, false).unwrap().branch, None);
    assert_eq!(
        decode_one(&[0xc2, 0x08, 0x00], 0, false).unwrap().branch,
        None
    );
}

#[test]
fn rip_relative_operands_expose_their_displacement() {
    // mov 0x0(%rip),%rax with the disp32 at bytes 3..7
    let insn = decode_one(&[0x48, 0x8b, 0x05, 0, 0, 0, 0], 0, false).unwrap();
    assert!(insn.rip_relative);
    assert_eq!(insn.disp_field, Some(Field { offset: 3, size: 4 }));
    // jmp *0x0(,%rax,8): an absolute jump table reference, not RIP-relative
    let insn = decode_one(&[0xff, 0x24, 0xc5, 0, 0, 0, 0], 0, false).unwrap();
    assert_eq!(insn.kind, InsnKind::JumpDynamic);
    assert!(!insn.rip_relative);
    assert_eq!(insn.disp_field, Some(Field { offset: 3, size: 4 }));
    // movq $0x0,0x0(%rip): displacement and immediate both present
    let insn = decode_one(&[0x48, 0xc7, 0x05, 1, 0, 0, 0, 2, 0, 0, 0], 0, false).unwrap();
    assert!(insn.rip_relative);
    assert_eq!(insn.disp_field, Some(Field { offset: 3, size: 4 }));
    assert_eq!(insn.imm_field, Some(Field { offset: 7, size: 4 }));
    assert_eq!(insn.immediate, 2);
    // A VEX instruction still reports its RIP-relative operand, but no immediate value.
    let insn = decode_one(&[0xc5, 0xfd, 0x6f, 0x05, 0, 0, 0, 0], 0, false).unwrap();
    assert!(insn.rip_relative);
    assert_eq!(insn.disp_field, Some(Field { offset: 4, size: 4 }));
}

#[test]
fn immediates_follow_the_kernel_decoder() {
    let imm = |bytes: &[u8]| decode_one(bytes, 0, false).unwrap().immediate;
    // ret $imm16 is a signed 16-bit field
    assert_eq!(imm(&[0xc2, 0x00, 0x80]), -0x8000);
    // movabs $imm64: the low 32 bits, sign-extended
    assert_eq!(
        imm(&[0x48, 0xb8, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 0]),
        -1
    );
    // movabs 0x...,%al keeps its absolute address where the immediate goes
    assert_eq!(
        imm(&[0xa0, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]),
        0x76543210
    );
    // VEX instructions: none recorded, as objtool stops before reading it
    assert_eq!(imm(&[0xc4, 0xe3, 0x7d, 0x18, 0xc1, 0x01]), 0);
}

#[test]
fn warnings_objtool_prints_while_decoding() {
    let warning = |bytes: &[u8]| decode_one(bytes, 0, false).unwrap().warning;
    assert_eq!(warning(&[0x3e, 0xff, 0xe0]), Some(DecodeWarning::Notrack));
    assert_eq!(warning(&[0x3e, 0xff, 0xd0]), Some(DecodeWarning::Notrack));
    assert_eq!(
        warning(&[0xf2, 0x0f, 0x38, 0xf8, 0x02]),
        Some(DecodeWarning::Enqcmd)
    );
    assert_eq!(warning(&[0xff, 0xe0]), None);
}

#[test]
fn sections_decode_back_to_back() {
    // endbr64; push %rbp; mov %rsp,%rbp; pop %rbp; ret; int3
    let code = [
        0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3, 0xcc,
    ];
    let insns = SectionDecoder::new(&code).decode_all(|_| true).unwrap();
    let layout: Vec<(u64, u8, InsnKind)> =
        insns.iter().map(|i| (i.offset, i.len, i.kind)).collect();
    assert_eq!(
        layout,
        [
            (0, 4, InsnKind::Endbr),
            (4, 1, InsnKind::Other),
            (5, 3, InsnKind::Other),
            (8, 1, InsnKind::Other),
            (9, 1, InsnKind::Return),
            (10, 1, InsnKind::Trap),
        ]
    );
}

#[test]
fn truncated_and_undecodable_bytes_are_errors() {
    // A rel32 call cut short by the end of the section.
    let err = SectionDecoder::new(&[0x90, 0xe8, 0x00])
        .decode_all(|_| false)
        .unwrap_err();
    assert_eq!(err.offset, 1);
    assert_eq!(err.to_string(), "can't decode instruction at 0x1");
    assert!(decode_one(&[], 0, false).is_err());
}

#[test]
fn disassembly_for_listings() {
    use orc_decode::disassemble;
    assert_eq!(disassemble(&[0x55], 0).as_deref(), Some("push   %rbp"));
    assert_eq!(
        disassemble(&[0x48, 0x89, 0xe5], 0).as_deref(),
        Some("mov    %rsp,%rbp")
    );
    assert_eq!(
        disassemble(&[0x48, 0x83, 0xec, 0x10], 0).as_deref(),
        Some("sub    $0x10,%rsp")
    );
    assert_eq!(
        disassemble(&[0xe8, 0x00, 0x00, 0x00, 0x00], 0x20).as_deref(),
        Some("call   0x25")
    );
    assert_eq!(disassemble(&[0xc3], 0).as_deref(), Some("ret"));
    assert_eq!(disassemble(&[0x06], 0), None);
}
