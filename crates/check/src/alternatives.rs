//! Runtime-patched code as extra control flow: alternatives (`.altinstructions`), jump labels
//! (`__jump_table`) and exception fixups (`__ex_table`) become branches from the original
//! instruction, and each alternative site gets one shared per-byte CFI array across the
//! original and every replacement (the "union" rule of the 2017 thread).

use orc_decode::InsnKind;

use crate::program::{Alt, Insn, InsnId};
use crate::report::Fatal;
use crate::Checker;

/// One patch site entry, as objtool's `special_alt`: where the original is, where the new
/// code is, and how to treat it.
#[derive(Clone, Debug)]
pub struct SpecialAlt {
    /// An `.altinstructions` entry: the replacement is patched over the original in place.
    pub group: bool,
    /// A `__jump_table` entry: a NOP that becomes a JMP or the reverse.
    pub jump_or_nop: bool,
    /// Original code: section index and offset.
    pub orig_sec: usize,
    /// Original offset.
    pub orig_off: u64,
    /// Replacement (or jump target, or fixup): section index and offset; `None` for an empty
    /// replacement.
    pub new: Option<(usize, u64)>,
    /// Original length (groups only; nested ALTERNATIVE()s share the longest).
    pub orig_len: u8,
    /// Replacement length (groups only).
    pub new_len: u8,
    /// Follow only the alternatives, not the original (X86_FEATURE_POPCNT; SMAP with
    /// `--uaccess`).
    pub skip_orig: bool,
    /// Do not follow the alternatives (SMAP without `--uaccess`).
    pub skip_alt: bool,
    /// The jump label key's relocation addend (flag bits in the low bits).
    pub key_addend: i64,
    /// For `.altinstructions`: the CPU feature number and the patch flags (`ALT_FLAG_*`).
    pub feature: Option<(u16, u16)>,
}

/// An alternative group: the original instructions of a site, or one replacement.
#[derive(Clone, Debug)]
pub struct AltGroup {
    /// For a replacement: the original group. `None` for the original itself.
    pub orig_group: Option<u32>,
    /// First instruction.
    pub first_insn: InsnId,
    /// Last instruction (`None` for an empty replacement, which is only its padding NOP).
    pub last_insn: Option<InsnId>,
    /// The padding NOP objtool invents when the replacement is shorter than the original.
    pub nop: Option<InsnId>,
    /// Index of the shared per-byte CFI array in [`Checker::alt_cfi`].
    pub cfi: u32,
    /// For a replacement: the feature and flags that select it.
    pub feature: Option<(u16, u16)>,
}

