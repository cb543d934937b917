//! Loose ends of issue 17: `verify-exec -o` into a bad place fails before the program runs,
//! and every command has the same rule for the table cache without a home (docs/faults.md).

use std::path::Path;
use std::process::{Command, Output};

fn orctool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orctool"))
}

fn one_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

/// The program would leave a marker if it ran.
fn marker_program(dir: &Path) -> (Vec<String>, std::path::PathBuf) {
    let marker = dir.join("ran");
    (vec!["/bin/sh".into(), "-c".into(), format!("touch {}", marker.display())], marker)
}

#[test]
fn verify_exec_output_into_a_bad_place_fails_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (program, marker) = marker_program(dir.path());
    for bad in [dir.path().join("no/such/dir/report"), dir.path().to_path_buf()] {
        let o = orctool().args(["verify-exec", "-o"]).arg(&bad).arg("--cache-dir").arg(dir.path()).arg("--").args(&program).output().unwrap();
        let err = one_error(&o);
        assert!(err.starts_with(&format!("orctool: {}: cannot write the report there: ", bad.display())), "{err}");
        assert!(!marker.exists(), "the program ran although its report could not be written");
    }
    // A good place: the report is written whole, nothing else is left in the directory.
    let good = dir.path().join("report.txt");
    let o = orctool().args(["verify-exec", "--raw", "-o"]).arg(&good).arg("--").args(&program).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(std::fs::read_to_string(&good).unwrap().contains("steps"));
    let mut names: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["ran", "report.txt"]);
}

/// Without ORCTOOL_CACHE, XDG_CACHE_HOME and HOME, and without a directory given, every command
/// that caches says the same thing and does nothing (no shared /tmp fallback).
#[test]
fn no_cache_directory_is_one_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (program, marker) = marker_program(dir.path());
    let bare = |args: &[&str]| {
        let mut c = orctool();
        c.env_remove("HOME").env_remove("ORCTOOL_CACHE").env_remove("XDG_CACHE_HOME").args(args);
        c
    };
    let src = dir.path().join("p.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let copy = dir.path().join("prog");
    assert!(Command::new("gcc").arg("-O2").arg("-o").arg(&copy).arg(&src).status().unwrap().success());
    let child = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = child.id().to_string();
    let runs = [
        bare(&["unwind", "--pid", &pid]).output().unwrap(),
        bare(&["unwind", "--core", "/nonexistent.core"]).output().unwrap(),
        bare(&["verify-exec", "--"]).args(&program).output().unwrap(),
        bare(&["check", "--sidecar"]).arg(&copy).output().unwrap(),
    ];
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    for o in &runs {
        let err = one_error(o);
        assert!(err.contains("no directory for the table cache: set ORCTOOL_CACHE, XDG_CACHE_HOME or HOME, or name one"), "{err}");
    }
    assert!(!marker.exists(), "verify-exec ran the program without a cache");
    // --no-cache needs none.
    let o = bare(&["unwind", "--no-cache", "--core", "/nonexistent.core"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("table cache"), "{o:?}");
}
