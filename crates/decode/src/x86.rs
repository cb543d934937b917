//! The x86-64 decoder: iced-x86 finds instruction boundaries and constant fields; the
//! classification into kinds and stack operations follows objtool's x86 decoder, which looks at
//! the raw prefix, REX, opcode, ModRM and SIB bytes. Those are re-parsed here the way the
//! kernel's instruction decoder splits them, because objtool's decisions depend on details an
//! abstract decoder hides (which prefix came first, the raw REX bits, `0x90` with any prefix).

use iced_x86::{Decoder, DecoderError as IcedError, DecoderOptions, Formatter, GasFormatter};

use crate::insn::{Branch, DecodeError, DecodeWarning, Field, InsnKind, Instruction};
use crate::op::{Dest, Src, StackOp, StackOps};
use crate::Reg;

/// The Xen and KVM "emulate" prefixes: `ud2` followed by an ASCII tag, placed before an
/// instruction a hypervisor should emulate (`cpuid`, usually). The kernel's instruction decoder
/// treats the five bytes as a prefix of the next instruction, so objtool sees one instruction
/// (classified by what follows), not a `ud2`.
const EMULATE_PREFIXES: [[u8; 5]; 2] = [
    [0x0f, 0x0b, b'x', b'e', b'n'],
    [0x0f, 0x0b, b'k', b'v', b'm'],
];

/// Decodes the instructions of one executable section.
///
/// Objtool decodes a section from offset 0 to its end, each instruction starting where the
/// previous one ended; [`SectionDecoder::decode_all`] does the same. [`SectionDecoder::decode_at`]
/// decodes one instruction anywhere (an alternative replacement, say).
pub struct SectionDecoder<'a> {
    code: &'a [u8],
    iced: Decoder<'a>,
}

