//! The reader: an SFrame v3 section borrowed as bytes, checked as it is walked.
//!
//! [`Section::parse`] checks the header and that the index and the row area lie inside the
//! bytes; [`Section::fde`] and [`Fde::rows`] check each record as they reach it. Nothing panics
//! and nothing allocates; every malformed byte pattern is an [`Error`] naming where it is.

use core::fmt;

use crate::{
    Cfa, Row, Rule, Saved, ABI_AMD64_LITTLE, FDE_ATTR_SIZE, FDE_INDEX_SIZE, F_FDE_FUNC_START_PCREL, F_FDE_SORTED,
    F_FRAME_POINTER, HEADER_SIZE, MAGIC, VERSION_3,
};

/// What is wrong with a section. Offsets are from the start of the section.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Error {
    /// `what` at `offset` runs past the end of the section.
    Truncated {
        /// The record.
        what: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// The magic number is neither `0xdee2` nor its byte swap.
    BadMagic(u16),
    /// A big-endian section (this reader is for x86-64).
    BigEndian,
    /// A version other than 3.
    Version(u8),
    /// Flag bits version 3 does not define.
    Flags(u8),
    /// An ABI other than x86-64.
    Abi(u8),
    /// The header's fixed return-address offset is not x86-64's -8.
    FixedRaOffset(i8),
    /// FDE `fde` has an FRE type (start-address width) other than 0, 1, 2.
    FreType {
        /// Index of the function.
        fde: u32,
        /// The field.
        value: u8,
    },
    /// FDE `fde` has an FDE type other than default (0) and flexible (1).
    FdeType {
        /// Index of the function.
        fde: u32,
        /// The field.
        value: u8,
    },
    /// The row at `offset` has a data-word size other than 1, 2 or 4 bytes.
    DataWordSize {
        /// Where the row starts.
        offset: usize,
    },
    /// The row at `offset` has data words that do not form a rule (a count of 1 in a flexible
    /// row, a CFA rule that is not register-based, a control word that uses reserved bits...).
    BadRule {
        /// Where the row starts.
        offset: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The rows of FDE `fde` do not start at increasing offsets, or start past its end.
    RowOrder {
        /// Index of the function.
        fde: u32,
    },
    /// The index says sorted but FDE `fde` starts before the one before it.
    NotSorted {
        /// Index of the function.
        fde: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { what, offset } => write!(f, "SFrame {what} at offset {offset:#x} runs past the end of the section"),
            Error::BadMagic(m) => write!(f, "not an SFrame section (magic {m:#06x}, expected 0xdee2)"),
            Error::BigEndian => f.write_str("big-endian SFrame section (only x86-64 is read)"),
            Error::Version(v) => write!(f, "SFrame version {v} (only version 3 is read)"),
            Error::Flags(v) => write!(f, "SFrame header flags {v:#x} use bits version 3 does not define"),
            Error::Abi(v) => write!(f, "SFrame ABI {v} (only 3, x86-64, is read)"),
            Error::FixedRaOffset(v) => write!(f, "SFrame fixed return-address offset {v} (x86-64 has -8)"),
            Error::FreType { fde, value } => write!(f, "SFrame FDE {fde}: FRE type {value} is not 0, 1 or 2"),
            Error::FdeType { fde, value } => write!(f, "SFrame FDE {fde}: FDE type {value} is not default (0) or flexible (1)"),
            Error::DataWordSize { offset } => write!(f, "SFrame FRE at offset {offset:#x}: data-word size field 3 is reserved"),
            Error::BadRule { offset, why } => write!(f, "SFrame FRE at offset {offset:#x}: {why}"),
            Error::RowOrder { fde } => write!(f, "SFrame FDE {fde}: rows not in increasing order inside the function"),
            Error::NotSorted { fde } => write!(f, "SFrame FDE {fde}: index flagged sorted but out of order"),
        }
    }
}

