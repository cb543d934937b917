//! `orctool verify-patching`: apply every patch of a kernel object as the kernel does and check
//! the object's own ORC table at every instruction boundary of the patched code (orc-patch).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_format::{Entry, EntryType, Reg};
use orc_patch::{verify, CheckKind, Counts, Failure, Options, Report, ShowEntry, UnmodelledAt, VerifyError};
use rayon::prelude::*;
use serde::Serialize;

use crate::input::{expand_paths, read_input, FileError};
use crate::progress::Progress;

// Options of `orctool verify-patching`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct VerifyPatchingArgs {
    /// Kernel objects or modules; directories are walked for `.ko`, `.ko.xz`, `.o` and
    /// `vmlinux` (files found there without an ORC table are counted, not reported).
    #[arg(required_unless_present = "vmcore")]
    pub files: Vec<PathBuf>,
    /// A kernel crash dump: read the code the running kernel had at every patch site of
    /// --vmlinux, say which modelled choice it is, and check the table over that code.
    #[arg(long, requires = "vmlinux", conflicts_with = "files")]
    pub vmcore: Option<PathBuf>,
    /// With --vmcore: the -dbg image of the dump's kernel.
    #[arg(long)]
    pub vmlinux: Option<PathBuf>,
    /// Apply the patching rules of this kernel (`6.12`, `6.1`...) instead of the one each file
    /// names.
    #[arg(long)]
    pub kernel: Option<String>,
    /// One JSON object per file (with sites), one per line, then one with the totals.
    #[arg(long)]
    pub json: bool,
    /// List every unmodelled choice, not only their count by reason.
    #[arg(short, long)]
    pub verbose: bool,
}

/// What happened to one file.
enum Outcome {
    Checked(Report),
    NoOrc,
    Failed(FileError),
}

/// Runs the command. Returns the process exit code: 0 when every lookup gave the derived
/// state, 1 when some did not, 2 when an input could not be read.
pub fn run(args: &VerifyPatchingArgs) -> i32 {
    if let Some(vmcore) = &args.vmcore {
        return match run_vmcore(args, vmcore) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("orctool: {e}");
                2
            }
        };
    }
    let era = match &args.kernel {
        Some(k) => match KernelEra::parse(k) {
            Some(e) => Some(e),
            None => {
                eprintln!("orctool: --kernel {k}: not a kernel version");
                return 2;
            }
        },
        None => None,
    };
    let options = Options { era };
    // Files named on the command line must have a table; files found in directories may not.
    let mut paths: Vec<(PathBuf, bool)> = Vec::new();
    for arg in &args.files {
        match expand_paths(std::slice::from_ref(arg)) {
            Ok(found) => {
                let walked = arg.is_dir();
                paths.extend(found.into_iter().map(|p| (p, walked)));
            }
            Err(e) => {
                eprintln!("orctool: {e}");
                return 2;
            }
        }
    }
    let several = paths.len() > 1;
    let progress = Progress::new(paths.len() as u64, "verifying", several);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut total = Counts::default();
    let mut files_with_sites = 0usize;
    let mut without_orc = 0usize;
    let mut failed_files = 0usize;
    let mut unmodelled_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for chunk in paths.chunks(64) {
        let work = |(p, walked): &(PathBuf, bool)| {
            let r = verify_path(p, *walked, &options);
            progress.inc();
            r
        };
        let outcomes: Vec<Outcome> =
            if several { chunk.par_iter().map(work).collect() } else { chunk.iter().map(work).collect() };
        for ((path, _), outcome) in chunk.iter().zip(outcomes) {
            let report = match outcome {
                Outcome::Checked(r) => r,
                Outcome::NoOrc => {
                    without_orc += 1;
                    continue;
                }
                Outcome::Failed(e) => {
                    progress.println(&format!("orctool: {e}"));
                    failed_files += 1;
                    continue;
                }
            };
            total += report.counts;
            for u in &report.unmodelled {
                *unmodelled_by_reason.entry(u.reason.to_string()).or_default() += 1;
            }
            if report.counts.sites() == 0 {
                continue;
            }
            files_with_sites += 1;
            let text = if args.json { render_json(path, &report) } else { render_text(path, &report, args.verbose) };
            if out.write_all(text.as_bytes()).is_err() {
                return 2;
            }
        }
    }
    progress.finish();
    let files = paths.len();
    if args.json {
        let line = serde_json::json!({
            "total": JsonCounts::from(&total),
            "files": files,
            "files_with_sites": files_with_sites,
            "files_without_orc": without_orc,
            "files_failed": failed_files,
            "unmodelled_by_reason": unmodelled_by_reason,
        });
        let _ = writeln!(out, "{line}");
    } else if several {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "total: {files} files ({files_with_sites} with patch sites, {without_orc} without ORC, {failed_files} unreadable): {}",
            summary(&total)
        );
        for (reason, n) in &unmodelled_by_reason {
            let _ = writeln!(s, "  unmodelled: {n} x {reason}");
        }
        let _ = out.write_all(s.as_bytes());
    }
    let _ = out.flush();
    if failed_files > 0 {
        2
    } else if total.failures > 0 {
        1
    } else {
        0
    }
}

