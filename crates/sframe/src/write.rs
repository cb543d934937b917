//! The writer: functions and their rows to the bytes of an SFrame v3 section.
//!
//! Each function gets the smallest encoding that holds it: a default FDE when every row fits
//! one ([`Rule::fits_default`]), else a flexible one; row start offsets of 1, 2 or 4 bytes by
//! the function's size; data words of 1, 2 or 4 bytes per row by its largest value. Start
//! addresses are stored relative to their index entry (`F_FDE_FUNC_START_PCREL`), as the
//! linker writes them, so the section must be given the address it will have.

use alloc::vec::Vec;
use core::fmt;

use crate::{
    Cfa, Row, Rule, Saved, ABI_AMD64_LITTLE, AMD64_FIXED_RA_OFFSET, FDE_ATTR_SIZE, FDE_INDEX_SIZE, F_FDE_FUNC_START_PCREL,
    F_FDE_SORTED, HEADER_SIZE, MAGIC, VERSION_3,
};

/// One function to describe.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Function {
    /// Its first address.
    pub start: u64,
    /// Its size in bytes.
    pub size: u32,
    /// Its rows, by increasing `start`; the first should start at 0.
    pub rows: Vec<Row>,
    /// A signal trampoline (the caller's ip is exact).
    pub signal: bool,
}

impl Function {
    /// An ordinary function.
    pub fn new(start: u64, size: u32, rows: Vec<Row>) -> Function {
        Function { start, size, rows, signal: false }
    }
}

/// Why a section cannot be written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WriteError {
    /// The function at `start` has more than 65,535 rows.
    TooManyRows {
        /// The function.
        start: u64,
    },
    /// The function at `start` has rows out of order or past its end.
    RowOrder {
        /// The function.
        start: u64,
    },
    /// The function at `start` overlaps the one before it.
    Overlap {
        /// The function.
        start: u64,
    },
    /// A rule names a register that is not a general register.
    Register {
        /// The function.
        start: u64,
    },
    /// The section would exceed 4 GiB.
    TooBig,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WriteError::TooManyRows { start } => write!(f, "function at {start:#x}: more than 65535 SFrame rows"),
            WriteError::RowOrder { start } => write!(f, "function at {start:#x}: rows out of order or past its end"),
            WriteError::Overlap { start } => write!(f, "function at {start:#x} overlaps the one before it"),
            WriteError::Register { start } => write!(f, "function at {start:#x}: a rule names no general register"),
            WriteError::TooBig => f.write_str("the SFrame section would exceed 4 GiB"),
        }
    }
}

