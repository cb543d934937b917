//! objtool's stack validation, done again: read an x86-64 relocatable object, follow every
//! path through every function, know the stack state before each instruction, report what is
//! wrong, and produce the ORC table.
//!
//! The stages, in the order objtool runs them:
//!
//! 1. [`program`]: sections, symbols, decoded instructions (`orc-decode`).
//! 2. [`graph`] and [`alternatives`]: branch and call targets, noreturn calls, patch sites,
//!    jump tables, hints and annotations (special sections parsed by `orc-flow`).
//! 3. [`walk`]: the path walker, carrying `orc-stack`'s CFI state along every path and
//!    applying its update rules to each instruction's stack operations; hint states come from
//!    `orc-stack`'s hint reader ([`setup`]).
//! 4. [`orc`]: the ORC rows, deduplicated as objtool emits them (each entry from
//!    `orc-stack`'s state-to-ORC mapping).
//!
//! The entry point is [`check`]. It never panics on malformed input and never prints:
//! warnings come back as [`Warning`] values and a give-up as [`Fatal`].

pub mod alternatives;
pub mod edits;
pub mod graph;
pub mod ibt;
pub mod image;
pub mod inspect;
pub mod jump_tables;
pub mod lists;
pub mod noinstr;
pub mod orc;
pub mod program;
pub mod report;
pub mod setup;
pub mod sites;
pub mod strict;
pub mod walk;

use std::sync::atomic::Ordering::Relaxed;

use orc_elf::ElfFile;
use orc_flow::{KernelEra, Noreturns};
use orc_stack::{CfiId, CfiState, Interner};

use crate::alternatives::AltGroup;
use crate::program::{InsnId, Program, SymId};
pub use crate::report::{Fatal, Warning};

/// objtool's action flags and options that change the analysis (the kernel passes
/// `--hacks=jump_label --hacks=noinstr --hacks=skylake --ibt --orc --retpoline --rethunk --sls
/// --static-call --uaccess --prefix=16 --link --module` for 6.12 modules).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--orc`: generate ORC.
    pub orc: bool,
    /// `--stackval`: frame-pointer rules.
    pub stackval: bool,
    /// `--uaccess`: SMAP rules.
    pub uaccess: bool,
    /// `--ibt`.
    pub ibt: bool,
    /// `--retpoline`.
    pub retpoline: bool,
    /// `--rethunk`.
    pub rethunk: bool,
    /// `--sls`.
    pub sls: bool,
    /// `--static-call`.
    pub static_call: bool,
    /// `--mcount`.
    pub mcount: bool,
    /// `--mnop`: with `--mcount`, `__fentry__` calls become NOPs.
    pub mnop: bool,
    /// `--noinstr`.
    pub noinstr: bool,
    /// `--unret`.
    pub unret: bool,
    /// `--hacks=jump_label`.
    pub hack_jump_label: bool,
    /// `--hacks=noinstr`.
    pub hack_noinstr: bool,
    /// `--hacks=skylake`.
    pub hack_skylake: bool,
    /// `--prefix=N`.
    pub prefix: Option<u64>,
    /// `--link`: a linked object (vmlinux.o or a module's `.o`).
    pub link: bool,
    /// `--module`.
    pub module: bool,
    /// Where objtool gives up on an unannotated intra-function call (the annotation is lost
    /// in linked modules), assume the annotation and go on. Off: give up as objtool does.
    pub assume_intra_function_calls: bool,
    /// Also flag return addresses inside patch sites whose `ip - 1` lookup lands on another
    /// stream's entry (see [`strict`]). Not an objtool check.
    pub strict_alternatives: bool,
    /// Threads one object's analysis may use (0 and 1: one). The results do not depend on it.
    pub threads: usize,
}

impl Options {
    /// The flags the kernel passes objtool for a 6.12 module (`--hacks=jump_label
    /// --hacks=noinstr --hacks=skylake --ibt --orc --retpoline --rethunk --sls --static-call
    /// --uaccess --prefix=16 --link --module`), with objtool's own behaviour where it gives up.
    pub fn kernel_module() -> Options {
        Options {
            orc: true,
            uaccess: true,
            ibt: true,
            retpoline: true,
            rethunk: true,
            sls: true,
            static_call: true,
            hack_jump_label: true,
            hack_noinstr: true,
            hack_skylake: true,
            prefix: Some(16),
            link: true,
            module: true,
            ..Options::default()
        }
    }
}

