//! The CFI state (where the caller's frame is, where registers were saved) and the rules that
//! change it, one stack operation at a time: objtool's `cfi_state` and `update_cfi_state`,
//! rule for rule, so that the ORC derived from it is objtool's.
//!
//! Register bases use objtool's numbers (ModRM order, then `-1` undefined, `-2` CFA, `-3`
//! SP-indirect, `-4` BP-indirect), which also appear in its mismatch messages.

use orc_decode::{Dest, Reg, Src, StackOp};
use orc_format::{Entry, EntryType, Reg as OrcReg};

/// No value / not saved.
pub const UNDEFINED: i32 = -1;
/// Relative to the canonical frame address (the caller's stack pointer).
pub const CFA: i32 = -2;
/// `*sp + offset` (a stack swizzle).
pub const SP_INDIRECT: i32 = -3;
/// `*(bp + offset)` (the DRAP pointer saved below the frame pointer).
pub const BP_INDIRECT: i32 = -4;

const SP: i32 = 4;
const BP: i32 = 5;
const RA: usize = 16;
const NUM_REGS: usize = 17;

/// Unwind hint types of 6.4+ kernels (`UNWIND_HINT_TYPE_*`), as stored in `type`.
pub mod hint_type {
    /// No unwind information.
    pub const UNDEFINED: u8 = 0;
    /// Bottom of the stack.
    pub const END_OF_STACK: u8 = 1;
    /// A call frame.
    pub const CALL: u8 = 2;
    /// Full `pt_regs`.
    pub const REGS: u8 = 3;
    /// The iret frame only.
    pub const REGS_PARTIAL: u8 = 4;
    /// The state at a function's entry.
    pub const FUNC: u8 = 5;
    /// Remember the state here.
    pub const SAVE: u8 = 6;
    /// Take back the remembered state.
    pub const RESTORE: u8 = 7;
}

/// A base register and an offset.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CfiReg {
    /// Register number or one of the negative pseudo-bases.
    pub base: i32,
    /// Offset from it.
    pub offset: i32,
}

const UNDEF_REG: CfiReg = CfiReg { base: UNDEFINED, offset: 0 };

/// Everything objtool knows about the stack before an instruction. Compared field by field
/// (objtool compares the whole struct with `memcmp`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct CfiState {
    /// Where each register was saved (base CFA or BP).
    pub regs: [CfiReg; NUM_REGS],
    /// Registers whose value is known relative to the CFA (`mov %rsp,%rax` ... `mov %rax,%rsp`)
    /// or a swizzle pointer.
    pub vals: [CfiReg; NUM_REGS],
    /// The canonical frame address: base and offset.
    pub cfa: CfiReg,
    /// Bytes on the stack since entry, including the return address.
    pub stack_size: i32,
    /// The DRAP register (GCC's realigned-stack pointer), or `UNDEFINED`.
    pub drap_reg: i32,
    /// Where the DRAP register was saved, or -1.
    pub drap_offset: i32,
    /// Hint type (`hint_type::*`).
    pub kind: u8,
    /// `%rbp` used as a scratch register (only tracked with `--stackval`).
    pub bp_scratch: bool,
    /// The stack was realigned through a DRAP register.
    pub drap: bool,
    /// An interrupted frame.
    pub signal: bool,
    /// Old kernels' end-of-stack flag.
    pub end: bool,
    /// `UNWIND_HINT_UNDEFINED`: stack operations are ignored until another hint.
    pub force_undefined: bool,
}

/// objtool's `init_cfi`: nothing known.
pub fn undefined() -> CfiState {
    CfiState {
        regs: [UNDEF_REG; NUM_REGS],
        vals: [UNDEF_REG; NUM_REGS],
        cfa: UNDEF_REG,
        stack_size: 0,
        drap_reg: UNDEFINED,
        drap_offset: -1,
        kind: hint_type::UNDEFINED,
        bp_scratch: false,
        drap: false,
        signal: false,
        end: false,
        force_undefined: false,
    }
}

