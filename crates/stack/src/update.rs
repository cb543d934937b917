//! The update rules: how one stack operation changes the CFI state (objtool's
//! `update_cfi_state`), rule for rule.
//!
//! Each rule below recognises one idiom compilers and the kernel's assembly use, and only
//! that idiom: anything else that touches the stack pointer either leaves the state alone
//! (and may be caught later by a merge check) or is an error. The arithmetic wraps like
//! objtool's 32-bit `int`s, so garbage never panics.
//!
//! A note on DRAP, GCC's way of realigning the stack (`-mstackrealign`, or a local with a
//! large alignment): it keeps the pre-alignment stack pointer in a "DRAP" register (`%r10`,
//! or `%r13` saved first) while `%rsp` is rounded down:
//!
//! ```text
//! lea    0x8(%rsp),%r10        DRAP candidate: r10 = CFA
//! and    $-64,%rsp             realigned: CFA = r10 + 0
//! pushq  -0x8(%r10)            copy of the return address
//! push   %rbp                  (stack size restarts at 0 for the frame below)
//! mov    %rsp,%rbp             rbp saved at bp+0
//! push   %r10                  DRAP saved: CFA = *(bp - 8)
//! ...
//! pop    %r10                  CFA = r10 + 0 again
//! pop    %rbp
//! lea    -0x8(%r10),%rsp       back to CFA = rsp + 8, DRAP done
//! ret
//! ```

use orc_decode::{Dest, Reg, Src, StackOp};

use crate::state::{Base, CfiReg, CfiState, INITIAL_REGS};

/// What the rules need to know about the instruction besides its operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OpContext {
    /// The instruction belongs to an STT_FUNC symbol (objtool's `insn_func(insn) != NULL`).
    /// Stack operations with an undefined CFA are an error only there.
    pub in_function: bool,
    /// The next instruction carries an unwind hint, which will replace whatever state this
    /// instruction leaves: an unsupported modification of the CFA base is then tolerated.
    pub next_has_hint: bool,
    /// objtool runs with `--stackval` (frame-pointer checks): pushes of `%rbp` while it is not
    /// the CFA base mark it as a scratch register.
    pub stackval: bool,
}

impl OpContext {
    /// An instruction inside a function, no hint next, no `--stackval`: the common case.
    pub const IN_FUNCTION: OpContext = OpContext {
        in_function: true,
        next_has_hint: false,
        stackval: false,
    };
}

/// A stack operation objtool cannot follow. The walk of this path stops; objtool prints the
/// message with the instruction's location (`SEC+0xOFF: message`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, thiserror::Error)]
pub enum StackError {
    /// A stack operation inside a function whose CFA was already lost.
    #[error("undefined stack state")]
    UndefinedStackState,
    /// The register the CFA is based on changed in a way no rule models.
    #[error("unsupported stack register modification")]
    UnsupportedStackRegisterModification,
    /// `and $mask,%rsp` without a DRAP candidate (or, without DRAP, without a frame pointer).
    #[error("unsupported stack pointer realignment")]
    UnsupportedStackPointerRealignment,
    /// A write to untracked memory that is not a pop.
    #[error("unknown stack-related memory operation")]
    UnknownStackRelatedMemoryOperation,
    /// An operation shape no rule handles (a constant moved into a register).
    #[error("unknown stack-related instruction")]
    UnknownStackRelatedInstruction,
}

/// The register field objtool would read from an operand: the register of a register,
/// indirect, add or and source; `%rax` (its zeroed field) for the others.
fn src_reg(src: Src) -> Reg {
    match src {
        Src::Reg(r)
        | Src::RegIndirect { reg: r, .. }
        | Src::Add { reg: r, .. }
        | Src::And { reg: r, .. } => r,
        Src::Const | Src::Pop | Src::Popf => Reg::AX,
    }
}

impl CfiState {
    /// Applies one stack operation (objtool's `update_cfi_state`).
    ///
    /// On error the state may be partly updated; objtool abandons the path at that point.
    pub fn apply(&mut self, op: &StackOp, ctx: &OpContext) -> Result<(), StackError> {
        update(self, op, ctx)
    }

