//! objtool's `--noinstr` and `--unret` rules, which kbuild asks for on `vmlinux.o` (configs
//! with `CONFIG_NOINSTR_VALIDATION`, and `--unret` with the untrained-return mitigations).
//!
//! - **noinstr**: code in `.noinstr.text` and the other noinstr sections runs where the kernel
//!   cannot yet take an instrumentation hook (entry, idle). On a path that starts in such a
//!   section, a call must go to noinstr code too (or to a static-call trampoline, or a
//!   `__ubsan_handle_*` report), unless the path is inside an
//!   `instrumentation_begin()`/`instrumentation_end()` pair (`.discard.instr_begin`/`_end`
//!   annotations, counted per path), and a return must not happen inside such a pair. An
//!   indirect call through `pv_ops[i]` is allowed when every function the kernel may put in
//!   that slot is noinstr: the slots' initial values in the `pv_ops` table (and the Xen tables
//!   that fill it), plus `movq $func, pv_ops+off(%rip)` in `.init.text`.
//! - **unret**: from each `.discard.validate_unret` entry point (entry code that must untrain
//!   the return predictor), every path must reach the untraining before any `ret`, indirect
//!   branch or call that returns.
//!
//! Only meaningful on a whole linked object (`--link`): a call's destination section is
//! unknown for symbols defined elsewhere, so they count as instrumentable.

use std::collections::HashSet;

use orc_decode::InsnKind;

use crate::program::{InsnId, SymId};
use crate::report::Fatal;
use crate::Checker;

/// The tables whose initial values say what may land in a `pv_ops` slot.
const PV_OPS_TABLES: [&str; 4] = ["pv_ops", "xen_cpu_ops", "xen_irq_ops", "xen_mmu_ops"];

/// Functions the kernel patches into native code instead of calling (`paravirt_patch`).
const PATCHED_INLINE: [&str; 2] = ["_paravirt_nop", "_paravirt_ident_64"];

/// `visited` bit of the unret walk (the branch walk uses the two low bits).
const VISITED_UNRET: u8 = 0x04;

/// One `pv_ops` slot: what may be called through it, and whether all of it is noinstr
/// (decided, with warnings, at the first call from noinstr code).
#[derive(Clone, Debug, Default)]
pub(crate) struct PvSlot {
    /// Possible targets, most recently found first (as objtool lists them).
    targets: Vec<SymId>,
    clean: bool,
}

/// The `pv_ops` model: `None` without `--noinstr` or without a `pv_ops` symbol.
#[derive(Clone, Debug, Default)]
pub(crate) struct PvOps {
    slots: Vec<PvSlot>,
    /// Functions already in some slot's list (objtool adds a function once, to the first
    /// slot it is found for).
    listed: HashSet<SymId>,
}

