//! The five on-disk layouts (three arrangements of the flag bits, three numberings of the base
//! registers), and how to tell which one a file uses.

use core::fmt;

use crate::entry::{Entry, EntryType, RawEntry, Reg};

/// How the 16 flag bits of an entry are laid out and what its register numbers mean (v1-v3 are
/// drgn's numbering; the kernel has no version field, so a reader must be told or must infer it,
/// best from the `.orc_header` hash).
///
/// Two things change between layouts: the arrangement of the type/signal/end bits (v1, v2, v3)
/// and the numbering of the base registers. Every layout before 7.1 numbers them as 4.14 did;
/// [`Layout::V3Ax`] adds `AX = 10` to that numbering; [`Layout::V4`] (7.1+) renumbers them all.
/// [`Reg`] speaks one vocabulary for all of them (the old numbering plus `AX`), and
/// [`Layout::decode`]/[`Layout::encode`] translate.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Layout {
    /// Kernels 4.14 to 6.2: `type:2` (CALL 0, REGS 1, REGS_PARTIAL 2), `end:1` at bit 10.
    /// Signal is implied by the type; "undefined" and "end of stack" are `sp_reg == UNDEFINED`
    /// with `end` clear or set.
    V1,
    /// Kernel 6.3: as v1 plus an explicit `signal:1` at bit 10, which pushes `end` to bit 11.
    V2,
    /// Kernels 6.4 and later: `type:3` (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3,
    /// REGS_PARTIAL 4) at bits 8-10 and `signal:1` at bit 11; no `end` bit. Registers numbered
    /// as in 4.14 (0-9). Kernels 6.4 to 7.0.
    V3,
    /// v3's bits and numbering plus `ORC_REG_AX = 10` (Clang's RAX DRAP): upstream commit
    /// 96f3b16a9de5 before 7.1 renumbered the registers, and its stable backport proposed for
    /// 7.0.y and 6.12.y (AUTOSEL, April 2026). Its own `.orc_header` hash.
    V3Ax,
    /// Kernels 7.1 and later: v3's bits with the registers renumbered ("objtool/x86: Reorder
    /// ORC register numbering"): UNDEFINED 0, AX 1, DX 2, SP 3, BP 4, DI 5, R10 6, R13 7,
    /// PREV_SP 8, SP_INDIRECT 9, BP_INDIRECT 10.
    V4,
}

/// `.orc_header` of 6.4+ kernels: SHA-1 of the ORC definitions in `orc_types.h`.
const HASH_V3: [u8; 20] = hex20("fe5d32bf581bd63b2ca9a5c65ba5a625eab3fe24");
/// `.orc_header` of 6.3.10 and later 6.3 stables (the header was backported).
const HASH_V2: [u8; 20] = hex20("db84aed4103b31dd51e017f8f79783ca985c2c51");
/// `.orc_header` of 7.1+ kernels (checked on every ORC-carrying module of Debian's 7.2.13, and
/// recomputed from its `orc_types.h` with `scripts/orc_hash.sh`'s rule).
const HASH_V4: [u8; 20] = hex20("137c36ad7627c4dd55932176bb0ecdbd5041fc82");
/// `.orc_header` of a 6.4-7.0 kernel carrying the AX backport: the rule of `scripts/orc_hash.sh`
/// (SHA-1 of the `#define ORC_REG_*`/`ORC_TYPE_*` lines and the `struct orc_entry` block) applied
/// to 6.12's `orc_types.h` with the backport's one added line, `#define ORC_REG_AX<3 tabs>10`
/// after `ORC_REG_SP_INDIRECT`. No shipped kernel was seen with it; the same rule gives
/// [`HASH_V3`] for 6.12's file and [`HASH_V4`] for 7.2's.
const HASH_V3_AX: [u8; 20] = hex20("edfa4d15552fdd2e1d56679728416379f2fe4534");

