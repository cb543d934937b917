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
//!
//! Anything else (a CFA on another register, another expression, the return address
//! elsewhere, rbp in another register, offsets beyond `i16`) becomes an UNDEFINED entry and is
//! counted in [`Stats`]. Each FDE ends with an UNDEFINED terminator at its end address, as
//! objtool ends each section; where the next FDE starts at the same address, the terminator
//! is weak and the real entry wins (reference 1.4). Consecutive equal entries are merged.
//!
//! Not kernel-specific: this module is the seed of a user-space ORC generator.

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
}

/// Converts `.eh_frame` (loaded at `eh_frame_addr`, text at `text_addr`) to ORC entries in
/// `layout`.
pub fn convert(eh_frame: &[u8], eh_frame_addr: u64, text_addr: u64, layout: Layout) -> gimli::Result<Conversion> {
    let mut section = EhFrame::new(eh_frame, LittleEndian);
    section.set_address_size(8);
    let bases = BaseAddresses::default().set_eh_frame(eh_frame_addr).set_text(text_addr);
    let mut stats = Stats::default();
    let mut pairs = Vec::new();
    let mut ctx = UnwindContext::new();
    let mut entries = section.entries(&bases);
    let encode = |e: Entry| layout.encode(e).expect("converter produces encodable entries");
    while let Some(entry) = entries.next()? {
        let CieOrFde::Fde(partial) = entry else { continue };
        let fde = partial.parse(EhFrame::cie_from_offset)?;
        stats.fdes += 1;
        let mut last: Option<Entry> = None;
        let mut table = fde.rows(&section, &bases, &mut ctx)?;
        while let Some(row) = table.next_row()? {
            stats.rows += 1;
            let entry = match convert_row(&section, row) {
                Ok(e) => {
                    stats.expressed += 1;
                    e
                }
                Err(why) => {
                    match why {
                        Why::CfaExpression => stats.cfa_expression += 1,
                        Why::CfaRegister => stats.cfa_register += 1,
                        Why::ReturnAddress => stats.return_address += 1,
                        Why::BpRule => stats.bp_rule += 1,
                        Why::OffsetRange => stats.offset_range += 1,
                    }
                    Entry::UNDEFINED
                }
            };
            if last != Some(entry) {
                pairs.push((row.start_address(), encode(entry)));
                last = Some(entry);
            }
        }
        pairs.push((fde.end_address(), encode(Entry::UNDEFINED)));
    }
    Ok(Conversion { pairs, stats })
}

enum Why {
    CfaExpression,
    CfaRegister,
    ReturnAddress,
    BpRule,
    OffsetRange,
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