impl Checker<'_> {
    /// objtool's `init_pv_ops` and the `.init.text` stores it finds while decoding.
    pub(crate) fn init_pv_ops(&mut self) -> Result<(), Fatal> {
        if !self.opts.noinstr {
            return Ok(());
        }
        let Some(pv) = self.p.find_symbol_by_name("pv_ops") else { return Ok(()) };
        let n = (self.p.symbols[pv as usize].len / 8) as usize;
        self.pv_ops = Some(PvOps { slots: vec![PvSlot::default(); n], listed: HashSet::new() });
        for table in PV_OPS_TABLES {
            let Some(t) = self.p.find_symbol_by_name(table) else { continue };
            let sym = &self.p.symbols[t as usize];
            let Some(sec) = sym.sec else { continue };
            let (start, end) = (sym.offset, sym.offset.saturating_add(sym.len));
            let relocs: Vec<_> = self.p.sections[sec]
                .relocs
                .iter()
                .filter(|r| r.offset >= start && r.offset < end)
                .copied()
                .collect();
            let mut last = None;
            for r in relocs {
                // objtool walks the range by "first relocation at or after", one per offset.
                if last == Some(r.offset) {
                    continue;
                }
                last = Some(r.offset);
                let Some(func) = self.reloc_target_symbol(r.symbol, r.addend) else { continue };
                self.pv_add(((r.offset - start) / 8) as usize, func);
            }
        }
        // `movq $func, pv_ops+off(%rip)` in `.init.text`: 11 bytes, the table's address at
        // +3 (PC-relative, addend off - 8), the function at +7.
        for si in 0..self.p.sections.len() {
            if !self.p.sections[si].name.starts_with(".init.text") {
                continue;
            }
            for id in self.p.sections[si].insns.clone() {
                let insn = &self.p.insns[id as usize];
                if insn.len != 11 || !is_mov_imm_to_memory(self.p.sections[si].data, insn.offset) {
                    continue;
                }
                let offset = insn.offset;
                let Some(table) = self.p.reloc_in(si, offset + 3, 1).copied() else { continue };
                if self.p.symbols.get(table.symbol).map(|s| s.name) != Some("pv_ops") {
                    continue;
                }
                let idx = (table.addend.wrapping_add(8) as u64 / 8) as usize;
                let func = self
                    .p
                    .reloc_in(si, offset + 7, 1)
                    .copied()
                    .and_then(|d| self.reloc_target_symbol(d.symbol, d.addend));
                let Some(func) = func else { return Err(Fatal::new("no func for pv_ops[]")) };
                self.pv_add(idx, func);
            }
        }
        Ok(())
    }

    /// A relocation's symbol, or for a section symbol the symbol at the addend.
    fn reloc_target_symbol(&self, symbol: usize, addend: i64) -> Option<SymId> {
        let s = self.p.symbols.get(symbol)?;
        if s.kind == orc_elf::SymbolKind::Section {
            return self.p.find_symbol_by_offset(s.sec?, addend as u64);
        }
        Some(symbol as SymId)
    }

    /// objtool's `objtool_pv_add`.
    fn pv_add(&mut self, idx: usize, func: SymId) {
        let name = self.p.symbols[func as usize].name;
        let Some(pv) = self.pv_ops.as_mut() else {
            self.warn("paravirt confusion".to_string());
            return;
        };
        if PATCHED_INLINE.contains(&name) || pv.listed.contains(&func) {
            return;
        }
        // objtool indexes its array unchecked; a slot past the table cannot be called.
        let Some(slot) = pv.slots.get_mut(idx) else { return };
        pv.listed.insert(func);
        slot.targets.insert(0, func);
        slot.clean = false;
    }

    /// objtool's `pv_call_dest`: an indirect call through `pv_ops[i]` stays noinstr if every
    /// possible target is; the first such call reports the targets that are not.
    fn pv_call_dest(&mut self, id: InsnId) -> bool {
        let Some(r) = self.p.insn_reloc(id).copied() else { return false };
        if self.p.symbols.get(r.symbol).map(|s| s.name) != Some("pv_ops") {
            return false;
        }
        // The slot is at addend + 4 (the displacement ends 4 bytes before the next instruction).
        let idx = (r.addend.wrapping_add(4) as u64 / 8) as i32;
        let Some(slot) = usize::try_from(idx).ok().and_then(|i| self.pv_ops.as_ref()?.slots.get(i)) else {
            return false;
        };
        if slot.clean {
            return true;
        }
        let targets = slot.targets.clone();
        let mut clean = true;
        for t in targets {
            let sym = &self.p.symbols[t as usize];
            if !sym.sec.is_some_and(|s| self.p.sections[s].noinstr) {
                let message = format!("pv_ops[{idx}]: {}", sym.name);
                self.warn(message);
                clean = false;
            }
        }
        if let Some(slot) = self.pv_ops.as_mut().and_then(|p| p.slots.get_mut(idx as usize)) {
            slot.clean = clean;
        }
        clean
    }

    /// objtool's `noinstr_call_dest`.
    pub(crate) fn noinstr_call_dest(&mut self, id: InsnId, func: Option<SymId>) -> bool {
        let Some(func) = func else {
            return self.pv_ops.is_some() && self.pv_call_dest(id);
        };
        let sym = &self.p.symbols[func as usize];
        sym.sec.is_some_and(|s| self.p.sections[s].noinstr)
            || sym.static_call_tramp
            || sym.name.starts_with("__ubsan_handle_")
    }

    /// The name objtool gives a call's destination in its messages: the symbol, else
    /// `{dynamic}`. (objtool has code to name a call through `pv_ops` `pv_ops[i]`, but it asks
    /// for the relocation without the file, which always answers none: calls through the
    /// table are `{dynamic}` in its messages too.)
    pub(crate) fn call_dest_name(&self, id: InsnId) -> String {
        match self.call_dest(id) {
            Some(s) => self.p.symbols[s as usize].name.to_string(),
            None => "{dynamic}".to_string(),
        }
    }

    /// objtool's `validate_unrets`: every `.discard.validate_unret` entry point, in
    /// instruction order. A walk that cannot go on (an unresolved jump) gives up.
    pub(crate) fn validate_unrets(&mut self) -> Result<usize, Fatal> {
        let mut warnings = 0;
        for id in 0..self.p.insns.len() as InsnId {
            if !self.p.insns[id as usize].unret() {
                continue;
            }
            match self.validate_unret(id) {
                Ok(n) => warnings += n,
                Err(()) => {
                    let insn = &self.p.insns[id as usize];
                    return Err(Fatal::at(self.p.offstr(insn.sec as usize, insn.offset), "Failed UNRET validation"));
                }
            }
        }
        Ok(warnings)
    }

    /// objtool's `validate_unret`: 1 after a warning, `Err` where the walk cannot go on.
    fn validate_unret(&mut self, start: InsnId) -> Result<usize, ()> {
        let mut id = start;
        loop {
            let next = self.next_insn_to_validate(id);
            if self.visited[id as usize] & VISITED_UNRET != 0 {
                return Ok(0);
            }
            self.visited[id as usize] |= VISITED_UNRET;

            let insn = &self.p.insns[id as usize];
            if !insn.ignore_alts() {
                if !self.p.alts(id).is_empty() {
                    let alts = self.p.alts(id).to_vec();
                    let mut skip_orig = false;
                    for alt in alts.iter() {
                        skip_orig |= alt.skip_orig;
                        let r = self.validate_unret(alt.insn)?;
                        if r != 0 {
                            return Ok(r);
                        }
                    }
                    if skip_orig {
                        return Ok(0);
                    }
                }
            }

            let insn = &self.p.insns[id as usize];
            match insn.kind {
                InsnKind::CallDynamic | InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => {
                    self.warn_insn(id, "early indirect call".to_string());
                    return Ok(1);
                }
                InsnKind::JumpUnconditional | InsnKind::JumpConditional if !self.is_sibling_call(id) => {
                    let kind = insn.kind;
                    let Some(dest) = insn.jump_dest.get() else {
                        self.warn_insn(id, "unresolved jump target after linking?!?".to_string());
                        return Err(());
                    };
                    let r = self.validate_unret(dest)?;
                    if r != 0 {
                        return Ok(r);
                    }
                    if kind == InsnKind::JumpUnconditional {
                        return Ok(0);
                    }
                }
                InsnKind::JumpUnconditional | InsnKind::JumpConditional | InsnKind::Call => {
                    let Some(func) = self.call_dest(id) else { return Err(()) };
                    let sym = &self.p.symbols[func as usize];
                    let dest = sym.sec.and_then(|s| self.p.find_insn(s, sym.offset));
                    let Some(dest) = dest else {
                        let message = format!("Unresolved function after linking!?: {}", sym.name);
                        self.warn(message);
                        return Err(());
                    };
                    // A call that comes back without a warning went through the untraining.
                    return self.validate_unret(dest);
                }
                InsnKind::Return => {
                    self.warn_insn(id, "RET before UNTRAIN".to_string());
                    return Ok(1);
                }
                InsnKind::ContextSwitch if self.p.insn_func(id).is_none() => return Ok(0),
                InsnKind::Nop if insn.retpoline_safe() => return Ok(0),
                _ => {}
            }
            if self.p.insns[id as usize].dead_end() {
                return Ok(0);
            }
            let Some(next) = next else {
                self.warn_insn(id, "teh end!".to_string());
                return Err(());
            };
            id = next;
        }
    }
}

/// `mov $imm32, mem` (opcode `c7`) after any legacy and REX prefixes, as objtool's decoder
/// sees the opcode byte.
fn is_mov_imm_to_memory(data: &[u8], offset: u64) -> bool {
    let Some(bytes) = usize::try_from(offset).ok().and_then(|o| data.get(o..)) else { return false };
    bytes
        .iter()
        .take(15)
        .find(|&&b| !matches!(b, 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x40..=0x4f))
        == Some(&0xc7)
}
