//! The walk: state, one step (`unwind_next_frame`), and whole traces.

use core::fmt;

use orc_format::{Entry, Layout, RawEntry, Reg};

use crate::memory::{Memory, StackRange};
use crate::rule::{
    pt_regs, BpRule, Decision, FrameRule, PackedEntry, RegsField, RuleError, SpRule, UnwindRule, PACKED_BP_AT_PREV_SP,
    PACKED_SIGNAL, PACKED_SLOW, PACKED_SP_IS_BP,
};
use crate::rule::{RegsLayout, SpIndirect};
use crate::table::OrcLookup;

/// Why a step failed. Each one makes the trace unreliable and ends it, as the kernel's
/// `state->error` does. `ip` fields are the address that was looked up.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum UnwindError {
    /// No entry covers the address and the frame-pointer fallback is off (kernels before 6.3
    /// had none).
    NoEntry {
        /// Address looked up.
        ip: u64,
    },
    /// The entry is UNDEFINED (v1/v2: `sp_reg` undefined without the `end` bit): code objtool
    /// had no state for, or a section terminator.
    UndefinedEntry {
        /// Address looked up.
        ip: u64,
    },
    /// A type number no kernel defines.
    UnknownType {
        /// Address looked up.
        ip: u64,
        /// v3 type number.
        kind: u8,
    },
    /// An `sp_reg` no kernel defines (or PREV_SP, which is only meaningful as `bp_reg`).
    UnknownSpReg {
        /// Address looked up.
        ip: u64,
        /// The register number.
        reg: Reg,
    },
    /// A `bp_reg` other than UNDEFINED, PREV_SP and BP.
    UnknownBpReg {
        /// Address looked up.
        ip: u64,
        /// The register number.
        reg: Reg,
    },
    /// `sp_reg` is a `pt_regs` register (DX, DI, R10, R13, AX) but no full `pt_regs` is known.
    MissingRegs {
        /// Address looked up.
        ip: u64,
        /// The register.
        reg: Reg,
    },
    /// A read outside every stack range, or one the [`Memory`] could not satisfy; for a
    /// `pt_regs` or iret frame, `addr` is its start.
    BadRead {
        /// Address of the read.
        addr: u64,
    },
    /// Address arithmetic overflowed (garbage registers or offsets).
    Overflow {
        /// Address looked up.
        ip: u64,
    },
    /// The new stack pointer is not above the old one on the same stack (the kernel's
    /// "stack going in the wrong direction?"): bad data that would loop.
    WrongDirection {
        /// Stack pointer before the step.
        sp: u64,
        /// Stack pointer after it.
        new_sp: u64,
    },
    /// The step moved back onto a stack the walk had already left (the kernel's
    /// `visit_mask` rule: each stack is walked at most once).
    StackRevisited {
        /// Stack pointer after the step.
        new_sp: u64,
    },
}

impl UnwindError {
    /// The error for an entry at `ip` that gives no rule.
    #[cold]
    pub fn from_rule(e: RuleError, ip: u64) -> UnwindError {
        match e {
            RuleError::Undefined => UnwindError::UndefinedEntry { ip },
            RuleError::UnknownType(kind) => UnwindError::UnknownType { ip, kind },
            RuleError::UnknownSpReg(reg) => UnwindError::UnknownSpReg { ip, reg },
            RuleError::UnknownBpReg(reg) => UnwindError::UnknownBpReg { ip, reg },
        }
    }
}

impl fmt::Display for UnwindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            UnwindError::NoEntry { ip } => write!(f, "no ORC entry for {ip:#x}"),
            UnwindError::UndefinedEntry { ip } => write!(f, "undefined ORC entry for {ip:#x}"),
            UnwindError::UnknownType { ip, kind } => write!(f, "unknown ORC type {kind} at {ip:#x}"),
            UnwindError::UnknownSpReg { ip, reg } => write!(f, "unknown sp_reg {} at {ip:#x}", reg.0),
            UnwindError::UnknownBpReg { ip, reg } => write!(f, "unknown bp_reg {} at {ip:#x}", reg.0),
            UnwindError::MissingRegs { ip, reg } => write!(f, "missing {reg} value at {ip:#x}"),
            UnwindError::BadRead { addr } => write!(f, "can't read stack at {addr:#x}"),
            UnwindError::Overflow { ip } => write!(f, "address arithmetic overflow at {ip:#x}"),
            UnwindError::WrongDirection { sp, new_sp } => {
                write!(f, "stack going in the wrong direction ({sp:#x} -> {new_sp:#x})")
            }
            UnwindError::StackRevisited { new_sp } => write!(f, "went back to a stack already left ({new_sp:#x})"),
        }
    }
}

