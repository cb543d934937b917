//! The C test programs of user space (`crates/testkit/programs/*.c`), compiled on demand.
//!
//! Each program exercises one shape compilers emit (deep recursion, tail calls, jump tables,
//! DRAP, a signal interrupting a leaf, setjmp/longjmp, threads, noreturn calls) and has a
//! *stop mode*: with first argument `stop`, every thread parks at the bottom of a deep chain
//! and the program prints `ready`, so that an unwinder can be compared with gdb on a process
//! that does not move ([`spawn_stopped`]).
//!
//! Binaries are cached under the cargo target directory, keyed by program, compiler version,
//! flags and source hash, and written atomically, so that tests running in parallel share
//! them and a changed source or flag rebuilds.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// Every program, by name (`programs/<name>.c`).
const NAMES: &[&str] = &["recursion", "tailcall", "switch", "alloca_drap", "signal_leaf", "setjmp", "threads", "noreturn"];

/// Headers the programs include; part of every program's cache key.
const HEADERS: &[&str] = &["stop.h"];

/// How long [`spawn_stopped`] waits for `ready` and for every thread to block. Generous: it
/// only bounds a broken program, it measures nothing.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The x86-64 system call number of `pause`, where every thread of a stopped program blocks.
const SYS_PAUSE: u64 = 34;

/// A C compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compiler {
    /// `gcc`.
    Gcc,
    /// `clang`.
    Clang,
}

impl Compiler {
    /// The command that runs it.
    pub fn command(self) -> &'static str {
        match self {
            Compiler::Gcc => "gcc",
            Compiler::Clang => "clang",
        }
    }
}

/// How to compile a program.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Build {
    /// The compiler.
    pub compiler: Compiler,
    /// The optimization flag, e.g. `-O2`.
    pub opt: &'static str,
    /// `-fomit-frame-pointer` when true, `-fno-omit-frame-pointer` when false.
    pub omit_frame_pointer: bool,
    /// A position-independent executable when true, `-no-pie` when false.
    pub pie: bool,
    /// Further flags, passed after all others.
    pub extra: Vec<String>,
}

impl Default for Build {
    /// `gcc -O2 -fomit-frame-pointer -g`, PIE: what the issue asks the programs be built with.
    fn default() -> Self {
        Build { compiler: Compiler::Gcc, opt: "-O2", omit_frame_pointer: true, pie: true, extra: Vec::new() }
    }
}

impl Build {
    /// The default build with `compiler`.
    pub fn with(compiler: Compiler) -> Self {
        Build { compiler, ..Build::default() }
    }

    /// The compiler's flags (without sources and output).
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec![self.opt.to_string(), "-g".to_string(), "-pthread".to_string()];
        flags.push(if self.omit_frame_pointer { "-fomit-frame-pointer" } else { "-fno-omit-frame-pointer" }.to_string());
        flags.push(if self.pie { "-fPIE" } else { "-fno-pie" }.to_string());
        flags.push(if self.pie { "-pie" } else { "-no-pie" }.to_string());
        flags.extend(self.extra.iter().cloned());
        flags
    }
}

/// The names of all programs.
pub fn names() -> &'static [&'static str] {
    NAMES
}

/// The directory holding the programs' sources.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs")
}

/// The source file of program `name`.
pub fn source(name: &str) -> PathBuf {
    source_dir().join(format!("{name}.c"))
}

/// Whether `clang` can be run.
pub fn clang_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| compiler_version(Compiler::Clang).is_ok())
}

