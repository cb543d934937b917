//! `orctool verify-exec`: proof by execution (crate `orc-exec`): single-step a program, keep
//! a shadow stack of its calls and signal deliveries, and compare ORC unwinds against it.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use orc_exec::{Disagreement, Options, Report, ShownFrame};
use orc_process::{Source, TableCache};

/// Distinct disagreements kept with their chains (the first ones met).
const DETAILED_DISAGREEMENTS: usize = 5000;

/// Where the tables come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    // Plain comments, not doc comments: clap would turn the help of values into a long
    // help unlike every other command's; the values are described in `--source`'s help.
    // The analysis completed by the `.eh_frame` converter (what `unwind` uses).
    Combined,
    // The analysis of the machine code only.
    Analysis,
    // The `.eh_frame` converter only.
    EhFrame,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Source {
        match s {
            SourceArg::Combined => Source::Combined,
            SourceArg::Analysis => Source::Analysis,
            SourceArg::EhFrame => Source::EhFrame,
        }
    }
}

// Arguments of `verify-exec`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(Args, Debug)]
pub struct VerifyExecArgs {
    /// Check one step in N (1: every step).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub every: u64,
    /// The report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Which tables to check: `combined` (the analysis completed by the `.eh_frame` converter,
    /// what `unwind` uses), `analysis` (the machine code only) or `eh-frame` (the converter
    /// only).
    #[arg(long, value_enum, default_value_t = SourceArg::Combined)]
    pub source: SourceArg,
    /// Stop (kill the program) after this many steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Where the ORC tables are cached (default: $ORCTOOL_CACHE, else
    /// $XDG_CACHE_HOME/orctool/orc, else ~/.cache/orctool/orc).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Write the report to this file instead of standard output (which stays the program's).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print progress (steps/s) to standard error even when it is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Distinct disagreements to show in detail.
    #[arg(long, default_value_t = 50)]
    pub max_shown: usize,
    /// Only single-step the program and report the bare rate (the peer of a checked run).
    #[arg(long)]
    pub raw: bool,
    /// Prove the SFrame v3 tables instead of ORC: each file's section as `orctool check
    /// --sframe` writes it (cached as `<build-id>.g<N>.sframe`), read back and walked with
    /// orctool's SFrame reader.
    #[arg(long)]
    pub sframe: bool,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs `verify-exec`. Exit code: 0 when every checked step agrees, 1 when some disagree, 2
/// when the program could not be traced.
pub fn run(args: &VerifyExecArgs) -> i32 {
    let program = args.command.first().map(String::as_str).unwrap_or("");
    let show_progress = args.progress || std::io::stderr().is_terminal();
    if args.raw {
        return run_raw(args, program);
    }
    let cache = match args.cache_dir.clone() {
        Some(dir) => TableCache::new(dir, args.source.into()),
        None => TableCache::with_default_dir(args.source.into()),
    };
    let mut last = Instant::now();
    let mut progress = |r: &Report| {
        if last.elapsed().as_secs_f64() >= 2.0 {
            last = Instant::now();
            eprintln!(
                "verify-exec: {} steps, {:.0} steps/s, {} checked, {} disagree",
                r.steps,
                r.steps_per_second(),
                r.checked,
                r.disagree
            );
        }
    };
    let options = Options {
        every: args.every,
        max_steps: args.max_steps,
        // Kept in detail (for --json) whatever --max-shown prints: a run of tens of millions of
        // steps is not repeated to see the rest.
        max_disagreements: args.max_shown.max(DETAILED_DISAGREEMENTS),
        progress: if show_progress { Some(&mut progress) } else { None },
        sframe: args.sframe,
    };
    let report = match orc_exec::run(&args.command, &cache, options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orctool: {e}");
            return 2;
        }
    };
    let text = if args.json {
        let mut s = serde_json::to_string(&report).unwrap_or_default();
        s.push('\n');
        s
    } else {
        render_text(&report, args.max_shown)
    };
    if let Err(e) = write_report(args.output.as_ref(), &text) {
        eprintln!("orctool: {}: {e}", args.output.as_ref().map(|p| p.display().to_string()).unwrap_or("stdout".into()));
        return 2;
    }
    if report.disagree > 0 {
        1
    } else {
        0
    }
}

