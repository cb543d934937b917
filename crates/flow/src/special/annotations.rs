//! Annotations: the `.discard.*` sections that mark single instructions (or functions) for
//! objtool.
//!
//! Up to 6.12 each kind has its own section of relocations, read one relocation at a time
//! (the entry width does not matter: `.long 1b`, `.long 1b - .` and `.quad 1b` all work):
//!
//! | section | marks | objtool's rule for the relocation's symbol |
//! |---|---|---|
//! | `.discard.unreachable` (≤ 6.11) | the instruction *before* the site is a dead end | section symbol (6.1); or `.L` label (6.6+) |
//! | `.discard.reachable` | the instruction before the site is *not* a dead end | same |
//! | `.discard.intra_function_calls` | a `call` to a label in the same function | section symbol only |
//! | `.discard.retpoline_safe` | an indirect branch, `ret` or NOP that needs no retpoline | section symbol only |
//! | `.discard.noendbr` | a function-start (or address-taken) site without `endbr` | any: value + addend |
//! | `.discard.ignore_alts` | an alternative site whose replacements objtool skips | section symbol only |
//! | `.discard.instr_begin` / `.discard.instr_end` | instrumentation allowed / no longer allowed in `noinstr` code | section symbol only |
//! | `.discard.validate_unret` | an entry point for `--unret` validation (6.4+) | section symbol only |
//! | `.discard.ibt_endbr_noseal` | a function whose `endbr` must not be sealed | any: value + addend (read as a data relocation) |
//! | `.discard.func_stack_frame_non_standard` | a whole function objtool ignores | see [`NonStandardTarget`] |
//!
//! 6.13 moved all of them but the last one to one section, `.discard.annotate_insn` (called
//! `.discard.annotate` in its first version): 8-byte entries `{ s32 insn (PC32), u32 type }`
//! with [`AnnotationKind`] numbers 1–8 (NOENDBR 1, RETPOLINE_SAFE 2, INSTR_BEGIN 3,
//! INSTR_END 4, UNRET_BEGIN 5, IGNORE_ALTS 6, INTRA_FUNCTION_CALL 7, REACHABLE 8; later
//! kernels add more). The Debian 6.12 objects still use the per-kind sections.

use orc_elf::{ElfFile, SymbolKind};

use crate::era::KernelEra;
use crate::error::{At, Problem, SpecialSectionError};
use crate::special::reloc::{kind_name, Location, RelocTarget, Table};

/// How objtool turns an annotation relocation into an instruction location.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SiteRule {
    /// Only section symbols are accepted; the addend is the offset.
    SectionSymbolOnly,
    /// Section symbols (the addend is the offset) and `.L` local labels (the label's value is
    /// the offset, the addend is ignored); anything else is rejected.
    SectionOrLocalLabel,
    /// Any symbol: its section, and the addend alone as the offset (6.1's unwind hints).
    AddendOnly,
    /// Any symbol: its section, at value + addend.
    ValuePlusAddend,
}

impl SiteRule {
    /// What the rule accepts, for messages.
    pub const fn accepts(self) -> &'static str {
        match self {
            SiteRule::SectionSymbolOnly => "only section symbols",
            SiteRule::SectionOrLocalLabel => "only section symbols and .L labels",
            SiteRule::AddendOnly | SiteRule::ValuePlusAddend => "any symbol",
        }
    }

    /// The location `t` designates under this rule.
    pub(crate) fn apply(
        self,
        table: &Table<'_, '_>,
        at: At,
        t: &RelocTarget<'_>,
    ) -> Result<Location, SpecialSectionError> {
        let reject = || {
            table.error(
                Some(at),
                Problem::UnexpectedSymbol {
                    name: t.name.to_string(),
                    kind: kind_name(t.symbol_kind),
                    accepted: self.accepts(),
                },
            )
        };
        let undefined = || table.error(Some(at), Problem::Undefined { field: "site", name: t.name.to_string() });
        let out_of_range = || {
            table.error(
                Some(at),
                Problem::OutOfRange { field: "site", name: t.name.to_string(), value: t.value, addend: t.addend },
            )
        };
        let section = t.section.ok_or_else(undefined)?;
        let offset: i128 = match self {
            SiteRule::SectionSymbolOnly if t.is_section_symbol() => i128::from(t.addend),
            SiteRule::SectionSymbolOnly => return Err(reject()),
            SiteRule::SectionOrLocalLabel if t.is_section_symbol() => i128::from(t.addend),
            SiteRule::SectionOrLocalLabel if t.is_local_label() => i128::from(t.value),
            SiteRule::SectionOrLocalLabel => return Err(reject()),
            SiteRule::AddendOnly => i128::from(t.addend),
            SiteRule::ValuePlusAddend => i128::from(t.value) + i128::from(t.addend),
        };
        let offset = u64::try_from(offset).map_err(|_| out_of_range())?;
        Ok(Location::new(section, offset))
    }
}

