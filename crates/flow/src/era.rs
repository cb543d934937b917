//! Which kernel an object was built for, as far as the layouts of its special sections care.

use core::fmt;

use orc_elf::ElfFile;

use crate::special::alternatives::AltLayout;
use crate::special::annotations::SiteRule;
use crate::special::hints::{HintLayout, HintTypes};
use crate::special::jump_table::JumpLayout;

/// A kernel release, `major.minor`. Every layout question about a special section is answered
/// by one method here, so that no parser compares version numbers itself.
///
/// Objects carry no version of their own: a final `.ko` names its kernel in `.modinfo`
/// (`vermagic=`, see [`KernelEra::from_file`]), but the pre-link objects objtool really sees do
/// not, so callers that read those pass the era explicitly.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KernelEra {
    /// `6` of 6.12.
    pub major: u16,
    /// `12` of 6.12.
    pub minor: u16,
}

impl KernelEra {
    /// Debian 12's 6.12 kernel, the project's main target.
    pub const V6_12: KernelEra = KernelEra::new(6, 12);
    /// Debian 12's 6.1 kernel, the second corpus.
    pub const V6_1: KernelEra = KernelEra::new(6, 1);
    /// Debian unstable's 7.2 kernel, the third corpus (ORC layout v4).
    pub const V7_2: KernelEra = KernelEra::new(7, 2);

    /// The era of release `major.minor`.
    pub const fn new(major: u16, minor: u16) -> KernelEra {
        KernelEra { major, minor }
    }

