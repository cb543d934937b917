//! `orctool unwind --vmcore` and `verify-patching --vmcore`: bad inputs (always), and real dumps
//! of Debian's kernels made by scripts/make-vmcore.sh (when ORCTOOL_VMCORE_612 / _61 name them;
//! the images from ORCTOOL_IMAGE_612 / _61, else scripts/fetch-images.sh's cache).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn orctool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn one_error_line(out: &Output, path: &Path, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with(&format!("orctool: {}: ", path.display())), "{err}");
    assert!(lines[0].contains(what), "{err}");
    assert!(out.stdout.is_empty());
}

/// A minimal x86-64 ET_CORE: one PT_NOTE (VMCOREINFO) and one PT_LOAD of `mem` bytes.
fn tiny_core(mem: usize) -> Vec<u8> {
    let info = b"OSRELEASE=6.12.0\nKERNELOFFSET=0\n";
    let mut note = Vec::new();
    note.extend_from_slice(&11u32.to_le_bytes());
    note.extend_from_slice(&(info.len() as u32).to_le_bytes());
    note.extend_from_slice(&0u32.to_le_bytes());
    note.extend_from_slice(b"VMCOREINFO\0\0");
    note.extend_from_slice(info);
    while note.len() % 4 != 0 {
        note.push(0);
    }
    let mut out = vec![0u8; 64];
    out[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    out[16] = 4;
    out[18] = 62;
    out[32] = 64;
    out[54] = 56;
    out[56] = 2;
    let header = |kind: u32, off: u64, size: u64| {
        let mut h = vec![0u8; 56];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&off.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..48].copy_from_slice(&size.to_le_bytes());
        h
    };
    let data = 64 + 2 * 56;
    out.extend(header(4, data as u64, note.len() as u64));
    out.extend(header(1, (data + note.len()) as u64, mem as u64));
    out.extend(note);
    out.extend(vec![0u8; mem]);
    out
}

#[test]
fn bad_dumps_get_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a dump\n").unwrap();
    let image = dir.path().join("vmlinux");
    std::fs::write(&image, "whatever").unwrap();
    let core = tiny_core(8192);
    let truncated = dir.path().join("truncated.vmcore");
    std::fs::write(&truncated, &core[..core.len() - 100]).unwrap();
    for cmd in ["unwind", "verify-patching"] {
        one_error_line(&on_dump(cmd, &text, &image, &[]), &text, "not a vmcore");
        one_error_line(&on_dump(cmd, &truncated, &image, &[]), &truncated, "truncated vmcore");
    }
    // A whole core, but the image is not a kernel.
    let whole = dir.path().join("whole.vmcore");
    std::fs::write(&whole, &core).unwrap();
    let out = on_dump("unwind", &whole, &image, &[]);
    one_error_line(&out, &image, "");
    // --module belongs to --snapshot: modules come from the dump.
    let out = on_dump("unwind", &whole, &image, &["--module", "x.ko:.text=0x1000"]);
    one_error_line(&out, Path::new("x.ko:.text=0x1000"), "read from the dump");
    // --vmcore without --vmlinux.
    let out = orctool(&["unwind".as_ref(), "--vmcore".as_ref(), whole.as_os_str()]);
    one_error_line(&out, &whole, "--vmlinux");
}

/// A real dump and its image, or None (and a SKIP line) when they are not there.
fn real(kernel: &str) -> Option<(PathBuf, PathBuf)> {
    let key = kernel.replace('.', "");
    let dump = std::env::var_os(format!("ORCTOOL_VMCORE_{key}")).map(PathBuf::from);
    let cache = std::env::var_os("ORCTOOL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orctool"));
    let image = std::env::var_os(format!("ORCTOOL_IMAGE_{key}"))
        .map(PathBuf::from)
        .unwrap_or(cache.join(format!("images/{kernel}/vmlinux")));
    match dump {
        Some(d) if d.is_file() && image.is_file() => Some((d, image)),
        _ => {
            eprintln!(
                "SKIP: no {kernel} vmcore (scripts/make-vmcore.sh {kernel}; set ORCTOOL_VMCORE_{key}) or image ({})",
                image.display()
            );
            None
        }
    }
}

/// `orctool CMD --vmcore DUMP --vmlinux IMAGE EXTRA...`.
fn on_dump(cmd: &str, dump: &Path, image: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> =
        vec![cmd.as_ref(), "--vmcore".as_ref(), dump.as_os_str(), "--vmlinux".as_ref(), image.as_os_str()];
    args.extend(extra.iter().map(|e| std::ffi::OsStr::new(e)));
    orctool(&args)
}

