//! The tracer: starts the program under ptrace, single-steps every thread, keeps each
//! thread's shadow stack and checks ORC every N-th step.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Instant;

use nix::libc;
use orc_process::{AddressSpace, TableCache};
use orc_format::EntryType;
use orc_unwind::{Config, OrcLookup, StackRange, UnwindState, Unwinder};

use crate::check::{compare, describe_end, full_chain, judge, Mismatch};
use crate::sframe_walk;
use crate::insn::{AddrMap, Class, DecodeCache, Insn};
use crate::memory::{read_word, regs_range, ReadAhead, REGS_ADDR};
use crate::report::{BinaryStats, Disagreement, ProgramExit, Report, ShownFrame};
use crate::shadow::{ChainFrame, ShadowStack, StackId};
use crate::stacks::Stacks;
use crate::sys::{self, Regs, Wait};
use crate::ExecError;

/// `ucontext` offset in the signal frame (after the `pretcode` word), plus `uc_mcontext`
/// in it, plus the ip in `sigcontext`: where the interrupted ip is, from the handler's rsp.
const SIGFRAME_IP: u64 = 8 + orc_unwind::sigcontext::IN_UCONTEXT as u64 + orc_unwind::sigcontext::IP;

/// System calls after which the code mappings may have changed.
const SYS_MMAP: u64 = 9;
const SYS_MPROTECT: u64 = 10;
const SYS_MUNMAP: u64 = 11;
const SYS_MREMAP: u64 = 25;
const PROT_EXEC: u64 = 4;
const MAP_FIXED: u64 = 0x10;

/// How often (in steps) the progress callback is called.
const PROGRESS_EVERY: u64 = 1 << 14;

/// Options of a run.
pub struct Options<'a> {
    /// Check one step in `every` (1: every step).
    pub every: u64,
    /// Kill the program after this many steps.
    pub max_steps: Option<u64>,
    /// Distinct disagreeing ips to keep in detail.
    pub max_disagreements: usize,
    /// Called every few thousand steps with the report so far.
    pub progress: Option<&'a mut dyn FnMut(&Report)>,
    /// Unwind with each file's SFrame v3 table (as `orctool check --sframe` writes it) instead
    /// of its ORC table.
    pub sframe: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options { every: 1, max_steps: None, max_disagreements: 200, progress: None, sframe: false }
    }
}

/// The instruction a thread is about to execute.
#[derive(Clone, Copy, Debug)]
struct Pending {
    ip: u64,
    sp: u64,
    insn: Insn,
    /// For a system call: number and the arguments used (rdi, rsi, rdx, r10).
    syscall: Option<[u64; 5]>,
}

/// Per-thread state.
#[derive(Default)]
struct Thread {
    shadow: ShadowStack,
    stack: Option<StackId>,
    pending: Option<Pending>,
    /// The next stop is at a signal handler's first instruction.
    entering_handler: bool,
    /// A new thread that has not yet branched (see [`Report::clone_shared`]).
    clone_shared: bool,
}

/// A disagreement being collected.
struct Seen {
    index: usize,
}

struct Tracer<'o, 'c> {
    pid: i32,
    options: Options<'o>,
    cache: &'c TableCache,
    space: AddressSpace,
    /// The maps changed (a system call mapped, unmapped or protected memory): refresh the
    /// address space before the next check.
    space_dirty: bool,
    threads: HashMap<i32, Thread>,
    stacks: Stacks,
    decode: DecodeCache,
    mem: ReadAhead,
    report: Report,
    /// Index in `report.binaries` by module name.
    binary_index: HashMap<String, usize>,
    /// The last module range looked up and its binary index.
    last_module: (u64, u64, usize),
    seen: AddrMap<Seen>,
    expected: Vec<ChainFrame>,
    got: Vec<ChainFrame>,
    stack_ids: Vec<StackId>,
    ranges: Vec<StackRange>,
    regs: Regs,
    started: Instant,
}