    /// Applies an instruction's operations in order, stopping at the first error (objtool's
    /// `handle_insn_ops`, without the uaccess bookkeeping of PUSHF/POPF inside alternatives,
    /// which belongs to the walker).
    pub fn apply_all<'a>(
        &mut self,
        ops: impl IntoIterator<Item = &'a StackOp>,
        ctx: &OpContext,
    ) -> Result<(), StackError> {
        ops.into_iter().try_for_each(|op| update(self, op, ctx))
    }

    fn reg_mut(&mut self, reg: Reg) -> &mut CfiReg {
        &mut self.regs[reg.index()]
    }

    fn val(&self, reg: Reg) -> CfiReg {
        self.vals[reg.index()]
    }

    /// Records where a callee-saved register's caller value went, unless it was already
    /// saved: only the first save after entry holds the caller's value.
    fn save_reg(&mut self, reg: Reg, base: Base, offset: i32) {
        if reg.is_callee_saved() && self.reg(reg).base == Base::UNDEFINED {
            *self.reg_mut(reg) = CfiReg::new(base, offset);
        }
    }

    /// The register holds its caller's value again: back to its state at function entry.
    fn restore_reg(&mut self, reg: Reg) {
        *self.reg_mut(reg) = INITIAL_REGS[reg.index()];
    }
}

/// Applies one stack operation to `cfi` (objtool's `update_cfi_state`): see the rules below.
pub fn update(cfi: &mut CfiState, op: &StackOp, ctx: &OpContext) -> Result<(), StackError> {
    // After UNWIND_HINT_UNDEFINED nothing is tracked until the next hint.
    if cfi.force_undefined {
        return Ok(());
    }

    // With the CFA lost, no operation can be interpreted. Inside a function that is an
    // error (the frame was broken earlier); elsewhere (entry code before its first hint)
    // the operation is just ignored.
    if cfi.cfa.base == Base::UNDEFINED {
        return if ctx.in_function {
            Err(StackError::UndefinedStackState)
        } else {
            Ok(())
        };
    }

    // Under a pt_regs hint only the CFA offset moves with pushes, pops and rsp adjustments.
    if cfi.frame_type.is_regs() {
        update_regs_frame(cfi, op);
        return Ok(());
    }

    match op.dest {
        Dest::Reg(dest) => match op.src {
            Src::Reg(src) => mov_reg(cfi, src, dest),
            Src::Add { reg: src, offset } => add(cfi, src, offset, dest, ctx)?,
            Src::And { .. } => and(cfi, dest)?,
            Src::Pop | Src::Popf => pop(cfi, dest),
            Src::RegIndirect { reg: src, offset } => load(cfi, src, offset, dest),
            Src::Const => return Err(StackError::UnknownStackRelatedInstruction),
        },
        Dest::Push | Dest::Pushf => push(cfi, op.src, ctx),
        Dest::RegIndirect { reg: base, offset } => store(cfi, src_reg(op.src), base, offset),
        Dest::Mem => {
            // Only pops write untracked memory (`popq mem`, `pop %fs`, `popf`).
            if !matches!(op.src, Src::Pop | Src::Popf) {
                return Err(StackError::UnknownStackRelatedMemoryOperation);
            }
            cfi.stack_size = cfi.stack_size.wrapping_sub(8);
            if cfi.cfa.base == Base::SP {
                cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
            }
        }
    }
    Ok(())
}

/// Under a REGS or REGS_PARTIAL frame (entry code), the CFA follows the stack pointer through
/// pushes, pops and `add`/`sub` on `%rsp` while it is `%rsp`-based (directly or through a
/// swizzle); nothing else is tracked, and the stack size is left alone.
fn update_regs_frame(cfi: &mut CfiState, op: &StackOp) {
    let cfa = &mut cfi.cfa;
    if cfa.base != Base::SP && cfa.base != Base::SP_INDIRECT {
        return;
    }
    if matches!(op.dest, Dest::Push | Dest::Pushf) {
        cfa.offset = cfa.offset.wrapping_add(8);
    }
    if matches!(op.src, Src::Pop | Src::Popf) {
        cfa.offset = cfa.offset.wrapping_sub(8);
    }
    if let (
        Dest::Reg(Reg::SP),
        Src::Add {
            reg: Reg::SP,
            offset,
        },
    ) = (op.dest, op.src)
    {
        cfa.offset = cfa.offset.wrapping_sub(offset);
    }
}

