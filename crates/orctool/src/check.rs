//! `orctool check`: validate the stack state of an x86-64 object and write its ORC table, as
//! `objtool --orc ...` does, with objtool's flags.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use orc_check::{check, Options};
use orc_elf::write::{Changes, OrcRow, Rewriter, SiteRow, SiteTable, Slot};
use orc_elf::ElfFile;
use orc_flow::KernelEra;

use crate::input::{read_for_rewrite, read_input, FileError, Identity};

// Options of `orctool check`: objtool's action flags and options, plus orctool's own.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Kernel objects, programs or shared libraries (each gets its ORC table written into it,
    /// unless `--output` is given for a single file, or `--sidecar`). Several are checked in
    /// parallel.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Generate ORC and write `.orc_unwind`, `.orc_unwind_ip` and their relocations.
    #[arg(long)]
    pub orc: bool,
    /// Validate frame-pointer rules.
    #[arg(short = 's', long)]
    pub stackval: bool,
    /// Validate user-access (SMAP) rules.
    #[arg(short = 'u', long)]
    pub uaccess: bool,
    /// Validate and annotate IBT (ENDBR) use.
    #[arg(short = 'i', long)]
    pub ibt: bool,
    /// Validate retpoline use.
    #[arg(short = 'r', long)]
    pub retpoline: bool,
    /// Validate return-thunk use.
    #[arg(long)]
    pub rethunk: bool,
    /// Validate straight-line-speculation mitigations.
    #[arg(short = 'l', long)]
    pub sls: bool,
    /// Annotate static calls.
    #[arg(short = 't', long = "static-call")]
    pub static_call: bool,
    /// Annotate mcount/fentry calls.
    #[arg(short = 'm', long)]
    pub mcount: bool,
    /// Validate noinstr rules.
    #[arg(short = 'n', long)]
    pub noinstr: bool,
    /// Validate entry-point untraining.
    #[arg(long)]
    pub unret: bool,
    /// Annotate kCFI type preambles.
    #[arg(long)]
    pub cfi: bool,
    /// Workarounds: `jump_label`, `noinstr`, `skylake` (repeatable or comma-separated; bare
    /// `--hacks` means all).
    #[arg(long, num_args = 0..=1, default_missing_value = "jump_label,noinstr,skylake", value_delimiter = ',')]
    pub hacks: Vec<String>,
    /// Size of the NOP prefix before functions.
    #[arg(long)]
    pub prefix: Option<u64>,
    /// The object is linked (vmlinux.o, a module's .o).
    #[arg(long)]
    pub link: bool,
    /// The object is part of a kernel module.
    #[arg(long)]
    pub module: bool,
    /// Use NOPs for mcount calls.
    #[arg(long)]
    pub mnop: bool,
    /// Write the result here instead of modifying the input.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Analyse and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the input as FILE.orig before modifying it.
    #[arg(long)]
    pub backup: bool,
    /// Objects checked at once (default: all cores).
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Warnings are errors: exit with 1 if there is any (objtool 7.x spells it `--werror`).
    #[arg(long = "Werror", alias = "werror")]
    pub werror: bool,
    /// objtool 7.x: also write `.cfi_sites` for FineIBT (accepted; the section is not written yet).
    #[arg(long, hide = true)]
    pub fineibt: bool,
    /// objtool 7.x: write `.klp.symids` for livepatch builds (accepted; not written yet).
    #[arg(long, hide = true)]
    pub klp_symids: bool,
    /// objtool 7.x: reject absolute references in allocatable sections (accepted; no effect yet).
    #[arg(long, hide = true)]
    pub noabs: bool,
    /// objtool 7.x: disassemble the functions matching a pattern (accepted; `orctool annotate`
    /// shows code with its states).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "*", hide = true)]
    pub disas: Option<String>,
    /// objtool 7.x: trace the validation of one function (accepted; no effect yet).
    #[arg(long, hide = true, value_name = "FUNC")]
    pub trace: Option<String>,
    /// objtool 7.x: wide disassembly output (accepted; no effect).
    #[arg(long, hide = true)]
    pub wide: bool,
    /// Accepted for objtool compatibility (no effect yet).
    #[arg(long, hide = true)]
    pub backtrace: bool,
    /// Accepted for objtool compatibility (no effect yet).
    #[arg(long, hide = true)]
    pub stats: bool,
    /// Accepted for objtool compatibility (no effect yet).
    #[arg(short = 'v', long, hide = true)]
    pub verbose: bool,
    /// Accepted for objtool compatibility (no effect yet).
    #[arg(long, hide = true)]
    pub sec_address: bool,
    /// Accepted for objtool compatibility (no effect yet).
    #[arg(long, hide = true)]
    pub no_unreachable: bool,
    /// Also flag return addresses inside patch sites that the unwinder would look up in
    /// another alternative's entry (not an objtool check).
    #[arg(long)]
    pub strict_alternatives: bool,
    /// Give up wherever objtool gives up (by default orctool goes on where it can and says
    /// what it assumed).
    #[arg(long)]
    pub like_objtool: bool,
    /// The kernel the object belongs to (`6.12`, `6.1`...), which decides the layouts of its
    /// special sections and of the ORC written. Default: the version in `.modinfo`, else 6.12.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Executables and shared libraries: write the table to `DIR/<build-id>.orc` (default:
    /// the table cache) instead of into the file.
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true)]
    pub sidecar: Option<Option<PathBuf>>,
    /// Executables and shared libraries: write SFrame v3 instead of ORC: a loaded `.sframe`
    /// section with `PT_GNU_SFRAME` in a copy of the file (or in the file itself), or with
    /// `--sidecar` the section alone in `DIR/<build-id>.sframe`.
    #[arg(long)]
    pub sframe: bool,
}

