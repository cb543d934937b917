//! `orctool verify-exec` on the C test programs: ORC agrees with the shadow stack at every
//! step, a corrupted table is caught at the corrupted function, the traced program's output
//! and exit code are its own, and a command that cannot run is one error line.
//!
//! The runs set `LD_BIND_NOW=1`: lazy binding goes through ld.so's `_dl_runtime_resolve`,
//! whose CFA is `%rbx`-based after it aligns the stack, which no ORC register can express
//! (docs/verify-exec.md); with binding done at load time that trampoline never runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_elf::{ElfFile, SymbolKind};
use orc_format::{EntryType, Layout, Reg};
use orc_process::{Source, TableCache};
use orc_testkit::programs::{self, Build};
use serde_json::Value;

fn verify_exec(cache: &Path, report: &Path, extra: &[&str], command: &[&str]) -> Output {
    let mut args = vec!["verify-exec", "--json", "--cache-dir"];
    args.push(cache.to_str().expect("utf-8 path"));
    args.extend(["-o", report.to_str().expect("utf-8 path")]);
    args.extend(extra);
    args.push("--");
    args.extend(command);
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(&args).env("LD_BIND_NOW", "1").output().expect("run orctool")
}

fn read_report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("the report is one JSON document")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// One line per binary and the distinct disagreements, for assertion messages.
fn summary(r: &Value) -> String {
    let mut s = String::new();
    for b in r["binaries"].as_array().expect("binaries") {
        s += &format!("  {}: {} checked, {} disagree\n", b["name"], b["checked"], b["disagree"]);
    }
    for d in r["disagreements"].as_array().expect("disagreements").iter().take(10) {
        s += &format!("  {:#x} {} {}: {} x {}\n", u(&d["ip"]), d["module"], d["function"], d["count"], d["mismatch"]);
    }
    s
}

/// Runs `name` directly and under verify-exec (every `every` steps); checks that its stdout
/// and exit code are unchanged and returns the report.
fn check_program(name: &str, every: u64) -> Value {
    let exe = programs::build(name, &Build::default()).expect("build the test program");
    let direct = Command::new(&exe).env("LD_BIND_NOW", "1").output().expect("run the program");
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("report.json");
    let every = every.to_string();
    let traced = verify_exec(&dir.path().join("cache"), &report, &["--every", &every], &[exe.to_str().unwrap()]);
    assert!(
        traced.status.code() == Some(0) || traced.status.code() == Some(1),
        "{name}: verify-exec failed: {}",
        String::from_utf8_lossy(&traced.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&traced.stdout), String::from_utf8_lossy(&direct.stdout), "{name}: stdout");
    let r = read_report(&report);
    assert_eq!(r["exit"]["code"].as_i64(), direct.status.code().map(i64::from), "{name}: exit code");
    assert!(u(&r["checked"]) > 1000, "{name}: too few steps checked: {}", r["checked"]);
    let exe_name = exe.to_str().unwrap();
    let own = r["binaries"].as_array().unwrap().iter().find(|b| b["name"] == exe_name);
    assert!(own.is_some_and(|b| u(&b["checked"]) > 0), "{name}: no step checked in the program itself");
    r
}

fn assert_all_agree(name: &str, r: &Value) {
    assert_eq!(u(&r["disagree"]), 0, "{name}: disagreements:\n{}", summary(r));
    assert_eq!(u(&r["agree"]), u(&r["checked"]), "{name}");
    assert_eq!(u(&r["no_table"]), 0, "{name}: steps without table:\n{}", summary(r));
}

#[test]
fn single_threaded_programs_agree_at_every_step() {
    for name in ["recursion", "tailcall", "switch", "alloca_drap", "noreturn"] {
        let r = check_program(name, 1);
        assert_all_agree(name, &r);
        assert_eq!(u(&r["checked"]), u(&r["steps"]), "{name}: every step is checked");
    }
}

#[test]
fn signal_longjmp_and_thread_programs_agree_at_every_step() {
    for name in ["signal_leaf", "setjmp", "threads"] {
        let r = check_program(name, 1);
        assert_all_agree(name, &r);
    }
    // __longjmp's last instructions: the stack pointer is already the target's and the
    // return address is in %rdx, which no ORC rule can say. The table says UNDEFINED there
    // (never a wrong rule), and those steps are counted apart from the checked ones.
    let r = check_program("setjmp", 1);
    let libc = r["binaries"].as_array().unwrap().iter().find(|b| b["name"].as_str().is_some_and(|n| n.contains("libc.so")));
    assert!(libc.is_some_and(|b| u(&b["undefined"]) > 0), "setjmp: no UNDEFINED steps in libc:\n{}", summary(&r));
    assert!(u(&r["undefined"]) < u(&r["checked"]) / 100, "setjmp: too many UNDEFINED steps:\n{}", summary(&r));
}

#[test]
fn the_signal_and_thread_programs_build_the_expected_shadow_stacks() {
    // What the shadow stack must see in these programs, whatever the tables say.
    let r = check_program("signal_leaf", 1);
    assert!(u(&r["handled_signals"]) >= 3, "signal_leaf: {} signals handled", r["handled_signals"]);
    let r = check_program("threads", 1);
    assert!(u(&r["threads"]) >= 5, "threads: {} threads seen", r["threads"]);
    // Each new thread runs the instructions between clone's system call and its branch to
    // the thread start, shared with the parent: unchecked, counted.
    assert!(u(&r["clone_shared"]) >= 4, "threads: {} clone-shared steps", r["clone_shared"]);
}

