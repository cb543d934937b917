//! The file's own ORC table, sorted and searched as the kernel's unwinder searches it, and
//! names for places in the file.

use std::collections::HashMap;

use orc_elf::orc::{OrcAddress, OrcTable};
use orc_elf::{ElfFile, SymbolKind};
use orc_flow::{AddressMap, Location};
use orc_format::{Entry, EntryType, Layout};

/// One entry of the sorted table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Row {
    /// Offset in its section.
    pub offset: u64,
    /// The entry's meaning.
    pub entry: Entry,
}

/// The table, per text section, sorted the way `unwind_module_init()` sorts a module's table:
/// by address, and at equal addresses a terminator (an undefined entry) first, so that the
/// unwinder's "rightmost entry with ip <= target" finds the real entry.
pub struct Lookup {
    /// The table's layout.
    pub layout: Layout,
    by_section: HashMap<usize, Vec<Row>>,
}

impl Lookup {
    /// Sorts `table`. Entries whose address is not in a section of the file (absolute
    /// addresses of a linked file, relocations against undefined symbols) are left out.
    pub fn new(file: &ElfFile<'_>, table: &OrcTable<'_>) -> Lookup {
        let mut by_section: HashMap<usize, Vec<(Row, bool)>> = HashMap::new();
        let map = AddressMap::new(file);
        for (address, raw) in table.iter() {
            let entry = table.layout.decode(raw);
            let located = match address {
                OrcAddress::Relocated { section: Some(section), symbol_value, addend, .. } => {
                    u64::try_from(i128::from(symbol_value) + i128::from(addend)).ok().map(|o| (section, o))
                }
                // objtool ends every text section with an undefined entry at its end, which in
                // a linked file is the next section's first address: that entry belongs to the
                // section it ends (else vmlinux's `.altinstr_aux`, which has no entries, would
                // seem covered by `.init.text`'s terminator).
                OrcAddress::Absolute(addr) => match (entry.kind, map.ending_at(addr)) {
                    (EntryType::Undefined, Some(l)) => Some((l.section, l.offset)),
                    _ => map.locate(addr).map(|l| (l.section, l.offset)),
                },
                OrcAddress::Relocated { section: None, .. } => None,
            };
            if let Some((section, offset)) = located {
                let real = entry.kind != EntryType::Undefined;
                by_section.entry(section).or_default().push((Row { offset, entry }, real));
            }
        }
        let by_section = by_section
            .into_iter()
            .map(|(s, mut rows)| {
                rows.sort_by_key(|(r, real)| (r.offset, *real));
                (s, rows.into_iter().map(|(r, _)| r).collect())
            })
            .collect();
        Lookup { layout: table.layout, by_section }
    }

    /// The unwinder's lookup: the rightmost entry at or before `at` in its section, with its
    /// own offset; `None` when the section has no entry at or before it.
    pub fn find(&self, at: Location) -> Option<Row> {
        let rows = self.by_section.get(&at.section)?;
        let n = rows.partition_point(|r| r.offset <= at.offset);
        n.checked_sub(1).map(|i| rows[i])
    }

    /// True if the section has any entry.
    pub fn covers(&self, section: usize) -> bool {
        self.by_section.get(&section).is_some_and(|r| !r.is_empty())
    }
}



/// Names places: `function+0xoff` and `section+0xoff`.
pub struct Names<'data> {
    sections: HashMap<usize, &'data str>,
    /// Function symbols per section, sorted by value: (value, size, name).
    functions: HashMap<usize, Vec<(u64, u64, &'data str)>>,
    /// Code symbols with a size (functions, and the `NOTYPE` symbols of assembly code such as
    /// `__x86_return_thunk`) per section, sorted: (value, size).
    code: HashMap<usize, Vec<(u64, u64)>>,
}

impl<'data> Names<'data> {
    /// Reads the section names and the function symbols of `file`.
    pub fn new(file: &ElfFile<'data>) -> Names<'data> {
        let sections = file.sections().flatten().map(|s| (s.index, s.name)).collect();
        let mut functions: HashMap<usize, Vec<(u64, u64, &'data str)>> = HashMap::new();
        // Symbol values are addresses in a linked file, offsets in a relocatable one (whose
        // sections are at address 0).
        let map = AddressMap::new(file);
        let mut code: HashMap<usize, Vec<(u64, u64)>> = HashMap::new();
        for sym in file.symbols().flatten() {
            let (Some(section), true) = (sym.section, sym.size > 0) else { continue };
            let offset = sym.value.wrapping_sub(map.section_address(section));
            if sym.kind == SymbolKind::Func {
                functions.entry(section).or_default().push((offset, sym.size, sym.name));
            }
            if matches!(sym.kind, SymbolKind::Func | SymbolKind::NoType) {
                code.entry(section).or_default().push((offset, sym.size));
            }
        }
        for v in functions.values_mut() {
            v.sort_unstable();
        }
        for v in code.values_mut() {
            v.sort_unstable();
        }
        Names { sections, functions, code }
    }

    /// The section's name.
    pub fn section(&self, index: usize) -> &'data str {
        self.sections.get(&index).copied().unwrap_or("?")
    }

    /// `section+0xoff`.
    pub fn in_section(&self, at: Location) -> String {
        format!("{}+{:#x}", self.section(at.section), at.offset)
    }

    /// `function+0xoff` for the function containing `at`, if any.
    pub fn in_function(&self, at: Location) -> Option<String> {
        let funcs = self.functions.get(&at.section)?;
        let n = funcs.partition_point(|f| f.0 <= at.offset);
        let &(value, size, name) = funcs.get(n.checked_sub(1)?)?;
        (at.offset - value < size).then(|| format!("{name}+{:#x}", at.offset - value))
    }

    /// The start of the code symbol (function or sized assembly symbol) containing `at`, if
    /// any: the last one starting at or before it.
    pub fn code_start(&self, at: Location) -> Option<u64> {
        let syms = self.code.get(&at.section)?;
        let n = syms.partition_point(|f| f.0 <= at.offset);
        let &(value, size) = syms.get(n.checked_sub(1)?)?;
        (at.offset - value < size).then_some(value)
    }

    /// `function+0xoff (section+0xoff)`, or `section+0xoff` outside functions.
    pub fn both(&self, at: Location) -> String {
        match self.in_function(at) {
            Some(f) => format!("{f} ({})", self.in_section(at)),
            None => self.in_section(at),
        }
    }
}
