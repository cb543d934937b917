//! The analysis: every function walked from its entry with objtool's rules.
//!
//! Three passes, the first and last in parallel over functions:
//!
//! 1. **Graph** ([`build_unit`]): from a function's entry, decode every instruction reachable
//!    by fall-through, both ways of conditional jumps, direct jumps, the cases of resolved jump
//!    tables ([`crate::jumptable`]) and, after calls, the next instruction. A jump into another
//!    function's middle or into a fragment (GCC's `foo.cold`) pulls that range into the walk;
//!    a jump to another function's entry is a tail call and ends the path. The result is a
//!    *unit*: the function with the fragments it reaches.
//! 2. **Noreturn** ([`noreturn_fixed_point`]): a local function returns if a path from its
//!    entry reaches a `ret`, an indirect jump, or a tail call to a function that returns.
//!    Paths stop after calls to the functions [`NORETURN`] names (PLT stubs of those imports,
//!    local functions of those names) but go on after calls to other local functions: cutting
//!    them at calls not yet known to return would make every recursion look like it never
//!    returns. Falling from a call into the next function is not a tail call (the compiler put
//!    nothing after a call it knew would not return). Computed as the least fixed point over
//!    tail calls, so functions that only tail-call each other without a `ret` do not return.
//!    The walk of pass 3 then ends paths at calls to every function that does not return.
//! 3. **States** ([`walk_states`]): the CFI state of `orc-stack` carried along every path
//!    from the entry state (CFA = `%rsp + 8`), each instruction's stack operations applied
//!    with objtool's rules (frame pointers, DRAP, `leave`, stack realignment). A path reaching
//!    an instruction already visited must bring a compatible state (objtool's merge check),
//!    else it is a problem and the first state stays. Then each reached instruction's state
//!    becomes an ORC entry (`orc_stack::orc_entry`), unreached bytes UNDEFINED.

use orc_decode::{InsnKind, SectionDecoder, StackOp, StackOps};
use orc_format::{Entry, Layout};
use orc_stack::{mismatch, CfiState, OpContext};
use rayon::prelude::*;

use crate::eh_frame::SIGNAL_TRAMPOLINE;
use crate::funcs::{FuncKind, Functions, SIGRETURN};
use crate::image::Image;
use crate::jumptable::{self, Resolution};
use crate::Problem;

/// Functions that never return, by name (imports through the PLT or GOT, or local
/// functions). `error()` is not here: it returns when its status is 0.
pub const NORETURN: &[&str] = &[
    "abort",
    "exit",
    "_exit",
    "_Exit",
    "quick_exit",
    "__stack_chk_fail",
    "__stack_chk_fail_local",
    "__assert_fail",
    "__assert_perror_fail",
    "__assert",
    "__fortify_fail",
    "__chk_fail",
    "__libc_fatal",
    "__fortify_fail_abort",
    "err",
    "errx",
    "verr",
    "verrx",
    "longjmp",
    "_longjmp",
    "siglongjmp",
    "__longjmp_chk",
    "pthread_exit",
    "__pthread_exit",
    "__cxa_throw",
    "__cxa_rethrow",
    "__cxa_bad_cast",
    "__cxa_bad_typeid",
    "__cxa_throw_bad_array_new_length",
    "__cxa_pure_virtual",
    "__cxa_call_terminate",
    "_Unwind_Resume",
    "__ubsan_handle_builtin_unreachable",
    "_ZSt9terminatev",
    "_ZSt17__throw_bad_allocv",
    "_ZSt20__throw_length_errorPKc",
    "_ZSt24__throw_out_of_range_fmtPKcz",
    "_ZSt20__throw_out_of_rangePKc",
    "_ZSt19__throw_logic_errorPKc",
    "_ZSt28__throw_bad_array_new_lengthv",
    "_ZSt25__throw_bad_function_callv",
    "_ZSt16__throw_bad_castv",
    "_ZSt21__throw_bad_optional_accessv",
    "_ZSt21__throw_runtime_errorPKc",
    "_ZSt20__throw_system_errori",
    "_ZSt24__throw_invalid_argumentPKc",
    "Py_FatalError",
    "_Py_FatalErrorFunc",
    "_Py_FatalErrorFormat",
];

/// "Not set" in the index vectors.
const NONE: u32 = u32::MAX;
/// Instructions remembered before each one, for jump-table matching.
const WINDOW: usize = 12;

/// Where an edge goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Edge {
    /// An instruction of this unit.
    To(u64),
    /// The entry of another function (a tail call, or falling into the next function).
    Enter(u32),
    /// Outside every function.
    Out,
}

/// Who a call calls.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Callee {
    /// A function of this file.
    Func(u32),
    /// An import through the GOT: whether it is in [`NORETURN`].
    Import(bool),
    /// Computed, or somewhere that is not a function entry.
    Unknown,
}