/// The walker follows branches recursively, as objtool does; give it room.
const WALK_STACK: usize = 256 << 20;

/// A single object at least this big is read for its rewrite on a second thread while the
/// analysis runs (vmlinux.o, amdgpu.ko). Below it a second thread costs more than it saves:
/// most modules take a few milliseconds in all.
const OVERLAP_MIN_BYTES: u64 = 8 << 20;

/// Runs the command; returns the exit code.
pub fn run(args: &CheckArgs) -> i32 {
    if args.output.is_some() && args.files.len() > 1 {
        eprintln!("orctool: --output takes one input object, not {}", args.files.len());
        return 2;
    }
    let jobs = jobs(args);
    crate::alloc::prepare_decoder();
    let results: Vec<(String, i32)> = if args.files.len() == 1 {
        if !is_big(&args.files[0]) {
            one_heap_arena();
        }
        vec![one_scoped(args, &args.files[0])]
    } else {
        let pool = match rayon::ThreadPoolBuilder::new().num_threads(jobs).stack_size(WALK_STACK).build() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("orctool: cannot start worker threads: {e}");
                return 2;
            }
        };
        use rayon::prelude::*;
        pool.install(|| args.files.par_iter().map(|p| one(args, p)).collect())
    };
    let mut code = 0;
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    for (text, c) in results {
        let _ = err.write_all(text.as_bytes());
        code = code.max(c);
    }
    code
}

/// Threads to use: `-j`, else every core.
fn jobs(args: &CheckArgs) -> usize {
    args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// Whether the one object of this run is read for its rewrite on a second thread while the
/// analysis runs.
fn overlaps(args: &CheckArgs, path: &Path) -> bool {
    !args.dry_run && args.files.len() == 1 && jobs(args) >= 2 && is_big(path)
}

/// Objects like vmlinux.o: a second thread pays off, and glibc's defaults stay (their memory
/// is measured against objtool's).
fn is_big(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() >= OVERLAP_MIN_BYTES)
}