/// Register of each 4-bit field value in the numbering of 4.14-7.0 (v1, v2, v3): the
/// vocabulary's own numbers. Field 10 is `AX` only in [`Layout::V3Ax`].
const FIELDS_OLD: [Reg; 16] = fields([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
/// [`FIELDS_OLD`] plus `AX = 10`.
const FIELDS_OLD_AX: [Reg; 16] = fields([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
/// 7.1's numbering: field value -> vocabulary register.
const FIELDS_V4: [Reg; 16] = fields([
    Reg::UNDEFINED.0,
    Reg::AX.0,
    Reg::DX.0,
    Reg::SP.0,
    Reg::BP.0,
    Reg::DI.0,
    Reg::R10.0,
    Reg::R13.0,
    Reg::PREV_SP.0,
    Reg::SP_INDIRECT.0,
    Reg::BP_INDIRECT.0,
]);

/// A field table: the given registers for the first field values, [`Reg::unknown`] after.
const fn fields<const N: usize>(known: [u8; N]) -> [Reg; 16] {
    let mut out = [Reg(0); 16];
    let mut i = 0;
    while i < 16 {
        out[i] = if i < N { Reg(known[i]) } else { Reg::unknown(i as u8) };
        i += 1;
    }
    out
}

/// Why a layout could not be determined.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LayoutError {
    /// `.orc_header` holds a hash no known kernel produces (a new kernel, or a renumbered
    /// fork such as one that moved the register numbers). Pass the layout explicitly.
    UnknownHeaderHash([u8; 20]),
    /// `.orc_header` is not 20 bytes long.
    BadHeaderSize(usize),
    /// A layout name other than `v1`, `v2`, `v3`, `v3+ax` or `v4`.
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
                f.write_str(" (not the layout of any known kernel; if you know it, say so with --orc-layout v1|v2|v3|v3+ax|v4)")
            }
            LayoutError::BadHeaderSize(n) => {
                write!(f, ".orc_header is {n} bytes long, expected 20")
            }
            LayoutError::UnknownName => f.write_str("unknown ORC layout name (expected v1, v2, v3, v3+ax or v4)"),
        }
    }
}

