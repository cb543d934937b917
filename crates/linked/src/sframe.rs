//! SFrame v3 tables for linked files: the combined ORC table, plus the CFI rows ORC cannot
//! express, as the functions and rows `orc-sframe` writes.
//!
//! Every row of the combined table ([`crate::generate`]) that is not UNDEFINED becomes an SFrame
//! row with the same meaning ([`rule_of_entry`]). Where that table is UNDEFINED, the compiler's
//! CFI may still say something SFrame v3 can hold and ORC cannot ([`cfi_rule`]): a CFA on any
//! general register (ld.so's lazy-binding trampoline keeps it in `%rbx`), a CFA loaded from
//! memory (`DW_OP_bregN; DW_OP_deref`), offsets beyond 16 bits (python3.11's 64 KiB frame),
//! a return address or frame pointer held in a register (glibc's `__longjmp` after it has
//! loaded the target's `%rsp`, `%rbp` and `%rip` into `%r8`, `%r9` and `%rdx`). Those rows fill
//! the gaps. The unwinder of `verify-exec --sframe` walks the section this module makes, read
//! back from its bytes, so what is proved is what is written.
//!
//! Functions of the section are the maximal runs of covered addresses (adjacent functions with
//! no gap between them share one FDE), cut where a run would need more than 65,535 rows or
//! 64 KiB, and around signal trampolines, whose FDE carries the signal flag.

use gimli::{BaseAddresses, CfaRule, CieOrFde, EhFrame, LittleEndian, RegisterRule, UnwindContext, UnwindSection, X86_64};
use orc_elf::ElfFile;
use orc_format::{Entry, EntryType, Layout, Reg};
use orc_sframe::write::Function;
use orc_sframe::{dwarf, Cfa, Row, Rule, Saved};

use crate::{LinkedError, LinkedTable, Source};

/// Offsets of three fields of `struct sigcontext` (ORC's REGS entry of a signal trampoline
/// points at it: `%rsp + 40`, the `uc_mcontext` of the `ucontext` at `%rsp`).
const SIGCONTEXT_RBP: i32 = 80;
const SIGCONTEXT_RSP: i32 = 120;
const SIGCONTEXT_RIP: i32 = 128;

/// An SFrame table for one linked file.
#[derive(Clone, Debug, Default)]
pub struct SframeTable {
    /// The functions (FDEs) with their rows, sorted by address.
    pub functions: Vec<Function>,
    /// Where the rows came from.
    pub stats: SframeStats,
}

/// Counts of how a table was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SframeStats {
    /// Rows from the combined ORC table.
    pub from_orc: usize,
    /// Rows from CFI that ORC could not express, filling UNDEFINED gaps.
    pub from_cfi: usize,
    /// CFI rows SFrame cannot express either (left uncovered).
    pub cfi_unexpressible: usize,
    /// FDEs that are flexible.
    pub flexible_fdes: usize,
}

/// The SFrame rule of an ORC entry; `None` for UNDEFINED or a shape SFrame has no words for.
pub fn rule_of_entry(e: &Entry) -> Option<Rule> {
    let reg = |r: Reg| match r {
        Reg::SP => Some(dwarf::RSP),
        Reg::BP => Some(dwarf::RBP),
        Reg::DX => Some(dwarf::RDX),
        Reg::DI => Some(dwarf::RDI),
        Reg::R10 => Some(dwarf::R10),
        Reg::R13 => Some(dwarf::R8 + 5),
        Reg::AX => Some(dwarf::RAX),
        _ => None,
    };
    let off = i32::from(e.sp_offset);
    match e.kind {
        EntryType::EndOfStack => Some(Rule::Outermost),
        EntryType::Call => {
            let cfa = match e.sp_reg {
                Reg::BP_INDIRECT => Cfa::Deref { reg: dwarf::RBP, offset: off },
                r => Cfa::Reg { reg: reg(r)?, offset: off },
            };
            let fp = match e.bp_reg {
                Reg::UNDEFINED => Saved::Default,
                Reg::PREV_SP => Saved::AtCfa(i32::from(e.bp_offset)),
                Reg::BP => Saved::Deref { reg: dwarf::RBP, offset: i32::from(e.bp_offset) },
                _ => return None,
            };
            Some(Rule::Frame { cfa, ra: Saved::Default, fp })
        }
        // A signal trampoline: the interrupted registers are in the sigcontext at `%rsp + off`.
        EntryType::Regs if e.sp_reg == Reg::SP => {
            let at = |field: i32| Saved::Deref { reg: dwarf::RSP, offset: off + field };
            Some(Rule::Frame { cfa: Cfa::Deref { reg: dwarf::RSP, offset: off + SIGCONTEXT_RSP }, ra: at(SIGCONTEXT_RIP), fp: at(SIGCONTEXT_RBP) })
        }
        _ => None,
    }
}