/// What an annotation says about its instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AnnotationKind {
    /// The instruction before the site is a dead end (`.discard.unreachable`, ≤ 6.11).
    Unreachable,
    /// The instruction before the site is not a dead end (`.discard.reachable`, type 8).
    Reachable,
    /// An intra-function `call` (type 7).
    IntraFunctionCall,
    /// An indirect branch that needs no retpoline (type 2).
    RetpolineSafe,
    /// No `endbr` needed here (type 1).
    NoEndbr,
    /// Skip this site's alternatives (type 6).
    IgnoreAlts,
    /// Instrumentation begins (type 3).
    InstrBegin,
    /// Instrumentation ends (type 4).
    InstrEnd,
    /// `--unret` entry point (`.discard.validate_unret`, type 5).
    UnretBegin,
    /// Do not seal this function's `endbr` (`.discard.ibt_endbr_noseal`).
    IbtEndbrNoseal,
    /// A `.discard.annotate_insn` type this crate does not know.
    Other(u32),
}

impl AnnotationKind {
    /// The kind of `.discard.annotate_insn` type `n` (6.13+ `ANNOTYPE_*`).
    pub const fn from_annotype(n: u32) -> AnnotationKind {
        match n {
            1 => AnnotationKind::NoEndbr,
            2 => AnnotationKind::RetpolineSafe,
            3 => AnnotationKind::InstrBegin,
            4 => AnnotationKind::InstrEnd,
            5 => AnnotationKind::UnretBegin,
            6 => AnnotationKind::IgnoreAlts,
            7 => AnnotationKind::IntraFunctionCall,
            8 => AnnotationKind::Reachable,
            n => AnnotationKind::Other(n),
        }
    }
}

/// The per-kind sections, with their kinds and objtool's rule for `era` (6.1 and 6.12 agree
/// except for the unreachable/reachable rule, see [`KernelEra::reachable_site_rule`]).
pub fn separate_sections(era: KernelEra) -> [(&'static str, AnnotationKind, SiteRule); 10] {
    use AnnotationKind::*;
    use SiteRule::*;
    let reach = era.reachable_site_rule();
    [
        (".discard.unreachable", Unreachable, reach),
        (".discard.reachable", Reachable, reach),
        (".discard.intra_function_calls", IntraFunctionCall, SectionSymbolOnly),
        (".discard.retpoline_safe", RetpolineSafe, SectionSymbolOnly),
        (".discard.noendbr", NoEndbr, ValuePlusAddend),
        (".discard.ignore_alts", IgnoreAlts, SectionSymbolOnly),
        (".discard.instr_begin", InstrBegin, SectionSymbolOnly),
        (".discard.instr_end", InstrEnd, SectionSymbolOnly),
        (".discard.validate_unret", UnretBegin, SectionSymbolOnly),
        (".discard.ibt_endbr_noseal", IbtEndbrNoseal, ValuePlusAddend),
    ]
}

/// The unified annotation section of 6.13+ (and its first name).
pub const UNIFIED_SECTIONS: [&str; 2] = [".discard.annotate_insn", ".discard.annotate"];
/// Bytes per unified annotation entry.
pub const UNIFIED_ENTRY_SIZE: usize = 8;

/// One annotated instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Annotation<'data> {
    /// What it says.
    pub kind: AnnotationKind,
    /// The site: for (un)reachable, the instruction *after* the one it is about.
    pub site: Location,
    /// Where it came from: the section name, and the relocation index (separate sections) or
    /// entry index (unified section).
    pub section: &'static str,
    /// Index of the relocation (separate sections) or entry (unified).
    pub index: usize,
    /// The relocation, as found.
    pub reloc: RelocTarget<'data>,
}

/// Reads one per-kind annotation section; an empty list if the file has none. Follows
/// objtool: every relocation of `.rela<name>` is one annotation, in relocation order.
pub fn read_annotation_section<'data>(
    file: &ElfFile<'data>,
    name: &'static str,
    kind: AnnotationKind,
    rule: SiteRule,
) -> Result<Vec<Annotation<'data>>, SpecialSectionError> {
    let Some(table) = open_relocations(file, name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(table.relocations.len());
    for (i, rel) in table.relocations.iter().enumerate() {
        let at = At::Relocation(i);
        let reloc = table.target(at, rel)?;
        let site = rule.apply(&table, at, &reloc)?;
        out.push(Annotation { kind, site, section: name, index: i, reloc });
    }
    Ok(out)
}

