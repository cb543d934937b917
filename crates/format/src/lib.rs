//! The x86-64 ORC unwind table format of the Linux kernel.
//!
//! This crate is the vocabulary that every other part of orctool speaks: the reader, the
//! generator and the unwinder. It is `no_std`, allocation-free and has no dependencies, so a
//! kernel, a profiler or a debugger can embed it.
//!
//! The format in one paragraph: an ORC table is two parallel arrays. `.orc_unwind_ip[i]` is a
//! self-relative `s32` giving an instruction address; `.orc_unwind[i]` is a 6-byte [`RawEntry`]
//! describing the stack state *before* the instruction at that address, valid until the next
//! address in the table. The entry says how to find the caller's stack pointer (a base register
//! plus an offset), where the caller's frame pointer was saved, and what kind of frame this is.
//!
//! Five on-disk [`Layout`]s exist; they differ in how the 16 flag bits are split and in how the
//! base registers are numbered:
//!
//! | layout | kernels   | type bits | signal | end | registers |
//! |--------|-----------|-----------|--------|-----|-----------|
//! | v1     | 4.14-6.2  | 8-9       | (implied by type) | 10 | 4.14's (0-9) |
//! | v2     | 6.3       | 8-9       | 10     | 11  | 4.14's |
//! | v3     | 6.4-7.0   | 8-10      | 11     | (type END_OF_STACK) | 4.14's |
//! | v3+ax  | 6.12.y/7.0.y with the AX backport | as v3 | 11 | - | 4.14's + AX=10 |
//! | v4     | 7.1+      | as v3     | 11     | -   | renumbered (AX 1, DX 2, SP 3, BP 4, DI 5, R10 6, R13 7, PREV_SP 8, SP_INDIRECT 9, BP_INDIRECT 10) |
//!
//! The kernel stores no layout number; `.orc_header` (6.3.10+) holds a SHA-1 of the definitions,
//! one per layout ([`Layout::from_header`]); a hash no layout has is an error, never a guess.
//!
//! Two views of an entry are offered, in the style of the `object` crate: [`RawEntry`] is the
//! bytes as stored (exact, lossless, layout-agnostic until asked), and [`Entry`] is the meaning,
//! normalised to the v3 vocabulary ([`EntryType::Undefined`], [`EntryType::EndOfStack`], ...),
//! which is what the unwinder and the generator reason about. [`Layout::decode`] and
//! [`Layout::encode`] convert between them; encode fails, rather than guessing, when an entry
//! cannot be expressed in a layout.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dump;
mod entry;
mod layout;

pub use dump::{DumpAddress, DumpLine};
pub use entry::{Endian, Entry, EntryType, RawEntry, Reg};
pub use layout::{EncodeError, Layout, LayoutError};

/// Size in bytes of one `.orc_unwind` entry.
pub const ORC_ENTRY_SIZE: usize = 6;

/// Size in bytes of one `.orc_unwind_ip` slot (a self-relative `s32`).
pub const ORC_IP_SIZE: usize = 4;

/// Size in bytes of the `.orc_header` section (a SHA-1 of the layout's definition).
pub const ORC_HEADER_SIZE: usize = 20;