/// The state `UNWIND_HINT_UNDEFINED` sets.
pub fn force_undefined() -> CfiState {
    CfiState { force_undefined: true, ..undefined() }
}

fn initial_regs() -> [CfiReg; NUM_REGS] {
    let mut regs = [UNDEF_REG; NUM_REGS];
    regs[RA] = CfiReg { base: CFA, offset: -8 };
    regs
}

/// The state at a function's first instruction: CFA = SP + 8, return address at CFA - 8.
pub fn function_entry() -> CfiState {
    CfiState {
        regs: initial_regs(),
        cfa: CfiReg { base: SP, offset: 8 },
        stack_size: 8,
        kind: hint_type::CALL,
        ..undefined()
    }
}

/// What the state machine needs to know about where an operation happens.
pub struct OpContext {
    /// The instruction is inside an STT_FUNC.
    pub in_function: bool,
    /// The next instruction carries an unwind hint (which excuses an untracked change).
    pub next_has_hint: bool,
    /// `--stackval`: track `%rbp` used as a scratch register.
    pub stackval: bool,
}

/// `pushf` (for the uaccess bit-stack).
pub fn is_pushf(op: &StackOp) -> bool {
    matches!(op.dest, Dest::Pushf)
}

/// `popf` (for the uaccess bit-stack).
pub fn is_popf(op: &StackOp) -> bool {
    matches!(op.src, Src::Popf)
}

/// True when the CFA is unknown.
pub fn cfa_undefined(cfi: &CfiState) -> bool {
    cfi.cfa.base == UNDEFINED
}

/// `%rbp` was pushed while not the CFA base.
pub fn bp_scratch(cfi: &CfiState) -> bool {
    cfi.bp_scratch
}

fn r(reg: Reg) -> i32 {
    i32::from(reg.number())
}

fn is_callee_saved(reg: i32) -> bool {
    matches!(reg, 3 | 5 | 12 | 13 | 14 | 15)
}

fn save_reg(cfi: &mut CfiState, reg: i32, base: i32, offset: i32) {
    let Some(slot) = usize::try_from(reg).ok().filter(|&i| i < NUM_REGS) else { return };
    if is_callee_saved(reg) && cfi.regs[slot].base == UNDEFINED {
        cfi.regs[slot] = CfiReg { base, offset };
    }
}

fn restore_reg(cfi: &mut CfiState, reg: i32) {
    if let Some(slot) = usize::try_from(reg).ok().filter(|&i| i < NUM_REGS) {
        cfi.regs[slot] = initial_regs()[slot];
    }
}

fn reg_at(regs: &[CfiReg; NUM_REGS], reg: i32) -> CfiReg {
    usize::try_from(reg).ok().and_then(|i| regs.get(i).copied()).unwrap_or(UNDEF_REG)
}