/// One object, one working thread: let that thread allocate from the main heap. glibc gives
/// a new thread its own arena, which grows one page per `mprotect` call (about a hundred of
/// them for a small module, and 15% of its CPU time); the main heap grows by 128 KiB steps.
/// And keep freed memory for reuse: by default glibc maps buffers of 128 KiB and more on
/// their own and unmaps them when freed, and returns the heap's free top to the kernel, so the
/// next buffer is faulted in page by page again (a sixth of the page faults of a 600 KB
/// module). The process ends after this one object.
fn one_heap_arena() {
    // SAFETY: mallopt only changes malloc's tuning; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Checks one object on a thread with a large stack, borrowing `args`.
fn one_scoped(args: &CheckArgs, path: &Path) -> (String, i32) {
    std::thread::scope(|scope| {
        match std::thread::Builder::new().stack_size(WALK_STACK).spawn_scoped(scope, || one(args, path)) {
            Ok(handle) => handle.join().unwrap_or_else(|_| (format!("orctool: {}: internal error\n", path.display()), 2)),
            Err(e) => (format!("orctool: cannot start a thread: {e}\n"), 2),
        }
    })
}

/// Checks one object; returns what to print on stderr and the exit code.
fn one(args: &CheckArgs, path: &Path) -> (String, i32) {
    let mut text = String::new();
    match run_inner(args, path, &mut text) {
        Ok(code) => (text, code),
        Err(e) => {
            text += &format!("orctool: {e}\n");
            (text, 2)
        }
    }
}

fn run_inner(args: &CheckArgs, path: &Path, out: &mut String) -> Result<i32, FileError> {
    let name = path.display().to_string();
    // Written over (no -o, not --dry-run): read as a copy, and remember what the file was.
    let (bytes, identity) = if !args.dry_run && args.output.is_none() {
        let (bytes, identity) = read_for_rewrite(path)?;
        (bytes, Some(identity))
    } else {
        (read_input(path)?, None)
    };
    let file = ElfFile::parse(&bytes).map_err(|e| FileError::new(path, e))?;
    if matches!(file.kind(), orc_elf::FileKind::Executable | orc_elf::FileKind::Shared) && !is_kernel_image(&file) {
        return crate::check_linked::run(args, path, identity.as_ref(), &bytes, &file, out);
    }
    let era = match &args.kernel {
        Some(k) => KernelEra::parse(k).ok_or_else(|| FileError::new(path, format!("--kernel {k}: not a kernel version")))?,
        None => KernelEra::from_file(&file).unwrap_or(KernelEra::V6_12),
    };
    // objtool's option rules for objects (`mnop_opts_valid`, `link_opts_valid`): refused
    // combinations are bad input; a linked object is recognised by its several STT_FILE
    // symbols and checked as one.
    if args.mnop && !args.mcount {
        return Err(FileError::new(path, "--mnop requires --mcount"));
    }
    let mut link = args.link;
    if !link {
        let files = file.symbols().filter(|s| s.as_ref().is_ok_and(|s| s.kind == orc_elf::SymbolKind::File)).take(2).count();
        if files > 1 {
            let _ = writeln!(out, "orctool: {name}: note: linked object detected, forcing --link");
            link = true;
        }
    }
    if !link {
        for (asked, flag) in [(args.noinstr, "--noinstr"), (args.ibt, "--ibt"), (args.unret, "--unret")] {
            if asked {
                return Err(FileError::new(path, format!("{flag} requires --link")));
            }
        }
    }
    let hacks = |h: &str| args.hacks.iter().any(|x| x == h);
    let opts = Options {
        orc: args.orc,
        stackval: args.stackval,
        uaccess: args.uaccess,
        ibt: args.ibt,
        retpoline: args.retpoline,
        rethunk: args.rethunk,
        sls: args.sls,
        static_call: args.static_call,
        mcount: args.mcount,
        mnop: args.mnop,
        noinstr: args.noinstr,
        unret: args.unret,
        hack_jump_label: hacks("jump_label"),
        hack_noinstr: hacks("noinstr"),
        hack_skylake: hacks("skylake"),
        prefix: args.prefix,
        link,
        module: args.module,
        assume_intra_function_calls: !args.like_objtool,
        strict_alternatives: args.strict_alternatives,
        // Several objects are checked in parallel already; one object gets the threads.
        threads: if args.files.len() == 1 { jobs(args) } else { 1 },
    };
    let not_written: Vec<&str> = [
        (args.cfi || args.fineibt, ".cfi_sites"),
        (args.klp_symids, ".klp.symids"),
    ]
    .iter()
    .filter(|(asked, _)| *asked)
    .map(|(_, s)| *s)
    .collect();
    if !not_written.is_empty() {
        let _ = writeln!(out, "orctool: {name}: note: validated, but not written yet: {}", not_written.join(", "));
    }

    // One object and a second thread: read the object for rewriting while the analysis runs.
    // Most objects are rewritten by appending, whose reading is only the section headers;
    // those the builder rebuilds (section groups) are read whole, which takes a while.
    let overlap = overlaps(args, path);
    let (analysis, early_rewriter) = if overlap {
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| Rewriter::read(&bytes));
            let analysis = check(&file, era, &opts);
            let rewriter = reader.join().unwrap_or_else(|_| Err(orc_elf::ElfError::Malformed("internal error while reading for the rewrite".into())));
            (analysis, Some(rewriter))
        })
    } else {
        (check(&file, era, &opts), None)
    };
    // Where the warnings start: if the object then cannot be rewritten, it is bad input, and
    // bad input gets one line (what is wrong), not the warnings of a half-done job.
    let before_warnings = out.len();
    for w in &analysis.warnings {
        let _ = writeln!(out, "{}", w.render(&name));
    }
    for a in &analysis.assumptions {
        let _ = writeln!(out, "orctool: {name}: note: objtool would give up here; {a}");
    }
    if let Some(fatal) = &analysis.fatal {
        let _ = writeln!(out, "orctool: {name}: gave up like objtool does ({fatal}); nothing written");
        return Ok(if args.werror { 1 } else { 0 });
    }
    if !args.dry_run {
        let mut out_rows = Vec::new();
        if let Some(rows) = &analysis.orc {
            let layout = era.orc_layout();
            out_rows.reserve(rows.len());
            for r in rows {
                let raw = layout.encode(r.entry).map_err(|e| FileError::new(path, format!("cannot encode ORC entry: {e}")))?;
                out_rows.push(OrcRow { section: r.section, offset: r.offset, raw });
            }
        }
        let tables = site_tables(&analysis.sites);
        let edits = &analysis.edits;
        if !out_rows.is_empty() || tables.iter().any(|t| !t.rows.is_empty()) || !edits.is_empty() {
            let changes = Changes {
                tables: &tables,
                orc: Some(&out_rows),
                patches: &edits.patches,
                symbols: &edits.symbols,
            };
            let rewriter = match early_rewriter {
                Some(r) => r,
                None => Rewriter::read(&bytes),
            };
            let rewriter = rewriter.map_err(|e| {
                out.truncate(before_warnings);
                FileError::new(path, e)
            })?;
            // Streamed into the temporary file: no second copy of a vmlinux.o-sized object.
            let mut failed_to_build = false;
            let target = args.output.as_deref().unwrap_or(path);
            write_checked_with(args, path, identity.as_ref(), |file| {
                let mut sink = FirstIoError::new(file);
                rewriter.finish_to(&changes, &mut sink).map_err(|e| match sink.error.take() {
                    Some(io) => write_failure(target, io),
                    None => {
                        failed_to_build = true;
                        FileError::new(path, e)
                    }
                })
            })
            .inspect_err(|_| {
                if failed_to_build {
                    out.truncate(before_warnings);
                }
            })?;
        }
    }
    Ok(if args.werror && !analysis.warnings.is_empty() { 1 } else { 0 })
}

