//! Indirect jumps: where a `jmp *...` can go.
//!
//! The shapes compilers emit for `switch` statements, matched on the instructions the path
//! executed just before the jump (a window of the last few, so that the bounds check of a
//! preceding block is seen too):
//!
//! - PIE/PIC (GCC and Clang): `lea T(%rip),%rX; movslq (%rX,%rI,4),%rY; add %rX,%rY;
//!   jmp *%rY` (or the `add` the other way round): `i32` entries relative to `T`.
//! - Position-dependent: `jmp *T(,%rI,8)`, or `mov T(,%rI,8),%rY; jmp *%rY`: absolute
//!   entries; with `lea T(%rip),%rB; jmp *(%rB,%rI,8)` the same through a base register.
//!   Entries of a PIE's pointer table are read as relocated (`R_X86_64_RELATIVE`).
//! - `notrack` (`3e`) forms of all of these.
//!
//! The table's length comes from the bounds check on the index register (`cmp $N,%eI` then
//! `ja`/`jbe`: N+1 entries; `jae`/`jb`: N). Without one, entries are read until the first
//! that does not point into the function.
//!
//! A `jmp *slot(%rip)` is a jump through a pointer (a tail call through the GOT).

use iced_x86::{ConditionCode, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::image::Image;

/// What an indirect jump does.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) enum Resolution {
    /// A jump table: its targets (distinct, in table order).
    Table(Vec<u64>),
    /// A jump through the pointer at this address.
    Slot(u64),
    /// Not a shape this module knows.
    Unresolved,
}

/// Entries read from a table without a bounds check, at most.
const UNBOUNDED_LIMIT: u64 = 1024;
/// Entries read from a bounded table, at most.
const BOUNDED_LIMIT: u64 = 1 << 16;

pub(crate) fn decode(image: &Image<'_>, addr: u64) -> Option<Instruction> {
    let bytes = image.bytes_from(addr)?;
    let bytes = &bytes[..bytes.len().min(16)];
    let mut d = Decoder::with_ip(64, bytes, addr, DecoderOptions::NONE);
    let insn = d.decode();
    (!insn.is_invalid()).then_some(insn)
}

/// The table kinds.
#[derive(Clone, Copy)]
enum Entries {
    /// `i32` relative to the table.
    Relative,
    /// 64-bit pointers.
    Absolute,
}

/// Resolves the indirect jump at `jmp`, given the addresses of the instructions executed
/// before it (oldest first), the function's start and which addresses are inside the
/// function.
pub(crate) fn resolve(image: &Image<'_>, jmp: u64, window: &[u64], func_start: u64, in_func: impl Fn(u64) -> bool) -> Resolution {
    let Some(j) = decode(image, jmp) else { return Resolution::Unresolved };
    let prior: Vec<Instruction> = window.iter().filter_map(|&a| decode(image, a)).collect();
    let hoisted = |reg: Register| hoisted_lea(image, func_start, jmp, reg);
    let found = match j.op0_kind() {
        OpKind::Memory if j.is_ip_rel_memory_operand() => return Resolution::Slot(j.ip_rel_memory_address()),
        OpKind::Memory => pointer_load(&j, &prior, prior.len(), &hoisted),
        OpKind::Register => from_register(j.op0_register().full_register(), &prior, &hoisted),
        _ => None,
    };
    let Some((table, index, kind, before)) = found else { return Resolution::Unresolved };
    // The check may be on the register the index was copied from (`cmp $6,%edi; ja ...;
    // mov %edi,%eax`, `cmp $0x3f,%dl; ja ...; movzbl %dl,%eax`).
    let bound = bounds_check(index, &prior[..before]).or_else(|| {
        let (at, w) = writer(index, &prior, before)?;
        (matches!(w.mnemonic(), Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsxd | Mnemonic::Movsx) && w.op1_kind() == OpKind::Register)
            .then(|| bounds_check(w.op1_register().full_register(), &prior[..at]))
            .flatten()
    });
    let limit = bound.unwrap_or(UNBOUNDED_LIMIT).min(BOUNDED_LIMIT);
    let mut targets = Vec::new();
    for i in 0..limit {
        let target = match kind {
            Entries::Relative => {
                let Some(v) = table.checked_add(i * 4).and_then(|a| image.read_i32(a)) else { break };
                table.wrapping_add(v as i64 as u64)
            }
            Entries::Absolute => match table.checked_add(i * 8).and_then(|a| image.read_pointer(a)) {
                Some(v) => v,
                None => break,
            },
        };
        if bound.is_none() && !in_func(target) {
            break;
        }
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        Resolution::Unresolved
    } else {
        Resolution::Table(targets)
    }
}

