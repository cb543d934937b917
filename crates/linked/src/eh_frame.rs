//! `.eh_frame` to ORC: the DWARF CFI rows that ORC can express, as ORC entries.
//!
//! ORC knows three registers (ip, sp, bp) and a handful of rules; DWARF can say much more. A
//! row converts when:
//!
//! | DWARF | ORC |
//! |---|---|
//! | CFA = rsp + N | `sp_reg` SP, `sp_offset` N |
//! | CFA = rbp + N | `sp_reg` BP, `sp_offset` N |
//! | CFA = `DW_OP_breg6 N; DW_OP_deref` (GCC's DRAP) | `sp_reg` BP_INDIRECT, `sp_offset` N |
//! | return address at CFA − 8 | type CALL |
//! | return address undefined (`_start`) | type END_OF_STACK |
//! | rbp same value / not mentioned | `bp_reg` UNDEFINED |
//! | rbp saved at CFA + k | `bp_reg` PREV_SP, `bp_offset` k |
//! | rbp saved at CFA + k, below `%rsp` (popped; GCC omits `.cfi_restore`) | `bp_reg` UNDEFINED |
//!
//! | an FDE of a signal trampoline (`S` augmentation: glibc's `__restore_rt`) | type REGS, `sp_reg` SP, `sp_offset` 40: the `sigcontext` is 40 bytes into the `ucontext` at `%rsp` |
//!
//! Anything else (a CFA on another register, another expression, the return address
//! elsewhere, rbp in another register, offsets beyond `i16`) becomes an UNDEFINED entry and is
//! counted in [`Stats`]. Each FDE ends with an UNDEFINED terminator at its end address, as
//! objtool ends each section; where the next FDE starts at the same address, the terminator
//! is weak and the real entry wins (reference 1.4). Consecutive equal entries are merged.
//!
//! Besides the flat `pairs`, a [`Conversion`] keeps each row as a [`Span`] (its address range
//! and either the entry or why there is none) and each FDE's range, which the cross-check and
//! the combined table of [`crate::generate`] look addresses up in.

use gimli::{
    BaseAddresses, CfaRule, CieOrFde, EhFrame, EndianSlice, LittleEndian, RegisterRule, UnwindContext,
    UnwindSection, X86_64,
};
use orc_format::{Entry, EntryType, Layout, RawEntry, Reg};

/// What the conversion could and could not express.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Stats {
    /// FDEs read.
    pub fdes: usize,
    /// CFI rows read.
    pub rows: usize,
    /// Rows turned into a CALL or END_OF_STACK entry.
    pub expressed: usize,
    /// Rows whose CFA is an expression other than `*(rbp + N)`.
    pub cfa_expression: usize,
    /// Rows whose CFA is based on a register other than rsp and rbp.
    pub cfa_register: usize,
    /// Rows whose return address is not at CFA − 8 (nor undefined).
    pub return_address: usize,
    /// Rows where rbp is recovered some other way than "unchanged" or "saved at CFA + k".
    pub bp_rule: usize,
    /// Rows with an offset that does not fit ORC's 16 bits.
    pub offset_range: usize,
    /// FDEs whose instructions gimli rejects (left out whole).
    pub bad_fdes: usize,
}

impl Stats {
    /// Rows that became UNDEFINED.
    pub fn unexpressed(&self) -> usize {
        self.rows - self.expressed
    }
}

/// The converted table: unsorted `(address, entry)` pairs and the statistics.
pub struct Conversion {
    /// One pair per distinct state, plus one terminator per FDE.
    pub pairs: Vec<(u64, RawEntry)>,
    /// Counts.
    pub stats: Stats,
    /// Every row with its address range, in `.eh_frame` order (consecutive rows with the same
    /// rule merged).
    pub spans: Vec<Span>,
    /// Every FDE's address range, in `.eh_frame` order.
    pub fdes: Vec<FdeRange>,
}

/// What the converter made of one CFI row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    /// The row, as an ORC entry.
    Entry(Entry),
    /// The row has no ORC equivalent.
    Unexpressible(Why),
}

impl Rule {
    /// The entry a table gets for this rule: UNDEFINED where there is none.
    pub fn entry(self) -> Entry {
        match self {
            Rule::Entry(e) => e,
            Rule::Unexpressible(_) => Entry::UNDEFINED,
        }
    }
}

/// One row of the CFI table of an FDE: `[start, end)` and its rule.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Span {
    /// First address.
    pub start: u64,
    /// Address just after the last.
    pub end: u64,
    /// The rule there.
    pub rule: Rule,
}