/// Compiles program `name` with `build` (cached) and returns the executable's path.
pub fn build(name: &str, build: &Build) -> Result<PathBuf, String> {
    if !NAMES.contains(&name) {
        return Err(format!("no test program named {name:?} (known: {})", NAMES.join(", ")));
    }
    let src = source(name);
    let mut hasher = Fnv::new();
    hasher.write(compiler_version(build.compiler)?.as_bytes());
    for flag in build.flags() {
        hasher.write(flag.as_bytes());
        hasher.write(&[0]);
    }
    for file in std::iter::once(src.clone()).chain(HEADERS.iter().map(|h| source_dir().join(h))) {
        let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        hasher.write(&text);
        hasher.write(&[0]);
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let out = dir.join(format!("{name}-{}-{:016x}", build.compiler.command(), hasher.finish()));
    if out.is_file() {
        return Ok(out);
    }
    // Compile to a name no other builder uses, then rename: a parallel test sees either no
    // file or a complete one.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = Command::new(build.compiler.command())
        .args(build.flags())
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .output()
        .map_err(|e| format!("{}: cannot run {}: {e}", src.display(), build.compiler.command()));
    let compiled = match result {
        Ok(o) if o.status.success() => std::fs::rename(&tmp, &out).map_err(|e| format!("{}: cannot rename into place: {e}", out.display())),
        Ok(o) => Err(format!("{}: {} failed:\n{}", src.display(), build.compiler.command(), String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(e),
    };
    if compiled.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    compiled.map(|()| out)
}

/// The first line of `compiler --version`, run once per compiler.
fn compiler_version(compiler: Compiler) -> Result<String, String> {
    static GCC: OnceLock<Result<String, String>> = OnceLock::new();
    static CLANG: OnceLock<Result<String, String>> = OnceLock::new();
    let cell = match compiler {
        Compiler::Gcc => &GCC,
        Compiler::Clang => &CLANG,
    };
    cell.get_or_init(|| {
        let out = Command::new(compiler.command()).arg("--version").output().map_err(|e| format!("cannot run {}: {e}", compiler.command()))?;
        if !out.status.success() {
            return Err(format!("{} --version failed", compiler.command()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string())
    })
    .clone()
}

/// Where built programs go: `orc-programs` in the cargo target directory this executable was
/// built into (found by cargo's `CACHEDIR.TAG`), else `$CARGO_TARGET_DIR`, else the system's
/// temporary directory.
fn cache_dir() -> PathBuf {
    let from_exe = std::env::current_exe().ok().and_then(|exe| exe.ancestors().skip(1).find(|d| d.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf));
    let from_env = || std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).filter(|p| p.is_absolute());
    match from_exe.or_else(from_env) {
        Some(target) => target.join("orc-programs"),
        None => std::env::temp_dir().join("orctool-programs"),
    }
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions, for cache keys.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A test program running in stop mode, every thread parked at the bottom of its chain.
/// Dropping it kills and reaps the process.
#[derive(Debug)]
pub struct Stopped {
    child: Child,
}

impl Stopped {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The thread ids of the process (`/proc/PID/task`), sorted; the first is the main thread.
    pub fn tasks(&self) -> Result<Vec<u32>, String> {
        tasks(self.pid())
    }

    /// The child process, e.g. to wait for it after an experiment that should not end it.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `path` in stop mode (`path stop ARGS...`) and returns once it printed `ready` and
/// every one of its threads is blocked in `pause`. Fails (and kills the program) if it exits,
/// prints something else, or is not ready within a minute.
pub fn spawn_stopped(path: &Path, args: &[&str]) -> Result<Stopped, String> {
    let child = Command::new(path)
        .arg("stop")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: cannot start: {e}", path.display()))?;
    let mut stopped = Stopped { child };
    let stdout = stopped.child.stdout.take().ok_or_else(|| format!("{}: no stdout pipe", path.display()))?;
    // A thread reads the line, so that waiting for it can time out.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let got = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(got);
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(line)) if line == "ready\n" => {}
        Ok(Ok(line)) => {
            let status = stopped.child.try_wait().ok().flatten();
            return Err(format!("{}: expected \"ready\", got {line:?} (exit: {status:?})", path.display()));
        }
        Ok(Err(e)) => return Err(format!("{}: reading its output: {e}", path.display())),
        Err(_) => return Err(format!("{}: no \"ready\" within {READY_TIMEOUT:?}", path.display())),
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if all_parked(stopped.pid())? {
            return Ok(stopped);
        }
        if Instant::now() > deadline {
            return Err(format!("{}: printed ready, but its threads did not all block in pause", path.display()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The thread ids of process `pid`, sorted.
pub fn tasks(pid: u32) -> Result<Vec<u32>, String> {
    let dir = format!("/proc/{pid}/task");
    let mut ids: Vec<u32> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Whether every thread of `pid` sleeps in the `pause` system call. Where
/// `/proc/PID/task/TID/syscall` cannot be read, a sleeping state (`S`) is taken as parked.
pub fn all_parked(pid: u32) -> Result<bool, String> {
    for tid in tasks(pid)? {
        let base = format!("/proc/{pid}/task/{tid}");
        let stat = std::fs::read_to_string(format!("{base}/stat")).map_err(|e| format!("{base}/stat: {e}"))?;
        // The state follows the command name, which is in parentheses and may contain spaces.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if state != Some("S") {
            return Ok(false);
        }
        if let Ok(text) = std::fs::read_to_string(format!("{base}/syscall")) {
            let number = text.split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
            if number != Some(SYS_PAUSE) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