fn bytes<const N: usize>(data: &[u8], offset: usize, what: &'static str) -> Result<[u8; N], Error> {
    offset
        .checked_add(N)
        .and_then(|end| data.get(offset..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(Error::Truncated { what, offset })
}

fn u16_at(data: &[u8], offset: usize, what: &'static str) -> Result<u16, Error> {
    bytes::<2>(data, offset, what).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], offset: usize, what: &'static str) -> Result<u32, Error> {
    bytes::<4>(data, offset, what).map(u32::from_le_bytes)
}

fn i64_at(data: &[u8], offset: usize, what: &'static str) -> Result<i64, Error> {
    bytes::<8>(data, offset, what).map(i64::from_le_bytes)
}

/// The fixed header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    /// `F_*` bits.
    pub flags: u8,
    /// ABI/arch identifier (3: x86-64).
    pub abi: u8,
    /// Fixed frame-pointer offset from the CFA (0: none; x86-64 has none).
    pub cfa_fixed_fp_offset: i8,
    /// Fixed return-address offset from the CFA (x86-64: -8).
    pub cfa_fixed_ra_offset: i8,
    /// Length of the auxiliary header that follows the fixed one.
    pub auxhdr_len: u8,
    /// Number of functions.
    pub num_fdes: u32,
    /// Number of rows, all functions together.
    pub num_fres: u32,
    /// Length of the row area (attributes and rows of every function).
    pub fre_len: u32,
    /// Offset of the function index from the end of the header.
    pub fdeoff: u32,
    /// Offset of the row area from the end of the header.
    pub freoff: u32,
}

/// A parsed SFrame section, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Section<'a> {
    data: &'a [u8],
    addr: u64,
    /// The header.
    pub header: Header,
    index_at: usize,
    rows_at: usize,
    rows_end: usize,
}

/// A function descriptor: the index entry and the attributes before its rows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fde {
    /// Its position in the index.
    pub index: u32,
    /// The function's first address.
    pub start: u64,
    /// The function's size in bytes.
    pub size: u32,
    /// Offset of its attributes from the start of the row area.
    pub fre_off: u32,
    /// Number of rows.
    pub num_fres: u16,
    /// Bytes of a start offset in each row: 1, 2 or 4.
    pub start_width: u8,
    /// The rows repeat every `rep_size` bytes (`SFRAME_FDE_PCTYPE_MASK`, the PLT's shape);
    /// `None` for ordinary functions.
    pub pc_mask: Option<u8>,
    /// The function is a signal trampoline: its caller's ip is exact (not a return address).
    pub signal: bool,
    /// A flexible FDE: its rows are control/offset pairs.
    pub flexible: bool,
}

impl Fde {
    /// True when `pc` is inside the function.
    pub fn contains(&self, pc: u64) -> bool {
        pc >= self.start && pc - self.start < u64::from(self.size)
    }
}

