//! The ORC-visible stack state and what one patched instruction does to it.
//!
//! The state is an [`Entry`]: how to find the caller's stack pointer (`sp_reg` + `sp_offset`)
//! and frame pointer (`bp_reg` + `bp_offset`), and the frame type. A walk starts from the
//! table's entry at the first byte of a site (the state before the site, which every
//! choice shares) and applies each instruction with [`step`]. The rules follow what objtool's
//! `update_cfi_state()` records for the same instruction, limited to what an ORC entry can show;
//! anything else is [`Unmodelled`], never guessed.
//!
//! | instruction (orc-decode's stack ops) | `sp_reg` SP | `sp_reg` BP or BP_INDIRECT |
//! |---|---|---|
//! | any push, `pushf` | `sp_offset += 8` | unchanged |
//! | `push %rbp` while `bp_reg` is undefined | also `bp_reg = prevsp`, `bp_offset = -sp_offset` (objtool's `save_reg`) | unmodelled |
//! | any pop, `popf` (not into `%rsp`/`%rbp`) | `sp_offset -= 8` | unchanged |
//! | `pop %rbp` | `sp_offset -= 8`; if `%rbp` was saved in exactly that slot (`bp_reg = prevsp`, `bp_offset = -sp_offset` before the pop) `bp_reg` becomes undefined (objtool's `restore_reg`) | unmodelled (frame teardown) |
//! | `add`/`sub $imm,%rsp`, `lea imm(%rsp),%rsp` | `sp_offset -= imm` | unchanged |
//! | any other write to `%rsp` (`mov`, `and`, `add %reg`, `leave`, a load) | unmodelled | unmodelled |
//! | `mov %rbp,disp(%rsp)` (`disp(%rbp)` under a BP-based CFA) while `bp_reg` is undefined | `bp_reg = prevsp`, `bp_offset = disp - sp_offset` (objtool's `save_reg`) | the same |
//! | `mov disp(%rsp),%rbp` from the slot `%rbp` was saved in | `bp_reg` becomes undefined (objtool's `restore_reg`) | unmodelled |
//! | `mov %rsp,%rbp`, `lea disp(%rsp),%rbp` | unmodelled (objtool may rebase the CFA) | unmodelled |
//! | any other write to `%rbp` | unchanged (objtool does not track it either) | unmodelled |
//! | `call` | unchanged (the callee pops its return address) | unchanged |
//! | `call` to a place inside the patched code (intra-function call) | `sp_offset += 8`, and execution goes on at the target only | unchanged |
//! | everything else (memory stores and loads not into `%rsp`/`%rbp`) | unchanged | unchanged |
//!
//! For frames of type REGS and REGS_PARTIAL objtool only tracks pushes, pops and
//! `add`/`sub $imm,%rsp` on an SP-based CFA (`update_cfi_state_regs()`); so do we, without the
//! `%rbp` rules. Other base registers (DRAP `r10`/`r13`, SP_INDIRECT, `dx`/`di`) make
//! every stack operation unmodelled; code without stack operations keeps any state.

use core::fmt;

use orc_decode::{Dest, InsnKind, Instruction, Reg as X86, Src, StackOp};
use orc_format::{Entry, EntryType, Reg};

/// Why a state cannot be derived past an instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Unmodelled {
    /// A stack operation on a CFA whose base register is not SP or BP.
    Base(Reg),
    /// A write to `%rsp` other than push, pop and `add`/`sub` of a constant.
    StackPointerWrite,
    /// A write to `%rbp` while the CFA is computed from `%rbp`.
    FramePointerWrite,
    /// `push %rbp` under a BP-based CFA whose `bp_reg` is undefined: no rule for it.
    PushBpFramePointer,
    /// A stack realignment (`and $mask,%rsp`).
    Realign,
    /// The patched bytes do not decode.
    Undecodable,
    /// An instruction runs past the end of the site.
    CrossesSiteEnd,
    /// Two paths reach one boundary with different states (a loop or a join the rules above
    /// cannot reconcile).
    Join,
    /// An `ALT_FLAG_DIRECT_CALL` entry whose site or replacement is not what the kernel
    /// requires (it would `BUG()` at boot).
    BadDirectCall,
    /// A jump-label site that is not a 2- or 5-byte instruction (the kernel would `BUG()`).
    BadJumpLabel,
    /// A paravirt site shorter than a direct call (5 bytes).
    ShortParavirtSite,
    /// The site does not lie inside its section.
    OutsideSection,
}