fn verify_path(path: &Path, walked: bool, options: &Options) -> Outcome {
    let bytes = match read_input(path) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(e),
    };
    let file = match ElfFile::parse(&bytes) {
        Ok(f) => f,
        Err(e) => return Outcome::Failed(FileError::new(path, e)),
    };
    match verify(&file, options) {
        Ok(r) => Outcome::Checked(r),
        Err(VerifyError::NoOrcTable) if walked => Outcome::NoOrc,
        Err(e) => Outcome::Failed(FileError::new(path, e)),
    }
}

fn summary(c: &Counts) -> String {
    format!(
        "{} sites ({} alternatives{}, {} jump labels, {} paravirt), {} choices ({} more without a state before the site), \
         checked {} boundaries, {} return addresses, {} exits ({} more not checkable), {} unmodelled, {} failures",
        c.sites(),
        c.alternative_sites,
        if c.direct_call_sites > 0 { format!(" of which {} direct-call pv ops", c.direct_call_sites) } else { String::new() },
        c.jump_label_sites,
        c.paravirt_sites,
        c.choices,
        c.choices_without_state,
        c.boundaries,
        c.return_addresses,
        c.exits,
        c.exits_unchecked(),
        c.unmodelled,
        c.failures
    )
}

fn render_text(path: &Path, report: &Report, verbose: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {} rules: {}", path.display(), report.era, summary(&report.counts));
    for f in &report.failures {
        let _ = writeln!(s, "  FAIL {}", describe_failure(f));
    }
    if verbose {
        for u in &report.unmodelled {
            let _ = writeln!(s, "  unmodelled {}", describe_unmodelled(u));
        }
        for w in &report.without_state {
            let entry = w.entry.map(|e| ShowEntry(e).to_string()).unwrap_or_else(|| "no entry".into());
            let _ = writeln!(
                s,
                "  no state before {} {} ({} choices): table gives {entry}",
                w.site_name,
                w.site_kind.name(),
                w.choices
            );
        }
        for (site, choice, target) in &report.uncovered_exits {
            let _ = writeln!(s, "  exit not checkable: {site}, choice {choice}: jump to {target}, a section without ORC");
        }
    }
    s
}

/// One failure in one line.
pub fn describe_failure(f: &Failure) -> String {
    let what = match (f.check, f.boundary) {
        (CheckKind::Interrupt, Some(b)) => format!("interrupted at +{b:#x}"),
        (CheckKind::ReturnAddress, Some(b)) => format!("return address of the call at +{b:#x}, looked up at ip-1"),
        (CheckKind::Exit, Some(b)) => format!("after the site (+{b:#x})"),
        (CheckKind::Exit, None) => "jump target outside the site".to_string(),
        (_, None) => f.check.name().to_string(),
    };
    let insn = f.instruction.as_ref().map(|i| format!(" `{}`", squeeze(i))).unwrap_or_default();
    let table = match &f.table {
        Some((row, at)) => format!("{} (entry at {at})", ShowEntry(row.entry)),
        None => "no entry".to_string(),
    };
    format!(
        "{} {}, choice {}: {what}{insn}: {} gives {table}, derived {}",
        f.site_name,
        f.site_kind.name(),
        f.choice,
        f.lookup_name,
        ShowEntry(f.derived)
    )
}

fn describe_unmodelled(u: &UnmodelledAt) -> String {
    let at = u.boundary.map(|b| format!(" at +{b:#x}")).unwrap_or_default();
    let insn = u.instruction.as_ref().map(|i| format!(" `{}`", squeeze(i))).unwrap_or_default();
    format!("{} {}, choice {}{at}{insn}: {}", u.site_name, u.site_kind.name(), u.choice, u.reason)
}

