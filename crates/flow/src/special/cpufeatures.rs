//! `X86_FEATURE_*` numbers (word * 32 + bit) that matter for alternatives, per kernel era.
//!
//! Only the features this project has a use for (objtool's special cases, the mitigation and
//! paravirt features that choose between code sequences, the common instruction-set ones) are
//! listed, for naming them in dumps and diagnostics. Most numbers are the same in 6.1 and
//! 6.12; `LFENCE_RDTSC`, `CLEAR_CPU_BUF`, `INDIRECT_THUNK_ITS` and `CALL_DEPTH`/`FRED`/
//! `USER_SHSTK` (absent in 6.1) are not.

use crate::era::KernelEra;

/// `X86_FEATURE_POPCNT` (4*32+23), the same in every era objtool knows; objtool hard-codes it.
pub const X86_FEATURE_POPCNT: u16 = 4 * 32 + 23;
/// `X86_FEATURE_SMAP` (9*32+20), likewise hard-coded by objtool.
pub const X86_FEATURE_SMAP: u16 = 9 * 32 + 20;
/// `X86_FEATURE_ALWAYS` (3*32+21): the feature every CPU has (`ALT_CALL_ALWAYS`,
/// `ALTERNATIVE_TERNARY`).
pub const X86_FEATURE_ALWAYS: u16 = 3 * 32 + 21;
/// `X86_FEATURE_XENPV` (8*32+16): `ALT_NOT_XEN` is `ALT_NOT(X86_FEATURE_XENPV)`.
pub const X86_FEATURE_XENPV: u16 = 8 * 32 + 16;

/// Number of 32-bit feature words (`NCAPINTS`, 22 in 6.1 and 6.12): `X86_BUG(n)` is
/// `NCAPINTS * 32 + n`.
pub const NCAPINTS: u16 = 22;

/// Names and numbers common to 6.1 and 6.12.
const COMMON: &[(&str, u16)] = &[
    ("CLFLUSH", 19),
    ("XMM2", 26),
    ("SELFSNOOP", 27),
    ("RDTSCP", 59),
    ("CONSTANT_TSC", 104),
    ("ARCH_PERFMON", 107),
    ("REP_GOOD", 112),
    ("ALWAYS", X86_FEATURE_ALWAYS),
    ("XMM4_1", 147),
    ("X2APIC", 149),
    ("POPCNT", X86_FEATURE_POPCNT),
    ("XSAVE", 154),
    ("OSXSAVE", 155),
    ("AVX", 156),
    ("HYPERVISOR", 159),
    ("3DNOWPREFETCH", 200),
    ("PTI", 235),
    ("KERNEL_IBRS", 236),
    ("RSB_VMEXIT", 237),
    ("MSR_SPEC_CTRL", 240),
    ("USE_IBPB", 245),
    ("ZEN", 252),
    ("VMMCALL", 271),
    ("XENPV", X86_FEATURE_XENPV),
    ("VMCALL", 274),
    ("VMW_VMMCALL", 275),
    ("VCPUPREEMPT", 277),
    ("TDX_GUEST", 278),
    ("FSGSBASE", 288),
    ("SMEP", 295),
    ("ERMS", 297),
    ("SMAP", X86_FEATURE_SMAP),
    ("CLFLUSHOPT", 311),
    ("CLWB", 312),
    ("XSAVEOPT", 320),
    ("XSAVES", 323),
    ("ENTRY_IBPB", 362),
    ("RETPOLINE", 364),
    ("RETPOLINE_LFENCE", 365),
    ("RETHUNK", 366),
    ("UNRET", 367),
    ("USE_IBPB_FW", 368),
    ("RSB_VMEXIT_LITE", 369),
    ("MSR_TSX_CTRL", 372),
    ("SRSO", 376),
    ("SRSO_ALIAS", 377),
    ("IBPB_ON_VMEXIT", 378),
    ("AMD_PPIN", 439),
    ("NRIPS", 483),
    ("TSCRATEMSR", 484),
    ("FLUSHBYASID", 486),
    ("DECODEASSISTS", 487),
    ("V_SPEC_CTRL", 500),
    ("PKU", 515),
    ("OSPKE", 516),
    ("LA57", 528),
    ("RDPID", 534),
    ("MOVDIR64B", 540),
    ("ENQCMD", 541),
    ("SMCA", 547),
    ("FSRM", 580),
    ("HYBRID_CPU", 591),
    ("ARCH_LBR", 595),
    ("IBT", 596),
    ("FLUSH_L1D", 604),
    ("SEV_ES", 611),
    ("SRSO_NO", 669),
    ("CLEAR_BHB_LOOP", 673),
    ("CLEAR_BHB_LOOP_ON_VMEXIT", 676),
    ("CLEAR_CPU_BUF_VM", 685),
    ("IBPB_EXIT_TO_USER", 686),
];

