//! Every special section objtool reads (and the ones it writes), each parsed in one module
//! into typed records, with relocations already resolved to [`Location`]s.
//!
//! | module | section(s) |
//! |---|---|
//! | [`alternatives`] | `.altinstructions` |
//! | [`jump_table`] | `__jump_table` |
//! | [`extable`] | `__ex_table` |
//! | [`hints`] | `.discard.unwind_hints` |
//! | [`annotations`] | `.discard.reachable`, `.discard.intra_function_calls`, ... and `.discard.annotate_insn` |
//! | [`paravirt`] | `.parainstructions` |
//! | [`bug_table`] | `__bug_table` (not read by objtool: the linked-image view rebuilds `.discard.reachable` from it) |
//! | [`sites`] | objtool's outputs: `.static_call_sites`, `.retpoline_sites`, `.return_sites`, `.call_sites`, `.ibt_endbr_seal`, ... |
//!
//! [`SpecialSections::read`] reads them all for one file and one [`KernelEra`].

pub mod alternatives;
pub mod annotations;
pub mod bug_table;
pub mod cpufeatures;
pub mod extable;
pub mod hints;
pub mod jump_table;
pub mod paravirt;
pub(crate) mod reloc;
pub mod sites;

use core::fmt;

use orc_elf::ElfFile;

pub use alternatives::{AltFlags, AltInstr, AltLayout, AltPolicy, SpecialFeature};
pub use annotations::{Annotation, AnnotationKind, NonStandardFrame, NonStandardTarget, SiteRule};
pub use extable::ExEntry;
pub use hints::{HintBase, HintKind, HintLayout, HintTypes, UnwindHint};
pub use jump_table::{JumpEntry, JumpLayout};
pub use paravirt::ParaSite;
pub use reloc::{
    remove_extable_bias, AddressMap, Location, RelocTarget, R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_PC32, R_X86_64_PC64,
    STB_GLOBAL, STB_LOCAL, STB_WEAK,
};
pub use sites::StaticCallSite;

use crate::era::KernelEra;
use crate::error::SpecialSectionError;

/// The sections objtool writes, read back. `None`: the file has no such section.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ObjtoolOutputs<'data> {
    /// `.static_call_sites`.
    pub static_call_sites: Option<Vec<StaticCallSite<'data>>>,
    /// `.retpoline_sites`.
    pub retpoline_sites: Option<Vec<Location>>,
    /// `.return_sites`.
    pub return_sites: Option<Vec<Location>>,
    /// `.call_sites`.
    pub call_sites: Option<Vec<Location>>,
    /// `.ibt_endbr_seal`.
    pub ibt_endbr_seal: Option<Vec<Location>>,
    /// `.cfi_sites`.
    pub cfi_sites: Option<Vec<Location>>,
    /// `__mcount_loc`.
    pub mcount_loc: Option<Vec<Location>>,
}

impl<'data> ObjtoolOutputs<'data> {
    /// Reads all of them.
    pub fn read(file: &ElfFile<'data>) -> Result<Self, SpecialSectionError> {
        let [retpoline, ret, call, seal, cfi] = sites::SITE_SECTIONS;
        Ok(ObjtoolOutputs {
            static_call_sites: sites::read_static_call_sites(file)?,
            retpoline_sites: sites::read_site_table(file, retpoline)?,
            return_sites: sites::read_site_table(file, ret)?,
            call_sites: sites::read_site_table(file, call)?,
            ibt_endbr_seal: sites::read_site_table(file, seal)?,
            cfi_sites: sites::read_site_table(file, cfi)?,
            mcount_loc: sites::read_mcount_loc(file)?,
        })
    }
}

