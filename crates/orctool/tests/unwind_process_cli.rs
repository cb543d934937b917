//! `orctool unwind --pid` and `--core` on the C test programs, stopped in stop mode: every
//! thread's chain of functions as the program makes it, tables cached by build-id, the process
//! left running, cores read like the live process, bad cores refused in one line. And, when
//! gdb is installed, the same function names as gdb's `bt`, frame for frame.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use orc_testkit::gdb;
use orc_testkit::programs::{self, spawn_stopped, Build};
use serde_json::Value;

fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "orctool failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON document")
}

/// Function names of each thread, by thread id.
fn names(doc: &Value) -> Vec<(i64, Vec<String>)> {
    doc["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .map(|t| {
            let frames = t["frames"].as_array().expect("frames");
            let names = frames.iter().map(|f| f["function"].as_str().unwrap_or("??").to_string()).collect();
            (t["tid"].as_i64().expect("tid"), names)
        })
        .collect()
}

/// The chain the threads program builds: at_bottom, then `depth - 1` frames alternating
/// climb_b/climb_a upwards, ending in climb_a (the entry of the chain), except where a
/// depth-1 climb_b tail-calls at_bottom (then that frame is not on the stack at all).
fn assert_threads_chain(names: &[String], depth: usize, entry: &str) {
    // pause is __libc_pause where libc's debug info is installed.
    assert!(names[0] == "__libc_pause" || names[0] == "pause", "{names:?}");
    assert_eq!(names[1], "park", "{names:?}");
    assert_eq!(names[2], "at_bottom", "{names:?}");
    let at = 2;
    let entry_at = names.iter().position(|n| n == entry).unwrap_or_else(|| panic!("no {entry} in {names:?}"));
    let chain = &names[at + 1..entry_at];
    assert!(chain.iter().all(|n| n == "climb_a" || n == "climb_b"), "{names:?}");
    for pair in chain.windows(2) {
        assert_ne!(pair[0], pair[1], "climb_a and climb_b alternate: {names:?}");
    }
    assert_eq!(chain.last().map(String::as_str), Some("climb_a"), "{names:?}");
    // at_bottom is one level of the depth; the last climb_b jumps to it (a tail call, no
    // frame) where the compiler makes it one.
    assert!(chain.len() == depth - 1 || chain.len() == depth - 2, "depth {depth}, chain {chain:?}");
}

#[test]
fn unwinds_every_thread_of_a_live_process_and_caches_its_tables() {
    let exe = programs::build("threads", &Build::default()).expect("build threads");
    let stopped = spawn_stopped(&exe, &["3", "12"]).expect("start threads in stop mode");
    let pid = stopped.pid().to_string();
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();

    let first = json(&orctool(&["unwind", "--pid", &pid, "--json", "--cache-dir", cache_dir]));
    let threads = names(&first);
    assert_eq!(threads.len(), 4, "main thread and three workers: {threads:?}");
    let tasks: Vec<i64> = stopped.tasks().unwrap().into_iter().map(i64::from).collect();
    assert_eq!(threads.iter().map(|t| t.0).collect::<Vec<_>>(), tasks);
    for (i, (_, names)) in threads.iter().enumerate() {
        let entry = if i == 0 { "main" } else { "worker" };
        assert_threads_chain(names, 12, entry);
    }
    for t in first["threads"].as_array().unwrap() {
        assert_eq!(t["end"], "end of stack", "{t}");
        assert_eq!(t["reliable"], true, "{t}");
    }
    // Line numbers from the program's debug info.
    let park = &first["threads"][0]["frames"][1];
    assert_eq!(park["function"], "park");
    assert!(park["file"].as_str().is_some_and(|f| f.ends_with("stop.h")), "{park}");

    // The tables were stored by build-id; a second run reads them and says the same.
    let stored: Vec<String> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let exe_id = build_id_hex(&exe);
    assert!(stored.contains(&format!("{exe_id}.orc")), "{stored:?} lacks {exe_id}.orc");
    let second = json(&orctool(&["unwind", "--pid", &pid, "--json", "--cache-dir", cache_dir]));
    assert_eq!(names(&second), threads);

    // Text output: a header per thread, numbered frames, the end.
    let text = orctool(&["unwind", "--pid", &pid, "--cache-dir", cache_dir]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with(&format!("Thread {pid} (")), "{text}");
    assert!(text.contains(" at_bottom+0x") && text.contains("[libc.so.6]") && text.contains("end: end of stack; reliable"), "{text}");

    // Every thread was let go: none is traced any more.
    for tid in stopped.tasks().unwrap() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        assert!(status.lines().any(|l| l == "TracerPid:\t0"), "thread {tid} still traced:\n{status}");
    }
}

