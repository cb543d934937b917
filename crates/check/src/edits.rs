//! What objtool changes *inside* an object besides the sections it adds: instructions it
//! overwrites (and the relocations it neutralises with them) and the symbols it adds.
//!
//! A kernel linked from objects that lack these changes is not the kernel objtool builds: a
//! jump-label site that still holds its JMP where the kernel expects a NOP stops the boot
//! (`jump_label: Fatal kernel bug, unexpected op`). The analysis records each change here as a
//! value; `orc-elf`'s writer applies them.
//!
//! The changes, from objtool's `check()` (6.x):
//! - `--hacks=jump_label`: the compiler cannot know whether a 2- or 5-byte NOP fits a
//!   `static_branch` site, so the kernel's `arch_static_branch` emits a `jmp` and marks its
//!   `__jump_table` entry with bit 1 of the key's addend ("objtool NOPs this"). objtool writes
//!   a NOP of the instruction's length over it and makes the instruction's relocation
//!   `R_X86_64_NONE` ([`crate::alternatives`]); the kernel checks for that NOP when it patches.
//! - `--hacks=noinstr`: a call from `.noinstr.text` (and the other noinstr sections) to a
//!   KCOV/KCSAN hook becomes a NOP, a tail call to one `ret; int3` ([`crate::graph`]).
//! - `--mcount --mnop`: a call to `__fentry__` becomes a NOP ([`crate::graph`]).
//! - `--prefix=N`: every function preceded by exactly `N` bytes of NOPs gets a `__pfx_<name>`
//!   symbol over them ([`Checker::add_prefix_symbols`]); from 7.x (era rule), every function
//!   `__patchable_function_entries` points at.

use orc_decode::InsnKind;

pub use orc_elf::write::{InsnPatch, NewSymbol};

use crate::program::{InsnId, SymId};
use crate::Checker;

/// Everything objtool changes in the object, in the order it makes the changes.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Edits {
    /// Instructions overwritten.
    pub patches: Vec<InsnPatch>,
    /// Symbols added.
    pub symbols: Vec<NewSymbol>,
}

impl Edits {
    /// True when the object is left as it was (apart from added sections).
    pub fn is_empty(&self) -> bool {
        self.patches.is_empty() && self.symbols.is_empty()
    }
}

/// `STT_FUNC`: only functions get prefix symbols.
const STT_FUNC: u8 = 2;

/// The kernel's single-instruction NOPs of 1 to 5 bytes (`BYTES_NOP1`..`BYTES_NOP5` of
/// `arch/x86/include/asm/nops.h`), which objtool's `arch_nop_insn` writes.
const NOPS: [&[u8]; 5] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
];

/// What objtool's `arch_nop_insn(len)` gives: `None` outside 1-5 bytes.
pub fn nop_bytes(len: u8) -> Option<&'static [u8]> {
    NOPS.get(usize::from(len).checked_sub(1)?).copied()
}

/// What objtool's `arch_ret_insn(len)` gives: `ret`, then `int3`, then a NOP of the rest.
pub fn ret_bytes(len: u8) -> Option<Vec<u8>> {
    match len {
        1 => Some(vec![0xc3]),
        2..=5 => {
            let mut b = vec![0xc3, 0xcc];
            if len > 2 {
                b.extend_from_slice(nop_bytes(len - 2)?);
            }
            Some(b)
        }
        _ => None,
    }
}