/// 6.12 only, or numbered differently in 6.1.
const ONLY_6_12: &[(&str, u16)] = &[
    ("CLEAR_CPU_BUF", 114),
    ("CALL_DEPTH", 371),
    ("USER_SHSTK", 375),
    ("FSRS", 395),
    ("FRED", 401),
    ("DEBUG_SWAP", 622),
    ("NO_NESTED_DATA_BP", 640),
    ("LFENCE_RDTSC", 642),
    ("SRSO_BP_SPEC_REDUCE", 671),
    ("INDIRECT_THUNK_ITS", 678),
];

/// 6.1 only, or numbered differently in 6.12.
const ONLY_6_1: &[(&str, u16)] = &[("LFENCE_RDTSC", 114), ("CLEAR_CPU_BUF", 370), ("INDIRECT_THUNK_ITS", 677)];

fn era_table(era: KernelEra) -> &'static [(&'static str, u16)] {
    // The two tables were taken from Debian's 6.1.192 and 6.12.117; other eras use the nearer.
    if era.at_least(6, 6) {
        ONLY_6_12
    } else {
        ONLY_6_1
    }
}

/// The number of `X86_FEATURE_<name>` in `era` (`name` without the prefix), if listed here.
pub fn number(era: KernelEra, name: &str) -> Option<u16> {
    era_table(era).iter().chain(COMMON).find(|(n, _)| *n == name).map(|&(_, v)| v)
}

/// The name of feature `number` in `era` (without `X86_FEATURE_`), if listed here.
/// `X86_BUG(n)` numbers (from `NCAPINTS * 32` on) are named by [`bug_name`].
pub fn name(era: KernelEra, number: u16) -> Option<&'static str> {
    era_table(era).iter().chain(COMMON).find(|(_, v)| *v == number).map(|&(n, _)| n)
}

/// `X86_BUG_*` numbers (the `n` of `X86_BUG(n)`) used by alternatives in the corpus modules.
const BUGS: &[(&str, u16)] =
    &[("AMD_TLB_MMATCH", 3), ("CLFLUSH_MONITOR", 7), ("NULL_SEG", 10), ("MONITOR", 12), ("DIV0", 33)];

/// The name (without `X86_BUG_`) of feature number `number` when it is a bug bit
/// (`NCAPINTS * 32 + n`), if listed here.
pub fn bug_name(number: u16) -> Option<&'static str> {
    let n = number.checked_sub(NCAPINTS * 32)?;
    BUGS.iter().find(|(_, v)| *v == n).map(|&(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert_eq!(number(KernelEra::V6_12, "POPCNT"), Some(151));
        assert_eq!(number(KernelEra::V6_12, "SMAP"), Some(308));
        assert_eq!(number(KernelEra::V6_1, "SMAP"), Some(308));
        assert_eq!(number(KernelEra::V6_12, "LFENCE_RDTSC"), Some(642));
        assert_eq!(number(KernelEra::V6_1, "LFENCE_RDTSC"), Some(114));
        assert_eq!(name(KernelEra::V6_12, 114), Some("CLEAR_CPU_BUF"));
        assert_eq!(name(KernelEra::V6_1, 114), Some("LFENCE_RDTSC"));
        assert_eq!(name(KernelEra::V6_1, 371), None);
        assert_eq!(number(KernelEra::V6_12, "NOPE"), None);
        assert_eq!(name(KernelEra::V6_12, 112), Some("REP_GOOD"));
        assert_eq!(bug_name(NCAPINTS * 32 + 33), Some("DIV0"));
        assert_eq!(bug_name(112), None);
        let mut all: Vec<u16> = COMMON.iter().chain(ONLY_6_12).map(|&(_, v)| v).collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0] != w[1]), "two 6.12 names for one number");
        let mut all: Vec<u16> = COMMON.iter().chain(ONLY_6_1).map(|&(_, v)| v).collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0] != w[1]), "two 6.1 names for one number");
    }
}