impl<'a> Section<'a> {
    /// Checks the header of `data`, an SFrame section loaded at `addr` (its `sh_addr`, which
    /// start addresses stored relative to their own position need).
    pub fn parse(data: &'a [u8], addr: u64) -> Result<Section<'a>, Error> {
        let magic = u16_at(data, 0, "header")?;
        if magic != MAGIC {
            return Err(if magic == MAGIC.swap_bytes() { Error::BigEndian } else { Error::BadMagic(magic) });
        }
        let h: [u8; HEADER_SIZE] = bytes(data, 0, "header")?;
        if h[2] != VERSION_3 {
            return Err(Error::Version(h[2]));
        }
        let known = F_FDE_SORTED | F_FRAME_POINTER | F_FDE_FUNC_START_PCREL;
        if h[3] & !known != 0 {
            return Err(Error::Flags(h[3]));
        }
        if h[4] != ABI_AMD64_LITTLE {
            return Err(Error::Abi(h[4]));
        }
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let header = Header {
            flags: h[3],
            abi: h[4],
            cfa_fixed_fp_offset: h[5] as i8,
            cfa_fixed_ra_offset: h[6] as i8,
            auxhdr_len: h[7],
            num_fdes: word(8),
            num_fres: word(12),
            fre_len: word(16),
            fdeoff: word(20),
            freoff: word(24),
        };
        if header.cfa_fixed_ra_offset != crate::AMD64_FIXED_RA_OFFSET {
            return Err(Error::FixedRaOffset(header.cfa_fixed_ra_offset));
        }
        let base = HEADER_SIZE + usize::from(header.auxhdr_len);
        if base > data.len() {
            return Err(Error::Truncated { what: "auxiliary header", offset: HEADER_SIZE });
        }
        let index_at = base.checked_add(header.fdeoff as usize).ok_or(Error::Truncated { what: "function index", offset: base })?;
        let index_len = (header.num_fdes as usize).checked_mul(FDE_INDEX_SIZE);
        match index_len.and_then(|l| index_at.checked_add(l)) {
            Some(end) if end <= data.len() => {}
            _ => return Err(Error::Truncated { what: "function index", offset: index_at }),
        }
        let rows_at = base.checked_add(header.freoff as usize).ok_or(Error::Truncated { what: "row area", offset: base })?;
        let rows_end = match rows_at.checked_add(header.fre_len as usize) {
            Some(end) if end <= data.len() => end,
            _ => return Err(Error::Truncated { what: "row area", offset: rows_at }),
        };
        Ok(Section { data, addr, header, index_at, rows_at, rows_end })
    }

    /// The section's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Number of functions.
    pub fn len(&self) -> u32 {
        self.header.num_fdes
    }

    /// True when there are no functions.
    pub fn is_empty(&self) -> bool {
        self.header.num_fdes == 0
    }

    /// The `i`-th function of the index.
    pub fn fde(&self, i: u32) -> Result<Fde, Error> {
        let at = self.index_at + i as usize * FDE_INDEX_SIZE;
        let rel = i64_at(self.data, at, "function index entry")?;
        let size = u32_at(self.data, at + 8, "function index entry")?;
        let fre_off = u32_at(self.data, at + 12, "function index entry")?;
        let base = if self.header.flags & F_FDE_FUNC_START_PCREL != 0 { self.addr.wrapping_add(at as u64) } else { self.addr };
        let start = base.wrapping_add(rel as u64);
        let attr_at = self.rows_at.checked_add(fre_off as usize).ok_or(Error::Truncated { what: "function attributes", offset: self.rows_at })?;
        let attr: [u8; FDE_ATTR_SIZE] = bytes(self.data.get(..self.rows_end).unwrap_or(&[]), attr_at, "function attributes")?;
        let info = attr[2];
        let start_width = match info & 0xf {
            0 => 1,
            1 => 2,
            2 => 4,
            value => return Err(Error::FreType { fde: i, value }),
        };
        let flexible = match attr[3] & 0x1f {
            0 => false,
            1 => true,
            value => return Err(Error::FdeType { fde: i, value }),
        };
        let pc_mask = (info & 0x10 != 0).then_some(attr[4]);
        Ok(Fde {
            index: i,
            start,
            size,
            fre_off,
            num_fres: u16::from_le_bytes([attr[0], attr[1]]),
            start_width,
            pc_mask,
            signal: info & 0x80 != 0,
            flexible,
        })
    }

    /// Every function, in index order.
    pub fn fdes(&self) -> impl Iterator<Item = Result<Fde, Error>> + '_ {
        (0..self.header.num_fdes).map(move |i| self.fde(i))
    }