/// The table for an annotation section, found by the section or, when the section itself is
/// gone, by its relocation section (objtool only looks for `.rela<name>`).
fn open_relocations<'data, 'file>(
    file: &'file ElfFile<'data>,
    name: &str,
) -> Result<Option<Table<'data, 'file>>, SpecialSectionError> {
    if let Some(t) = Table::open(file, name)? {
        return Ok(Some(t));
    }
    let rela = format!(".rela{name}");
    Table::open(file, &rela)?
        .map(|r| {
            let relocations = file.relocations(r.section.index).map_err(|e| r.error(None, Problem::Elf(e)))?;
            Ok(Table {
                file,
                section: r.section,
                rela: Some(r.section.index),
                by_offset: Default::default(),
                relocations,
                linked: None,
            })
        })
        .transpose()
}

/// Reads the unified `.discard.annotate_insn` (or `.discard.annotate`) section; an empty list
/// if the file has neither. Entry `i` is 8 bytes at `8 * i`: its relocation at `8 * i`, its
/// type at `8 * i + 4`; the site is the symbol's value plus the addend (objtool's rule).
pub fn read_unified_annotations<'data>(file: &ElfFile<'data>) -> Result<Vec<Annotation<'data>>, SpecialSectionError> {
    let mut out = Vec::new();
    for name in UNIFIED_SECTIONS {
        let Some(table) = Table::open(file, name)? else { continue };
        let count = table.entries(UNIFIED_ENTRY_SIZE)?;
        table.require_relocations()?;
        for i in 0..count {
            let base = i * UNIFIED_ENTRY_SIZE;
            let reloc = table.field_target(i, base, "insn")?;
            let site = SiteRule::ValuePlusAddend.apply(&table, At::Entry(i), &reloc)?;
            let kind = AnnotationKind::from_annotype(table.u32_at(base + 4));
            out.push(Annotation { kind, site, section: name, index: i, reloc });
        }
    }
    Ok(out)
}

/// The function a `.discard.func_stack_frame_non_standard` relocation names, as objtool's
/// `add_ignores()` sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NonStandardTarget<'data> {
    /// An `STT_FUNC` symbol: that function (the addend is ignored).
    Function {
        /// Symbol index.
        symbol: usize,
        /// Its name.
        name: &'data str,
    },
    /// A section symbol: the function that *starts* at this location, if there is one
    /// (objtool skips the entry silently otherwise).
    FunctionAt(Location),
    /// Any other kind of symbol: objtool warns "unexpected relocation symbol type" and skips
    /// the entry.
    Unsupported {
        /// The symbol's kind.
        kind: SymbolKind,
    },
}

/// One `STACK_FRAME_NON_STANDARD` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NonStandardFrame<'data> {
    /// Relocation index.
    pub index: usize,
    /// The function.
    pub target: NonStandardTarget<'data>,
    /// The relocation, as found.
    pub reloc: RelocTarget<'data>,
}

/// The section name of `STACK_FRAME_NON_STANDARD`.
pub const NON_STANDARD_SECTION: &str = ".discard.func_stack_frame_non_standard";

/// Reads `.discard.func_stack_frame_non_standard`: one entry per relocation (C emits 8-byte
/// pointers, assembly `.long func - .`).
pub fn read_non_standard_frames<'data>(
    file: &ElfFile<'data>,
) -> Result<Vec<NonStandardFrame<'data>>, SpecialSectionError> {
    let Some(table) = open_relocations(file, NON_STANDARD_SECTION)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(table.relocations.len());
    for (i, rel) in table.relocations.iter().enumerate() {
        let at = At::Relocation(i);
        let reloc = table.target(at, rel)?;
        let target = match reloc.symbol_kind {
            SymbolKind::Func => NonStandardTarget::Function { symbol: reloc.symbol, name: reloc.name },
            SymbolKind::Section => {
                NonStandardTarget::FunctionAt(SiteRule::SectionSymbolOnly.apply(&table, at, &reloc)?)
            }
            kind => NonStandardTarget::Unsupported { kind },
        };
        out.push(NonStandardFrame { index: i, target, reloc });
    }
    Ok(out)
}