/// What an instruction does to control flow, for the walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    /// Continues at the next instruction.
    Plain,
    /// Ends the path (`ud2`, `hlt`, `int3`, a return to another privilege level).
    Stop,
    /// `ret`.
    Ret,
    /// A call; continues unless the callee does not return.
    Call(Callee),
    /// Both the target and the next instruction.
    Jcc,
    /// The target.
    Jmp,
    /// A jump table: `targets[first..first + count]` of the unit.
    Table { first: u32, count: u32 },
    /// An indirect jump through a pointer in memory (`jmp *slot(%rip)`).
    ThroughPointer,
    /// An indirect jump nothing resolved; `targets[first..first + count]` are the code
    /// pointers into this function that data holds (computed `goto` labels).
    Unresolved { first: u32, count: u32 },
    /// Bytes that do not decode.
    Undecodable,
}

#[derive(Clone, Copy, Debug)]
struct Insn {
    addr: u64,
    len: u8,
    ops: StackOps,
    flow: Flow,
    next: Edge,
    target: Edge,
}

/// A function's range within a unit, with an instruction index per byte.
struct Region {
    func: u32,
    start: u64,
    slots: Vec<u32>,
}

/// One function and the fragments it reaches: its instructions, and after the walk their
/// states.
pub(crate) struct Unit {
    root: u32,
    /// Where paths start: the function's entry, and for a lazy PLT entry also its second
    /// half (`push $n; jmp PLT0`), which the GOT points at until the import is bound.
    entries: Vec<u64>,
    regions: Vec<Region>,
    insns: Vec<Insn>,
    targets: Vec<Edge>,
    states: Vec<CfiState>,
    state_of: Vec<u32>,
    pub problems: Vec<Problem>,
}

impl Unit {
    fn region_of(&self, addr: u64) -> Option<usize> {
        self.regions.iter().position(|r| addr >= r.start && addr - r.start < r.slots.len() as u64)
    }

    fn index(&self, addr: u64) -> Option<u32> {
        let r = &self.regions[self.region_of(addr)?];
        let i = r.slots[(addr - r.start) as usize];
        (i != NONE).then_some(i)
    }

    fn entry_index(&self, funcs: &Functions) -> Option<u32> {
        self.index(funcs.list[self.root as usize].start)
    }
}

/// Read-only context of one analysis.
pub(crate) struct Ctx<'a, 'data> {
    pub image: &'a Image<'data>,
    pub funcs: &'a Functions,
    /// Per function: never returns because of its name or its import's.
    pub named_noreturn: Vec<bool>,
}

impl Ctx<'_, '_> {
    pub fn new<'a, 'data>(image: &'a Image<'data>, funcs: &'a Functions) -> Ctx<'a, 'data> {
        let named_noreturn = funcs
            .list
            .iter()
            .map(|f| {
                let name = f.import.as_deref().unwrap_or(&f.name);
                f.kind == FuncKind::Entry || NORETURN.contains(&name)
            })
            .collect();
        Ctx { image, funcs, named_noreturn }
    }

    /// The state a function is entered with.
    fn entry_state(&self, f: u32) -> CfiState {
        let mut s = CfiState::FUNCTION_ENTRY;
        if self.funcs.list[f as usize].kind == FuncKind::Plt0 {
            // Every lazy PLT entry pushes the relocation index before jumping to PLT0.
            let _ = s.apply(&StackOp::push_const(), &OpContext::IN_FUNCTION);
        }
        s
    }

    fn problem(&self, addr: u64, message: String) -> Problem {
        let (function, offset) = match self.funcs.containing(addr) {
            Some(f) => {
                let f = &self.funcs.list[f];
                (f.name.clone(), addr - f.start)
            }
            None => (format!("func_{addr:x}"), 0),
        };
        Problem { addr, function, offset, message }
    }
}

/// Per-unit decoders, one per executable section, made on first use.
struct Decoders<'data> {
    sections: Vec<Option<SectionDecoder<'data>>>,
}

impl<'data> Decoders<'data> {
    fn new(image: &Image<'data>) -> Self {
        Decoders { sections: image.mapped.iter().map(|_| None).collect() }
    }

    /// The instruction at `addr` and its section's address.
    fn decode(&mut self, image: &Image<'data>, addr: u64) -> Option<(orc_decode::Instruction, u64)> {
        let i = image.mapped.partition_point(|m| m.address <= addr).checked_sub(1)?;
        let m = image.mapped.get(i).filter(|m| m.exec && m.contains(addr))?;
        let d = self.sections[i].get_or_insert_with(|| SectionDecoder::new(m.data));
        let insn = d.decode_at(addr - m.address, |_| true).ok()?;
        Some((insn, m.address))
    }
}

