//! One ORC entry: its bytes ([`RawEntry`]) and its meaning ([`Entry`]).

use core::fmt;

/// A base register (`ORC_REG_*`) in orctool's vocabulary: the numbering of kernels 4.14 to 7.0
/// (0-9) plus [`Reg::AX`] = 10.
///
/// A layout's 4-bit field values are translated by [`crate::Layout::reg`] and
/// [`crate::Layout::field`]: identity for v1-v3 (7.1 renumbered the registers, see
/// [`crate::Layout::V4`]). A field value a layout defines no register for decodes to
/// [`Reg::unknown`], which remembers the value so that it survives a round trip. Only the
/// *meaning* of [`Reg::SP_INDIRECT`] changed over time (in 5.12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Reg(pub u8);

impl Reg {
    /// As `sp_reg`: no information (v1/v2 also use it for "end of stack").
    /// As `bp_reg`: the frame pointer was not changed by this frame.
    pub const UNDEFINED: Reg = Reg(0);
    /// Only as `bp_reg`: the caller's BP is saved at `prev_sp + bp_offset`.
    pub const PREV_SP: Reg = Reg(1);
    /// `prev_sp` is the value of `dx` saved in the current `pt_regs`.
    pub const DX: Reg = Reg(2);
    /// `prev_sp` is the value of `di` saved in the current `pt_regs`.
    pub const DI: Reg = Reg(3);
    /// As `sp_reg`: `prev_sp = bp + sp_offset`. As `bp_reg`: the caller's BP is at `bp + bp_offset`.
    pub const BP: Reg = Reg(4);
    /// `prev_sp = sp + sp_offset`.
    pub const SP: Reg = Reg(5);
    /// `prev_sp` is the value of `r10` saved in the current `pt_regs` (GCC's DRAP register).
    pub const R10: Reg = Reg(6);
    /// `prev_sp` is the value of `r13` saved in the current `pt_regs` (GCC's other DRAP register).
    pub const R13: Reg = Reg(7);
    /// `prev_sp = *(bp + sp_offset)`.
    pub const BP_INDIRECT: Reg = Reg(8);
    /// 5.12 and later: `prev_sp = *sp + sp_offset`. Before 5.12: `prev_sp = *(sp + sp_offset)`.
    pub const SP_INDIRECT: Reg = Reg(9);
    /// `prev_sp` is the value of `ax` saved in the current `pt_regs` (Clang's DRAP, 2026 kernels:
    /// [`crate::Layout::V3Ax`] and [`crate::Layout::V4`] only).
    pub const AX: Reg = Reg(10);

    /// The register of a field value that has no register in the layout it was read with
    /// (`0x10 | field`, outside every layout's numbering).
    pub const fn unknown(field: u8) -> Reg {
        Reg(0x10 | (field & 0xf))
    }

    /// The field value of an [`Reg::unknown`] register.
    pub const fn unknown_field(self) -> Option<u8> {
        if self.0 & 0xf0 == 0x10 {
            Some(self.0 & 0xf)
        } else {
            None
        }
    }

    /// The short name objtool prints for this register, or `None` for numbers it does not name.
    /// [`Reg::UNDEFINED`] has no name: it is printed as `(und)` in place of register and offset.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Reg::PREV_SP => "prevsp",
            Reg::DX => "dx",
            Reg::DI => "di",
            Reg::BP => "bp",
            Reg::SP => "sp",
            Reg::R10 => "r10",
            Reg::R13 => "r13",
            Reg::BP_INDIRECT => "bp(ind)",
            Reg::SP_INDIRECT => "sp(ind)",
            Reg::AX => "ax",
            _ => return None,
        })
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None if *self == Reg::UNDEFINED => f.write_str("(und)"),
            None => match self.unknown_field() {
                Some(field) => write!(f, "unknown register {field}"),
                None => write!(f, "reg{}", self.0),
            },
        }
    }
}

/// What kind of frame an entry describes, in the v3 (6.4+) vocabulary.
///
/// v1 and v2 entries are normalised to it by [`crate::Layout::decode`]: they had no type for
/// "undefined" or "end of stack" and spelled them as `sp_reg == UNDEFINED` with the `end` bit
/// clear or set.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum EntryType {
    /// No unwind information: the unwinder must stop with an error.
    Undefined,
    /// The bottom of the stack (entry code, the initial task): a normal, reliable stop.
    EndOfStack,
    /// An ordinary call frame: the return address is at `prev_sp - 8`.
    Call,
    /// A full `pt_regs` starts at `prev_sp`: read ip and sp from it.
    Regs,
    /// Only the hardware iret frame (ip, cs, flags, sp, ss) is at `prev_sp`; the notional
    /// `pt_regs` starts 128 bytes below it. Called `REGS_IRET` before 5.10.
    RegsPartial,
    /// A type number no kernel defines, in v3 numbering (v1/v2 raw type + 2).
    Other(u8),
}

impl EntryType {
    /// The v3 (6.4+) number of this type.
    pub const fn v3_number(self) -> u8 {
        match self {
            EntryType::Undefined => 0,
            EntryType::EndOfStack => 1,
            EntryType::Call => 2,
            EntryType::Regs => 3,
            EntryType::RegsPartial => 4,
            EntryType::Other(n) => n,
        }
    }

    /// The type with v3 (6.4+) number `n`.
    pub const fn from_v3_number(n: u8) -> EntryType {
        match n {
            0 => EntryType::Undefined,
            1 => EntryType::EndOfStack,
            2 => EntryType::Call,
            3 => EntryType::Regs,
            4 => EntryType::RegsPartial,
            n => EntryType::Other(n),
        }
    }