impl Checker<'_> {
    /// Records that instruction `id` is overwritten with `bytes` and loses its relocation.
    /// A length objtool cannot fill is its `invalid NOP size` warning, and nothing is written.
    pub(crate) fn overwrite_insn(&mut self, id: InsnId, bytes: Option<Vec<u8>>, what: &str) {
        let insn = &self.p.insns[id as usize];
        if insn.fake() {
            return;
        }
        let Some(bytes) = bytes else {
            self.warn(format!("invalid {what} size: {}", insn.len));
            return;
        };
        let section = self.p.sections[insn.sec as usize].index;
        let offset = insn.offset;
        let reloc_offset = self.p.insn_reloc(id).map(|r| r.offset);
        self.edits.patches.push(InsnPatch { section, offset, bytes, reloc_offset });
    }

    /// objtool's `add_prefix_symbols`: every function of an executable section preceded by
    /// exactly `--prefix` bytes of NOP instructions gets a `__pfx_` symbol over them, and those
    /// NOPs get the function's entry state (so the ORC covers them as the function's start).
    /// Eras that take the functions from `__patchable_function_entries` instead
    /// ([`orc_flow::KernelEra::prefix_symbols_from_patchable_entries`]) give the symbol to those
    /// functions only, over whatever instructions start `--prefix` bytes before them.
    pub(crate) fn add_prefix_symbols(&mut self, file: &orc_elf::ElfFile<'_>) -> Result<(), crate::report::Fatal> {
        let Some(prefix) = self.opts.prefix else { return Ok(()) };
        let patchable: Option<std::collections::HashSet<(usize, u64)>> =
            if self.era.prefix_symbols_from_patchable_entries() {
                let entries = orc_flow::special::sites::read_patchable_function_entries(file)
                    .map_err(|e| crate::report::Fatal::new(e.to_string()))?
                    .unwrap_or_default();
                Some(entries.iter().map(|l| (l.section, l.offset + prefix)).collect())
            } else {
                None
            };
        for si in 0..self.p.sections.len() {
            if !self.p.sections[si].exec {
                continue;
            }
            for k in 0..self.p.sections[si].syms.len() {
                let s = self.p.sections[si].syms[k];
                let sym = &self.p.symbols[s as usize];
                if !sym.is_func() {
                    continue;
                }
                let func_off = sym.offset;
                let Some(insn) = self.p.find_insn(si, func_off) else { continue };
                let mut prev = self.p.prev_in_sec(insn);
                let mut found = None;
                if let Some(padded) = &patchable {
                    // objtool looks the function up by address, which gives the alias of the
                    // symbols there (a module's `init_module` rather than its static init
                    // function): one prefix symbol, named after the alias.
                    if !padded.contains(&(self.p.sections[si].index, func_off)) || func_off < prefix || sym.alias != s {
                        continue;
                    }
                    found = self.p.find_insn(si, func_off - prefix);
                    self.add_prefix_symbol(si, s, prefix, found, insn);
                    continue;
                }
                while let Some(p) = prev {
                    let pi = &self.p.insns[p as usize];
                    if pi.kind != InsnKind::Nop {
                        break;
                    }
                    let dist = func_off - pi.offset;
                    if dist > prefix {
                        break;
                    }
                    if dist == prefix {
                        found = Some(p);
                        break;
                    }
                    prev = self.p.prev_in_sec(p);
                }
                if found.is_some() {
                    self.add_prefix_symbol(si, s, prefix, found, insn);
                }
            }
        }
        Ok(())
    }
}

impl Checker<'_> {
    /// Records `__pfx_<name>` over the `prefix` bytes before function `s` of section `si`
    /// (binding and type copied from the function), and gives the instructions from `first` up
    /// to the function's first one, `insn`, the function's entry state.
    fn add_prefix_symbol(&mut self, si: usize, s: SymId, prefix: u64, first: Option<InsnId>, insn: InsnId) {
        let sym = &self.p.symbols[s as usize];
        self.edits.symbols.push(NewSymbol {
            name: format!("__pfx_{}", sym.name),
            section: self.p.sections[si].index,
            value: sym.offset - prefix,
            size: prefix,
            info: (sym.bind << 4) | STT_FUNC,
        });
        if let (Some(first), Some(cfi)) = (first, self.insn_cfi[insn as usize]) {
            for id in first..insn {
                self.insn_cfi[id as usize] = Some(cfi);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nops_are_single_instructions_of_their_length() {
        for len in 1..=5u8 {
            let b = nop_bytes(len).unwrap();
            assert_eq!(b.len(), usize::from(len));
            let insn = orc_decode::decode_one(b, 0, true).unwrap();
            assert_eq!(insn.kind, InsnKind::Nop, "{b:02x?}");
            assert_eq!(insn.len, len);
        }
        assert_eq!(nop_bytes(0), None);
        assert_eq!(nop_bytes(6), None);
    }

    #[test]
    fn ret_fill_starts_with_ret_and_int3() {
        assert_eq!(ret_bytes(1).unwrap(), [0xc3]);
        assert_eq!(ret_bytes(2).unwrap(), [0xc3, 0xcc]);
        assert_eq!(ret_bytes(5).unwrap(), [0xc3, 0xcc, 0x0f, 0x1f, 0x00]);
        assert_eq!(ret_bytes(6), None);
    }
}
