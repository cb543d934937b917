//! General-purpose registers, numbered the way objtool's CFI tables number them.

use core::fmt;

/// An x86-64 general-purpose register, or the return address pseudo-register [`Reg::RA`].
///
/// Numbers follow the ModRM encoding (`rax` 0, `rcx` 1, `rdx` 2, `rbx` 3, `rsp` 4, `rbp` 5,
/// `rsi` 6, `rdi` 7, `r8`-`r15` 8-15), which is what objtool has used since 5.12
/// (before that it used the DWARF order). [`Reg::RA`] (16) is not a machine register: it is the
/// slot where the CFI state records where the return address lives.
///
/// The number is private so that every `Reg` is a valid index into a 17-entry register table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reg(u8);

impl Reg {
    /// `rax`.
    pub const AX: Reg = Reg(0);
    /// `rcx`.
    pub const CX: Reg = Reg(1);
    /// `rdx`.
    pub const DX: Reg = Reg(2);
    /// `rbx`.
    pub const BX: Reg = Reg(3);
    /// `rsp`, the stack pointer.
    pub const SP: Reg = Reg(4);
    /// `rbp`, the frame pointer.
    pub const BP: Reg = Reg(5);
    /// `rsi`.
    pub const SI: Reg = Reg(6);
    /// `rdi`.
    pub const DI: Reg = Reg(7);
    /// `r8`.
    pub const R8: Reg = Reg(8);
    /// `r9`.
    pub const R9: Reg = Reg(9);
    /// `r10`, one of GCC's DRAP registers.
    pub const R10: Reg = Reg(10);
    /// `r11`.
    pub const R11: Reg = Reg(11);
    /// `r12`.
    pub const R12: Reg = Reg(12);
    /// `r13`, GCC's other DRAP register.
    pub const R13: Reg = Reg(13);
    /// `r14`.
    pub const R14: Reg = Reg(14);
    /// `r15`.
    pub const R15: Reg = Reg(15);
    /// The return address (not a machine register; index 16 of the CFI register table).
    pub const RA: Reg = Reg(16);

    /// How many registers a CFI register table tracks: the sixteen general-purpose registers
    /// plus [`Reg::RA`].
    pub const COUNT: usize = 17;

    /// The register with this number (0-16), or `None` if there is no such register.
    pub const fn new(number: u8) -> Option<Reg> {
        if number as usize >= Reg::COUNT {
            None
        } else {
            Some(Reg(number))
        }
    }

    /// The register's number (its ModRM encoding, or 16 for [`Reg::RA`]).
    pub const fn number(self) -> u8 {
        self.0
    }

    /// The register's number as an index into a [`Reg::COUNT`]-entry table.
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// All registers in number order, [`Reg::RA`] last.
    pub fn all() -> impl Iterator<Item = Reg> {
        (0..Reg::COUNT as u8).map(Reg)
    }

    /// Whether the x86-64 calling convention makes this register callee-saved (`rbx`, `rbp`,
    /// `r12`-`r15`).
    ///
    /// Objtool only records the save slot of these registers when they are pushed or stored:
    /// a push of a caller-saved register is just stack traffic.
    pub const fn is_callee_saved(self) -> bool {
        matches!(self.0, 3 | 5 | 12..=15)
    }

    /// The 64-bit AT&T name without the `%` (`"rsp"`), or `"ra"` for [`Reg::RA`].
    pub const fn name(self) -> &'static str {
        const NAMES: [&str; Reg::COUNT] = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15", "ra",
        ];
        NAMES[self.0 as usize]
    }
}

impl fmt::Display for Reg {
    /// AT&T syntax: `%rsp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.name())
    }
}

impl fmt::Debug for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.name())
    }
}