impl fmt::Display for Unmodelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unmodelled::Base(r) => write!(f, "stack operation with the CFA based on {}", reg_name(*r)),
            Unmodelled::StackPointerWrite => f.write_str("write to %rsp other than push, pop, add/sub of a constant"),
            Unmodelled::FramePointerWrite => f.write_str("write to %rbp while the CFA is based on it"),
            Unmodelled::PushBpFramePointer => f.write_str("push %rbp under a BP-based CFA with bp undefined"),
            Unmodelled::Realign => f.write_str("stack realignment"),
            Unmodelled::Undecodable => f.write_str("patched bytes do not decode"),
            Unmodelled::CrossesSiteEnd => f.write_str("instruction crosses the end of the site"),
            Unmodelled::Join => f.write_str("two paths reach one boundary with different states"),
            Unmodelled::BadDirectCall => f.write_str("ALT_FLAG_DIRECT_CALL entry the kernel would refuse"),
            Unmodelled::BadJumpLabel => f.write_str("jump label site is not a 2- or 5-byte instruction"),
            Unmodelled::ShortParavirtSite => f.write_str("paravirt site shorter than a call"),
            Unmodelled::OutsideSection => f.write_str("site outside its section"),
        }
    }
}

/// The state after `insn`, which starts in state `state`, for an instruction that falls
/// through (branches, calls and returns are the walker's business; a call's return address
/// push is dropped here).
pub fn step(state: Entry, insn: &Instruction) -> Result<Entry, Unmodelled> {
    if matches!(insn.kind, InsnKind::Call | InsnKind::CallDynamic) {
        return Ok(state);
    }
    let mut s = state;
    for op in insn.stack_ops.iter() {
        s = apply(s, op)?;
    }
    Ok(s)
}

/// The state after an intra-function call (a `call` to a place inside the patched code, as in
/// the RSB-stuffing sequences): the return address it pushes stays on the stack, as objtool
/// models an annotated intra-function call (a jump that pushes).
pub fn intra_function_call(state: Entry) -> Result<Entry, Unmodelled> {
    apply(state, &StackOp::push_const())
}