/// Why a trace is not reliable in the livepatch sense (`arch_stack_walk_reliable`): the
/// first reason met.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Unreliable {
    /// A step failed.
    Error(UnwindError),
    /// No entry covered `ip`; the frame-pointer fallback guessed the frame (kernel 6.3+ sets
    /// `state->error` and carries on).
    FramePointerGuess {
        /// Address looked up.
        ip: u64,
    },
    /// A frame's ip is outside every table's text (the kernel's `__kernel_text_address`
    /// check; a NULL ip is one case). The walk stops after reporting that frame.
    NotText {
        /// The ip.
        ip: u64,
    },
    /// The walk hit [`Config::max_frames`] before the end of the stack.
    FrameLimit,
    /// The output buffer filled before the end of the stack.
    BufferFull,
}

impl fmt::Display for Unreliable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreliable::Error(e) => e.fmt(f),
            Unreliable::FramePointerGuess { ip } => write!(f, "no ORC entry for {ip:#x}, guessed a frame pointer"),
            Unreliable::NotText { ip } => write!(f, "{ip:#x} is not in any text"),
            Unreliable::FrameLimit => f.write_str("frame limit reached"),
            Unreliable::BufferFull => f.write_str("output buffer full"),
        }
    }
}

/// How a walk (or a step) ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum End {
    /// An END_OF_STACK entry (v1/v2: `sp_reg` undefined with `end` set): the normal end.
    EndOfStack,
    /// The current `pt_regs` are from user mode (`cs & 3 != 0`): the kernel stack is done.
    UserMode,
    /// A step failed.
    Error(UnwindError),
    /// The last frame's ip is not in any text.
    NotText,
    /// [`Config::max_frames`] frames were reported.
    FrameLimit,
    /// The output buffer is full.
    BufferFull,
}

/// Walk options. [`Config::default`] is a 6.4+ kernel.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Config {
    /// The meaning of SP_INDIRECT (changed in 5.12).
    pub sp_indirect: SpIndirect,
    /// When no entry covers an address, guess a frame-pointer frame
    /// ([`Entry::FRAME_POINTER_FALLBACK`]) and mark the trace unreliable, as kernels since 6.3
    /// do; when false, stop with [`UnwindError::NoEntry`], as older kernels do.
    pub frame_pointer_fallback: bool,
    /// Stop when the `pt_regs` reached are from user mode (reading `cs` at `regs + 136`).
    pub stop_at_user_mode: bool,
    /// Most frames one walk reports (the first one included). Always at least 1.
    pub max_frames: usize,
    /// What a REGS entry points at: `pt_regs` in the kernel, a signal frame's `sigcontext`
    /// in user space.
    pub regs: RegsLayout,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sp_indirect: SpIndirect::DerefThenAdd,
            frame_pointer_fallback: true,
            stop_at_user_mode: true,
            max_frames: 512,
            regs: RegsLayout::PtRegs,
        }
    }
}

impl Config {
    /// The kernel's rules of version `major.minor`: SP_INDIRECT is `*sp + off` from 5.12
    /// (before: `*(sp + off)`), the frame-pointer guess for addresses without entry from 6.3.
    pub fn for_kernel(major: u32, minor: u32) -> Config {
        Config {
            sp_indirect: if (major, minor) >= (5, 12) { SpIndirect::DerefThenAdd } else { SpIndirect::AddThenDeref },
            frame_pointer_fallback: (major, minor) >= (6, 3),
            ..Config::default()
        }
    }