/// `mov %src,%dest` between registers (and `lea (%src),%dest`).
fn mov_reg(cfi: &mut CfiState, src: Reg, dest: Reg) {
    let cfa = cfi.cfa;
    if src == Reg::SP
        && dest == Reg::BP
        && cfa.base == Base::SP
        && cfi.reg(Reg::BP) == CfiReg::new(Base::CFA, cfa.offset.wrapping_neg())
    {
        // mov %rsp,%rbp right after push %rbp: the frame pointer is set up and the CFA is
        // now tracked from %rbp (same offset), which survives later %rsp changes.
        cfi.cfa.base = Base::BP;
        cfi.bp_scratch = false;
    } else if src == Reg::SP && dest == Reg::BP && cfi.drap {
        // mov %rsp,%rbp in a realigned (DRAP) frame: the CFA stays on the DRAP register, but
        // the caller's %rbp, pushed just before, is now findable at bp+0 relative to %rbp.
        *cfi.reg_mut(Reg::BP) = CfiReg::new(Base::BP, cfi.stack_size.wrapping_neg());
        cfi.bp_scratch = false;
    } else if src == Reg::SP && cfa.base == Base::SP {
        // mov %rsp,%reg: remember that reg holds CFA - stack_size, so that a later
        // mov %reg,%rsp can restore the frame (GCC occasionally does this).
        cfi.vals[dest.index()] = CfiReg::new(Base::CFA, cfi.stack_size.wrapping_neg());
    } else if src == Reg::BP
        && dest == Reg::SP
        && (cfa.base == Base::BP || cfa.base == cfi.drap_reg)
    {
        // mov %rbp,%rsp (and the first half of leave): %rsp points back at the saved %rbp, so
        // the stack size is the distance from the CFA to that slot.
        cfi.stack_size = cfi.reg(Reg::BP).offset.wrapping_neg();
    } else if cfa.base == dest {
        // A move into the CFA base register, i.e. mov %reg,%rsp while the CFA is
        // %rsp-based.
        let val = cfi.val(src);
        if cfa.base == Base::SP && val.base == Base::CFA {
            // reg held a CFA-relative copy of %rsp (mov %rsp,%reg or lea off(%rsp),%reg
            // earlier): the frame is restored to that point.
            cfi.cfa.offset = val.offset.wrapping_neg();
            cfi.stack_size = cfi.cfa.offset;
        } else if cfa.base == Base::SP && val.base == Base::SP_INDIRECT && val.offset == cfa.offset
        {
            // Stack swizzle, step 2: reg points at a word holding the old %rsp
            // (mov %rsp,(%reg) earlier) and becomes the stack pointer. The caller's frame is
            // now *%rsp + offset until pop %rsp switches back.
            cfi.cfa.base = Base::SP_INDIRECT;
        } else {
            // Any other new stack pointer: the frame is lost.
            cfi.cfa = CfiReg::UNDEFINED;
        }
    } else if dest == Reg::SP
        && cfi.val(src).base == Base::SP_INDIRECT
        && cfi.val(src).offset == cfa.offset
    {
        // The same swizzle while the CFA is not %rsp-based (a frame pointer holds it): the
        // base stays, and the pop %rsp that ends the swizzle will be an ordinary pop, so count
        // this as a push to keep the stack size balanced.
        cfi.stack_size = cfi.stack_size.wrapping_add(8);
    } else if cfi.val(src).base == Base::CFA {
        // Clang passes a copy of %rsp through several registers (mov %rsp,%rdx;
        // mov %rdx,%rbx; ... mov %rbx,%rsp): the copy keeps its meaning.
        cfi.vals[dest.index()] = CfiReg::new(Base::CFA, cfi.val(src).offset);
    }
}

