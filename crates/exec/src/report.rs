//! What a run found, as data: counts per binary and each distinct disagreement.

use serde::Serialize;

use crate::check::Mismatch;

/// How the traced program ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
pub struct ProgramExit {
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

/// Counts for the steps whose ip was in one binary.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct BinaryStats {
    /// The file (or `[vdso]`, `[anon]`).
    pub name: String,
    /// Steps checked with ip in this binary.
    pub checked: u64,
    /// Of those, steps where ORC gave the expected chain.
    pub agree: u64,
    /// Steps where it did not.
    pub disagree: u64,
    /// Steps not compared because no table covers ip (not counted in `checked`).
    pub no_table: u64,
    /// Steps not compared because the table covering ip says UNDEFINED there: it states no
    /// rule (code whose frame ORC cannot describe, such as the last instructions of
    /// `__longjmp`, where the stack pointer already belongs to the target and the return
    /// address is in a register). Not counted in `checked`: the proof is that every rule a
    /// table states is right; how much code has a rule is its coverage.
    pub undefined: u64,
}

impl BinaryStats {
    /// Agreement in percent of the checked steps (100 when none was checked).
    pub fn percent(&self) -> f64 {
        percent(self.agree, self.checked)
    }
}

/// `part / whole` in percent, 100 for an empty whole.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A frame of a chain, with its symbol.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct ShownFrame {
    /// The ip.
    pub ip: u64,
    /// The ip is exact (not a return address).
    pub exact: bool,
    /// `function+0xoff (module)`, or `module+0xoff`, or `?`.
    pub symbol: String,
}

/// Every check that disagreed at one ip, with the first one's chains.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Disagreement {
    /// The ip of the checked step.
    pub ip: u64,
    /// The binary holding it.
    pub module: Option<String>,
    /// Its link-time address in that binary.
    pub offset: Option<u64>,
    /// The function holding it.
    pub function: Option<String>,
    /// Checked steps at this ip that disagreed.
    pub count: u64,
    /// How the first one differed.
    pub mismatch: Mismatch,
    /// The chain from the shadow stack.
    pub expected: Vec<ShownFrame>,
    /// The chain ORC gave.
    pub orc: Vec<ShownFrame>,
    /// How ORC's walk ended.
    pub orc_end: String,
    /// The thread.
    pub tid: i32,
    /// The step number (from 1).
    pub step: u64,
}

/// The result of one `verify-exec` run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// One step in `every` was checked.
    pub every: u64,
    /// Instructions executed (single steps), all threads.
    pub steps: u64,
    /// Steps checked (no-table steps excluded).
    pub checked: u64,
    /// Checked steps where ORC agreed.
    pub agree: u64,
    /// Checked steps where it did not.
    pub disagree: u64,
    /// Steps due for a check whose ip no table covers.
    pub no_table: u64,
    /// Steps due for a check whose ip has an UNDEFINED entry (see [`BinaryStats::undefined`]).
    pub undefined: u64,
    /// Steps of a new thread before its first branch: instructions after the clone system
    /// call that parent and child share, whose table can only describe the parent.
    pub clone_shared: u64,
    /// Steps due for a check whose stack pointer was in no mapping.
    pub no_stack: u64,
    /// Threads seen (the first included).
    pub threads: u64,
    /// Signals delivered to handlers.
    pub handled_signals: u64,
    /// The run stopped at `--max-steps` (the program was killed).
    pub truncated: bool,
    /// How the program ended.
    pub exit: ProgramExit,
    /// Wall time of the run, seconds.
    pub seconds: f64,
    /// Per binary (of the checked step's ip), in order of first appearance.
    pub binaries: Vec<BinaryStats>,
    /// Distinct disagreements (by ip), most frequent first.
    pub disagreements: Vec<Disagreement>,
    /// Distinct disagreeing ips beyond the ones kept in detail.
    pub disagreements_not_kept: u64,
}

impl Report {
    /// Agreement in percent of the checked steps.
    pub fn percent(&self) -> f64 {
        percent(self.agree, self.checked)
    }

    /// Steps per second of the run.
    pub fn steps_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.steps as f64 / self.seconds
        } else {
            0.0
        }
    }
}
