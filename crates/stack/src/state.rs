//! The CFI state: where the caller's frame is and where registers were saved, before one
//! instruction.

use core::fmt;

use orc_decode::Reg;

/// What a location is relative to: a register, or one of objtool's pseudo-bases.
///
/// Stored as objtool's number (a register's ModRM number 0-16, or [`Base::UNDEFINED`] -1,
/// [`Base::CFA`] -2, [`Base::SP_INDIRECT`] -3, [`Base::BP_INDIRECT`] -4), because the update
/// rules compare bases with register numbers directly and the mismatch messages print the
/// numbers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Base(i8);

impl Base {
    /// Not known (a register not saved, a value not tracked, a lost CFA).
    pub const UNDEFINED: Base = Base(-1);
    /// Relative to the canonical frame address: the stack pointer before the call.
    pub const CFA: Base = Base(-2);
    /// As a CFA base: `*sp + offset` (5.12+), inside a stack swizzle.
    pub const SP_INDIRECT: Base = Base(-3);
    /// As a CFA base: `*(bp + offset)`, the DRAP pointer saved in a realigned frame.
    pub const BP_INDIRECT: Base = Base(-4);
    /// Relative to `%rsp`.
    pub const SP: Base = Base::reg(Reg::SP);
    /// Relative to `%rbp`.
    pub const BP: Base = Base::reg(Reg::BP);

    /// Relative to a register.
    pub const fn reg(reg: Reg) -> Base {
        Base(reg.number() as i8)
    }

    /// The register, if this base is one.
    pub fn as_reg(self) -> Option<Reg> {
        u8::try_from(self.0).ok().and_then(Reg::new)
    }

    /// Objtool's number for this base.
    pub const fn number(self) -> i32 {
        self.0 as i32
    }

    /// The base with objtool's number `n`, if there is one (-4 to 16).
    pub fn from_number(n: i32) -> Option<Base> {
        match n {
            -4..=-1 => Some(Base(n as i8)),
            0..=16 => Some(Base(n as i8)),
            _ => None,
        }
    }
}

impl From<Reg> for Base {
    fn from(reg: Reg) -> Base {
        Base::reg(reg)
    }
}

impl PartialEq<Reg> for Base {
    fn eq(&self, reg: &Reg) -> bool {
        *self == Base::reg(*reg)
    }
}

impl fmt::Debug for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Base::UNDEFINED => f.write_str("undef"),
            Base::CFA => f.write_str("cfa"),
            Base::SP_INDIRECT => f.write_str("(sp)"),
            Base::BP_INDIRECT => f.write_str("(bp)"),
            b => match b.as_reg() {
                Some(r) => write!(f, "{r}"),
                None => write!(f, "base{}", b.0),
            },
        }
    }
}

impl fmt::Display for Base {
    /// `undef`, `cfa`, `(sp)`, `(bp)`, or a register (`%rsp`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A location: a base plus an offset (objtool's `struct cfi_reg`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CfiReg {
    /// What the offset is relative to.
    pub base: Base,
    /// The offset.
    pub offset: i32,
}

impl CfiReg {
    /// Unknown: base [`Base::UNDEFINED`], offset 0.
    pub const UNDEFINED: CfiReg = CfiReg {
        base: Base::UNDEFINED,
        offset: 0,
    };

    /// `base + offset`.
    pub const fn new(base: Base, offset: i32) -> CfiReg {
        CfiReg { base, offset }
    }

    /// Objtool's rendering in messages: the base number and the signed offset, `5+16`.
    pub fn objtool_text(self) -> String {
        format!("{}{:+}", self.base.number(), self.offset)
    }
}

impl fmt::Debug for CfiReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.base == Base::UNDEFINED && self.offset == 0 {
            f.write_str("undef")
        } else {
            write!(f, "{:?}{:+}", self.base, self.offset)
        }
    }
}

