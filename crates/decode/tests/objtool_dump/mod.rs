//! Formats decoded instructions the way a debugging dump of objtool's decoder prints them:
//! `SECTION OFFSET LEN KIND IMMEDIATE OPS...`, kinds and operations as objtool's enum numbers
//! (`insn_type`, `op_src_type`, `op_dest_type`). Shared by the `decode_dump` example and the
//! real-module test.

#![allow(dead_code)]

use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SymbolFlags};
use orc_decode::{Dest, InsnKind, SectionDecoder, Src};

pub fn kind_number(kind: InsnKind) -> u8 {
    match kind {
        InsnKind::JumpConditional => 0,
        InsnKind::JumpUnconditional => 1,
        InsnKind::JumpDynamic => 2,
        InsnKind::JumpDynamicConditional => 3,
        InsnKind::Call => 4,
        InsnKind::CallDynamic => 5,
        InsnKind::Return => 6,
        InsnKind::ContextSwitch => 7,
        InsnKind::Bug => 8,
        InsnKind::Nop => 9,
        InsnKind::Stac => 10,
        InsnKind::Clac => 11,
        InsnKind::Std => 12,
        InsnKind::Cld => 13,
        InsnKind::Trap => 14,
        InsnKind::Endbr => 15,
        InsnKind::Other => 16,
    }
}

pub fn src_fields(src: Src) -> (u8, u8, i32) {
    match src {
        Src::Reg(r) => (0, r.number(), 0),
        Src::RegIndirect { reg, offset } => (1, reg.number(), offset),
        Src::Const => (2, 0, 0),
        Src::Pop => (3, 0, 0),
        Src::Popf => (4, 0, 0),
        Src::Add { reg, offset } => (5, reg.number(), offset),
        Src::And { reg, offset } => (6, reg.number(), offset),
    }
}

pub fn dest_fields(dest: Dest) -> (u8, u8, i32) {
    match dest {
        Dest::Reg(r) => (0, r.number(), 0),
        Dest::RegIndirect { reg, offset } => (1, reg.number(), offset),
        Dest::Mem => (2, 0, 0),
        Dest::Push => (3, 0, 0),
        Dest::Pushf => (4, 0, 0),
    }
}

/// The dump of every executable section of an ELF object, one line per instruction; a
/// section that fails to decode gives a line `SECTION error MESSAGE`.
pub fn dump(data: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    use std::fmt::Write;
    let file = object::File::parse(data)?;
    let mut out = String::new();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags, .. } = section.flags() else {
            continue;
        };
        if !sh_flags.contains(object::elf::SHF_EXECINSTR) {
            continue;
        }
        let name = section.name()?;
        let code = section.data()?;
        let funcs: Vec<(u64, u64)> = file
            .symbols()
            .filter(|s| s.section_index() == Some(section.index()))
            .filter(|s| matches!(s.flags(), SymbolFlags::Elf { st_info, .. } if st_info.st_type() == object::elf::STT_FUNC))
            .map(|s| (s.address(), s.address() + s.size()))
            .collect();
        let in_function = |off: u64| funcs.iter().any(|&(a, b)| a <= off && off < b);
        let insns = match SectionDecoder::new(code).decode_all(in_function) {
            Ok(insns) => insns,
            Err(e) => {
                writeln!(out, "{name} error {e}")?;
                continue;
            }
        };
        for insn in insns {
            write!(
                out,
                "{name} {:x} {} {} {}",
                insn.offset,
                insn.len,
                kind_number(insn.kind),
                insn.immediate
            )?;
            for op in insn.stack_ops.iter() {
                let (st, sr, so) = src_fields(op.src);
                let (dt, dr, doff) = dest_fields(op.dest);
                write!(out, " {st},{sr},{so}>{dt},{dr},{doff}")?;
            }
            out.push('\n');
        }
    }
    Ok(out)
}