    /// True from release `major.minor` on.
    pub const fn at_least(self, major: u16, minor: u16) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }

    /// Parses the leading `MAJOR.MINOR` of `6.12`, `6.1.0-56-amd64`, `6.12.117+deb12-amd64`.
    pub fn parse(text: &str) -> Option<KernelEra> {
        let v = orc_elf::modinfo::parse_release(text)?;
        Some(KernelEra::new(u16::try_from(v.major).ok()?, u16::try_from(v.minor).ok()?))
    }

    /// The kernel a file names: a module's `vermagic=` in `.modinfo`, or the `Linux version`
    /// banner of a vmlinux. `None` for pre-link objects, which name none.
    pub fn from_file(file: &ElfFile<'_>) -> Option<KernelEra> {
        let v = orc_elf::modinfo::kernel_version(file)?;
        Some(KernelEra::new(u16::try_from(v.major).ok()?, u16::try_from(v.minor).ok()?))
    }

    /// Layout of `.altinstructions` entries: 13 bytes before 5.13, 12 bytes in 5.13–6.2,
    /// 14 bytes from 6.3 on.
    pub const fn alt_layout(self) -> AltLayout {
        if self.at_least(6, 3) {
            AltLayout::FtFlags14
        } else if self.at_least(5, 13) {
            AltLayout::Cpuid12
        } else {
            AltLayout::Padlen13
        }
    }

    /// Layout of `__jump_table` entries: 24 absolute bytes before 4.20, 16 relative bytes
    /// since.
    pub const fn jump_layout(self) -> JumpLayout {
        if self.at_least(4, 20) {
            JumpLayout::Relative16
        } else {
            JumpLayout::Absolute24
        }
    }

    /// Layout of `.discard.unwind_hints` records (always 12 bytes; what byte 8 and 9 hold
    /// changes).
    pub const fn hint_layout(self) -> HintLayout {
        if self.at_least(6, 4) {
            HintLayout::Signal
        } else if self.at_least(6, 3) {
            HintLayout::SignalEnd
        } else {
            HintLayout::End
        }
    }

    /// The ORC layout of this era's tables, whose register numbering a hint's `sp_reg` byte
    /// also uses (renumbered in 7.1). A 6.12.y/7.0.y kernel with the AX backport cannot be
    /// told from its version: its `.orc_header` says (`Layout::V3Ax`).
    pub const fn orc_layout(self) -> orc_format::Layout {
        orc_format::Layout::from_kernel_version(self.major as u32, self.minor as u32)
    }

    /// What the hint `type` byte means in this era.
    pub const fn hint_types(self) -> HintTypes {
        if self.at_least(6, 4) {
            HintTypes::V6_4
        } else if self.at_least(5, 19) {
            HintTypes::V5_19
        } else if self.at_least(5, 12) {
            HintTypes::V5_12
        } else if self.at_least(5, 8) {
            HintTypes::V5_8
        } else if self.at_least(5, 7) {
            HintTypes::V5_7
        } else {
            HintTypes::V4_14
        }
    }

    /// How objtool finds the hinted instruction from an unwind hint's relocation, and the
    /// unreachable/reachable annotations'.
    ///
    /// 6.1 takes the addend whatever the symbol (unwind hints) or only section symbols
    /// (reachable); 6.12 takes section symbols (addend) and `.L` local labels (their value).
    /// The change came with LoongArch support (local-label relocations); its exact release is
    /// not pinned here: 6.6 is used as the boundary. GNU `as` on x86 always relocates against
    /// section symbols, so the two rules agree on every object it made.
    pub const fn hint_site_rule(self) -> SiteRule {
        if self.at_least(6, 6) {
            SiteRule::SectionOrLocalLabel
        } else {
            SiteRule::AddendOnly
        }
    }

    /// The rule for `.discard.reachable` and `.discard.unreachable`: see
    /// [`KernelEra::hint_site_rule`].
    pub const fn reachable_site_rule(self) -> SiteRule {
        if self.at_least(6, 6) {
            SiteRule::SectionOrLocalLabel
        } else {
            SiteRule::SectionSymbolOnly
        }
    }

    /// True if objtool of this era reads `.discard.unreachable` (it was dropped before 6.12,
    /// when `unreachable()` stopped emitting it).
    pub const fn reads_unreachable_annotations(self) -> bool {
        !self.at_least(6, 12)
    }

    /// True if this era's annotations live in the unified `.discard.annotate_insn` section
    /// (6.13+) rather than one `.discard.*` section per kind. 6.12 still uses the separate
    /// sections.
    pub const fn unified_annotations(self) -> bool {
        self.at_least(6, 13)
    }

    /// True if objtool's `--prefix=N` makes a `__pfx_` symbol (and gives its NOPs the function's
    /// entry state) only for the functions `__patchable_function_entries` points at, the
    /// compiler's padded functions, without looking at the bytes; false where it takes every
    /// function preceded by exactly N bytes of NOPs (6.12). objtool 7.2 does the former
    /// (checked on Debian's 7.2 modules: assembly functions padded with NOPs get no prefix and
    /// no ORC there). The change came with the reworked prefix/kCFI options of the klp-build
    /// preparation series; its release is not pinned here: 6.19 is used as the boundary.
    pub const fn prefix_symbols_from_patchable_entries(self) -> bool {
        self.at_least(6, 19)
    }

    /// Data sections whose relocations objtool's IBT check (`validate_ibt`) skips in this era
    /// besides 6.12's list: objtool 7.2 also skips `__tracepoints` (a tracepoint points at its
    /// static-call trampoline, never branched to indirectly), livepatch's `.init.klp_funcs`,
    /// Clang's `.llvm.call-graph-profile` and `.llvm_bb_addr_map`, and its own `.return_sites`
    /// and `.call_sites`. Not pinned to a release: 6.19 is used as the boundary, as for
    /// [`KernelEra::prefix_symbols_from_patchable_entries`].
    pub const fn ibt_more_ignored_data_sections(self) -> &'static [&'static str] {
        if self.at_least(6, 19) {
            &["__tracepoints", ".init.klp_funcs", ".llvm.call-graph-profile", ".llvm_bb_addr_map", ".return_sites", ".call_sites"]
        } else {
            &[]
        }
    }

    /// True if objtool links a `foo.cold` part to the last local `foo` of its `STT_FILE` scope
    /// (else the last global `foo`) and never relinks it; false where it takes a `foo` by name
    /// and then makes the part a child of whichever function jumps into it (6.12). objtool
    /// 7.2 does the former (a module linked from two objects with a local `foo` each gets both
    /// parts on the second `foo`). Not pinned to a release: 6.19 is used as the boundary.
    pub const fn cold_parents_by_file_scope(self) -> bool {
        self.at_least(6, 19)
    }

    /// True if only the warnings of the branch walk (functions and unwind hints) keep objtool
    /// from looking for unreached instructions; false where the retpoline check's warnings
    /// ("indirect call found in ... build") do too (6.12). objtool 7.2 counts them apart.
    /// Not pinned to a release: 6.19 is used as the boundary.
    pub const fn reachable_check_counts_only_walk_warnings(self) -> bool {
        self.at_least(6, 19)
    }

    /// True if objtool's warning for a call to a function that does not return but is not known
    /// to be noreturn reads "X() missing __noreturn in .c/.h or NORETURN() in noreturns.h"
    /// (7.2); false for "X() is missing a __noreturn annotation" (6.12). Boundary 6.19, not
    /// pinned.
    pub const fn noreturn_warning_names_noreturns_h(self) -> bool {
        self.at_least(6, 19)
    }

    /// True if objtool's warnings name a place after the alias of the symbol containing it (its
    /// symbol lookups return `sym->alias`: for a module's init function, the global
    /// `init_module` rather than the static function), as objtool 7.2 does; false where they
    /// name the symbol found (6.12). Boundary 6.19, not pinned.
    pub const fn warnings_name_aliases(self) -> bool {
        self.at_least(6, 19)
    }

    /// True if objtool's IBT check looks at code relocations to static-call trampolines
    /// (`__SCT__*`) like any other (7.2: "relocation to !ENDBR: __SCT__..." when code takes a
    /// trampoline's address, as `static_call_update` callers do); false where it skips them
    /// (6.12). Boundary 6.19, not pinned.
    pub const fn ibt_checks_static_call_trampolines(self) -> bool {
        self.at_least(6, 19)
    }

    /// True if objtool records the calls of `.altinstr_replacement` like any other (7.2: the
    /// `call BUG_func` of direct-call alternatives are in `.call_sites`); false where it skips
    /// that section when it annotates call sites (6.12). Boundary 6.19, not pinned.
    pub const fn annotates_calls_in_alt_replacements(self) -> bool {
        self.at_least(6, 19)
    }

    /// True if this era has `.parainstructions` (removed in 6.8, when paravirt sites became
    /// alternatives).
    pub const fn has_parainstructions(self) -> bool {
        !self.at_least(6, 8)
    }
}