/// Applies one stack operation. `Err(Some(message))` is a warning at the instruction and
/// ends the path; objtool's wording is kept.
pub fn update(cfi: &mut CfiState, op: &StackOp, ctx: &OpContext) -> Result<(), Option<String>> {
    if cfi.force_undefined {
        return Ok(());
    }
    if cfi.cfa.base == UNDEFINED {
        if ctx.in_function {
            return Err(Some("undefined stack state".to_string()));
        }
        return Ok(());
    }
    if cfi.kind == hint_type::REGS || cfi.kind == hint_type::REGS_PARTIAL {
        // In an entry frame only the CFA offset of an SP-based CFA is tracked.
        if cfi.cfa.base != SP && cfi.cfa.base != SP_INDIRECT {
            return Ok(());
        }
        if matches!(op.dest, Dest::Push | Dest::Pushf) {
            cfi.cfa.offset = cfi.cfa.offset.wrapping_add(8);
        }
        if matches!(op.src, Src::Pop | Src::Popf) {
            cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
        }
        if let (Dest::Reg(d), Src::Add { reg: s, offset }) = (op.dest, op.src) {
            if r(d) == SP && r(s) == SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(offset);
            }
        }
        return Ok(());
    }

    match op.dest {
        Dest::Reg(dest) => {
            let dest = r(dest);
            match op.src {
                Src::Reg(src) => mov_reg(cfi, r(src), dest),
                Src::Add { reg: src, offset } => add_reg(cfi, r(src), offset, dest, ctx)?,
                Src::And { .. } => {
                    if dest != SP
                        || (cfi.drap_reg != UNDEFINED && cfi.cfa.base != SP)
                        || (cfi.drap_reg == UNDEFINED && cfi.cfa.base != BP)
                    {
                        return Err(Some("unsupported stack pointer realignment".to_string()));
                    }
                    if cfi.drap_reg != UNDEFINED {
                        // drap: and imm, %rsp
                        cfi.cfa = CfiReg { base: cfi.drap_reg, offset: 0 };
                        cfi.stack_size = 0;
                        cfi.drap = true;
                    }
                    // Old GCC realigns with a frame pointer and no DRAP: nothing changes.
                }
                Src::Pop | Src::Popf => pop_reg(cfi, dest),
                Src::RegIndirect { reg: src, offset } => load(cfi, r(src), offset, dest),
                Src::Const => return Err(Some("unknown stack-related instruction".to_string())),
            }
        }
        Dest::Push | Dest::Pushf => {
            cfi.stack_size = cfi.stack_size.wrapping_add(8);
            if cfi.cfa.base == SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_add(8);
            }
            let Src::Reg(src) = op.src else { return Ok(()) };
            let src = r(src);
            if cfi.drap {
                if src == cfi.cfa.base && src == cfi.drap_reg {
                    // drap: push %drap
                    cfi.cfa = CfiReg { base: BP_INDIRECT, offset: -cfi.stack_size };
                    cfi.drap_offset = -cfi.stack_size;
                } else if src == BP && cfi.cfa.base == cfi.drap_reg {
                    // drap: push %rbp
                    cfi.stack_size = 0;
                } else {
                    // drap: push %reg
                    let off = -cfi.stack_size;
                    save_reg(cfi, src, BP, off);
                }
            } else {
                let off = -cfi.stack_size;
                save_reg(cfi, src, CFA, off);
            }
            if ctx.stackval && ctx.in_function && src == BP && cfi.cfa.base != BP {
                cfi.bp_scratch = true;
            }
        }
        Dest::RegIndirect { reg: dest, offset } => {
            let dest = r(dest);
            let src = match op.src {
                Src::Reg(s) => r(s),
                _ => return Ok(()),
            };
            if cfi.drap {
                if src == cfi.cfa.base && src == cfi.drap_reg {
                    // drap: mov %drap, disp(%rbp)
                    cfi.cfa = CfiReg { base: BP_INDIRECT, offset };
                    cfi.drap_offset = offset;
                } else {
                    // drap: mov reg, disp(%rbp)
                    save_reg(cfi, src, BP, offset);
                }
            } else if dest == cfi.cfa.base {
                // mov reg, disp(%rbp) / mov reg, disp(%rsp)
                let off = offset.wrapping_sub(cfi.cfa.offset);
                save_reg(cfi, src, CFA, off);
            } else if dest == SP {
                // mov reg, disp(%rsp)
                let off = offset.wrapping_sub(cfi.stack_size);
                save_reg(cfi, src, CFA, off);
            } else if src == SP && offset == 0 {
                // mov %rsp, (%reg): set up a stack swizzle.
                if let Some(v) = usize::try_from(dest).ok().filter(|&i| i < NUM_REGS) {
                    cfi.vals[v] = CfiReg { base: SP_INDIRECT, offset: cfi.cfa.offset };
                }
            }
        }
        Dest::Mem => {
            if !matches!(op.src, Src::Pop | Src::Popf) {
                return Err(Some("unknown stack-related memory operation".to_string()));
            }
            // pop mem
            cfi.stack_size = cfi.stack_size.wrapping_sub(8);
            if cfi.cfa.base == SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
            }
        }
    }
    Ok(())
}

