//! Writes under faults (docs/faults.md): a file-size limit reached halfway, a directory orctool
//! may not write in, the file changed by someone else while `check` works on it, two `check`s
//! of one file at once. The input is never corrupted and never half-written, and no temporary
//! file is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_testkit::{assemble_in, seed_source};

fn orctool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orctool"))
}

/// A fresh object without ORC (the embedded example), in its own directory.
fn object(dir: &Path) -> PathBuf {
    assemble_in(dir, "pv", &seed_source("pv_conflict"))
}

/// The files in `dir`, sorted: a temporary file left behind would show here.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_file_size_limit_reached_while_writing_is_an_error_and_the_input_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let obj = object(dir.path());
    let before = std::fs::read(&obj).unwrap();
    let names = listing(dir.path());
    // One 512-byte block: the rewritten object does not fit.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1 && exec \"$0\" check --orc \"$1\"")
        .arg(env!("CARGO_BIN_EXE_orctool"))
        .arg(&obj)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The analysis' warnings, then one error line.
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or("");
    assert_eq!(err.lines().filter(|l| l.starts_with("orctool: ")).count(), 1, "{err}");
    assert!(last.starts_with(&format!("orctool: {}: cannot write the result: File too large (os error 27)", obj.display())), "{last}");
    assert_eq!(std::fs::read(&obj).unwrap(), before, "the input changed");
    assert_eq!(listing(dir.path()), names, "a temporary file was left");
}

#[test]
fn a_directory_orctool_may_not_write_in_is_an_error_and_the_input_is_intact() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let obj = object(dir.path());
    let before = std::fs::read(&obj).unwrap();
    let mut cmd = orctool();
    cmd.args(["check", "--orc"]).arg(&obj);
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user.
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        // Root writes anywhere: the same command as an unprivileged user, in root's directory.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
        cmd.uid(65534).gid(65534);
    } else {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let out = cmd.output().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = stderr(&out);
    if err.contains("cannot execute") || out.status.code() == Some(126) {
        println!("SKIP: the unprivileged user cannot run {}", env!("CARGO_BIN_EXE_orctool"));
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(err.lines().filter(|l| l.starts_with("orctool: ")).count(), 1, "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with(&format!("orctool: {}: cannot write the result: Permission denied (os error 13)", obj.display())), "{last}");
    assert_eq!(std::fs::read(&obj).unwrap(), before, "the input changed");
    assert_eq!(listing(dir.path()), vec!["pv.o".to_string(), "pv.s".to_string()]);
}

/// The result of checking `input`, made with `-o` (the input untouched).
fn checked(input: &Path, out: &Path) -> Vec<u8> {
    let o = orctool().args(["check", "--orc", "-o"]).arg(out).arg(input).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::read(out).unwrap()
}

/// Two `check`s of one file at once: each writes a whole object or refuses because the file
/// changed under it; the file ends as one complete result, never a mix.
#[test]
fn two_checks_of_one_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let obj = object(dir.path());
    let original = std::fs::read(&obj).unwrap();
    let once = checked(&obj, &dir.path().join("once.o"));
    let mut refused = 0;
    for _ in 0..12 {
        std::fs::write(&obj, &original).unwrap();
        let a = orctool().args(["check", "--orc"]).arg(&obj).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let b = orctool().args(["check", "--orc"]).arg(&obj).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        for o in [&a, &b] {
            match o.status.code() {
                Some(0) => {}
                Some(2) => {
                    // The one that lost: the file changed under it (or it read the other's
                    // result, which already has ORC).
                    let e = stderr(o);
                    assert!(e.contains("changed on disk while it was checked") || e.contains("already has ORC"), "{e}");
                    refused += 1;
                }
                _ => panic!("{o:?}"),
            }
        }
        let now = std::fs::read(&obj).unwrap();
        assert!(now == once, "the file is not one check's result");
        assert_eq!(listing(dir.path()), ["once.o", "pv.o", "pv.s"], "a temporary file was left");
    }
    println!("{refused} of 24 checks refused");
}

/// Another writer rewrites the file again and again while `check` works on it: `check` never
/// dies of it (SIGBUS from a truncated mapping), and the file is always either what the writer
/// wrote or a complete result of checking it.
#[test]
fn a_file_rewritten_while_check_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let obj = object(dir.path());
    let original = std::fs::read(&obj).unwrap();
    let once = checked(&obj, &dir.path().join("once.o"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, obj, original) = (stop.clone(), obj.clone(), original.clone());
        std::thread::spawn(move || {
            let mut writes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // In place (truncate, then write): what `cp` does.
                std::fs::write(&obj, &original).unwrap();
                writes += 1;
            }
            writes
        })
    };
    for _ in 0..20 {
        let o = orctool().args(["check", "--orc"]).arg(&obj).output().unwrap();
        assert!(matches!(o.status.code(), Some(0 | 2)), "check died: {o:?}");
        if o.status.code() == Some(2) {
            assert_eq!(stderr(&o).lines().filter(|l| l.starts_with("orctool: ")).count(), 1, "{}", stderr(&o));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    let now = std::fs::read(&obj).unwrap();
    assert!(now == original || now == once, "the file is a mix");
}
