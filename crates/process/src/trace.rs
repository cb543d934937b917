//! Unwinding one thread: registers in, symbolized frames out.

use orc_unwind::{Config, End, Frame, Memory, StackRange, Unreliable, Unwinder};
use serde::Serialize;

use crate::space::{AddressSpace, Symbolized};

/// The registers a walk starts from.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
pub struct Regs {
    /// `rip`: the interrupted instruction (exact).
    pub ip: u64,
    /// `rsp`.
    pub sp: u64,
    /// `rbp`.
    pub bp: u64,
}

impl From<&nix::libc::user_regs_struct> for Regs {
    fn from(r: &nix::libc::user_regs_struct) -> Regs {
        Regs { ip: r.rip, sp: r.rsp, bp: r.rbp }
    }
}

/// One frame of a thread's trace.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct TraceFrame {
    /// The instruction pointer: exact for the first frame and after a signal frame, else a
    /// return address.
    pub ip: u64,
    /// The stack pointer.
    pub sp: u64,
    /// `ip` is exact (interrupted, not a return address).
    pub signal: bool,
    /// What `ip` is.
    pub symbolized: Symbolized,
}

/// A thread's trace.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ThreadTrace {
    /// The frames, innermost first.
    pub frames: Vec<TraceFrame>,
    /// How the walk ended.
    pub end: End,
    /// Reliable in the livepatch sense: ended at END_OF_STACK, no guess, no error.
    pub reliable: bool,
    /// The first reason it is not reliable.
    pub unreliable: Option<Unreliable>,
}

/// Frames without symbols: what the walk itself produces, for callers that symbolize later
/// (after letting the process go) or never (checking every step).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RawTrace {
    /// The frames, innermost first.
    pub frames: Vec<Frame>,
    /// How the walk ended.
    pub end: End,
    /// The first reason the trace is not reliable.
    pub unreliable: Option<Unreliable>,
}

/// Walks a user-space stack (`Config::user_space`) from `regs`, reading `stack` through
/// `mem`; at most `max_frames` frames.
pub fn unwind_raw<M: Memory + ?Sized>(
    space: &AddressSpace,
    regs: Regs,
    mem: &mut M,
    stack: StackRange,
    max_frames: usize,
) -> RawTrace {
    let stacks = [stack];
    let config = Config { max_frames: max_frames.max(1), ..Config::user_space() };
    let unwinder = Unwinder::new(space, &stacks).with_config(config);
    let mut state = unwinder.start(regs.ip, regs.sp, regs.bp, true);
    let mut frames = Vec::new();
    let trace = unwinder.walk_with(&mut state, mem, |f| {
        frames.push(*f);
        true
    });
    RawTrace { frames, end: trace.end, unreliable: trace.unreliable }
}

/// Symbolizes a raw trace.
///
/// A return address is symbolized at `ip - 1` (the call), except the one a signal handler
/// returns to: that is the first byte of the signal trampoline (`__restore_rt`), and the
/// byte before it belongs to another function. The frame after it came from the signal
/// frame's registers (and has an exact ip), which is how it is recognized.
pub fn symbolize(space: &AddressSpace, raw: &RawTrace) -> ThreadTrace {
    symbolize_with(space, raw, true)
}

/// [`symbolize`], with or without DWARF ([`AddressSpace::symbolize_with`]).
pub fn symbolize_with(space: &AddressSpace, raw: &RawTrace, dwarf: bool) -> ThreadTrace {
    let frames = raw
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let trampoline = i > 0 && raw.frames.get(i + 1).is_some_and(|next| next.signal || next.regs.is_some());
            let exact = f.signal || f.regs.is_some() || trampoline;
            TraceFrame { ip: f.ip, sp: f.sp, signal: f.signal || f.regs.is_some(), symbolized: space.symbolize_with(f.ip, exact, dwarf) }
        })
        .collect();
    ThreadTrace { frames, end: raw.end, reliable: raw.unreliable.is_none(), unreliable: raw.unreliable }
}

/// Walks and symbolizes one thread's stack (at most 512 frames).
pub fn unwind_thread<M: Memory + ?Sized>(space: &AddressSpace, regs: Regs, mem: &mut M, stack: StackRange) -> ThreadTrace {
    symbolize(space, &unwind_raw(space, regs, mem, stack, Config::user_space().max_frames))
}

/// How a walk ended, in words.
pub fn describe_end(end: &End) -> String {
    match end {
        End::EndOfStack => "end of stack".to_string(),
        End::UserMode => "user-mode registers".to_string(),
        End::Error(e) => format!("error: {e}"),
        End::NotText => "the last address is not in any code".to_string(),
        End::FrameLimit => "frame limit".to_string(),
        End::BufferFull => "buffer full".to_string(),
    }
}
