//! Stack operations: what an instruction does to the stack pointer, the frame pointer and
//! the stack slots the CFI state tracks.
//!
//! An operation is a move from a [`Src`] to a [`Dest`], the same two-sided shape objtool
//! uses. Only instructions that can change where the caller's frame is get operations; an
//! instruction with none leaves the CFI state alone. The state machine that applies them is
//! in the `orc-stack` crate.

use core::fmt;

use crate::Reg;

/// Where an operation reads from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Src {
    /// The value of a register (`mov %rsp,%rbp`, `push %rbx`).
    Reg(Reg),
    /// The memory word at `offset(reg)` (`mov -8(%rbp),%rbx`).
    RegIndirect {
        /// Base register of the address.
        reg: Reg,
        /// Displacement added to it.
        offset: i32,
    },
    /// Something the CFI state does not track: an immediate, a memory word not relative to a
    /// tracked register, a segment register, or a return address (`push $0`, `pushq 8(%rax)`,
    /// `call`).
    Const,
    /// The word on top of the stack, which is popped (`pop %rbp`, `popq (%rax)`).
    Pop,
    /// The flags word on top of the stack, which is popped (`popf`).
    Popf,
    /// `reg + offset` (`sub $16,%rsp` is `%rsp + -16`; `lea 8(%rsp),%r10` is `%rsp + 8`).
    ///
    /// A register-register `add %reg,%rsp` is also an `Add` of `reg` with offset 0: the
    /// amount is unknown, which the state machine treats as an unsupported modification.
    Add {
        /// The register added to.
        reg: Reg,
        /// The constant added (negative for `sub`).
        offset: i32,
    },
    /// `reg & mask`, a stack realignment (`and $-16,%rsp`).
    And {
        /// The register masked.
        reg: Reg,
        /// The mask, sign-extended.
        offset: i32,
    },
}

/// Where an operation writes to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Dest {
    /// A register.
    Reg(Reg),
    /// The memory word at `offset(reg)` (`mov %rbx,-8(%rbp)`, `mov %rsp,(%rdi)`).
    RegIndirect {
        /// Base register of the address.
        reg: Reg,
        /// Displacement added to it.
        offset: i32,
    },
    /// Memory the CFI state does not track (`popq (%rax)`, the flags of `popf`).
    Mem,
    /// A new word pushed on the stack.
    Push,
    /// The flags, pushed on the stack (`pushf`).
    Pushf,
}

/// One stack operation: `src` is moved to `dest`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StackOp {
    /// What is written.
    pub dest: Dest,
    /// What is read.
    pub src: Src,
}

impl StackOp {
    /// An operation from `src` to `dest`.
    pub const fn new(src: Src, dest: Dest) -> StackOp {
        StackOp { dest, src }
    }

    /// `push %reg`.
    pub const fn push(reg: Reg) -> StackOp {
        StackOp::new(Src::Reg(reg), Dest::Push)
    }

    /// A push of a value the state does not track: `push $imm`, `pushq mem`, `push %fs`, and
    /// the return address a `call` pushes.
    pub const fn push_const() -> StackOp {
        StackOp::new(Src::Const, Dest::Push)
    }

    /// `pushf`.
    pub const fn pushf() -> StackOp {
        StackOp::new(Src::Const, Dest::Pushf)
    }

    /// `pop %reg`.
    pub const fn pop(reg: Reg) -> StackOp {
        StackOp::new(Src::Pop, Dest::Reg(reg))
    }

    /// A pop into memory or a segment register: `popq mem`, `pop %fs`.
    pub const fn pop_mem() -> StackOp {
        StackOp::new(Src::Pop, Dest::Mem)
    }

    /// `popf`.
    pub const fn popf() -> StackOp {
        StackOp::new(Src::Popf, Dest::Mem)
    }

    /// `mov %src,%dest` between registers.
    pub const fn mov(src: Reg, dest: Reg) -> StackOp {
        StackOp::new(Src::Reg(src), Dest::Reg(dest))
    }

    /// `dest = src + offset`: `add`/`sub` of an immediate when `src == dest`, or
    /// `lea offset(%src),%dest`.
    pub const fn add(src: Reg, offset: i32, dest: Reg) -> StackOp {
        StackOp::new(Src::Add { reg: src, offset }, Dest::Reg(dest))
    }

    /// `add $imm,%rsp` (or `sub $-imm,%rsp`).
    pub const fn add_sp(imm: i32) -> StackOp {
        StackOp::add(Reg::SP, imm, Reg::SP)
    }