impl Checker<'_> {
    fn fatal_at(&self, id: InsnId, msg: impl Into<String>) -> Fatal {
        let insn = &self.p.insns[id as usize];
        Fatal::at(self.p.offstr(insn.sec as usize, insn.offset), msg)
    }

    /// objtool's `handle_group_alt`: sets up the original group (once per site) and a
    /// replacement group, and returns the replacement's first instruction.
    fn handle_group_alt(&mut self, alt: &SpecialAlt, orig: InsnId, new: Option<InsnId>) -> Result<Option<InsnId>, Fatal> {
        let orig_group = match self.p.alt_group(orig) {
            None => {
                let cfi = self.alt_cfi.len() as u32;
                self.alt_cfi.push(vec![None; alt.orig_len as usize]);
                let g = self.groups.len() as u32;
                let end = alt.orig_off + u64::from(alt.orig_len);
                let mut last = orig;
                let mut it = Some(orig);
                while let Some(id) = it {
                    if self.p.insns[id as usize].offset >= end {
                        break;
                    }
                    self.p.set_alt_group(id, g);
                    last = id;
                    it = self.p.next_in_sec(id);
                }
                self.groups.push(AltGroup { orig_group: None, first_insn: orig, last_insn: Some(last), nop: None, cfi, feature: None });
                g
            }
            Some(g) => {
                let group = &self.groups[g as usize];
                let first = &self.p.insns[group.first_insn as usize];
                let last = &self.p.insns[group.last_insn.expect("original groups have a last instruction") as usize];
                let len = last.end() - first.offset;
                if len != u64::from(alt.orig_len) {
                    return Err(self.fatal_at(orig, format!("weirdly overlapping alternative! {len} != {}", alt.orig_len)));
                }
                g
            }
        };
        let cfi = self.groups[orig_group as usize].cfi;
        let new_group = self.groups.len() as u32;
        self.groups.push(AltGroup { orig_group: Some(orig_group), first_insn: orig, last_insn: None, nop: None, cfi, feature: alt.feature });

        let orig_sym = self.p.insns[orig as usize].sym.get();
        let ignore = self.p.insns[orig as usize].ignore_alts();
        let mut nop = None;
        if alt.new_len < alt.orig_len {
            // Pad the replacement to the original's length with a fake NOP, so that the state
            // after its last instruction lands in the shared array at the original's end.
            let (new_sec, new_off) = alt.new.unwrap_or((alt.orig_sec, alt.orig_off));
            let id = self.p.insns.len() as InsnId;
            let mut pad = Insn::fake_nop(new_sec as u32, new_off + u64::from(alt.new_len), alt.orig_len - alt.new_len);
            pad.sym = orig_sym.into();
            pad.set_ignore(ignore);
            self.p.insns.push(pad);
            self.p.set_alt_group(id, new_group);
            nop = Some(id);
        }

        let first;
        let mut last_new = None;
        if alt.new_len == 0 {
            first = nop;
        } else {
            let Some(start) = new else { return Ok(None) };
            first = Some(start);
            let (new_sec, new_off) = alt.new.expect("checked by caller");
            let end = new_off + u64::from(alt.new_len);
            let orig_last = self.groups[orig_group as usize].last_insn.expect("original groups have a last instruction");
            let mut it = Some(start);
            while let Some(id) = it {
                if self.p.insns[id as usize].offset >= end {
                    break;
                }
                last_new = Some(id);
                {
                    let insn = &mut self.p.insns[id as usize];
                    insn.set_ignore(ignore);
                    insn.sym = (orig_sym).into();
                }
                self.p.set_alt_group(id, new_group);
                // (objtool rejects PC-relative relocations in replacements on architectures
                // that cannot fix them up when patching; x86 fixes them all.)
                let insn = &self.p.insns[id as usize];
                if insn.kind.is_static_jump() && insn.immediate != 0 {
                    let dest = insn.end().wrapping_add(insn.immediate as u64);
                    if dest == end {
                        // A jump to the end of the replacement continues after the original.
                        let Some(after) = self.p.next_in_sec(orig_last) else {
                            return Err(self.fatal_at(id, "can't find alternative jump destination"));
                        };
                        self.p.insns[id as usize].jump_dest = Some(after).into();
                    }
                }
                it = self.p.next_in_sec(id);
            }
            if last_new.is_none() {
                return Err(Fatal::at(self.p.offstr(new_sec, new_off), "can't find last new alternative instruction"));
            }
        }
        let g = &mut self.groups[new_group as usize];
        g.first_insn = first.unwrap_or(orig);
        g.last_insn = last_new;
        g.nop = nop;
        Ok(first)
    }

    /// objtool's `handle_jump_alt`: a jump label site must be a NOP or a JMP. For a NOP the
    /// alternative is the jump target; for a JMP it is the next instruction.
    fn handle_jump_alt(&mut self, alt: &SpecialAlt, orig: InsnId, new: Option<InsnId>) -> Result<Option<InsnId>, Fatal> {
        let kind = self.p.insns[orig as usize].kind;
        if kind != InsnKind::JumpUnconditional && kind != InsnKind::Nop {
            return Err(self.fatal_at(orig, "unsupported instruction at jump label"));
        }
        if self.opts.hack_jump_label && alt.key_addend & 2 != 0 {
            // The site was emitted as a JMP for objtool to NOP (see `edits`).
            let len = self.p.insns[orig as usize].len;
            self.overwrite_insn(orig, crate::edits::nop_bytes(len).map(<[u8]>::to_vec), "NOP");
            self.p.insns[orig as usize].kind = InsnKind::Nop;
        }
        if self.p.insns[orig as usize].kind == InsnKind::Nop {
            return Ok(new);
        }
        Ok(self.p.next_in_sec(orig))
    }

    /// objtool's `add_special_section_alts`: `alts` in the order objtool reads them
    /// (`.altinstructions`, then `__jump_table`, then `__ex_table`, each in entry order).
    pub(crate) fn add_special_section_alts(&mut self, alts: &[SpecialAlt]) -> Result<(), Fatal> {
        for alt in alts {
            let Some(orig) = self.p.find_insn(alt.orig_sec, alt.orig_off) else {
                return Err(Fatal::at(self.p.offstr(alt.orig_sec, alt.orig_off), "special: can't find orig instruction"));
            };
            let mut new = None;
            if !alt.group || alt.new_len != 0 {
                let (ns, no) = alt.new.unwrap_or((0, 0));
                new = self.p.find_insn(ns, no);
                if new.is_none() {
                    return Err(Fatal::at(self.p.offstr(ns, no), "special: can't find new instruction"));
                }
            }
            let target = if alt.group {
                if alt.orig_len == 0 {
                    self.warn_insn(orig, "empty alternative entry".to_string());
                    continue;
                }
                self.handle_group_alt(alt, orig, new)?
            } else if alt.jump_or_nop {
                self.handle_jump_alt(alt, orig, new)?
            } else {
                new
            };
            let ignore_alts = self.p.insns[orig as usize].ignore_alts() | alt.skip_alt;
            self.p.insns[orig as usize].set_ignore_alts(ignore_alts);
            if let Some(t) = target {
                self.p.push_alt_front(orig, Alt { insn: t, skip_orig: alt.skip_orig });
            }
        }
        Ok(())
    }
}
