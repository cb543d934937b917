//! Proof by patching: is a kernel object's ORC table right for the code the kernel really runs?
//!
//! objtool checks alternatives statically: every replacement is walked in the original's
//! address range, and where two streams share an instruction boundary they must agree (the
//! union rule). It never runs the patched code. This crate builds that code, byte for byte as
//! the kernel writes it at boot or module load ([`choices`]), for every patch site and every
//! choice at it:
//!
//! - `.altinstructions`: the original and each replacement (NOP padding and `optimize_nops()`
//!   per kernel era, see [`nops`]; `ALT_FLAG_DIRECT_CALL` both ways);
//! - `__jump_table`: the NOP and the `jmp`;
//! - `.parainstructions` (before 6.8): the direct call `apply_paravirt()` writes, and all NOPs;
//!
//! then decodes it and derives the stack state at every instruction boundary ([`state`]),
//! starting from the table's entry at the site's first byte, and asks the file's own table
//! ([`table`]) what the kernel's unwinder would (reference §2, step 2: rightmost entry with
//! `ip <= target`):
//!
//! - interrupted at a boundary inside the site, the lookup of that exact ip must give the
//!   derived state;
//! - for a call in the patched code, the lookup of the return address minus one must give the
//!   state at the call (a return address is looked up at `ip - 1`);
//! - where the patched code goes on (the end of the site, or a jump's target), the table must
//!   give the derived state there.
//!
//! A state the rules cannot derive is counted as unmodelled, never guessed. The table checked is
//! the one the file carries: for Debian's modules, the kernel's own ORC, independently of
//! orctool's `check`.
//!
//! ```no_run
//! let bytes = std::fs::read("foo.ko").unwrap();
//! let file = orc_elf::ElfFile::parse(&bytes).unwrap();
//! let report = orc_patch::verify(&file, &orc_patch::Options::default()).unwrap();
//! for f in &report.failures {
//!     println!("{} {}: {}", f.site_name, f.choice, f.check.name());
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod choices;
pub mod nops;
pub mod running;
pub mod state;
pub mod table;
pub mod verify;

use orc_elf::orc::read_orc_table;
use orc_elf::{ElfError, ElfFile};
use orc_flow::special::{alternatives, jump_table, paravirt};
use orc_flow::{KernelEra, SpecialSectionError};
use orc_format::Layout;

pub use choices::{Choice, Origin, Site, SiteKind};
pub use state::{ShowEntry, Unmodelled};
pub use verify::{CheckKind, Counts, Failure, UnmodelledAt, WithoutState};

/// What to verify with.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// The kernel the file was built for; by default the one the file names (`vermagic=`),
    /// else the one its ORC layout implies (v1: 6.1, v2: 6.3, v3 and v3+ax: 6.12, v4: 7.2).
    pub era: Option<KernelEra>,
}

/// Why a file cannot be verified.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The ELF file or its ORC table is broken.
    #[error("{0}")]
    Elf(#[from] ElfError),
    /// A patch table is broken.
    #[error("{0}")]
    Special(#[from] SpecialSectionError),
    /// The file has no ORC table to check.
    #[error("no ORC table")]
    NoOrcTable,
}

/// The verdict on one file.
#[derive(Clone, Debug)]
pub struct Report {
    /// The kernel era whose patching rules were applied.
    pub era: KernelEra,
    /// The ORC layout of the table.
    pub layout: Layout,
    /// The counters.
    pub counts: Counts,
    /// Every failed lookup, in site order.
    pub failures: Vec<Failure>,
    /// Every choice whose walk met something unmodelled.
    pub unmodelled: Vec<UnmodelledAt>,
    /// Every site left unwalked for want of a state before it.
    pub without_state: Vec<WithoutState>,
    /// Every jump out of a site into a section without ORC entries (`.altinstr_aux`): site,
    /// choice and target, named.
    pub uncovered_exits: Vec<(String, String, String)>,
}

/// The kernel a layout belongs to, for files that name none.
fn era_of_layout(layout: Layout) -> KernelEra {
    match layout {
        Layout::V1 => KernelEra::V6_1,
        Layout::V2 => KernelEra::new(6, 3),
        Layout::V3 | Layout::V3Ax => KernelEra::V6_12,
        Layout::V4 => KernelEra::V7_2,
    }
}

/// Every patch site of `file`, with its choices, for `era`.
pub fn sites(file: &ElfFile<'_>, era: KernelEra) -> Result<Vec<Site>, VerifyError> {
    let rules = choices::Era::of(era);
    let alts = alternatives::read_alternatives_for(file, era)?;
    let labels = jump_table::read_jump_table_for(file, era)?;
    let para = paravirt::read_parainstructions(file)?;
    let mut out = choices::alternative_sites(file, rules, &alts);
    out.extend(choices::jump_label_sites(file, &labels));
    out.extend(choices::paravirt_sites(&para));
    Ok(out)
}

/// Builds every choice at every patch site of `file` and checks the file's ORC table at every
/// boundary of the patched code.
pub fn verify(file: &ElfFile<'_>, options: &Options) -> Result<Report, VerifyError> {
    let table = read_orc_table(file, None)?.ok_or(VerifyError::NoOrcTable)?;
    let era = options.era.or_else(|| KernelEra::from_file(file)).unwrap_or_else(|| era_of_layout(table.layout));
    let lookup = table::Lookup::new(file, &table);
    let names = table::Names::new(file);
    let sites = sites(file, era)?;
    let mut walker = verify::Walker::new(file, &lookup, &names);
    for site in &sites {
        walker.site(site);
    }
    Ok(Report {
        era,
        layout: table.layout,
        counts: walker.counts,
        failures: walker.failures,
        unmodelled: walker.unmodelled,
        without_state: walker.without_state,
        uncovered_exits: walker.uncovered_exits,
    })
}