/// `(reg, offset)` if `expr` is exactly `DW_OP_bregN offset` followed by `tail`.
fn breg_then(expr: &[u8], tail: &[u8]) -> Option<(u8, i32)> {
    let (&op, rest) = expr.split_first()?;
    let reg = op.checked_sub(gimli::constants::DW_OP_breg0.0)?;
    if reg > dwarf::R15 {
        return None;
    }
    let mut r = gimli::EndianSlice::new(rest, LittleEndian);
    let value = gimli::leb128::read::signed(&mut r).ok()?;
    (r.slice() == tail).then_some((reg, i32::try_from(value).ok()?))
}

fn gpr(r: gimli::Register) -> Option<u8> {
    u8::try_from(r.0).ok().filter(|&r| r <= dwarf::R15)
}

/// What SFrame can say for one CFI row (`None`: nothing it can hold).
pub fn cfi_rule(section: &EhFrame<gimli::EndianSlice<'_, LittleEndian>>, row: &gimli::UnwindTableRow<usize>) -> Option<Rule> {
    let expr_bytes = |e: gimli::UnwindExpression<usize>| e.get(section).ok().map(|x| x.0.slice());
    let ra = match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return Some(Rule::Outermost),
        None | Some(RegisterRule::Offset(-8)) => Saved::Default,
        Some(RegisterRule::Offset(k)) => Saved::AtCfa(i32::try_from(k).ok()?),
        Some(RegisterRule::Register(r)) => Saved::Reg { reg: gpr(r)?, offset: 0 },
        Some(_) => return None,
    };
    let dwarf_cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => Cfa::Reg { reg: gpr(*register)?, offset: i32::try_from(*offset).ok()? },
        CfaRule::Expression(e) => {
            let (reg, offset) = breg_then(expr_bytes(*e)?, &[gimli::constants::DW_OP_deref.0])?;
            Cfa::Deref { reg, offset }
        }
    };
    // SFrame's CFA is the caller's stack pointer. DWARF's is usually the same, but a rule for
    // %rsp itself (glibc's __longjmp: `%rsp` is in `%r8`) says where the caller's is.
    let cfa = match row.register(X86_64::RSP) {
        None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => dwarf_cfa,
        Some(RegisterRule::Register(r)) => Cfa::Reg { reg: gpr(r)?, offset: 0 },
        Some(RegisterRule::ValOffset(0)) => dwarf_cfa,
        Some(_) => return None,
    };
    if cfa != dwarf_cfa && matches!(ra, Saved::AtCfa(_)) {
        return None;
    }
    let fp = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => Saved::Default,
        // Popped but not restored (GCC leaves out `.cfi_restore`): %rbp is the caller's again.
        Some(RegisterRule::Offset(k)) if matches!(cfa, Cfa::Reg { reg: dwarf::RSP, offset } if k < -i64::from(offset)) => Saved::Default,
        Some(RegisterRule::Offset(k)) if cfa == dwarf_cfa => Saved::AtCfa(i32::try_from(k).ok()?),
        Some(RegisterRule::Register(r)) => Saved::Reg { reg: gpr(r)?, offset: 0 },
        Some(RegisterRule::Expression(e)) => {
            let (reg, offset) = breg_then(expr_bytes(e)?, &[])?;
            Saved::Deref { reg, offset }
        }
        Some(_) => return None,
    };
    Some(Rule::Frame { cfa, ra, fp })
}

/// A CFI row's address range and what SFrame can say there.
struct CfiSpan {
    start: u64,
    end: u64,
    rule: Option<Rule>,
}

