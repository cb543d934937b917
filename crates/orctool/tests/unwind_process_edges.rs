//! `orctool unwind` where processes and files are not what they usually are: a leader thread
//! that has exited, a core path that is a FIFO, a reader that closes the pipe.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits at most `limit` for `child`; kills it and fails if it is still running.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A program whose main thread calls `pthread_exit` while a worker waits in `pause`.
fn leaderless_program(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let src = dir.join("leaderless.c");
    let exe = dir.join("leaderless");
    std::fs::write(
        &src,
        r#"
        #include <pthread.h>
        #include <stdio.h>
        #include <unistd.h>
        __attribute__((noinline)) static void *worker(void *a) {
            (void)a;
            puts("ready");
            fflush(stdout);
            for (;;) pause();
            return 0;
        }
        int main(void) { pthread_t t; pthread_create(&t, 0, worker, 0); pthread_exit(0); }
        "#,
    )
    .ok()?;
    let ok = Command::new("gcc").args(["-O2", "-pthread", "-o"]).arg(&exe).arg(&src).status().ok()?.success();
    ok.then_some(exe)
}

/// Whether the main thread of `pid` has exited (state Z) and every other thread sleeps in
/// `pause` (system call 34).
fn leader_gone_worker_parked(pid: u32) -> bool {
    let state = |tid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    let mut workers = 0;
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        if tid == pid.to_string() {
            if state(&tid) != Some('Z') {
                return false;
            }
        } else {
            let syscall = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).unwrap_or_default();
            if state(&tid) != Some('S') || syscall.split_whitespace().next() != Some("34") {
                return false;
            }
            workers += 1;
        }
    }
    workers == 1
}

#[test]
fn a_process_whose_main_thread_has_exited_is_unwound_through_its_live_thread() {
    let dir = tempfile::tempdir().unwrap();
    let Some(exe) = leaderless_program(dir.path()) else {
        eprintln!("SKIP: gcc not available");
        return;
    };
    let mut child = Command::new(&exe).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    // The main thread's pthread_exit may come after the worker's "ready": wait for the leader
    // to be a zombie and the worker to block in pause, rather than for a time.
    let pid = child.id();
    let start = Instant::now();
    while !leader_gone_worker_parked(pid) {
        assert!(start.elapsed() < Duration::from_secs(60), "the leader did not exit, or the worker did not park");
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(["unwind", "--no-lines", "--cache-dir"])
        .arg(dir.path().join("cache"))
        .args(["--pid", &child.id().to_string()])
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("worker"), "the live thread's chain: {text}");
    assert!(text.contains("end: end of stack; reliable"), "{text}");
}

#[test]
fn a_core_path_that_is_a_fifo_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("core");
    if !Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        eprintln!("SKIP: mkfifo not available");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(["unwind", "--core"])
        .arg(&fifo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_within(&mut child, Duration::from_secs(20), "unwind --core FIFO");
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn a_reader_that_goes_away_is_not_a_panic() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(["unwind", "--no-lines", "--cache-dir"])
        .arg(dir.path())
        .args(["--pid", &sleeper.id().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = wait_within(&mut child, Duration::from_secs(60), "unwind --pid into a closed pipe");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_ne!(status.code(), Some(101), "panicked");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