/// The last instruction in `prior[..before]` that writes `reg`, with its position.
fn writer(reg: Register, prior: &[Instruction], before: usize) -> Option<(usize, &Instruction)> {
    prior[..before].iter().enumerate().rev().find(|(_, i)| {
        i.op_count() > 0
            && i.op0_kind() == OpKind::Register
            && i.op0_register().full_register() == reg
            && !matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push)
    })
}

/// `lea T(%rip),%reg` as the last write of `reg` before `before`: `T`. If the window has no
/// write of `reg` at all, `hoisted` may know it (a table address kept in a callee-saved
/// register for the whole function).
fn rip_lea(reg: Register, prior: &[Instruction], before: usize, hoisted: &dyn Fn(Register) -> Option<u64>) -> Option<u64> {
    match writer(reg, prior, before) {
        Some((_, w)) => (w.mnemonic() == Mnemonic::Lea && w.is_ip_rel_memory_operand()).then(|| w.ip_rel_memory_address()),
        None => hoisted(reg),
    }
}

/// The address every write of `reg` between the function's start and `end` sets it to, if
/// they are all the same `lea T(%rip),%reg` (decoding the function linearly).
fn hoisted_lea(image: &Image<'_>, start: u64, end: u64, reg: Register) -> Option<u64> {
    let bytes = image.bytes_from(start)?;
    let len = usize::try_from(end.checked_sub(start)?).ok()?;
    let mut d = Decoder::with_ip(64, bytes.get(..len)?, start, DecoderOptions::NONE);
    let mut found = None;
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            return None;
        }
        let writes = i.op_count() > 0
            && i.op0_kind() == OpKind::Register
            && i.op0_register().full_register() == reg
            && !matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push);
        if writes {
            if i.mnemonic() != Mnemonic::Lea || !i.is_ip_rel_memory_operand() {
                return None;
            }
            let t = i.ip_rel_memory_address();
            if found.is_some_and(|f| f != t) {
                return None;
            }
            found = Some(t);
        }
    }
    found
}

type Found = (u64, Register, Entries, usize);

/// A load of a pointer from a table, `[base + index*8 + disp]`, as the jump's own operand or
/// as the instruction at `prior[at]`.
fn pointer_load(m: &Instruction, prior: &[Instruction], at: usize, hoisted: &dyn Fn(Register) -> Option<u64>) -> Option<Found> {
    if m.memory_index_scale() != 8 || m.memory_index() == Register::None {
        return None;
    }
    let index = m.memory_index().full_register();
    let disp = m.memory_displacement64();
    let table = match m.memory_base() {
        Register::None => disp,
        base => rip_lea(base.full_register(), prior, at, hoisted)?.wrapping_add(disp),
    };
    Some((table, index, Entries::Absolute, at))
}

/// The table behind `jmp *%reg`.
fn from_register(reg: Register, prior: &[Instruction], hoisted: &dyn Fn(Register) -> Option<u64>) -> Option<Found> {
    let (at, w) = writer(reg, prior, prior.len())?;
    match w.mnemonic() {
        Mnemonic::Mov if w.op1_kind() == OpKind::Memory => pointer_load(w, prior, at, hoisted),
        Mnemonic::Add if w.op1_kind() == OpKind::Register => {
            let other = w.op1_register().full_register();
            // One of the two holds the loaded entry, the other the table address.
            for (loaded, base) in [(reg, other), (other, reg)] {
                let Some((m_at, m)) = writer(loaded, prior, at) else { continue };
                if m.mnemonic() != Mnemonic::Movsxd || m.op1_kind() != OpKind::Memory || m.memory_index_scale() != 4 {
                    continue;
                }
                if m.memory_base().full_register() != base || m.memory_displacement64() != 0 {
                    continue;
                }
                let Some(table) = rip_lea(base, prior, at, hoisted) else { continue };
                return Some((table, m.memory_index().full_register(), Entries::Relative, m_at));
            }
            None
        }
        _ => None,
    }
}

/// The number of entries the bounds check before the load allows: the last `cmp $N,%idx`
/// (any width of the index register) followed by an unsigned conditional jump.
fn bounds_check(index: Register, prior: &[Instruction]) -> Option<u64> {
    let (at, cmp) = prior.iter().enumerate().rev().find(|(_, i)| {
        i.mnemonic() == Mnemonic::Cmp
            && i.op0_kind() == OpKind::Register
            && i.op0_register().full_register() == index
            && matches!(i.op1_kind(), OpKind::Immediate8 | OpKind::Immediate8to32 | OpKind::Immediate8to64 | OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate16)
    })?;
    let n = cmp.try_immediate(1).ok()?;
    let jcc = prior[at + 1..].iter().find(|i| i.condition_code() != ConditionCode::None)?;
    match jcc.condition_code() {
        ConditionCode::a | ConditionCode::be => n.checked_add(1),
        ConditionCode::ae | ConditionCode::b => Some(n),
        _ => None,
    }
}
