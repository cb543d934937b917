//! Proof by execution: run a program under ptrace single-step, keep a shadow stack of the
//! calls and signal deliveries each thread executes, and at every N-th step unwind with ORC
//! and compare with it.
//!
//! ```no_run
//! use orc_process::{Source, TableCache};
//! let cache = TableCache::with_default_dir(Source::Combined);
//! let command = vec!["/bin/true".to_string()];
//! let report = orc_exec::run(&command, &cache, orc_exec::Options::default()).unwrap();
//! println!("{} of {} checked steps agree", report.agree, report.checked);
//! ```
//!
//! What is compared, and the shadow-stack rules, are in `docs/verify-exec.md`.

#![warn(missing_docs)]

mod check;
mod insn;
mod memory;
mod report;
mod sframe_walk;
mod shadow;
mod stacks;
mod sys;
mod tracer;

pub use check::Mismatch;
pub use insn::{classify, Class, Insn};
pub use report::{percent, BinaryStats, Disagreement, ProgramExit, Report, ShownFrame};
pub use shadow::{ChainFrame, Entry, Saved, ShadowStack, StackId};
pub use tracer::{raw_single_step, run, Options};

/// Why a run could not be done (the program's own failures are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No program was given.
    #[error("no command to run")]
    NoCommand,
    /// The program could not be started.
    #[error("{program}: cannot run: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A ptrace or wait call failed.
    #[error("cannot {what}: {source}")]
    Ptrace {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The process could not be inspected (its maps).
    #[error("{0}")]
    Process(String),
    /// The program did something the tracer does not expect.
    #[error("{0}")]
    Unexpected(String),
}