/// Why an [`Entry`] cannot be stored in a layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EncodeError {
    /// The layout has no field value for this register (`AX` before 7.1 without the backport,
    /// a number no kernel defines).
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
            EncodeError::RegisterOutOfRange(r) => write!(f, "register {r} has no number in this layout"),
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
    /// All layouts, oldest first (`layout as usize` indexes this array).
    pub const ALL: [Layout; 5] = [Layout::V1, Layout::V2, Layout::V3, Layout::V3Ax, Layout::V4];

    /// The layout whose `.orc_header` hash is `hash`.
    pub fn from_header(header: &[u8]) -> Result<Layout, LayoutError> {
        let hash: [u8; 20] = header.try_into().map_err(|_| LayoutError::BadHeaderSize(header.len()))?;
        Layout::ALL
            .into_iter()
            .find(|l| l.header_hash() == Some(hash))
            .ok_or(LayoutError::UnknownHeaderHash(hash))
    }

    /// The layout of a kernel without `.orc_header`, from its version (`major.minor`).
    ///
    /// Kernels before 4.14 had no ORC at all; they are given v1, the layout ORC started with.
    /// A 6.12 or 7.0 kernel with the AX backport cannot be told from its version: its header says.
    pub const fn from_kernel_version(major: u32, minor: u32) -> Layout {
        if major > 7 || (major == 7 && minor >= 1) {
            Layout::V4
        } else if major == 7 || (major == 6 && minor >= 4) {
            Layout::V3
        } else if major == 6 && minor == 3 {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// Parses a layout name: `v1`, `v2`, `v3`, `v3+ax` (also `v3ax`) or `v4`.
    pub fn from_name(name: &str) -> Result<Layout, LayoutError> {
        match name {
            "v1" | "V1" => Ok(Layout::V1),
            "v2" | "V2" => Ok(Layout::V2),
            "v3" | "V3" => Ok(Layout::V3),
            "v3+ax" | "V3+AX" | "v3ax" | "V3AX" => Ok(Layout::V3Ax),
            "v4" | "V4" => Ok(Layout::V4),
            _ => Err(LayoutError::UnknownName),
        }
    }

    /// `v1`, `v2`, `v3`, `v3+ax` or `v4`.
    pub const fn name(self) -> &'static str {
        match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
            Layout::V3 => "v3",
            Layout::V3Ax => "v3+ax",
            Layout::V4 => "v4",
        }
    }

    /// The kernels that use this layout, for messages.
    pub const fn kernels(self) -> &'static str {
        match self {
            Layout::V1 => "4.14-6.2",
            Layout::V2 => "6.3",
            Layout::V3 => "6.4-7.0",
            Layout::V3Ax => "6.12.y/7.0.y with the AX backport",
            Layout::V4 => "7.1+",
        }
    }

    /// The `.orc_header` hash that identifies this layout, where one exists (v1 predates it).
    pub const fn header_hash(self) -> Option<[u8; 20]> {
        match self {
            Layout::V1 => None,
            Layout::V2 => Some(HASH_V2),
            Layout::V3 => Some(HASH_V3),
            Layout::V3Ax => Some(HASH_V3_AX),
            Layout::V4 => Some(HASH_V4),
        }
    }

    /// True for the layouts with a 3-bit type field holding UNDEFINED and END_OF_STACK and no
    /// `end` bit (6.4+: v3, v3+ax, v4).
    pub const fn has_typed_undefined(self) -> bool {
        !matches!(self, Layout::V1 | Layout::V2)
    }

    /// The register a 4-bit `sp_reg`/`bp_reg` field value stands for in this layout;
    /// [`Reg::unknown`] for values the layout defines no register for.
    pub const fn reg(self, field: u8) -> Reg {
        self.field_table()[(field & 0xf) as usize]
    }

    /// The field value of `reg` in this layout, or `None` if the layout cannot name it.
    pub const fn field(self, reg: Reg) -> Option<u8> {
        if let Some(field) = reg.unknown_field() {
            // Kept from a decode of this layout: only valid where it means nothing.
            return if self.reg(field).0 == reg.0 { Some(field) } else { None };
        }
        let table = self.field_table();
        let mut i = 0;
        while i < 16 {
            if table[i].0 == reg.0 {
                return Some(i as u8);
            }
            i += 1;
        }
        None
    }

    /// True if the layout has a field value for `reg` (a named register, not an unknown one).
    pub const fn has_reg(self, reg: Reg) -> bool {
        reg.unknown_field().is_none() && self.field(reg).is_some()
    }

    const fn field_table(self) -> &'static [Reg; 16] {
        match self {
            Layout::V1 | Layout::V2 | Layout::V3 => &FIELDS_OLD,
            Layout::V3Ax => &FIELDS_OLD_AX,
            Layout::V4 => &FIELDS_V4,
        }
    }

    /// The `sp_reg` of a stored entry, in the vocabulary.
    pub const fn sp_reg(self, raw: RawEntry) -> Reg {
        self.reg(raw.sp_reg_field())
    }

    /// The `bp_reg` of a stored entry, in the vocabulary.
    pub const fn bp_reg(self, raw: RawEntry) -> Reg {
        self.reg(raw.bp_reg_field())
    }

    /// The raw type field: 2 bits in v1/v2, 3 bits from v3 on.
    pub const fn raw_type(self, raw: RawEntry) -> u8 {
        match self {
            Layout::V1 | Layout::V2 => ((raw.flags >> 8) & 0x3) as u8,
            Layout::V3 | Layout::V3Ax | Layout::V4 => ((raw.flags >> 8) & 0x7) as u8,
        }
    }

    /// The raw `end` bit (v1, v2); always false from v3 on, which have none.
    pub const fn raw_end(self, raw: RawEntry) -> bool {
        match self {
            Layout::V1 => raw.flags & (1 << 10) != 0,
            Layout::V2 => raw.flags & (1 << 11) != 0,
            Layout::V3 | Layout::V3Ax | Layout::V4 => false,
        }
    }

    /// The raw `signal` bit (v2 on); always false in v1, which has none.
    pub const fn raw_signal(self, raw: RawEntry) -> bool {
        match self {
            Layout::V1 => false,
            Layout::V2 => raw.flags & (1 << 10) != 0,
            Layout::V3 | Layout::V3Ax | Layout::V4 => raw.flags & (1 << 11) != 0,
        }
    }

    /// Flag bits that carry nothing in this layout.
    const fn unused_mask(self) -> u16 {
        match self {
            Layout::V1 => 0xf800,
            Layout::V2 | Layout::V3 | Layout::V3Ax | Layout::V4 => 0xf000,
        }
    }

    /// The meaning of a stored entry. Never fails: every bit pattern means something.
    ///
    /// Unused bits are ignored, and in v1/v2 so are the type bits of an entry whose `sp_reg` is
    /// undefined (the kernel never reads them); [`Layout::is_canonical`] tells whether an
    /// entry would survive re-encoding unchanged.
    #[inline]
    pub const fn decode(self, raw: RawEntry) -> Entry {
        let sp_reg = self.sp_reg(raw);
        let mut entry = Entry {
            kind: EntryType::Undefined,
            sp_reg,
            sp_offset: raw.sp_offset,
            bp_reg: self.bp_reg(raw),
            bp_offset: raw.bp_offset,
            signal: self.raw_signal(raw),
        };
        entry.kind = match self {
            Layout::V3 | Layout::V3Ax | Layout::V4 => EntryType::from_v3_number(self.raw_type(raw)),
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
        let Some(sp_field) = self.field(entry.sp_reg) else {
            return Err(EncodeError::RegisterOutOfRange(entry.sp_reg));
        };
        let Some(bp_field) = self.field(entry.bp_reg) else {
            return Err(EncodeError::RegisterOutOfRange(entry.bp_reg));
        };
        let mut flags = sp_field as u16 | (bp_field as u16) << 4;
        match self {
            Layout::V3 | Layout::V3Ax | Layout::V4 => {
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
            Layout::V3 | Layout::V3Ax | Layout::V4 => true,
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