fn build_id_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let info = orc_process::elfinfo::read_info(&bytes).unwrap();
    orc_process::hex(&info.build_id.expect("gcc links a build-id"))
}

#[test]
fn the_process_continues_unharmed() {
    // A shell that says it is there, waits for a line, then prints and exits with a code of
    // its own: unwound while it waits (in `read`, as long as the test likes: nothing here
    // depends on timing), it must still print and exit as if nothing happened.
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new("/bin/sh")
        .args(["-c", "echo waiting; read line; echo \"finished $line\"; exit 3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sh");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "waiting\n");
    let cache = tempfile::tempdir().unwrap();
    let out = orctool(&["unwind", "--pid", &child.id().to_string(), "--json", "--cache-dir", cache.path().to_str().unwrap()]);
    let doc = json(&out);
    let frames = doc["threads"][0]["frames"].as_array().unwrap();
    assert!(frames.len() >= 3, "a shell running its script is a few frames deep: {doc}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"now\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "finished now\n");
    assert_eq!(child.wait().unwrap().code(), Some(3));
}

#[test]
fn a_missing_process_is_one_error_line() {
    // Pid numbers wrap far above this on a default system; /proc has no such entry.
    let out = orctool(&["unwind", "--pid", "2147483646"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("orctool: pid 2147483646: "), "{err}");
}

fn gcore_available() -> bool {
    Command::new("gcore").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

#[test]
fn a_core_unwinds_like_the_live_process() {
    if !gcore_available() {
        eprintln!("gcore (gdb) not installed: skipped");
        return;
    }
    let exe = programs::build("threads", &Build::default()).expect("build threads");
    let stopped = spawn_stopped(&exe, &["2", "9"]).expect("start threads in stop mode");
    let pid = stopped.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache_dir = cache_dir.to_str().unwrap();
    let live = json(&orctool(&["unwind", "--pid", &pid, "--json", "--cache-dir", cache_dir]));
    let prefix = dir.path().join("core");
    let status = Command::new("gcore").arg("-o").arg(&prefix).arg(&pid).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "gcore failed");
    let core = format!("{}.{pid}", prefix.display());
    drop(stopped);

    let dumped = json(&orctool(&["unwind", "--core", &core, "--json", "--cache-dir", cache_dir]));
    assert_eq!(names(&dumped), names(&live));
    assert_eq!(dumped["pid"].as_i64(), Some(pid.parse().unwrap()));
    let ips = |d: &Value| -> Vec<Value> { d["threads"].as_array().unwrap().iter().map(|t| t["frames"].clone()).collect() };
    assert_eq!(ips(&dumped), ips(&live), "the same frames, addresses and all");

    // A truncated core: one line naming it, exit 2.
    let bytes = std::fs::read(&core).unwrap();
    let cut = dir.path().join("cut.core");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = orctool(&["unwind", "--core", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("orctool: {}: ", cut.display())), "{err}");

    // Not a core at all.
    let out = orctool(&["unwind", "--core", exe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a core file"));
}

#[test]
fn the_same_functions_as_gdb_frame_for_frame() {
    if !gdb::available() {
        eprintln!("gdb not installed: skipped");
        return;
    }
    let exe = programs::build("threads", &Build::default()).expect("build threads");
    let stopped = spawn_stopped(&exe, &["4", "20"]).expect("start threads in stop mode");
    let pid = stopped.pid().to_string();
    let cache = tempfile::tempdir().unwrap();
    let ours = names(&json(&orctool(&["unwind", "--pid", &pid, "--json", "--cache-dir", cache.path().to_str().unwrap()])));
    let theirs = gdb::frames(stopped.pid()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ours.iter().map(|t| t.0).collect::<Vec<_>>(), theirs.iter().map(|t| i64::from(t.tid)).collect::<Vec<_>>());
    let mut compared = 0;
    for ((tid, ours), theirs) in ours.iter().zip(&theirs) {
        // Inlined and tail-called functions have no frame on the stack: gdb rebuilds them
        // from DWARF; every real frame gdb shows must be ours too, in order.
        let real: Vec<&str> = theirs.frames.iter().filter(|f| f.kind.is_on_stack()).map(|f| f.name.as_str()).collect();
        assert!(real.len() >= 20, "thread {tid}: gdb shows the deep chain: {real:?}");
        assert!(ours.len() >= real.len(), "thread {tid}: ours {ours:?}, gdb {real:?}");
        assert_eq!(&ours[..real.len()], real.as_slice(), "thread {tid}");
        compared += real.len();
    }
    assert!(compared >= 5 * 20);
}