/// Runs `command` under single-step and checks ORC (tables from `cache`) against its shadow
/// stacks.
pub fn run(command: &[String], cache: &TableCache, options: Options<'_>) -> Result<Report, ExecError> {
    let pid = spawn_traced(command)?;
    let space = AddressSpace::from_pid(pid, cache).map_err(|e| ExecError::Process(e.to_string()))?;
    let mut t = Tracer {
        pid,
        cache,
        space,
        space_dirty: false,
        threads: HashMap::new(),
        stacks: Stacks::default(),
        decode: DecodeCache::default(),
        mem: ReadAhead::new(pid),
        report: Report { command: command.to_vec(), every: options.every.max(1), threads: 1, ..Report::default() },
        options,
        binary_index: HashMap::new(),
        last_module: (0, 0, 0),
        seen: AddrMap::default(),
        expected: Vec::new(),
        got: Vec::new(),
        stack_ids: Vec::new(),
        ranges: Vec::new(),
        regs: zeroed_regs(),
        started: Instant::now(),
    };
    t.threads.insert(pid, Thread::default());
    let result = t.trace();
    t.report.seconds = t.started.elapsed().as_secs_f64();
    result?;
    t.report.disagreements.sort_by(|a, b| b.count.cmp(&a.count).then(a.ip.cmp(&b.ip)));
    Ok(t.report)
}

fn zeroed_regs() -> Regs {
    Regs {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        rbp: 0,
        rbx: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rax: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        orig_rax: 0,
        rip: 0,
        cs: 0,
        eflags: 0,
        rsp: 0,
        ss: 0,
        fs_base: 0,
        gs_base: 0,
        ds: 0,
        es: 0,
        fs: 0,
        gs: 0,
    }
}

/// Forks and execs `command` with `PTRACE_TRACEME`; returns its pid, stopped at the first
/// instruction of the new program, with the tracer's options set.
pub(crate) fn spawn_traced(command: &[String]) -> Result<i32, ExecError> {
    let (program, args) = command.split_first().ok_or(ExecError::NoCommand)?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: the closure runs in the forked child before exec and makes one system call
    // (ptrace(PTRACE_TRACEME)), which is async-signal-safe; it touches no locks or memory of
    // the parent.
    unsafe {
        cmd.pre_exec(|| nix::sys::ptrace::traceme().map_err(std::io::Error::from));
    }
    // std reports an exec failure (no such file, not executable) as the spawn's error.
    let child = cmd.spawn().map_err(|source| ExecError::Spawn { program: program.clone(), source })?;
    let pid = child.id() as i32;
    match sys::wait_for(pid).map_err(|e| ExecError::Ptrace { what: "wait for the program", source: e })? {
        Wait::Stopped { sig: libc::SIGTRAP, .. } => {}
        other => return Err(ExecError::Unexpected(format!("{program}: did not stop at exec ({other:?})"))),
    }
    let options = libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_EXITKILL | libc::PTRACE_O_TRACEEXEC;
    sys::set_options(pid, options).map_err(|e| ExecError::Ptrace { what: "set options", source: e })?;
    Ok(pid)
}

/// Whether process `pid` has a handler for `sig` (`SigCgt` of /proc/PID/status).
fn caught(pid: i32, sig: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let mask = text
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    (1..=64).contains(&sig) && mask & (1 << (sig - 1)) != 0
}

