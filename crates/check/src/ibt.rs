//! Indirect Branch Tracking and straight-line-speculation rules (warnings only: they never
//! change the ORC table). objtool's `validate_ibt` and `validate_sls`.

use orc_decode::InsnKind;

use crate::program::InsnId;
use crate::Checker;

/// `R_X86_64_PC32` and `R_X86_64_PLT32`: relative to the end of the field.
fn is_pc_relative(kind: u32) -> bool {
    kind == 2 || kind == 4
}

/// Sections that reference code without meaning to branch there indirectly.
fn ignored_data_section(name: &str, era: orc_flow::KernelEra) -> bool {
    era.ibt_more_ignored_data_sections().contains(&name)
        || (name.starts_with(".discard") && name != ".discard.ibt_endbr_noseal")
        || name.starts_with(".debug")
        || matches!(
            name,
            ".altinstructions"
                | ".ibt_endbr_seal"
                | ".orc_unwind_ip"
                | ".parainstructions"
                | ".retpoline_sites"
                | ".smp_locks"
                | ".static_call_sites"
                | "_error_injection_whitelist"
                | "_kprobe_blacklist"
                | "__bug_table"
                | "__ex_table"
                | "__jump_table"
                | "__mcount_loc"
                | ".kcfi_traps"
        )
        || name.contains("__patchable_function_entries")
}

impl Checker<'_> {
    /// The instruction right after a symbol whose first instruction is ENDBR or annotated
    /// NOENDBR: a code-range end, not a branch target.
    fn noendbr_range(&self, dest: InsnId) -> bool {
        let insn = &self.p.insns[dest as usize];
        let Some(sym) = self.p.find_symbol_containing(insn.sec as usize, insn.offset.wrapping_sub(1)) else { return false };
        let s = &self.p.symbols[sym as usize];
        let Some(first) = s.sec.and_then(|sec| self.p.find_insn(sec, s.offset)) else { return false };
        let f = &self.p.insns[first as usize];
        if f.kind != InsnKind::Endbr && !f.noendbr() {
            return false;
        }
        // Checked: the symbol's size is the file's (the fuzz target `check_kernel` gave one that
        // overflowed).
        s.offset.checked_add(s.len) == Some(insn.offset)
    }

    fn validate_ibt_insn(&mut self, id: InsnId) -> usize {
        let insn = &self.p.insns[id as usize];
        if matches!(
            insn.kind,
            InsnKind::Call
                | InsnKind::CallDynamic
                | InsnKind::JumpConditional
                | InsnKind::JumpUnconditional
                | InsnKind::JumpDynamic
                | InsnKind::JumpDynamicConditional
                | InsnKind::Return
                | InsnKind::Nop
        ) {
            return 0;
        }
        let mut warnings = 0;
        let mut last = None;
        for k in 0..self.p.insn_relocs(id).len() {
            let r = self.p.insn_relocs(id)[k];
            // One relocation per offset, the first (as objtool's lookup by offset finds).
            if last == Some(r.offset) {
                continue;
            }
            last = Some(r.offset);
            let sym = &self.p.symbols[r.symbol];
            if sym.static_call_tramp && !self.era.ibt_checks_static_call_trampolines() {
                continue;
            }
            let Some(dsec) = sym.sec else { continue };
            let off = if is_pc_relative(r.kind) {
                sym.offset.wrapping_add(r.addend.wrapping_add(4) as u64)
            } else {
                sym.offset.wrapping_add(r.addend as u64)
            };
            let Some(dest) = self.p.find_insn(dsec, off) else { continue };
            let d = &self.p.insns[dest as usize];
            if d.kind == InsnKind::Endbr {
                self.sites.endbr_used.insert(dest);
                continue;
            }
            if let (Some(df), Some(f)) = (self.p.insn_func(dest), self.p.insn_func(id)) {
                if self.p.pfunc(df) == self.p.pfunc(f) {
                    continue;
                }
            }
            if d.noendbr() || self.noendbr_range(dest) {
                continue;
            }
            let target = self.p.offstr(dsec, d.offset);
            self.warn_insn(id, format!("relocation to !ENDBR: {target}"));
            warnings += 1;
        }
        warnings
    }

    /// objtool's `validate_ibt`: code and data that take the address of code must point at
    /// an ENDBR.
    pub(crate) fn validate_ibt(&mut self) -> usize {
        let mut warnings = 0;
        for si in 0..self.p.sections.len() {
            for id in self.p.sections[si].insns.clone() {
                warnings += self.validate_ibt_insn(id);
            }
        }
        for si in 0..self.p.sections.len() {
            let sec = &self.p.sections[si];
            if sec.exec || sec.relocs.is_empty() || ignored_data_section(sec.name, self.era) {
                continue;
            }
            for k in 0..self.p.sections[si].relocs.len() {
                let r = self.p.sections[si].relocs[k];
                let sym = &self.p.symbols[r.symbol];
                let Some(dsec) = sym.sec else { continue };
                let Some(dest) = self.p.find_insn(dsec, sym.offset.wrapping_add(r.addend as u64)) else { continue };
                let d = &self.p.insns[dest as usize];
                if d.kind == InsnKind::Endbr {
                    self.sites.endbr_used.insert(dest);
                    continue;
                }
                if d.noendbr() {
                    continue;
                }
                let target = self.p.offstr(dsec, d.offset);
                let location = self.p.offstr(si, r.offset);
                self.warnings.push(crate::Warning { location: Some(location), message: format!("data relocation to !ENDBR: {target}") });
                warnings += 1;
            }
        }
        warnings
    }

    /// objtool's `validate_sls`: a `ret` or indirect `jmp` must be followed by `int3`.
    pub(crate) fn validate_sls(&mut self) -> usize {
        let mut warnings = 0;
        for si in 0..self.p.sections.len() {
            for id in self.p.sections[si].insns.clone() {
                let insn = &self.p.insns[id as usize];
                if insn.retpoline_safe() {
                    continue;
                }
                let message = match insn.kind {
                    InsnKind::Return => "missing int3 after ret",
                    InsnKind::JumpDynamic => "missing int3 after indirect jump",
                    _ => continue,
                };
                let next_is_trap = self.p.next_in_sec(id).is_some_and(|n| self.p.insns[n as usize].kind == InsnKind::Trap);
                if !next_is_trap {
                    self.warn_insn(id, message.to_string());
                    warnings += 1;
                }
            }
        }
        warnings
    }
}
