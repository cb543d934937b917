//! ORC for linked x86-64 programs: executables (`ET_EXEC`, PIE) and shared libraries.
//!
//! The kernel's objtool analyses relocatable objects; user-space code arrives linked, often
//! stripped. This crate finds the functions of a linked file, derives ORC from its machine code,
//! converts `.eh_frame` to ORC where the compiler's CFI can be expressed, and stores tables in
//! sidecar files.

#![forbid(unsafe_code)]

pub mod eh_frame;