// The arms' inner `if`s must stay inside the arms: as guards, a failed test would fall
// through to the catch-all arms below.
#[allow(clippy::collapsible_match)]
fn apply(s: Entry, op: &StackOp) -> Result<Entry, Unmodelled> {
    let regs_frame = matches!(s.kind, EntryType::Regs | EntryType::RegsPartial);
    if !matches!(s.kind, EntryType::Call | EntryType::Regs | EntryType::RegsPartial) {
        // Undefined and end-of-stack states are never walked (the caller skips such sites).
        return Ok(s);
    }
    let sp_based = s.sp_reg == Reg::SP;
    let bp_based = (s.sp_reg == Reg::BP || s.sp_reg == Reg::BP_INDIRECT) && !regs_frame;
    if !sp_based && !bp_based {
        return Err(Unmodelled::Base(s.sp_reg));
    }
    let mut n = s;
    match (op.src, op.dest) {
        // Pushes.
        (src, Dest::Push | Dest::Pushf) => {
            if sp_based {
                n.sp_offset = add(n.sp_offset, 8)?;
            }
            if src == Src::Reg(X86::BP) && !regs_frame && s.bp_reg == Reg::UNDEFINED {
                if !sp_based {
                    return Err(Unmodelled::PushBpFramePointer);
                }
                n.bp_reg = Reg::PREV_SP;
                n.bp_offset = -n.sp_offset;
            }
        }
        // Pops.
        (Src::Pop | Src::Popf, dest) => {
            if dest == Dest::Reg(X86::SP) {
                return Err(Unmodelled::StackPointerWrite);
            }
            if dest == Dest::Reg(X86::BP) && !regs_frame {
                if bp_based {
                    return Err(Unmodelled::FramePointerWrite);
                }
                if s.bp_reg == Reg::PREV_SP && i32::from(s.bp_offset) == -i32::from(s.sp_offset) {
                    n.bp_reg = Reg::UNDEFINED;
                    n.bp_offset = 0;
                }
            }
            if sp_based {
                n.sp_offset = add(n.sp_offset, -8)?;
            }
        }
        // Writes to %rsp.
        (Src::Add { reg: X86::SP, offset }, Dest::Reg(X86::SP)) if offset != 0 => {
            if sp_based {
                n.sp_offset = add(n.sp_offset, -offset)?;
            }
        }
        (Src::And { .. }, Dest::Reg(X86::SP)) => return Err(Unmodelled::Realign),
        // `mov %rbp,%rsp` under a CFA based on %rbp: the stack pointer takes the frame
        // pointer's value; the CFA is still %rbp plus the same offset, and stays described
        // so, as objtool keeps it ("restore the original stack pointer"; 7.2's FRED entry
        // from KVM).
        (Src::Reg(X86::BP), Dest::Reg(X86::SP)) if s.sp_reg == Reg::BP && !regs_frame => {}
        (_, Dest::Reg(X86::SP)) => return Err(Unmodelled::StackPointerWrite),
        // Writes to %rbp.
        (Src::Reg(X86::SP) | Src::Add { reg: X86::SP, .. }, Dest::Reg(X86::BP)) => {
            // `mov %rsp,%rbp`: objtool may move the CFA base to %rbp here.
            return Err(Unmodelled::FramePointerWrite);
        }
        (Src::RegIndirect { reg: X86::SP, offset }, Dest::Reg(X86::BP)) if sp_based && !regs_frame => {
            // `mov disp(%rsp),%rbp` from the slot where %rbp was saved: objtool's restore_reg.
            if s.bp_reg == Reg::PREV_SP && offset == i32::from(s.bp_offset) + i32::from(s.sp_offset) {
                n.bp_reg = Reg::UNDEFINED;
                n.bp_offset = 0;
            }
        }
        (_, Dest::Reg(X86::BP)) => {
            if bp_based {
                return Err(Unmodelled::FramePointerWrite);
            }
        }
        // `mov %rbp,disp(%rsp)` (or `disp(%rbp)` under a BP-based CFA) while %rbp is not
        // saved yet: objtool's save_reg records the slot.
        (Src::Reg(X86::BP), Dest::RegIndirect { reg, offset }) if !regs_frame && s.bp_reg == Reg::UNDEFINED => {
            if (reg == X86::SP && sp_based) || (reg == X86::BP && bp_based) {
                n.bp_reg = Reg::PREV_SP;
                n.bp_offset =
                    i16::try_from(offset - i32::from(s.sp_offset)).map_err(|_| Unmodelled::StackPointerWrite)?;
            }
        }
        // Stores, loads into other registers, moves between other registers.
        _ => {}
    }
    Ok(n)
}

fn add(a: i16, b: i32) -> Result<i16, Unmodelled> {
    i16::try_from(i32::from(a) + b).map_err(|_| Unmodelled::StackPointerWrite)
}

fn reg_name(r: Reg) -> &'static str {
    r.name().unwrap_or("(und)")
}

/// An entry in one line, in the v3 vocabulary whatever the file's layout:
/// `type:call sp:sp+16 bp:prevsp-16 signal:0` (objtool 6.4+'s dump spelling).
pub struct ShowEntry(pub Entry);

impl fmt::Display for ShowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let kind: String = match e.kind {
            EntryType::Undefined => "(und)".into(),
            EntryType::EndOfStack => "end".into(),
            EntryType::Call => "call".into(),
            EntryType::Regs => "regs".into(),
            EntryType::RegsPartial => "regs (partial)".into(),
            EntryType::Other(n) => format!("?{n}"),
        };
        write!(
            f,
            "type:{kind} sp:{} bp:{} signal:{}",
            RegOff(e.sp_reg, e.sp_offset),
            RegOff(e.bp_reg, e.bp_offset),
            u8::from(e.signal)
        )
    }
}

struct RegOff(Reg, i16);