/// The address range of one FDE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FdeRange {
    /// `initial_location`.
    pub start: u64,
    /// `initial_location + address_range`.
    pub end: u64,
    /// The first row is a plain function entry: CFA = `%rsp + 8`, return address at CFA - 8,
    /// no register saved. False for the cold parts GCC splits off a function (which start with
    /// the parent's frame), for signal trampolines and for entry points.
    pub entry_like: bool,
    /// The FDE describes a signal trampoline (`S` augmentation).
    pub signal_trampoline: bool,
}

/// The entry of a signal trampoline's FDE: the handler returned into `__restore_rt` with
/// `%rsp` at the `ucontext`, whose `uc_mcontext` (a `struct sigcontext`) holds the
/// interrupted registers 40 bytes in. The signal bit is set, as objtool sets it for every
/// REGS hint: the ip found there is where the signal struck (exact), not a return address,
/// and must be looked up as it is.
pub const SIGNAL_TRAMPOLINE: Entry = Entry {
    kind: EntryType::Regs,
    sp_reg: Reg::SP,
    sp_offset: 40,
    bp_reg: Reg::UNDEFINED,
    bp_offset: 0,
    signal: true,
};

/// Converts `.eh_frame` (loaded at `eh_frame_addr`, text at `text_addr`) to ORC entries in
/// `layout`.
pub fn convert(eh_frame: &[u8], eh_frame_addr: u64, text_addr: u64, layout: Layout) -> gimli::Result<Conversion> {
    let mut section = EhFrame::new(eh_frame, LittleEndian);
    section.set_address_size(8);
    let bases = BaseAddresses::default().set_eh_frame(eh_frame_addr).set_text(text_addr);
    let mut stats = Stats::default();
    let mut pairs = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    let mut fdes = Vec::new();
    let mut ctx = UnwindContext::new();
    let mut entries = section.entries(&bases);
    // Every entry the converter makes is encodable in every layout but a REGS one in v1 (whose
    // signal bit is implied); an entry a layout cannot hold becomes UNDEFINED rather than a
    // panic.
    let encode = |e: Entry| {
        layout
            .encode(e)
            .or_else(|_| layout.encode(Entry::UNDEFINED))
            .unwrap_or_default()
    };
    while let Some(entry) = entries.next()? {
        let CieOrFde::Fde(partial) = entry else { continue };
        let fde = partial.parse(EhFrame::cie_from_offset)?;
        stats.fdes += 1;
        let (start, end) = (fde.initial_address(), fde.end_address());
        if fde.is_signal_trampoline() {
            // The CFI of a trampoline restores every register from the signal frame, which
            // is exactly what one REGS entry says.
            stats.rows += 1;
            stats.expressed += 1;
            pairs.push((start, encode(SIGNAL_TRAMPOLINE)));
            pairs.push((end, encode(Entry::UNDEFINED)));
            spans.push(Span { start, end, rule: Rule::Entry(SIGNAL_TRAMPOLINE) });
            fdes.push(FdeRange { start, end, entry_like: false, signal_trampoline: true });
            continue;
        }
        let (pairs_len, spans_len, saved_stats) = (pairs.len(), spans.len(), stats);
        let mut last: Option<Rule> = None;
        let mut first = true;
        let mut entry_like = false;
        let rows = fde.rows(&section, &bases, &mut ctx);
        let mut table = match rows {
            Ok(t) => t,
            Err(_) => {
                stats.bad_fdes += 1;
                continue;
            }
        };
        loop {
            let row = match table.next_row() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(_) => {
                    // One FDE with instructions out of context (libgcrypt has one) must not
                    // cost the whole file: leave it out.
                    pairs.truncate(pairs_len);
                    spans.truncate(spans_len);
                    stats = saved_stats;
                    stats.bad_fdes += 1;
                    first = true;
                    break;
                }
            };
            stats.rows += 1;
            let rule = match convert_row(&section, row) {
                Ok(e) => {
                    stats.expressed += 1;
                    Rule::Entry(e)
                }
                Err(why) => {
                    match why {
                        Why::CfaExpression => stats.cfa_expression += 1,
                        Why::CfaRegister => stats.cfa_register += 1,
                        Why::ReturnAddress => stats.return_address += 1,
                        Why::BpRule => stats.bp_rule += 1,
                        Why::OffsetRange => stats.offset_range += 1,
                    }
                    Rule::Unexpressible(why)
                }
            };
            if first {
                entry_like = rule == Rule::Entry(Entry::call(8)) && is_plain_entry(row);
                first = false;
            }
            let (row_start, row_end) = (row.start_address(), row.end_address());
            if last == Some(rule) {
                if let Some(s) = spans.last_mut() {
                    s.end = row_end;
                }
            } else {
                if last.map(Rule::entry) != Some(rule.entry()) {
                    pairs.push((row_start, encode(rule.entry())));
                }
                spans.push(Span { start: row_start, end: row_end, rule });
                last = Some(rule);
            }
        }
        if first {
            // No rows (or a rejected FDE): nothing to say about its range.
            continue;
        }
        pairs.push((end, encode(Entry::UNDEFINED)));
        fdes.push(FdeRange { start, end, entry_like, signal_trampoline: false });
    }
    Ok(Conversion { pairs, stats, spans, fdes })
}