/// `dest = src + offset`: `add`/`sub $imm,%rsp`, `lea off(%src),%dest`, and the
/// register-register `add %reg,%rsp` (offset 0).
fn add(
    cfi: &mut CfiState,
    src: Reg,
    offset: i32,
    dest: Reg,
    ctx: &OpContext,
) -> Result<(), StackError> {
    if dest == Reg::SP && src == Reg::SP {
        // add/sub $imm,%rsp: the stack grows or shrinks by -imm.
        cfi.stack_size = cfi.stack_size.wrapping_sub(offset);
        if cfi.cfa.base == Base::SP {
            cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(offset);
        }
        return Ok(());
    }

    // (objtool's `lea off(%rsp),%rbp` frame setup rule exists only for LoongArch functions
    // marked as using a frame pointer; on x86 such an lea falls through to the rules below.)

    if dest == Reg::SP && src == Reg::BP {
        if cfi.cfa.base == Base::BP && cfi.cfa.offset == 0 {
            // (the LoongArch `addi.d sp,fp,imm` epilogue; nothing on x86)
        } else {
            // lea -off(%rbp),%rsp: an epilogue pointing %rsp below the saved registers; the
            // stack size follows from where %rbp's save slot is.
            cfi.stack_size = offset.wrapping_add(cfi.reg(Reg::BP).offset).wrapping_neg();
        }
        return Ok(());
    }

    if src == Reg::SP && cfi.cfa.base == Base::SP {
        // lea off(%rsp),%reg: reg becomes a DRAP candidate (it holds a CFA-relative value,
        // which and $mask,%rsp may make the CFA base), and its value is remembered for a
        // later mov %reg,%rsp.
        cfi.drap_reg = Base::reg(dest);
        cfi.vals[dest.index()] = CfiReg::new(
            Base::CFA,
            cfi.stack_size.wrapping_neg().wrapping_add(offset),
        );
        return Ok(());
    }

    if cfi.drap && dest == Reg::SP && cfi.drap_reg == src {
        // lea -off(%drap),%rsp: the end of a DRAP frame. %rsp is back below the return
        // address; the CFA is %rsp-based again.
        cfi.cfa.base = Base::SP;
        cfi.stack_size = offset.wrapping_neg();
        cfi.cfa.offset = cfi.stack_size;
        cfi.drap_reg = Base::UNDEFINED;
        cfi.drap = false;
        return Ok(());
    }

    if cfi.cfa.base == dest && !ctx.next_has_hint {
        // Some other arithmetic on the CFA base register.
        return Err(StackError::UnsupportedStackRegisterModification);
    }
    Ok(())
}

/// `and $mask,%rsp`: stack realignment.
fn and(cfi: &mut CfiState, dest: Reg) -> Result<(), StackError> {
    let has_candidate = cfi.drap_reg != Base::UNDEFINED;
    // Realigning makes %rsp unknowable, so the CFA must already be held elsewhere: by a
    // DRAP candidate while the CFA is still %rsp-based, or (old GCC, no DRAP) by %rbp.
    if dest != Reg::SP
        || (has_candidate && cfi.cfa.base != Base::SP)
        || (!has_candidate && cfi.cfa.base != Base::BP)
    {
        return Err(StackError::UnsupportedStackPointerRealignment);
    }
    if has_candidate {
        // The DRAP register holds the CFA (lea off(%rsp),%drap was chosen to point there):
        // it becomes the base, and the stack below is counted afresh.
        cfi.cfa = CfiReg::new(cfi.drap_reg, 0);
        cfi.stack_size = 0;
        cfi.drap = true;
    }
    // Without DRAP, the frame pointer already holds the CFA: nothing changes.
    Ok(())
}

/// `pop %dest`.
fn pop(cfi: &mut CfiState, dest: Reg) {
    if dest == Reg::SP && cfi.cfa.base == Base::SP_INDIRECT {
        // pop %rsp: the end of a stack swizzle, back on the original stack (whose top was
        // the saved pointer) with the CFA %rsp-based again.
        cfi.cfa.base = Base::SP;
        return;
    }

    if !cfi.drap && cfi.cfa.base == dest {
        // pop %rbp while the CFA is %rbp-based (an epilogue after mov %rbp,%rsp): the CFA is
        // %rsp-based again; the pop itself is counted below.
        cfi.cfa.base = Base::SP;
    }

    if cfi.drap
        && cfi.cfa.base == Base::BP_INDIRECT
        && cfi.drap_reg == dest
        && cfi.drap_offset == cfi.stack_size.wrapping_neg()
    {
        // pop %drap from its save slot: the CFA is the DRAP register again.
        cfi.cfa = CfiReg::new(cfi.drap_reg, 0);
        cfi.drap_offset = -1;
    } else if cfi.stack_size == cfi.reg(dest).offset.wrapping_neg() {
        // Popping a register from the slot it was pushed to: its caller's value is back.
        cfi.restore_reg(dest);
    }

    cfi.stack_size = cfi.stack_size.wrapping_sub(8);
    if cfi.cfa.base == Base::SP {
        cfi.cfa.offset = cfi.cfa.offset.wrapping_sub(8);
    }
}