/// The last few instruction addresses of a path.
#[derive(Clone, Copy)]
struct Window {
    addrs: [u64; WINDOW],
    len: usize,
}

impl Window {
    const EMPTY: Window = Window { addrs: [0; WINDOW], len: 0 };

    fn push(&mut self, addr: u64) {
        if self.len == WINDOW {
            self.addrs.copy_within(1.., 0);
            self.addrs[WINDOW - 1] = addr;
        } else {
            self.addrs[self.len] = addr;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[u64] {
        &self.addrs[..self.len]
    }
}

/// The first opcode byte after legacy prefixes and REX.
fn opcode(bytes: &[u8]) -> (u8, u8) {
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x40..=0x4f) {
            i += 1;
        } else {
            break;
        }
    }
    (bytes.get(i).copied().unwrap_or(0), bytes.get(i + 1).copied().unwrap_or(0))
}

/// Pass 1: the instructions reachable from function `root`'s entry.
pub(crate) fn build_unit(ctx: &Ctx<'_, '_>, root: u32) -> Unit {
    let f = &ctx.funcs.list[root as usize];
    let mut entries = vec![f.start];
    let lazy = |b: &[u8]| b.starts_with(&[0xff, 0x25]) && b.get(6) == Some(&0x68);
    if f.kind == FuncKind::Plt && ctx.image.bytes_from(f.start).is_some_and(lazy) {
        entries.push(f.start + 6);
    }
    let mut unit = Unit {
        root,
        entries: entries.clone(),
        regions: vec![Region { func: root, start: f.start, slots: vec![NONE; (f.end - f.start) as usize] }],
        insns: Vec::new(),
        targets: Vec::new(),
        states: Vec::new(),
        state_of: Vec::new(),
        problems: Vec::new(),
    };
    let mut decoders = Decoders::new(ctx.image);
    let mut work: Vec<(u64, Window)> = entries.iter().map(|&e| (e, Window::EMPTY)).collect();
    while let Some((start, mut window)) = work.pop() {
        let mut addr = start;
        while let Some(r) = unit.region_of(addr) {
            let off = (addr - unit.regions[r].start) as usize;
            if unit.regions[r].slots[off] != NONE {
                break;
            }
            let index = unit.insns.len() as u32;
            unit.regions[r].slots[off] = index;
            let Some((d, base)) = decoders.decode(ctx.image, addr) else {
                unit.insns.push(Insn { addr, len: 1, ops: StackOps::NONE, flow: Flow::Undecodable, next: Edge::Out, target: Edge::Out });
                break;
            };
            let next_addr = addr + u64::from(d.len);
            let bytes = ctx.image.bytes_from(addr).unwrap_or(&[]);
            let mut ops = d.stack_ops;
            let abs = |t: u64| base.wrapping_add(t);
            let mut target_addr = None;
            let flow = match d.kind {
                InsnKind::Return => Flow::Ret,
                InsnKind::JumpConditional => {
                    target_addr = d.branch.map(|b| abs(b.target));
                    Flow::Jcc
                }
                InsnKind::JumpUnconditional => {
                    target_addr = d.branch.map(|b| abs(b.target));
                    Flow::Jmp
                }
                InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                    let root_f = &ctx.funcs.list[root as usize];
                    let in_func = |a: u64| {
                        (a > root_f.start && a < root_f.end)
                            || ctx.funcs.containing(a).is_some_and(|g| matches!(ctx.funcs.list[g].kind, FuncKind::Fragment | FuncKind::Orphan))
                    };
                    match jumptable::resolve(ctx.image, addr, window.as_slice(), root_f.start, in_func) {
                        Resolution::Table(targets) => {
                            let first = unit.targets.len() as u32;
                            for t in &targets {
                                let e = classify(ctx, &mut unit, *t);
                                unit.targets.push(e);
                            }
                            Flow::Table { first, count: targets.len() as u32 }
                        }
                        Resolution::Slot(_) => Flow::ThroughPointer,
                        Resolution::Unresolved => {
                            let first = unit.targets.len() as u32;
                            let pointers = ctx.image.code_pointers_in(root_f.start + 1, root_f.end);
                            for &t in pointers {
                                let e = classify(ctx, &mut unit, t);
                                unit.targets.push(e);
                            }
                            Flow::Unresolved { first, count: pointers.len() as u32 }
                        }
                    }
                }
                InsnKind::Call => {
                    let target = d.branch.map(|b| abs(b.target));
                    if target == Some(next_addr) {
                        // A call to the next instruction pushes a value the code pops.
                        Flow::Plain
                    } else {
                        ops.clear();
                        let callee = match target.and_then(|t| ctx.funcs.starting_at(t)) {
                            Some(g) => Callee::Func(g as u32),
                            None => Callee::Unknown,
                        };
                        Flow::Call(callee)
                    }
                }
                InsnKind::CallDynamic => {
                    ops.clear();
                    let callee = match (d.rip_relative, d.disp_field) {
                        (true, Some(field)) if field.size == 4 => {
                            let at = field.offset as usize;
                            let disp = bytes.get(at..at + 4).map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                            let slot = next_addr.wrapping_add(disp as i64 as u64);
                            match ctx.image.slot_names.get(&slot) {
                                Some(name) => Callee::Import(NORETURN.contains(name)),
                                None => Callee::Unknown,
                            }
                        }
                        _ => Callee::Unknown,
                    };
                    Flow::Call(callee)
                }
                InsnKind::ContextSwitch => {
                    // In user space a system call returns to the next instruction.
                    match opcode(bytes) {
                        (0x0f, 0x05) | (0x0f, 0x34) => Flow::Plain,
                        _ => Flow::Stop,
                    }
                }
                InsnKind::Bug | InsnKind::Trap => Flow::Stop,
                InsnKind::Other if opcode(bytes).0 == 0xf4 => Flow::Stop,
                _ => Flow::Plain,
            };
            let target = match target_addr {
                Some(t) => classify(ctx, &mut unit, t),
                None => Edge::Out,
            };
            let falls = matches!(flow, Flow::Plain | Flow::Call(_) | Flow::Jcc);
            let next = if !falls {
                Edge::Out
            } else if unit.region_of(next_addr) != Some(r)
                && ctx.funcs.starting_at(next_addr).is_some_and(|g| ctx.funcs.list[g].kind != FuncKind::Orphan)
            {
                // Falling off the end into the next function, even a fragment (GCC's cold
                // part of *another* function): never a continuation of this one.
                Edge::Enter(ctx.funcs.starting_at(next_addr).unwrap_or(0) as u32)
            } else {
                classify(ctx, &mut unit, next_addr)
            };
            unit.insns.push(Insn { addr, len: d.len, ops, flow, next, target });
            window.push(addr);

            match flow {
                Flow::Table { first, count } | Flow::Unresolved { first, count } => {
                    for e in &unit.targets[first as usize..(first + count) as usize] {
                        if let Edge::To(t) = *e {
                            work.push((t, Window::EMPTY));
                        }
                    }
                    break;
                }
                Flow::Jcc => {
                    if let Edge::To(t) = target {
                        work.push((t, window));
                    }
                }
                Flow::Jmp => match target {
                    Edge::To(t) => {
                        addr = t;
                        continue;
                    }
                    _ => break,
                },
                _ => {}
            }
            match next {
                Edge::To(n) if falls => addr = n,
                _ => break,
            }
        }
    }
    unit.state_of = vec![NONE; unit.insns.len()];
    unit
}