fn set_val(cfi: &mut CfiState, reg: i32, val: CfiReg) {
    if let Some(v) = usize::try_from(reg).ok().filter(|&i| i < NUM_REGS) {
        cfi.vals[v] = val;
    }
}

/// `mov %src, %dest` between registers.
fn mov_reg(cfi: &mut CfiState, src: i32, dest: i32) {
    let bp_at_top = {
        let bp = cfi.regs[BP as usize];
        bp.base == CFA && bp.offset == -cfi.cfa.offset
    };
    if src == SP && dest == BP && cfi.cfa.base == SP && bp_at_top {
        // mov %rsp, %rbp: the frame pointer is set up.
        cfi.cfa.base = dest;
        cfi.bp_scratch = false;
    } else if src == SP && dest == BP && cfi.drap {
        // drap: mov %rsp, %rbp
        cfi.regs[BP as usize] = CfiReg { base: BP, offset: -cfi.stack_size };
        cfi.bp_scratch = false;
    } else if src == SP && cfi.cfa.base == SP {
        // mov %rsp, %reg: remember where it points, for a later mov %reg, %rsp.
        let val = CfiReg { base: CFA, offset: -cfi.stack_size };
        set_val(cfi, dest, val);
    } else if src == BP && dest == SP && (cfi.cfa.base == BP || cfi.cfa.base == cfi.drap_reg) {
        // mov %rbp, %rsp: restore the stack pointer (Clang).
        cfi.stack_size = -cfi.regs[BP as usize].offset;
    } else if dest == cfi.cfa.base {
        // mov %reg, %rsp
        let val = reg_at(&cfi.vals, src);
        if cfi.cfa.base == SP && val.base == CFA {
            cfi.cfa.offset = -val.offset;
            cfi.stack_size = cfi.cfa.offset;
        } else if cfi.cfa.base == SP && val.base == SP_INDIRECT && val.offset == cfi.cfa.offset {
            // Stack swizzle: the previous stack pointer is at the top of the new stack.
            cfi.cfa.base = SP_INDIRECT;
        } else {
            cfi.cfa = CfiReg { base: UNDEFINED, offset: 0 };
        }
    } else if dest == SP && reg_at(&cfi.vals, src).base == SP_INDIRECT && reg_at(&cfi.vals, src).offset == cfi.cfa.offset {
        // The swizzle again, with a CFA that cannot change base: pretend to push, so the
        // later `pop %rsp` balances.
        cfi.stack_size = cfi.stack_size.wrapping_add(8);
    } else if reg_at(&cfi.vals, src).base == CFA {
        // Clang passes the saved stack pointer between registers.
        let val = reg_at(&cfi.vals, src);
        set_val(cfi, dest, CfiReg { base: CFA, offset: val.offset });
    }
}

/// `dest = src + offset`: add/sub on a register, or lea.
fn add_reg(cfi: &mut CfiState, src: i32, offset: i32, dest: i32, ctx: &OpContext) -> Result<(), Option<String>> {
    if dest == SP && src == SP {
        // add imm, %rsp
        cfi.stack_size = cfi.stack_size.wrapping_sub(offset);
        if cfi.cfa.base == SP {
            cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(offset);
        }
        return Ok(());
    }
    if dest == SP && src == BP {
        // (LoongArch's frame-pointer forms never occur on x86.)
        if !(cfi.cfa.base == BP && cfi.cfa.offset == 0) {
            // lea disp(%rbp), %rsp
            cfi.stack_size = -(offset.wrapping_add(cfi.regs[BP as usize].offset));
        }
        return Ok(());
    }
    if src == SP && cfi.cfa.base == SP {
        // lea disp(%rsp), %reg: a DRAP candidate, and a known value.
        cfi.drap_reg = dest;
        let val = CfiReg { base: CFA, offset: (-cfi.stack_size).wrapping_add(offset) };
        set_val(cfi, dest, val);
        return Ok(());
    }
    if cfi.drap && dest == SP && src == cfi.drap_reg {
        // drap: lea disp(%drap), %rsp
        cfi.cfa = CfiReg { base: SP, offset: -offset };
        cfi.stack_size = -offset;
        cfi.drap_reg = UNDEFINED;
        cfi.drap = false;
        return Ok(());
    }
    if dest == cfi.cfa.base && !ctx.next_has_hint {
        return Err(Some("unsupported stack register modification".to_string()));
    }
    Ok(())
}

