//! The path walker (objtool's `validate_branch`): follows every path from every function
//! entry and every unwind hint, carrying the stack state, storing the state before each
//! instruction, and stopping a path at the first problem.
//!
//! The order of the walk is objtool's, because it decides which state an instruction keeps
//! when paths disagree and which warning is printed: straight-line code first, alternatives
//! before the original at a patch site (most recently listed first), a jump's target before
//! its fall-through.

use orc_decode::{Dest, InsnKind, Src};
use orc_stack::{Base, CfiState, OpContext};

use crate::program::{InsnId, SymId};
use crate::Checker;

/// Visited by a path with user access disabled / enabled.
const VISITED_BRANCH: u8 = 0x01;
const VISITED_BRANCH_MASK: u8 = 0x03;

/// The state carried along a path.
#[derive(Clone, Debug)]
pub(crate) struct InsnState {
    pub cfi: CfiState,
    pub uaccess_stack: u32,
    pub uaccess: bool,
    pub df: bool,
    /// The path started in a noinstr section (`--noinstr --link`).
    pub noinstr: bool,
    /// `instrumentation_begin()`s minus `instrumentation_end()`s met on the path (objtool's
    /// `s8`, wrapping as it does).
    pub instr: i8,
}

impl InsnState {
    pub fn new(cfi: CfiState) -> Self {
        InsnState { cfi, uaccess_stack: 0, uaccess: false, df: false, noinstr: false, instr: 0 }
    }
}

/// What a path ended with: `Ok` for a normal end, `Err` after a warning (which aborts every
/// path that led here, as in objtool).
pub(crate) type Walk = Result<(), ()>;

