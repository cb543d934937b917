//! Switch jump tables: a dynamic `jmp` whose targets are listed in `.rodata` becomes a branch
//! to each target (objtool's `add_jump_table_alts`). The kernel builds C with
//! `-fno-jump-tables`, so in modules these come from assembly (crc32c-intel); user space has
//! them everywhere.

use orc_decode::InsnKind;
use orc_elf::SymbolKind;

use rustc_hash::FxHashMap;

use crate::program::{Alt, InsnId, SymId};
use crate::report::Fatal;
use crate::Checker;

/// Tables objtool accepts even though a symbol covers them (C jump tables of the kernel).
const C_JUMP_TABLE_SECTION: &str = ".data.rel.ro.c_jump_table";
/// `R_X86_64_PC32`.
const PC32: u32 = 2;

impl Checker<'_> {
    /// objtool's x86 `arch_find_switch_table`: the instruction references an anonymous
    /// `.rodata` location that is itself relocated (the first table entry). Returns the
    /// table's first relocation as (section, index in its relocations).
    fn find_switch_table(&mut self, id: InsnId) -> Option<(u32, u32)> {
        let text_reloc = *self.p.insn_reloc(id)?;
        let sym = &self.p.symbols[text_reloc.symbol];
        if sym.kind != SymbolKind::Section {
            return None;
        }
        let table_sec = sym.sec?;
        if !self.p.sections[table_sec].rodata {
            return None;
        }
        let mut table_offset = text_reloc.addend as u64;
        if text_reloc.kind == PC32 {
            table_offset = table_offset.wrapping_add(4);
        }
        if self.p.find_symbol_containing(table_sec, table_offset).is_some() && self.p.sections[table_sec].name != C_JUMP_TABLE_SECTION {
            return None;
        }
        let idx = self.p.reloc_index_at(table_sec, table_offset)?;
        if text_reloc.kind == PC32 {
            // A RIP-relative switch jump: a GCC quirk that leaves dead code behind.
            self.ignore_unreachables = true;
        }
        Some((table_sec as u32, idx as u32))
    }

    fn table_target(&self, table: (u32, u32)) -> Option<(usize, u64)> {
        let r = self.p.sections[table.0 as usize].relocs.get(table.1 as usize)?;
        Some((self.p.symbols[r.symbol].sec?, r.addend as u64))
    }

    /// objtool's `find_jump_table`: walk back from the dynamic jump (using the first
    /// forward-jump source to skip blocks) to the instruction that loads the table.
    fn find_jump_table(&mut self, func: SymId, jump: InsnId, first_jump_src: &FxHashMap<InsnId, InsnId>) -> Option<(u32, u32)> {
        let mut it = Some(jump);
        while let Some(id) = it {
            let Some(f) = self.p.insn_func(id) else { break };
            if self.p.pfunc(f) != func {
                break;
            }
            let insn = &self.p.insns[id as usize];
            let next = first_jump_src.get(&id).copied().or_else(|| self.prev_insn_same_sym(id));
            if id != jump && insn.kind == InsnKind::JumpDynamic {
                break;
            }
            if insn.kind == InsnKind::JumpUnconditional {
                if let Some(d) = insn.jump_dest.get() {
                    let doff = self.p.insns[d as usize].offset;
                    if doff <= insn.offset || doff > self.p.insns[jump as usize].offset {
                        break;
                    }
                }
            }
            it = next;
            let Some(table) = self.find_switch_table(id) else { continue };
            let Some((sec, off)) = self.table_target(table) else { continue };
            let Some(dest) = self.p.find_insn(sec, off) else { continue };
            match self.p.insn_func(dest) {
                Some(df) if self.p.pfunc(df) == func => return Some(table),
                _ => continue,
            }
        }
        None
    }

    /// `first_jump_src`: for an instruction, the first earlier one that jumps forward to it
    /// (kept aside: few instructions have one, and the instruction record is kept small).
    fn mark_func_jump_tables(&mut self, func: SymId, first_jump_src: &mut FxHashMap<InsnId, InsnId>) {
        let s = &self.p.symbols[func as usize];
        let Some(sec) = s.sec else { return };
        let mut it = self.p.find_insn(sec, s.offset);
        while let Some(id) = it {
            if let Some(dest) = self.p.insns[id as usize].jump_dest.get() {
                let doff = self.p.insns[dest as usize].offset;
                if doff > self.p.insns[id as usize].offset {
                    first_jump_src.entry(dest).or_insert(id);
                }
            }
            if self.p.insns[id as usize].kind == InsnKind::JumpDynamic {
                if let Some(t) = self.find_jump_table(func, id, first_jump_src) {
                    self.p.set_jump_table(id, t);
                }
            }
            it = self.next_insn_same_func(id);
        }
    }

    /// objtool's `add_jump_table`: every consecutive 8-byte entry up to the next table,
    /// a gap, a pointer to the function's start, or a target outside the function.
    fn add_jump_table(&mut self, id: InsnId, next_table: Option<(u32, u32)>) -> Result<(), Fatal> {
        let Some(f) = self.p.insn_func(id) else { return Ok(()) };
        let pfunc = self.p.pfunc(f);
        let (pf_sec, pf_off, pf_len) = {
            let p = &self.p.symbols[pfunc as usize];
            (p.sec, p.offset, p.len)
        };
        let Some(table) = self.p.jump_table(id) else { return Ok(()) };
        let (tsec, start) = (table.0 as usize, table.1 as usize);
        let mut prev_offset = 0u64;
        let mut k = start;
        while k < self.p.sections[tsec].relocs.len() {
            if k != start && Some((tsec as u32, k as u32)) == next_table {
                break;
            }
            let r = self.p.sections[tsec].relocs[k];
            if prev_offset != 0 && r.offset != prev_offset + 8 {
                break;
            }
            let rsec = self.p.symbols[r.symbol].sec;
            let addend = r.addend as u64;
            if rsec == pf_sec && addend == pf_off {
                break;
            }
            if !(rsec == pf_sec && addend == pf_off + pf_len) {
                let Some(dest) = rsec.and_then(|s| self.p.find_insn(s, addend)) else { break };
                match self.p.insn_func(dest) {
                    Some(df) if self.p.pfunc(df) == pfunc => {}
                    _ => break,
                }
                self.p.push_alt_front(id, Alt { insn: dest, skip_orig: false });
            }
            prev_offset = r.offset;
            k += 1;
        }
        if prev_offset == 0 {
            let insn = &self.p.insns[id as usize];
            return Err(Fatal::at(self.p.offstr(insn.sec as usize, insn.offset), "can't find switch jump table"));
        }
        Ok(())
    }

    fn add_func_jump_tables(&mut self, func: SymId) -> Result<(), Fatal> {
        let s = &self.p.symbols[func as usize];
        let Some(sec) = s.sec else { return Ok(()) };
        let mut pending: Option<InsnId> = None;
        let mut it = self.p.find_insn(sec, s.offset);
        while let Some(id) = it {
            let insn = &self.p.insns[id as usize];
            if matches!(insn.kind, InsnKind::JumpDynamic | InsnKind::CallDynamic) {
                if let Some(t) = self.p.jump_table(id) {
                    if let Some(prev) = pending {
                        self.add_jump_table(prev, Some(t))?;
                    }
                    pending = Some(id);
                }
            }
            it = self.next_insn_same_func(id);
        }
        if let Some(prev) = pending {
            self.add_jump_table(prev, None)?;
        }
        Ok(())
    }

    /// objtool's `add_jump_table_alts`, for every function in symbol-table order.
    pub(crate) fn add_jump_table_alts(&mut self) -> Result<(), Fatal> {
        if !self.p.sections.iter().any(|s| s.rodata) {
            return Ok(());
        }
        let mut first_jump_src = FxHashMap::default();
        for f in 1..self.p.symbols.len() as SymId {
            if !self.p.symbols[f as usize].is_func() {
                continue;
            }
            self.mark_func_jump_tables(f, &mut first_jump_src);
            self.add_func_jump_tables(f)?;
        }
        Ok(())
    }
}