/// Every CFI row of `.eh_frame`, sorted by start (signal trampolines are taken from the ORC
/// table, which has them already).
fn cfi_spans(elf: &ElfFile<'_>) -> Result<Vec<CfiSpan>, LinkedError> {
    let Some(sec) = elf.section_by_name(".eh_frame")? else { return Ok(Vec::new()) };
    let text = elf.section_by_name(".text")?.map_or(0, |s| s.address);
    let mut section = EhFrame::new(sec.data, LittleEndian);
    section.set_address_size(8);
    let bases = BaseAddresses::default().set_eh_frame(sec.address).set_text(text);
    let mut ctx = UnwindContext::new();
    let mut out = Vec::new();
    let mut entries = section.entries(&bases);
    while let Some(entry) = entries.next().map_err(|e| LinkedError::EhFrame(e.to_string()))? {
        let CieOrFde::Fde(partial) = entry else { continue };
        let Ok(fde) = partial.parse(EhFrame::cie_from_offset) else { continue };
        if fde.is_signal_trampoline() {
            continue;
        }
        let Ok(mut table) = fde.rows(&section, &bases, &mut ctx) else { continue };
        let mark = out.len();
        loop {
            match table.next_row() {
                Ok(Some(row)) => out.push(CfiSpan { start: row.start_address(), end: row.end_address(), rule: cfi_rule(&section, row) }),
                Ok(None) => break,
                Err(_) => {
                    out.truncate(mark);
                    break;
                }
            }
        }
    }
    out.sort_by_key(|s| s.start);
    Ok(out)
}

/// One row of the merged table: from `addr` on, `rule` (`None`: not covered), `signal` for a
/// signal trampoline's row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Merged {
    addr: u64,
    rule: Option<Rule>,
    signal: bool,
}

/// Makes the SFrame table of an executable or shared library.
pub fn generate(elf: &ElfFile<'_>) -> Result<SframeTable, LinkedError> {
    let orc = crate::generate(elf, Source::Combined)?;
    let mut cfi = cfi_spans(elf)?;
    let image = crate::image::Image::new(elf)?;
    stack_switch_tails(&orc, &mut cfi, |addr| image.bytes_from(addr));
    Ok(from_parts(&orc, &cfi))
}

/// The DWARF number of a 64-bit general register of iced-x86.
fn dwarf_of(r: iced_x86::Register) -> Option<u8> {
    use iced_x86::Register::*;
    Some(match r.full_register() {
        RAX => dwarf::RAX,
        RDX => dwarf::RDX,
        RCX => dwarf::RCX,
        RBX => dwarf::RBX,
        RSI => dwarf::RSI,
        RDI => dwarf::RDI,
        RBP => dwarf::RBP,
        RSP => dwarf::RSP,
        R8 => 8,
        R9 => 9,
        R10 => 10,
        R11 => 11,
        R12 => 12,
        R13 => 13,
        R14 => 14,
        R15 => 15,
        _ => return Option::None,
    })
}

/// The longest tail this looks at, in instructions.
const TAIL_LIMIT: usize = 24;