/// The frame type a state describes: objtool's `cfi_state.type`, which holds an unwind hint
/// type in the 6.4+ numbering (`UNWIND_HINT_TYPE_*`).
///
/// A newtype rather than an enum because a hint can put any number there; an unknown one only
/// becomes an error when the ORC entry is made.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameType(pub u8);

impl FrameType {
    /// No frame information. Also the type of the "unknown" state objtool starts code outside
    /// functions with.
    pub const UNDEFINED: FrameType = FrameType(0);
    /// The bottom of the stack.
    pub const END_OF_STACK: FrameType = FrameType(1);
    /// A normal call frame: every function.
    pub const CALL: FrameType = FrameType(2);
    /// The CFA points at a full `pt_regs`.
    pub const REGS: FrameType = FrameType(3);
    /// The CFA points at an iret frame (`pt_regs` minus the general registers).
    pub const REGS_PARTIAL: FrameType = FrameType(4);

    /// True for the two `pt_regs` types, under which only CFA offset changes are tracked.
    pub const fn is_regs(self) -> bool {
        self.0 == FrameType::REGS.0 || self.0 == FrameType::REGS_PARTIAL.0
    }
}

impl fmt::Debug for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameType::UNDEFINED => f.write_str("undefined"),
            FrameType::END_OF_STACK => f.write_str("end_of_stack"),
            FrameType::CALL => f.write_str("call"),
            FrameType::REGS => f.write_str("regs"),
            FrameType::REGS_PARTIAL => f.write_str("regs_partial"),
            FrameType(n) => write!(f, "type{n}"),
        }
    }
}

/// The number of register slots: the sixteen general-purpose registers and the return address.
pub const NUM_REGS: usize = Reg::COUNT;

/// Everything objtool knows about the stack before an instruction executes (its
/// `struct cfi_state`).
///
/// Equality and hashing cover every field, exactly like objtool's `memcmp`-based interning, so
/// two states are shared only if they are identical. The merge check at a join point is
/// weaker and is [`crate::mismatch`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CfiState {
    /// The canonical frame address (the caller's stack pointer): base and offset.
    pub cfa: CfiReg,
    /// Where each register's caller value is saved: [`Base::CFA`]- or [`Base::BP`]-relative,
    /// or [`CfiReg::UNDEFINED`]. Only callee-saved registers and the return address are
    /// recorded. Indexed by [`Reg::index`].
    pub regs: [CfiReg; NUM_REGS],
    /// Registers whose *value* is known: CFA-relative copies of the stack pointer
    /// (`mov %rsp,%rax`, `lea 8(%rsp),%rcx`), or [`Base::SP_INDIRECT`] for a register whose
    /// pointee holds the old stack pointer (a stack swizzle in progress).
    pub vals: [CfiReg; NUM_REGS],
    /// Bytes between the current stack pointer and the CFA, as far as pushes, pops and
    /// adjustments tell (8 at function entry: the return address).
    pub stack_size: i32,
    /// The DRAP register: a register holding the pre-realignment stack pointer
    /// (`lea 8(%rsp),%r10`), or [`Base::UNDEFINED`]. Becomes a candidate before `drap` is set.
    pub drap_reg: Base,
    /// Where the DRAP register was saved, relative to `%rbp` (or -1).
    pub drap_offset: i32,
    /// The frame type.
    pub frame_type: FrameType,
    /// `%rbp` is pushed while not being the CFA base: used as a scratch register (only
    /// tracked with `--stackval`).
    pub bp_scratch: bool,
    /// The stack was realigned through the DRAP register.
    pub drap: bool,
    /// An interrupted frame (from a hint): the unwinder looks up the exact ip.
    pub signal: bool,
    /// The end of the stack (hints of kernels before 6.4).
    pub end: bool,
    /// Stack operations are ignored (after an `UNWIND_HINT_UNDEFINED`, 6.5+).
    pub force_undefined: bool,
}

