//! The x86-64 ORC stack unwinder, with the Linux kernel's semantics.
//!
//! Give it ORC tables ([`OrcTable`], one per object, or [`ModuleTables`] for many), the stacks
//! it may read ([`StackRange`]) and a way to read them ([`Memory`]); start from registers and
//! it produces the frames, says how the walk ended ([`End`]) and whether the trace is reliable
//! in the livepatch sense ([`Trace::unreliable`]).
//!
//! ```
//! use orc_format::{Entry, Layout};
//! use orc_unwind::{OrcTable, StackRange, StackSnapshot, Unwinder, Frame, End};
//!
//! // One function at 0x1000..0x1100 whose frame is 16 bytes (one push + the return address),
//! // called from a function at 0x2000 that is the bottom of the stack.
//! let layout = Layout::V3;
//! let ips = [0x1000, 0x1100, 0x2000, 0x2100];
//! let entries = [
//!     layout.encode(Entry::call(16)).unwrap(),
//!     layout.encode(Entry::UNDEFINED).unwrap(), // section terminator
//!     layout.encode(Entry::END_OF_STACK).unwrap(),
//!     layout.encode(Entry::UNDEFINED).unwrap(),
//! ];
//! let table = OrcTable::new(&ips, &entries, layout, 0x1000..0x2100);
//!
//! // The stack: [saved rbx][return address 0x2010]
//! let mut bytes = Vec::new();
//! bytes.extend_from_slice(&0xdead_u64.to_le_bytes());
//! bytes.extend_from_slice(&0x2010_u64.to_le_bytes());
//! let mut stack = StackSnapshot::new(0x7000, &bytes);
//! let stacks = [stack.range()];
//!
//! let unwinder = Unwinder::new(&table, &stacks);
//! let mut state = unwinder.start(0x1040, 0x7000, 0, true);
//! let mut frames = [Frame::default(); 8];
//! let trace = unwinder.walk(&mut state, &mut stack, &mut frames);
//! assert_eq!(trace.end, End::EndOfStack);
//! assert!(trace.is_reliable());
//! let ips: Vec<u64> = frames[..trace.frames].iter().map(|f| f.ip).collect();
//! assert_eq!(ips, [0x1040, 0x2010]);
//! ```
//!
//! The crate is `no_std` and the walk never allocates; the `alloc` feature only adds
//! [`OwnedTable`] for building sorted, indexed tables from vectors. See `docs/unwinder.md`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod memory;
#[cfg(feature = "alloc")]
mod owned;
pub mod rule;
mod table;
mod unwinder;

pub use cache::CachedLookup;
pub use memory::{Memory, Snapshots, StackRange, StackSnapshot};
#[cfg(feature = "alloc")]
pub use owned::{IndexKind, OwnedTable, DEFAULT_BLOCK_ORDER, DEFAULT_DIRECT_ORDER, KERNEL_BLOCK_ORDER};
pub use rule::{
    pt_regs, sigcontext, BpRule, Decision, FrameRule, PackedEntry, RegsField, RegsLayout, RuleError, SpIndirect, SpRule,
    UnwindRule,
};
pub use table::{
    block_index_len, build_block_index, build_direct_index, is_weak, pack_entries, sort_entries, sort_key, Index, IndexError, ModuleTables,
    OrcLookup, OrcTable, DIRECT_MISS,
};
pub use unwinder::{Config, End, Frame, RegsAt, Trace, Unreliable, UnwindError, UnwindState, Unwinder};