/// A stack switch ending a function: `mov %rA,%rsp` and, a few instructions later,
/// `jmp *%rD`, with no other change to `%rsp` or `%rD` between them (glibc's `__longjmp`: the
/// target's `%rsp`, `%rbp` and `%rip` were loaded into `%r8`, `%r9`, `%rdx` and demangled).
/// From the instruction after the `mov` on, the "caller" is the jump's target: CFA = `%rsp`,
/// return address in `%rD`, frame pointer in `%rB` until a `mov %rB,%rbp` has run. Before the
/// `mov`, the frame is still the function's own, as at the gap's start.
///
/// Applied where the ORC table is UNDEFINED and a CFI row says the return address is in a
/// register (the CFI describes the target from an earlier point, where the stack still holds
/// the function's own frame): those spans are replaced by the rows the machine code gives.
fn stack_switch_tails<'d>(orc: &LinkedTable, cfi: &mut Vec<CfiSpan>, bytes_at: impl Fn(u64) -> Option<&'d [u8]>) {
    use iced_x86::{Code, Decoder, DecoderOptions, OpKind, Register};
    let mut added = Vec::new();
    for s in cfi.iter_mut() {
        let Some(Rule::Frame { ra: Saved::Reg { .. }, .. }) = s.rule else { continue };
        // The rule in force just before the span, from the ORC table.
        let i = orc.ips.partition_point(|&a| a <= s.start);
        if i == 0 || orc.ips[i - 1] != s.start {
            continue;
        }
        let before = i.checked_sub(2).and_then(|k| orc.entries.get(k)).map(|&raw| Layout::V3.decode(raw)).and_then(|e| rule_of_entry(&e));
        let Some(before) = before else { continue };
        let Some(code) = bytes_at(s.start) else { continue };
        let code = &code[..code.len().min((s.end - s.start) as usize)];
        let mut dec = Decoder::with_ip(64, code, s.start, DecoderOptions::NONE);
        let mut rows = vec![(s.start, before)];
        // After the switch: the frame pointer's register, once `mov %rB,%rbp` is seen.
        let mut switched: Option<Option<u8>> = None;
        let mut ok = false;
        for insn in dec.iter().take(TAIL_LIMIT) {
            let next = insn.next_ip();
            let writes_rsp = insn.op0_kind() == OpKind::Register && insn.op0_register().full_register() == Register::RSP;
            match (switched, insn.code()) {
                (None, Code::Mov_r64_rm64 | Code::Mov_rm64_r64) if writes_rsp && insn.op1_kind() == OpKind::Register => {
                    switched = Some(None);
                    rows.push((next, Rule::Frame { cfa: Cfa::sp(0), ra: Saved::Default, fp: Saved::Default }));
                }
                (None, _) if writes_rsp || insn.is_stack_instruction() || insn.flow_control() != iced_x86::FlowControl::Next => break,
                (Some(None), Code::Mov_r64_rm64 | Code::Mov_rm64_r64)
                    if insn.op0_kind() == OpKind::Register && insn.op0_register() == Register::RBP && insn.op1_kind() == OpKind::Register =>
                {
                    switched = Some(dwarf_of(insn.op1_register()));
                    rows.push((next, Rule::Frame { cfa: Cfa::sp(0), ra: Saved::Default, fp: Saved::Default }));
                }
                (Some(_), Code::Jmp_rm64) if insn.op0_kind() == OpKind::Register => {
                    let Some(d) = dwarf_of(insn.op0_register()) else { break };
                    // Fill in the return-address register now that it is known, and the frame
                    // pointer's register for the rows before `mov %rB,%rbp`.
                    let fp_reg = switched.flatten();
                    let n = rows.len();
                    for (k, row) in rows.iter_mut().enumerate().skip(1) {
                        let fp = match (k, fp_reg) {
                            (1, Some(b)) if n > 2 => Saved::Reg { reg: b, offset: 0 },
                            _ => Saved::Default,
                        };
                        row.1 = Rule::Frame { cfa: Cfa::sp(0), ra: Saved::Reg { reg: d, offset: 0 }, fp };
                    }
                    ok = true;
                    break;
                }
                (Some(_), _) if writes_rsp || insn.is_stack_instruction() || insn.flow_control() != iced_x86::FlowControl::Next => break,
                (Some(_), _) => {}
                (None, _) => {}
            }
        }
        if ok {
            let end = s.end;
            s.rule = None;
            s.end = s.start;
            let starts: Vec<u64> = rows.iter().map(|r| r.0).collect();
            for (k, (at, rule)) in rows.into_iter().enumerate() {
                let until = starts.get(k + 1).copied().unwrap_or(end);
                added.push(CfiSpan { start: at, end: until, rule: Some(rule) });
            }
        }
    }
    cfi.retain(|s| s.start < s.end);
    cfi.extend(added);
    cfi.sort_by_key(|s| s.start);
}

fn from_parts(orc: &LinkedTable, cfi: &[CfiSpan]) -> SframeTable {
    let mut stats = SframeStats::default();
    let mut rows: Vec<Merged> = Vec::with_capacity(orc.ips.len());
    let n = orc.ips.len().min(orc.entries.len());
    for i in 0..n {
        let (start, entry) = (orc.ips[i], Layout::V3.decode(orc.entries[i]));
        let end = orc.ips.get(i + 1).copied().unwrap_or(u64::MAX);
        if let Some(rule) = rule_of_entry(&entry) {
            stats.from_orc += 1;
            rows.push(Merged { addr: start, rule: Some(rule), signal: entry.kind == EntryType::Regs });
            continue;
        }
        rows.push(Merged { addr: start, rule: None, signal: false });
        // A gap: what the CFI says inside it.
        let first = cfi.partition_point(|s| s.end <= start);
        for s in cfi[first..].iter().take_while(|s| s.start < end) {
            let (a, b) = (s.start.max(start), s.end.min(end));
            if a >= b {
                continue;
            }
            match s.rule {
                Some(rule) => {
                    stats.from_cfi += 1;
                    rows.push(Merged { addr: a, rule: Some(rule), signal: false });
                }
                None => {
                    stats.cfi_unexpressible += 1;
                    rows.push(Merged { addr: a, rule: None, signal: false });
                }
            }
            rows.push(Merged { addr: b, rule: None, signal: false });
        }
    }
    // The gap rows were pushed in order within each gap; a later row at the same address wins.
    let mut merged: Vec<Merged> = Vec::with_capacity(rows.len());
    for r in rows {
        match merged.last_mut() {
            Some(last) if last.addr == r.addr => *last = r,
            Some(last) if last.rule == r.rule && last.signal == r.signal => {}
            _ => merged.push(r),
        }
    }
    merged.dedup_by(|b, a| a.rule == b.rule && a.signal == b.signal);
    let functions = split_functions(&merged);
    stats.flexible_fdes = functions.iter().filter(|f| !f.rows.iter().all(|r| r.rule.fits_default())).count();
    SframeTable { functions, stats }
}

