//! Functions that never return, as objtool knows them without looking at their code.
//!
//! The compiler does not record `__noreturn` in the object, so objtool carries a list of the
//! kernel's global noreturn functions: hard-coded in `check.c` in 6.1, in
//! `tools/objtool/noreturns.h` by 6.12 (the move happened around 6.5; that boundary is not
//! pinned, [`Noreturns::for_era`] uses it). A call to one ends the path. Functions not on the
//! list are analysed (a local function with no return whose sibling calls all end in
//! noreturn functions is noreturn too); that is the path walker's business.
//!
//! The lists below are the ones of the two corpus kernels, Debian's 6.1.192 and 6.12.117;
//! other eras get the nearer one ([`Noreturns::for_era`]).

use crate::era::KernelEra;
use crate::special::reloc::{STB_GLOBAL, STB_WEAK};

/// objtool 6.1's `global_noreturns[]` (sorted).
pub const GLOBAL_NORETURNS_6_1: &[&str] = &[
    "__invalid_creds",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__ubsan_handle_builtin_unreachable",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "fortify_panic",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "lbug_with_loc",
    "machine_real_restart",
    "make_task_dead",
    "panic",
    "rewind_stack_and_make_dead",
    "sev_es_terminate",
    "snp_abort",
    "stop_this_cpu",
    "usercopy_abort",
    "xen_start_kernel",
];

/// objtool 7.2's `noreturns.h` (sorted).
pub const GLOBAL_NORETURNS_7_2: &[&str] = &[
    "__fortify_panic",
    "__ia32_sys_exit",
    "__ia32_sys_exit_group",
    "__kunit_abort",
    "__module_put_and_kthread_exit",
    "__stack_chk_fail",
    "__tdx_hypercall_failed",
    "__ubsan_handle_builtin_unreachable",
    "__x64_sys_exit",
    "__x64_sys_exit_group",
    "acpi_processor_ffh_play_dead",
    "arch_cpu_idle_dead",
    "bch2_trans_in_restart_error",
    "bch2_trans_restart_error",
    "bch2_trans_unlocked_or_in_restart_error",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "hlt_play_dead",
    "hv_ghcb_terminate",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "machine_real_restart",
    "make_task_dead",
    "mpt_halt_firmware",
    "mwait_play_dead",
    "native_play_dead",
    "nmi_panic_self_stop",
    "panic",
    "panic_smp_self_stop",
    "rest_init",
    "rewind_stack_and_make_dead",
    "rust_begin_unwind",
    "sev_es_terminate",
    "start_kernel",
    "stop_this_cpu",
    "usercopy_abort",
    "vpanic",
    "x86_64_start_kernel",
    "x86_64_start_reservations",
    "xen_cpu_bringup_again",
    "xen_start_kernel",
];

/// objtool 6.12's `noreturns.h` (sorted).
pub const GLOBAL_NORETURNS_6_12: &[&str] = &[
    "__fortify_panic",
    "__ia32_sys_exit",
    "__ia32_sys_exit_group",
    "__kunit_abort",
    "__module_put_and_kthread_exit",
    "__reiserfs_panic",
    "__stack_chk_fail",
    "__tdx_hypercall_failed",
    "__ubsan_handle_builtin_unreachable",
    "__x64_sys_exit",
    "__x64_sys_exit_group",
    "arch_cpu_idle_dead",
    "bch2_trans_in_restart_error",
    "bch2_trans_restart_error",
    "bch2_trans_unlocked_error",
    "cpu_bringup_and_idle",
    "cpu_startup_entry",
    "do_exit",
    "do_group_exit",
    "do_task_dead",
    "ex_handler_msr_mce",
    "hlt_play_dead",
    "hv_ghcb_terminate",
    "kthread_complete_and_exit",
    "kthread_exit",
    "kunit_try_catch_throw",
    "machine_real_restart",
    "make_task_dead",
    "mpt_halt_firmware",
    "nmi_panic_self_stop",
    "panic",
    "panic_smp_self_stop",
    "rest_init",
    "rewind_stack_and_make_dead",
    "rust_begin_unwind",
    "rust_helper_BUG",
    "sev_es_terminate",
    "snp_abort",
    "start_kernel",
    "stop_this_cpu",
    "usercopy_abort",
    "x86_64_start_kernel",
    "x86_64_start_reservations",
    "xen_cpu_bringup_again",
    "xen_start_kernel",
];