/// Where a jump or fall-through to `addr` goes, pulling the range it lands in into the unit.
fn classify(ctx: &Ctx<'_, '_>, unit: &mut Unit, addr: u64) -> Edge {
    if unit.region_of(addr).is_some() {
        if addr == ctx.funcs.list[unit.root as usize].start {
            // Back to the own entry: recursion by jump, still a tail call.
            return Edge::Enter(unit.root);
        }
        return Edge::To(addr);
    }
    let Some(g) = ctx.funcs.containing(addr) else { return Edge::Out };
    let func = &ctx.funcs.list[g];
    if func.start == addr && !matches!(func.kind, FuncKind::Fragment | FuncKind::Orphan) {
        return Edge::Enter(g as u32);
    }
    unit.regions.push(Region { func: g as u32, start: func.start, slots: vec![NONE; (func.end - func.start) as usize] });
    Edge::To(addr)
}

/// Pass 2: which functions return. `units[i]` is the unit of function `roots[i]`.
pub(crate) fn noreturn_fixed_point(ctx: &Ctx<'_, '_>, units: &[Unit]) -> Vec<bool> {
    let n = ctx.funcs.list.len();
    // Functions without a unit: PLT stubs return unless their import does not; the entry
    // point and signal trampolines do not; anything else is assumed to.
    let mut returns: Vec<bool> = (0..n)
        .map(|f| {
            let func = &ctx.funcs.list[f];
            !ctx.named_noreturn[f] && !matches!(func.kind, FuncKind::Entry | FuncKind::SignalTrampoline)
        })
        .collect();
    let mut unit_of = vec![NONE; n];
    for (i, u) in units.iter().enumerate() {
        unit_of[u.root as usize] = i as u32;
        if !ctx.named_noreturn[u.root as usize] {
            returns[u.root as usize] = false;
        }
    }
    // Who depends on whom: callers and tail-callers of each function.
    let mut callers: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, u) in units.iter().enumerate() {
        for insn in &u.insns {
            let mut note = |g: u32| {
                if let Some(c) = callers.get_mut(g as usize) {
                    if c.last() != Some(&(i as u32)) {
                        c.push(i as u32);
                    }
                }
            };
            if let Flow::Call(Callee::Func(g)) = insn.flow {
                note(g);
            }
            for e in [insn.next, insn.target] {
                if let Edge::Enter(g) = e {
                    note(g);
                }
            }
        }
        for e in &u.targets {
            if let Edge::Enter(g) = *e {
                callers[g as usize].push(i as u32);
            }
        }
    }
    let mut work: Vec<u32> = (0..units.len() as u32).rev().collect();
    let mut queued = vec![true; units.len()];
    while let Some(i) = work.pop() {
        queued[i as usize] = false;
        let u = &units[i as usize];
        if returns[u.root as usize] || ctx.named_noreturn[u.root as usize] {
            continue;
        }
        if unit_returns(u, &returns, ctx) {
            returns[u.root as usize] = true;
            for &c in &callers[u.root as usize] {
                let cu = &units[c as usize];
                if !returns[cu.root as usize] && !queued[c as usize] {
                    queued[c as usize] = true;
                    work.push(c);
                }
            }
        }
    }
    let _ = unit_of;
    returns
}