/// The register table at function entry: everything undefined except the return address,
/// at CFA-8 (objtool's `initial_func_cfi.regs`).
const fn initial_regs() -> [CfiReg; NUM_REGS] {
    let mut regs = [CfiReg::UNDEFINED; NUM_REGS];
    regs[Reg::RA.index()] = CfiReg::new(Base::CFA, -8);
    regs
}

/// Register slots at function entry; [`CfiState`]'s restore rules reset a register to this.
pub(crate) const INITIAL_REGS: [CfiReg; NUM_REGS] = initial_regs();

/// The CFA at function entry: the return address was just pushed, so the caller's stack
/// pointer is `%rsp + 8`.
pub const INITIAL_CFA: CfiReg = CfiReg::new(Base::SP, 8);

impl CfiState {
    /// Nothing known: CFA undefined, no registers saved, no DRAP, type
    /// [`FrameType::UNDEFINED`] (objtool's `init_cfi`). The state objtool walks code that is
    /// not in a function with, unless a hint says otherwise.
    pub const UNKNOWN: CfiState = CfiState {
        cfa: CfiReg::UNDEFINED,
        regs: [CfiReg::UNDEFINED; NUM_REGS],
        vals: [CfiReg::UNDEFINED; NUM_REGS],
        stack_size: 0,
        drap_reg: Base::UNDEFINED,
        drap_offset: -1,
        frame_type: FrameType::UNDEFINED,
        bp_scratch: false,
        drap: false,
        signal: false,
        end: false,
        force_undefined: false,
    };

    /// The state at a function's first instruction (objtool's `func_cfi`, and what
    /// `UNWIND_HINT_FUNC` gives): CFA = `%rsp + 8`, return address at CFA-8, 8 bytes on the
    /// stack, a call frame.
    pub const FUNCTION_ENTRY: CfiState = CfiState {
        cfa: INITIAL_CFA,
        regs: INITIAL_REGS,
        stack_size: 8,
        frame_type: FrameType::CALL,
        ..CfiState::UNKNOWN
    };

    /// The state an `UNWIND_HINT_UNDEFINED` gives (objtool's `force_undefined_cfi`): unknown,
    /// and staying unknown whatever the code does to the stack afterwards.
    pub const FORCE_UNDEFINED: CfiState = CfiState {
        force_undefined: true,
        ..CfiState::UNKNOWN
    };

    /// Where register `reg` was saved.
    pub fn reg(&self, reg: Reg) -> CfiReg {
        self.regs[reg.index()]
    }

    /// Whether the function's frame differs from the one it was entered with: CFA, DRAP, stack
    /// size, or any saved register (objtool's `has_modified_stack_frame`). A return or a
    /// sibling call with a modified frame is an error.
    pub fn has_modified_stack_frame(&self) -> bool {
        self.cfa.base != INITIAL_CFA.base
            || self.drap
            || self.cfa.offset != INITIAL_CFA.offset
            || self.stack_size != INITIAL_CFA.offset
            || self.regs != INITIAL_REGS
    }

    /// Whether a frame pointer chain is intact here: the CFA is `%rbp`-based with the caller's
    /// `%rbp` and the return address right below it, or a DRAP frame whose `%rbp` was set up
    /// (objtool's `has_valid_stack_frame`, required at calls with `--stackval`).
    pub fn has_valid_stack_frame(&self) -> bool {
        let at = |reg: Reg, offset: i32| self.reg(reg) == CfiReg::new(Base::CFA, offset);
        if self.cfa.base == Base::BP
            && at(Reg::BP, self.cfa.offset.wrapping_neg())
            && at(Reg::RA, self.cfa.offset.wrapping_neg().wrapping_add(8))
        {
            return true;
        }
        self.drap && self.reg(Reg::BP).base == Base::BP
    }
}

impl Default for CfiState {
    /// [`CfiState::UNKNOWN`].
    fn default() -> CfiState {
        CfiState::UNKNOWN
    }
}
