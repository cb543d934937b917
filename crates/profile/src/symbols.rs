//! User-space symbols named as perf names them.
//!
//! perf keeps function symbols and code labels (`STT_NOTYPE` in an executable section: `_start`
//! of ld.so), and of several symbols at one address keeps one by its own preference (sized,
//! not weak, global, fewer leading underscores, longer name); symbols come from the separate
//! debug file when there is one (`/usr/lib/debug/.build-id/xx/yyyy.debug`), else the file's
//! `.symtab`, else its `.dynsym`. perf names inlined functions through binutils' `addr2line`,
//! which names code without a DWARF function (assembly) by its first alias in symbol-table
//! order; `first_alias` gives that name.

use std::collections::HashMap;
use std::path::Path;

use object::elf;
use object::read::elf::{FileHeader as _, SectionHeader as _, Sym as _};
use object::LittleEndian as LE;

/// One symbol perf would keep.
#[derive(Clone, Debug)]
struct Symbol {
    start: u64,
    /// One past the last byte (a size-0 label reaches the next symbol).
    end: u64,
    size: u64,
    binding: elf::SymbolBind,
    name: String,
}

/// The symbols of one file, perf's choice at each address, and every alias in table order.
#[derive(Debug, Default)]
pub struct PerfSymbols {
    chosen: Vec<Symbol>,
    /// Every name at each start address, in symbol-table order.
    aliases: HashMap<u64, Vec<String>>,
}

impl PerfSymbols {
    /// The symbols of the ELF file `data` (at `path`, with `build_id`): from its separate
    /// debug file if there is one, else its own tables.
    pub fn load(data: &[u8], build_id: Option<&str>) -> PerfSymbols {
        let from_debug = build_id.filter(|id| id.len() > 2).and_then(|id| {
            let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
            let bytes = std::fs::read(Path::new(&debug)).ok()?;
            PerfSymbols::from_table(&bytes, elf::SHT_SYMTAB)
        });
        let mut symbols = from_debug
            .or_else(|| PerfSymbols::from_table(data, elf::SHT_SYMTAB))
            .or_else(|| PerfSymbols::from_table(data, elf::SHT_DYNSYM))
            .unwrap_or_default();
        symbols.add_plt(data);
        symbols
    }

    /// perf's names for PLT entries, `name@plt`: the i-th relocation of `.rela.plt` belongs
    /// to the i-th 16-byte entry of `.plt.sec` if there is one, else of `.plt` after its
    /// 16-byte header.
    fn add_plt(&mut self, data: &[u8]) {
        let Some(plt) = plt_symbols(data) else { return };
        if plt.is_empty() {
            return;
        }
        self.chosen.extend(plt);
        self.chosen.sort_by_key(|s| s.start);
        // A label before the PLT (`_init`) reached up to the next symbol: now the first entry.
        for i in 0..self.chosen.len() {
            if self.chosen[i].size == 0 {
                self.chosen[i].end = self.chosen.get(i + 1).map_or(self.chosen[i].start + 1, |n| n.start);
            }
        }
    }

    fn from_table(data: &[u8], kind: elf::SectionType) -> Option<PerfSymbols> {
        let header = elf::FileHeader64::<LE>::parse(data).ok()?;
        let sections = header.sections(LE, data).ok()?;
        let table = sections.symbols(LE, data, kind).ok()?;
        let mut all = Vec::new();
        for sym in table.symbols() {
            let t = sym.st_type();
            let shndx = sym.st_shndx(LE);
            if shndx == elf::SHN_UNDEF || shndx.0 >= elf::SHN_LORESERVE {
                continue;
            }
            let exec = sections
                .section(object::SectionIndex(usize::from(shndx.0)))
                .is_ok_and(|s| s.sh_flags.get(LE).0 & elf::SHF_EXECINSTR.0 != 0);
            let keep = t == elf::STT_FUNC || t == elf::STT_GNU_IFUNC || (t == elf::STT_NOTYPE && exec);
            if !keep {
                continue;
            }
            let Ok(name) = table.symbol_name(LE, sym) else { continue };
            let Ok(name) = std::str::from_utf8(name) else { continue };
            if name.is_empty() {
                continue;
            }
            let start = sym.st_value(LE);
            let size = sym.st_size(LE);
            all.push(Symbol { start, end: start + size, size, binding: sym.st_bind(), name: name.to_string() });
        }
        if all.is_empty() {
            return None;
        }
        let mut aliases: HashMap<u64, Vec<String>> = HashMap::new();
        for s in &all {
            aliases.entry(s.start).or_default().push(s.name.clone());
        }
        // Stable: at one address the table's order decides the ties, as in perf.
        all.sort_by_key(|s| s.start);
        let mut chosen: Vec<Symbol> = Vec::with_capacity(all.len());
        for s in all {
            match chosen.last_mut() {
                Some(last) if last.start == s.start => {
                    if prefer(&s, last) {
                        *last = s;
                    }
                }
                _ => chosen.push(s),
            }
        }
        for i in 0..chosen.len() {
            if chosen[i].size == 0 {
                chosen[i].end = chosen.get(i + 1).map_or(chosen[i].start + 1, |n| n.start);
            }
        }
        Some(PerfSymbols { chosen, aliases })
    }

