//! Everything objtool learns before walking (its `decode_sections`), in its order: ignored
//! functions, annotations, patch sites, branch and call targets, dead ends, jump tables,
//! unwind hints. Special sections come parsed from `orc-flow`; this module turns them into
//! facts about instructions.

use orc_decode::InsnKind;
use orc_flow::special::alternatives::read_alternatives_for;
use orc_flow::special::annotations::{read_annotation_section, read_non_standard_frames, separate_sections, Annotation, AnnotationKind, NonStandardTarget};
use orc_flow::special::extable::read_extable;
use orc_flow::special::hints::{read_unwind_hints_for, HintKind, UnwindHint};
use orc_flow::special::jump_table::read_jump_table_for;
use orc_flow::Location;

use orc_elf::ElfFile;
use orc_stack::{Hint, HintAction, HintReader, HintType};

use crate::alternatives::SpecialAlt;
use crate::program::InsnId;
use crate::report::Fatal;
use crate::Checker;

fn special(e: impl std::fmt::Display) -> Fatal {
    Fatal::new(e.to_string())
}

/// A hint record in `orc-stack`'s terms. The walker has no rule for the 5.7-5.11 RET_OFFSET
/// hint: like a type number the era does not define, it becomes a state hint whose frame type
/// is the stored number. The `end` bit of pre-6.4 records is not carried (the rows are made
/// with the 6.4+ mapping, which has no use for it).
fn stack_hint(hint: &UnwindHint<'_>) -> Hint {
    let hint_type = match hint.kind {
        HintKind::Undefined => HintType::Undefined,
        HintKind::EndOfStack => HintType::EndOfStack,
        HintKind::Call => HintType::Call,
        HintKind::Regs => HintType::Regs,
        HintKind::RegsPartial => HintType::RegsPartial,
        HintKind::Func => HintType::Func,
        HintKind::Entry => HintType::Entry,
        HintKind::Save => HintType::Save,
        HintKind::Restore => HintType::Restore,
        HintKind::RetOffset | HintKind::Unknown => HintType::Other(hint.raw_type),
    };
    Hint { hint_type, sp_reg: hint.sp_reg, sp_offset: hint.sp_offset, signal: hint.signal.unwrap_or(false), end: false }
}