/// Call sites objtool records for its output sections.
#[derive(Default, Debug)]
pub struct Sites {
    /// Calls and tail calls through static-call trampolines.
    pub static_calls: Vec<InsnId>,
    /// Branches through retpoline thunks.
    pub retpoline_calls: Vec<InsnId>,
    /// Jumps to the return thunk.
    pub return_sites: Vec<InsnId>,
    /// Direct calls outside `.init.text` (objtool's `call_list`, for `.call_sites`).
    pub calls: Vec<InsnId>,
    /// Calls to `__fentry__` (`--mcount`: objtool's `mcount_loc_list`, for `__mcount_loc`).
    pub mcount_loc: Vec<InsnId>,
    /// ENDBRs some relocation or branch targets (objtool's `mark_endbr_used`): not sealed.
    pub endbr_used: std::collections::HashSet<InsnId>,
}

/// The analysis of one object, while it runs.
pub struct Checker<'d> {
    /// The program.
    pub p: Program<'d>,
    /// Options.
    pub opts: Options,
    /// Kernel era (layouts of special sections).
    pub era: KernelEra,
    /// Warnings so far, in objtool's order.
    pub warnings: Vec<Warning>,
    /// The era's list of functions that never return.
    pub noreturns: Noreturns,
    /// Functions that may run with user access enabled.
    pub uaccess_safe: Vec<&'d str>,
    /// A RIP-relative jump table was seen: unreachable code is not reported (objtool's
    /// `ignore_unreachables`).
    pub ignore_unreachables: bool,
    /// The file has unwind hints.
    pub hints: bool,
    /// Alternative groups.
    pub groups: Vec<AltGroup>,
    /// The shared per-byte CFI arrays of alternative sites.
    pub alt_cfi: Vec<Vec<Option<CfiId>>>,
    /// The distinct CFI states, each stored once.
    pub cfis: Interner,
    /// The state before each instruction (by [`InsnId`]).
    pub insn_cfi: Vec<Option<CfiId>>,
    /// Visit bits per instruction.
    pub visited: Vec<u8>,
    /// Recorded call sites.
    pub sites: Sites,
    /// Changes to the object's own bytes and symbols, in the order objtool makes them.
    pub edits: edits::Edits,
    /// What may be called through each `pv_ops` slot (`--noinstr`).
    pub(crate) pv_ops: Option<noinstr::PvOps>,
    /// What the analysis assumed where objtool would have given up.
    pub assumptions: Vec<String>,
    /// [`Checker::dead_end_function`]'s answers for called functions.
    dead_end_memo: rustc_hash::FxHashMap<SymId, bool>,
}

/// What [`check`] found.
pub struct Analysis {
    /// Warnings, in objtool's order.
    pub warnings: Vec<Warning>,
    /// Set when the analysis gave up (no ORC then).
    pub fatal: Option<Fatal>,
    /// The ORC rows, when `--orc` was asked and the analysis did not give up.
    pub orc: Option<Vec<orc::Row>>,
    /// The rows of the site sections objtool writes (`.static_call_sites`,
    /// `.retpoline_sites`, `.return_sites`, `.call_sites`, `.ibt_endbr_seal`), for the options
    /// asked; empty when the analysis gave up.
    pub sites: sites::SiteRows,
    /// What objtool changes inside the object (overwritten instructions, neutralised
    /// relocations, added symbols); empty when the analysis gave up.
    pub edits: edits::Edits,
    /// Instructions decoded.
    pub instructions: usize,
    /// What was assumed where objtool would have given up (empty when objtool's result
    /// stands as is).
    pub assumptions: Vec<String>,
}

impl<'d> Checker<'d> {
    /// Interns a state: equal states share one handle.
    pub(crate) fn intern(&mut self, cfi: &CfiState) -> CfiId {
        self.cfis.intern(cfi)
    }

    /// The state behind a handle.
    pub(crate) fn cfi(&self, id: CfiId) -> &CfiState {
        self.cfis.get(id)
    }

    /// A warning without a location.
    pub(crate) fn warn(&mut self, message: String) {
        self.warnings.push(Warning { location: None, message });
    }