/// No register other than the return address has a rule: nothing was saved yet.
fn is_plain_entry(row: &Row) -> bool {
    row.registers().all(|(reg, rule)| *reg == X86_64::RA || matches!(rule, RegisterRule::SameValue | RegisterRule::Undefined))
}

/// Why a CFI row has no ORC equivalent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Why {
    /// The CFA is an expression other than `*(rbp + N)`.
    CfaExpression,
    /// The CFA is based on a register other than rsp and rbp.
    CfaRegister,
    /// The return address is neither at CFA - 8 nor undefined.
    ReturnAddress,
    /// rbp is recovered some other way than "unchanged" or "saved at CFA + k".
    BpRule,
    /// An offset does not fit ORC's 16 bits.
    OffsetRange,
}

impl Why {
    /// A few words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Why::CfaExpression => "CFA is a DWARF expression",
            Why::CfaRegister => "CFA on another register",
            Why::ReturnAddress => "return address elsewhere",
            Why::BpRule => "rbp recovered another way",
            Why::OffsetRange => "offset beyond 16 bits",
        }
    }
}


type Row = gimli::UnwindTableRow<usize>;

fn convert_row(section: &EhFrame<EndianSlice<'_, LittleEndian>>, row: &Row) -> Result<Entry, Why> {
    let kind = match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return Ok(Entry::END_OF_STACK),
        Some(RegisterRule::Offset(-8)) => EntryType::Call,
        _ => return Err(Why::ReturnAddress),
    };
    let small = |v: i64| i16::try_from(v).map_err(|_| Why::OffsetRange);
    let (sp_reg, sp_offset) = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RSP => (Reg::SP, small(*offset)?),
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RBP => (Reg::BP, small(*offset)?),
        CfaRule::RegisterAndOffset { .. } => return Err(Why::CfaRegister),
        CfaRule::Expression(expr) => {
            let expr = expr.get(section).map_err(|_| Why::CfaExpression)?;
            match deref_rbp_plus(expr.0.slice()) {
                Some(off) => (Reg::BP_INDIRECT, small(off)?),
                None => return Err(Why::CfaExpression),
            }
        }
    };
    let (bp_reg, bp_offset) = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => (Reg::UNDEFINED, 0),
        // GCC does not say `.cfi_restore` after an epilogue's `pop %rbp`: the row still
        // names the slot, now below the stack pointer, where a signal frame may overwrite it.
        // %rbp holds the caller's value again, which is what objtool says too.
        Some(RegisterRule::Offset(k)) if sp_reg == Reg::SP && k < -i64::from(sp_offset) => (Reg::UNDEFINED, 0),
        Some(RegisterRule::Offset(k)) => (Reg::PREV_SP, small(k)?),
        Some(_) => return Err(Why::BpRule),
    };
    Ok(Entry { kind, sp_reg, sp_offset, bp_reg, bp_offset, signal: false })
}

/// `N` if `expr` is exactly `DW_OP_breg6 (rbp) N; DW_OP_deref`.
pub fn deref_rbp_plus(expr: &[u8]) -> Option<i64> {
    let (&op, rest) = expr.split_first()?;
    if op != gimli::constants::DW_OP_breg6.0 {
        return None;
    }
    let (value, used) = sleb128(rest)?;
    (rest.get(used..)? == [gimli::constants::DW_OP_deref.0]).then_some(value)
}

fn sleb128(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut value: i64 = 0;
    let mut shift = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if shift >= 64 {
            return None;
        }
        value |= i64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            if shift < 64 && b & 0x40 != 0 {
                value |= -1i64 << shift;
            }
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_drap_expression() {
        // DW_OP_breg6 -8; DW_OP_deref
        assert_eq!(deref_rbp_plus(&[0x76, 0x78, 0x06]), Some(-8));
        assert_eq!(deref_rbp_plus(&[0x76, 0x78]), None);
        assert_eq!(deref_rbp_plus(&[0x77, 0x78, 0x06]), None);
        assert_eq!(sleb128(&[0x80, 0x7f]), Some((-128, 2)));
    }
}