/// The bytes of a section holding `functions` (any order), to be loaded at `section_addr`.
pub fn write(functions: &[Function], section_addr: u64) -> Result<Vec<u8>, WriteError> {
    let mut order: Vec<&Function> = functions.iter().collect();
    order.sort_by_key(|f| f.start);
    for pair in order.windows(2) {
        if pair[0].start + u64::from(pair[0].size) > pair[1].start {
            return Err(WriteError::Overlap { start: pair[1].start });
        }
    }
    let mut rows_area = Vec::new();
    let mut index = Vec::with_capacity(order.len() * FDE_INDEX_SIZE);
    let mut num_fres = 0u32;
    for (i, f) in order.iter().enumerate() {
        let n = u16::try_from(f.rows.len()).map_err(|_| WriteError::TooManyRows { start: f.start })?;
        if f.rows.windows(2).any(|w| w[0].start >= w[1].start) || f.rows.last().is_some_and(|r| r.start >= f.size.max(1)) {
            return Err(WriteError::RowOrder { start: f.start });
        }
        let fre_off = u32::try_from(rows_area.len()).map_err(|_| WriteError::TooBig)?;
        let index_at = (HEADER_SIZE + i * FDE_INDEX_SIZE) as u64;
        let rel = f.start.wrapping_sub(section_addr.wrapping_add(index_at)) as i64;
        index.extend_from_slice(&rel.to_le_bytes());
        index.extend_from_slice(&f.size.to_le_bytes());
        index.extend_from_slice(&fre_off.to_le_bytes());

        let flexible = !f.rows.iter().all(|r| r.rule.fits_default());
        let (fre_type, width) = match f.size {
            0..=0xff => (0u8, 1usize),
            0x100..=0xffff => (1, 2),
            _ => (2, 4),
        };
        let info = fre_type | if f.signal { 0x80 } else { 0 };
        rows_area.extend_from_slice(&n.to_le_bytes());
        rows_area.extend_from_slice(&[info, u8::from(flexible), 0]);
        for r in &f.rows {
            encode_row(&mut rows_area, r, width, flexible).map_err(|()| WriteError::Register { start: f.start })?;
        }
        num_fres += u32::from(n);
    }
    debug_assert_eq!(FDE_ATTR_SIZE, 5);
    let fre_len = u32::try_from(rows_area.len()).map_err(|_| WriteError::TooBig)?;
    let index_len = u32::try_from(index.len()).map_err(|_| WriteError::TooBig)?;
    let mut out = Vec::with_capacity(HEADER_SIZE + index.len() + rows_area.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[VERSION_3, F_FDE_SORTED | F_FDE_FUNC_START_PCREL, ABI_AMD64_LITTLE, 0, AMD64_FIXED_RA_OFFSET as u8, 0]);
    for word in [order.len() as u32, num_fres, fre_len, 0, index_len] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&index);
    out.extend_from_slice(&rows_area);
    Ok(out)
}

fn control(reg: u8, reg_p: bool, deref_p: bool) -> Result<i32, ()> {
    if reg > crate::dwarf::R15 {
        return Err(());
    }
    Ok((i32::from(reg) << 3) | (i32::from(deref_p) << 1) | i32::from(reg_p))
}

fn saved_words(s: Saved, out: &mut Vec<i32>) -> Result<(), ()> {
    match s {
        Saved::Default => out.push(0),
        Saved::AtCfa(o) => out.extend([control(0, false, true)?, o]),
        Saved::Reg { reg, offset } => out.extend([control(reg, true, false)?, offset]),
        Saved::Deref { reg, offset } => out.extend([control(reg, true, true)?, offset]),
    }
    Ok(())
}

/// The data words of a row and its CFA-base bit (default rows only).
fn row_words(rule: &Rule, flexible: bool) -> Result<(Vec<i32>, u8), ()> {
    let mut w = Vec::with_capacity(6);
    let Rule::Frame { cfa, ra, fp } = *rule else { return Ok((w, 0)) };
    if !flexible {
        let Cfa::Reg { reg, offset } = cfa else { return Err(()) };
        w.push(offset);
        if let Saved::AtCfa(o) = fp {
            w.push(o);
        }
        return Ok((w, u8::from(reg == crate::dwarf::RSP)));
    }
    match cfa {
        Cfa::Reg { reg, offset } => w.extend([control(reg, true, false)?, offset]),
        Cfa::Deref { reg, offset } => w.extend([control(reg, true, true)?, offset]),
    }
    // A padding word for a rule that is the default says nothing when no rule follows it.
    if (ra, fp) != (Saved::Default, Saved::Default) {
        saved_words(ra, &mut w)?;
        if fp != Saved::Default {
            saved_words(fp, &mut w)?;
        }
    }
    Ok((w, 0))
}

fn encode_row(out: &mut Vec<u8>, row: &Row, width: usize, flexible: bool) -> Result<(), ()> {
    out.extend_from_slice(&row.start.to_le_bytes()[..width]);
    let (words, base) = row_words(&row.rule, flexible)?;
    let size = words.iter().map(|&v| if i8::try_from(v).is_ok() { 0u8 } else if i16::try_from(v).is_ok() { 1 } else { 2 }).max().unwrap_or(0);
    out.push(base | ((words.len() as u8) << 1) | (size << 5));
    for v in words {
        match size {
            0 => out.push(v as i8 as u8),
            1 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    Ok(())
}
