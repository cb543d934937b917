//! The three on-disk layouts of the flag bits, and how to tell which one a file uses.

use core::fmt;

use crate::entry::{Entry, EntryType, RawEntry, Reg};

/// How the 16 flag bits of an entry are laid out (drgn's numbering; the kernel has no version
/// field, so a reader must be told or must infer it).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Layout {
    /// Kernels 4.14 to 6.2: `type:2` (CALL 0, REGS 1, REGS_PARTIAL 2), `end:1` at bit 10.
    /// Signal is implied by the type; "undefined" and "end of stack" are `sp_reg == UNDEFINED`
    /// with `end` clear or set.
    V1,
    /// Kernel 6.3: as v1 plus an explicit `signal:1` at bit 10, which pushes `end` to bit 11.
    V2,
    /// Kernels 6.4 and later: `type:3` (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3,
    /// REGS_PARTIAL 4) at bits 8-10 and `signal:1` at bit 11; no `end` bit.
    V3,
}

/// `.orc_header` of 6.4+ kernels: SHA-1 of the ORC definitions in `orc_types.h`.
const HASH_V3: [u8; 20] = hex20("fe5d32bf581bd63b2ca9a5c65ba5a625eab3fe24");
/// `.orc_header` of 6.3.10 and later 6.3 stables (the header was backported).
const HASH_V2: [u8; 20] = hex20("db84aed4103b31dd51e017f8f79783ca985c2c51");

/// Why a layout could not be determined.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LayoutError {
    /// `.orc_header` holds a hash no known kernel produces (a new kernel, or a renumbered
    /// fork such as one that moved the register numbers). Pass the layout explicitly.
    UnknownHeaderHash([u8; 20]),
    /// `.orc_header` is not 20 bytes long.
    BadHeaderSize(usize),
    /// A layout name other than `v1`, `v2` or `v3`.
    UnknownName,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::UnknownHeaderHash(hash) => {
                f.write_str("unknown .orc_header hash ")?;
                for b in hash {
                    write!(f, "{b:02x}")?;
                }
                f.write_str(" (not a layout of any known kernel; use --orc-layout v1|v2|v3)")
            }
            LayoutError::BadHeaderSize(n) => {
                write!(f, ".orc_header is {n} bytes long, expected 20")
            }
            LayoutError::UnknownName => f.write_str("unknown ORC layout name (expected v1, v2 or v3)"),
        }
    }
}

/// Why an [`Entry`] cannot be stored in a layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncodeError {
    /// A register number does not fit in 4 bits.
    RegisterOutOfRange(Reg),
    /// The type number does not fit in the layout's type field.
    TypeOutOfRange(EntryType),
    /// v1/v2 spell "undefined" and "end of stack" as `sp_reg == UNDEFINED`: such an entry must
    /// have an undefined `sp_reg`, and any other type must have a defined one.
    SpRegContradictsType,
    /// v1 has no signal bit: signal is implied by the type, and this entry disagrees.
    SignalNotImplied,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::RegisterOutOfRange(r) => write!(f, "register number {} does not fit in 4 bits", r.0),
            EncodeError::TypeOutOfRange(t) => write!(f, "type {t:?} does not fit in this layout's type field"),
            EncodeError::SpRegContradictsType => {
                f.write_str("this layout encodes undefined/end-of-stack as sp_reg=UNDEFINED; sp_reg and type disagree")
            }
            EncodeError::SignalNotImplied => f.write_str("v1 cannot store a signal flag that its type does not imply"),
        }
    }
}

const SP_REG_MASK: u16 = 0x000f;
const BP_REG_MASK: u16 = 0x00f0;

impl Layout {
    /// All layouts, oldest first.
    pub const ALL: [Layout; 3] = [Layout::V1, Layout::V2, Layout::V3];

    /// The layout whose `.orc_header` hash is `hash`.
    pub fn from_header(header: &[u8]) -> Result<Layout, LayoutError> {
        let hash: [u8; 20] = header.try_into().map_err(|_| LayoutError::BadHeaderSize(header.len()))?;
        match hash {
            HASH_V3 => Ok(Layout::V3),
            HASH_V2 => Ok(Layout::V2),
            other => Err(LayoutError::UnknownHeaderHash(other)),
        }
    }

    /// The layout of a kernel without `.orc_header`, from its version (`major.minor`).
    ///
    /// Kernels before 4.14 had no ORC at all; they are given v1, the layout ORC started with.
    pub const fn from_kernel_version(major: u32, minor: u32) -> Layout {
        if major > 6 || (major == 6 && minor >= 4) {
            Layout::V3
        } else if major == 6 && minor == 3 {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// Parses `v1`, `v2` or `v3`.
    pub fn from_name(name: &str) -> Result<Layout, LayoutError> {
        match name {
            "v1" | "V1" => Ok(Layout::V1),
            "v2" | "V2" => Ok(Layout::V2),
            "v3" | "V3" => Ok(Layout::V3),
            _ => Err(LayoutError::UnknownName),
        }
    }

    /// `v1`, `v2` or `v3`.
    pub const fn name(self) -> &'static str {
        match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
            Layout::V3 => "v3",
        }
    }