fn json_tasks(dump: &Path, image: &Path) -> Vec<serde_json::Value> {
    let out = on_dump("unwind", dump, image, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn names(task: &serde_json::Value) -> Vec<String> {
    task["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["symbol"].as_str())
        .map(|s| s.split('+').next().unwrap().to_string())
        .collect()
}

/// The guest's tasks (scripts/lib/vmcore-guest-init.sh) are where they were left, and every
/// walk ends at the bottom of its stack or in user mode.
fn check_tasks(kernel: &str) {
    let Some((dump, image)) = real(kernel) else { return };
    let tasks = json_tasks(&dump, &image);
    assert!(tasks.len() > 40, "{} tasks", tasks.len());
    for t in &tasks {
        assert_eq!(t["reliable"], true, "{t}");
        assert!(["end of stack", "user-mode registers"].contains(&t["end"].as_str().unwrap()), "{t}");
    }
    let find =
        |comm: &str, function: &str| tasks.iter().any(|t| t["comm"] == comm && names(t).iter().any(|n| n == function));
    assert!(find("sleep", "do_nanosleep"), "a sleeping task");
    assert!(find("cat", "pipe_read"), "a task blocked reading a pipe");
    assert!(find("yes", "pipe_write"), "a task blocked writing a pipe");
    assert!(find("sh", "fifo_open"), "a task blocked opening a FIFO");
    // Every CPU's current task starts from that CPU's registers (in the kernel or in user
    // mode: where the busy tasks were when the guest stopped is up to the scheduler).
    let on_cpu: Vec<_> = tasks.iter().filter(|t| !t["cpu"].is_null()).collect();
    assert!(on_cpu.len() >= 2, "{} tasks on a CPU", on_cpu.len());
    assert!(on_cpu.iter().all(|t| t["start"] == "running" || t["start"] == "user"));
    // Blocked in a module's code: the walk goes through evdev's own table, read from the dump,
    // and names the frame from the module's kallsyms.
    assert!(
        tasks.iter().any(|t| t["comm"] == "cat"
            && t["frames"].as_array().unwrap().iter().any(|f| f["symbol"]
                .as_str()
                .is_some_and(|s| s.starts_with("evdev_read+") && s.ends_with(" [evdev]")))),
        "a task blocked in evdev_read"
    );
    assert!(tasks
        .iter()
        .any(|t| t["comm"] == "kthreadd" && names(t).last().is_some_and(|n| n.starts_with("ret_from_fork"))));
    // Every CPU's idle task is there (swapper/N).
    assert!(tasks.iter().filter(|t| t["comm"].as_str().unwrap().starts_with("swapper/")).count() >= 2);
}

#[test]
fn real_dump_6_12_tasks() {
    check_tasks("6.12");
}

#[test]
fn real_dump_6_1_tasks() {
    check_tasks("6.1");
}

#[test]
fn real_dump_verify_patching() {
    if let Some((dump, image)) = real("6.12") {
        let out = on_dump("verify-patching", &dump, &image, &["--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["findings"], 0);
        assert!(v["checked"]["failures"] == 0);
        let sites: u64 = v["census"].as_array().unwrap().iter().map(|c| c["sites"].as_u64().unwrap()).sum();
        assert!(sites > 10_000, "{v}");
    }
    if let Some((dump, image)) = real("6.1") {
        // 6.1's known hazard (docs/findings.md): __switch_to_asm's RSB-filling loop, and the
        // dump proves the CPU ran that choice.
        let out = on_dump("verify-patching", &dump, &image, &["--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["findings"], 0, "{v}");
        for f in v["failures"].as_array().unwrap() {
            assert!(f.as_str().unwrap().starts_with("__switch_to_asm+0x28 "), "{f}");
        }
        let paravirt = v["census"].as_array().unwrap().iter().filter(|c| c["kind"] == "paravirt").count();
        assert!(paravirt > 0, "{v}");
    }
}

#[test]
fn real_dump_of_another_kernel_and_cut_short() {
    let (Some((dump, _)), Some((_, other))) = (real("6.12"), real("6.1")) else { return };
    let out = on_dump("unwind", &dump, &other, &[]);
    one_error_line(&out, &dump, "not the kernel of this vmlinux");
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.vmcore");
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let image = real("6.12").unwrap().1;
    let out = on_dump("unwind", &cut, &image, &[]);
    one_error_line(&out, &cut, "truncated vmcore");
}