    /// The rows of `fde`.
    pub fn rows(&self, fde: &Fde) -> Rows<'a> {
        Rows {
            data: self.data.get(..self.rows_end).unwrap_or(&[]),
            at: self.rows_at + fde.fre_off as usize + FDE_ATTR_SIZE,
            left: fde.num_fres,
            fde: *fde,
            last: None,
        }
    }

    /// The function that covers `pc`, by binary search when the index is sorted (else a scan).
    pub fn find_fde(&self, pc: u64) -> Result<Option<Fde>, Error> {
        if self.header.flags & F_FDE_SORTED == 0 {
            for f in self.fdes() {
                let f = f?;
                if f.contains(pc) {
                    return Ok(Some(f));
                }
            }
            return Ok(None);
        }
        let (mut lo, mut hi) = (0u32, self.header.num_fdes);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.fde(mid)?.start <= pc {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(None);
        }
        let f = self.fde(lo - 1)?;
        Ok(f.contains(pc).then_some(f))
    }

    /// The function covering `pc` and the row that applies there (`None`: no function covers
    /// it, or `pc` is before its first row).
    pub fn find_row(&self, pc: u64) -> Result<Option<(Fde, Row)>, Error> {
        let Some(f) = self.find_fde(pc)? else { return Ok(None) };
        let off = match f.pc_mask {
            Some(0) | None => pc - f.start,
            Some(rep) => (pc - f.start) % u64::from(rep),
        };
        let mut found = None;
        for row in self.rows(&f) {
            let row = row?;
            if u64::from(row.start) > off {
                break;
            }
            found = Some(row);
        }
        Ok(found.map(|r| (f, r)))
    }

    /// Checks every function and row (what `orctool` runs after writing a section).
    pub fn validate(&self) -> Result<(), Error> {
        let mut prev = None;
        for f in self.fdes() {
            let f = f?;
            if self.header.flags & F_FDE_SORTED != 0 && prev.is_some_and(|p| p > f.start) {
                return Err(Error::NotSorted { fde: f.index });
            }
            prev = Some(f.start);
            for r in self.rows(&f) {
                r?;
            }
        }
        Ok(())
    }
}

/// The rows of one function, decoded as they are read.
#[derive(Clone, Debug)]
pub struct Rows<'a> {
    data: &'a [u8],
    at: usize,
    left: u16,
    fde: Fde,
    last: Option<u32>,
}

impl Rows<'_> {
    fn next_row(&mut self) -> Result<Row, Error> {
        let row_at = self.at;
        let w = usize::from(self.fde.start_width);
        let head = row_at.checked_add(w + 1).and_then(|e| self.data.get(row_at..e)).ok_or(Error::Truncated { what: "FRE", offset: row_at })?;
        let start = match w {
            1 => u32::from(head[0]),
            2 => u32::from(u16::from_le_bytes([head[0], head[1]])),
            _ => u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
        };
        let info = head[w];
        let count = usize::from((info >> 1) & 0xf);
        let size = match (info >> 5) & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => return Err(Error::DataWordSize { offset: row_at }),
        };
        let words_at = row_at + w + 1;
        let raw = words_at
            .checked_add(count * size)
            .and_then(|e| self.data.get(words_at..e))
            .ok_or(Error::Truncated { what: "FRE data words", offset: row_at })?;
        let mut words = [0i32; 15];
        for (slot, b) in words.iter_mut().zip(raw.chunks_exact(size)) {
            *slot = match size {
                1 => i32::from(b[0] as i8),
                2 => i32::from(i16::from_le_bytes([b[0], b[1]])),
                _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            };
        }
        let words = &words[..count];
        if info & 0x80 != 0 {
            return Err(Error::BadRule { offset: row_at, why: "return address flagged as signed (an AArch64 feature)" });
        }
        let rule = if self.fde.flexible { flexible_rule(words, row_at)? } else { default_rule(words, info & 1, row_at)? };
        if self.last.is_some_and(|l| l >= start) || (self.fde.pc_mask.is_none() && start >= self.fde.size && self.fde.size > 0) {
            return Err(Error::RowOrder { fde: self.fde.index });
        }
        self.last = Some(start);
        self.at = words_at + count * size;
        Ok(Row { start, rule })
    }
}