/// Every special section of one file, parsed for one kernel era.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SpecialSections<'data> {
    /// The era the layouts were chosen for.
    pub era: KernelEra,
    /// `.altinstructions`, in table order.
    pub alternatives: Vec<AltInstr>,
    /// `__jump_table`, in table order.
    pub jump_labels: Vec<JumpEntry<'data>>,
    /// `__ex_table`, in table order.
    pub exception_table: Vec<ExEntry<'data>>,
    /// True if the file has a `.discard.unwind_hints` section (objtool's `file->hints`, set
    /// even when the section is empty).
    pub has_unwind_hints_section: bool,
    /// `.discard.unwind_hints`, in table order.
    pub unwind_hints: Vec<UnwindHint<'data>>,
    /// All instruction annotations: the per-kind sections in the order of
    /// [`annotations::separate_sections`] (relocation order within each), then the unified
    /// section's entries. `.discard.unreachable` is included whatever the era; eras that do
    /// not read it say so ([`KernelEra::reads_unreachable_annotations`]).
    pub annotations: Vec<Annotation<'data>>,
    /// `.discard.func_stack_frame_non_standard`.
    pub non_standard_frames: Vec<NonStandardFrame<'data>>,
    /// `.parainstructions`.
    pub paravirt: Vec<ParaSite>,
    /// objtool's output sections, when present.
    pub outputs: ObjtoolOutputs<'data>,
}

impl<'data> SpecialSections<'data> {
    /// Reads every special section of `file` with the layouts of `era`. Stops at the first
    /// section that cannot be read (the per-section `read_*` functions are there for callers
    /// that want to go on).
    pub fn read(file: &ElfFile<'data>, era: KernelEra) -> Result<Self, SpecialSectionError> {
        let alternatives = alternatives::read_alternatives_for(file, era)?;
        let jump_labels = jump_table::read_jump_table_for(file, era)?;
        let exception_table = extable::read_extable(file)?;
        let has_unwind_hints_section =
            file.section_by_name(hints::SECTION).map_err(|e| error_elf(hints::SECTION, e))?.is_some();
        let unwind_hints = hints::read_unwind_hints_for(file, era)?;
        let mut annotations = Vec::new();
        for (name, kind, rule) in annotations::separate_sections(era) {
            annotations.extend(annotations::read_annotation_section(file, name, kind, rule)?);
        }
        annotations.extend(annotations::read_unified_annotations(file)?);
        let non_standard_frames = annotations::read_non_standard_frames(file)?;
        let paravirt = paravirt::read_parainstructions(file)?;
        let outputs = ObjtoolOutputs::read(file)?;
        Ok(SpecialSections {
            era,
            alternatives,
            jump_labels,
            exception_table,
            has_unwind_hints_section,
            unwind_hints,
            annotations,
            non_standard_frames,
            paravirt,
            outputs,
        })
    }

    /// The annotations of one kind.
    pub fn annotations_of(&self, kind: AnnotationKind) -> impl Iterator<Item = &Annotation<'data>> + '_ {
        self.annotations.iter().filter(move |a| a.kind == kind)
    }

    /// How many records of each kind.
    pub fn counts(&self) -> Counts {
        let n = |k| self.annotations_of(k).count();
        let len = |v: &Option<Vec<Location>>| v.as_ref().map_or(0, Vec::len);
        Counts {
            alternatives: self.alternatives.len(),
            jump_labels: self.jump_labels.len(),
            exception_table: self.exception_table.len(),
            unwind_hints: self.unwind_hints.len(),
            unreachable: n(AnnotationKind::Unreachable),
            reachable: n(AnnotationKind::Reachable),
            intra_function_calls: n(AnnotationKind::IntraFunctionCall),
            retpoline_safe: n(AnnotationKind::RetpolineSafe),
            noendbr: n(AnnotationKind::NoEndbr),
            ignore_alts: n(AnnotationKind::IgnoreAlts),
            instr_begin: n(AnnotationKind::InstrBegin),
            instr_end: n(AnnotationKind::InstrEnd),
            unret_begin: n(AnnotationKind::UnretBegin),
            ibt_endbr_noseal: n(AnnotationKind::IbtEndbrNoseal),
            other_annotations: self.annotations.iter().filter(|a| matches!(a.kind, AnnotationKind::Other(_))).count(),
            non_standard_frames: self.non_standard_frames.len(),
            paravirt: self.paravirt.len(),
            static_call_sites: self.outputs.static_call_sites.as_ref().map_or(0, Vec::len),
            retpoline_sites: len(&self.outputs.retpoline_sites),
            return_sites: len(&self.outputs.return_sites),
            call_sites: len(&self.outputs.call_sites),
            ibt_endbr_seal: len(&self.outputs.ibt_endbr_seal),
            cfi_sites: len(&self.outputs.cfi_sites),
            mcount_loc: len(&self.outputs.mcount_loc),
        }
    }
}