fn callee_returns(c: Callee, returns: &[bool]) -> bool {
    match c {
        Callee::Func(g) => returns.get(g as usize).copied().unwrap_or(true),
        Callee::Import(noreturn) => !noreturn,
        Callee::Unknown => true,
    }
}

/// Whether some path of `u` returns, given what is known to return so far.
fn unit_returns(u: &Unit, returns: &[bool], ctx: &Ctx<'_, '_>) -> bool {
    let Some(entry) = u.entry_index(ctx.funcs) else { return false };
    let mut seen = vec![false; u.insns.len()];
    let mut work = vec![entry];
    seen[entry as usize] = true;
    while let Some(i) = work.pop() {
        let insn = &u.insns[i as usize];
        let mut edges: [Option<Edge>; 2] = [None, None];
        match insn.flow {
            Flow::Ret | Flow::ThroughPointer => return true,
            Flow::Unresolved { .. } => return true,
            Flow::Stop | Flow::Undecodable => {}
            Flow::Call(c) => {
                // Only the names decide here: cutting paths at calls to local functions not
                // yet known to return would make every recursion look like it never returns.
                let named = match c {
                    Callee::Func(g) => ctx.named_noreturn.get(g as usize).copied().unwrap_or(false),
                    Callee::Import(noreturn) => noreturn,
                    Callee::Unknown => false,
                };
                // Falling from a call into the next function is no tail call: the callee
                // did not return (and the compiler put nothing after the call).
                if !named && !matches!(insn.next, Edge::Enter(_)) {
                    edges[0] = Some(insn.next);
                }
            }
            Flow::Plain => edges[0] = Some(insn.next),
            Flow::Jcc => edges = [Some(insn.next), Some(insn.target)],
            Flow::Jmp => edges[0] = Some(insn.target),
            Flow::Table { .. } => {}
        }
        let table: &[Edge] = match insn.flow {
            Flow::Table { first, count } => &u.targets[first as usize..(first + count) as usize],
            _ => &[],
        };
        for e in edges.into_iter().flatten().chain(table.iter().copied()) {
            match e {
                Edge::To(a) => {
                    if let Some(j) = u.index(a) {
                        if !std::mem::replace(&mut seen[j as usize], true) {
                            work.push(j);
                        }
                    }
                }
                Edge::Enter(g) if returns.get(g as usize).copied().unwrap_or(true) => return true,
                _ => {}
            }
        }
    }
    false
}