impl Tracer<'_, '_> {
    fn trace(&mut self) -> Result<(), ExecError> {
        // The program is stopped at its first instruction (the dynamic loader's entry).
        self.on_step(self.pid)?;
        let mut leader_gone = false;
        loop {
            let Some(w) = sys::wait_any().map_err(|e| ExecError::Ptrace { what: "wait", source: e })? else { break };
            match w {
                Wait::Exited { tid, code } => {
                    self.threads.remove(&tid);
                    if tid == self.pid {
                        self.report.exit = ProgramExit { code: Some(code), signal: None };
                        leader_gone = true;
                    }
                }
                Wait::Killed { tid, sig } => {
                    self.threads.remove(&tid);
                    if tid == self.pid {
                        self.report.exit = ProgramExit { code: None, signal: Some(sig) };
                        leader_gone = true;
                    }
                }
                Wait::Stopped { tid, sig, event } => {
                    if let std::collections::hash_map::Entry::Vacant(slot) = self.threads.entry(tid) {
                        // A new thread: it reports a SIGSTOP before its first instruction.
                        slot.insert(Thread { clone_shared: true, ..Thread::default() });
                        self.report.threads += 1;
                        if sig == libc::SIGSTOP && event == 0 {
                            self.on_step(tid)?;
                            continue;
                        }
                    }
                    if event != 0 {
                        if event == libc::PTRACE_EVENT_EXEC {
                            self.on_exec(tid);
                        }
                        // A clone event: the new thread shows up with its own stop.
                        resume(tid, 0)?;
                    } else if sig == libc::SIGTRAP {
                        self.on_step(tid)?;
                    } else {
                        self.on_signal(tid, sig)?;
                    }
                }
            }
            if leader_gone && self.threads.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn on_exec(&mut self, tid: i32) {
        // Every other thread is gone and the program is new.
        self.threads.retain(|&t, _| t == tid);
        if let Some(t) = self.threads.get_mut(&tid) {
            *t = Thread::default();
        }
        self.stacks.clear();
        self.decode.clear();
        self.space_dirty = true;
    }

    /// Applies what the last instruction did, from the registers after it.
    #[inline]
    fn observe(&mut self, tid: i32) -> Option<StackId> {
        let regs = self.regs;
        let t = self.threads.get_mut(&tid)?;
        let stack = self.stacks.id_for(regs.rsp, t.stack, self.pid);
        t.stack = stack;
        let sid = stack.unwrap_or(StackId::MAX);
        t.shadow.retire(regs.rsp, sid);
        if let Some(p) = t.pending.take() {
            let executed = regs.rip != p.ip;
            if p.insn.class == Class::Call && executed && regs.rsp == p.sp.wrapping_sub(8) {
                t.shadow.push_call(regs.rsp, sid, p.ip.wrapping_add(u64::from(p.insn.len)));
            }
            if t.clone_shared && executed && regs.rip != p.ip.wrapping_add(u64::from(p.insn.len)) {
                t.clone_shared = false;
            }
            if let (Some(call), true) = (p.syscall, executed) {
                self.after_syscall(call);
            }
        }
        stack
    }

    /// Notes the effects of a system call on the code mappings.
    #[cold]
    fn after_syscall(&mut self, [nr, addr, len, prot, flags]: [u64; 5]) {
        let end = addr.saturating_add(len);
        match nr {
            SYS_MMAP if flags & MAP_FIXED != 0 || prot & PROT_EXEC != 0 => {
                self.decode.forget(addr, end);
                self.space_dirty = true;
            }
            SYS_MUNMAP | SYS_MPROTECT | SYS_MREMAP => {
                self.decode.forget(addr, end);
                self.space_dirty = true;
            }
            _ => {}
        }
    }

    /// A single-step stop (or the first stop of a thread).
    fn on_step(&mut self, tid: i32) -> Result<(), ExecError> {
        if sys::get_regs(tid, &mut self.regs).is_err() {
            // The thread is gone (killed by another thread's exit); its exit comes later.
            return Ok(());
        }
        let stack = self.observe(tid);
        let regs = self.regs;
        let entering = self.threads.get(&tid).is_some_and(|t| t.entering_handler);
        if entering {
            self.enter_handler(tid, stack);
        }
        self.report.steps += 1;
        let steps = self.report.steps;
        if steps % self.report.every == 0 {
            let clone_shared = self.threads.get(&tid).is_some_and(|t| t.clone_shared);
            if clone_shared {
                self.report.clone_shared += 1;
            } else if stack.is_none() {
                self.report.no_stack += 1;
            } else {
                self.check(tid, &regs);
            }
        }
        if steps % PROGRESS_EVERY == 0 {
            if let Some(cb) = self.options.progress.as_mut() {
                self.report.seconds = self.started.elapsed().as_secs_f64();
                cb(&self.report);
            }
        }
        if self.options.max_steps.is_some_and(|m| steps >= m) {
            self.report.truncated = true;
            sys::kill_thread(self.pid, tid, libc::SIGKILL);
            return resume(tid, 0);
        }
        self.set_pending(tid, &regs);
        resume(tid, 0)
    }

    /// Records the instruction at the thread's ip, about to execute.
    #[inline]
    fn set_pending(&mut self, tid: i32, regs: &Regs) {
        let insn = self.decode.get(regs.rip, |ip, buf| sys::read_memory(tid, ip, buf));
        let syscall = (insn.class == Class::Syscall).then_some([regs.rax, regs.rdi, regs.rsi, regs.rdx, regs.r10]);
        if let Some(t) = self.threads.get_mut(&tid) {
            t.pending = Some(Pending { ip: regs.rip, sp: regs.rsp, insn, syscall });
        }
    }

    /// The thread is at its signal handler's first instruction: rsp holds the return address
    /// (the `sa_restorer` trampoline) and the signal frame is above it.
    fn enter_handler(&mut self, tid: i32, stack: Option<StackId>) {
        let rsp = self.regs.rsp;
        let restorer = read_word(tid, rsp);
        let interrupted = rsp.checked_add(SIGFRAME_IP).and_then(|a| read_word(tid, a));
        let Some(t) = self.threads.get_mut(&tid) else { return };
        t.entering_handler = false;
        if let (Some(restorer), Some(interrupted)) = (restorer, interrupted) {
            t.shadow.push_signal(rsp, stack.unwrap_or(StackId::MAX), restorer, interrupted);
            self.report.handled_signals += 1;
        }
    }

    /// A signal-delivery stop (or a group stop).
    fn on_signal(&mut self, tid: i32, sig: i32) -> Result<(), ExecError> {
        if !sys::has_siginfo(tid) {
            // A group stop (SIGSTOP and friends): let the thread go on.
            return resume(tid, 0);
        }
        if sys::get_regs(tid, &mut self.regs).is_err() {
            return Ok(());
        }
        // A faulting instruction may have half-executed (a call to a bad address has pushed).
        self.observe(tid);
        let regs = self.regs;
        if caught(self.pid, sig) {
            if let Some(t) = self.threads.get_mut(&tid) {
                t.entering_handler = true;
            }
        }
        self.set_pending(tid, &regs);
        resume(tid, sig)
    }

    /// Refreshes the address space (new code mapped, or an address in no known module).
    fn refresh(&mut self) -> bool {
        self.space_dirty = false;
        self.space.refresh(self.pid, self.cache).unwrap_or(false)
    }

    /// The binary-stats index of the module holding `ip`.
    fn binary_of(&mut self, ip: u64) -> usize {
        let (start, end, index) = self.last_module;
        if start <= ip && ip < end {
            return index;
        }
        let (name, range) = match self.space.module_for(ip) {
            Some(m) => (m.name.clone(), (m.start, m.end)),
            None => ("?".to_string(), (ip, ip.wrapping_add(1))),
        };
        let next = self.report.binaries.len();
        let index = *self.binary_index.entry(name.clone()).or_insert(next);
        if index == next {
            self.report.binaries.push(BinaryStats { name, ..BinaryStats::default() });
        }
        self.last_module = (range.0, range.1, index);
        index
    }

    fn check(&mut self, tid: i32, regs: &Regs) {
        let ip = regs.rip;
        if self.space_dirty && self.refresh() {
            self.last_module = (0, 0, 0);
        }
        if self.space.module_for(ip).is_none() && self.refresh() {
            self.last_module = (0, 0, 0);
        }
        let binary = self.binary_of(ip);
        if self.options.sframe {
            match sframe_walk::lookup(&self.space, ip) {
                sframe_walk::Lookup::Row => {}
                sframe_walk::Lookup::NoTable => {
                    self.report.no_table += 1;
                    self.report.binaries[binary].no_table += 1;
                    return;
                }
                sframe_walk::Lookup::NoRow => {
                    self.report.undefined += 1;
                    self.report.binaries[binary].undefined += 1;
                    return;
                }
            }
        } else {
            match self.space.find(ip) {
            None => {
                self.report.no_table += 1;
                self.report.binaries[binary].no_table += 1;
                return;
            }
            Some(e) if e.kind == EntryType::Undefined => {
                self.report.undefined += 1;
                self.report.binaries[binary].undefined += 1;
                return;
            }
            Some(_) => {}
            }
        }
        let Some(t) = self.threads.get(&tid) else { return };
        t.shadow.expected_chain(ip, &mut self.expected);
        self.stack_ids.clear();
        if let Some(s) = t.stack {
            self.stack_ids.push(s);
        }
        t.shadow.stacks(&mut self.stack_ids);
        self.ranges.clear();
        for &id in &self.stack_ids {
            if id != StackId::MAX {
                self.ranges.push(self.stacks.range(id));
            }
        }
        self.mem.begin(regs.rsp, &self.ranges);
        self.mem.set_regs(regs);
        self.ranges.push(regs_range());
        let mut config = Config::user_space();
        config.max_frames = self.expected.len() + 2;
        let mut verdict = if self.options.sframe {
            self.sframe_verdict(regs)
        } else {
            let unwinder = Unwinder::new(&self.space, &self.ranges).with_config(config);
            let state = start(&unwinder, &mut self.mem, regs);
            compare(&unwinder, state, &mut self.mem, &self.expected, &mut self.got).0
        };
        if verdict.is_err() {
            // A frame in code mapped since the last refresh: refresh and look again.
            let unknown = self.got.iter().any(|f| self.space.module_for(f.ip).is_none());
            if unknown && self.refresh() {
                self.last_module = (0, 0, 0);
                verdict = if self.options.sframe {
                    self.sframe_verdict(regs)
                } else {
                    let unwinder = Unwinder::new(&self.space, &self.ranges).with_config(config);
                    let state = start(&unwinder, &mut self.mem, regs);
                    compare(&unwinder, state, &mut self.mem, &self.expected, &mut self.got).0
                };
            }
        }
        self.report.checked += 1;
        let stats = &mut self.report.binaries[binary];
        stats.checked += 1;
        match verdict {
            Ok(()) => {
                stats.agree += 1;
                self.report.agree += 1;
            }
            Err(mismatch) => {
                stats.disagree += 1;
                self.report.disagree += 1;
                self.record(tid, regs, mismatch, config);
            }
        }
    }

    #[cold]
    fn record(&mut self, tid: i32, regs: &Regs, mismatch: Mismatch, mut config: Config) {
        let ip = regs.rip;
        if let Some(seen) = self.seen.get(&ip) {
            if let Some(d) = self.report.disagreements.get_mut(seen.index) {
                d.count += 1;
            }
            return;
        }
        if self.report.disagreements.len() >= self.options.max_disagreements {
            self.report.disagreements_not_kept += 1;
            // Counted once per ip: remember it without details.
            self.seen.insert(ip, Seen { index: usize::MAX });
            return;
        }
        let limit = self.expected.len() + 16;
        config.max_frames = limit;
        let (orc, end) = if self.options.sframe {
            let mut frames = Vec::new();
            let end = sframe_walk::walk(&self.space, &mut self.mem, regs, limit, &mut frames, |_, _| true);
            (frames, end.unwrap_or_else(|| "end of stack".to_string()))
        } else {
            let unwinder = Unwinder::new(&self.space, &self.ranges).with_config(config);
            let state = start(&unwinder, &mut self.mem, regs);
            let (frames, end) = full_chain(&unwinder, state, &mut self.mem, limit);
            (frames, describe_end(end))
        };
        let show = |f: &ChainFrame| ShownFrame { ip: f.ip, exact: f.exact, symbol: self.symbol(f.ip, f.exact) };
        let module = self.space.module_for(ip);
        let sym = self.space.symbolize(ip, true);
        let d = Disagreement {
            ip,
            module: module.map(|m| m.name.clone()),
            offset: module.map(|m| m.link_address(ip)),
            function: sym.function.map(|f| format!("{f}+{:#x}", sym.offset)),
            count: 1,
            mismatch,
            expected: self.expected.iter().map(show).collect(),
            orc: orc.iter().map(show).collect(),
            orc_end: end,
            tid,
            step: self.report.steps,
        };
        self.seen.insert(ip, Seen { index: self.report.disagreements.len() });
        self.report.disagreements.push(d);
    }

    /// The SFrame walk from `regs` against the expected chain.
    fn sframe_verdict(&mut self, regs: &Regs) -> Result<(), Mismatch> {
        let expected = &self.expected;
        let mut wrong = None;
        let end = sframe_walk::walk(&self.space, &mut self.mem, regs, expected.len() + 2, &mut self.got, |k, f| match expected.get(k) {
            Some(e) if *e == f => true,
            Some(_) => {
                wrong = Some(k);
                false
            }
            None => false,
        });
        judge(wrong, self.got.len(), expected.len(), end.map_or(Ok(()), Err))
    }

    fn symbol(&self, ip: u64, exact: bool) -> String {
        let s = self.space.symbolize(ip, exact);
        match (s.function, s.module) {
            (Some(f), Some(m)) => format!("{f}+{:#x} ({m})", s.offset),
            (Some(f), None) => format!("{f}+{:#x}", s.offset),
            (None, Some(m)) => match self.space.module_for(if exact { ip } else { ip.wrapping_sub(1) }) {
                Some(module) => format!("{m}+{:#x}", module.link_address(ip)),
                None => m,
            },
            (None, None) => "?".to_string(),
        }
    }
}

/// The walk's start: the thread's registers, all of them (through the block at
/// [`REGS_ADDR`]); only if that block cannot be read, ip, rsp and rbp.
fn start(unwinder: &Unwinder<'_, &AddressSpace>, mem: &mut ReadAhead, regs: &Regs) -> UnwindState {
    unwinder.start_from_regs(mem, REGS_ADDR).unwrap_or_else(|_| unwinder.start(regs.rip, regs.rsp, regs.rbp, true))
}

/// Resumes a thread for one instruction; a thread that vanished meanwhile is not an error
/// (its exit is reported by wait).
#[inline]
fn resume(tid: i32, sig: i32) -> Result<(), ExecError> {
    match sys::single_step(tid, sig) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        Err(e) => Err(ExecError::Ptrace { what: "single-step", source: e }),
    }
}

/// The bare single-step rate on `command`: step every thread to the end, nothing else.
/// Returns (steps, seconds, exit).
pub fn raw_single_step(command: &[String], max_steps: Option<u64>) -> Result<(u64, f64, ProgramExit), ExecError> {
    let pid = spawn_traced(command)?;
    let started = Instant::now();
    let mut steps = 0u64;
    let mut exit = ProgramExit::default();
    let mut threads = 1usize;
    resume(pid, 0)?;
    loop {
        let Some(w) = sys::wait_any().map_err(|e| ExecError::Ptrace { what: "wait", source: e })? else { break };
        match w {
            Wait::Exited { tid, code } => {
                threads -= 1;
                if tid == pid {
                    exit.code = Some(code);
                }
            }
            Wait::Killed { tid, sig } => {
                threads -= 1;
                if tid == pid {
                    exit.signal = Some(sig);
                }
            }
            Wait::Stopped { tid, sig, event } => {
                steps += 1;
                if max_steps.is_some_and(|m| steps >= m) {
                    sys::kill_thread(pid, tid, libc::SIGKILL);
                }
                let inject = if event != 0 || sig == libc::SIGTRAP || sig == libc::SIGSTOP { 0 } else { sig };
                if event == libc::PTRACE_EVENT_CLONE {
                    threads += 1;
                }
                resume(tid, inject)?;
            }
        }
        if threads == 0 {
            break;
        }
    }
    Ok((steps, started.elapsed().as_secs_f64(), exit))
}
