//! Patch sites and the code each one can hold at run time, built byte for byte the way the
//! kernel writes it.
//!
//! | site | choices |
//! |---|---|
//! | `.altinstructions` | the original (after `optimize_nops()`); each entry's replacement copied over the site, padded with `0x90` to the site's length, then `optimize_nops()`; an `ALT_FLAG_DIRECT_CALL` entry twice: a direct `call` (5 bytes) plus padding, and all NOPs (the pointer held `nop_func`) |
//! | `__jump_table` | the site's NOP (`x86_nops[2]` or `x86_nops[5]`) and a `jmp` of the same length to the target |
//! | `.parainstructions` (before 6.8) | what `apply_paravirt()` writes: a direct `call` plus `add_nops()` padding, or all NOPs (`_paravirt_nop`) |
//!
//! Site length of an alternative: 6.12 gives every entry of a run of consecutive entries for
//! one site the longest `instrlen` of the run (nested `ALTERNATIVE()`s); 6.1 uses each entry's
//! own. Relocations of the replacement's branches are not rewritten into the bytes: every byte
//! carries its [`Origin`], and a branch's target is resolved from the relocation at its
//! origin, which is where the kernel's fix-ups make it point (`__apply_relocation()` in 6.12,
//! the first-instruction `call`/`jmp` fix-ups of 6.1). 6.12's shortening of such a `jmp` to
//! `jmp8` plus `int3`s is not reproduced: it changes neither the state nor where the jump goes.

use orc_elf::ElfFile;
use orc_flow::special::{cpufeatures, AltInstr, JumpEntry, ParaSite};
use orc_flow::{KernelEra, Location};

use crate::nops::{NopRules, NOPS};
use crate::state::Unmodelled;

/// Where a byte of the patched code came from, so that a branch displacement in it can be
/// resolved.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    /// The site's own section, at this offset (its relocations apply).
    Site(u64),
    /// Replacement code (`.altinstr_replacement`) at this location (its relocations apply).
    Replacement(Location),
    /// Written by the patcher: a displacement in it is relative to the patched code.
    Synthetic,
    /// The displacement of a jump written by the patcher to this place.
    Branch(Location),
    /// The displacement of a call the patcher wrote to a function elsewhere (a `pv_ops`
    /// target, known only at run time).
    Elsewhere,
}

/// The table a site comes from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SiteKind {
    /// `.altinstructions`.
    Alternative,
    /// `__jump_table`.
    JumpLabel,
    /// `.parainstructions`.
    Paravirt,
}

impl SiteKind {
    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            SiteKind::Alternative => "alternative",
            SiteKind::JumpLabel => "jump label",
            SiteKind::Paravirt => "paravirt",
        }
    }
}

/// One way a site can be patched.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Choice {
    /// What selects it: `original`, a feature (`XENPV`, `!XENPV` for `ALT_FLAG_NOT`), `nop`,
    /// `jmp`, `call`.
    pub name: String,
    /// The index of the table entry that produces it, if any.
    pub entry: Option<usize>,
    /// The patched bytes; their length is the site length for this choice.
    pub bytes: Vec<u8>,
    /// One origin per byte.
    pub origins: Vec<Origin>,
    /// The replacement copied in (location and length), for branches inside it.
    pub replacement: Option<(Location, usize)>,
    /// Why the choice cannot be built as the kernel would.
    pub problem: Option<Unmodelled>,
}

/// A patch site and its choices.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Site {
    /// Which table.
    pub kind: SiteKind,
    /// The first patched byte.
    pub at: Location,
    /// The longest choice.
    pub len: usize,
    /// The choices.
    pub choices: Vec<Choice>,
    /// An alternative with an `ALT_FLAG_DIRECT_CALL` entry: a `pv_ops` call the kernel turns
    /// into a direct call (6.8+; before, `.parainstructions` did that).
    pub direct_call: bool,
}

/// A feature as a name: `XENPV`, `BUG_DIV0`, or `word*32+bit` when it is not in orc-flow's
/// list; `!` in front for `ALT_FLAG_NOT`.
pub fn feature_name(era: KernelEra, cpuid: u16, not: bool) -> String {
    let base = match cpufeatures::name(era, cpuid) {
        Some(n) => n.to_string(),
        None => match cpufeatures::bug_name(cpuid) {
            Some(n) => format!("BUG_{n}"),
            None => format!("{}*32+{}", cpuid / 32, cpuid % 32),
        },
    };
    if not {
        format!("!{base}")
    } else {
        base
    }
}

