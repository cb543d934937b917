//! `orctool unwind --pid` and `orctool verify-exec` against processes that change under them
//! (docs/faults.md). The library-level cases (threads, forks, exec, maps, signals, kill, exit,
//! a failed attach) are in crates/process/tests/live_faults.rs; these check what the commands
//! print and return. Synchronised by the program's "ready" line, never by sleeping.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn orctool() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orctool"));
    c.stdin(Stdio::null());
    c
}

fn build(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../process/tests/faults/churn.c");
    let out = dir.join(name);
    let status = Command::new("gcc").args(["-g", "-pthread"]).args(extra).arg("-o").arg(&out).arg(&src).status().expect("gcc runs");
    assert!(status.success());
    out
}

struct Running(Child);

impl Running {
    fn start(path: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(path).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        Running(child)
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn unwind_pid(pid: u32, cache: &Path) -> Output {
    orctool().args(["unwind", "--pid", &pid.to_string(), "--no-lines", "--cache-dir"]).arg(cache).output().unwrap()
}

/// The one error line of a failed command.
fn one_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn unwind_pid_while_threads_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let churn = build(dir.path(), "churn", &["-O2"]);
    let mut r = Running::start(&churn, &["threads"]);
    for _ in 0..5 {
        let o = unwind_pid(r.pid(), dir.path());
        assert!(o.status.success(), "{o:?}");
        assert!(text(&o.stdout).contains("main"), "{}", text(&o.stdout));
    }
    assert!(r.0.try_wait().unwrap().is_none(), "the process did not go on");
}

#[test]
fn unwind_pid_of_a_process_that_does_not_exist() {
    // A pid above the kernel's maximum cannot exist.
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    let err = one_error(&orctool().args(["unwind", "--pid", &(max + 1).to_string()]).output().unwrap());
    assert!(err.contains("no such process"), "{err}");
}

/// Someone else traces the process: one line naming the tracer, the process untouched.
#[test]
fn unwind_pid_of_a_process_traced_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let churn = build(dir.path(), "churn", &["-O2"]);
    let mut r = Running::start(&churn, &["idle"]);
    // The other tracer: orctool's own verify-exec cannot be used (it starts its program), so a
    // second orctool is not it either; this test process seizes the leader.
    let pid = r.pid() as i32;
    let tracer = std::thread::spawn(move || {
        nix::sys::ptrace::seize(nix::unistd::Pid::from_raw(pid), nix::sys::ptrace::Options::empty()).unwrap();
        let o = unwind_pid(pid as u32, std::path::Path::new("/nonexistent-cache"));
        // Ending this thread lets go of the tracee.
        o
    });
    let o = tracer.join().unwrap();
    let err = one_error(&o);
    assert!(err.contains(&format!("already traced by process {}", std::process::id())), "{err}");
    assert!(r.0.try_wait().unwrap().is_none());
}

/// ptrace refused by the system: as an unprivileged user against root's process (only when
/// the tests run as root; otherwise SKIP).
#[test]
fn unwind_pid_refused_by_the_system() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        println!("SKIP: not root, no other user's process to be refused");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let churn = build(dir.path(), "churn", &["-O2"]);
    let r = Running::start(&churn, &["idle"]);
    let o = orctool().args(["unwind", "--pid", &r.pid().to_string(), "--no-cache"]).uid(65534).gid(65534).output().unwrap();
    if o.status.code() == Some(126) || text(&o.stderr).contains("ermission denied") && !text(&o.stderr).contains("pid") {
        println!("SKIP: the unprivileged user cannot run orctool here");
        return;
    }
    let err = one_error(&o);
    assert!(err.contains("not permitted") || err.contains("ptrace_scope"), "{err}");
}

/// The executable is replaced on disk after it started (a new build renamed over it): the walk
/// reads the file that is mapped (through /proc/PID/map_files), not the new one, so the names
/// are right; without that access it says the file was replaced rather than use the new one.
#[test]
fn unwind_pid_after_the_executable_was_replaced_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let churn = build(dir.path(), "churn", &["-O2"]);
    let r = Running::start(&churn, &["idle"]);
    // Another build, renamed over the running one.
    let other = build(dir.path(), "other", &["-O0", "-DOTHER_BUILD"]);
    std::fs::rename(&other, &churn).unwrap();
    let o = unwind_pid(r.pid(), dir.path());
    assert!(o.status.success(), "{o:?}");
    let out = text(&o.stdout);
    let leader = out.split("\n\n").next().unwrap_or("");
    let by_map_files = std::fs::metadata(format!("/proc/{}/map_files", r.pid())).is_ok()
        && std::fs::read_dir(format!("/proc/{}/map_files", r.pid())).is_ok_and(|mut d| d.next().is_some());
    if by_map_files {
        assert!(leader.contains("main"), "the leader's stack lost main:\n{out}");
    } else {
        assert!(text(&o.stderr).contains("replaced or deleted on disk"), "{}", text(&o.stderr));
    }
}

/// verify-exec follows a program that creates threads, forks, execs itself and maps code:
/// each run ends with a report of the program's exit, never a hang or a crash.
#[test]
fn verify_exec_on_a_program_that_changes_under_it() {
    let dir = tempfile::tempdir().unwrap();
    // Static: the dynamic loader's start-up would be most of the steps.
    let churn = build(dir.path(), "churn", &["-O2", "-static"]);
    for (mode, threads) in [("threads", 9), ("forks", 1), ("exec", 1), ("maps", 1)] {
        let o = orctool()
            .args(["verify-exec", "--every", "200", "--cache-dir"])
            .arg(dir.path())
            .arg("--")
            .arg(&churn)
            .args([mode, "2"])
            .output()
            .unwrap();
        let out = text(&o.stdout);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{mode}: {o:?}");
        assert!(out.contains("program exited with 0"), "{mode}: {out}");
        assert!(out.contains(&format!("({threads} threads,")), "{mode}: {out}");
    }
}

/// The program is killed from outside while verify-exec steps it: the report says so.
#[test]
fn verify_exec_on_a_program_killed_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let churn = build(dir.path(), "churn", &["-O2", "-static"]);
    let mut v = orctool()
        .args(["verify-exec", "--every", "1000", "--cache-dir"])
        .arg(dir.path())
        .arg("--")
        .arg(&churn)
        .arg("signals")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(v.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // The program is verify-exec's only child.
    let children = std::fs::read_to_string(format!("/proc/{}/task/{}/children", v.id(), v.id())).unwrap_or_default();
    let program: i32 = children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("verify-exec's child");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(program), nix::sys::signal::Signal::SIGKILL).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = v.wait().unwrap();
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}: {rest}");
    assert!(rest.contains("killed by signal 9"), "{rest}");
}