    /// A user-space process: REGS entries are signal frames (`struct sigcontext`, as the
    /// tables of `orc-linked` describe the signal trampoline), there is no user mode to stop
    /// at, and an address without entry still gets the frame-pointer guess (marked
    /// unreliable): code nobody made a table for, such as a JIT's.
    pub const fn user_space() -> Config {
        Config {
            sp_indirect: SpIndirect::DerefThenAdd,
            frame_pointer_fallback: true,
            stop_at_user_mode: false,
            max_frames: 512,
            regs: RegsLayout::SigContext,
        }
    }
}

/// Where the current `pt_regs` are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RegsAt {
    /// Address of the (possibly notional) `struct pt_regs`.
    pub addr: u64,
    /// All 168 bytes are there (REGS); false for a REGS_PARTIAL frame, where only the iret
    /// frame at `addr + 128` exists.
    pub full: bool,
}

/// One frame of a trace.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Frame {
    /// The instruction pointer: exact for the first frame and after a REGS frame, else a
    /// return address.
    pub ip: u64,
    /// The stack pointer.
    pub sp: u64,
    /// The frame pointer register (whatever value it holds).
    pub bp: u64,
    /// `ip` is exact (the next lookup is of `ip`, not `ip - 1`).
    pub signal: bool,
    /// The `pt_regs` this frame came from, if it came from one.
    pub regs: Option<RegsAt>,
    /// Those `pt_regs` are from user mode: this is the last frame.
    pub user_mode: bool,
}

/// The state between steps (`struct unwind_state`, without the kernel-only parts).
#[derive(Clone, Copy, Debug)]
pub struct UnwindState {
    frame: Frame,
    prev_regs: Option<u64>,
    /// Index of the stack holding `sp`.
    stack: Option<usize>,
    /// Bit `i`: the walk has left stack `i`.
    left: u64,
    unreliable: Option<Unreliable>,
    end: Option<End>,
}

impl UnwindState {
    /// The current frame.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// The first reason the trace so far is unreliable, if any.
    pub fn unreliable(&self) -> Option<Unreliable> {
        self.unreliable
    }

    /// How the walk ended, once it has.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    #[cold]
    fn mark(&mut self, why: Unreliable) {
        if self.unreliable.is_none() {
            self.unreliable = Some(why);
        }
    }

    #[cold]
    fn finish(&mut self, end: End) -> End {
        match end {
            End::Error(e) => self.mark(Unreliable::Error(e)),
            End::FrameLimit => self.mark(Unreliable::FrameLimit),
            End::BufferFull => self.mark(Unreliable::BufferFull),
            _ => {}
        }
        self.end = Some(end);
        end
    }
}

/// The result of a walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Trace {
    /// Frames reported (written to the buffer, or passed to the callback).
    pub frames: usize,
    /// How the walk ended.
    pub end: End,
    /// `None` if the trace is reliable, else the first reason it is not.
    pub unreliable: Option<Unreliable>,
}

impl Trace {
    /// Reliable in the livepatch sense: ended at END_OF_STACK or user-mode registers, no
    /// error, no guessed frame, every ip in text.
    pub fn is_reliable(&self) -> bool {
        self.unreliable.is_none()
    }
}

/// The unwinder: tables, the stacks it may read, and options. Cheap to build; build one per
/// walk or keep it.
#[derive(Clone, Copy, Debug)]
pub struct Unwinder<'s, L> {
    /// Where entries are found.
    pub lookup: L,
    /// The stacks the walk may read (at most 64 take part in the revisit guard).
    pub stacks: &'s [StackRange],
    /// Options.
    pub config: Config,
}

type StepResult<T> = Result<T, UnwindError>;

const fn v3(entry: Entry) -> RawEntry {
    match Layout::V3.encode(entry) {
        Ok(raw) => raw,
        Err(_) => panic!("not a v3 entry"),
    }
}

/// [`Entry::NULL_CALL`] as stored in v3.
const NULL_CALL_V3: RawEntry = v3(Entry::NULL_CALL);
/// [`Entry::FRAME_POINTER_FALLBACK`] as stored in v3.
const FRAME_POINTER_FALLBACK_V3: RawEntry = v3(Entry::FRAME_POINTER_FALLBACK);

impl<'s, L: OrcLookup> Unwinder<'s, L> {
    /// An unwinder with the default (6.4+ kernel) options.
    pub fn new(lookup: L, stacks: &'s [StackRange]) -> Self {
        Unwinder { lookup, stacks, config: Config::default() }
    }