impl<'a> SectionDecoder<'a> {
    /// A decoder over the bytes of a section.
    pub fn new(code: &'a [u8]) -> SectionDecoder<'a> {
        // No invalid-instruction checks: objtool's decoder accepts any byte sequence it can
        // measure, so rejecting a LOCK prefix in the wrong place would only lose boundaries.
        let iced = Decoder::with_ip(64, code, 0, DecoderOptions::NO_INVALID_CHECK);
        SectionDecoder { code, iced }
    }

    /// Decodes the instruction at `offset`.
    ///
    /// `in_function` is asked, only for an `iret`, whether `offset` lies inside an STT_FUNC
    /// symbol: objtool treats an `iret` inside a function (`sync_core()` returns to itself
    /// through one) as popping a 40-byte frame, and any other `iret` as a context switch.
    pub fn decode_at(
        &mut self,
        offset: u64,
        in_function: impl FnOnce(u64) -> bool,
    ) -> Result<Instruction, DecodeError> {
        let err = DecodeError { offset };
        let start = usize::try_from(offset).map_err(|_| err)?;
        let rest = self
            .code
            .get(start..)
            .filter(|r| !r.is_empty())
            .ok_or(err)?;

        let emulate = EMULATE_PREFIXES.iter().any(|p| rest.starts_with(p));
        let skip = if emulate { 5 } else { 0 };
        let body = &rest[skip..];
        let raw = RawBytes::parse(body).ok_or(err)?;

        let mut insn = Instruction {
            offset,
            len: 0,
            kind: InsnKind::Other,
            stack_ops: StackOps::NONE,
            immediate: 0,
            imm_field: None,
            disp_field: None,
            rip_relative: false,
            branch: None,
            warning: None,
        };

        if !raw.vex && raw.op1 == 0x0f && raw.op2 == 0xff {
            // `ud0`: the kernel's opcode map gives it no ModRM byte (the AMD form), while iced
            // decodes Intel's form with one. Follow the kernel, which decides the boundaries.
            insn.len = (skip + raw.opcode_at + 2) as u8;
            return Ok(insn);
        }

        let pos = start + skip;
        self.iced.set_position(pos).map_err(|_| err)?;
        self.iced.set_ip(pos as u64);
        let decoded = self.iced.decode();
        if decoded.is_invalid() || self.iced.last_error() != IcedError::None {
            return Err(err);
        }
        let offsets = self.iced.get_constant_offsets(&decoded);
        let len = skip + decoded.len();
        insn.len = len as u8;
        insn.rip_relative = decoded.is_ip_rel_memory_operand();
        let shift = |o: usize| (o + skip) as u8;
        if offsets.has_displacement() {
            insn.disp_field = Some(Field {
                offset: shift(offsets.displacement_offset()),
                size: offsets.displacement_size() as u8,
            });
        }
        if offsets.has_immediate() {
            let field = Field {
                offset: shift(offsets.immediate_offset()),
                size: offsets.immediate_size() as u8,
            };
            insn.imm_field = Some(field);
            insn.immediate = read_signed(rest, field) as i64;
        } else if !raw.vex && matches!(raw.op1, 0xa0..=0xa3) {
            // `movabs` to or from an absolute address: the kernel's decoder keeps the address
            // where other instructions keep their immediate.
            if let Some(field) = insn.disp_field {
                insn.immediate = read_signed(rest, field) as i64;
            }
        }
        let disp = insn.disp_field.map_or(0, |f| read_signed(rest, f));

        if raw.vex {
            // VEX/EVEX instructions never touch the stack pointer in compiled code; objtool
            // stops looking at them before it even records their immediate.
            insn.immediate = 0;
            return Ok(insn);
        }

        classify(
            &raw,
            body,
            disp,
            insn.immediate as i32,
            offset,
            in_function,
            &mut insn,
        );

        if let (true, Some(field)) = (is_direct_branch(&raw), insn.imm_field) {
            insn.branch = Some(Branch {
                target: insn.jump_destination(),
                field,
            });
        }
        Ok(insn)
    }

    /// Decodes the whole section, as objtool does: from offset 0, each instruction starting
    /// where the previous one ended. See [`SectionDecoder::decode_at`] for `in_function`.
    pub fn decode_all(
        &mut self,
        mut in_function: impl FnMut(u64) -> bool,
    ) -> Result<Vec<Instruction>, DecodeError> {
        let mut out = Vec::with_capacity(self.code.len() / 4);
        let mut offset = 0u64;
        while (offset as usize) < self.code.len() {
            let insn = self.decode_at(offset, &mut in_function)?;
            offset = insn.end();
            out.push(insn);
        }
        Ok(out)
    }
}

/// Decodes the single instruction at the start of `bytes`, which sits at `offset` in its
/// section. `in_function` matters only for `iret` (see [`SectionDecoder::decode_at`]).
pub fn decode_one(
    bytes: &[u8],
    offset: u64,
    in_function: bool,
) -> Result<Instruction, DecodeError> {
    let mut insn = SectionDecoder::new(bytes)
        .decode_at(0, |_| in_function)
        .map_err(|_| DecodeError { offset })?;
    insn.offset = offset;
    let target = insn.jump_destination();
    if let Some(b) = insn.branch.as_mut() {
        b.target = target;
    }
    Ok(insn)
}

/// The instruction at the start of `bytes`, at address `ip`, in GNU `as` (AT&T) syntax the
/// way `objdump -d` spells it (`push   %rbp`, `mov    %rsp,%rbp`, `call   0x25`), for
/// listings and diagnostics. `None` if the bytes do not decode.
pub fn disassemble(bytes: &[u8], ip: u64) -> Option<String> {
    let mut decoder = Decoder::with_ip(64, bytes, ip, DecoderOptions::NO_INVALID_CHECK);
    let insn = decoder.decode();
    if insn.is_invalid() {
        return None;
    }
    let mut formatter = GasFormatter::new();
    let options = formatter.options_mut();
    options.set_first_operand_char_index(7);
    options.set_space_after_operand_separator(false);
    options.set_branch_leading_zeros(false);
    options.set_show_branch_size(false);
    let mut out = String::new();
    formatter.format(&insn, &mut out);
    Some(out)
}

/// Reads a little-endian field and sign-extends it, keeping at most its low 32 bits, which is
/// what the kernel's decoder stores as an instruction's immediate or displacement value.
fn read_signed(bytes: &[u8], field: Field) -> i32 {
    let at = field.offset as usize;
    let b = |i: usize| bytes.get(at + i).copied().unwrap_or(0);
    match field.size {
        1 => b(0) as i8 as i32,
        2 => i16::from_le_bytes([b(0), b(1)]) as i32,
        _ => i32::from_le_bytes([b(0), b(1), b(2), b(3)]),
    }
}

/// The opcodes with a `rel8`/`rel32` destination.
fn is_direct_branch(raw: &RawBytes) -> bool {
    match raw.op1 {
        0x70..=0x7f | 0xe0..=0xe3 | 0xe8 | 0xe9 | 0xeb => true,
        0x0f => matches!(raw.op2, 0x80..=0x8f),
        _ => false,
    }
}

/// The legacy prefixes (segment overrides, operand and address size, LOCK, REP/REPNE).
fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3
    )
}