/// `vmlinux` is `ET_EXEC` too, but is the kernel's: it goes through objtool's checks.
fn is_kernel_image(file: &ElfFile<'_>) -> bool {
    file.section_by_name(".modinfo").ok().flatten().is_some()
        || file.section_by_name("__ex_table").ok().flatten().is_some()
        || file.section_by_name(".altinstructions").ok().flatten().is_some()
}

/// The site tables in the order objtool creates them (empty ones are not written).
fn site_tables(sites: &orc_check::sites::SiteRows) -> Vec<SiteTable> {
    let table = |name: &str, rows: &[(usize, u64)], slot: Slot| SiteTable {
        name: name.to_string(),
        rows: rows.iter().map(|&(section, offset)| SiteRow { section, offset, key: None }).collect(),
        slot,
    };
    let plain = |name: &str, rows: &[(usize, u64)]| table(name, rows, Slot::Pc32);
    vec![
        SiteTable {
            name: ".static_call_sites".to_string(),
            rows: sites
                .static_calls
                .iter()
                .map(|r| SiteRow { section: r.section, offset: r.offset, key: Some((r.key, i64::from(r.tail))) })
                .collect(),
            slot: Slot::Pc32,
        },
        plain(".retpoline_sites", &sites.retpoline_sites),
        plain(".return_sites", &sites.return_sites),
        plain(".call_sites", &sites.call_sites),
        table("__mcount_loc", &sites.mcount_loc, Slot::Abs64),
        plain(".ibt_endbr_seal", &sites.ibt_endbr_seal),
    ]
}