    /// The same unwinder with other options.
    pub fn with_config(self, config: Config) -> Self {
        Unwinder { config, ..self }
    }

    /// A walk starting from registers. `exact_ip` says whether `ip` is the address of the
    /// interrupted instruction (a sample, a fault, the current instruction: looked up as is)
    /// or a return address (looked up as `ip - 1`, like the kernel's blocked-task start).
    pub fn start(&self, ip: u64, sp: u64, bp: u64, exact_ip: bool) -> UnwindState {
        UnwindState {
            frame: Frame { ip, sp, bp, signal: exact_ip, regs: None, user_mode: false },
            prev_regs: None,
            stack: self.stack_holding_sp(sp),
            left: 0,
            unreliable: None,
            end: None,
        }
    }

    /// A walk starting from a full `pt_regs` at `addr` in one of the stacks (the kernel's
    /// `unwind_start` with regs): ip, sp and bp come from it, the ip is exact, and its
    /// registers (DX, DI, R10, R13, AX) serve the first step.
    pub fn start_from_regs<M: Memory + ?Sized>(&self, mem: &mut M, addr: u64) -> Result<UnwindState, UnwindError> {
        let layout = self.config.regs;
        self.check_block(addr, layout.size(), None)?;
        let ip = self.read_at(mem, addr, layout.ip(), None)?;
        let sp = self.read_at(mem, addr, layout.sp(), None)?;
        let bp = self.read_at(mem, addr, layout.bp(), None)?;
        let mut state = self.start(ip, sp, bp, true);
        state.frame.regs = Some(RegsAt { addr, full: true });
        if self.config.stop_at_user_mode {
            state.frame.user_mode = self.read_at(mem, addr, pt_regs::CS, None)? & 3 != 0;
        }
        Ok(state)
    }

    /// Index of the stack whose range holds a stack pointer of value `sp`.
    #[inline]
    fn stack_holding_sp(&self, sp: u64) -> Option<usize> {
        self.stacks.iter().position(|s| s.holds_sp(sp))
    }

    /// `Ok` when `[addr, addr + len)` is inside one stack; `hint` is tried first.
    #[inline]
    fn check_block(&self, addr: u64, len: u64, hint: Option<usize>) -> StepResult<()> {
        if let Some(s) = hint.and_then(|i| self.stacks.get(i)) {
            if s.contains(addr, len) {
                return Ok(());
            }
        }
        if self.stacks.iter().any(|s| s.contains(addr, len)) {
            Ok(())
        } else {
            Err(UnwindError::BadRead { addr })
        }
    }

    /// The word at `base + off`, bounds-checked against the stacks.
    #[inline]
    fn read_at<M: Memory + ?Sized>(&self, mem: &mut M, base: u64, off: u64, hint: Option<usize>) -> StepResult<u64> {
        let addr = base.checked_add(off).ok_or(UnwindError::BadRead { addr: base })?;
        self.check_block(addr, 8, hint)?;
        mem.read_u64(addr).ok_or(UnwindError::BadRead { addr })
    }

    /// The word at `base + off` for a signed offset.
    #[inline]
    fn read_signed<M: Memory + ?Sized>(&self, mem: &mut M, base: u64, off: i16, hint: Option<usize>, ip: u64) -> StepResult<u64> {
        let addr = base.checked_add_signed(i64::from(off)).ok_or(UnwindError::Overflow { ip })?;
        self.read_at(mem, addr, 0, hint)
    }

    /// A register of the full `pt_regs` (the kernel's `get_reg`): the current ones if full,
    /// else the full ones kept from before a REGS_PARTIAL frame.
    #[inline]
    fn get_reg<M: Memory + ?Sized>(
        &self,
        mem: &mut M,
        regs: Option<RegsAt>,
        prev_regs: Option<u64>,
        off: u64,
    ) -> StepResult<Option<u64>> {
        let base = match (regs, prev_regs) {
            (Some(RegsAt { addr, full: true }), _) => addr,
            (Some(_), Some(prev)) => prev,
            _ => return Ok(None),
        };
        self.read_at(mem, base, off, None).map(Some)
    }