/// What the list alone says about a called function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NoreturnVerdict {
    /// Never returns: the path ends at the call.
    Noreturn,
    /// Returns (weak functions: another definition may replace this one).
    Returns,
    /// The list does not say; look at the function's code if it is in the file, else it
    /// returns.
    Analyse,
}

/// One era's noreturn knowledge.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Noreturns {
    /// The kernel the list was taken from.
    pub taken_from: &'static str,
    /// The global list, sorted.
    pub names: &'static [&'static str],
    /// 6.12: a *weak* symbol whose name is listed is noreturn too (6.1: never).
    pub weak_listed_is_noreturn: bool,
    /// 6.12: Rust panic helpers (mangled `_R...` names) are recognised by pattern
    /// ([`is_rust_noreturn`]).
    pub rust_patterns: bool,
    /// The name endings of those Rust helpers ([`RUST_SUFFIXES_6_12`], [`RUST_SUFFIXES_7_2`]).
    pub rust_suffixes: &'static [&'static str],
}

impl Noreturns {
    /// objtool 6.1's.
    pub const V6_1: Noreturns = Noreturns {
        taken_from: "6.1.192",
        names: GLOBAL_NORETURNS_6_1,
        weak_listed_is_noreturn: false,
        rust_patterns: false,
        rust_suffixes: &[],
    };
    /// objtool 6.12's.
    pub const V6_12: Noreturns = Noreturns {
        taken_from: "6.12.117",
        names: GLOBAL_NORETURNS_6_12,
        weak_listed_is_noreturn: true,
        rust_patterns: true,
        rust_suffixes: RUST_SUFFIXES_6_12,
    };
    /// objtool 7.2's.
    pub const V7_2: Noreturns = Noreturns {
        taken_from: "7.2.13",
        names: GLOBAL_NORETURNS_7_2,
        weak_listed_is_noreturn: true,
        rust_patterns: true,
        rust_suffixes: RUST_SUFFIXES_7_2,
    };

    /// The list for `era`: 7.2's from 6.19 on (the boundary of the other 7.x rules, not
    /// pinned), 6.12's from 6.5 on (when the list moved to `noreturns.h`), 6.1's before. Exact
    /// for 6.1, 6.12 and 7.2 only.
    pub const fn for_era(era: KernelEra) -> Noreturns {
        if era.at_least(6, 19) {
            Noreturns::V7_2
        } else if era.at_least(6, 5) {
            Noreturns::V6_12
        } else {
            Noreturns::V6_1
        }
    }

    /// True if `name` is on the global list.
    pub fn is_listed(&self, name: &str) -> bool {
        self.names.binary_search(&name).is_ok()
    }

    /// objtool's verdict before analysis for a function symbol called `name` with `STB_*`
    /// `binding` (undefined callees included: they are global symbols).
    pub fn verdict(&self, name: &str, binding: u8) -> NoreturnVerdict {
        if self.weak_listed_is_noreturn {
            if (binding == STB_GLOBAL || binding == STB_WEAK)
                && ((self.rust_patterns && is_rust_noreturn_with(name, self.rust_suffixes)) || self.is_listed(name))
            {
                return NoreturnVerdict::Noreturn;
            }
            if binding == STB_WEAK {
                return NoreturnVerdict::Returns;
            }
        } else {
            if binding == STB_WEAK {
                return NoreturnVerdict::Returns;
            }
            if binding == STB_GLOBAL && self.is_listed(name) {
                return NoreturnVerdict::Noreturn;
            }
        }
        NoreturnVerdict::Analyse
    }
}

/// objtool 6.12's Rust heuristics: mangled (`_R`) names of core panic helpers, which have no
/// stable names (crate disambiguators differ by compiler).
pub fn is_rust_noreturn(name: &str) -> bool {
    is_rust_noreturn_with(name, RUST_SUFFIXES_6_12)
}

/// The Rust heuristics with one era's name endings (the infixes have not changed).
pub fn is_rust_noreturn_with(name: &str, suffixes: &[&str]) -> bool {
    if !name.starts_with("_R") {
        return false;
    }
    const INFIXES: &[&str] = &["_4core9panicking13assert_failed", "_4core9panicking11panic_const24panic_const_"];
    suffixes.iter().any(|s| name.ends_with(s))
        || INFIXES.iter().any(|s| name.contains(s))
        || (name.contains("_4core5slice5index") && name.contains("slice_") && name.ends_with("_fail"))
}

