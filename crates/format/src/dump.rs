//! Text form of an entry, exactly as `objtool --dump=orc` of the layout's kernel prints it.
//!
//! The three forms (one line each):
//!
//! ```text
//! v1 (5.12-6.2):  .text+41: sp:sp+16 bp:prevsp-16 type:call end:0
//! v2 (6.3):       .text+41: sp:sp+16 bp:prevsp-16 type:call signal:0 end:0
//! v3 (6.4+):      .text+41:type:call sp:sp+16 bp:prevsp-16 signal:0
//! ```
//!
//! v3+ax and v4 print as v3 does; the register of each field value is the layout's (objtool
//! 7.2 prints field 3 as `sp`, 6.12 as `di`), and a value the layout does not name is `?`.
//!
//! Fields are printed from the stored bits, not from the normalised [`crate::Entry`], because
//! objtool prints what is there: a v1 terminator reads `sp:(und) bp:(und) type:call end:0`.

use core::fmt;

use crate::entry::{RawEntry, Reg};
use crate::layout::Layout;

/// Where a dumped entry points.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DumpAddress<'a> {
    /// A relocatable object: the relocation's symbol (a section's name for a section symbol)
    /// and addend. objtool prints the addend as an unsigned 64-bit hex number.
    Symbol {
        /// Section or symbol name.
        name: &'a str,
        /// Relocation addend.
        addend: i64,
    },
    /// A linked file: the absolute instruction address.
    Absolute(u64),
}

impl fmt::Display for DumpAddress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DumpAddress::Symbol { name, addend } => write!(f, "{name}+{:x}:", addend as u64),
            DumpAddress::Absolute(addr) => write!(f, "{addr:x}:"),
        }
    }
}

/// One line of `--dump=orc` output, without the trailing newline.
#[derive(Clone, Copy, Debug)]
pub struct DumpLine<'a> {
    /// The entry's address.
    pub address: DumpAddress<'a>,
    /// The stored entry.
    pub raw: RawEntry,
    /// How to read its flag bits.
    pub layout: Layout,
}

/// A base register and its offset, as objtool prints them.
struct RegOffset(Reg, i16);

impl fmt::Display for RegOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RegOffset(reg, offset) = *self;
        match reg {
            Reg::UNDEFINED => f.write_str("(und)"),
            Reg::BP_INDIRECT => write!(f, "(bp{offset:+})"),
            // Printed `(sp+N)` before 5.12, when the rule was `*(sp + N)`; every layout this
            // crate renders is from objtool 5.12 or later, where the rule is `*sp + N`.
            Reg::SP_INDIRECT => write!(f, "(sp){offset:+}"),
            reg => write!(f, "{}{offset:+}", reg.name().unwrap_or("?")),
        }
    }
}

/// objtool's name for a raw type number of `layout`.
fn type_name(layout: Layout, raw_type: u8) -> &'static str {
    match (layout, raw_type) {
        (Layout::V1 | Layout::V2, 0) => "call",
        (Layout::V1 | Layout::V2, 1) => "regs",
        (Layout::V1 | Layout::V2, 2) => "regs (partial)",
        (Layout::V1 | Layout::V2, _) => "?",
        (Layout::V3 | Layout::V3Ax | Layout::V4, 0) => "(und)",
        (Layout::V3 | Layout::V3Ax | Layout::V4, 1) => "end",
        (Layout::V3 | Layout::V3Ax | Layout::V4, 2) => "call",
        (Layout::V3 | Layout::V3Ax | Layout::V4, 3) => "regs",
        (Layout::V3 | Layout::V3Ax | Layout::V4, 4) => "regs (partial)",
        (Layout::V3 | Layout::V3Ax | Layout::V4, _) => "?",
    }
}

impl fmt::Display for DumpLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.raw;
        let layout = self.layout;
        let sp = RegOffset(layout.sp_reg(raw), raw.sp_offset);
        let bp = RegOffset(layout.bp_reg(raw), raw.bp_offset);
        let ty = type_name(layout, layout.raw_type(raw));
        let signal = layout.raw_signal(raw) as u8;
        let end = layout.raw_end(raw) as u8;
        let addr = self.address;
        match layout {
            Layout::V1 => write!(f, "{addr} sp:{sp} bp:{bp} type:{ty} end:{end}"),
            Layout::V2 => write!(f, "{addr} sp:{sp} bp:{bp} type:{ty} signal:{signal} end:{end}"),
            Layout::V3 | Layout::V3Ax | Layout::V4 => write!(f, "{addr}type:{ty} sp:{sp} bp:{bp} signal:{signal}"),
        }
    }
}