/// objdump's column padding, squeezed for one-line messages.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Serialize)]
struct JsonCounts {
    sites: usize,
    alternative_sites: usize,
    direct_call_sites: usize,
    jump_label_sites: usize,
    paravirt_sites: usize,
    choices: usize,
    choices_without_state: usize,
    boundaries: usize,
    return_addresses: usize,
    exits: usize,
    exits_away: usize,
    exits_uncovered: usize,
    exits_indirect: usize,
    exits_stack_switch: usize,
    unmodelled: usize,
    failures: usize,
}

impl From<&Counts> for JsonCounts {
    fn from(c: &Counts) -> Self {
        JsonCounts {
            sites: c.sites(),
            alternative_sites: c.alternative_sites,
            direct_call_sites: c.direct_call_sites,
            jump_label_sites: c.jump_label_sites,
            paravirt_sites: c.paravirt_sites,
            choices: c.choices,
            choices_without_state: c.choices_without_state,
            boundaries: c.boundaries,
            return_addresses: c.return_addresses,
            exits: c.exits,
            exits_away: c.exits_away,
            exits_uncovered: c.exits_uncovered,
            exits_indirect: c.exits_indirect,
            exits_stack_switch: c.exits_stack_switch,
            unmodelled: c.unmodelled,
            failures: c.failures,
        }
    }
}

#[derive(Serialize)]
struct JsonState {
    #[serde(rename = "type")]
    kind: String,
    sp_reg: String,
    sp_offset: i16,
    bp_reg: String,
    bp_offset: i16,
    signal: bool,
}

impl From<Entry> for JsonState {
    fn from(e: Entry) -> Self {
        let reg = |r: Reg| match r.name() {
            Some(n) => n.to_string(),
            None if r == Reg::UNDEFINED => "undefined".to_string(),
            None => format!("reg{}", r.0),
        };
        let kind = match e.kind {
            EntryType::Undefined => "undefined".to_string(),
            EntryType::EndOfStack => "end_of_stack".to_string(),
            EntryType::Call => "call".to_string(),
            EntryType::Regs => "regs".to_string(),
            EntryType::RegsPartial => "regs_partial".to_string(),
            EntryType::Other(n) => format!("type{n}"),
        };
        JsonState {
            kind,
            sp_reg: reg(e.sp_reg),
            sp_offset: e.sp_offset,
            bp_reg: reg(e.bp_reg),
            bp_offset: e.bp_offset,
            signal: e.signal,
        }
    }
}

#[derive(Serialize)]
struct JsonFailure<'a> {
    check: &'static str,
    site_kind: &'static str,
    site: &'a str,
    site_section_offset: u64,
    choice: &'a str,
    entry: Option<usize>,
    boundary: Option<u64>,
    lookup: &'a str,
    instruction: Option<&'a str>,
    derived: JsonState,
    table: Option<JsonState>,
    table_entry_at: Option<&'a str>,
    message: String,
}

#[derive(Serialize)]
struct JsonUnmodelled<'a> {
    reason: String,
    site_kind: &'static str,
    site: &'a str,
    choice: &'a str,
    boundary: Option<u64>,
    instruction: Option<&'a str>,
}