/// The patching rules of one kernel era.
#[derive(Clone, Copy, Debug)]
pub struct Era {
    /// The release.
    pub era: KernelEra,
    /// Its NOP rules.
    pub nops: NopRules,
    /// 6.12: nested entries share the longest `instrlen` of their run.
    pub group_lengths: bool,
}

impl Era {
    /// The rules of `era`: 6.6 and later pad with one NOP or a `jmp` (the 6.12 rules); older
    /// kernels with 8-byte NOPs (the 6.1 rules).
    pub fn of(era: KernelEra) -> Era {
        let new = era.at_least(6, 6);
        Era { era, nops: if new { NopRules::OneNopOrJump } else { NopRules::Chunks8 }, group_lengths: new }
    }
}

fn site_bytes<'d>(file: &ElfFile<'d>, at: Location, len: usize) -> Option<&'d [u8]> {
    let data = file.section(at.section).ok()?.data;
    let start = usize::try_from(at.offset).ok()?;
    data.get(start..start.checked_add(len)?)
}

fn problem(name: String, entry: Option<usize>, len: usize, why: Unmodelled) -> Choice {
    Choice {
        name,
        entry,
        bytes: vec![0x90; len],
        origins: vec![Origin::Synthetic; len],
        replacement: None,
        problem: Some(why),
    }
}

/// The alternative sites of a file: entries grouped by the site they patch, in the order of
/// their first entry.
pub fn alternative_sites(file: &ElfFile<'_>, rules: Era, alts: &[AltInstr]) -> Vec<Site> {
    let mut order: Vec<Location> = Vec::new();
    let mut groups: std::collections::HashMap<Location, Vec<&AltInstr>> = std::collections::HashMap::new();
    for a in alts {
        groups.entry(a.orig).or_insert_with(|| {
            order.push(a.orig);
            Vec::new()
        });
        groups.get_mut(&a.orig).expect("inserted").push(a);
    }
    order
        .into_iter()
        .map(|at| {
            let entries = &groups[&at];
            let len_of = |a: &AltInstr| usize::from(if rules.group_lengths { a.group_orig_len } else { a.orig_len });
            let site_len = entries.iter().map(|a| len_of(a)).max().unwrap_or(0);
            let mut choices = vec![original(file, rules, at, site_len)];
            for a in entries {
                choices.extend(replacement(file, rules, a, len_of(a)));
            }
            let len = choices.iter().map(|c| c.bytes.len()).max().unwrap_or(site_len);
            let direct_call = entries.iter().any(|a| a.flags.direct_call());
            Site { kind: SiteKind::Alternative, at, len, choices, direct_call }
        })
        .collect()
}

fn original(file: &ElfFile<'_>, rules: Era, at: Location, len: usize) -> Choice {
    let name = "original".to_string();
    let Some(bytes) = site_bytes(file, at, len) else {
        return problem(name, None, len, Unmodelled::Undecodable);
    };
    let mut out = bytes.to_vec();
    rules.nops.optimize(&mut out);
    let origins = out
        .iter()
        .zip(bytes)
        .enumerate()
        .map(|(i, (new, old))| if new == old { Origin::Site(at.offset + i as u64) } else { Origin::Synthetic })
        .collect();
    Choice { name, entry: None, bytes: out, origins, replacement: None, problem: None }
}

/// Pads `bytes` with `0x90` to `len` and runs the era's `optimize_nops()`, keeping origins
/// of bytes it does not change.
fn pad_and_optimize(rules: Era, mut bytes: Vec<u8>, mut origins: Vec<Origin>, len: usize) -> (Vec<u8>, Vec<Origin>) {
    while bytes.len() < len {
        bytes.push(0x90);
        origins.push(Origin::Synthetic);
    }
    let before = bytes.clone();
    rules.nops.optimize(&mut bytes);
    for (i, (new, old)) in bytes.iter().zip(&before).enumerate() {
        if new != old {
            origins[i] = Origin::Synthetic;
        }
    }
    (bytes, origins)
}

