//! Kernel crash dumps (ELF vmcores): kdump's `/proc/vmcore` and QEMU's `dump-guest-memory`.
//!
//! [`Vmcore`] reads the file (physical memory, `VMCOREINFO`, the CPUs' registers); [`Image`]
//! indexes the `vmlinux` it ran (symbols, ORC table, build ID); [`Kernel`] joins them: KASLR
//! from `KERNELOFFSET`, virtual memory through the page tables from `init_top_pgt`, structure
//! layouts from the image's DWARF ([`dwarf`]), the task list, per-CPU data and stacks;
//! [`walk`] unwinds each task with `orc-unwind`; [`patching`] matches the running code at
//! every patch site against `orc-patch`'s choices. See docs/vmcore.md.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dump;
pub mod dwarf;
pub mod image;
pub mod kernel;
pub mod modules;
pub mod patching;
pub mod vmcoreinfo;
pub mod walk;

pub use dump::{CpuRegs, Load, Vmcore};
pub use image::Image;
pub use kernel::{Kernel, StackKind, Start, Task};
pub use modules::Module;
pub use vmcoreinfo::VmcoreInfo;
pub use walk::{unwind_task, Tables, TaskTrace};

/// What can be wrong with a dump or its image. Each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum VmcoreError {
    /// Not an ELF core file, or not one of a kernel.
    #[error("not a vmcore: {0}")]
    NotVmcore(String),
    /// The file ends before its headers say.
    #[error("truncated vmcore: {0}")]
    Truncated(String),
    /// The dump is of another kernel than the image.
    #[error("not the kernel of this vmlinux: {0}")]
    Mismatch(String),
    /// The image cannot be used (no ORC table, a missing symbol).
    #[error("vmlinux: {0}")]
    Image(String),
    /// The image's debug info lacks a structure or member.
    #[error("vmlinux debug info: {0}")]
    Debug(String),
    /// Memory the walk needs is not in the dump.
    #[error("{0}")]
    Memory(String),
}