const MAX_FDE_BYTES: u64 = 0xffff;
const MAX_FDE_ROWS: usize = 0xffff;

/// Runs of covered rows as functions.
fn split_functions(merged: &[Merged]) -> Vec<Function> {
    let mut out: Vec<Function> = Vec::new();
    let mut cur: Option<Function> = None;
    let close = |cur: &mut Option<Function>, end: u64, out: &mut Vec<Function>| {
        if let Some(mut f) = cur.take() {
            f.size = u32::try_from(end - f.start).unwrap_or(u32::MAX);
            out.push(f);
        }
    };
    for (i, r) in merged.iter().enumerate() {
        let Some(rule) = r.rule else {
            close(&mut cur, r.addr, &mut out);
            continue;
        };
        let fresh = match &cur {
            None => true,
            Some(f) => f.signal != r.signal || r.addr - f.start > MAX_FDE_BYTES || f.rows.len() >= MAX_FDE_ROWS,
        };
        if fresh {
            close(&mut cur, r.addr, &mut out);
            let mut f = Function::new(r.addr, 0, Vec::new());
            f.signal = r.signal;
            cur = Some(f);
        }
        if let Some(f) = cur.as_mut() {
            f.rows.push(Row { start: (r.addr - f.start) as u32, rule });
        }
        if i + 1 == merged.len() {
            // Nothing ends the last run: the ORC table always ends with a terminator, so this
            // only happens for a table without one; leave it out rather than guess its end.
            cur = None;
        }
    }
    out.retain(|f| f.size > 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::encode;

    #[test]
    fn orc_rows_fill_from_cfi_and_split_at_signal_trampolines() {
        let orc = LinkedTable {
            ips: vec![0x100, 0x101, 0x110, 0x120, 0x140, 0x148, 0x150],
            entries: [Entry::call(8), Entry::call(16), Entry::UNDEFINED, Entry::call(8), crate::eh_frame::SIGNAL_TRAMPOLINE, Entry::UNDEFINED, Entry::END_OF_STACK]
                .into_iter()
                .map(encode)
                .collect(),
            report: Default::default(),
        };
        let rbx = Rule::Frame { cfa: Cfa::Reg { reg: dwarf::RBX, offset: 24 }, ra: Saved::Default, fp: Saved::Default };
        let cfi = [CfiSpan { start: 0x112, end: 0x118, rule: Some(rbx) }, CfiSpan { start: 0x118, end: 0x11c, rule: None }];
        let t = from_parts(&orc, &cfi);
        let sp = |o| Rule::Frame { cfa: Cfa::sp(o), ra: Saved::Default, fp: Saved::Default };
        let f0 = &t.functions[0];
        assert_eq!((f0.start, f0.size), (0x100, 0x10));
        assert_eq!(f0.rows, vec![Row { start: 0, rule: sp(8) }, Row { start: 1, rule: sp(16) }]);
        assert_eq!((t.functions[1].start, t.functions[1].size, t.functions[1].rows.clone()), (0x112, 6, vec![Row { start: 0, rule: rbx }]));
        assert_eq!((t.functions[2].start, t.functions[2].size), (0x120, 0x20));
        let sig = &t.functions[3];
        assert!(sig.signal);
        assert_eq!((sig.start, sig.size), (0x140, 8));
        assert_eq!(t.functions.len(), 4, "the last row has no end: left out");
        assert_eq!((t.stats.from_cfi, t.stats.cfi_unexpressible), (1, 1));
    }

    #[test]
    fn breg_expressions() {
        // DW_OP_breg7 (rsp) +160; DW_OP_deref
        assert_eq!(breg_then(&[0x77, 0xa0, 0x01, 0x06], &[0x06]), Some((7, 160)));
        assert_eq!(breg_then(&[0x76, 0x78], &[]), Some((6, -8)));
        assert_eq!(breg_then(&[0x92, 0x06, 0x00], &[]), None, "DW_OP_bregx is not taken");
    }
}