/// Writes the checked file: to `-o OUT`, or over the input (kept as `FILE.orig` first with
/// `--backup`) if it is still the file that was read (`read_as`). Returns where it went.
pub fn write_checked<'p>(args: &'p CheckArgs, path: &'p Path, read_as: Option<&Identity>, bytes: &[u8]) -> Result<&'p Path, FileError> {
    let target = args.output.as_deref().unwrap_or(path);
    write_checked_with(args, path, read_as, |file| file.write_all(bytes).map_err(|e| write_failure(target, e)))
}

/// [`write_checked`] with the contents written by `write` into the temporary file.
pub fn write_checked_with<'p>(
    args: &'p CheckArgs,
    path: &'p Path,
    read_as: Option<&Identity>,
    write: impl FnOnce(&mut std::fs::File) -> Result<(), FileError>,
) -> Result<&'p Path, FileError> {
    let target = args.output.as_deref().unwrap_or(path);
    if let Some(read_as) = read_as.filter(|_| args.output.is_none()) {
        if Identity::of(path)? != *read_as {
            return Err(FileError::new(path, "changed on disk while it was checked (another writer?): left as it is now, nothing written"));
        }
    }
    if args.backup && args.output.is_none() {
        let mut orig = path.as_os_str().to_owned();
        orig.push(".orig");
        let original = std::fs::read(path).map_err(|e| FileError::new(path, format!("cannot keep a backup: {e}")))?;
        write_atomically(Path::new(&orig), &original)?;
    }
    let fresh = !target.exists();
    write_atomically_with(target, write)?;
    if fresh {
        // A new output file gets the input's mode: a rewritten program stays executable.
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = std::fs::set_permissions(target, meta.permissions());
        }
    }
    Ok(target)
}

/// A write past the file-size limit (`ulimit -f`) must be an error to report, with the
/// temporary file removed, not SIGXFSZ ending the process halfway.
pub fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to "ignore" installs no handler; nothing else in
    // orctool handles SIGXFSZ.
    #[allow(unsafe_code)]
    unsafe {
        let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGXFSZ, nix::sys::signal::SigHandler::SigIgn);
    }
}

/// Writes through a temporary file in the same directory and renames it over `target`, so a
/// failure never leaves a half-written object.
pub fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomically_with(target, |file| file.write_all(bytes).map_err(|e| write_failure(target, e)))
}

/// The system's reason a write of `target` failed, without the temporary file's name that
/// tempfile adds to it.
fn write_failure(target: &Path, e: std::io::Error) -> FileError {
    let code = e.raw_os_error().or_else(|| {
        let inner = std::error::Error::source(e.get_ref()?)?;
        inner.downcast_ref::<std::io::Error>()?.raw_os_error()
    });
    let plain = code.map_or(e, std::io::Error::from_raw_os_error);
    FileError::new(target, format!("cannot write the result: {plain}"))
}

/// A writer over the temporary file that keeps the first I/O error, so that a streamed write
/// that fails (a full disk, the file-size limit) is reported with the system's reason, as a
/// plain write is, and not as the builder's wrapped message.
struct FirstIoError<'f> {
    file: &'f mut std::fs::File,
    error: Option<std::io::Error>,
}

impl<'f> FirstIoError<'f> {
    fn new(file: &'f mut std::fs::File) -> Self {
        FirstIoError { file, error: None }
    }

    fn keep<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if self.error.is_none() {
                self.error = Some(e.raw_os_error().map_or_else(|| std::io::Error::from(e.kind()), std::io::Error::from_raw_os_error));
            }
        }
        r
    }
}

impl std::io::Write for FirstIoError<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = std::io::Write::write(self.file, buf);
        self.keep(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = std::io::Write::flush(self.file);
        self.keep(r)
    }
}

/// [`write_atomically`] with the contents written by `write` into the temporary file (which
/// is removed if `write` fails).
pub fn write_atomically_with(
    target: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<(), FileError>,
) -> Result<(), FileError> {
    ignore_file_size_signal();
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| write_failure(target, e))?;
    write(tmp.as_file_mut())?;
    if let Ok(meta) = std::fs::metadata(target) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(target).map_err(|e| write_failure(target, e.error))?;
    Ok(())
}