/// An instruction's bytes split the way the kernel's decoder splits them.
#[derive(Debug)]
struct RawBytes {
    /// Up to four distinct legacy prefixes. Slot 3 holds the last prefix seen; if four
    /// distinct prefixes were present, the last one is swapped into slot 3.
    prefixes: [u8; 4],
    /// Number of distinct prefixes stored in `prefixes`.
    distinct: usize,
    /// Number of legacy prefix bytes, duplicates included.
    prefix_bytes: usize,
    /// The REX byte, or 0.
    rex: u8,
    /// A VEX or EVEX prefix follows (`c4`, `c5`, `62`).
    vex: bool,
    /// Offset of the first opcode byte (or of the VEX prefix).
    opcode_at: usize,
    /// Length of the opcode (1, or 2-3 after the `0f` escapes).
    opcode_len: usize,
    op1: u8,
    op2: u8,
    op3: u8,
}

impl RawBytes {
    fn parse(bytes: &[u8]) -> Option<RawBytes> {
        let mut prefixes = [0u8; 4];
        let mut distinct = 0;
        let mut i = 0;
        let mut last = 0u8;
        while let Some(&b) = bytes.get(i) {
            if !is_legacy_prefix(b) {
                break;
            }
            if !prefixes[..distinct].contains(&b) {
                if distinct == 4 {
                    // A fifth distinct prefix: the kernel's decoder stops here and takes it
                    // for the opcode.
                    break;
                }
                prefixes[distinct] = b;
                distinct += 1;
            }
            i += 1;
            last = b;
        }
        let prefix_bytes = i;
        if last != 0 && last != prefixes[3] {
            if prefixes[3] != 0 {
                let old = prefixes[3];
                for p in prefixes[..distinct].iter_mut() {
                    if *p == last {
                        *p = old;
                    }
                }
            }
            prefixes[3] = last;
        }

        let mut rex = 0;
        if let Some(&b @ 0x40..=0x4f) = bytes.get(i) {
            rex = b;
            i += 1;
        }
        let vex = matches!(bytes.get(i), Some(0xc4 | 0xc5 | 0x62));
        let opcode_at = i;
        let op1 = *bytes.get(i)?;
        let (mut op2, mut op3, mut opcode_len) = (0, 0, 1);
        if !vex && op1 == 0x0f {
            op2 = bytes.get(i + 1).copied().unwrap_or(0);
            opcode_len = 2;
            if op2 == 0x38 || op2 == 0x3a {
                op3 = bytes.get(i + 2).copied().unwrap_or(0);
                opcode_len = 3;
            }
        }
        Some(RawBytes {
            prefixes,
            distinct,
            prefix_bytes,
            rex,
            vex,
            opcode_at,
            opcode_len,
            op1,
            op2,
            op3,
        })
    }

    /// The last legacy prefix, which selects between opcode variants (`f3`, `f2`, `66`).
    fn last_prefix(&self) -> u8 {
        self.prefixes[3]
    }

    /// The first distinct legacy prefix.
    fn first_prefix(&self) -> u8 {
        self.prefixes[0]
    }

    fn has_prefix(&self, b: u8) -> bool {
        self.prefixes[..self.distinct].contains(&b) || self.prefixes[3] == b
    }

    fn rex_w(&self) -> bool {
        self.rex & 8 != 0
    }

    fn rex_bit(&self, mask: u8) -> u8 {
        if self.rex & mask != 0 {
            8
        } else {
            0
        }
    }
}

/// The ModRM and SIB fields, with the REX extension bits folded in (register numbers 0-15).
#[derive(Clone, Copy, Default)]
struct ModRm {
    byte: u8,
    mode: u8,
    reg: u8,
    rm: u8,
    sib_index: u8,
    sib_base: u8,
}

impl ModRm {
    fn parse(raw: &RawBytes, body: &[u8]) -> ModRm {
        let at = raw.opcode_at + raw.opcode_len;
        let Some(&byte) = body.get(at) else {
            return ModRm::default();
        };
        let mode = byte >> 6;
        let mut m = ModRm {
            byte,
            mode,
            reg: ((byte >> 3) & 7) + raw.rex_bit(4),
            rm: (byte & 7) + raw.rex_bit(1),
            sib_index: 0,
            sib_base: 0,
        };
        if mode != 3 && byte & 7 == 4 {
            if let Some(&sib) = body.get(at + 1) {
                m.sib_index = ((sib >> 3) & 7) + raw.rex_bit(2);
                m.sib_base = (sib & 7) + raw.rex_bit(1);
            }
        }
        m
    }

    fn is_mem(&self) -> bool {
        self.mode != 3
    }

    /// `rm` names `rbp`/`r13` with mode 0: no base register, a RIP-relative displacement.
    fn is_rip(&self, rm: u8) -> bool {
        rm & 7 == 5 && self.mode == 0
    }