    /// A warning about an instruction; like objtool, only the first per symbol is kept.
    pub(crate) fn warn_insn(&mut self, id: InsnId, message: String) {
        let insn = &self.p.insns[id as usize];
        let sym = insn.sym.get().map(|s| &self.p.symbols[s as usize]);
        if !sym.is_some_and(|s| s.warned.load(Relaxed)) {
            let location = self.p.offstr(insn.sec as usize, insn.offset);
            self.warnings.push(Warning { location: Some(location), message });
        }
        if let Some(s) = sym {
            s.warned.store(true, Relaxed);
        }
    }
}

/// Runs the analysis on one object.
pub fn check(file: &ElfFile<'_>, era: KernelEra, opts: &Options) -> Analysis {
    analyse(file, era, opts).0
}

/// Runs the analysis and keeps the analysed program, for views such as `inspect`.
pub(crate) fn analyse<'d>(file: &ElfFile<'d>, era: KernelEra, opts: &Options) -> (Analysis, Option<Checker<'d>>) {
    let mut analysis = Analysis {
        warnings: Vec::new(),
        fatal: None,
        orc: None,
        sites: sites::SiteRows::default(),
        edits: edits::Edits::default(),
        instructions: 0,
        assumptions: Vec::new(),
    };
    let program = match Program::build_with_threads(file, era, opts.threads) {
        Ok(p) => p,
        Err(fatal) => {
            analysis.warnings.push(fatal.warning.clone());
            analysis.fatal = Some(fatal);
            return (analysis, None);
        }
    };
    let n = program.insns.len();
    analysis.instructions = n;
    let mut c = Checker {
        p: program,
        opts: opts.clone(),
        era,
        warnings: Vec::new(),
        noreturns: Noreturns::for_era(era),
        uaccess_safe: Vec::new(),
        ignore_unreachables: false,
        hints: false,
        groups: Vec::new(),
        alt_cfi: Vec::new(),
        cfis: Interner::new(),
        insn_cfi: vec![None; n],
        visited: vec![0; n],
        sites: Sites::default(),
        edits: edits::Edits::default(),
        pv_ops: None,
        assumptions: Vec::new(),
        dead_end_memo: Default::default(),
    };
    let result = c.run(file);
    analysis.warnings = std::mem::take(&mut c.warnings);
    analysis.assumptions = std::mem::take(&mut c.assumptions);
    match result {
        Ok((rows, sites)) => {
            analysis.orc = rows;
            analysis.sites = sites;
            analysis.edits = std::mem::take(&mut c.edits);
        }
        Err(fatal) => {
            analysis.warnings.push(fatal.warning.clone());
            analysis.fatal = Some(fatal);
        }
    }
    (analysis, Some(c))
}

impl Checker<'_> {
    fn run(&mut self, file: &ElfFile<'_>) -> Result<(Option<Vec<orc::Row>>, sites::SiteRows), Fatal> {
        self.decode_sections(file)?;
        if self.p.insns.is_empty() {
            return Ok((None, sites::SiteRows::default()));
        }
        // Fake NOPs were appended after the instruction arrays were sized.
        self.insn_cfi.resize(self.p.insns.len(), None);
        self.visited.resize(self.p.insns.len(), 0);

        let mut warnings = 0;
        if self.opts.retpoline {
            warnings += self.validate_retpoline();
        }
        if self.opts.stackval || self.opts.orc || self.opts.uaccess {
            // Which warnings hold back the check of unreached code is an era rule.
            if self.era.reachable_check_counts_only_walk_warnings() {
                warnings = 0;
            }
            warnings += self.validate_functions();
            warnings += self.validate_unwind_hints();
            if warnings == 0 {
                self.validate_reachable_instructions();
            }
        }
        if self.opts.unret {
            // After the branch walks: it keeps its own bit in `visited`.
            self.validate_unrets()?;
        }
        if self.opts.ibt {
            self.validate_ibt();
        }
        if self.opts.sls {
            self.validate_sls();
        }
        let sites = self.site_rows()?;
        self.add_prefix_symbols(file)?;
        if self.opts.orc || self.opts.strict_alternatives {
            let rows = self.orc_rows()?;
            if self.opts.strict_alternatives {
                self.check_return_addresses_in_sites(&rows);
            }
            return Ok((self.opts.orc.then_some(rows), sites));
        }
        Ok((None, sites))
    }
}
