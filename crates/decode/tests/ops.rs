//! Bytes in, stack operations out: every encoding of the reference's table, and the near
//! misses objtool ignores.

mod table;

use orc_decode::{decode_one, Dest, Reg, Src, StackOp};

/// Decodes `bytes` as one instruction and compares its operations, written `src -> dest`.
fn assert_ops(asm: &str, bytes: &[u8], expected: &[&str]) {
    let insn = decode_one(bytes, 0, false).unwrap_or_else(|e| panic!("{asm}: {e}"));
    assert_eq!(insn.len as usize, bytes.len(), "{asm}: length");
    let got: Vec<String> = insn.stack_ops.iter().map(|op| op.to_string()).collect();
    assert_eq!(got, expected, "{asm} ({bytes:02x?})");
}

#[test]
fn every_encoding_in_the_table() {
    for case in table::OPS {
        assert_ops(case.asm, case.bytes, case.ops);
    }
}

#[test]
fn frame_pointer_prologue_and_epilogue() {
    // push %rbp; mov %rsp,%rbp; sub $0x20,%rsp; ... leave; ret
    let ops = |bytes: &[u8]| {
        decode_one(bytes, 0, false)
            .unwrap()
            .stack_ops
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(ops(&[0x55]), [StackOp::push(Reg::BP)]);
    assert_eq!(ops(&[0x48, 0x89, 0xe5]), [StackOp::mov(Reg::SP, Reg::BP)]);
    assert_eq!(ops(&[0x48, 0x83, 0xec, 0x20]), [StackOp::sub_sp(0x20)]);
    assert_eq!(ops(&[0xc9]), StackOp::leave());
    assert_eq!(ops(&[0xc3]), []);
}

#[test]
fn gcc_drap_prologue() {
    // lea 0x8(%rsp),%r10; and $-64,%rsp; pushq -0x8(%r10); push %rbp; mov %rsp,%rbp; push %r10
    let ops = |bytes: &[u8]| {
        decode_one(bytes, 0, false)
            .unwrap()
            .stack_ops
            .iter()
            .copied()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ops(&[0x4c, 0x8d, 0x54, 0x24, 0x08]),
        [StackOp::add(Reg::SP, 8, Reg::R10)]
    );
    assert_eq!(ops(&[0x48, 0x83, 0xe4, 0xc0]), [StackOp::and_sp(-64)]);
    assert_eq!(ops(&[0x41, 0xff, 0x72, 0xf8]), [StackOp::push_const()]);
    assert_eq!(ops(&[0x55]), [StackOp::push(Reg::BP)]);
    assert_eq!(ops(&[0x48, 0x89, 0xe5]), [StackOp::mov(Reg::SP, Reg::BP)]);
    assert_eq!(ops(&[0x41, 0x52]), [StackOp::push(Reg::R10)]);
    // ... pop %r10; pop %rbp; lea -0x8(%r10),%rsp
    assert_eq!(ops(&[0x41, 0x5a]), [StackOp::pop(Reg::R10)]);
    assert_eq!(
        ops(&[0x49, 0x8d, 0x62, 0xf8]),
        [StackOp::add(Reg::R10, -8, Reg::SP)]
    );
}

#[test]
fn iret_inside_a_function_pops_its_frame() {
    // sync_core() builds an iret frame and irets to the next instruction.
    let insn = decode_one(&[0x48, 0xcf], 0, true).unwrap();
    assert_eq!(insn.kind, orc_decode::InsnKind::Other);
    assert_eq!(
        insn.stack_ops.iter().copied().collect::<Vec<_>>(),
        [StackOp::add_sp(40)]
    );
    // Anywhere else it leaves the function's frame behind.
    let insn = decode_one(&[0x48, 0xcf], 0, false).unwrap();
    assert_eq!(insn.kind, orc_decode::InsnKind::ContextSwitch);
    assert!(insn.stack_ops.is_empty());
}

#[test]
fn constructors_spell_the_decoded_operations() {
    assert_eq!(
        StackOp::store(Reg::BX, -8, Reg::BP),
        StackOp::new(
            Src::Reg(Reg::BX),
            Dest::RegIndirect {
                reg: Reg::BP,
                offset: -8
            }
        )
    );
    assert_eq!(
        StackOp::load(8, Reg::SP, Reg::R12),
        StackOp::new(
            Src::RegIndirect {
                reg: Reg::SP,
                offset: 8
            },
            Dest::Reg(Reg::R12)
        )
    );
    assert_eq!(StackOp::sub_sp(16), StackOp::add_sp(-16));
    assert_eq!(StackOp::and_sp(-16).to_string(), "and(%rsp, -16) -> %rsp");
    assert_eq!(StackOp::pop_mem().to_string(), "pop -> mem");
    assert_eq!(StackOp::popf().to_string(), "popf -> mem");
    assert_eq!(StackOp::pushf().to_string(), "const -> pushf");
}
