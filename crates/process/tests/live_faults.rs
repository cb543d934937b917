//! Faults in live processes (docs/faults.md): stopping and walking a process that creates and
//! ends threads, forks, execs, maps and unmaps code, receives signals, dies, or is traced by
//! someone else. Each walk gives a result (a trace or one error), the process goes on (or is
//! dead by its own doing), and no thread stays traced or stopped. Synchronised by the program's
//! "ready" line and by ptrace itself, never by sleeping.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use orc_process::{list_threads, stack_range, unwind_thread, AddressSpace, ProcessMemory, Regs, Source, StoppedProcess, TableCache};

/// The fault program, built once per test binary.
fn churn() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("orc-process-faults-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let out = dir.join("churn");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faults/churn.c");
            let status = Command::new("gcc").args(["-O2", "-g", "-pthread", "-o"]).arg(&out).arg(&src).status().expect("gcc runs");
            assert!(status.success(), "gcc failed on {}", src.display());
            out
        })
        .clone()
}

/// A running fault program; killed and reaped when dropped.
struct Running {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(churn()).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().expect("churn starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "churn {args:?}");
        Running { child, out }
    }
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `orctool unwind --pid` does: stop, read the maps, walk every thread, let go. Returns the
/// number of threads walked, or the error.
fn walk_once(pid: i32, cache: &TableCache) -> Result<usize, String> {
    let stopped = StoppedProcess::attach(pid).map_err(|e| e.to_string())?;
    let space = AddressSpace::from_pid(pid, cache).map_err(|e| e.to_string())?;
    let mut walked = 0;
    for tid in stopped.tids().collect::<Vec<_>>() {
        let Ok(regs) = stopped.regs(tid) else { continue };
        let regs = Regs::from(&regs);
        let mut mem = ProcessMemory::new(tid);
        let stack = stack_range(pid, regs.sp).unwrap_or_else(|_| orc_unwind::StackRange::new(regs.sp, regs.sp));
        let trace = unwind_thread(&space, regs, &mut mem, stack);
        assert!(!trace.frames.is_empty(), "thread {tid}: no frame at all");
        walked += 1;
    }
    stopped.detach().map_err(|e| e.to_string())?;
    Ok(walked)
}

/// No thread of `pid` is traced (TracerPid 0) or in a tracing stop (state `t`).
fn nobody_traced(pid: i32) {
    for tid in list_threads(pid).unwrap_or_default() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else { continue };
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
        assert_eq!(field("TracerPid:").as_deref(), Some("0"), "thread {tid} of {pid} is still traced");
        let state = field("State:").unwrap_or_default();
        assert!(!state.starts_with('t'), "thread {tid} of {pid} stays stopped: {state}");
    }
}

/// The process is still running: not exited, not a zombie.
fn alive(r: &mut Running) {
    assert!(r.child.try_wait().unwrap().is_none(), "the process exited");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", r.pid())).unwrap();
    let state = stat.rsplit_once(')').and_then(|(_, s)| s.split_whitespace().next()).unwrap_or("");
    assert!(state != "Z" && state != "t" && state != "T", "state {state}");
}

const ROUNDS: usize = 25;

/// Walks `churn MODE` ROUNDS times: every walk succeeds with at least one thread, nobody stays
/// traced, and the process goes on.
fn walks_always_succeed(mode: &str) {
    let mut r = Running::start(&[mode]);
    let cache = TableCache::in_memory(Source::Combined);
    for _ in 0..ROUNDS {
        let n = walk_once(r.pid(), &cache).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(n >= 1);
        nobody_traced(r.pid());
    }
    alive(&mut r);
}

#[test]
fn threads_created_and_ended_while_stopping() {
    walks_always_succeed("threads");
}

#[test]
fn a_process_forking_children() {
    walks_always_succeed("forks");
}

#[test]
fn code_mapped_and_unmapped_under_the_walk() {
    walks_always_succeed("maps");
}

/// Exec replaces the image (and, from another thread, the thread ids): a walk either sees one
/// image or the other, or says what failed; the process is never left stopped.
#[test]
fn a_process_that_execs_over_and_over() {
    let mut r = Running::start(&["exec", "0"]);
    let cache = TableCache::in_memory(Source::Combined);
    let mut ok = 0;
    for _ in 0..ROUNDS {
        match walk_once(r.pid(), &cache) {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.contains(&r.pid().to_string()) || e.contains("Process"), "unclear error: {e}"),
        }
        nobody_traced(r.pid());
    }
    assert!(ok > 0, "no walk of an exec loop succeeded");
    alive(&mut r);
}