/// Pass 3: the state of every instruction reachable from the entry.
pub(crate) fn walk_states(ctx: &Ctx<'_, '_>, u: &mut Unit, returns: &[bool]) {
    let Some(entry) = u.entry_index(ctx.funcs) else { return };
    let root_kind = ctx.funcs.list[u.root as usize].kind;
    let mut work: Vec<(u32, CfiState)> = vec![(entry, ctx.entry_state(u.root))];
    for &e in &u.entries[1..] {
        if let Some(i) = u.index(e) {
            work.push((i, ctx.entry_state(u.root)));
        }
    }
    // Code after a call to a local function this analysis found never returns, where the
    // compiler did not know it (an endless loop, a recursion that always ends in longjmp):
    // dead, but the compiler laid it out as if the call returned. It is walked last, and
    // only where no other path went, with nothing it meets reported.
    let mut dead_after_call: Vec<(u32, CfiState)> = Vec::new();
    let mut weak = false;
    let mut problems = Vec::new();
    let mut weak_problems = Vec::new();
    loop {
        let Some((start, mut state)) = work.pop() else {
            if dead_after_call.is_empty() {
                break;
            }
            weak = true;
            work.append(&mut dead_after_call);
            continue;
        };
        let problems = if weak { &mut weak_problems } else { &mut problems };
        let mut i = start;
        let mut prev: Option<u32> = None;
        loop {
            let stored = u.state_of[i as usize];
            let insn = u.insns[i as usize];
            if stored != NONE {
                if let Some(m) = mismatch(&u.states[stored as usize], &state) {
                    problems.push(ctx.problem(insn.addr, m.to_string()));
                }
                break;
            }
            let id = match prev.map(|p| u.state_of[p as usize]) {
                Some(p) if u.states[p as usize] == state => p,
                _ => {
                    u.states.push(state);
                    (u.states.len() - 1) as u32
                }
            };
            u.state_of[i as usize] = id;
            if let Err(e) = state.apply_all(insn.ops.iter(), &OpContext::IN_FUNCTION) {
                problems.push(ctx.problem(insn.addr, e.to_string()));
                break;
            }
            // Follows an edge: the instruction to continue with, if any.
            let mut follow = |e: Edge, state: &CfiState, what: &str| -> Option<u32> {
                match e {
                    Edge::To(a) => u.index(a),
                    Edge::Enter(g) => {
                        if mismatch(&ctx.entry_state(g), state).is_some() {
                            let name = &ctx.funcs.list[g as usize].name;
                            problems.push(ctx.problem(insn.addr, format!("{what} {name}() with modified stack frame")));
                        }
                        None
                    }
                    Edge::Out => {
                        problems.push(ctx.problem(insn.addr, format!("{what} code outside any function")));
                        None
                    }
                }
            };
            let next = match insn.flow {
                Flow::Ret => {
                    if state.has_modified_stack_frame() {
                        problems.push(ctx.problem(insn.addr, "return with modified stack frame".into()));
                    }
                    None
                }
                Flow::Stop => None,
                Flow::Undecodable => {
                    problems.push(ctx.problem(insn.addr, "can't decode instruction".into()));
                    None
                }
                Flow::Call(c) => {
                    if let Edge::Enter(_) = insn.next {
                        // The call is the function's last instruction: its callee does not
                        // return, whatever this analysis could tell.
                        None
                    } else if callee_returns(c, returns) {
                        follow(insn.next, &state, "falls through to")
                    } else {
                        let inferred = matches!(c, Callee::Func(g) if !ctx.named_noreturn[g as usize]);
                        if let (true, Edge::To(a)) = (inferred, insn.next) {
                            // Only within the same function: what follows may be another
                            // fragment.
                            let same = u.region_of(a) == u.region_of(insn.addr);
                            if let Some(n) = u.index(a).filter(|_| same) {
                                dead_after_call.push((n, state));
                            }
                        }
                        None
                    }
                }
                Flow::Plain => follow(insn.next, &state, "falls through to"),
                Flow::Jcc => {
                    if let Some(t) = follow(insn.target, &state, "sibling call to") {
                        work.push((t, state));
                    }
                    follow(insn.next, &state, "falls through to")
                }
                Flow::Jmp => follow(insn.target, &state, "sibling call to"),
                Flow::Table { first, count } => {
                    for k in first..first + count {
                        if let Some(t) = follow(u.targets[k as usize], &state, "jump table to") {
                            work.push((t, state));
                        }
                    }
                    None
                }
                Flow::ThroughPointer => {
                    if state.has_modified_stack_frame() && root_kind != FuncKind::Plt0 {
                        problems.push(ctx.problem(insn.addr, "indirect jump through a pointer with modified stack frame".into()));
                    }
                    None
                }
                Flow::Unresolved { first, count } => {
                    if root_kind == FuncKind::Plt0 || !state.has_modified_stack_frame() {
                        // A tail call through a register.
                    } else if count == 0 {
                        problems.push(ctx.problem(insn.addr, "unresolved indirect jump with modified stack frame".into()));
                    } else {
                        for k in first..first + count {
                            if let Some(t) = follow(u.targets[k as usize], &state, "computed jump to") {
                                work.push((t, state));
                            }
                        }
                    }
                    None
                }
            };
            match next {
                Some(n) => {
                    prev = Some(i);
                    i = n;
                }
                None => break,
            }
        }
    }
    // One warning per instruction: several paths may bring the same disagreement.
    problems.sort_by_key(|p| p.addr);
    problems.dedup_by_key(|p| p.addr);
    u.problems = problems;
}

/// What the analysis made of one function.
#[derive(Clone, Debug, Default)]
pub(crate) struct FuncRows {
    /// Rows inside the function's range (and, for a signal trampoline, one byte before).
    pub rows: Vec<(u64, Entry)>,
    /// Walked (or given fixed rows) with no problem and every instruction reached.
    pub clean: bool,
    /// Instructions reached.
    pub instructions: usize,
}

