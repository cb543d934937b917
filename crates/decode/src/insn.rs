//! A decoded instruction and its classification.

use core::fmt;

use crate::StackOps;

/// What an instruction does to control flow (and a few flags objtool tracks), as objtool's x86
/// decoder classifies it.
///
/// The decoder only ever produces the kinds it can see in the bytes. Later stages change some:
/// a jump or call through a retpoline thunk becomes [`InsnKind::JumpDynamic`],
/// [`InsnKind::JumpDynamicConditional`] or [`InsnKind::CallDynamic`], a jump to the return
/// thunk becomes [`InsnKind::Return`], and an annotated intra-function call becomes a jump.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum InsnKind {
    /// `jcc` (`70`-`7f`, `0f 80`-`8f`), `jrcxz` (`e3`), `loop`/`loope`/`loopne` (`e0`-`e2`).
    JumpConditional,
    /// `jmp rel8`/`jmp rel32` (`eb`, `e9`).
    JumpUnconditional,
    /// `jmp *r/m` (`ff /4`).
    JumpDynamic,
    /// A conditional jump to a retpoline thunk. Never produced by the decoder itself.
    JumpDynamicConditional,
    /// `call rel32` (`e8`).
    Call,
    /// `call *r/m` and `lcall *m` (`ff /2`, `ff /3`).
    CallDynamic,
    /// `ret` and `ret $imm16` (`c3`, `c2`).
    Return,
    /// A switch of privilege level or code segment that ends the frame: `syscall`, `sysret`,
    /// `sysenter`, `sysexit` (`0f 05/07/34/35`), `lret` (`ca`, `cb`), `ljmp *m` (`ff /5`),
    /// `eretu`/`erets` (`f3`/`f2 0f 01 ca`), and `iret` (`cf`) outside STT_FUNC symbols.
    ContextSwitch,
    /// `ud2` (`0f 0b`) and `ud1` (`0f b9`): a trap the kernel uses for BUG(). `ud0` is
    /// [`InsnKind::Other`].
    Bug,
    /// `nop` and everything else whose first opcode byte is `90` (`pause`, `xchg %eax,%r8d`),
    /// the long NOPs `0f 1f`, and `0f 0d` (the prefetch/NOP group).
    Nop,
    /// `stac` (`0f 01 cb`): user access enabled.
    Stac,
    /// `clac` (`0f 01 ca` without a REP prefix): user access disabled.
    Clac,
    /// `std`: direction flag set.
    Std,
    /// `cld`: direction flag cleared.
    Cld,
    /// `int3` (`cc`).
    Trap,
    /// `endbr64`/`endbr32` (`f3 0f 1e fa`/`fb`, with `f3` as the first prefix).
    Endbr,
    /// Anything else, including every VEX/EVEX-encoded instruction, `hlt`, `lfence`, `int`.
    Other,
}

impl InsnKind {
    /// True for the four jump kinds.
    pub const fn is_jump(self) -> bool {
        matches!(
            self,
            InsnKind::JumpConditional
                | InsnKind::JumpUnconditional
                | InsnKind::JumpDynamic
                | InsnKind::JumpDynamicConditional
        )
    }

    /// True for direct (`rel8`/`rel32`) jumps: conditional or unconditional.
    pub const fn is_static_jump(self) -> bool {
        matches!(
            self,
            InsnKind::JumpConditional | InsnKind::JumpUnconditional
        )
    }

    /// True for jumps through a register or memory.
    pub const fn is_dynamic_jump(self) -> bool {
        matches!(
            self,
            InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional
        )
    }
}

/// Where a constant field (displacement or immediate) sits inside an instruction's bytes, so
/// that a relocation against it can be found.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Field {
    /// Offset of the field from the first byte of the instruction.
    pub offset: u8,
    /// Size of the field in bytes (1, 2, 4 or 8).
    pub size: u8,
}

/// A direct branch (`jcc`, `jmp`, `call` with a `rel8`/`rel32` operand).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Branch {
    /// The destination's offset in the section, computed from the encoded displacement:
    /// the end of the instruction plus the displacement. When a relocation covers the
    /// displacement (a call to an external function, a jump to another section), the
    /// relocation gives the real destination instead.
    pub target: u64,
    /// Where the displacement is, for relocation lookup.
    pub field: Field,
}

/// Something objtool's decoder warns about but decodes anyway.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DecodeWarning {
    /// An indirect call or jump with a `notrack` (`3e`) prefix: it would bypass IBT.
    /// Objtool: "notrack prefix found at SEC:0xOFF".
    Notrack,
    /// `enqcmd` (`f2 0f 38 f8`), which the kernel must not use.
    /// Objtool: "ENQCMD instruction at SEC:OFF".
    Enqcmd,
    /// `lea` with a register operand (`8d` with ModRM mod 3), which is not a valid encoding.
    /// Objtool: "invalid LEA encoding at SEC:0xOFF".
    InvalidLea,
}

impl fmt::Display for DecodeWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeWarning::Notrack => "notrack prefix found",
            DecodeWarning::Enqcmd => "ENQCMD instruction",
            DecodeWarning::InvalidLea => "invalid LEA encoding",
        })
    }
}

/// One decoded instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Instruction {
    /// Offset of the first byte in its section.
    pub offset: u64,
    /// Length in bytes (1-15, or up to 20 with a Xen/KVM emulation prefix).
    pub len: u8,
    /// Control-flow classification.
    pub kind: InsnKind,
    /// What the instruction does to the stack state.
    pub stack_ops: StackOps,
    /// Objtool's `insn->immediate`: the first immediate field, sign-extended from its size
    /// (the branch displacement for direct jumps and calls, the low 32 bits of a 64-bit
    /// immediate or of a `movabs` address), or 0 if there is none.
    pub immediate: i64,
    /// Where the first immediate (or branch displacement) is, if any.
    pub imm_field: Option<Field>,
    /// Where the memory operand's displacement is, if any.
    pub disp_field: Option<Field>,
    /// The memory operand is RIP-relative (its displacement is relative to the end of the
    /// instruction; a relocation usually fills it in).
    pub rip_relative: bool,
    /// For direct jumps and calls: the destination and where its displacement is.
    pub branch: Option<Branch>,
    /// A warning objtool prints while decoding this instruction.
    pub warning: Option<DecodeWarning>,
}

impl Instruction {
    /// Offset of the byte just after this instruction.
    pub const fn end(&self) -> u64 {
        self.offset + self.len as u64
    }

    /// Objtool's `arch_jump_destination`: the end of the instruction plus the immediate.
    /// Meaningful for direct jumps and calls; the same as [`Branch::target`].
    pub const fn jump_destination(&self) -> u64 {
        self.end().wrapping_add(self.immediate as u64)
    }
}

/// Bytes objtool cannot decode: it gives up on the whole object file.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("can't decode instruction at 0x{offset:x}")]
pub struct DecodeError {
    /// Offset in the section of the undecodable bytes.
    pub offset: u64,
}