#[test]
fn every_n_checks_one_step_in_n() {
    let r = check_program("recursion", 7);
    assert_all_agree("recursion", &r);
    let (steps, checked) = (u(&r["steps"]), u(&r["checked"]));
    assert_eq!(checked, steps / 7, "{steps} steps, {checked} checked");
}

/// The link-time range of function `name` in the ELF file at `path`.
fn function_range(path: &Path, name: &str) -> (u64, u64) {
    let bytes = std::fs::read(path).expect("read the program");
    let elf = ElfFile::parse(&bytes).expect("parse the program");
    let range = elf
        .symbols()
        .filter_map(Result::ok)
        .find(|s| s.name == name && s.kind == SymbolKind::Func && s.size > 0)
        .map(|s| (s.value, s.value + s.size));
    range.unwrap_or_else(|| panic!("no function {name} in {}", path.display()))
}

/// Makes every CALL entry of `[start, end)` in the cached sidecar of `exe` claim a frame 8
/// bytes larger than it is.
fn corrupt_sidecar(cache_dir: &Path, exe: &Path, (start, end): (u64, u64)) -> usize {
    let cache = TableCache::new(cache_dir.to_path_buf(), Source::Combined);
    let table = cache.table_for(exe).expect("table for the program");
    table.orc().expect("generate the table");
    let path: PathBuf = table.sidecar_path().expect("the program has a build-id, the cache a directory");
    let bytes = std::fs::read(&path).expect("sidecar written on first use");
    let sidecar = orc_linked::sidecar::decode(&bytes).expect("decode the sidecar");
    assert_eq!(sidecar.layout, Layout::V3);
    let mut entries = sidecar.entries.clone();
    let mut changed = 0;
    for (ip, raw) in sidecar.ips.iter().zip(entries.iter_mut()) {
        let mut e = Layout::V3.decode(*raw);
        if (start..end).contains(ip) && e.kind == EntryType::Call && e.sp_reg == Reg::SP {
            e.sp_offset += 8;
            *raw = Layout::V3.encode(e).expect("encodable");
            changed += 1;
        }
    }
    let linked = orc_linked::LinkedTable { ips: sidecar.ips.clone(), entries, report: Default::default() };
    std::fs::write(&path, orc_linked::sidecar::encode(&sidecar.build_id, &linked)).expect("write the sidecar");
    changed
}

#[test]
fn a_corrupted_function_is_reported_at_its_addresses() {
    let exe = programs::build("recursion", &Build::default()).expect("build recursion");
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let report = dir.path().join("report.json");
    let range = function_range(&exe, "down_b");
    assert!(corrupt_sidecar(&cache, &exe, range) > 0, "down_b has CALL entries");

    let out = verify_exec(&cache, &report, &[], &[exe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "disagreements give exit code 1: {}", String::from_utf8_lossy(&out.stderr));
    let r = read_report(&report);
    let ds = r["disagreements"].as_array().expect("disagreements");
    assert!(!ds.is_empty());
    let exe_name = exe.to_str().unwrap();
    // The program's load bias, from any disagreement inside it.
    let in_exe: Vec<&Value> = ds.iter().filter(|d| d["module"] == exe_name).collect();
    let bias = u(&in_exe.first().expect("a disagreement in the program")["ip"])
        - u(&in_exe[0]["offset"]);
    let in_down_b = |ip: u64, exact: bool| {
        let at = if exact { ip } else { ip - 1 };
        (range.0..range.1).contains(&at.wrapping_sub(bias))
    };
    // Steps inside down_b disagree, at the caller's frame.
    let at_down_b: Vec<&&Value> = in_exe.iter().filter(|d| in_down_b(u(&d["ip"]), true)).collect();
    assert!(!at_down_b.is_empty(), "no disagreement inside down_b:\n{}", summary(&r));
    assert!(at_down_b.iter().all(|d| d["mismatch"]["depth"] == 1), "{}", summary(&r));
    // Every disagreement has down_b on its expected chain: the corruption explains them all.
    for d in ds {
        let expected = d["expected"].as_array().unwrap();
        assert!(
            expected.iter().any(|f| in_down_b(u(&f["ip"]), f["exact"].as_bool().unwrap())),
            "disagreement without down_b on the stack: {d}"
        );
    }
    assert!(r["disagreements"][0]["function"].as_str().is_some(), "disagreements are symbolized");
}

#[test]
fn a_command_that_cannot_run_is_one_error_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no-such-program");
    let out = verify_exec(&dir.path().join("cache"), &dir.path().join("r.json"), &[], &[missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("orctool: ") && err.contains("no-such-program"), "{err}");
    assert!(!dir.path().join("r.json").exists(), "no report for a run that did not happen");
}

#[test]
fn a_program_killed_by_a_signal_is_reported_as_such() {
    // sh kills itself: the report says how the program ended, and the checks still count.
    let dir = tempfile::tempdir().expect("temp dir");
    let report = dir.path().join("r.json");
    let out = verify_exec(&dir.path().join("cache"), &report, &["--every", "50"], &["/bin/sh", "-c", "kill -TERM $$"]);
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_report(&report);
    assert_eq!(r["exit"]["signal"].as_i64(), Some(15));
    assert!(u(&r["checked"]) > 0);
}
