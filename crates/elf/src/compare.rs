//! Two relocatable objects compared the way a linker sees them: every section's bytes and
//! attributes, the symbol table as a set, and the relocations with their symbols resolved to
//! names. Where the sections, symbols and relocations lie in the file (the layout), and the
//! order of the symbol table, are left out: objtool's libelf appends to a file, orctool's
//! writer lays it out anew, and both give the linker the same object.
//!
//! This is the bar for "orctool writes what objtool writes": `orctool compare-objects`, the
//! kernel-build comparison and the gold-set scripts use it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use object::elf;

use crate::{ElfError, ElfFile, Section, SymbolKind};

/// How sections are told apart: by name, and among sections of the same name by their rank in
/// header order (a `-ffunction-sections` object has many `.text` groups of one name only
/// with `-fno-unique-section-names`, but COMDAT groups repeat names).
type SectionKey = (String, usize);

/// One way two objects differ.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Difference {
    /// A section only one object has (`in_first` tells which).
    MissingSection {
        /// Section name and rank.
        section: String,
        /// True if the first object has it.
        in_first: bool,
    },
    /// A section attribute differs.
    Attribute {
        /// Section name.
        section: String,
        /// `type`, `flags`, `entsize`, `align` or `size`.
        what: &'static str,
        /// In the first object.
        first: u64,
        /// In the second.
        second: u64,
    },
    /// Section bytes differ.
    Bytes {
        /// Section name.
        section: String,
        /// First differing offset.
        first_offset: u64,
        /// How many bytes differ.
        count: u64,
        /// Up to 16 bytes of each from `first_offset`.
        first: Vec<u8>,
        /// The second object's bytes there.
        second: Vec<u8>,
    },
    /// A relocation only one object has.
    Relocation {
        /// The section relocated.
        section: String,
        /// The relocation, with its symbol by name.
        relocation: String,
        /// How many more the first object has (negative: the second has more).
        surplus: i64,
    },
    /// A symbol only one object has.
    Symbol {
        /// The symbol with its attributes.
        symbol: String,
        /// How many more the first object has (negative: the second has more).
        surplus: i64,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |n: i64| if n > 0 { "only in the first" } else { "only in the second" };
        match self {
            Difference::MissingSection { section, in_first } => {
                write!(f, "section {section}: {}", side(if *in_first { 1 } else { -1 }))
            }
            Difference::Attribute { section, what, first, second } => {
                write!(f, "section {section}: {what} {first:#x} != {second:#x}")
            }
            Difference::Bytes { section, first_offset, count, first, second } => write!(
                f,
                "section {section}: {count} bytes differ, first at {first_offset:#x} ({} != {})",
                hex(first),
                hex(second)
            ),
            Difference::Relocation { section, relocation, surplus } => {
                let n = surplus.unsigned_abs();
                write!(f, "relocation of {section}: {relocation}: {}{}", side(*surplus), times(n))
            }
            Difference::Symbol { symbol, surplus } => {
                write!(f, "symbol {symbol}: {}{}", side(*surplus), times(surplus.unsigned_abs()))
            }
        }
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        String::new()
    } else {
        format!(" ({n} times)")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// What was compared, and how the objects differ.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Comparison {
    /// Sections compared (present in both; symbol, string and relocation tables are
    /// compared through their contents, not as bytes).
    pub sections: usize,
    /// Symbols in the first object (null symbol excluded).
    pub symbols: usize,
    /// Relocations in the first object.
    pub relocations: usize,
    /// Every difference found, sections first, then relocations, then symbols.
    pub differences: Vec<Difference>,
}

impl Comparison {
    /// True when the objects are the same to a linker.
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Sections whose bytes are a table of the file's own layout: compared through what they
/// describe, not byte for byte.
fn is_layout_table(s: &Section<'_>) -> bool {
    matches!(
        elf::SectionType(s.kind),
        elf::SHT_SYMTAB | elf::SHT_STRTAB | elf::SHT_RELA | elf::SHT_REL | elf::SHT_SYMTAB_SHNDX | elf::SHT_GROUP
    )
}

fn keyed_sections<'d>(file: &ElfFile<'d>) -> Result<Vec<(SectionKey, Section<'d>)>, ElfError> {
    let mut rank: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for s in file.sections() {
        let s = s?;
        let r = rank.entry(s.name).or_default();
        out.push(((s.name.to_string(), *r), s));
        *r += 1;
    }
    Ok(out)
}