    /// True for the types after which the unwinder looks up the exact ip (an interrupted or
    /// signalled frame) rather than `ip - 1`, in the v1 rule where the type implied it.
    pub const fn implies_signal(self) -> bool {
        matches!(self, EntryType::Regs | EntryType::RegsPartial)
    }
}

/// Byte order of the two 16-bit offsets. The flag bytes read the same on both (the reference
/// explains why: the big-endian bitfield declaration mirrors the little-endian one).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Endian {
    /// x86-64, the only target the kernel uses ORC on.
    #[default]
    Little,
    /// Cross-built tables for a big-endian host, as objtool writes them.
    Big,
}

/// One `.orc_unwind` entry exactly as stored: two offsets and 16 flag bits.
///
/// `flags` is bytes 4 and 5 read as a little-endian `u16`, whatever the endianness of the
/// offsets. What the bits mean depends on the [`crate::Layout`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct RawEntry {
    /// Added to the base register (`sp_reg`) to get the previous stack pointer.
    pub sp_offset: i16,
    /// Where the caller's frame pointer was saved, relative to `bp_reg`.
    pub bp_offset: i16,
    /// Registers, type, and the signal/end bits.
    pub flags: u16,
}

impl RawEntry {
    /// Reads one entry from exactly six bytes.
    pub const fn from_bytes(bytes: [u8; 6], endian: Endian) -> RawEntry {
        let (sp, bp) = match endian {
            Endian::Little => (
                i16::from_le_bytes([bytes[0], bytes[1]]),
                i16::from_le_bytes([bytes[2], bytes[3]]),
            ),
            Endian::Big => (
                i16::from_be_bytes([bytes[0], bytes[1]]),
                i16::from_be_bytes([bytes[2], bytes[3]]),
            ),
        };
        RawEntry { sp_offset: sp, bp_offset: bp, flags: u16::from_le_bytes([bytes[4], bytes[5]]) }
    }

    /// The six bytes of this entry.
    pub const fn to_bytes(self, endian: Endian) -> [u8; 6] {
        let (sp, bp) = match endian {
            Endian::Little => (self.sp_offset.to_le_bytes(), self.bp_offset.to_le_bytes()),
            Endian::Big => (self.sp_offset.to_be_bytes(), self.bp_offset.to_be_bytes()),
        };
        let f = self.flags.to_le_bytes();
        [sp[0], sp[1], bp[0], bp[1], f[0], f[1]]
    }

    /// The `sp_reg` field: bits 0-3 in every layout. What it names depends on the layout
    /// ([`crate::Layout::sp_reg`]).
    pub const fn sp_reg_field(self) -> u8 {
        (self.flags & 0xf) as u8
    }

    /// The `bp_reg` field: bits 4-7 in every layout ([`crate::Layout::bp_reg`]).
    pub const fn bp_reg_field(self) -> u8 {
        ((self.flags >> 4) & 0xf) as u8
    }
}

/// The meaning of one entry, in the v3 vocabulary shared by all layouts.
///
/// Every field of the stored entry is kept, including the registers and offsets of an
/// `Undefined` or `EndOfStack` entry, so that re-encoding a decoded entry gives the same bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Entry {
    /// The frame type.
    pub kind: EntryType,
    /// Base register for the previous stack pointer.
    pub sp_reg: Reg,
    /// Offset added to (or, for the indirect bases, used with) `sp_reg`.
    pub sp_offset: i16,
    /// Where the caller's frame pointer was saved ([`Reg::UNDEFINED`]: not saved by this frame).
    pub bp_reg: Reg,
    /// Offset of the saved frame pointer from `bp_reg`.
    pub bp_offset: i16,
    /// The frame was interrupted rather than called: look up `ip`, not `ip - 1`, in the caller.
    pub signal: bool,
}

impl Entry {
    /// The all-zero entry: type [`EntryType::Undefined`], registers undefined.
    ///
    /// This is what objtool writes for code it has no state for, and what the section
    /// terminators at the end of each text section are in v3.
    pub const UNDEFINED: Entry = Entry {
        kind: EntryType::Undefined,
        sp_reg: Reg::UNDEFINED,
        sp_offset: 0,
        bp_reg: Reg::UNDEFINED,
        bp_offset: 0,
        signal: false,
    };

    /// The end-of-stack entry, as `UNWIND_HINT_END_OF_STACK` produces it.
    pub const END_OF_STACK: Entry = Entry { kind: EntryType::EndOfStack, ..Entry::UNDEFINED };

    /// A call frame whose previous SP is `sp + sp_offset` and whose BP is untouched.
    pub const fn call(sp_offset: i16) -> Entry {
        Entry { kind: EntryType::Call, sp_reg: Reg::SP, sp_offset, ..Entry::UNDEFINED }
    }

    /// The entry the kernel's unwinder uses for `ip == 0` (a call through a NULL pointer): the
    /// return address is on top of the stack, so the previous SP is `sp + 8`.
    pub const NULL_CALL: Entry = Entry::call(8);

    /// The entry the kernel falls back to when no ORC covers an ip (6.3 and later): assume a
    /// frame pointer, previous SP at `bp + 16`, caller's BP saved at `prev_sp - 16`.
    pub const FRAME_POINTER_FALLBACK: Entry = Entry {
        kind: EntryType::Call,
        sp_reg: Reg::BP,
        sp_offset: 16,
        bp_reg: Reg::PREV_SP,
        bp_offset: -16,
        signal: false,
    };
}