/// Everything the analysis found.
pub(crate) struct Analysis {
    pub per_func: Vec<FuncRows>,
    pub problems: Vec<Problem>,
}

/// Runs the three passes over every function of `ctx`.
pub(crate) fn analyse(ctx: &Ctx<'_, '_>) -> Analysis {
    let funcs = &ctx.funcs.list;
    let roots: Vec<u32> = (0..funcs.len() as u32)
        .filter(|&f| matches!(funcs[f as usize].kind, FuncKind::Normal | FuncKind::Plt | FuncKind::Plt0))
        .collect();
    let mut units: Vec<Unit> = roots.par_iter().map(|&f| build_unit(ctx, f)).collect();
    let returns = noreturn_fixed_point(ctx, &units);
    units.par_iter_mut().for_each(|u| walk_states(ctx, u, &returns));
    if let Some(trace) = std::env::var("ORC_LINKED_TRACE").ok().and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok()) {
        for u in units.iter().filter(|u| funcs[u.root as usize].start == trace) {
            trace_unit(ctx, u);
        }
    }

    // Each fragment's rows come from the first unit that reached it.
    let mut owner = vec![NONE; funcs.len()];
    for (i, u) in units.iter().enumerate() {
        for r in &u.regions {
            let fragment_reached = matches!(funcs[r.func as usize].kind, FuncKind::Fragment | FuncKind::Orphan)
                && r.slots.iter().any(|&s| s != NONE && u.state_of[s as usize] != NONE);
            let own = r.func == u.root || fragment_reached;
            if own && owner[r.func as usize] == NONE {
                owner[r.func as usize] = i as u32;
            }
        }
    }
    let emitted: Vec<(Vec<(u32, FuncRows)>, Vec<Problem>)> = units
        .par_iter()
        .enumerate()
        .map(|(i, u)| {
            let mut decoders = Decoders::new(ctx.image);
            let mut out = Vec::new();
            let mut unit_problems = !u.problems.is_empty();
            let mut parts = Vec::new();
            for r in &u.regions {
                if owner[r.func as usize] != i as u32 {
                    continue;
                }
                let (rows, instructions, complete, problem) = emit_region(ctx, u, r, &mut decoders);
                unit_problems |= problem.is_some();
                parts.push((r.func, rows, instructions, complete, problem));
            }
            // A state without an ORC entry (an offset beyond 16 bits) is reported like the
            // walk's problems: the function's rows then come from the converter.
            let mut entry_problems = Vec::new();
            for (func, rows, instructions, complete, problem) in parts {
                entry_problems.extend(problem);
                out.push((func, FuncRows { rows, clean: complete && !unit_problems, instructions }));
            }
            (out, entry_problems)
        })
        .collect();
    let mut per_func = vec![FuncRows::default(); funcs.len()];
    let mut entry_problems = Vec::new();
    for (list, problems) in emitted {
        for (f, rows) in list {
            per_func[f as usize] = rows;
        }
        entry_problems.extend(problems);
    }
    // Fixed rows: the entry point ends the stack; a signal trampoline is a signal frame
    // from one byte before its `rt_sigreturn` (the handler's return address minus one).
    for (f, func) in funcs.iter().enumerate() {
        match func.kind {
            FuncKind::Entry => {
                per_func[f] = FuncRows { rows: vec![(func.start, Entry::END_OF_STACK)], clean: true, instructions: 0 };
            }
            FuncKind::SignalTrampoline => {
                let bytes = ctx.image.bytes_from(func.start).unwrap_or(&[]);
                let tramp = if bytes.starts_with(&SIGRETURN) {
                    func.start
                } else if bytes.get(1..).is_some_and(|b| b.starts_with(&SIGRETURN)) {
                    func.start + 1
                } else {
                    func.start
                };
                per_func[f] = FuncRows {
                    rows: vec![(tramp.saturating_sub(1), SIGNAL_TRAMPOLINE), (tramp, SIGNAL_TRAMPOLINE)],
                    clean: true,
                    instructions: 0,
                };
            }
            _ => {}
        }
    }
    if std::env::var_os("ORC_LINKED_UNCLEAN").is_some() {
        for (f, func) in funcs.iter().enumerate() {
            if !per_func[f].clean {
                let by = match owner[f] {
                    NONE => String::new(),
                    o => format!(" walked from {:#x}", funcs[units[o as usize].root as usize].start),
                };
                eprintln!("unclean {:#x} {} {:?} rows={} insns={}{by}", func.start, func.name, func.kind, per_func[f].rows.len(), per_func[f].instructions);
            }
        }
    }
    let mut problems: Vec<Problem> = units.into_iter().flat_map(|u| u.problems).collect();
    problems.extend(entry_problems);
    problems.sort_by_key(|p| p.addr);
    Analysis { per_func, problems }
}