fn show_key((name, rank): &SectionKey) -> String {
    if *rank == 0 {
        name.clone()
    } else {
        format!("{name}#{rank}")
    }
}

/// Names of sections by index, in the form used for keys.
fn section_names(keyed: &[(SectionKey, Section<'_>)]) -> HashMap<usize, String> {
    keyed.iter().map(|(k, s)| (s.index, show_key(k))).collect()
}

/// A symbol as a linker sees it, without its index.
fn symbol_text(file: &ElfFile<'_>, names: &HashMap<usize, String>, index: usize) -> Result<String, ElfError> {
    if index == 0 {
        return Ok("(none)".to_string());
    }
    let s = file.symbol(index)?;
    let section = match s.section {
        Some(i) => names.get(&i).cloned().unwrap_or_else(|| format!("[{i}]")),
        None => "UND/ABS".to_string(),
    };
    if s.kind == SymbolKind::Section {
        return Ok(format!("section:{section}"));
    }
    let kind = match s.kind {
        SymbolKind::NoType => "notype".to_string(),
        SymbolKind::Object => "object".to_string(),
        SymbolKind::Func => "func".to_string(),
        SymbolKind::Section => "section".to_string(),
        SymbolKind::File => "file".to_string(),
        SymbolKind::Other(t) => format!("type{t}"),
    };
    let bind = match elf::SymbolBind(s.binding) {
        elf::STB_LOCAL => "local".to_string(),
        elf::STB_GLOBAL => "global".to_string(),
        elf::STB_WEAK => "weak".to_string(),
        other => format!("bind{}", other.0),
    };
    Ok(format!(
        "{} ({kind} {bind} vis{} in {section} at {:#x} size {:#x})",
        s.name, s.other & 3, s.value, s.size
    ))
}

/// A relocation's symbol, by name: section symbols by their section, others by name alone
/// (their attributes are compared with the symbol table).
fn reloc_symbol(file: &ElfFile<'_>, names: &HashMap<usize, String>, index: usize) -> Result<String, ElfError> {
    if index == 0 {
        return Ok("(none)".to_string());
    }
    let s = file.symbol(index)?;
    Ok(match (s.kind, s.section) {
        (SymbolKind::Section, Some(i)) => format!("section:{}", names.get(&i).cloned().unwrap_or_default()),
        _ => s.name.to_string(),
    })
}

fn count<T: Ord>(items: impl Iterator<Item = T>) -> BTreeMap<T, i64> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// `first` minus `second`, as signed surpluses, for the items that differ.
fn multiset_difference<T: Ord + Clone>(first: BTreeMap<T, i64>, mut second: BTreeMap<T, i64>) -> Vec<(T, i64)> {
    let mut out = Vec::new();
    for (k, n) in first {
        let m = second.remove(&k).unwrap_or(0);
        if n != m {
            out.push((k, n - m));
        }
    }
    out.extend(second.into_iter().map(|(k, m)| (k, -m)));
    out
}

type RelocKey = (u64, u32, String, i64);

fn relocations_by_target(
    file: &ElfFile<'_>,
    keyed: &[(SectionKey, Section<'_>)],
    names: &HashMap<usize, String>,
) -> Result<BTreeMap<String, BTreeMap<RelocKey, i64>>, ElfError> {
    let mut out = BTreeMap::new();
    let mut symbol_names: HashMap<usize, String> = HashMap::new();
    for (_, s) in keyed {
        if elf::SectionType(s.kind) != elf::SHT_RELA {
            continue;
        }
        let target = names.get(&(s.info as usize)).cloned().unwrap_or_else(|| format!("[{}]", s.info));
        let mut items = Vec::new();
        for r in file.relocations(s.index)? {
            let sym = match symbol_names.get(&r.symbol) {
                Some(n) => n.clone(),
                None => {
                    let n = reloc_symbol(file, names, r.symbol)?;
                    symbol_names.insert(r.symbol, n.clone());
                    n
                }
            };
            items.push((r.offset, r.kind, sym, r.addend));
        }
        let entry: &mut BTreeMap<RelocKey, i64> = out.entry(target).or_default();
        for (k, n) in count(items.into_iter()) {
            *entry.entry(k).or_insert(0) += n;
        }
    }
    Ok(out)
}

/// Compares two objects; `limit` caps the differences kept per kind (sections, relocations,
/// symbols), so that two unrelated files do not fill memory with a list nobody reads.
pub fn compare_objects(first: &ElfFile<'_>, second: &ElfFile<'_>, limit: usize) -> Result<Comparison, ElfError> {
    let mut cmp = Comparison::default();
    let a = keyed_sections(first)?;
    let b = keyed_sections(second)?;
    let b_by_key: HashMap<&SectionKey, &Section<'_>> = b.iter().map(|(k, s)| (k, s)).collect();
    let a_keys: std::collections::HashSet<&SectionKey> = a.iter().map(|(k, _)| k).collect();
    let mut section_diffs = Vec::new();
    for (key, sa) in &a {
        let Some(sb) = b_by_key.get(key) else {
            section_diffs.push(Difference::MissingSection { section: show_key(key), in_first: true });
            continue;
        };
        cmp.sections += 1;
        let name = show_key(key);
        for (what, x, y) in [
            ("type", u64::from(sa.kind), u64::from(sb.kind)),
            ("flags", sa.flags, sb.flags),
            ("entsize", sa.entry_size, sb.entry_size),
            ("align", sa.align, sb.align),
        ] {
            if x != y {
                section_diffs.push(Difference::Attribute { section: name.clone(), what, first: x, second: y });
            }
        }
        if is_layout_table(sa) {
            continue;
        }
        if sa.size != sb.size {
            section_diffs.push(Difference::Attribute { section: name.clone(), what: "size", first: sa.size, second: sb.size });
            continue;
        }
        if sa.data != sb.data {
            let differing = sa.data.iter().zip(sb.data).enumerate().filter(|(_, (x, y))| x != y);
            let mut first_offset = None;
            let mut n = 0u64;
            for (i, _) in differing {
                first_offset.get_or_insert(i);
                n += 1;
            }
            let at = first_offset.unwrap_or(0);
            let end = (at + 16).min(sa.data.len());
            section_diffs.push(Difference::Bytes {
                section: name,
                first_offset: at as u64,
                count: n,
                first: sa.data[at..end].to_vec(),
                second: sb.data[at..end].to_vec(),
            });
        }
    }
    for (key, _) in &b {
        if !a_keys.contains(key) {
            section_diffs.push(Difference::MissingSection { section: show_key(key), in_first: false });
        }
    }
    section_diffs.truncate(limit);
    cmp.differences.extend(section_diffs);

    let a_names = section_names(&a);
    let b_names = section_names(&b);
    let ra = relocations_by_target(first, &a, &a_names)?;
    let mut rb = relocations_by_target(second, &b, &b_names)?;
    cmp.relocations = ra.values().flat_map(|m| m.values()).map(|&n| n as usize).sum();
    let mut reloc_diffs = Vec::new();
    let targets: std::collections::BTreeSet<String> = ra.keys().chain(rb.keys()).cloned().collect();
    let mut ra = ra;
    for target in targets {
        let mine = ra.remove(&target).unwrap_or_default();
        let other = rb.remove(&target).unwrap_or_default();
        for ((offset, kind, sym, addend), surplus) in multiset_difference(mine, other) {
            reloc_diffs.push(Difference::Relocation {
                section: target.clone(),
                relocation: format!("{offset:#x} type {kind} {sym}{addend:+#x}"),
                surplus,
            });
        }
    }
    reloc_diffs.truncate(limit);
    cmp.differences.extend(reloc_diffs);

    let sa = count((1..first.symbol_count()).map(|i| symbol_text(first, &a_names, i)).collect::<Result<Vec<_>, _>>()?.into_iter());
    let sb = count((1..second.symbol_count()).map(|i| symbol_text(second, &b_names, i)).collect::<Result<Vec<_>, _>>()?.into_iter());
    cmp.symbols = first.symbol_count().saturating_sub(1);
    let mut sym_diffs: Vec<Difference> = multiset_difference(sa, sb)
        .into_iter()
        .map(|(symbol, surplus)| Difference::Symbol { symbol, surplus })
        .collect();
    sym_diffs.truncate(limit);
    cmp.differences.extend(sym_diffs);
    Ok(cmp)
}