    /// The entry for the current frame: `ip` if it is exact, else `ip - 1` (a return address
    /// may point past a call to a noreturn function, even into the next function; the call
    /// instruction's own state is the right one). Address 0 gets the kernel's null entry
    /// ([`Entry::NULL_CALL`]); an address without entry gets the frame-pointer guess.
    #[inline(always)]
    fn entry_for(&self, state: &mut UnwindState) -> Result<(u64, PackedEntry), UnwindError> {
        let f = &state.frame;
        let addr = if f.signal { f.ip } else { f.ip.wrapping_sub(1) };
        if addr == 0 {
            return Ok((addr, PackedEntry::new(NULL_CALL_V3, Layout::V3)));
        }
        match self.lookup.lookup_packed(addr) {
            Some(p) => Ok((addr, p)),
            None => self.no_entry(state, addr),
        }
    }

    #[cold]
    fn no_entry(&self, state: &mut UnwindState, addr: u64) -> Result<(u64, PackedEntry), UnwindError> {
        if self.config.frame_pointer_fallback {
            state.mark(Unreliable::FramePointerGuess { ip: addr });
            Ok((addr, PackedEntry::new(FRAME_POINTER_FALLBACK_V3, Layout::V3)))
        } else {
            Err(UnwindError::NoEntry { ip: addr })
        }
    }

    /// One step (`unwind_next_frame`): from the current frame to its caller.
    ///
    /// Returns the caller's frame, or how the walk ended (then every later call returns the
    /// same end). Never panics, whatever the tables, registers and memory hold; reads only
    /// words inside the stack ranges.
    pub fn step<M: Memory + ?Sized>(&self, state: &mut UnwindState, mem: &mut M) -> Result<Frame, End> {
        self.advance(state, mem).map(|()| state.frame)
    }

    /// [`Unwinder::step`] without copying the frame out: the new frame is `state.frame`.
    #[inline(always)]
    fn advance<M: Memory + ?Sized>(&self, state: &mut UnwindState, mem: &mut M) -> Result<(), End> {
        if let Some(end) = state.end {
            return Err(end);
        }
        if state.frame.user_mode {
            return Err(state.finish(End::UserMode));
        }
        match self.step_inner(state, mem) {
            Ok(true) => Ok(()),
            Ok(false) => Err(state.finish(End::EndOfStack)),
            Err(e) => Err(state.finish(End::Error(e))),
        }
    }