/// The rows of one region of a unit: entries where the state's entry changes, UNDEFINED over
/// bytes no path reached. Also: instructions reached, whether every instruction in the gaps
/// is padding (NOPs, `int3`, `ud2`, `hlt`), and a problem if a state has no ORC entry.
fn emit_region<'data>(ctx: &Ctx<'_, 'data>, u: &Unit, r: &Region, decoders: &mut Decoders<'data>) -> (Vec<(u64, Entry)>, usize, bool, Option<Problem>) {
    let mut rows = Vec::new();
    let mut last: Option<Entry> = None;
    let mut cur_end = 0usize;
    let mut reached = 0usize;
    let mut complete = true;
    let mut problem = None;
    let mut cache: Vec<Option<Entry>> = vec![None; u.states.len()];
    let mut gap_start: Option<usize> = None;
    let len = r.slots.len();
    let mut off = 0usize;
    while off < len {
        let slot = r.slots[off];
        let reached_here = slot != NONE && u.state_of[slot as usize] != NONE;
        if !reached_here {
            if off >= cur_end {
                gap_start.get_or_insert(off);
                if last != Some(Entry::UNDEFINED) {
                    rows.push((r.start + off as u64, Entry::UNDEFINED));
                    last = Some(Entry::UNDEFINED);
                }
            }
            off += 1;
            continue;
        }
        if let Some(g) = gap_start.take() {
            complete &= gap_is_padding(ctx, decoders, r.start + g as u64, r.start + off as u64);
        }
        let insn = &u.insns[slot as usize];
        let sid = u.state_of[slot as usize] as usize;
        let entry = match cache[sid] {
            Some(e) => e,
            None => {
                let e = orc_stack::orc_entry_exact(Some(&u.states[sid]), Layout::V3).unwrap_or_else(|err| {
                    problem.get_or_insert_with(|| ctx.problem(insn.addr, format!("no ORC entry for the state: {err}")));
                    Entry::UNDEFINED
                });
                cache[sid] = Some(e);
                e
            }
        };
        if last != Some(entry) {
            rows.push((insn.addr, entry));
            last = Some(entry);
        }
        reached += 1;
        cur_end = off + usize::from(insn.len);
        off += 1;
    }
    if let Some(g) = gap_start {
        complete &= gap_is_padding(ctx, decoders, r.start + g as u64, r.start + len as u64);
    }
    (rows, reached, complete, problem)
}

/// Every instruction in `[start, end)` is padding.
fn gap_is_padding<'data>(ctx: &Ctx<'_, 'data>, decoders: &mut Decoders<'data>, start: u64, end: u64) -> bool {
    let mut addr = start;
    while addr < end {
        let Some((d, _)) = decoders.decode(ctx.image, addr) else { return false };
        let bytes = ctx.image.bytes_from(addr).unwrap_or(&[]);
        let padding = matches!(d.kind, InsnKind::Nop | InsnKind::Trap | InsnKind::Bug)
            || opcode(bytes).0 == 0xf4
            // `xchg %ax,%ax` and `data16 cs nopw` forms decode as NOPs already; `lea 0(%rsi),%rsi`
            // style padding of older assemblers:
            || (d.kind == InsnKind::Other && d.stack_ops.is_empty() && is_lea_nop(bytes));
        if !padding {
            return false;
        }
        addr += u64::from(d.len);
    }
    true
}

/// `lea 0x0(%reg,%riz,1),%reg` and similar no-op `lea`s used as padding.
fn is_lea_nop(bytes: &[u8]) -> bool {
    let (op, _) = opcode(bytes);
    op == 0x8d && bytes.len() >= 3 && {
        let i = bytes.iter().position(|&b| b == 0x8d).unwrap_or(0);
        let modrm = bytes.get(i + 1).copied().unwrap_or(0);
        (modrm >> 3) & 7 == modrm & 7 || modrm & 7 == 4
    }
}

/// Prints a unit's instructions with their states (`ORC_LINKED_TRACE=<function address>`),
/// for debugging the analysis.
fn trace_unit(ctx: &Ctx<'_, '_>, u: &Unit) {
    let mut order: Vec<usize> = (0..u.insns.len()).collect();
    order.sort_by_key(|&i| u.insns[i].addr);
    for i in order {
        let insn = &u.insns[i];
        let text = ctx
            .image
            .bytes_from(insn.addr)
            .and_then(|b| orc_decode::disassemble(&b[..b.len().min(16)], insn.addr))
            .unwrap_or_default();
        let state = match u.state_of[i] {
            NONE => "unreached".to_string(),
            s => {
                let st = &u.states[s as usize];
                format!("cfa={:?} size={}", st.cfa, st.stack_size)
            }
        };
        eprintln!("{:#x} {:<40} {:?} {state}", insn.addr, text, insn.flow);
    }
}