/// A default row of x86-64: no words (outermost), the CFA offset, then the frame pointer's
/// offset from the CFA. `base` 1 is `%rsp`, 0 is `%rbp`.
fn default_rule(words: &[i32], base: u8, offset: usize) -> Result<Rule, Error> {
    let reg = if base == 1 { crate::dwarf::RSP } else { crate::dwarf::RBP };
    match *words {
        [] => Ok(Rule::Outermost),
        [cfa] => Ok(Rule::Frame { cfa: Cfa::Reg { reg, offset: cfa }, ra: Saved::Default, fp: Saved::Default }),
        [cfa, fp] => Ok(Rule::Frame { cfa: Cfa::Reg { reg, offset: cfa }, ra: Saved::Default, fp: Saved::AtCfa(fp) }),
        _ => Err(Error::BadRule { offset, why: "more than two data words in a default x86-64 row" }),
    }
}

/// The parts of a flexible control word.
struct Control {
    reg_p: bool,
    deref_p: bool,
    reg: u8,
}

fn control(word: i32, offset: usize) -> Result<Control, Error> {
    if word & 0b100 != 0 {
        return Err(Error::BadRule { offset, why: "control word uses its reserved bit 2" });
    }
    let reg = word >> 3;
    let reg = u8::try_from(reg).ok().filter(|&r| r <= crate::dwarf::R15).ok_or(Error::BadRule { offset, why: "control word names no general register" })?;
    Ok(Control { reg_p: word & 1 != 0, deref_p: word & 2 != 0, reg })
}

/// One flexible recovery rule for the return address or the frame pointer: a padding word of
/// zero (the default), or a control word and its offset. Returns the rule and the words used.
fn saved_rule(words: &[i32], offset: usize) -> Result<(Saved, usize), Error> {
    match *words {
        [] => Ok((Saved::Default, 0)),
        [0, ..] => Ok((Saved::Default, 1)),
        [c, off, ..] => {
            let c = control(c, offset)?;
            let rule = match (c.reg_p, c.deref_p) {
                (false, _) if c.reg != 0 => return Err(Error::BadRule { offset, why: "CFA-based rule with a register number" }),
                (false, _) => Saved::AtCfa(off),
                (true, false) => Saved::Reg { reg: c.reg, offset: off },
                (true, true) => Saved::Deref { reg: c.reg, offset: off },
            };
            Ok((rule, 2))
        }
        [_] => Err(Error::BadRule { offset, why: "control word without its offset" }),
    }
}

/// A flexible row: nothing (outermost), or CFA control + offset, then optionally the return
/// address's rule, then optionally the frame pointer's.
fn flexible_rule(words: &[i32], offset: usize) -> Result<Rule, Error> {
    let (cfa, rest) = match *words {
        [] => return Ok(Rule::Outermost),
        [_] => return Err(Error::BadRule { offset, why: "one data word in a flexible row" }),
        [c, off, ref rest @ ..] => {
            let c = control(c, offset)?;
            if !c.reg_p {
                return Err(Error::BadRule { offset, why: "CFA rule not based on a register" });
            }
            (if c.deref_p { Cfa::Deref { reg: c.reg, offset: off } } else { Cfa::Reg { reg: c.reg, offset: off } }, rest)
        }
    };
    let (ra, used) = saved_rule(rest, offset)?;
    let (fp, used_fp) = saved_rule(&rest[used..], offset)?;
    if used + used_fp != rest.len() {
        return Err(Error::BadRule { offset, why: "data words left over after the frame pointer's rule" });
    }
    Ok(Rule::Frame { cfa, ra, fp })
}

impl Iterator for Rows<'_> {
    type Item = Result<Row, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        match self.next_row() {
            Ok(r) => {
                self.left -= 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.left = 0;
                Some(Err(e))
            }
        }
    }
}