/// objtool 7.2's Rust name endings: 6.12's without `result::unwrap_failed::unwrap_failed_inner`,
/// plus three parse and `str` helpers.
pub const RUST_SUFFIXES_7_2: &[&str] = &[
    "_4core3num20from_str_radix_panic",
    "_4core3num22from_ascii_radix_panic",
    "_4core3num28from_ascii_bytes_radix_panic",
    "_4core3str16slice_error_fail",
    "_4core5sliceSp15copy_from_slice17len_mismatch_fail",
    "_4core6option13expect_failed",
    "_4core6option13unwrap_failed",
    "_4core6result13unwrap_failed",
    "_4core9panicking5panic",
    "_4core9panicking9panic_fmt",
    "_4core9panicking14panic_explicit",
    "_4core9panicking14panic_nounwind",
    "_4core9panicking18panic_bounds_check",
    "_4core9panicking18panic_nounwind_fmt",
    "_4core9panicking19assert_failed_inner",
    "_4core9panicking30panic_null_pointer_dereference",
    "_4core9panicking32panic_null_reference_constructed",
    "_4core9panicking36panic_misaligned_pointer_dereference",
    "_7___rustc17rust_begin_unwind",
];

/// objtool 6.12's Rust name endings.
pub const RUST_SUFFIXES_6_12: &[&str] = &[
        "_4core3num22from_ascii_radix_panic",
        "_4core5sliceSp15copy_from_slice17len_mismatch_fail",
        "_4core6option13expect_failed",
        "_4core6option13unwrap_failed",
        "_4core6result13unwrap_failed",
        "_4core6result13unwrap_failed19unwrap_failed_inner",
        "_4core9panicking5panic",
        "_4core9panicking9panic_fmt",
        "_4core9panicking14panic_explicit",
        "_4core9panicking14panic_nounwind",
        "_4core9panicking18panic_bounds_check",
        "_4core9panicking18panic_nounwind_fmt",
        "_4core9panicking19assert_failed_inner",
        "_4core9panicking30panic_null_pointer_dereference",
        "_4core9panicking32panic_null_reference_constructed",
        "_4core9panicking36panic_misaligned_pointer_dereference",
        "_7___rustc17rust_begin_unwind",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::special::reloc::STB_LOCAL;

    #[test]
    fn lists_are_sorted() {
        for list in [GLOBAL_NORETURNS_6_1, GLOBAL_NORETURNS_6_12, GLOBAL_NORETURNS_7_2] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
        assert_eq!(GLOBAL_NORETURNS_6_1.len(), 25);
        assert_eq!(GLOBAL_NORETURNS_6_12.len(), 45);
    }

    #[test]
    fn verdicts() {
        let n12 = Noreturns::for_era(KernelEra::V6_12);
        let n1 = Noreturns::for_era(KernelEra::V6_1);
        assert_eq!(n12.verdict("panic", STB_GLOBAL), NoreturnVerdict::Noreturn);
        assert_eq!(n12.verdict("panic", STB_WEAK), NoreturnVerdict::Noreturn);
        assert_eq!(n1.verdict("panic", STB_WEAK), NoreturnVerdict::Returns);
        assert_eq!(n1.verdict("panic", STB_GLOBAL), NoreturnVerdict::Noreturn);
        assert_eq!(n12.verdict("panic", STB_LOCAL), NoreturnVerdict::Analyse);
        assert_eq!(n12.verdict("printk", STB_WEAK), NoreturnVerdict::Returns);
        assert_eq!(n12.verdict("printk", STB_GLOBAL), NoreturnVerdict::Analyse);
        assert_eq!(n1.verdict("lbug_with_loc", STB_GLOBAL), NoreturnVerdict::Noreturn);
        assert_eq!(n12.verdict("lbug_with_loc", STB_GLOBAL), NoreturnVerdict::Analyse);
        assert_eq!(n12.verdict("__fortify_panic", STB_GLOBAL), NoreturnVerdict::Noreturn);
        assert_eq!(n1.verdict("fortify_panic", STB_GLOBAL), NoreturnVerdict::Noreturn);
        let rust = "_RNvNtCs1234_4core9panicking9panic_fmt";
        assert_eq!(n12.verdict(rust, STB_GLOBAL), NoreturnVerdict::Noreturn);
        assert_eq!(n1.verdict(rust, STB_GLOBAL), NoreturnVerdict::Analyse);
        assert!(is_rust_noreturn("_RNvNtNtCsabc_4core5slice5index24slice_end_index_len_fail"));
        assert!(!is_rust_noreturn("_RNvNtNtCsabc_4core5slice5index24slice_end_index_len"));
        assert!(!is_rust_noreturn("core9panicking9panic_fmt"));
    }
}