fn replacement(file: &ElfFile<'_>, rules: Era, a: &AltInstr, len: usize) -> Vec<Choice> {
    let feature = feature_name(rules.era, a.cpuid, a.flags.not());
    let repl_len = usize::from(a.repl_len);
    let repl = match a.replacement {
        Some(loc) => match site_bytes(file, loc, repl_len) {
            Some(b) => Some((loc, b)),
            None => return vec![problem(feature, Some(a.index), len, Unmodelled::Undecodable)],
        },
        None => None,
    };
    if a.flags.direct_call() {
        // The kernel checks the shapes and BUG()s otherwise: `ff 15 disp32` at the site (6
        // bytes), `e8 rel32` (5 bytes) as the replacement.
        let site_ok = len == 6 && site_bytes(file, a.orig, 2) == Some(&[0xff, 0x15][..]);
        let repl_ok = repl.is_some_and(|(_, b)| b.len() == 5 && b[0] == 0xe8);
        if !site_ok || !repl_ok {
            return vec![problem(format!("{feature} (direct call)"), Some(a.index), len, Unmodelled::BadDirectCall)];
        }
        let call = vec![0xe8, 0, 0, 0, 0];
        let mut call_origins = vec![Origin::Elsewhere; 5];
        call_origins[0] = Origin::Synthetic;
        let (bytes, origins) = pad_and_optimize(rules, call, call_origins, len);
        let direct = Choice {
            name: format!("{feature} (direct call)"),
            entry: Some(a.index),
            bytes,
            origins,
            replacement: None,
            problem: None,
        };
        let (bytes, origins) = pad_and_optimize(rules, Vec::new(), Vec::new(), len);
        let nops = Choice {
            name: format!("{feature} (nop_func)"),
            entry: Some(a.index),
            bytes,
            origins,
            replacement: None,
            problem: None,
        };
        return vec![direct, nops];
    }
    let (bytes, origins) = match repl {
        Some((loc, b)) => {
            let origins =
                (0..b.len()).map(|i| Origin::Replacement(Location::new(loc.section, loc.offset + i as u64))).collect();
            pad_and_optimize(rules, b.to_vec(), origins, len)
        }
        None => pad_and_optimize(rules, Vec::new(), Vec::new(), len),
    };
    vec![Choice {
        name: feature,
        entry: Some(a.index),
        bytes,
        origins,
        replacement: repl.map(|(loc, b)| (loc, b.len())),
        problem: None,
    }]
}

/// The jump-label sites: the instruction at `code` (2 or 5 bytes, found by decoding it) as
/// the NOP of its length, and as a `jmp` of that length to the target.
pub fn jump_label_sites(file: &ElfFile<'_>, labels: &[JumpEntry<'_>]) -> Vec<Site> {
    labels
        .iter()
        .map(|e| {
            let at = e.code;
            let len = site_bytes(file, at, 1)
                .and_then(|_| {
                    let data = file.section(at.section).ok()?.data;
                    let rest = data.get(usize::try_from(at.offset).ok()?..)?;
                    orc_decode::decode_one(rest, at.offset, true).ok().map(|i| usize::from(i.len))
                })
                .unwrap_or(0);
            let choices = if len != 2 && len != 5 {
                vec![problem("nop".into(), Some(e.index), len.max(1), Unmodelled::BadJumpLabel)]
            } else {
                let nop = Choice {
                    name: "nop".into(),
                    entry: Some(e.index),
                    bytes: NOPS[len].to_vec(),
                    origins: vec![Origin::Synthetic; len],
                    replacement: None,
                    problem: None,
                };
                let mut bytes = vec![if len == 2 { 0xeb } else { 0xe9 }];
                bytes.resize(len, 0);
                let mut origins = vec![Origin::Branch(e.target); len];
                origins[0] = Origin::Synthetic;
                let jmp = Choice {
                    name: "jmp".into(),
                    entry: Some(e.index),
                    bytes,
                    origins,
                    replacement: None,
                    problem: None,
                };
                vec![nop, jmp]
            };
            Site { kind: SiteKind::JumpLabel, at, len: len.max(1), choices, direct_call: false }
        })
        .collect()
}

