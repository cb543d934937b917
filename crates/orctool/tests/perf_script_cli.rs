//! `orctool perf-script`: a profile of a C test program (switch) recorded with
//! `perf record --call-graph dwarf` gives, wherever perf's own unwind reaches the program's
//! `_start`, the same frames as `perf script` (both parsed by perf script's grammar); a foreign or cut-short
//! perf.data gets one error line and exit 2. Needs perf (Debian's linux-perf); says SKIP
//! without it.

use std::path::Path;
use std::process::{Command, Output};

use orc_testkit::programs::{self, Build};

fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn assert_one_error_line(out: &Output, file: &Path) {
    assert_eq!(out.status.code(), Some(2), "exit 2 for {}", file.display());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with(&format!("orctool: {}: ", file.display())), "names the file: {err}");
}

/// A sample: its header (fields joined by one space) and frames (address, name without
/// offset, file).
type Sample = (String, Vec<(u64, String, String)>);

/// perf script's grammar: a header line, one frame per indented line
/// (`ADDR NAME+0xOFF (FILE)` or `ADDR [unknown] (FILE)`), an empty line after each sample.
fn parse(text: &str) -> Vec<Sample> {
    let mut out: Vec<Sample> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            open = false;
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            out.push((line.split_whitespace().collect::<Vec<_>>().join(" "), Vec::new()));
            open = true;
            continue;
        }
        assert!(open, "frame outside a sample: {line:?}");
        let line = line.trim();
        let (addr, rest) = line.split_once(' ').expect("address, then the name");
        let (name, file) = rest.rsplit_once(" (").expect("the file in parentheses");
        let name = match name.rsplit_once("+0x") {
            Some((n, off)) if off.chars().all(|c| c.is_ascii_hexdigit()) => n,
            _ => name,
        };
        let addr = u64::from_str_radix(addr, 16).expect("hex address");
        out.last_mut().expect("a sample").1.push((addr, name.to_string(), file.trim_end_matches(')').to_string()));
    }
    out
}

fn perf_works() -> bool {
    Command::new("perf").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn foreign_file_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-perf.data");
    std::fs::write(&file, b"this is not a perf.data file, just text\n").unwrap();
    assert_one_error_line(&orctool(&["perf-script", "-i", file.to_str().unwrap()]), &file);
    let missing = dir.path().join("missing.data");
    assert_one_error_line(&orctool(&["perf-script", "-i", missing.to_str().unwrap()]), &missing);
}

#[test]
fn frames_equal_perf_script_where_perf_reaches_the_programs_start() {
    if !perf_works() {
        eprintln!("SKIP: perf is not installed (Debian's linux-perf)");
        return;
    }
    let exe = programs::build("switch", &Build::default()).expect("build switch");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("perf.data");
    let rec = Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F", "5000", "--call-graph", "dwarf", "-o"])
        .arg(&data)
        .arg("--")
        .arg(&exe)
        .arg("40000000")
        .output()
        .expect("run perf record");
    if !rec.status.success() {
        eprintln!("SKIP: perf record cannot profile here: {}", String::from_utf8_lossy(&rec.stderr).trim());
        return;
    }
    let perf = Command::new("perf").args(["script", "-i"]).arg(&data).output().expect("run perf script");
    assert!(perf.status.success(), "perf script: {}", String::from_utf8_lossy(&perf.stderr));
    let ours = orctool(&["perf-script", "-i", data.to_str().unwrap(), "--cache-dir", dir.path().join("cache").to_str().unwrap()]);
    assert!(ours.status.success(), "orctool perf-script: {}", String::from_utf8_lossy(&ours.stderr));
    let (perf, ours) = (parse(&String::from_utf8_lossy(&perf.stdout)), parse(&String::from_utf8_lossy(&ours.stdout)));
    assert_eq!(perf.len(), ours.len(), "one sample for each of perf's");
    let exe_name = format!("/{}", exe.file_name().unwrap().to_string_lossy());
    let mut reached = 0;
    let mut in_program = 0;
    for (p, o) in perf.iter().zip(&ours) {
        assert_eq!(p.0, o.0, "the same header");
        // The program's own `_start`: samples in ld.so's start-up are left out, where perf's
        // DWARF unwind is known to drop `_dl_start` (docs/perf-script.md).
        if p.1.last().is_some_and(|f| f.1 == "_start" && f.2.ends_with(&exe_name)) {
            reached += 1;
            assert_eq!(p.1, o.1, "perf unwound {} to _start: the same frames", p.0);
        }
        if o.1.iter().any(|f| f.1 == "dispatch") && o.1.iter().any(|f| f.1 == "main") {
            in_program += 1;
        }
    }
    assert!(reached > 0, "perf unwound some sample to the program's _start");
    assert!(in_program > 0, "some sample is in the program's dispatch, unwound to main");
    // Cut short: one error line.
    let bytes = std::fs::read(&data).unwrap();
    let cut = dir.path().join("cut.data");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_one_error_line(&orctool(&["perf-script", "-i", cut.to_str().unwrap()]), &cut);
}
