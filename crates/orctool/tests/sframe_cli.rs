//! SFrame v3 on the C test programs: `orctool check --sframe` writes a loaded `.sframe` with
//! `PT_GNU_SFRAME` into a copy that still runs and reads back through orctool's reader to the
//! table it meant; Debian unstable's `objdump --sframe` (when `scripts/fetch-sid-binutils.sh`
//! has fetched it) prints the same rows as `orctool sframe-dump`; the sidecar is the bare
//! section; `verify-exec --sframe` proves the tables on a run with lazy binding.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_elf::ElfFile;
use orc_sframe::read::Section;
use orc_testkit::programs::{self, Build};
use serde_json::Value;

const PROGRAMS: [&str; 8] = ["recursion", "tailcall", "switch", "alloca_drap", "noreturn", "threads", "setjmp", "signal_leaf"];

fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool")).args(args).output().expect("run orctool")
}

fn program(name: &str) -> PathBuf {
    programs::build(name, &Build::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// sid's objdump wrapper, if fetched: `$ORCTOOL_SID_BINUTILS/objdump` (scripts/test.sh sets it), else the cache's.
fn sid_objdump() -> Option<PathBuf> {
    let dir = std::env::var_os("ORCTOOL_SID_BINUTILS").filter(|v| !v.is_empty()).map(PathBuf::from).or_else(|| {
        let cache = std::env::var_os("ORCTOOL_CACHE").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orctool")))?;
        Some(cache.join("sframe/sid-binutils/bin"))
    })?;
    let o = dir.join("objdump");
    o.is_file().then_some(o)
}

/// The `PT_GNU_SFRAME` segment's address and size, read from the program headers.
fn pt_gnu_sframe(bytes: &[u8]) -> Option<(u64, u64)> {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let phoff = word(0x20) as usize;
    let phnum = usize::from(u16::from_le_bytes([bytes[0x38], bytes[0x39]]));
    (0..phnum).map(|i| phoff + i * 56).find_map(|p| {
        (u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()) == orc_linked::write::PT_GNU_SFRAME).then(|| (word(p + 16), word(p + 32)))
    })
}

#[test]
fn check_sframe_writes_a_loaded_section_that_reads_back_runs_and_objdump_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let objdump = sid_objdump();
    if objdump.is_none() {
        eprintln!("SKIP (objdump part): sid's binutils not fetched (bash scripts/fetch-sid-binutils.sh)");
    }
    let compare_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lib/sframe_dumps.py");
    for name in PROGRAMS {
        let exe = program(name);
        let original = std::fs::read(&exe).unwrap();
        let meant = orc_linked::sframe::generate(&ElfFile::parse(&original).unwrap()).unwrap();
        let out_path = dir.path().join(format!("{name}.sf"));
        let out = orctool(&["check", "--sframe", exe.to_str().unwrap(), "-o", out_path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&out.stderr));

        let written = std::fs::read(&out_path).unwrap();
        assert_eq!(&written[0x40..0x100], &original[0x40..0x100], "{name}: the loaded bytes stay");
        let elf = ElfFile::parse(&written).unwrap();
        let sec = elf.section_by_name(".sframe").unwrap().expect("an .sframe section");
        assert_eq!(pt_gnu_sframe(&written), Some((sec.address, sec.data.len() as u64)), "{name}: PT_GNU_SFRAME covers .sframe");
        let s = Section::parse(sec.data, sec.address).unwrap();
        s.validate().unwrap();
        let back: Vec<_> = s
            .fdes()
            .map(|f| {
                let f = f.unwrap();
                (f.start, f.size, f.signal, s.rows(&f).collect::<Result<Vec<_>, _>>().unwrap())
            })
            .collect();
        let want: Vec<_> = meant.functions.iter().map(|f| (f.start, f.size, f.signal, f.rows.clone())).collect();
        assert_eq!(back, want, "{name}: read back differs");

        if let Some(objdump) = &objdump {
            let a = dir.path().join(format!("{name}.objdump"));
            let b = dir.path().join(format!("{name}.orctool"));
            let o = Command::new(objdump).arg("--sframe").arg(&out_path).output().unwrap();
            assert!(o.status.success() && o.stderr.is_empty(), "{name}: objdump: {}", String::from_utf8_lossy(&o.stderr));
            std::fs::write(&a, &o.stdout).unwrap();
            let d = orctool(&["sframe-dump", out_path.to_str().unwrap()]);
            assert_eq!(d.status.code(), Some(0));
            std::fs::write(&b, &d.stdout).unwrap();
            let cmp = Command::new("python3").arg(&compare_py).arg(&a).arg(&b).output().unwrap();
            let verdict = String::from_utf8_lossy(&cmp.stdout);
            let rows: usize = meant.functions.iter().map(|f| f.rows.len()).sum();
            assert_eq!(verdict.trim(), format!("same {} {rows}", meant.functions.len()), "{name}");
        }
    }
    // The rewritten program runs as before; a second --sframe is refused.
    let exe = program("recursion");
    let sf = dir.path().join("recursion.sf");
    let before = Command::new(&exe).output().unwrap();
    let after = Command::new(&sf).output().unwrap();
    assert_eq!((after.status.code(), after.stdout), (before.status.code(), before.stdout));
    let again = orctool(&["check", "--sframe", sf.to_str().unwrap(), "-o", dir.path().join("x").to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has an .sframe"));
}

#[test]
fn sidecar_is_the_bare_section_at_address_zero() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program("setjmp");
    let bytes = std::fs::read(&exe).unwrap();
    let elf = ElfFile::parse(&bytes).unwrap();
    let id = orc_linked::build_id(&elf).expect("a build-id");
    let arg = format!("--sidecar={}", dir.path().display());
    let out = orctool(&["check", "--sframe", &arg, exe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let sidecar = std::fs::read(dir.path().join(format!("{hex}.sframe"))).unwrap();
    let meant = orc_linked::sframe::generate(&elf).unwrap();
    assert_eq!(sidecar, orc_sframe::write::write(&meant.functions, 0).unwrap());
    assert_eq!(std::fs::read(&exe).unwrap(), bytes, "the program is not touched");
    let dump = orctool(&["sframe-dump", "--raw", dir.path().join(format!("{hex}.sframe")).to_str().unwrap()]);
    assert_eq!(dump.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&dump.stdout).contains("func idx [0]"));
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Lazy binding (no LD_BIND_NOW): with SFrame, every step of the program and of libc agrees and
/// no step is without a row; the steps that disagree are in ld.so, below the lazy-binding
/// trampoline, whose CFA is `%rbx`-based: past the first frame SFrame does not know `%rbx`.
#[test]
fn verify_exec_sframe_with_lazy_binding() {
    let exe = program("recursion");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let cache = dir.path().join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(["verify-exec", "--sframe", "--json", "--cache-dir", cache.to_str().unwrap(), "-o", report.to_str().unwrap(), "--"])
        .arg(&exe)
        .env_remove("LD_BIND_NOW")
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(u(&r["undefined"]), 0, "every step has an SFrame row");
    assert_eq!(u(&r["no_table"]), 0);
    for b in r["binaries"].as_array().unwrap() {
        let name = b["name"].as_str().unwrap();
        if !name.contains("ld-linux") {
            assert_eq!(u(&b["disagree"]), 0, "{name}: {b}");
            assert!(u(&b["checked"]) > 0);
        }
    }
    let mut under_trampoline = 0;
    for d in r["disagreements"].as_array().unwrap() {
        let chain: Vec<&str> = d["expected"].as_array().unwrap().iter().map(|f| f["symbol"].as_str().unwrap_or("")).collect();
        assert!(chain.iter().any(|s| s.starts_with("_dl_runtime_resolve")), "a disagreement outside the trampoline: {d}");
        assert!(d["orc_end"].as_str().unwrap().contains("%rbx"), "{d}");
        under_trampoline += 1;
    }
    assert!(under_trampoline > 0, "lazy binding ran the trampoline");
    // A cache entry for the program: the bare section, named by build-id and table generator.
    assert!(std::fs::read_dir(&cache).unwrap().flatten().any(|e| e.file_name().to_string_lossy().ends_with(".sframe")));
}