/// `pop %dest`.
fn pop_reg(cfi: &mut CfiState, dest: i32) {
    if dest == SP && cfi.cfa.base == SP_INDIRECT {
        // pop %rsp: back from a stack swizzle.
        cfi.cfa.base = SP;
        return;
    }
    if !cfi.drap && dest == cfi.cfa.base {
        // pop %rbp
        cfi.cfa.base = SP;
    }
    if cfi.drap && cfi.cfa.base == BP_INDIRECT && dest == cfi.drap_reg && cfi.drap_offset == -cfi.stack_size {
        // drap: pop %drap
        cfi.cfa = CfiReg { base: cfi.drap_reg, offset: 0 };
        cfi.drap_offset = -1;
    } else if cfi.stack_size == -reg_at(&cfi.regs, dest).offset {
        // pop %reg from its save slot
        restore_reg(cfi, dest);
    }
    cfi.stack_size = cfi.stack_size.wrapping_sub(8);
    if cfi.cfa.base == SP {
        cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
    }
}

/// `mov disp(%src), %dest`.
fn load(cfi: &mut CfiState, src: i32, offset: i32, dest: i32) {
    if !cfi.drap && dest == cfi.cfa.base && dest == BP {
        // mov disp(%rsp), %rbp
        cfi.cfa = CfiReg { base: SP, offset: cfi.stack_size };
    }
    if cfi.drap && src == BP && offset == cfi.drap_offset {
        // drap: mov disp(%rbp), %drap
        cfi.cfa = CfiReg { base: cfi.drap_reg, offset: 0 };
        cfi.drap_offset = -1;
    }
    let saved = reg_at(&cfi.regs, dest);
    if cfi.drap && src == BP && offset == saved.offset {
        // drap: mov disp(%rbp), %reg
        restore_reg(cfi, dest);
    } else if src == cfi.cfa.base && offset == saved.offset.wrapping_add(cfi.cfa.offset) {
        // mov disp(%rbp), %reg / mov disp(%rsp), %reg
        restore_reg(cfi, dest);
    } else if src == SP && offset == saved.offset.wrapping_add(cfi.stack_size) {
        // mov disp(%rsp), %reg
        restore_reg(cfi, dest);
    }
}

/// objtool's `has_modified_stack_frame`: anything differs from the entry state.
pub fn has_modified_stack_frame(cfi: &CfiState) -> bool {
    let init = function_entry();
    cfi.cfa != init.cfa || cfi.drap || cfi.stack_size != init.cfa.offset || cfi.regs != init.regs
}

/// objtool's `has_valid_stack_frame` (`--stackval`): a frame pointer set up with the return
/// address above it.
pub fn has_valid_stack_frame(cfi: &CfiState) -> bool {
    let bp = cfi.regs[BP as usize];
    let ra = cfi.regs[RA];
    if cfi.cfa.base == BP && bp.base == CFA && bp.offset == -cfi.cfa.offset && ra.base == CFA && ra.offset == -cfi.cfa.offset + 8 {
        return true;
    }
    cfi.drap && bp.base == BP
}