    /// `rm` names `rsp`/`r12` in a memory operand: a SIB byte follows.
    fn has_sib(&self, rm: u8) -> bool {
        rm & 7 == 4 && self.is_mem()
    }

    /// The base of the address is `reg` with no index. With a SIB byte, base 5 in mode 0
    /// means "no base", so it never matches.
    fn rm_is(&self, rm: u8, reg: Reg) -> bool {
        let reg = reg.number();
        if self.has_sib(rm) {
            self.sib_base == reg && self.sib_index == 4 && (self.sib_base != 5 || self.mode != 0)
        } else {
            rm == reg
        }
    }

    /// A memory operand based on `reg` alone (displacement allowed).
    fn rm_is_mem(&self, rm: u8, reg: Reg) -> bool {
        self.is_mem() && !self.is_rip(rm) && self.rm_is(rm, reg)
    }

    /// The register operand `reg`.
    fn rm_is_reg(&self, reg: Reg) -> bool {
        self.mode == 3 && self.rm == reg.number()
    }
}

/// A register number from a decoded field (always 0-15).
fn reg(n: u8) -> Reg {
    Reg::new(n).expect("register fields are four bits")
}

/// Sets the kind, stack operations and warning of `insn`, the way objtool's x86 decoder does.
///
/// One arm per opcode, each checking its own conditions inside, so that an opcode never falls
/// through to a later arm by accident.
#[allow(clippy::collapsible_match)]
fn classify(
    raw: &RawBytes,
    body: &[u8],
    disp: i32,
    imm: i32,
    offset: u64,
    in_function: impl FnOnce(u64) -> bool,
    insn: &mut Instruction,
) {
    let m = ModRm::parse(raw, body);
    let rex_w = raw.rex_w();
    let rex_b = raw.rex_bit(1);
    let ops = &mut insn.stack_ops;
    let mut kind = InsnKind::Other;

    // `mov` to memory (0x88/0x89), shared by the store forms of 0x89 after its own checks.
    let store = |ops: &mut StackOps, rm: u8| {
        if !rex_w {
            return;
        }
        if m.rm_is_mem(rm, Reg::BP) {
            ops.push(StackOp::store(reg(m.reg), disp, Reg::BP));
        } else if m.rm_is_mem(rm, Reg::SP) {
            ops.push(StackOp::store(reg(m.reg), disp, Reg::SP));
        }
    };

    match raw.op1 {
        // add/sub %reg,%rsp: the amount is a register, unknown to the state.
        0x01 | 0x29 => {
            if rex_w && m.rm_is_reg(Reg::SP) {
                ops.push(StackOp::new(
                    Src::Add {
                        reg: reg(m.reg),
                        offset: 0,
                    },
                    Dest::Reg(Reg::SP),
                ));
            }
        }
        0x50..=0x57 => ops.push(StackOp::push(reg((raw.op1 & 7) + rex_b))),
        0x58..=0x5f => ops.push(StackOp::pop(reg((raw.op1 & 7) + rex_b))),
        0x68 | 0x6a => ops.push(StackOp::push_const()),
        0x70..=0x7f => kind = InsnKind::JumpConditional,
        // Group 1 with an immediate: only add, sub and and of %rsp, 64-bit forms only.
        0x80..=0x83 => {
            if rex_w && m.rm_is_reg(Reg::SP) {
                match m.reg & 7 {
                    0 => ops.push(StackOp::add_sp(imm)),
                    5 => ops.push(StackOp::add_sp(imm.wrapping_neg())),
                    4 => ops.push(StackOp::and_sp(imm)),
                    _ => {}
                }
            }
        }
        0x89 => {
            if !rex_w {
            } else if !m.is_mem() {
                ops.push(StackOp::mov(reg(m.reg), reg(m.rm)));
            } else if !m.is_rip(m.rm) {
                let mut rm = m.rm;
                // Only a SIB byte without an index is understood; its base stands for rm.
                let trivial_sib = if m.has_sib(rm) {
                    rm = m.sib_base;
                    m.sib_index == 4
                } else {
                    true
                };
                if trivial_sib {
                    if m.reg == Reg::SP.number() {
                        // mov %rsp,disp(%reg): a stack pointer saved to memory (the first
                        // step of a stack swizzle).
                        ops.push(StackOp::store(Reg::SP, disp, reg(rm)));
                    } else {
                        store(ops, rm);
                    }
                }
            }
        }
        0x88 => store(ops, m.rm),
        0x8b => {
            if rex_w {
                if m.rm_is_mem(m.rm, Reg::BP) {
                    ops.push(StackOp::load(disp, Reg::BP, reg(m.reg)));
                } else if m.rm_is_mem(m.rm, Reg::SP) {
                    ops.push(StackOp::load(disp, Reg::SP, reg(m.reg)));
                }
            }
        }
        0x8d => {
            if !m.is_mem() {
                insn.warning = Some(DecodeWarning::InvalidLea);
            } else if rex_w && !m.is_rip(m.rm) {
                let mut rm = m.rm;
                let trivial_sib = if m.has_sib(rm) {
                    rm = m.sib_base;
                    m.sib_index == 4
                } else {
                    true
                };
                if trivial_sib {
                    // lea (%src),%dst is a plain copy; with a displacement it is an add.
                    let src = if disp == 0 {
                        Src::Reg(reg(rm))
                    } else {
                        Src::Add {
                            reg: reg(rm),
                            offset: disp,
                        }
                    };
                    ops.push(StackOp::new(src, Dest::Reg(reg(m.reg))));
                }
            }
        }
        0x8f => ops.push(StackOp::pop_mem()),
        0x90 => kind = InsnKind::Nop,
        0x9c => ops.push(StackOp::pushf()),
        0x9d => ops.push(StackOp::popf()),
        0x0f => match raw.op2 {
            0x01 => match raw.last_prefix() {
                // eretu/erets (FRED) share clac's encoding behind a REP prefix.
                0xf2 | 0xf3 => {
                    if m.byte == 0xca {
                        kind = InsnKind::ContextSwitch;
                    }
                }
                _ => match m.byte {
                    0xca => kind = InsnKind::Clac,
                    0xcb => kind = InsnKind::Stac,
                    _ => {}
                },
            },
            0x80..=0x8f => kind = InsnKind::JumpConditional,
            // syscall, sysret, sysenter, sysexit
            0x05 | 0x07 | 0x34 | 0x35 => kind = InsnKind::ContextSwitch,
            // ud2, ud1
            0x0b | 0xb9 => kind = InsnKind::Bug,
            // prefetch group (treated as a NOP), long NOPs
            0x0d | 0x1f => kind = InsnKind::Nop,
            0x1e => {
                if raw.first_prefix() == 0xf3 && matches!(m.byte, 0xfa | 0xfb) {
                    kind = InsnKind::Endbr;
                }
            }
            0x38 => {
                if raw.op3 == 0xf8 && raw.prefix_bytes == 1 && raw.first_prefix() == 0xf2 {
                    insn.warning = Some(DecodeWarning::Enqcmd);
                }
            }
            // push %fs, push %gs
            0xa0 | 0xa8 => ops.push(StackOp::push_const()),
            // pop %fs, pop %gs
            0xa1 | 0xa9 => ops.push(StackOp::pop_mem()),
            _ => {}
        },
        0xc9 => {
            for op in StackOp::leave() {
                ops.push(op);
            }
        }
        0xcc => kind = InsnKind::Trap,
        0xe3 => kind = InsnKind::JumpConditional,
        0xe9 | 0xeb => kind = InsnKind::JumpUnconditional,
        0xc2 | 0xc3 => kind = InsnKind::Return,
        0xcf => {
            if in_function(offset) {
                // sync_core() executes an iret to the next instruction inside a normal
                // function: for the stack it pops the 5-word frame it built.
                ops.push(StackOp::add_sp(5 * 8));
            } else {
                kind = InsnKind::ContextSwitch;
            }
        }
        // lret
        0xca | 0xcb => kind = InsnKind::ContextSwitch,
        // loopne, loope, loop
        0xe0..=0xe2 => kind = InsnKind::JumpConditional,
        0xe8 => {
            kind = InsnKind::Call;
            // The return address the call pushes. Later stages drop this for calls to other
            // functions (the callee pops it) and keep it for intra-function calls.
            ops.push(StackOp::push_const());
        }
        0xfc => kind = InsnKind::Cld,
        0xfd => kind = InsnKind::Std,
        0xff => match m.reg {
            2 | 3 => {
                kind = InsnKind::CallDynamic;
                if raw.has_prefix(0x3e) {
                    insn.warning = Some(DecodeWarning::Notrack);
                }
            }
            4 => {
                kind = InsnKind::JumpDynamic;
                if raw.has_prefix(0x3e) {
                    insn.warning = Some(DecodeWarning::Notrack);
                }
            }
            // ljmp *mem
            5 => kind = InsnKind::ContextSwitch,
            6 => ops.push(StackOp::push_const()),
            _ => {}
        },
        _ => {}
    }
    insn.kind = kind;
}