fn error_elf(section: &str, e: orc_elf::ElfError) -> SpecialSectionError {
    SpecialSectionError { section: section.to_string(), at: None, problem: crate::error::Problem::Elf(e) }
}

/// Record counts per kind, for reports. Adds up with `+=`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[allow(missing_docs)]
pub struct Counts {
    pub alternatives: usize,
    pub jump_labels: usize,
    pub exception_table: usize,
    pub unwind_hints: usize,
    pub unreachable: usize,
    pub reachable: usize,
    pub intra_function_calls: usize,
    pub retpoline_safe: usize,
    pub noendbr: usize,
    pub ignore_alts: usize,
    pub instr_begin: usize,
    pub instr_end: usize,
    pub unret_begin: usize,
    pub ibt_endbr_noseal: usize,
    pub other_annotations: usize,
    pub non_standard_frames: usize,
    pub paravirt: usize,
    pub static_call_sites: usize,
    pub retpoline_sites: usize,
    pub return_sites: usize,
    pub call_sites: usize,
    pub ibt_endbr_seal: usize,
    pub cfi_sites: usize,
    pub mcount_loc: usize,
}

impl Counts {
    /// `(name, count)` pairs, in a fixed order.
    pub fn fields(&self) -> [(&'static str, usize); 24] {
        [
            (".altinstructions", self.alternatives),
            ("__jump_table", self.jump_labels),
            ("__ex_table", self.exception_table),
            (".discard.unwind_hints", self.unwind_hints),
            (".discard.unreachable", self.unreachable),
            (".discard.reachable", self.reachable),
            (".discard.intra_function_calls", self.intra_function_calls),
            (".discard.retpoline_safe", self.retpoline_safe),
            (".discard.noendbr", self.noendbr),
            (".discard.ignore_alts", self.ignore_alts),
            (".discard.instr_begin", self.instr_begin),
            (".discard.instr_end", self.instr_end),
            (".discard.validate_unret", self.unret_begin),
            (".discard.ibt_endbr_noseal", self.ibt_endbr_noseal),
            ("annotate_insn (other types)", self.other_annotations),
            (".discard.func_stack_frame_non_standard", self.non_standard_frames),
            (".parainstructions", self.paravirt),
            (".static_call_sites", self.static_call_sites),
            (".retpoline_sites", self.retpoline_sites),
            (".return_sites", self.return_sites),
            (".call_sites", self.call_sites),
            (".ibt_endbr_seal", self.ibt_endbr_seal),
            (".cfi_sites", self.cfi_sites),
            ("__mcount_loc", self.mcount_loc),
        ]
    }
}

impl core::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        add!(
            alternatives,
            jump_labels,
            exception_table,
            unwind_hints,
            unreachable,
            reachable,
            intra_function_calls,
            retpoline_safe,
            noendbr,
            ignore_alts,
            instr_begin,
            instr_end,
            unret_begin,
            ibt_endbr_noseal,
            other_annotations,
            non_standard_frames,
            paravirt,
            static_call_sites,
            retpoline_sites,
            return_sites,
            call_sites,
            ibt_endbr_seal,
            cfi_sites,
            mcount_loc
        );
    }
}

impl fmt::Display for Counts {
    /// One `name count` line per non-zero count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, n) in self.fields() {
            if n != 0 {
                writeln!(f, "{name} {n}")?;
            }
        }
        Ok(())
    }
}