impl fmt::Display for KernelEra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        assert_eq!(KernelEra::parse("6.12.117+deb12-amd64"), Some(KernelEra::V6_12));
        assert_eq!(KernelEra::parse("6.1.0-56-amd64"), Some(KernelEra::V6_1));
        assert!(KernelEra::V6_1 < KernelEra::V6_12);
        assert!(KernelEra::V6_12.at_least(6, 3));
        assert!(!KernelEra::V6_1.at_least(6, 3));
        assert_eq!(KernelEra::V6_12.to_string(), "6.12");
    }

    #[test]
    fn layouts_of_the_two_corpora() {
        assert_eq!(KernelEra::V6_12.alt_layout(), AltLayout::FtFlags14);
        assert_eq!(KernelEra::V6_1.alt_layout(), AltLayout::Cpuid12);
        assert_eq!(KernelEra::new(5, 10).alt_layout(), AltLayout::Padlen13);
        assert_eq!(KernelEra::V6_12.jump_layout(), JumpLayout::Relative16);
        assert_eq!(KernelEra::new(4, 14).jump_layout(), JumpLayout::Absolute24);
        assert_eq!(KernelEra::V6_12.hint_layout(), HintLayout::Signal);
        assert_eq!(KernelEra::new(6, 3).hint_layout(), HintLayout::SignalEnd);
        assert_eq!(KernelEra::V6_1.hint_layout(), HintLayout::End);
        assert!(KernelEra::V6_1.reads_unreachable_annotations());
        assert!(!KernelEra::V6_12.reads_unreachable_annotations());
        assert!(!KernelEra::V6_12.unified_annotations());
        assert!(KernelEra::V6_1.has_parainstructions());
        assert!(!KernelEra::V6_12.has_parainstructions());
    }
}
