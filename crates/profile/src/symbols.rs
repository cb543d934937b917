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
use object::read::elf::{FileHeader as _, Sym as _};
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
        if let Some(id) = build_id.filter(|id| id.len() > 2) {
            let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]);
            if let Ok(bytes) = std::fs::read(Path::new(&debug)) {
                if let Some(s) = PerfSymbols::from_table(&bytes, elf::SHT_SYMTAB) {
                    return s;
                }
            }
        }
        PerfSymbols::from_table(data, elf::SHT_SYMTAB)
            .or_else(|| PerfSymbols::from_table(data, elf::SHT_DYNSYM))
            .unwrap_or_default()
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