/// Names of the `pv_ops` slots of Debian's 6.1 (`CONFIG_PARAVIRT_XXL`, `CONFIG_X86_IOPL_IOPERM`,
/// 5-level page tables), by slot number: `PARAVIRT_PATCH()` stores the pointer's index in
/// `struct paravirt_patch_template` (cpu, irq, mmu, lock ops in that order). Checked against
/// Debian's 6.1 image for the lock ops: 79 is the slow-path call of `_raw_spin_lock_irqsave`,
/// 80 the unlock of `_raw_spin_unlock`. Checked against the native alternatives
/// at the same sites in the 6.1 corpus: 21 wbinvd (`wbinvd`), 30 save_fl (`pushf`), 31
/// irq_disable (`cli`), 32 irq_enable (`sti`), 44 read_cr3 (`mov %cr3,%rax`), 62 pte_val, 63
/// make_pte, 64 pgd_val, 69 pud_val, 72 p4d_val (`mov %rdi,%rax`).
pub const PV_OPS_6_1: &[&str] = &[
    "cpu.io_delay",
    "cpu.get_debugreg",
    "cpu.set_debugreg",
    "cpu.read_cr0",
    "cpu.write_cr0",
    "cpu.write_cr4",
    "cpu.load_tr_desc",
    "cpu.load_gdt",
    "cpu.load_idt",
    "cpu.set_ldt",
    "cpu.store_tr",
    "cpu.load_tls",
    "cpu.load_gs_index",
    "cpu.write_ldt_entry",
    "cpu.write_gdt_entry",
    "cpu.write_idt_entry",
    "cpu.alloc_ldt",
    "cpu.free_ldt",
    "cpu.load_sp0",
    "cpu.invalidate_io_bitmap",
    "cpu.update_io_bitmap",
    "cpu.wbinvd",
    "cpu.cpuid",
    "cpu.read_msr",
    "cpu.write_msr",
    "cpu.read_msr_safe",
    "cpu.write_msr_safe",
    "cpu.read_pmc",
    "cpu.start_context_switch",
    "cpu.end_context_switch",
    "irq.save_fl",
    "irq.irq_disable",
    "irq.irq_enable",
    "irq.safe_halt",
    "irq.halt",
    "mmu.flush_tlb_user",
    "mmu.flush_tlb_kernel",
    "mmu.flush_tlb_one_user",
    "mmu.flush_tlb_multi",
    "mmu.tlb_remove_table",
    "mmu.exit_mmap",
    "mmu.notify_page_enc_status_changed",
    "mmu.read_cr2",
    "mmu.write_cr2",
    "mmu.read_cr3",
    "mmu.write_cr3",
    "mmu.activate_mm",
    "mmu.dup_mmap",
    "mmu.pgd_alloc",
    "mmu.pgd_free",
    "mmu.alloc_pte",
    "mmu.alloc_pmd",
    "mmu.alloc_pud",
    "mmu.alloc_p4d",
    "mmu.release_pte",
    "mmu.release_pmd",
    "mmu.release_pud",
    "mmu.release_p4d",
    "mmu.set_pte",
    "mmu.set_pmd",
    "mmu.ptep_modify_prot_start",
    "mmu.ptep_modify_prot_commit",
    "mmu.pte_val",
    "mmu.make_pte",
    "mmu.pgd_val",
    "mmu.make_pgd",
    "mmu.set_pud",
    "mmu.pmd_val",
    "mmu.make_pmd",
    "mmu.pud_val",
    "mmu.make_pud",
    "mmu.set_p4d",
    "mmu.p4d_val",
    "mmu.make_p4d",
    "mmu.set_pgd",
    "mmu.lazy_mode.enter",
    "mmu.lazy_mode.leave",
    "mmu.lazy_mode.flush",
    "mmu.set_fixmap",
    "lock.queued_spin_lock_slowpath",
    "lock.queued_spin_unlock",
    "lock.wait",
    "lock.kick",
    "lock.vcpu_is_preempted",
];

/// `irq.save_fl` or `pv_ops[N]`.
pub fn pv_op_name(pv_type: u8) -> String {
    match PV_OPS_6_1.get(usize::from(pv_type)) {
        Some(name) => (*name).to_string(),
        None => format!("pv_ops[{pv_type}]"),
    }
}

/// The paravirt sites: what `apply_paravirt()` writes, a direct call to the op plus
/// `add_nops()` (6.1 rules: 8-byte NOPs), or all NOPs when the op is `_paravirt_nop`.
pub fn paravirt_sites(sites: &[ParaSite]) -> Vec<Site> {
    sites
        .iter()
        .map(|p| {
            let len = usize::from(p.len);
            let op = pv_op_name(p.pv_type);
            let choices = if len < 5 {
                vec![problem(format!("{op}: call"), Some(p.index), len.max(1), Unmodelled::ShortParavirtSite)]
            } else {
                let mut call = vec![0xe8, 0, 0, 0, 0];
                call.resize(len, 0);
                NopRules::Chunks8.fill(&mut call[5..]);
                let mut nops = vec![0; len];
                NopRules::Chunks8.fill(&mut nops);
                let mut call_origins = vec![Origin::Synthetic; len];
                call_origins[1..5].fill(Origin::Elsewhere);
                vec![
                    Choice {
                        name: format!("{op}: call"),
                        entry: Some(p.index),
                        bytes: call,
                        origins: call_origins,
                        replacement: None,
                        problem: None,
                    },
                    Choice {
                        name: format!("{op}: _paravirt_nop"),
                        entry: Some(p.index),
                        bytes: nops,
                        origins: vec![Origin::Synthetic; len],
                        replacement: None,
                        problem: None,
                    },
                ]
            };
            Site { kind: SiteKind::Paravirt, at: p.instr, len: len.max(1), choices, direct_call: false }
        })
        .collect()
}