    #[inline(always)]
    fn step_inner<M: Memory + ?Sized>(&self, state: &mut UnwindState, mem: &mut M) -> StepResult<bool> {
        let (ip, packed) = self.entry_for(state)?;

        // Fast path for the frames that make up nearly every stack: CALL, prev_sp = sp or bp
        // plus an offset, bp unchanged or saved at prev_sp + offset. Exactly the rules below
        // (SpRule::Sp/Bp, FrameRule::Call, BpRule::Unchanged/AtPrevSp), without building
        // them: for a CALL frame `regs` is dropped, so "unchanged" is the current bp.
        let p = packed.0;
        if p & PACKED_SLOW == 0 {
            // The common case of the common case: the caller's frame is on the same stack,
            // above this one, with every word read inside it. Then the bounds checks are two
            // compares against that stack's ends, and the progress check is implied. Anything
            // else (a stack switch, a read elsewhere, an error) takes the general code below,
            // which gives the same answers and the same errors.
            if let Some(s) = state.stack.and_then(|i| self.stacks.get(i)) {
                let cur = &state.frame;
                let base = if p & PACKED_SP_IS_BP != 0 { cur.bp } else { cur.sp };
                if let Some(prev_sp) = base.checked_add_signed(i64::from(p as u16 as i16)) {
                    let ra_at = prev_sp.wrapping_sub(8);
                    if prev_sp > cur.sp && prev_sp <= s.end && prev_sp >= 8 && ra_at >= s.start {
                        let bp_at = if p & PACKED_BP_AT_PREV_SP != 0 {
                            prev_sp.checked_add_signed(i64::from((p >> 16) as u16 as i16)).filter(|&a| s.contains(a, 8))
                        } else {
                            None
                        };
                        if p & PACKED_BP_AT_PREV_SP == 0 || bp_at.is_some() {
                            let new_ip = mem.read_u64(ra_at).ok_or(UnwindError::BadRead { addr: ra_at })?;
                            let new_bp = match bp_at {
                                Some(a) => mem.read_u64(a).ok_or(UnwindError::BadRead { addr: a })?,
                                None => cur.bp,
                            };
                            let signal = p & PACKED_SIGNAL != 0;
                            state.frame = Frame { ip: new_ip, sp: prev_sp, bp: new_bp, signal, regs: None, user_mode: false };
                            state.prev_regs = None;
                            return Ok(true);
                        }
                    }
                }
            }
            let cur = &state.frame;
            let hint = state.stack;
            let base = if p & PACKED_SP_IS_BP != 0 { cur.bp } else { cur.sp };
            let prev_sp = base.checked_add_signed(i64::from(p as u16 as i16)).ok_or(UnwindError::Overflow { ip })?;
            let ra_at = prev_sp.checked_sub(8).ok_or(UnwindError::Overflow { ip })?;
            let new_ip = self.read_at(mem, ra_at, 0, hint)?;
            let new_bp = if p & PACKED_BP_AT_PREV_SP != 0 {
                self.read_signed(mem, prev_sp, (p >> 16) as u16 as i16, hint, ip)?
            } else {
                cur.bp
            };
            let signal = p & PACKED_SIGNAL != 0;
            self.check_progress(state, prev_sp)?;
            state.frame = Frame { ip: new_ip, sp: prev_sp, bp: new_bp, signal, regs: None, user_mode: false };
            state.prev_regs = None;
            return Ok(true);
        }

        let rule = match UnwindRule::from_raw(packed.layout(), packed.raw(), self.config.sp_indirect) {
            Ok(Decision::Unwind(rule)) => rule,
            Ok(Decision::EndOfStack) => return Ok(false),
            Err(e) => return Err(UnwindError::from_rule(e, ip)),
        };
        let cur = state.frame;
        let hint = state.stack;

        // The caller's stack pointer.
        let prev_sp = match rule.sp {
            SpRule::Sp(off) => cur.sp.checked_add_signed(i64::from(off)).ok_or(UnwindError::Overflow { ip })?,
            SpRule::Bp(off) => cur.bp.checked_add_signed(i64::from(off)).ok_or(UnwindError::Overflow { ip })?,
            SpRule::SpDerefThenAdd(off) => self
                .read_at(mem, cur.sp, 0, hint)?
                .checked_add_signed(i64::from(off))
                .ok_or(UnwindError::Overflow { ip })?,
            SpRule::SpAddThenDeref(off) => self.read_signed(mem, cur.sp, off, hint, ip)?,
            SpRule::BpAddThenDeref(off) => self.read_signed(mem, cur.bp, off, hint, ip)?,
            SpRule::Regs(field) => self
                .get_reg(mem, cur.regs, state.prev_regs, self.config.regs.field(field))?
                .ok_or(UnwindError::MissingRegs { ip, reg: RegsField::reg(field) })?,
        };

        // The caller's ip and sp, and the pt_regs that come with them.
        let (new_ip, new_sp, regs, prev_regs) = match rule.frame {
            FrameRule::Call => {
                let ra_at = prev_sp.checked_sub(8).ok_or(UnwindError::Overflow { ip })?;
                (self.read_at(mem, ra_at, 0, hint)?, prev_sp, None, None)
            }
            FrameRule::Regs => {
                let layout = self.config.regs;
                self.check_block(prev_sp, layout.size(), hint)?;
                let new_ip = self.read_at(mem, prev_sp, layout.ip(), hint)?;
                let new_sp = self.read_at(mem, prev_sp, layout.sp(), hint)?;
                (new_ip, new_sp, Some(RegsAt { addr: prev_sp, full: true }), None)
            }
            FrameRule::RegsPartial => {
                self.check_block(prev_sp, pt_regs::IRET_FRAME_SIZE, hint)?;
                let new_ip = self.read_at(mem, prev_sp, 0, hint)?;
                let new_sp = self.read_at(mem, prev_sp, pt_regs::SP - pt_regs::IP, hint)?;
                let addr = prev_sp.checked_sub(pt_regs::IRET_FRAME_OFFSET).ok_or(UnwindError::Overflow { ip })?;
                let prev_regs = match cur.regs {
                    Some(RegsAt { addr, full: true }) => Some(addr),
                    _ => state.prev_regs,
                };
                (new_ip, new_sp, Some(RegsAt { addr, full: false }), prev_regs)
            }
        };

        // The caller's frame pointer.
        let new_bp = match rule.bp {
            BpRule::Unchanged => self.get_reg(mem, regs, prev_regs, self.config.regs.bp())?.unwrap_or(cur.bp),
            BpRule::AtPrevSp(off) => self.read_signed(mem, prev_sp, off, hint, ip)?,
            BpRule::AtBp(off) => self.read_signed(mem, cur.bp, off, hint, ip)?,
        };

        self.check_progress(state, new_sp)?;

        let user_mode = match regs {
            Some(r) if self.config.stop_at_user_mode => self.read_at(mem, r.addr, pt_regs::CS, hint)? & 3 != 0,
            _ => false,
        };
        state.frame = Frame { ip: new_ip, sp: new_sp, bp: new_bp, signal: rule.signal, regs, user_mode };
        state.prev_regs = prev_regs;
        Ok(true)
    }