impl fmt::Display for RegOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reg::UNDEFINED => f.write_str("(und)"),
            Reg::BP_INDIRECT => write!(f, "(bp{:+})", self.1),
            Reg::SP_INDIRECT => write!(f, "(sp){:+}", self.1),
            r => write!(f, "{}{:+}", r.name().unwrap_or("?"), self.1),
        }
    }
}

/// True when two entries mean the same to the unwinder: the same type, and for frames it can
/// step through, the same registers, offsets and signal bit. Offsets of undefined registers
/// are ignored (the unwinder never reads them).
pub fn same_state(a: Entry, b: Entry) -> bool {
    if a.kind != b.kind {
        return false;
    }
    if matches!(a.kind, EntryType::Undefined | EntryType::EndOfStack) {
        return true;
    }
    let bp = |e: Entry| if e.bp_reg == Reg::UNDEFINED { (e.bp_reg, 0) } else { (e.bp_reg, e.bp_offset) };
    a.sp_reg == b.sp_reg && a.sp_offset == b.sp_offset && bp(a) == bp(b) && a.signal == b.signal
}

#[cfg(test)]
mod tests {
    use super::*;
    use orc_decode::decode_one;

    fn after(state: Entry, bytes: &[u8]) -> Result<Entry, Unmodelled> {
        step(state, &decode_one(bytes, 0, true).unwrap())
    }

    const START: Entry = Entry::call(8);

    #[test]
    fn pushes_and_pops() {
        let s = after(START, &[0x9c]).unwrap(); // pushf
        assert_eq!(s, Entry::call(16));
        assert_eq!(after(s, &[0x58]).unwrap(), START); // pop %rax
        let s = after(START, &[0x55]).unwrap(); // push %rbp
        assert_eq!(s, Entry { bp_reg: Reg::PREV_SP, bp_offset: -16, ..Entry::call(16) });
        assert_eq!(after(s, &[0x5d]).unwrap(), START); // pop %rbp
        assert_eq!(after(START, &[0x48, 0x83, 0xec, 0x10]).unwrap(), Entry::call(24)); // sub $16,%rsp
        assert_eq!(after(Entry::call(24), &[0x48, 0x83, 0xc4, 0x10]).unwrap(), START);
        // add $16,%rsp
    }

    #[test]
    fn calls_keep_the_state() {
        assert_eq!(after(START, &[0xe8, 0, 0, 0, 0]).unwrap(), START);
        assert_eq!(after(START, &[0xff, 0x15, 0, 0, 0, 0]).unwrap(), START);
    }

    #[test]
    fn unmodelled() {
        assert_eq!(after(START, &[0x48, 0x89, 0xc4]), Err(Unmodelled::StackPointerWrite)); // mov %rax,%rsp
        assert_eq!(after(START, &[0x48, 0x83, 0xe4, 0xf0]), Err(Unmodelled::Realign)); // and $-16,%rsp
        let drap = Entry { sp_reg: Reg::R10, sp_offset: 0, ..START };
        assert_eq!(after(drap, &[0x50]), Err(Unmodelled::Base(Reg::R10)));
        assert_eq!(after(drap, &[0x90]).unwrap(), drap);
        let fp = Entry { sp_reg: Reg::BP, sp_offset: 16, bp_reg: Reg::PREV_SP, bp_offset: -16, ..START };
        assert_eq!(after(fp, &[0x50]).unwrap(), fp);
        assert_eq!(after(fp, &[0x5d]), Err(Unmodelled::FramePointerWrite));
        // mov %rbp,%rsp under a BP-based CFA: the same CFA, still from %rbp ...
        assert_eq!(after(fp, &[0x48, 0x89, 0xec]).unwrap(), fp);
        // ... but not under an SP-based one.
        assert_eq!(after(START, &[0x48, 0x89, 0xec]), Err(Unmodelled::StackPointerWrite));
    }

    #[test]
    fn display() {
        let e = Entry { bp_reg: Reg::PREV_SP, bp_offset: -16, ..Entry::call(16) };
        assert_eq!(ShowEntry(e).to_string(), "type:call sp:sp+16 bp:prevsp-16 signal:0");
        assert!(same_state(Entry::call(8), Entry { bp_offset: 5, ..Entry::call(8) }));
        assert!(!same_state(Entry::call(8), Entry::call(16)));
    }
}
