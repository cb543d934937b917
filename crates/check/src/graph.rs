//! The control-flow graph: where jumps and calls go, which calls never return, and the
//! conversions objtool makes on the way (retpoline thunks become dynamic branches, a jump to
//! the return thunk becomes a return, an annotated intra-function call becomes a jump).

use orc_decode::InsnKind;
use orc_elf::SymbolKind;
use orc_flow::NoreturnVerdict;

use crate::program::{InsnId, SymId};
use crate::report::Fatal;
use crate::Checker;

/// x86's `arch_dest_reloc_offset`: a PC32 addend is relative to the end of the 4-byte field,
/// so the target is `addend + 4` past the symbol.
const fn dest_reloc_offset(addend: i64) -> u64 {
    addend.wrapping_add(4) as u64
}

impl Checker<'_> {
    /// The start of `sym`, or just past an ENDBR there (direct branches may skip it with IBT).
    fn is_first_func_insn(&self, id: InsnId, sym: SymId) -> bool {
        let insn = &self.p.insns[id as usize];
        let s = &self.p.symbols[sym as usize];
        if insn.offset == s.offset {
            return true;
        }
        if self.opts.ibt {
            if let Some(prev) = self.prev_insn_same_sym(id) {
                let prev = &self.p.insns[prev as usize];
                if prev.kind == InsnKind::Endbr && insn.offset == s.offset + u64::from(prev.len) {
                    return true;
                }
            }
        }
        false
    }

    /// The previous instruction of the same section if it has the same function.
    pub(crate) fn prev_insn_same_sym(&self, id: InsnId) -> Option<InsnId> {
        let prev = self.p.prev_in_sec(id)?;
        (self.p.insn_func(prev) == self.p.insn_func(id)).then_some(prev)
    }

    /// A jump to the start of another function (a tail call), as opposed to a jump inside the
    /// same function or its `.cold` part.
    fn jump_is_sibling_call(&self, from: InsnId, to: InsnId) -> bool {
        let (Some(fs), Some(ts)) = (self.p.insns[from as usize].sym.get(), self.p.insns[to as usize].sym.get()) else {
            return false;
        };
        if !self.is_first_func_insn(to, ts) {
            return false;
        }
        if self.p.symbols[ts as usize].kind == SymbolKind::NoType {
            return false;
        }
        self.p.pfunc(fs) != self.p.pfunc(ts)
    }

    /// A jump that leaves the function: a sibling call, or a dynamic jump that is not a
    /// switch table.
    pub(crate) fn is_sibling_call(&self, id: InsnId) -> bool {
        let insn = &self.p.insns[id as usize];
        if self.p.insn_func(id).is_some() && insn.kind == InsnKind::JumpDynamic {
            return !self.is_jump_table_jump(id);
        }
        insn.kind.is_static_jump() && self.call_dest(id).is_some()
    }

    /// objtool's `insn_call_dest`: none for dynamic branches.
    pub(crate) fn call_dest(&self, id: InsnId) -> Option<SymId> {
        let insn = &self.p.insns[id as usize];
        match insn.kind {
            InsnKind::JumpDynamic | InsnKind::CallDynamic => None,
            _ => insn.call_dest.get(),
        }
    }

    pub(crate) fn is_jump_table_jump(&self, id: InsnId) -> bool {
        let insn = &self.p.insns[id as usize];
        if insn.kind == InsnKind::JumpDynamic && self.p.jump_table(id).is_some() {
            return true;
        }
        // A retpoline alternative standing for a jump-table jump.
        if let Some(g) = self.p.alt_group(id) {
            if let Some(orig) = self.groups[g as usize].orig_group {
                let first = self.groups[orig as usize].first_insn;
                let f = &self.p.insns[first as usize];
                return matches!(f.kind, InsnKind::JumpDynamic | InsnKind::CallDynamic) && self.p.jump_table(first).is_some();
            }
        }
        false
    }

    /// Removes a call's stack operations: the callee's return undoes the push.
    fn remove_ops(&mut self, id: InsnId) {
        self.p.remove_ops(id);
    }

    fn add_call_dest(&mut self, id: InsnId, dest: Option<SymId>, sibling: bool) {
        self.p.insns[id as usize].call_dest = (dest).into();
        let Some(_) = dest else { return };
        self.remove_ops(id);
        self.annotate_call_site(id, sibling);
    }

    fn add_retpoline_call(&mut self, id: InsnId) {
        let insn = &mut self.p.insns[id as usize];
        insn.kind = match insn.kind {
            InsnKind::Call => InsnKind::CallDynamic,
            InsnKind::JumpUnconditional => InsnKind::JumpDynamic,
            InsnKind::JumpConditional => InsnKind::JumpDynamicConditional,
            _ => return,
        };
        insn.set_retpoline_safe(true);
        self.remove_ops(id);
        self.annotate_call_site(id, false);
    }

    fn add_return_call(&mut self, id: InsnId, add: bool) {
        let insn = &mut self.p.insns[id as usize];
        insn.kind = InsnKind::Return;
        insn.set_retpoline_safe(true);
        if add {
            self.sites.return_sites.push(id);
        }
    }

    /// Records what kind of call site this is, and marks calls to noreturn functions as dead
    /// ends.
    fn annotate_call_site(&mut self, id: InsnId, sibling: bool) {
        let sym = match self.call_dest(id) {
            Some(s) => Some(s),
            None => self.p.insn_reloc(id).map(|r| r.symbol as SymId),
        };
        let Some(sym) = sym else { return };
        let sec = self.p.insns[id as usize].sec as usize;
        if self.p.sections[sec].name == ".altinstr_replacement" && !self.era.annotates_calls_in_alt_replacements() {
            return;
        }
        let s = &self.p.symbols[sym as usize];
        if s.static_call_tramp {
            self.sites.static_calls.push(id);
            return;
        }
        if s.retpoline_thunk {
            self.sites.retpoline_calls.push(id);
            return;
        }
        let profiling = self.p.is_global(sym)
            && (s.name.starts_with("__sanitizer_cov_") || s.name.starts_with("__tsan_func_") || s.name == "__tsan_atomic_signal_fence");
        if self.opts.hack_noinstr && self.p.sections[sec].noinstr && profiling {
            // objtool rewrites such calls in place: a NOP, or `ret; int3` for a tail call.
            let len = self.p.insns[id as usize].len;
            if sibling {
                self.overwrite_insn(id, crate::edits::ret_bytes(len), "RET");
            } else {
                self.overwrite_insn(id, crate::edits::nop_bytes(len).map(<[u8]>::to_vec), "NOP");
            }
            let insn = &mut self.p.insns[id as usize];
            insn.kind = if sibling { InsnKind::Return } else { InsnKind::Nop };
            if sibling {
                insn.set_retpoline_safe(true);
            }
            return;
        }
        if self.opts.mcount && s.fentry {
            if sibling {
                self.warn_insn(id, "tail call to __fentry__ !?!?".to_string());
            }
            if self.opts.mnop {
                let len = self.p.insns[id as usize].len;
                self.overwrite_insn(id, crate::edits::nop_bytes(len).map(<[u8]>::to_vec), "NOP");
                self.p.insns[id as usize].kind = InsnKind::Nop;
            }
            self.sites.mcount_loc.push(id);
            return;
        }
        let init = self.p.sections[sec].name == ".init.text" && !self.opts.module;
        if self.p.insns[id as usize].kind == InsnKind::Call && !init {
            self.sites.calls.push(id);
        }
        if !sibling && self.dead_end_function_memo(sym) {
            self.p.insns[id as usize].set_dead_end(true);
        }
    }

    /// [`Checker::dead_end_function`] of `sym`, computed once: vmlinux.o calls some functions
    /// from thousands of places, and the answer does not change while calls are annotated
    /// (it reads returns and sibling calls, which are all known by then).
    fn dead_end_function_memo(&mut self, sym: SymId) -> bool {
        if let Some(&known) = self.dead_end_memo.get(&sym) {
            return known;
        }
        let dead = self.dead_end_function(Some(sym), 0);
        self.dead_end_memo.insert(sym, dead);
        dead
    }

    /// True for a function that never returns: named in the kernel's list, or a local
    /// function without a `ret` whose tail calls (followed five deep) do not return either.
    pub(crate) fn dead_end_function(&self, func: Option<SymId>, recursion: u32) -> bool {
        let Some(func) = func else { return false };
        let s = &self.p.symbols[func as usize];
        match self.noreturns.verdict(s.name, s.bind) {
            NoreturnVerdict::Noreturn => return true,
            NoreturnVerdict::Returns => return false,
            NoreturnVerdict::Analyse => {}
        }
        if s.len == 0 {
            return false;
        }
        let Some(sec) = s.sec else { return false };
        let Some(first) = self.p.find_insn(sec, s.offset) else { return false };
        if self.p.insn_func(first).is_none() {
            return false;
        }
        let mut empty = true;
        let mut it = Some(first);
        while let Some(id) = it {
            empty = false;
            if self.p.insns[id as usize].kind == InsnKind::Return {
                return false;
            }
            it = self.next_insn_same_func(id);
        }
        if empty {
            return false;
        }
        let mut it = Some(first);
        while let Some(id) = it {
            if self.is_sibling_call(id) {
                let Some(dest) = self.p.insns[id as usize].jump_dest.get() else {
                    return false;
                };
                if recursion == 5 {
                    return false;
                }
                return self.dead_end_function(self.p.insn_func(dest), recursion + 1);
            }
            it = self.next_insn_same_func(id);
        }
        true
    }

    /// The next instruction of the same function, moving into its `.cold` part at the end.
    pub(crate) fn next_insn_same_func(&self, id: InsnId) -> Option<InsnId> {
        let func = self.p.insn_func(id)?;
        let next = self.p.next_in_sec(id);
        if let Some(n) = next {
            if self.p.insn_func(n) == Some(func) {
                return Some(n);
            }
        }
        let cfunc = self.p.symbols[func as usize].cfunc;
        if cfunc == func {
            return None;
        }
        let c = &self.p.symbols[cfunc as usize];
        self.p.find_insn(c.sec?, c.offset)
    }

    /// objtool's `add_jump_destinations`.
    pub(crate) fn add_jump_destinations(&mut self) -> Result<(), Fatal> {
        for id in 0..self.p.insns.len() as InsnId {
            let insn = &self.p.insns[id as usize];
            if insn.fake() || insn.jump_dest.is_some() || !insn.kind.is_static_jump() {
                continue;
            }
            let func = self.p.insn_func(id);
            let (dest_sec, dest_off) = match self.p.insn_reloc(id).copied() {
                None => (insn.sec as usize, insn.end().wrapping_add(insn.immediate as u64)),
                Some(r) => {
                    let rs = &self.p.symbols[r.symbol];
                    if rs.kind == SymbolKind::Section {
                        match rs.sec {
                            Some(sec) => (sec, dest_reloc_offset(r.addend)),
                            None => continue,
                        }
                    } else if rs.retpoline_thunk {
                        self.add_retpoline_call(id);
                        continue;
                    } else if rs.return_thunk {
                        self.add_return_call(id, true);
                        continue;
                    } else if func.is_some() {
                        // A sibling call to another function, external or local.
                        self.add_call_dest(id, Some(r.symbol as SymId), true);
                        continue;
                    } else if let Some(sec) = rs.sec {
                        (sec, rs.offset.wrapping_add(dest_reloc_offset(r.addend)))
                    } else {
                        // Non-function asm code jumping to another file.
                        continue;
                    }
                }
            };
            let Some(dest) = self.p.find_insn(dest_sec, dest_off) else {
                if let Some(sym) = self.p.find_symbol_by_offset(dest_sec, dest_off) {
                    if self.p.symbols[sym as usize].embedded_insn {
                        self.add_return_call(id, false);
                        continue;
                    }
                }
                if self.ignore_unreachables {
                    if let Some(f) = func {
                        let f = &self.p.symbols[f as usize];
                        if dest_sec == self.p.insns[id as usize].sec as usize && dest_off == f.offset.saturating_add(f.len) {
                            continue;
                        }
                    }
                }
                let where_ = self.p.offstr(self.p.insns[id as usize].sec as usize, self.p.insns[id as usize].offset);
                return Err(Fatal::at(
                    where_,
                    format!("can't find jump dest instruction at {}+0x{:x}", self.p.sections[dest_sec].name, dest_off),
                ));
            };
            // An intra-object jump to a thunk without a relocation.
            if let Some(ds) = self.p.insns[dest as usize].sym.get() {
                let s = &self.p.symbols[ds as usize];
                if self.p.insns[dest as usize].offset == s.offset {
                    if s.retpoline_thunk {
                        self.add_retpoline_call(id);
                        continue;
                    }
                    if s.return_thunk {
                        self.add_return_call(id, true);
                        continue;
                    }
                }
            }
            // A jump into another function's `.cold` part makes it that function's child
            // (objtool up to 6.x; 7.x keeps the parents it found by name).
            if let (false, Some(f), Some(df)) = (self.era.cold_parents_by_file_scope(), func, self.p.insn_func(dest)) {
                if f != df && !self.p.symbols[f as usize].name.contains(".cold") && self.p.symbols[df as usize].name.contains(".cold") {
                    self.p.symbols[f as usize].cfunc = df;
                    self.p.symbols[df as usize].pfunc = f;
                }
            }
            if self.jump_is_sibling_call(id, dest) {
                let df = self.p.insn_func(dest);
                self.add_call_dest(id, df, true);
                continue;
            }
            self.p.insns[id as usize].jump_dest = Some(dest).into();
        }
        Ok(())
    }

    /// objtool's `find_call_destination`: a function at the offset, else any symbol.
    fn find_call_destination(&self, sec: usize, offset: u64) -> Option<SymId> {
        self.p.find_func_by_offset(sec, offset).or_else(|| self.p.find_symbol_by_offset(sec, offset))
    }

    /// objtool's `add_call_destinations`.
    pub(crate) fn add_call_destinations(&mut self) -> Result<(), Fatal> {
        for id in 0..self.p.insns.len() as InsnId {
            let insn = &self.p.insns[id as usize];
            if insn.fake() || insn.kind != InsnKind::Call {
                continue;
            }
            let sec = insn.sec as usize;
            match self.p.insn_reloc(id).copied() {
                None => {
                    let dest_off = insn.end().wrapping_add(insn.immediate as u64);
                    let dest = self.find_call_destination(sec, dest_off);
                    self.add_call_dest(id, dest, false);
                    if self.p.insns[id as usize].ignore() {
                        continue;
                    }
                    let where_ = || self.p.offstr(sec, self.p.insns[id as usize].offset);
                    let Some(d) = self.call_dest(id) else {
                        if !self.opts.assume_intra_function_calls {
                            return Err(Fatal::at(where_(), "unannotated intra-function call"));
                        }
                        // objtool gives up on the whole object here. A call to a place no
                        // symbol starts is what ANNOTATE_INTRA_FUNCTION_CALL marks (RSB
                        // stuffing, retpoline-style sequences); the annotation is gone from
                        // linked modules. Treat it as one, keep objtool's warning, and say so.
                        let location = where_();
                        self.warnings.push(crate::Warning { location: Some(location.clone()), message: "unannotated intra-function call".into() });
                        self.assumptions.push(format!("{location}: assumed an annotated intra-function call (a jump that pushes a return address)"));
                        let Some(dest) = self.p.find_insn(sec, dest_off) else {
                            return Err(Fatal::at(location, format!("can't find call dest at {}+0x{:x}", self.p.sections[sec].name, dest_off)));
                        };
                        let insn = &mut self.p.insns[id as usize];
                        insn.kind = InsnKind::JumpUnconditional;
                        insn.jump_dest = Some(dest).into();
                        continue;
                    };
                    if self.p.insn_func(id).is_some() && !self.p.symbols[d as usize].is_func() {
                        return Err(Fatal::at(where_(), "unsupported call to non-function"));
                    }
                }
                Some(r) => {
                    let rs = &self.p.symbols[r.symbol];
                    if rs.kind == SymbolKind::Section {
                        let dest_off = dest_reloc_offset(r.addend);
                        let rsec = rs.sec.unwrap_or(0);
                        let Some(dest) = self.find_call_destination(rsec, dest_off) else {
                            return Err(Fatal::at(
                                self.p.offstr(sec, self.p.insns[id as usize].offset),
                                format!("can't find call dest symbol at {}+0x{:x}", self.p.sections[rsec].name, dest_off),
                            ));
                        };
                        self.add_call_dest(id, Some(dest), false);
                    } else if rs.retpoline_thunk {
                        self.add_retpoline_call(id);
                    } else {
                        self.add_call_dest(id, Some(r.symbol as SymId), false);
                    }
                }
            }
        }
        Ok(())
    }
}