    /// Bad data must not loop: on one stack, sp only goes up (the kernel's "stack going in the
    /// wrong direction?"); a stack once left stays left. Records the new sp's stack.
    #[inline(always)]
    fn check_progress(&self, state: &mut UnwindState, new_sp: u64) -> StepResult<()> {
        let hint = state.stack;
        let old_sp = state.frame.sp;
        let new_stack = match hint {
            Some(i) if self.stacks.get(i).is_some_and(|s| s.holds_sp(new_sp)) => Some(i),
            _ => self.stack_holding_sp(new_sp),
        };
        if new_stack == hint {
            if new_sp <= old_sp {
                return Err(UnwindError::WrongDirection { sp: old_sp, new_sp });
            }
        } else {
            if let Some(i) = new_stack {
                if i < 64 && state.left & (1 << i) != 0 {
                    return Err(UnwindError::StackRevisited { new_sp });
                }
            }
            if let Some(i) = hint {
                if i < 64 {
                    state.left |= 1 << i;
                }
            }
            state.stack = new_stack;
        }
        Ok(())
    }

    /// Walks from `state`, calling `on_frame` for every frame (the current one first) until
    /// the stack ends, a step fails, [`Config::max_frames`] frames were reported, a frame's ip
    /// is not text, or `on_frame` returns false (reported as [`End::BufferFull`]).
    pub fn walk_with<M: Memory + ?Sized>(
        &self,
        state: &mut UnwindState,
        mem: &mut M,
        mut on_frame: impl FnMut(&Frame) -> bool,
    ) -> Trace {
        let max = self.config.max_frames.max(1);
        let mut frames = 0usize;
        let end = match state.end {
            Some(end) => end,
            None => loop {
                if frames == max {
                    break state.finish(End::FrameLimit);
                }
                let frame = &state.frame;
                if !on_frame(frame) {
                    break state.finish(End::BufferFull);
                }
                frames += 1;
                if frame.user_mode {
                    break state.finish(End::UserMode);
                }
                if !self.lookup.is_text(frame.ip) {
                    let ip = frame.ip;
                    state.mark(Unreliable::NotText { ip });
                    break state.finish(End::NotText);
                }
                // `state.end` is still None here: only `finish` sets it, and it ends the loop.
                match self.step_inner(state, mem) {
                    Ok(true) => {}
                    Ok(false) => break state.finish(End::EndOfStack),
                    Err(e) => break state.finish(End::Error(e)),
                }
            },
        };
        Trace { frames, end, unreliable: state.unreliable }
    }

    /// Walks from `state` into `out`; see [`Unwinder::walk_with`].
    pub fn walk<M: Memory + ?Sized>(&self, state: &mut UnwindState, mem: &mut M, out: &mut [Frame]) -> Trace {
        let mut slots = out.iter_mut();
        self.walk_with(state, mem, |f| match slots.next() {
            Some(slot) => {
                *slot = *f;
                true
            }
            None => false,
        })
    }
}
