//! Loaded modules, from the module list in the dump: each one's text, its ORC table (the kernel
//! keeps `.orc_unwind_ip`/`.orc_unwind` in the module's memory, sorted at load by
//! `unwind_module_init()`, ips place-relative like the image's) and its symbols (the module's
//! own `kallsyms`), so that walks cross module code and name its frames without the `.ko`.

use std::ops::Range;

use orc_format::{Endian, RawEntry};

use crate::kernel::Kernel;
use crate::VmcoreError;

/// One loaded module.
#[derive(Clone, Debug)]
pub struct Module {
    /// Its name.
    pub name: String,
    /// Its core text.
    pub text: Range<u64>,
    /// Its ORC table: (runtime address, entry), sorted.
    pub orc: Vec<(u64, RawEntry)>,
    /// Its function symbols: (start, size, name), sorted by start.
    pub functions: Vec<(u64, u64, String)>,
}

/// `Elf64_Sym`: the ELF ABI's symbol record (name, info, other, shndx, value, size).
const ELF64_SYM_SIZE: u64 = 24;
const STT_FUNC: u8 = 2;

impl Kernel<'_, '_> {
    /// Every module on the `modules` list. A module whose table cannot be read is left out of
    /// the tables (its frames get the kernel's frame-pointer guess), never an error for the dump.
    pub fn modules(&self) -> Result<Vec<Module>, VmcoreError> {
        let (Some(layout), Ok(head)) = (self.types.get("module"), self.address_of("modules")) else {
            return Ok(Vec::new());
        };
        let off = |p: &str| layout.offset("module", p);
        let list = off("list")?;
        let name_at = off("name")?;
        let name_len = layout.member("name").and_then(|(_, m)| m.size).unwrap_or(56) as usize;
        // 6.4+: mem[MOD_TEXT] (MOD_TEXT is the first of enum mod_mem_type); before: core_layout.
        let text = match (off("mem"), self.types.get("module_memory")) {
            (Ok(mem), Some(mm)) => {
                (mem + mm.offset("module_memory", "base")?, mem + mm.offset("module_memory", "size")?, 8)
            }
            _ => (off("core_layout.base")?, off("core_layout.text_size")?, 4),
        };
        let num_orcs = off("arch.num_orcs")?;
        let orc_ip = off("arch.orc_unwind_ip")?;
        let orc = off("arch.orc_unwind")?;
        let kallsyms = off("kallsyms").ok();
        let ks = self.types.get("mod_kallsyms");
        let mut out = Vec::new();
        let mut node = self.u64_at(head, "modules")?;
        while node != head && out.len() < 65536 {
            let m = node.wrapping_sub(list);
            node = self.u64_at(node, "module.list")?;
            let mut name = vec![0u8; name_len];
            if !self.read(m + name_at, &mut name) {
                continue;
            }
            let name =
                String::from_utf8_lossy(&name[..name.iter().position(|&c| c == 0).unwrap_or(name_len)]).into_owned();
            let base = self.u64_at(m.wrapping_add(text.0), "module text base")?;
            let size = if text.2 == 8 {
                self.u64_at(m.wrapping_add(text.1), "module text size")?
            } else {
                u64::from(self.u32_at(m.wrapping_add(text.1), "module text size")?)
            };
            let n = u64::from(self.u32_at(m + num_orcs, "module.arch.num_orcs")?);
            let ips_at = self.u64_at(m + orc_ip, "module.arch.orc_unwind_ip")?;
            let entries_at = self.u64_at(m + orc, "module.arch.orc_unwind")?;
            let mut table = Vec::new();
            if n > 0 && n < 1 << 22 {
                let mut ips = vec![0u8; (n * 4) as usize];
                let mut entries = vec![0u8; (n * 6) as usize];
                if self.read(ips_at, &mut ips) && self.read(entries_at, &mut entries) {
                    for (i, (ip, e)) in ips.chunks_exact(4).zip(entries.chunks_exact(6)).enumerate() {
                        let rel = i32::from_le_bytes(ip.try_into().expect("4 bytes"));
                        let at = ips_at.wrapping_add(4 * i as u64);
                        let raw = RawEntry::from_bytes(e.try_into().expect("6 bytes"), Endian::Little);
                        table.push((at.wrapping_add(rel as i64 as u64), raw));
                    }
                }
            }
            let functions = match (kallsyms, ks) {
                (Some(k), Some(ks)) => self.module_functions(m + k, ks).unwrap_or_default(),
                _ => Vec::new(),
            };
            out.push(Module { name, text: base..base.wrapping_add(size), orc: table, functions });
        }
        Ok(out)
    }

    fn module_functions(
        &self,
        kallsyms_ptr: u64,
        ks: &crate::dwarf::Layout,
    ) -> Result<Vec<(u64, u64, String)>, VmcoreError> {
        let k = self.u64_at(kallsyms_ptr, "module.kallsyms")?;
        let symtab = self.u64_at(k.wrapping_add(ks.offset("mod_kallsyms", "symtab")?), "mod_kallsyms.symtab")?;
        let num =
            self.u32_at(k.wrapping_add(ks.offset("mod_kallsyms", "num_symtab")?), "mod_kallsyms.num_symtab")? as u64;
        let strtab = self.u64_at(k.wrapping_add(ks.offset("mod_kallsyms", "strtab")?), "mod_kallsyms.strtab")?;
        if num > 1 << 20 {
            return Ok(Vec::new());
        }
        let mut syms = vec![0u8; (num * ELF64_SYM_SIZE) as usize];
        if !self.read(symtab, &mut syms) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for s in syms.chunks_exact(ELF64_SYM_SIZE as usize) {
            if s[4] & 0xf != STT_FUNC {
                continue;
            }
            let name_off = u64::from(u32::from_le_bytes(s[0..4].try_into().expect("4 bytes")));
            let value = u64::from_le_bytes(s[8..16].try_into().expect("8 bytes"));
            let size = u64::from_le_bytes(s[16..24].try_into().expect("8 bytes"));
            let mut name = vec![0u8; 128];
            if !self.read(strtab.wrapping_add(name_off), &mut name) {
                continue;
            }
            let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
            out.push((value, size, String::from_utf8_lossy(&name[..end]).into_owned()));
        }
        out.sort();
        Ok(out)
    }
}