fn render_json(path: &Path, report: &Report) -> String {
    let failures: Vec<JsonFailure<'_>> = report
        .failures
        .iter()
        .map(|f| JsonFailure {
            check: f.check.name(),
            site_kind: f.site_kind.name(),
            site: &f.site_name,
            site_section_offset: f.site.offset,
            choice: &f.choice,
            entry: f.entry,
            boundary: f.boundary,
            lookup: &f.lookup_name,
            instruction: f.instruction.as_deref(),
            derived: f.derived.into(),
            table: f.table.as_ref().map(|(r, _)| r.entry.into()),
            table_entry_at: f.table.as_ref().map(|(_, at)| at.as_str()),
            message: describe_failure(f),
        })
        .collect();
    let unmodelled: Vec<JsonUnmodelled<'_>> = report
        .unmodelled
        .iter()
        .map(|u| JsonUnmodelled {
            reason: u.reason.to_string(),
            site_kind: u.site_kind.name(),
            site: &u.site_name,
            choice: &u.choice,
            boundary: u.boundary,
            instruction: u.instruction.as_deref(),
        })
        .collect();
    let without_state: Vec<serde_json::Value> = report
        .without_state
        .iter()
        .map(|w| {
            serde_json::json!({
                "site_kind": w.site_kind.name(),
                "site": w.site_name,
                "choices": w.choices,
                "table": w.entry.map(JsonState::from),
            })
        })
        .collect();
    let line = serde_json::json!({
        "file": path.display().to_string(),
        "kernel": report.era.to_string(),
        "layout": report.layout.name(),
        "counts": JsonCounts::from(&report.counts),
        "failures": failures,
        "unmodelled": unmodelled,
        "without_state": without_state,
    });
    format!("{line}\n")
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// `verify-patching --vmcore FILE --vmlinux F`: the running kernel's code at every patch site.
fn run_vmcore(args: &VerifyPatchingArgs, vmcore: &Path) -> Result<i32, FileError> {
    use crate::unwind::vmcore_input::{error, open};
    let vmlinux = args.vmlinux.as_deref();
    let opened = open(vmcore, vmlinux)?;
    let vmlinux = vmlinux.expect("open checked it");
    let dump = orc_vmcore::Vmcore::parse(&opened.dump_bytes).map_err(|e| error(vmcore, vmlinux, e))?;
    let image = orc_vmcore::Image::parse(&opened.image_bytes).map_err(|e| error(vmcore, vmlinux, e))?;
    let kernel = orc_vmcore::Kernel::new(&dump, &image).map_err(|e| error(vmcore, vmlinux, e))?;
    let report = orc_vmcore::patching::verify_running(&kernel).map_err(|e| error(vmcore, vmlinux, e))?;
    let findings = report.unmatched.iter().filter(|u| u.same_place.is_none() && !u.freed).count();
    let mut s = String::new();
    if args.json {
        let census: Vec<_> = report
            .census
            .iter()
            .map(|((kind, class), n)| serde_json::json!({"kind": kind, "running": class, "sites": n}))
            .collect();
        let unmatched: Vec<_> = report
            .unmatched
            .iter()
            .map(|u| {
                serde_json::json!({
                    "kind": u.kind.name(), "site": u.site_name, "address": format!("{:#x}", u.address),
                    "running": hex_bytes(&u.running), "same_place": u.same_place, "freed": u.freed,
                    "choices": u.choices.iter().map(|(n, b)| serde_json::json!({"name": n, "bytes": hex_bytes(b)})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "vmcore": vmcore.display().to_string(), "rules": report.era.to_string(), "census": census,
            "unreadable": report.unreadable.len(), "unmatched": unmatched, "findings": findings,
            "checked": JsonCounts::from(&report.counts), "call_targets": report.call_targets,
            "failures": report.failures.iter().map(describe_failure).collect::<Vec<_>>(),
        });
        let _ = writeln!(s, "{doc}");
    } else {
        let _ = writeln!(s, "{}: {} rules, kernel {}", vmcore.display(), report.era, image.release.as_deref().unwrap_or("?"));
        for ((kind, class), n) in &report.census {
            let _ = writeln!(s, "  {kind:<12} running {class:<30} {n:>6} sites");
        }
        if !report.unreadable.is_empty() {
            let _ = writeln!(s, "  {} sites not in the dump (first: {})", report.unreadable.len(), report.unreadable[0]);
        }
        for (target, n) in &report.call_targets {
            let _ = writeln!(s, "  direct call to {target}: {n} sites");
        }
        let _ = writeln!(s, "  running code checked: {}", summary(&report.counts));
        for f in &report.failures {
            let _ = writeln!(s, "  FAIL {}", describe_failure(f));
        }
        for u in &report.unmodelled {
            let _ = writeln!(s, "  unmodelled {}", describe_unmodelled(u));
        }
        for u in &report.unmatched {
            match &u.same_place {
                Some(other) => {
                    if args.verbose {
                        let _ = writeln!(s, "  overwritten {} {} at {:#x}: the bytes are the {other}'s", u.site_name, u.kind.name(), u.address);
                    }
                }
                None if u.freed => {
                    if args.verbose {
                        let _ = writeln!(s, "  freed {} {} at {:#x}: init/exit code, freed after boot", u.site_name, u.kind.name(), u.address);
                    }
                }
                None => {
                    let _ = writeln!(s, "  FINDING {} {} at {:#x}: running `{}` is no modelled choice", u.site_name, u.kind.name(), u.address, hex_bytes(&u.running));
                    for (name, bytes) in &u.choices {
                        let _ = writeln!(s, "      choice {name}: `{}`", hex_bytes(bytes));
                    }
                }
            }
        }
        let _ = writeln!(s, "  {findings} sites running no modelled choice, {} failures", report.counts.failures);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    Ok(if findings > 0 || report.counts.failures > 0 { 1 } else { 0 })
}