/// `mov off(%src),%dest`: a load from a stack slot.
fn load(cfi: &mut CfiState, src: Reg, offset: i32, dest: Reg) {
    if !cfi.drap && cfi.cfa.base == dest && dest == Reg::BP {
        // mov off(%rsp),%rbp while the CFA is %rbp-based: %rbp is being reloaded, so track
        // the CFA from %rsp, at the current stack size.
        cfi.cfa = CfiReg::new(Base::SP, cfi.stack_size);
    }

    if cfi.drap && src == Reg::BP && offset == cfi.drap_offset {
        // mov off(%rbp),%drap from the DRAP save slot: the CFA is the DRAP register again.
        cfi.cfa = CfiReg::new(cfi.drap_reg, 0);
        cfi.drap_offset = -1;
    }

    if cfi.drap && src == Reg::BP && offset == cfi.reg(dest).offset {
        // mov off(%rbp),%reg from its %rbp-relative save slot in a DRAP frame.
        cfi.restore_reg(dest);
    } else if cfi.cfa.base == src && offset == cfi.reg(dest).offset.wrapping_add(cfi.cfa.offset) {
        // mov off(%base),%reg from its CFA-relative save slot, addressed from the CFA base.
        cfi.restore_reg(dest);
    } else if src == Reg::SP && offset == cfi.reg(dest).offset.wrapping_add(cfi.stack_size) {
        // mov off(%rsp),%reg from its save slot, addressed from %rsp.
        cfi.restore_reg(dest);
    }
}

/// `push` (of a register, or of something untracked) and `pushf`.
fn push(cfi: &mut CfiState, src: Src, ctx: &OpContext) {
    cfi.stack_size = cfi.stack_size.wrapping_add(8);
    if cfi.cfa.base == Base::SP {
        cfi.cfa.offset = cfi.cfa.offset.wrapping_add(8);
    }

    let Src::Reg(src) = src else { return };

    if cfi.drap {
        if cfi.cfa.base == src && cfi.drap_reg == src {
            // push %drap while it holds the CFA: the CFA is now found through the saved copy,
            // *(%rbp - stack_size), and the slot is remembered for the restore.
            cfi.cfa = CfiReg::new(Base::BP_INDIRECT, cfi.stack_size.wrapping_neg());
            cfi.drap_offset = cfi.stack_size.wrapping_neg();
        } else if src == Reg::BP && cfi.cfa.base == cfi.drap_reg {
            // push %rbp of the realigned frame: offsets below are counted from here (mov
            // %rsp,%rbp follows and %rbp-relative slots start at 0).
            cfi.stack_size = 0;
        } else {
            // Callee-saved registers in a realigned frame are found from %rbp.
            cfi.save_reg(src, Base::BP, cfi.stack_size.wrapping_neg());
        }
    } else {
        // push %reg: a callee-saved register's caller value is at CFA - stack_size.
        cfi.save_reg(src, Base::CFA, cfi.stack_size.wrapping_neg());
    }

    // Assembly that pushes %rbp without making it the frame pointer uses it as a scratch
    // register, which breaks frame-pointer unwinding (reported at the return).
    if ctx.stackval && ctx.in_function && src == Reg::BP && cfi.cfa.base != Base::BP {
        cfi.bp_scratch = true;
    }
}

/// `mov %src,off(%base)`: a store to a stack slot, or of `%rsp` through another register.
fn store(cfi: &mut CfiState, src: Reg, base: Reg, offset: i32) {
    if cfi.drap {
        if cfi.cfa.base == src && cfi.drap_reg == src {
            // mov %drap,off(%rbp): the DRAP register is saved in the frame; the CFA is found
            // through that slot.
            cfi.cfa = CfiReg::new(Base::BP_INDIRECT, offset);
            cfi.drap_offset = offset;
        } else {
            // mov %reg,off(%rbp) in a realigned frame (the base register is assumed to be
            // %rbp, as GCC does).
            cfi.save_reg(src, Base::BP, offset);
        }
    } else if cfi.cfa.base == base {
        // mov %reg,off(%base) with the CFA's own base: slot at CFA + (off - cfa offset).
        cfi.save_reg(src, Base::CFA, offset.wrapping_sub(cfi.cfa.offset));
    } else if base == Reg::SP {
        // mov %reg,off(%rsp) with a frame pointer as the CFA base: slot found through the
        // stack size.
        cfi.save_reg(src, Base::CFA, offset.wrapping_sub(cfi.stack_size));
    } else if src == Reg::SP && offset == 0 {
        // mov %rsp,(%reg): stack swizzle, step 1. The word at (reg) now holds the old stack
        // pointer, at the current CFA offset.
        cfi.vals[base.index()] = CfiReg::new(Base::SP_INDIRECT, cfi.cfa.offset);
    }
}