    /// The kernels that use this layout, for messages.
    pub const fn kernels(self) -> &'static str {
        match self {
            Layout::V1 => "4.14-6.2",
            Layout::V2 => "6.3",
            Layout::V3 => "6.4+",
        }
    }

    /// The `.orc_header` hash that identifies this layout, where one exists (v1 predates it).
    pub const fn header_hash(self) -> Option<[u8; 20]> {
        match self {
            Layout::V1 => None,
            Layout::V2 => Some(HASH_V2),
            Layout::V3 => Some(HASH_V3),
        }
    }

    /// The raw type field: 2 bits in v1/v2, 3 bits in v3.
    pub const fn raw_type(self, raw: RawEntry) -> u8 {
        match self {
            Layout::V1 | Layout::V2 => ((raw.flags >> 8) & 0x3) as u8,
            Layout::V3 => ((raw.flags >> 8) & 0x7) as u8,
        }
    }

    /// The raw `end` bit (v1, v2); always false in v3, which has none.
    pub const fn raw_end(self, raw: RawEntry) -> bool {
        match self {
            Layout::V1 => raw.flags & (1 << 10) != 0,
            Layout::V2 => raw.flags & (1 << 11) != 0,
            Layout::V3 => false,
        }
    }

    /// The raw `signal` bit (v2, v3); always false in v1, which has none.
    pub const fn raw_signal(self, raw: RawEntry) -> bool {
        match self {
            Layout::V1 => false,
            Layout::V2 => raw.flags & (1 << 10) != 0,
            Layout::V3 => raw.flags & (1 << 11) != 0,
        }
    }

    /// Flag bits that carry nothing in this layout.
    const fn unused_mask(self) -> u16 {
        match self {
            Layout::V1 => 0xf800,
            Layout::V2 | Layout::V3 => 0xf000,
        }
    }

    /// The meaning of a stored entry. Never fails: every bit pattern means something.
    ///
    /// Unused bits are ignored, and in v1/v2 so are the type bits of an entry whose `sp_reg` is
    /// undefined (the kernel never reads them); [`Layout::is_canonical`] tells whether an
    /// entry would survive re-encoding unchanged.
    #[inline]
    pub const fn decode(self, raw: RawEntry) -> Entry {
        let sp_reg = raw.sp_reg();
        let mut entry = Entry {
            kind: EntryType::Undefined,
            sp_reg,
            sp_offset: raw.sp_offset,
            bp_reg: raw.bp_reg(),
            bp_offset: raw.bp_offset,
            signal: self.raw_signal(raw),
        };
        entry.kind = match self {
            Layout::V3 => EntryType::from_v3_number(self.raw_type(raw)),
            Layout::V1 | Layout::V2 => {
                if sp_reg.0 == Reg::UNDEFINED.0 {
                    if self.raw_end(raw) {
                        EntryType::EndOfStack
                    } else {
                        EntryType::Undefined
                    }
                } else {
                    EntryType::from_v3_number(self.raw_type(raw) + 2)
                }
            }
        };
        if let Layout::V1 = self {
            entry.signal = entry.kind.implies_signal();
        }
        entry
    }

    /// The stored form of an entry, or why this layout cannot hold it.
    pub const fn encode(self, entry: Entry) -> Result<RawEntry, EncodeError> {
        if entry.sp_reg.0 > 15 {
            return Err(EncodeError::RegisterOutOfRange(entry.sp_reg));
        }
        if entry.bp_reg.0 > 15 {
            return Err(EncodeError::RegisterOutOfRange(entry.bp_reg));
        }
        let mut flags = entry.sp_reg.0 as u16 | (entry.bp_reg.0 as u16) << 4;
        match self {
            Layout::V3 => {
                let t = entry.kind.v3_number();
                if t > 7 {
                    return Err(EncodeError::TypeOutOfRange(entry.kind));
                }
                flags |= (t as u16) << 8;
                if entry.signal {
                    flags |= 1 << 11;
                }
            }
            Layout::V1 | Layout::V2 => {
                let undefined_sp = entry.sp_reg.0 == Reg::UNDEFINED.0;
                match entry.kind {
                    EntryType::Undefined | EntryType::EndOfStack => {
                        if !undefined_sp {
                            return Err(EncodeError::SpRegContradictsType);
                        }
                        // Type bits stay CALL (0), as objtool leaves them.
                        if let EntryType::EndOfStack = entry.kind {
                            flags |= if let Layout::V1 = self { 1 << 10 } else { 1 << 11 };
                        }
                    }
                    kind => {
                        if undefined_sp {
                            return Err(EncodeError::SpRegContradictsType);
                        }
                        let t = kind.v3_number();
                        if t < 2 || t > 5 {
                            return Err(EncodeError::TypeOutOfRange(kind));
                        }
                        flags |= ((t - 2) as u16) << 8;
                    }
                }
                match self {
                    Layout::V1 => {
                        if entry.signal != entry.kind.implies_signal() {
                            return Err(EncodeError::SignalNotImplied);
                        }
                    }
                    _ => {
                        if entry.signal {
                            flags |= 1 << 10;
                        }
                    }
                }
            }
        }
        Ok(RawEntry { sp_offset: entry.sp_offset, bp_offset: entry.bp_offset, flags })
    }

    /// True when `encode(decode(raw)) == raw`: no unused bits set, and in v1/v2 no type bits or
    /// stray `end` bit that the decoded meaning cannot carry.
    pub const fn is_canonical(self, raw: RawEntry) -> bool {
        if raw.flags & self.unused_mask() != 0 {
            return false;
        }
        match self {
            Layout::V3 => true,
            Layout::V1 | Layout::V2 => {
                let undefined_sp = raw.flags & SP_REG_MASK == 0;
                if undefined_sp {
                    self.raw_type(raw) == 0
                } else {
                    !self.raw_end(raw)
                }
            }
        }
    }

    /// Mask of the two register fields (same in every layout).
    pub const REG_MASK: u16 = SP_REG_MASK | BP_REG_MASK;
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.kernels())
    }
}

/// Parses 40 hex digits at compile time.
const fn hex20(s: &str) -> [u8; 20] {
    let b = s.as_bytes();
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 20 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not a lowercase hex digit"),
    }
}
