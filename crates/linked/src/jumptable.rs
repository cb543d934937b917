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
//! `ja`/`jbe`: N+1 entries; `jae`/`jb`: N), also on the register the index was copied from
//! or on the memory it was loaded from (`cmpl $N,4(%r12); ja ...; mov 4(%r12),%eax`).
//! Without one, entries are read until the first that does not point into the function.
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
        if !matches!(w.mnemonic(), Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsxd | Mnemonic::Movsx) {
            return None;
        }
        match w.op1_kind() {
            OpKind::Register => bounds_check(w.op1_register().full_register(), &prior[..at]),
            // Or on the memory the index is loaded from (`cmpl $0x13,4(%r12); ja ...;
            // mov 4(%r12),%eax`): without it the table would be read on into the next one.
            OpKind::Memory => memory_bounds_check(w, &prior[..at]),
            _ => None,
        }
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

/// The address the last write of `reg` before `end` (decoding the function linearly from its
/// start) sets it to, if that write is a `lea T(%rip),%reg`: the jump uses the register as its
/// table's base on every path, so earlier writes (`mov %rsi,%r12` for `argv` in ssh's `main`,
/// before the register is reused) are overwritten by then. A `pop` of the register is an
/// early return's epilogue restoring the caller's value, not a write the table's code can see
/// (ssh: `pop %rbp; ret` laid out before `lea T(%rip),%rbp`).
fn hoisted_lea(image: &Image<'_>, start: u64, end: u64, reg: Register) -> Option<u64> {
    let bytes = image.bytes_from(start)?;
    let len = usize::try_from(end.checked_sub(start)?).ok()?;
    let mut d = Decoder::with_ip(64, bytes.get(..len)?, start, DecoderOptions::NONE);
    let mut last = None;
    while d.can_decode() {
        let i = d.decode();
        if i.is_invalid() {
            return None;
        }
        let writes = i.op_count() > 0
            && i.op0_kind() == OpKind::Register
            && i.op0_register().full_register() == reg
            && !matches!(i.mnemonic(), Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Push | Mnemonic::Pop);
        if writes {
            last = Some((i.mnemonic() == Mnemonic::Lea && i.is_ip_rel_memory_operand()).then(|| i.ip_rel_memory_address()));
        }
    }
    last.flatten()
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

/// The number of entries a `cmp $N,mem` on the same memory operand `load` reads from allows,
/// with its base register not written between the two.
fn memory_bounds_check(load: &Instruction, prior: &[Instruction]) -> Option<u64> {
    let same_memory = |i: &Instruction| {
        i.memory_base() == load.memory_base()
            && i.memory_index() == load.memory_index()
            && i.memory_index_scale() == load.memory_index_scale()
            && i.memory_displacement64() == load.memory_displacement64()
            && i.memory_segment() == load.memory_segment()
    };
    let (at, cmp) = prior.iter().enumerate().rev().find(|(_, i)| i.mnemonic() == Mnemonic::Cmp && i.op0_kind() == OpKind::Memory && same_memory(i))?;
    let base = load.memory_base().full_register();
    if base != Register::None && writer(base, &prior[at + 1..], prior.len() - at - 1).is_some() {
        return None;
    }
    immediate_bound(cmp, &prior[at + 1..])
}

/// The entries a `cmp` with an immediate followed by the first conditional jump in `after`
/// allows.
fn immediate_bound(cmp: &Instruction, after: &[Instruction]) -> Option<u64> {
    if !is_immediate(cmp.op1_kind()) {
        return None;
    }
    let n = cmp.try_immediate(1).ok()?;
    let jcc = after.iter().find(|i| i.condition_code() != ConditionCode::None)?;
    match jcc.condition_code() {
        ConditionCode::a | ConditionCode::be => n.checked_add(1),
        ConditionCode::ae | ConditionCode::b => Some(n),
        _ => None,
    }
}

/// The number of entries the bounds check before the load allows: the last `cmp $N,%idx`
/// (any width of the index register) followed by an unsigned conditional jump.
fn bounds_check(index: Register, prior: &[Instruction]) -> Option<u64> {
    let (at, cmp) = prior
        .iter()
        .enumerate()
        .rev()
        .find(|(_, i)| i.mnemonic() == Mnemonic::Cmp && i.op0_kind() == OpKind::Register && i.op0_register().full_register() == index && is_immediate(i.op1_kind()))?;
    immediate_bound(cmp, &prior[at + 1..])
}

/// Any immediate operand kind (`cmp $0x2a,%ax` is `Immediate8to16`).
fn is_immediate(k: OpKind) -> bool {
    matches!(k, OpKind::Immediate8 | OpKind::Immediate8to16 | OpKind::Immediate8to32 | OpKind::Immediate8to64 | OpKind::Immediate16 | OpKind::Immediate32 | OpKind::Immediate32to64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orc_elf::ElfFile;

    /// Resolves the jump at `jmp` with the instructions decoded linearly from `from` as the
    /// window (a straight-line block ending in the jump).
    fn resolve_after(image: &Image<'_>, from: u64, jmp: u64) -> Resolution {
        let mut window = Vec::new();
        let mut a = from;
        while a < jmp {
            let i = decode(image, a).expect("decodable block");
            window.push(a);
            a += i.len() as u64;
        }
        assert_eq!(a, jmp, "the block ends at the jump");
        resolve(image, jmp, &window, from, |_| true)
    }

    /// The distinct targets of the `n` relative entries at `table`.
    fn relative_targets(image: &Image<'_>, table: u64, n: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for i in 0..n {
            let t = table.wrapping_add(image.read_i32(table + 4 * i).unwrap() as i64 as u64);
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// binutils 2.40's readelf (Debian 12): `cmpl $0x13,0x4(%r12); ja ...; mov 0x4(%r12),%eax;
    /// lea T(%rip),%rdx; movslq (%rdx,%rax,4),%rax; add %rdx,%rax; jmp *%rax`. The next table
    /// starts right after the 20 entries; read on, its entries (relative to another base) gave
    /// targets inside instructions and a cold fragment a wrong state.
    #[test]
    fn bound_checked_on_the_memory_the_index_is_loaded_from() {
        let Ok(bytes) = std::fs::read("/usr/bin/x86_64-linux-gnu-readelf") else { return };
        let elf = ElfFile::parse(&bytes).unwrap();
        let image = Image::new(&elf).unwrap();
        let want = [0x41, 0x83, 0x7c, 0x24, 0x04, 0x13];
        if image.bytes_from(0x48ba0).is_none_or(|b| !b.starts_with(&want)) {
            return; // another build
        }
        let Resolution::Table(targets) = resolve_after(&image, 0x48ba0, 0x48bbf) else { panic!("not a table") };
        assert_eq!(targets, relative_targets(&image, 0x7e834, 20));
    }

    /// OpenSSH 9.2's ssh (Debian 12): the table base `lea T(%rip),%rbp` is set once for the
    /// whole function, and an early return's `pop %rbp` comes before it in the code.
    #[test]
    fn hoisted_table_base_survives_an_epilogue_pop() {
        let Ok(bytes) = std::fs::read("/usr/bin/ssh") else { return };
        let elf = ElfFile::parse(&bytes).unwrap();
        let image = Image::new(&elf).unwrap();
        let lea = [0x48, 0x8d, 0x2d, 0x4a, 0xb7, 0x05, 0x00];
        if image.bytes_from(0x761ef).is_none_or(|b| !b.starts_with(&lea)) {
            return; // another build
        }
        let mut window = Vec::new();
        let mut a = 0x76222;
        while a < 0x7623b {
            window.push(a);
            a += decode(&image, a).unwrap().len() as u64;
        }
        let Resolution::Table(targets) = resolve(&image, 0x7623b, &window, 0x76090, |_| true) else { panic!("not a table") };
        assert_eq!(targets, relative_targets(&image, 0xd1940, 0x82));
    }

    /// ssh's `main`: `%r12` holds `argv` first, then `lea T(%rip),%r12` makes it the base of
    /// the option `switch` (`cmp $0x48,%eax; ja; movslq (%r12,%rax,4),%rax; add %r12,%rax`).
    #[test]
    fn hoisted_table_base_after_the_register_is_reused() {
        let Ok(bytes) = std::fs::read("/usr/bin/ssh") else { return };
        let elf = ElfFile::parse(&bytes).unwrap();
        let image = Image::new(&elf).unwrap();
        let lea = [0x4c, 0x8d, 0x25, 0x9b, 0x5f, 0x0b, 0x00];
        if image.bytes_from(0xcb5e).is_none_or(|b| !b.starts_with(&lea)) {
            return; // another build
        }
        let mut window = Vec::new();
        let mut a = 0xcbc6;
        while a < 0xcbd8 {
            window.push(a);
            a += decode(&image, a).unwrap().len() as u64;
        }
        let Resolution::Table(targets) = resolve(&image, 0xcbd8, &window, 0xc9b0, |_| true) else { panic!("not a table") };
        assert_eq!(targets, relative_targets(&image, 0xc2b00, 0x49));
    }

    /// `switch` on an `unsigned short`: GCC checks the bound with `cmp $N,%ax`, whose
    /// immediate is `Immediate8to16`; the table must stop at N+1 entries although the next
    /// table's entries also point into the function.
    #[test]
    fn bound_checked_on_a_16_bit_register() {
        let dir = std::env::temp_dir().join(format!("orc-linked-jumptable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("t.c");
        let out = dir.join("t.so");
        let mut c = String::from("int sink(int);\n");
        for (f, n) in [("first", 43), ("second", 40)] {
            c += &format!("int {f}(unsigned short x) {{ switch ((unsigned short)(x - 8)) {{\n");
            for k in 0..n {
                c += &format!("case {k}: return sink({});\n", k * 7 + 1);
            }
            c += "default: return 0; } }\n";
        }
        std::fs::write(&src, c).unwrap();
        let Ok(status) = std::process::Command::new("gcc").args(["-O2", "-fPIC", "-shared", "-o"]).arg(&out).arg(&src).status() else { return };
        assert!(status.success());
        let bytes = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let elf = ElfFile::parse(&bytes).unwrap();
        let image = Image::new(&elf).unwrap();
        let start = elf.symbols().flatten().find(|s| s.name == "first").unwrap().value;
        // The block from the 16-bit compare to the `jmp *%reg`.
        let code = image.bytes_from(start).unwrap();
        let mut d = Decoder::with_ip(64, &code[..code.len().min(256)], start, DecoderOptions::NONE);
        let (mut cmp, mut jmp) = (None, None);
        for i in d.iter() {
            if cmp.is_none() && i.mnemonic() == Mnemonic::Cmp && i.op0_kind() == OpKind::Register && i.op0_register().size() == 2 {
                assert_eq!(i.op1_kind(), OpKind::Immediate8to16, "the shape this test is for");
                cmp = Some(i.ip());
            }
            if cmp.is_some() && i.mnemonic() == Mnemonic::Jmp && i.op0_kind() == OpKind::Register {
                jmp = Some(i.ip());
                break;
            }
        }
        let (Some(cmp), Some(jmp)) = (cmp, jmp) else { panic!("no 16-bit bounds check before a jump table") };
        let Resolution::Table(targets) = resolve_after(&image, cmp, jmp) else { panic!("not a table") };
        // 43 cases, all distinct, none of the second table's.
        assert_eq!(targets.len(), 43);
    }
}