    /// perf's symbol for link-time address `addr`: name and start.
    pub fn find(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.chosen.partition_point(|s| s.start <= addr).checked_sub(1)?;
        let s = &self.chosen[i];
        (addr < s.end).then_some((s.name.as_str(), s.start))
    }

    /// The first name in symbol-table order at `start`.
    pub fn first_alias(&self, start: u64) -> Option<&str> {
        self.aliases.get(&start).and_then(|v| v.first()).map(String::as_str)
    }
}

fn plt_symbols(data: &[u8]) -> Option<Vec<Symbol>> {
    const ENTRY: u64 = 16;
    let header = elf::FileHeader64::<LE>::parse(data).ok()?;
    let sections = header.sections(LE, data).ok()?;
    let (_, rela_plt) = sections.section_by_name(LE, b".rela.plt")?;
    let (relas, link) = rela_plt.rela(LE, data).ok()??;
    let symbols = sections.symbol_table_by_index(LE, data, link).ok()?;
    let start = match sections.section_by_name(LE, b".plt.sec") {
        Some((_, sec)) => sec.sh_addr.get(LE),
        None => sections.section_by_name(LE, b".plt")?.1.sh_addr.get(LE) + ENTRY,
    };
    let mut out = Vec::with_capacity(relas.len());
    for (i, rela) in relas.iter().enumerate() {
        let index = rela.r_sym(LE, false);
        let name = symbols
            .symbol(object::SymbolIndex(index as usize))
            .ok()
            .and_then(|sym| symbols.symbol_name(LE, sym).ok())
            .and_then(|n| std::str::from_utf8(n).ok())
            .unwrap_or("");
        let at = start + i as u64 * ENTRY;
        out.push(Symbol { start: at, end: at + ENTRY, size: ENTRY, binding: elf::STB_GLOBAL, name: format!("{name}@plt") });
    }
    Some(out)
}

/// perf's preference between two symbols at one address: whether `new` beats `old`.
fn prefer(new: &Symbol, old: &Symbol) -> bool {
    let sized = |s: &Symbol| s.size > 0;
    if sized(new) != sized(old) {
        return sized(new);
    }
    let weak = |s: &Symbol| s.binding == elf::STB_WEAK;
    if weak(new) != weak(old) {
        return !weak(new);
    }
    let global = |s: &Symbol| s.binding == elf::STB_GLOBAL;
    if global(new) != global(old) {
        return global(new);
    }
    let underscores = |s: &Symbol| s.name.bytes().take_while(|&b| b == b'_').count();
    if underscores(new) != underscores(old) {
        return underscores(new) < underscores(old);
    }
    new.name.len() > old.name.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, size: u64, binding: elf::SymbolBind) -> Symbol {
        Symbol { start: 0x1000, end: 0x1000 + size, size, binding, name: name.to_string() }
    }

    #[test]
    fn aliases_are_chosen_as_perf_chooses() {
        let local = elf::STB_LOCAL;
        // Sized beats a label; not weak beats weak; global beats local.
        assert!(prefer(&sym("b", 8, local), &sym("a", 0, local)));
        assert!(prefer(&sym("read", 8, elf::STB_GLOBAL), &sym("__read", 8, elf::STB_WEAK)));
        assert!(prefer(&sym("read", 8, elf::STB_GLOBAL), &sym("__libc_read", 8, local)));
        // Then fewer leading underscores, then the longer name.
        assert!(prefer(&sym("_x", 8, local), &sym("__x", 8, local)));
        assert!(prefer(&sym("__GI___open64_nocancel", 8, local), &sym("__open64_nocancel", 8, local)));
        assert!(!prefer(&sym("__open64_nocancel", 8, local), &sym("__GI___open64_nocancel", 8, local)));
    }
}
