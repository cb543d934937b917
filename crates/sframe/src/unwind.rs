//! One unwind step with an SFrame row: the caller's stack pointer, return address and frame
//! pointer from the callee's registers.
//!
//! SFrame tracks three values per frame. The first frame starts with every general register
//! (a stopped thread's registers); after one step only `%rsp`, `%rbp` and `%rip` are known, so a
//! rule based on another register (ld.so's lazy-binding trampoline keeps its CFA in `%rbx`) can
//! be followed only in the first frame. [`StepError::UnknownRegister`] says so when a deeper
//! frame needs one.

use crate::{dwarf, read, Cfa, Rule, Saved};

/// Reads a little-endian 64-bit word of the unwound program's memory.
pub trait Memory {
    /// The word at `addr`, or `None` if it cannot be read.
    fn read_u64(&mut self, addr: u64) -> Option<u64>;
}

/// Registers of one frame, by DWARF number (0..=15 general, 16 the ip). `None`: not known.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Regs {
    /// Values by DWARF number.
    pub values: [Option<u64>; 17],
}

impl Regs {
    /// A frame where only the ip, stack pointer and frame pointer are known.
    pub fn new(ip: u64, sp: u64, fp: u64) -> Regs {
        let mut values = [None; 17];
        values[usize::from(dwarf::RA)] = Some(ip);
        values[usize::from(dwarf::RSP)] = Some(sp);
        values[usize::from(dwarf::RBP)] = Some(fp);
        Regs { values }
    }
    /// The value of DWARF register `reg`.
    pub fn get(&self, reg: u8) -> Option<u64> {
        self.values.get(usize::from(reg)).copied().flatten()
    }
    /// The instruction pointer.
    pub fn ip(&self) -> u64 {
        self.get(dwarf::RA).unwrap_or(0)
    }
    /// The stack pointer.
    pub fn sp(&self) -> u64 {
        self.get(dwarf::RSP).unwrap_or(0)
    }
}

/// What one step found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    /// The caller's registers; `exact` when its ip is an interrupted instruction (the callee was
    /// a signal trampoline) rather than a return address.
    Caller {
        /// The caller's registers (ip, sp, fp).
        regs: Regs,
        /// Look the caller's ip up as is, not `ip - 1`.
        exact: bool,
    },
    /// The row says this is the outermost frame.
    Outermost,
}

/// Why a step could not be taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StepError {
    /// No function of the table covers the address.
    NoRow(u64),
    /// The table is malformed there.
    Table(read::Error),
    /// The rule needs a register this frame does not know.
    UnknownRegister(u8),
    /// A word of memory could not be read.
    Memory(u64),
    /// An address computation overflowed.
    Overflow,
}

impl core::fmt::Display for StepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            StepError::NoRow(a) => write!(f, "no SFrame row for {a:#x}"),
            StepError::Table(e) => write!(f, "{e}"),
            StepError::UnknownRegister(r) => write!(f, "rule needs %{}, which SFrame does not recover past the first frame", dwarf::name(r)),
            StepError::Memory(a) => write!(f, "cannot read {a:#x}"),
            StepError::Overflow => f.write_str("address overflow"),
        }
    }
}

fn add(base: u64, off: i32) -> Result<u64, StepError> {
    base.checked_add_signed(i64::from(off)).ok_or(StepError::Overflow)
}

fn reg(regs: &Regs, r: u8) -> Result<u64, StepError> {
    regs.get(r).ok_or(StepError::UnknownRegister(r))
}

fn load<M: Memory + ?Sized>(mem: &mut M, addr: u64) -> Result<u64, StepError> {
    mem.read_u64(addr).ok_or(StepError::Memory(addr))
}

/// The value a [`Saved`] rule gives, `default` for [`Saved::Default`].
fn saved<M: Memory + ?Sized>(rule: Saved, cfa: u64, regs: &Regs, mem: &mut M, default: Option<u64>) -> Result<Option<u64>, StepError> {
    Ok(match rule {
        Saved::Default => default,
        Saved::AtCfa(o) => Some(load(mem, add(cfa, o)?)?),
        Saved::Reg { reg: r, offset } => Some(add(reg(regs, r)?, offset)?),
        Saved::Deref { reg: r, offset } => Some(load(mem, add(reg(regs, r)?, offset)?)?),
    })
}

/// Applies `rule` (the row covering this frame's ip; for a signal trampoline `signal` is set)
/// to `regs`.
pub fn apply<M: Memory + ?Sized>(rule: &Rule, signal: bool, regs: &Regs, mem: &mut M) -> Result<Step, StepError> {
    let Rule::Frame { cfa, ra, fp } = *rule else { return Ok(Step::Outermost) };
    let cfa = match cfa {
        Cfa::Reg { reg: r, offset } => add(reg(regs, r)?, offset)?,
        Cfa::Deref { reg: r, offset } => load(mem, add(reg(regs, r)?, offset)?)?,
    };
    let fixed_ra = add(cfa, i32::from(crate::AMD64_FIXED_RA_OFFSET))?;
    let ip = match ra {
        Saved::Default => load(mem, fixed_ra)?,
        other => saved(other, cfa, regs, mem, None)?.unwrap_or(0),
    };
    let bp = saved(fp, cfa, regs, mem, regs.get(dwarf::RBP))?;
    let mut next = Regs::default();
    next.values[usize::from(dwarf::RA)] = Some(ip);
    next.values[usize::from(dwarf::RSP)] = Some(cfa);
    next.values[usize::from(dwarf::RBP)] = bp;
    Ok(Step::Caller { regs: next, exact: signal })
}

/// One step through `section`: finds the row for `regs`' ip (`ip - 1` unless `exact`, since a
/// return address may be the first byte after a call that ends a function) and applies it.
pub fn step<M: Memory + ?Sized>(section: &read::Section<'_>, regs: &Regs, exact: bool, mem: &mut M) -> Result<Step, StepError> {
    let ip = regs.ip();
    let lookup = if exact { ip } else { ip.wrapping_sub(1) };
    let (fde, row) = section.find_row(lookup).map_err(StepError::Table)?.ok_or(StepError::NoRow(ip))?;
    apply(&row.rule, fde.signal, regs, mem)
}
