//! `orctool verify-patching` as a user runs it: verdicts, exit codes, JSON, bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_testkit::{assemble_in, seed_table};

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/seed");

fn fixture(dir: &Path, seed: &str, table: &str) -> PathBuf {
    let source = std::fs::read_to_string(format!("{SEED}/{seed}")).unwrap();
    assemble_in(dir, seed.trim_end_matches(".S"), &format!("{source}{table}"))
}

fn orctool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn run(args: &[&str], files: &[&Path]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = vec!["verify-patching".as_ref()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.extend(files.iter().map(|f| f.as_os_str()));
    orctool(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn good_site_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let obj = fixture(dir.path(), "pv_save_fl.S", &seed_table("pv_save_fl"));
    let out = run(&[], &[&obj]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 sites (1 alternatives, 0 jump labels, 0 paravirt), 3 choices"), "{stdout}");
    assert!(stdout.contains("0 unmodelled, 0 failures"), "{stdout}");
}

#[test]
fn hazard_is_reported_with_address_choice_and_both_states() {
    let dir = tempfile::tempdir().unwrap();
    let obj = fixture(dir.path(), "pv_hazard.S", &seed_table("pv_hazard"));
    let out = run(&[], &[&obj]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let xen = stdout.lines().find(|l| l.contains("choice XENPV")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        xen.starts_with("  FAIL hazard_save_flags+0x4 (.text+0x4) alternative, choice XENPV: return address"),
        "{xen}"
    );
    assert!(xen.contains("hazard_save_flags+0x8 (.text+0x8) gives type:call sp:sp+16"), "{xen}");
    assert!(xen.ends_with("derived type:call sp:sp+8 bp:(und) signal:0"), "{xen}");

    let out = run(&["--json"], &[&obj]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "one file, then the totals");
    assert_eq!(lines[0]["counts"]["failures"], 2);
    assert_eq!(lines[1]["total"]["failures"], 2);
    let f = lines[0]["failures"].as_array().unwrap().iter().find(|f| f["choice"] == "XENPV").unwrap();
    assert_eq!(f["check"], "return address");
    assert_eq!(f["derived"]["sp_offset"], 8);
    assert_eq!(f["table"]["sp_offset"], 16);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ko");
    std::fs::write(&junk, b"not an ELF file").unwrap();
    let out = run(&[], &[&junk]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("orctool: {}: ", junk.display())), "{stderr}");

    // A file named on the command line must have a table.
    let bare = fixture(dir.path(), "pv_save_fl.S", "");
    let out = run(&[], &[&bare]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no ORC table"), "{}", text(&out.stderr));
}

#[test]
fn directories_are_walked() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path(), "pv_save_fl.S", &seed_table("pv_save_fl"));
    fixture(dir.path(), "pv_hazard.S", &seed_table("pv_hazard"));
    let out = run(&[], &[dir.path()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    let total = stdout.lines().last().unwrap();
    assert!(total.starts_with("total: 2 files (2 with patch sites, 0 without ORC, 0 unreadable): 2 sites"), "{total}");
    assert!(total.ends_with("0 unmodelled, 2 failures"), "{total}");
}