fn run_raw(args: &VerifyExecArgs, program: &str) -> i32 {
    match orc_exec::raw_single_step(&args.command, args.max_steps) {
        Ok((steps, seconds, exit)) => {
            let rate = if seconds > 0.0 { steps as f64 / seconds } else { 0.0 };
            let text = if args.json {
                format!("{}\n", serde_json::json!({"command": args.command, "steps": steps, "seconds": seconds, "steps_per_second": rate, "exit": exit}))
            } else {
                format!("{program}: {steps} steps in {seconds:.2} s, {rate:.0} steps/s (single-step only)\n")
            };
            match write_report(args.output.as_ref(), &text) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("orctool: {e}");
                    2
                }
            }
        }
        Err(e) => {
            eprintln!("orctool: {e}");
            2
        }
    }
}

fn write_report(path: Option<&PathBuf>, text: &str) -> std::io::Result<()> {
    match path {
        Some(p) => {
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all(text.as_bytes())?;
            tmp.persist(p).map_err(|e| e.error)?;
            Ok(())
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }
}

fn render_text(r: &Report, max_shown: usize) -> String {
    let mut s = String::new();
    let exit = match (r.exit.code, r.exit.signal) {
        (Some(c), _) => format!("exited with {c}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "did not finish".to_string(),
    };
    let _ = writeln!(
        s,
        "{}: {} steps ({} threads, {} signals handled), program {exit}{}; {:.1} s, {:.0} steps/s",
        r.command.join(" "),
        r.steps,
        r.threads,
        r.handled_signals,
        if r.truncated { ", stopped at --max-steps" } else { "" },
        r.seconds,
        r.steps_per_second()
    );
    let _ = writeln!(
        s,
        "{:>10} {:>10} {:>10} {:>9} {:>10} {:>10}  binary",
        "checked", "agree", "disagree", "agree%", "undefined", "no table"
    );
    for b in &r.binaries {
        let _ = writeln!(
            s,
            "{:>10} {:>10} {:>10} {:>8.3}% {:>10} {:>10}  {}",
            b.checked,
            b.agree,
            b.disagree,
            b.percent(),
            b.undefined,
            b.no_table,
            b.name
        );
    }
    let _ = writeln!(
        s,
        "{:>10} {:>10} {:>10} {:>8.3}% {:>10} {:>10}  total (every {} steps; {} steps of new threads before their first branch not checked{})",
        r.checked,
        r.agree,
        r.disagree,
        r.percent(),
        r.undefined,
        r.no_table,
        r.every,
        r.clone_shared,
        if r.no_stack > 0 { format!(", {} with rsp in no mapping", r.no_stack) } else { String::new() }
    );
    if !r.disagreements.is_empty() {
        let _ = writeln!(s, "{} distinct disagreements (by ip):", r.disagreements.len() as u64 + r.disagreements_not_kept);
    }
    for d in r.disagreements.iter().take(max_shown) {
        describe(&mut s, d);
    }
    let hidden = r.disagreements.len().saturating_sub(max_shown) as u64 + r.disagreements_not_kept;
    if hidden > 0 {
        let _ = writeln!(s, "  ... and {hidden} more (--json lists {} of them)", r.disagreements.len());
    }
    s
}

fn describe(s: &mut String, d: &Disagreement) {
    let place = match (&d.module, d.offset) {
        (Some(m), Some(off)) => format!("{}+{off:#x}", m.rsplit('/').next().unwrap_or(m)),
        _ => "?".to_string(),
    };
    let _ = writeln!(
        s,
        "  {:#x} {place} {}: {} x {} (first at step {}, thread {})",
        d.ip,
        d.function.as_deref().unwrap_or("?"),
        d.count,
        d.mismatch,
        d.step,
        d.tid
    );
    let chain = |s: &mut String, what: &str, frames: &[ShownFrame]| {
        let _ = writeln!(s, "    {what}:");
        for (k, f) in frames.iter().enumerate() {
            let _ = writeln!(s, "      #{k:<2} {:#014x}{} {}", f.ip, if f.exact { " " } else { "r" }, f.symbol);
        }
    };
    chain(s, "expected (shadow stack)", &d.expected);
    chain(s, &format!("ORC ({})", d.orc_end), &d.orc);
}
