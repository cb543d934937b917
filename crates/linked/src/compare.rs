//! The cross-check: the analysis's table against the converter's, instruction by instruction.
//!
//! Every instruction an FDE covers (decoded linearly from the FDE's start; padding NOPs and
//! `int3` left out) falls in one category:
//!
//! - **agree**: the same CFA rule (type, `sp_reg`, `sp_offset`) and the same rule for the
//!   caller's `%rbp` (`bp_reg`, `bp_offset`);
//! - **differ**: both have a rule and they differ (each one listed), counted apart when only
//!   the `%rbp` rule differs (**bp only**: Clang's CFI often leaves callee-saved registers
//!   out, and GCC's keeps naming a popped slot, which the converter already drops);
//! - **unexpressible**: the CFI row has no ORC equivalent;
//! - **analysis missing**: the analysis has no entry there (it did not reach the instruction,
//!   or gave the function up).
//!
//! A signal trampoline's FDE is compared at the trampoline's first instruction only (its FDE
//! starts inside the padding before it).

use orc_decode::{InsnKind, SectionDecoder};
use orc_elf::ElfFile;
use orc_format::{Entry, EntryType};

use crate::eh_frame::Rule;
use crate::funcs::SIGRETURN;
use crate::image::Image;
use crate::{convert_eh_frame, generate, LinkedError, Source};

/// One instruction where the two tables disagree.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Difference {
    /// The instruction.
    pub addr: u64,
    /// The function (FDE) it is in: its `.symtab`/`.dynsym` name or `func_<addr>`.
    pub function: String,
    /// Offset from the function's start.
    pub offset: u64,
    /// The analysis's entry.
    pub analysis: Entry,
    /// The converter's entry.
    pub converter: Entry,
}

/// The counts of one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Instructions compared.
    pub instructions: usize,
    /// Same rules.
    pub agree: usize,
    /// Different rules: `differences.len()`.
    pub differ: usize,
    /// Of those, the ones with the same CFA rule and a different `%rbp` rule.
    pub bp_only: usize,
    /// The CFI has no ORC form there.
    pub unexpressible: usize,
    /// The analysis has no entry there.
    pub analysis_missing: usize,
    /// Each difference, by address.
    pub differences: Vec<Difference>,
    /// Each instruction the analysis has no entry for: address, function, offset.
    pub missing: Vec<(u64, String, u64)>,
}

impl Comparison {
    /// Adds another file's counts (differences are not carried over).
    pub fn add(&mut self, other: &Comparison) {
        self.instructions += other.instructions;
        self.agree += other.agree;
        self.differ += other.differ;
        self.bp_only += other.bp_only;
        self.unexpressible += other.unexpressible;
        self.analysis_missing += other.analysis_missing;
    }
}

/// The two rules are the same for an unwinder.
fn same_rule(a: &Entry, c: &Entry) -> bool {
    a.kind == c.kind && a.sp_reg == c.sp_reg && a.sp_offset == c.sp_offset && a.bp_reg == c.bp_reg && a.bp_offset == c.bp_offset
}

/// Compares the analysis with the converter at every instruction `elf`'s `.eh_frame` covers.
pub fn compare(elf: &ElfFile<'_>) -> Result<Comparison, LinkedError> {
    let conversion = convert_eh_frame(elf)?;
    let analysis = generate(elf, Source::Analysis)?;
    let image = Image::new(elf)?;
    let functions = crate::funcs::find(elf, &image, &conversion);
    let mut spans = conversion.spans.clone();
    spans.sort_by_key(|s| s.start);
    let rule_at = |ip: u64| -> Option<Rule> {
        let i = spans.partition_point(|s| s.start <= ip).checked_sub(1)?;
        let s = &spans[i];
        (ip < s.end).then_some(s.rule)
    };
    let name_of = |ip: u64| -> (String, u64) {
        match functions.containing(ip) {
            Some(f) => (functions.list[f].name.clone(), ip - functions.list[f].start),
            None => (format!("func_{ip:x}"), 0),
        }
    };

    let mut out = Comparison::default();
    let mut decoders: Vec<Option<SectionDecoder<'_>>> = image.mapped.iter().map(|_| None).collect();
    let mut fdes = conversion.fdes.clone();
    fdes.sort_by_key(|f| f.start);
    fdes.dedup_by_key(|f| f.start);
    for fde in &fdes {
        let Some(si) = image.mapped.iter().position(|m| m.exec && m.contains(fde.start)) else { continue };
        let m = image.mapped[si];
        let end = fde.end.min(m.end());
        let mut ip = fde.start;
        if fde.signal_trampoline {
            let bytes = image.bytes_from(fde.start).unwrap_or(&[]);
            if !bytes.starts_with(&SIGRETURN) && bytes.get(1..).is_some_and(|b| b.starts_with(&SIGRETURN)) {
                ip += 1;
            }
        }
        while ip < end {
            let d = decoders[si].get_or_insert_with(|| SectionDecoder::new(m.data));
            let Ok(insn) = d.decode_at(ip - m.address, |_| true) else { break };
            let next = ip + u64::from(insn.len);
            if matches!(insn.kind, InsnKind::Nop | InsnKind::Trap) {
                ip = next;
                continue;
            }
            out.instructions += 1;
            match rule_at(ip) {
                None | Some(Rule::Unexpressible(_)) => out.unexpressible += 1,
                Some(Rule::Entry(c)) => match analysis.lookup(ip) {
                    Some(a) if a.kind != EntryType::Undefined => {
                        if same_rule(&a, &c) {
                            out.agree += 1;
                        } else {
                            out.differ += 1;
                            if a.kind == c.kind && a.sp_reg == c.sp_reg && a.sp_offset == c.sp_offset {
                                out.bp_only += 1;
                            }
                            let (function, offset) = name_of(ip);
                            out.differences.push(Difference { addr: ip, function, offset, analysis: a, converter: c });
                        }
                    }
                    _ if c.kind == EntryType::Undefined => out.agree += 1,
                    _ => {
                        out.analysis_missing += 1;
                        let (function, offset) = name_of(ip);
                        out.missing.push((ip, function, offset));
                    }
                },
            }
            if fde.signal_trampoline {
                break;
            }
            ip = next;
        }
    }
    Ok(out)
}