/// objtool's `insn_cfi_match`: the first difference between a stored state and an arriving
/// one, worded as objtool words it, or `None` when they agree.
pub fn mismatch(a: &CfiState, b: &CfiState) -> Option<String> {
    if a.cfa != b.cfa {
        return Some(format!(
            "stack state mismatch: cfa1={}{:+} cfa2={}{:+}",
            a.cfa.base, a.cfa.offset, b.cfa.base, b.cfa.offset
        ));
    }
    if a.regs != b.regs {
        let i = (0..NUM_REGS).find(|&i| a.regs[i] != b.regs[i]).unwrap_or(0);
        return Some(format!(
            "stack state mismatch: reg1[{i}]={}{:+} reg2[{i}]={}{:+}",
            a.regs[i].base, a.regs[i].offset, b.regs[i].base, b.regs[i].offset
        ));
    }
    if a.kind != b.kind {
        return Some(format!("stack state mismatch: type1={} type2={}", a.kind, b.kind));
    }
    if a.drap != b.drap || (a.drap && a.drap_reg != b.drap_reg) || (a.drap && a.drap_offset != b.drap_offset) {
        return Some(format!(
            "stack state mismatch: drap1={}({},{}) drap2={}({},{})",
            u8::from(a.drap),
            a.drap_reg,
            a.drap_offset,
            u8::from(b.drap),
            b.drap_reg,
            b.drap_offset
        ));
    }
    None
}

/// The ORC entry for a state (objtool's `init_orc_entry`); `None` state means unreachable or
/// ignored code. `Err` carries objtool's message for states ORC cannot express.
pub fn orc_entry(cfi: Option<&CfiState>) -> Result<Entry, String> {
    let Some(cfi) = cfi else { return Ok(Entry::UNDEFINED) };
    let kind = match cfi.kind {
        hint_type::UNDEFINED => return Ok(Entry::UNDEFINED),
        hint_type::END_OF_STACK => return Ok(Entry::END_OF_STACK),
        hint_type::CALL => EntryType::Call,
        hint_type::REGS => EntryType::Regs,
        hint_type::REGS_PARTIAL => EntryType::RegsPartial,
        other => return Err(format!("unknown unwind hint type {other}")),
    };
    let sp_reg = match cfi.cfa.base {
        SP => OrcReg::SP,
        SP_INDIRECT => OrcReg::SP_INDIRECT,
        BP => OrcReg::BP,
        BP_INDIRECT => OrcReg::BP_INDIRECT,
        10 => OrcReg::R10,
        13 => OrcReg::R13,
        7 => OrcReg::DI,
        2 => OrcReg::DX,
        other => return Err(format!("unknown CFA base reg {other}")),
    };
    let bp = cfi.regs[BP as usize];
    let bp_reg = match bp.base {
        UNDEFINED => OrcReg::UNDEFINED,
        CFA => OrcReg::PREV_SP,
        BP => OrcReg::BP,
        other => return Err(format!("unknown BP base reg {other}")),
    };
    Ok(Entry {
        kind,
        sp_reg,
        sp_offset: cfi.cfa.offset as i16,
        bp_reg,
        bp_offset: bp.offset as i16,
        signal: cfi.signal,
    })
}

/// The state an unwind hint sets (objtool's `read_unwind_hints`), from the state already
/// stored at the instruction (or nothing known). `None` for an sp register hints cannot name.
pub fn from_hint(base_state: Option<&CfiState>, sp_reg: u8, sp_offset: i16, kind: u8, signal: bool) -> Option<CfiState> {
    let mut cfi = base_state.cloned().unwrap_or_else(undefined);
    cfi.cfa.base = match OrcReg(sp_reg) {
        OrcReg::UNDEFINED => UNDEFINED,
        OrcReg::SP => SP,
        OrcReg::BP => BP,
        OrcReg::SP_INDIRECT => SP_INDIRECT,
        OrcReg::R10 => 10,
        OrcReg::R13 => 13,
        OrcReg::DI => 7,
        OrcReg::DX => 2,
        _ => return None,
    };
    cfi.cfa.offset = i32::from(sp_offset);
    cfi.kind = kind;
    cfi.signal = signal;
    Some(cfi)
}