impl Checker<'_> {
    /// The instruction executed after `id`: the next one in the section, except at the end of
    /// a replacement, where execution continues after the original (patching is in place).
    pub(crate) fn next_insn_to_validate(&self, id: InsnId) -> Option<InsnId> {
        if let Some(g) = self.p.alt_group(id) {
            let group = &self.groups[g as usize];
            if let Some(nop) = group.nop {
                if Some(id) == group.last_insn {
                    return Some(nop);
                }
                if id == nop {
                    return self.after_orig(group.orig_group);
                }
            }
            if Some(id) == group.last_insn && group.orig_group.is_some() {
                return self.after_orig(group.orig_group);
            }
        }
        self.p.next_in_sec(id)
    }

    fn after_orig(&self, orig_group: Option<u32>) -> Option<InsnId> {
        let orig = &self.groups[orig_group? as usize];
        self.p.next_in_sec(orig.last_insn?)
    }

    /// Stores the instruction's state in its site's shared per-byte array; a different state
    /// already there is the "stack layout conflict" of alternatives.
    fn propagate_alt_cfi(&mut self, id: InsnId) -> Walk {
        let Some(g) = self.p.alt_group(id) else { return Ok(()) };
        let Some(cfi) = self.insn_cfi[id as usize] else {
            self.warn("CFI missing".to_string());
            return Err(());
        };
        let group = &self.groups[g as usize];
        let arr = group.cfi as usize;
        let first = self.p.insns[group.first_insn as usize].offset;
        let off = self.p.insns[id as usize].offset.wrapping_sub(first) as usize;
        let orig_group = group.orig_group.unwrap_or(g);
        let Some(slot) = self.alt_cfi[arr].get_mut(off) else {
            // A replacement longer than the original: objtool writes past its array; here the
            // excess is simply not part of the union.
            return Ok(());
        };
        match *slot {
            None => *slot = Some(cfi),
            Some(existing) if existing == cfi => {}
            Some(_) => {
                let orig = self.groups[orig_group as usize].first_insn;
                let insn = &self.p.insns[id as usize];
                let where_ = self.p.offstr(insn.sec as usize, insn.offset);
                self.warn_insn(orig, format!("stack layout conflict in alternatives: {where_}"));
                return Err(());
            }
        }
        Ok(())
    }

    /// Applies the instruction's stack operations to the state.
    fn handle_insn_ops(&mut self, id: InsnId, next: Option<InsnId>, state: &mut InsnState) -> Walk {
        // Copied out (two inline slots, no allocation) so that warnings can borrow `self`.
        let ops = self.p.ops(id);
        let in_alt = self.p.alt_group(id).is_some();
        let ctx = OpContext {
            in_function: self.p.insn_func(id).is_some(),
            next_has_hint: next.is_some_and(|n| self.p.insns[n as usize].hint()),
            stackval: self.opts.stackval,
        };
        for &op in ops.iter() {
            if let Err(error) = state.cfi.apply(&op, &ctx) {
                self.warn_insn(id, error.to_string());
                return Err(());
            }
            if !self.opts.uaccess || !in_alt {
                continue;
            }
            if op.dest == Dest::Pushf {
                if state.uaccess_stack == 0 {
                    state.uaccess_stack = 1;
                } else if state.uaccess_stack >> 31 != 0 {
                    self.warn_insn(id, "PUSHF stack exhausted".to_string());
                    return Err(());
                }
                state.uaccess_stack = (state.uaccess_stack << 1) | u32::from(state.uaccess);
            }
            if op.src == Src::Popf && state.uaccess_stack != 0 {
                state.uaccess = state.uaccess_stack & 1 != 0;
                state.uaccess_stack >>= 1;
                if state.uaccess_stack == 1 {
                    state.uaccess_stack = 0;
                }
            }
        }
        Ok(())
    }

    fn func_uaccess_safe(&self, func: Option<SymId>) -> bool {
        func.is_some_and(|f| self.uaccess_safe.contains(&self.p.symbols[f as usize].name))
    }

    fn validate_call(&mut self, id: InsnId, state: &InsnState) -> Walk {
        if state.noinstr && state.instr <= 0 && !self.noinstr_call_dest(id, self.call_dest(id)) {
            let name = self.call_dest_name(id);
            self.warn_insn(id, format!("call to {name}() leaves .noinstr.text section"));
            return Err(());
        }
        if state.uaccess && !self.func_uaccess_safe(self.call_dest(id)) {
            let name = self.call_dest_name(id);
            self.warn_insn(id, format!("call to {name}() with UACCESS enabled"));
            return Err(());
        }
        if state.df {
            let name = self.call_dest_name(id);
            self.warn_insn(id, format!("call to {name}() with DF set"));
            return Err(());
        }
        Ok(())
    }

    fn validate_sibling_call(&mut self, id: InsnId, state: &InsnState) -> Walk {
        if self.p.insn_func(id).is_some() && state.cfi.has_modified_stack_frame() {
            self.warn_insn(id, "sibling call from callable instruction with modified stack frame".to_string());
            return Err(());
        }
        self.validate_call(id, state)
    }

    fn validate_return(&mut self, func: Option<SymId>, id: InsnId, state: &InsnState) -> Walk {
        let safe = self.func_uaccess_safe(func);
        let message = if state.noinstr && state.instr > 0 {
            "return with instrumentation enabled"
        } else if state.uaccess && !safe {
            "return with UACCESS enabled"
        } else if !state.uaccess && safe {
            "return with UACCESS disabled from a UACCESS-safe function"
        } else if state.df {
            "return with DF set"
        } else if func.is_some() && state.cfi.has_modified_stack_frame() {
            "return with modified stack frame"
        } else if state.cfi.bp_scratch {
            "BP used as a scratch register"
        } else {
            return Ok(());
        };
        self.warn_insn(id, message.to_string());
        Err(())
    }

    /// objtool's `validate_branch`.
    pub(crate) fn validate_branch(&mut self, func: Option<SymId>, start: InsnId, state: InsnState) -> Walk {
        self.validate_branch_from(func, start, state, None)
    }

    /// [`Checker::validate_branch`], given the interned handle of `state.cfi` when the caller
    /// knows it.
    fn validate_branch_from(&mut self, func: Option<SymId>, start: InsnId, mut state: InsnState, known: Option<orc_stack::CfiId>) -> Walk {
        let mut id = start;
        let mut prev: Option<InsnId> = None;
        // The interned handle of `state.cfi` while it is known (equal states have one handle):
        // most instructions leave the state alone, and comparing or hashing it at each one
        // was a good part of the walk.
        let mut current: Option<orc_stack::CfiId> = known;
        let sec = self.p.insns[start as usize].sec as usize;
        loop {
            let next = self.next_insn_to_validate(id);

            if let (Some(f), Some(ifn)) = (func, self.p.insn_func(id)) {
                if f != self.p.pfunc(ifn) {
                    let fname = self.p.symbols[f as usize].name;
                    // KCFI type preambles and prefix NOPs always fall through.
                    if fname.starts_with("__cfi_") || fname.starts_with("__pfx_") || self.ignore_unreachables {
                        return Ok(());
                    }
                    let iname = self.p.symbols[ifn as usize].name;
                    self.warn(format!("{fname}() falls through to next function {iname}()"));
                    return Err(());
                }
            }
            if func.is_some() && self.p.insns[id as usize].ignore() {
                self.warn_insn(id, "BUG: why am I validating an ignored function?".to_string());
                return Err(());
            }

            let visited_bit = VISITED_BRANCH << u8::from(state.uaccess);
            let visited = self.visited[id as usize];
            if visited & VISITED_BRANCH_MASK != 0 {
                if !self.p.insns[id as usize].hint() && (current.is_none() || self.insn_cfi[id as usize] != current) {
                    let stored = self.insn_cfi[id as usize].map(|c| self.cfi(c));
                    match stored {
                        None => {
                            self.warn("CFI missing".to_string());
                            return Err(());
                        }
                        Some(stored) => {
                            if let Some(mismatch) = orc_stack::mismatch(stored, &state.cfi) {
                                self.warn_insn(id, mismatch.to_string());
                                return Err(());
                            }
                        }
                    }
                }
                if visited & visited_bit != 0 {
                    return Ok(());
                }
            }
            if state.noinstr {
                state.instr = state.instr.wrapping_add(self.p.insns[id as usize].instr);
            }

            let insn = &self.p.insns[id as usize];
            if insn.hint() {
                if insn.restore() {
                    // UNWIND_HINT_RESTORE: the state saved by the nearest SAVE before it.
                    let mut save = None;
                    let sym_start = func.map(|f| self.p.symbols[f as usize].offset);
                    let mut it = self.p.prev_in_sec(id);
                    while let (Some(i), Some(lo)) = (it, sym_start) {
                        if self.p.insns[i as usize].offset < lo {
                            break;
                        }
                        if self.p.insns[i as usize].save() {
                            save = Some(i);
                            break;
                        }
                        it = self.p.prev_in_sec(i);
                    }
                    let Some(save) = save else {
                        self.warn_insn(id, "no corresponding CFI save for CFI restore".to_string());
                        return Err(());
                    };
                    if self.visited[save as usize] == 0 {
                        if prev.is_none() {
                            return Ok(());
                        }
                        self.warn_insn(id, "objtool isn't smart enough to handle this CFI save/restore combo".to_string());
                        return Err(());
                    }
                    self.insn_cfi[id as usize] = self.insn_cfi[save as usize];
                }
                match self.insn_cfi[id as usize] {
                    Some(c) => {
                        state.cfi = *self.cfi(c);
                        current = Some(c);
                    }
                    None => {
                        self.warn("CFI missing".to_string());
                        return Err(());
                    }
                }
            } else {
                let c = match current {
                    Some(c) => c,
                    None => self.intern(&state.cfi),
                };
                current = Some(c);
                self.insn_cfi[id as usize] = Some(c);
            }
            self.visited[id as usize] |= visited_bit;

            self.propagate_alt_cfi(id)?;

            let insn = &self.p.insns[id as usize];
            if !insn.ignore_alts() && !self.p.alts(id).is_empty() {
                let alts = self.p.alts(id).to_vec();
                let mut skip_orig = false;
                for alt in alts {
                    skip_orig |= alt.skip_orig;
                    self.validate_branch_from(func, alt.insn, state.clone(), current)?;
                }
                if skip_orig {
                    return Ok(());
                }
            }

            self.handle_insn_ops(id, next, &mut state)?;
            if !self.p.ops(id).is_empty() {
                current = current.filter(|&c| *self.cfi(c) == state.cfi);
            }

            let insn = &self.p.insns[id as usize];
            match insn.kind {
                InsnKind::Return => return self.validate_return(func, id, &state),
                InsnKind::Call | InsnKind::CallDynamic => {
                    self.validate_call(id, &state)?;
                    if self.opts.stackval && func.is_some() && !self.is_special_call(id) && !state.cfi.has_valid_stack_frame() {
                        self.warn_insn(id, "call without frame pointer save/setup".to_string());
                        return Err(());
                    }
                    if self.p.insns[id as usize].dead_end() {
                        return Ok(());
                    }
                }
                InsnKind::JumpConditional | InsnKind::JumpUnconditional => {
                    if self.is_sibling_call(id) {
                        self.validate_sibling_call(id, &state)?;
                    } else if let Some(dest) = self.p.insns[id as usize].jump_dest.get() {
                        self.validate_branch_from(func, dest, state.clone(), current)?;
                    }
                    if self.p.insns[id as usize].kind == InsnKind::JumpUnconditional {
                        return Ok(());
                    }
                }
                InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                    if self.is_sibling_call(id) {
                        self.validate_sibling_call(id, &state)?;
                    }
                    if self.p.insns[id as usize].kind == InsnKind::JumpDynamic {
                        return Ok(());
                    }
                }
                InsnKind::ContextSwitch => {
                    if func.is_some() {
                        if !next.is_some_and(|n| self.p.insns[n as usize].hint()) {
                            self.warn_insn(id, "unsupported instruction in callable function".to_string());
                            return Err(());
                        }
                    } else {
                        return Ok(());
                    }
                }
                InsnKind::Stac if self.opts.uaccess => {
                    if state.uaccess {
                        self.warn_insn(id, "recursive UACCESS enable".to_string());
                        return Err(());
                    }
                    state.uaccess = true;
                }
                InsnKind::Clac if self.opts.uaccess => {
                    if !state.uaccess && func.is_some() {
                        self.warn_insn(id, "redundant UACCESS disable".to_string());
                        return Err(());
                    }
                    if self.func_uaccess_safe(func) && state.uaccess_stack == 0 {
                        self.warn_insn(id, "UACCESS-safe disables UACCESS".to_string());
                        return Err(());
                    }
                    state.uaccess = false;
                }
                InsnKind::Std => {
                    if state.df {
                        self.warn_insn(id, "recursive STD".to_string());
                        return Err(());
                    }
                    state.df = true;
                }
                InsnKind::Cld => {
                    if !state.df && func.is_some() {
                        self.warn_insn(id, "redundant CLD".to_string());
                        return Err(());
                    }
                    state.df = false;
                }
                _ => {}
            }

            if self.p.insns[id as usize].dead_end() {
                return Ok(());
            }
            let Some(n) = next else {
                if state.cfi.cfa.base == Base::UNDEFINED || self.ignore_unreachables {
                    return Ok(());
                }
                let name = self.p.sections[sec].name;
                self.warn(format!("{name}: unexpected end of section"));
                return Err(());
            };
            prev = Some(id);
            id = n;
        }
    }

    /// A call to `__fentry__` or to an embedded-RET thunk: exempt from the frame check.
    fn is_special_call(&self, id: InsnId) -> bool {
        if self.p.insns[id as usize].kind != InsnKind::Call {
            return false;
        }
        self.call_dest(id).is_some_and(|d| {
            let s = &self.p.symbols[d as usize];
            s.fentry || s.embedded_insn
        })
    }

    /// objtool's `validate_functions`: every STT_FUNC of every executable section, in
    /// section order and address order, from the initial function state.
    pub(crate) fn validate_functions(&mut self) -> usize {
        let mut warnings = 0;
        for si in 0..self.p.sections.len() {
            if !self.p.sections[si].exec {
                continue;
            }
            for k in 0..self.p.sections[si].syms.len() {
                let s = self.p.sections[si].syms[k];
                if !self.p.symbols[s as usize].is_func() {
                    continue;
                }
                let mut state = InsnState::new(CfiState::FUNCTION_ENTRY);
                // objtool's `init_insn_state`: only a whole linked object says where a call goes.
                state.noinstr = self.opts.link && self.opts.noinstr && self.p.sections[si].noinstr;
                warnings += usize::from(self.validate_symbol(si, s, &mut state).is_err());
            }
        }
        warnings
    }

    fn validate_symbol(&mut self, sec: usize, s: SymId, state: &mut InsnState) -> Walk {
        let sym = &self.p.symbols[s as usize];
        if sym.len == 0 {
            let name = sym.name;
            self.warn(format!("{name}() is missing an ELF size annotation"));
            return Err(());
        }
        if sym.pfunc != s || sym.alias != s {
            return Ok(());
        }
        let Some(id) = self.p.find_insn(sec, sym.offset) else { return Ok(()) };
        if self.p.insns[id as usize].ignore() || self.visited[id as usize] != 0 {
            return Ok(());
        }
        if self.opts.uaccess {
            state.uaccess = self.func_uaccess_safe(Some(s));
        }
        let func = self.p.insn_func(id);
        self.validate_branch(func, id, state.clone())
    }

    /// objtool's `validate_unwind_hints`: paths starting at hinted instructions no function
    /// walk reached.
    pub(crate) fn validate_unwind_hints(&mut self) -> usize {
        if !self.hints {
            return 0;
        }
        let mut warnings = 0;
        for id in 0..self.p.insns.len() as InsnId {
            let insn = &self.p.insns[id as usize];
            if insn.fake() || !insn.hint() || self.visited[id as usize] != 0 || insn.ignore() {
                continue;
            }
            let state = InsnState::new(CfiState::UNKNOWN);
            let func = self.p.insn_func(id);
            warnings += usize::from(self.validate_branch(func, id, state).is_err());
        }
        warnings
    }

    /// objtool's `validate_reachable_instructions`, run only when nothing else warned.
    pub(crate) fn validate_reachable_instructions(&mut self) -> usize {
        if self.ignore_unreachables {
            return 0;
        }
        let mut warnings = 0;
        for si in 0..self.p.sections.len() {
            let range = self.p.sections[si].insns.clone();
            for id in range {
                if self.visited[id as usize] != 0 || self.ignore_unreachable_insn(id) {
                    continue;
                }
                if let Some(prev) = self.p.prev_in_sec(id) {
                    if self.p.insns[prev as usize].dead_end() {
                        if let Some(dest) = self.call_dest(prev) {
                            let name = self.p.symbols[dest as usize].name;
                            let text = if self.era.noreturn_warning_names_noreturns_h() {
                                format!("{name}() missing __noreturn in .c/.h or NORETURN() in noreturns.h")
                            } else {
                                format!("{name}() is missing a __noreturn annotation")
                            };
                            self.warn_insn(id, text);
                            warnings += 1;
                            continue;
                        }
                    }
                }
                self.warn_insn(id, "unreachable instruction".to_string());
                warnings += 1;
            }
        }
        warnings
    }

    /// objtool's `ignore_unreachable_insn`: unreached code that is not worth a warning.
    fn ignore_unreachable_insn(&mut self, start: InsnId) -> bool {
        let insn = &self.p.insns[start as usize];
        if insn.ignore() || matches!(insn.kind, InsnKind::Nop | InsnKind::Trap) {
            return true;
        }
        let sec = insn.sec as usize;
        if matches!(self.p.sections[sec].name, ".altinstr_replacement" | ".altinstr_aux") {
            return true;
        }
        if self.opts.link && self.p.insn_func(start).is_none() {
            // Dead code left by a weak symbol the linker dropped: a hole between symbols.
            let hole = self.p.symbol_hole_containing(sec, insn.offset);
            let Some(size) = hole else { return false };
            let Some(size) = size else { return true };
            let end = insn.offset.saturating_add(size);
            let mut it = self.p.next_in_sec(start);
            while let Some(id) = it {
                if self.visited[id as usize] != 0 {
                    return true;
                }
                if self.p.insns[id as usize].offset >= end {
                    break;
                }
                if let Some(dest) = self.p.insns[id as usize].jump_dest.get() {
                    if let Some(df) = self.p.insn_func(dest) {
                        if self.p.symbols[df as usize].name.contains(".cold") {
                            let mut d = Some(dest);
                            while let Some(x) = d {
                                self.p.insns[x as usize].set_ignore(true);
                                d = self.next_insn_same_func(x);
                            }
                        }
                    }
                }
                it = self.p.next_in_sec(id);
            }
            return false;
        }
        let Some(func) = self.p.insn_func(start) else { return false };
        if self.p.symbols[func as usize].static_call_tramp {
            return true;
        }
        // UBSAN_TRAP's second UD2 after BUG(), or a jump to one, after a dead end.
        if let Some(prev) = self.p.prev_in_sec(start) {
            let insn = &self.p.insns[start as usize];
            let to_bug = insn.kind == InsnKind::JumpUnconditional
                && insn.jump_dest.get().is_some_and(|d| self.p.insns[d as usize].kind == InsnKind::Bug);
            if self.p.insns[prev as usize].dead_end() && (insn.kind == InsnKind::Bug || to_bug) {
                return true;
            }
        }
        // KASAN/UBSAN calls within the next five instructions.
        let mut id = start;
        for _ in 0..5 {
            let insn = &self.p.insns[id as usize];
            if insn.kind == InsnKind::Call {
                if let Some(d) = self.call_dest(id) {
                    let name = self.p.symbols[d as usize].name;
                    if name == "__asan_handle_no_return" || name == "__ubsan_handle_builtin_unreachable" {
                        return true;
                    }
                }
            }
            if insn.kind == InsnKind::JumpUnconditional {
                match insn.jump_dest.get() {
                    Some(d) if self.p.insn_func(d) == self.p.insn_func(id) => {
                        id = d;
                        continue;
                    }
                    _ => break,
                }
            }
            let Some(f) = self.p.insn_func(id) else { break };
            let f = &self.p.symbols[f as usize];
            if insn.end() >= f.offset.saturating_add(f.len) {
                break;
            }
            match self.p.next_in_sec(id) {
                Some(n) => id = n,
                None => break,
            }
        }
        false
    }
}