impl Checker<'_> {
    fn insn_at(&self, loc: Location) -> Option<InsnId> {
        self.p.find_insn(loc.section, loc.offset)
    }

    /// objtool's `decode_sections` after decoding.
    pub(crate) fn decode_sections(&mut self, file: &ElfFile<'_>) -> Result<(), Fatal> {
        if self.opts.uaccess {
            let names: Vec<&str> = crate::lists::UACCESS_SAFE
                .iter()
                .copied()
                .filter(|n| self.p.find_symbol_by_name(n).is_some())
                .collect();
            self.uaccess_safe = names;
        }
        self.init_pv_ops()?;
        self.add_ignores(file)?;

        let mut annotations: Vec<Annotation<'_>> = Vec::new();
        for (name, kind, rule) in separate_sections(self.era) {
            annotations.extend(read_annotation_section(file, name, kind, rule).map_err(special)?);
        }
        let of = |kind: AnnotationKind| annotations.iter().filter(move |a| a.kind == kind);

        for a in of(AnnotationKind::IgnoreAlts) {
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.ignore_alts entry")) };
            self.p.insns[id as usize].set_ignore_alts(true);
        }
        for a in of(AnnotationKind::NoEndbr) {
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.noendbr entry")) };
            self.p.insns[id as usize].set_noendbr(true);
        }

        if self.opts.stackval || self.opts.orc || self.opts.uaccess || self.opts.noinstr || self.opts.hack_jump_label {
            let alts = self.special_alts(file)?;
            self.add_special_section_alts(&alts)?;
        }
        self.add_jump_destinations()?;

        for a in of(AnnotationKind::IntraFunctionCall) {
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.intra_function_call entry")) };
            if self.p.insns[id as usize].kind != InsnKind::Call {
                let insn = &self.p.insns[id as usize];
                return Err(Fatal::at(self.p.offstr(insn.sec as usize, insn.offset), "intra_function_call not a direct call"));
            }
            // A call that stays in the function: a jump that keeps its push.
            let insn = &mut self.p.insns[id as usize];
            insn.kind = InsnKind::JumpUnconditional;
            let (sec, dest) = (insn.sec as usize, insn.end().wrapping_add(insn.immediate as u64));
            match self.p.find_insn(sec, dest) {
                Some(d) => self.p.insns[id as usize].jump_dest = Some(d).into(),
                None => {
                    let insn = &self.p.insns[id as usize];
                    return Err(Fatal::at(
                        self.p.offstr(sec, insn.offset),
                        format!("can't find call dest at {}+0x{:x}", self.p.sections[sec].name, dest),
                    ));
                }
            }
        }

        self.add_call_destinations()?;

        // ud2 may be annotated reachable (WARN()); older kernels also annotate dead ends.
        let unreachable_too = !self.era.at_least(6, 6);
        for a in annotations.iter().filter(|a| a.kind == AnnotationKind::Reachable || (unreachable_too && a.kind == AnnotationKind::Unreachable)) {
            let sec = a.site.section;
            let target = match self.insn_at(a.site) {
                Some(id) => self.p.prev_in_sec(id),
                None if a.site.offset == self.p.sections[sec].size => self.find_last_insn(sec),
                None => None,
            };
            let what = if a.kind == AnnotationKind::Reachable { "reachable" } else { "unreachable" };
            let Some(id) = target else {
                return Err(Fatal::new(format!("can't find {what} insn at {}+0x{:x}", self.p.sections[sec].name, a.site.offset)));
            };
            self.p.insns[id as usize].set_dead_end(a.kind == AnnotationKind::Unreachable);
        }

        self.add_jump_table_alts()?;
        self.read_unwind_hints(file)?;

        for a in of(AnnotationKind::RetpolineSafe) {
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.retpoline_safe entry")) };
            let insn = &self.p.insns[id as usize];
            if !matches!(insn.kind, InsnKind::JumpDynamic | InsnKind::CallDynamic | InsnKind::Return | InsnKind::Nop) {
                return Err(Fatal::at(self.p.offstr(insn.sec as usize, insn.offset), "retpoline_safe hint not an indirect jump/call/ret/nop"));
            }
            self.p.insns[id as usize].set_retpoline_safe(true);
        }
        for a in of(AnnotationKind::InstrEnd) {
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.instr_end entry")) };
            let insn = &mut self.p.insns[id as usize];
            insn.instr = insn.instr.wrapping_sub(1);
        }
        for a in of(AnnotationKind::InstrBegin) {
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.instr_begin entry")) };
            let insn = &mut self.p.insns[id as usize];
            insn.instr = insn.instr.wrapping_add(1);
        }
        for a in of(AnnotationKind::UnretBegin) {
            // objtool's message names the wrong section here; kept, as it is what users see.
            let Some(id) = self.insn_at(a.site) else { return Err(Fatal::new("bad .discard.instr_end entry")) };
            self.p.insns[id as usize].set_unret(true);
        }
        Ok(())
    }

    /// The last instruction of a section, looking back at most 10 bytes (objtool's
    /// `find_last_insn`).
    fn find_last_insn(&self, sec: usize) -> Option<InsnId> {
        let size = self.p.sections[sec].size;
        let end = size.saturating_sub(10);
        let mut off = size.checked_sub(1)?;
        loop {
            if let Some(id) = self.p.find_insn(sec, off) {
                return Some(id);
            }
            if off == end || off == 0 {
                return None;
            }
            off -= 1;
        }
    }

    /// `STACK_FRAME_NON_STANDARD`: every instruction of the function is ignored.
    fn add_ignores(&mut self, file: &ElfFile<'_>) -> Result<(), Fatal> {
        let frames = read_non_standard_frames(file).map_err(special)?;
        for frame in frames {
            let func = match frame.target {
                NonStandardTarget::Function { symbol, .. } => Some(symbol as u32),
                NonStandardTarget::FunctionAt(loc) => self.p.find_func_by_offset(loc.section, loc.offset),
                NonStandardTarget::Unsupported { kind } => {
                    self.warn(format!(
                        "unexpected relocation symbol type in .rela.discard.func_stack_frame_non_standard: {}",
                        elf_symbol_type(kind)
                    ));
                    continue;
                }
            };
            let Some(func) = func else { continue };
            let s = &self.p.symbols[func as usize];
            let Some(sec) = s.sec else { continue };
            let mut it = self.p.find_insn(sec, s.offset);
            while let Some(id) = it {
                self.p.insns[id as usize].set_ignore(true);
                it = self.next_insn_same_func(id);
            }
        }
        Ok(())
    }

    /// The patch sites, in objtool's order: `.altinstructions`, `__jump_table`, `__ex_table`.
    fn special_alts(&self, file: &ElfFile<'_>) -> Result<Vec<SpecialAlt>, Fatal> {
        let mut out = Vec::new();
        for a in read_alternatives_for(file, self.era).map_err(special)? {
            let policy = a.objtool_policy(self.opts.uaccess);
            out.push(SpecialAlt {
                group: true,
                jump_or_nop: false,
                orig_sec: a.orig.section,
                orig_off: a.orig.offset,
                new: a.replacement.map(|l| (l.section, l.offset)),
                orig_len: a.group_orig_len,
                new_len: a.repl_len,
                skip_orig: policy.skip_orig,
                skip_alt: policy.skip_alt,
                key_addend: 0,
                feature: Some((a.cpuid, a.flags.0)),
            });
        }
        for j in read_jump_table_for(file, self.era).map_err(special)? {
            out.push(SpecialAlt {
                group: false,
                jump_or_nop: true,
                orig_sec: j.code.section,
                orig_off: j.code.offset,
                new: Some((j.target.section, j.target.offset)),
                orig_len: 0,
                new_len: 0,
                skip_orig: false,
                skip_alt: false,
                key_addend: j.key_addend(),
                feature: None,
            });
        }
        for e in read_extable(file).map_err(special)? {
            out.push(SpecialAlt {
                group: false,
                jump_or_nop: false,
                orig_sec: e.insn.section,
                orig_off: e.insn.offset,
                new: Some((e.fixup.section, e.fixup.offset)),
                orig_len: 0,
                new_len: 0,
                skip_orig: false,
                skip_alt: false,
                key_addend: 0,
                feature: None,
            });
        }
        Ok(out)
    }

    /// objtool's `read_unwind_hints`: each record's state comes from `orc-stack`'s
    /// [`HintReader`], which carries objtool's running state from one record to the next
    /// (or takes the state an earlier record gave the same instruction).
    fn read_unwind_hints(&mut self, file: &ElfFile<'_>) -> Result<(), Fatal> {
        let hints = read_unwind_hints_for(file, self.era).map_err(special)?;
        if hints.is_empty() && file.section_by_name(".discard.unwind_hints").ok().flatten().is_none() {
            return Ok(());
        }
        self.hints = true;
        let mut reader = HintReader::new();
        for (i, hint) in hints.iter().enumerate() {
            let Some(id) = self.insn_at(hint.site) else {
                return Err(Fatal::new(format!("can't find insn for unwind_hints[{i}]")));
            };
            if hint.kind == HintKind::RegsPartial && self.opts.ibt {
                let insn = &self.p.insns[id as usize];
                if let Some(sym) = self.p.find_symbol_by_offset(insn.sec as usize, insn.offset) {
                    if self.p.is_global(sym) && insn.kind != InsnKind::Endbr && !insn.noendbr() {
                        self.warn_insn(id, "UNWIND_HINT_IRET_REGS without ENDBR".to_string());
                    }
                }
            }
            let current = self.insn_cfi[id as usize].map(|c| *self.cfi(c));
            let action = reader.apply(&stack_hint(hint), current.as_ref()).map_err(|e| {
                let insn = &self.p.insns[id as usize];
                Fatal::at(self.p.offstr(insn.sec as usize, insn.offset), e.to_string())
            })?;
            let insn = &mut self.p.insns[id as usize];
            insn.set_hint(action.is_hint());
            match action {
                HintAction::State(state) => {
                    let c = self.intern(&state);
                    self.insn_cfi[id as usize] = Some(c);
                }
                HintAction::Save => insn.set_save(true),
                HintAction::Restore => insn.set_restore(true),
                // Not produced: `stack_hint` keeps RET_OFFSET records a state hint.
                HintAction::RetOffset(_) => {}
            }
        }
        Ok(())
    }

    /// objtool's `validate_retpoline`: indirect branches and bare returns that are not
    /// annotated safe.
    pub(crate) fn validate_retpoline(&mut self) -> usize {
        let mut warnings = 0;
        for id in 0..self.p.insns.len() as InsnId {
            let insn = &self.p.insns[id as usize];
            if insn.fake() || insn.retpoline_safe() {
                continue;
            }
            let message = match insn.kind {
                InsnKind::JumpDynamic => "indirect jump found in MITIGATION_RETPOLINE build",
                InsnKind::CallDynamic => "indirect call found in MITIGATION_RETPOLINE build",
                InsnKind::Return if self.opts.rethunk => "'naked' return found in MITIGATION_RETHUNK build",
                _ => continue,
            };
            // .init.text needs no retpolines, except in modules (loaded late).
            if self.p.sections[insn.sec as usize].name == ".init.text" && !self.opts.module {
                continue;
            }
            self.warn_insn(id, message.to_string());
            warnings += 1;
        }
        warnings
    }
}

fn elf_symbol_type(kind: orc_elf::SymbolKind) -> u8 {
    match kind {
        orc_elf::SymbolKind::NoType => 0,
        orc_elf::SymbolKind::Object => 1,
        orc_elf::SymbolKind::Func => 2,
        orc_elf::SymbolKind::Section => 3,
        orc_elf::SymbolKind::File => 4,
        orc_elf::SymbolKind::Other(n) => n,
    }
}
