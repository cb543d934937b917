//! The SFrame walk of `verify-exec --sframe`: every frame found with the SFrame v3 section
//! each mapped file gets (`orc_process::FileTable::sframe`, the bytes `orctool check --sframe`
//! writes), read back with `orc-sframe`'s reader and stepped with its rules.
//!
//! The first frame has every register of the stopped thread (so a CFA on `%rbx` or `%r10`
//! works there); later frames have the three SFrame recovers: ip, `%rsp`, `%rbp`.

use orc_process::AddressSpace;
use orc_sframe::read::Section;
use orc_sframe::unwind::{apply, Regs as SfRegs, Step};
use orc_sframe::{dwarf, Rule};

use crate::memory::ReadAhead;
use crate::shadow::ChainFrame;
use crate::sys::Regs;

/// What the SFrame table says at an ip, for counting steps before any walk.
pub enum Lookup {
    /// No module, or a module without a table.
    NoTable,
    /// The module's table has no row there.
    NoRow,
    /// A row.
    Row,
}

/// The row covering `lookup` (a runtime address) in its module's SFrame table.
fn row_at(space: &AddressSpace, lookup: u64) -> Result<Option<(Rule, bool)>, String> {
    let Some(m) = space.module_for(lookup) else { return Err(format!("no module maps {lookup:#x}")) };
    let Some(t) = &m.table else { return Err(format!("{}: no table", m.name)) };
    let bytes = t.sframe().map_err(|e| e.to_string())?;
    let s = Section::parse(bytes, 0).map_err(|e| e.to_string())?;
    let found = s.find_row(m.link_address(lookup)).map_err(|e| e.to_string())?;
    Ok(found.map(|(fde, row)| (row.rule, fde.signal)))
}

/// Whether the SFrame table has a row for `ip`.
pub fn lookup(space: &AddressSpace, ip: u64) -> Lookup {
    match row_at(space, ip) {
        Ok(Some(_)) => Lookup::Row,
        Ok(None) => Lookup::NoRow,
        Err(_) => Lookup::NoTable,
    }
}

/// The registers of the first frame: all general registers of the thread.
fn first_frame(r: &Regs) -> SfRegs {
    let mut v = SfRegs::new(r.rip, r.rsp, r.rbp);
    for (reg, value) in [
        (dwarf::RAX, r.rax),
        (dwarf::RDX, r.rdx),
        (dwarf::RCX, r.rcx),
        (dwarf::RBX, r.rbx),
        (dwarf::RSI, r.rsi),
        (dwarf::RDI, r.rdi),
        (dwarf::R8, r.r8),
        (dwarf::R8 + 1, r.r9),
        (dwarf::R8 + 2, r.r10),
        (dwarf::R8 + 3, r.r11),
        (dwarf::R8 + 4, r.r12),
        (dwarf::R8 + 5, r.r13),
        (dwarf::R8 + 6, r.r14),
        (dwarf::R8 + 7, r.r15),
    ] {
        v.values[usize::from(reg)] = Some(value);
    }
    v
}

/// Walks from the thread's registers, at most `limit` frames, into `out`; `keep_going` sees
/// each frame and stops the walk by returning false. Returns how the walk ended: `None` at
/// an outermost row, else why it stopped.
pub fn walk(
    space: &AddressSpace,
    mem: &mut ReadAhead,
    regs: &Regs,
    limit: usize,
    out: &mut Vec<ChainFrame>,
    mut keep_going: impl FnMut(usize, ChainFrame) -> bool,
) -> Option<String> {
    out.clear();
    let mut cur = first_frame(regs);
    let mut exact = true;
    loop {
        let frame = ChainFrame { ip: cur.ip(), exact };
        out.push(frame);
        if !keep_going(out.len() - 1, frame) {
            return Some("stopped".to_string());
        }
        if out.len() >= limit {
            return Some("frame limit".to_string());
        }
        let lookup = if exact { cur.ip() } else { cur.ip().wrapping_sub(1) };
        let (rule, signal) = match row_at(space, lookup) {
            Ok(Some(r)) => r,
            Ok(None) => return Some(format!("no SFrame row for {:#x}", cur.ip())),
            Err(e) => return Some(e),
        };
        match apply(&rule, signal, &cur, mem) {
            Ok(Step::Outermost) => return None,
            Ok(Step::Caller { regs, exact: e }) => {
                // A stack switch (longjmp's tail: CFA = %rsp) may leave the stack pointer where it
                // is; only a return into a frame below this one is wrong.
                if regs.sp() < cur.sp() && !e {
                    return Some("stack pointer moved down".to_string());
                }
                cur = regs;
                exact = e;
            }
            Err(e) => return Some(e.to_string()),
        }
    }
}