    /// `sub $imm,%rsp`: an [`StackOp::add_sp`] of `-imm`.
    pub const fn sub_sp(imm: i32) -> StackOp {
        StackOp::add_sp(imm.wrapping_neg())
    }

    /// `and $mask,%rsp`.
    pub const fn and_sp(mask: i32) -> StackOp {
        StackOp::new(
            Src::And {
                reg: Reg::SP,
                offset: mask,
            },
            Dest::Reg(Reg::SP),
        )
    }

    /// `mov %reg,offset(%base)`.
    pub const fn store(reg: Reg, offset: i32, base: Reg) -> StackOp {
        StackOp::new(Src::Reg(reg), Dest::RegIndirect { reg: base, offset })
    }

    /// `mov offset(%base),%reg`.
    pub const fn load(offset: i32, base: Reg, reg: Reg) -> StackOp {
        StackOp::new(Src::RegIndirect { reg: base, offset }, Dest::Reg(reg))
    }

    /// `leave`: `mov %rbp,%rsp` then `pop %rbp`.
    pub const fn leave() -> [StackOp; 2] {
        [StackOp::mov(Reg::BP, Reg::SP), StackOp::pop(Reg::BP)]
    }
}

impl fmt::Display for Src {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Src::Reg(r) => write!(f, "{r}"),
            Src::RegIndirect { reg, offset } => write!(f, "{offset}({reg})"),
            Src::Const => f.write_str("const"),
            Src::Pop => f.write_str("pop"),
            Src::Popf => f.write_str("popf"),
            Src::Add { reg, offset } => write!(f, "add({reg}, {offset})"),
            Src::And { reg, offset } => write!(f, "and({reg}, {offset})"),
        }
    }
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Dest::Reg(r) => write!(f, "{r}"),
            Dest::RegIndirect { reg, offset } => write!(f, "{offset}({reg})"),
            Dest::Mem => f.write_str("mem"),
            Dest::Push => f.write_str("push"),
            Dest::Pushf => f.write_str("pushf"),
        }
    }
}

impl fmt::Display for StackOp {
    /// `src -> dest`, e.g. `%rbp -> push`, `pop -> %rbx`, `add(%rsp, -16) -> %rsp`,
    /// `%rbx -> -8(%rbp)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.src, self.dest)
    }
}

/// The stack operations of one instruction, in execution order: none, one, or two (`leave`).
///
/// Stored inline, so decoding a section allocates nothing per instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StackOps {
    ops: [Option<StackOp>; 2],
}

impl StackOps {
    /// No operations.
    pub const NONE: StackOps = StackOps { ops: [None, None] };

    /// The operations in `ops` (at most two).
    ///
    /// # Panics
    /// If `ops` has more than two elements: no x86 instruction needs more.
    pub fn from_slice(ops: &[StackOp]) -> StackOps {
        assert!(
            ops.len() <= 2,
            "an instruction has at most two stack operations"
        );
        let mut out = StackOps::NONE;
        for (slot, op) in out.ops.iter_mut().zip(ops) {
            *slot = Some(*op);
        }
        out
    }

    /// Appends an operation.
    ///
    /// # Panics
    /// If two are already present.
    pub fn push(&mut self, op: StackOp) {
        let slot = self
            .ops
            .iter_mut()
            .find(|s| s.is_none())
            .expect("at most two stack operations");
        *slot = Some(op);
    }

    /// Removes every operation. Objtool does this for a `call` to another function, whose
    /// pushed return address is popped again by the callee, and for calls and jumps it
    /// rewrites (retpolines, return thunks).
    pub fn clear(&mut self) {
        *self = StackOps::NONE;
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.iter().filter(|s| s.is_some()).count()
    }

    /// True if the instruction does nothing the CFI state tracks.
    pub fn is_empty(&self) -> bool {
        self.ops[0].is_none()
    }

    /// The operations in execution order.
    pub fn iter(&self) -> impl Iterator<Item = &StackOp> + '_ {
        self.ops.iter().map_while(Option::as_ref)
    }
}

impl fmt::Debug for StackOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(DisplayAsDebug))
            .finish()
    }
}

impl<'a> IntoIterator for &'a StackOps {
    type Item = &'a StackOp;
    type IntoIter = core::iter::MapWhile<
        core::slice::Iter<'a, Option<StackOp>>,
        fn(&'a Option<StackOp>) -> Option<&'a StackOp>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.ops
            .iter()
            .map_while(Option::as_ref as fn(&'a Option<StackOp>) -> Option<&'a StackOp>)
    }
}

struct DisplayAsDebug<'a>(&'a StackOp);

impl fmt::Debug for DisplayAsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}