/// Signals sent while the threads are stopped and around the attach are delivered afterwards,
/// none is lost for good and none is delivered twice into a stopped state.
#[test]
fn signals_during_the_walk_are_delivered_afterwards() {
    let mut r = Running::start(&["signals"]);
    let pid = r.pid();
    let cache = TableCache::in_memory(Source::Combined);
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                kill(Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
                sent += 1;
                std::thread::yield_now();
            }
            sent
        })
    };
    for _ in 0..ROUNDS {
        walk_once(pid, &cache).unwrap_or_else(|e| panic!("{e}"));
        nobody_traced(pid);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    // And one while stopped, for sure.
    {
        let stopped = StoppedProcess::attach(pid).unwrap();
        kill(Pid::from_raw(pid), Signal::SIGUSR1).unwrap();
        stopped.detach().unwrap();
    }
    nobody_traced(pid);
    alive(&mut r);
    kill(Pid::from_raw(pid), Signal::SIGUSR2).unwrap();
    let mut rest = String::new();
    r.out.read_to_string(&mut rest).unwrap();
    let status = r.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let count: u64 = rest.trim().strip_prefix("count ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{rest:?}"));
    assert!(count >= 1 && count <= sent + 1, "{count} handled of {} sent", sent + 1);
}

/// Killed while stopped: reading and walking fail or find nothing, letting go is no error, and
/// the process is dead by the killer's doing, not stopped.
#[test]
fn a_process_killed_while_it_is_walked() {
    let mut r = Running::start(&["threads"]);
    let pid = r.pid();
    let cache = TableCache::in_memory(Source::Combined);
    let stopped = StoppedProcess::attach(pid).unwrap();
    let tids: Vec<i32> = stopped.tids().collect();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    for &tid in &tids {
        // Registers of a thread on its way out: an error or the last values, never a hang.
        let _ = stopped.regs(tid);
    }
    let _ = AddressSpace::from_pid(pid, &cache);
    stopped.detach().expect("letting go of a dead process is not an error");
    let status = r.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigkill()));
}

fn libc_sigkill() -> i32 {
    Signal::SIGKILL as i32
}

/// Exits at its own pace while being walked over and over: each walk works or says the
/// process is gone, and no walk hangs.
#[test]
fn a_process_that_exits_while_it_is_walked() {
    let r = Running::start(&["threads", "300"]);
    let pid = r.pid();
    let cache = TableCache::in_memory(Source::Combined);
    let mut r = r;
    loop {
        let result = walk_once(pid, &cache);
        if r.child.try_wait().unwrap().is_some() {
            break;
        }
        if let Err(e) = result {
            // Only the exit itself may make a walk fail; the process is then a zombie.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').and_then(|(_, s)| s.split_whitespace().next()).unwrap_or("");
            assert!(state == "Z" || state.is_empty(), "walk failed on a live process ({state}): {e}");
        }
        nobody_traced(pid);
    }
    assert!(r.child.wait().unwrap().success());
}

/// Another tracer holds the process: the attach fails, says who holds it, and leaves every
/// thread as it was (including those it had seized before meeting the traced one).
#[test]
fn a_second_tracer_is_named_and_nothing_is_left_seized() {
    let r = Running::start(&["idle"]);
    let pid = r.pid();
    // The other tracer: a thread of this test that seizes the last thread (so that the attach
    // has seized the others before it fails) and holds it until told.
    let last = *list_threads(pid).unwrap().last().unwrap();
    assert_ne!(last, pid);
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = std::sync::mpsc::channel::<()>();
    let tracer = std::thread::spawn(move || {
        nix::sys::ptrace::seize(Pid::from_raw(last), nix::sys::ptrace::Options::empty()).unwrap();
        held.send(()).unwrap();
        wait.recv().unwrap();
        // Ending the tracing thread lets go of its tracee.
    });
    is_held.recv().unwrap();
    let e = StoppedProcess::attach(pid).expect_err("a traced process cannot be attached").to_string();
    assert!(e.contains("already traced by process"), "{e}");
    // The threads seized before the refusal are let go: only the last has a tracer, the other
    // one, and none is stopped.
    for tid in list_threads(pid).unwrap() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default();
        if tid != last {
            assert_eq!(field("TracerPid:"), "0", "thread {tid} left traced after a failed attach");
        }
        assert!(!field("State:").starts_with('t'), "thread {tid} left stopped: {}", field("State:"));
    }
    go.send(()).unwrap();
    tracer.join().unwrap();
    drop(r);
}
