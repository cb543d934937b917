//! Corrupted core files: parsing and unwinding them gives errors or odd traces, never a panic.
//! The core is a real one (gdb's `gcore` of the recursion test program in stop mode); the
//! bytes hit are its ELF header, program headers and notes (threads, mapped files).

use std::process::{Command, Stdio};

use orc_process::{unwind_thread, CoreDump, Source, TableCache};
use orc_testkit::programs::{self, spawn_stopped, Build};
use orc_testkit::Rng;
use orc_unwind::StackRange;

fn walk_all(dump: &CoreDump, cache: &TableCache) -> Vec<Vec<Option<String>>> {
    let space = dump.address_space(cache);
    let mut mem = dump.memory();
    dump.threads()
        .iter()
        .map(|t| {
            let stack = space.stack_range(t.regs.sp).unwrap_or(StackRange::new(t.regs.sp, t.regs.sp));
            let trace = unwind_thread(&space, t.regs, &mut mem, stack);
            trace.frames.into_iter().map(|f| f.symbolized.function).collect()
        })
        .collect()
}

/// Byte ranges of a core worth corrupting: ELF header, program headers, note segments.
fn ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(bytes[56..58].try_into().unwrap()) as usize;
    let mut out = vec![0..64, phoff..phoff + phnum * 56];
    for i in 0..phnum {
        let ph = &bytes[phoff + i * 56..phoff + (i + 1) * 56];
        if u32::from_le_bytes(ph[..4].try_into().unwrap()) == 4 {
            let off = u64::from_le_bytes(ph[8..16].try_into().unwrap()) as usize;
            let size = u64::from_le_bytes(ph[32..40].try_into().unwrap()) as usize;
            out.push(off..off + size);
        }
    }
    out
}

#[test]
fn corrupted_cores_never_panic() {
    if Command::new("gcore").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        eprintln!("gcore (gdb) not installed: skipped");
        return;
    }
    let exe = programs::build("recursion", &Build::default()).expect("build recursion");
    let stopped = spawn_stopped(&exe, &[]).expect("start recursion in stop mode");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("core");
    let ok = Command::new("gcore").arg("-o").arg(&prefix).arg(stopped.pid().to_string()).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(ok.success(), "gcore failed");
    let path = std::path::PathBuf::from(format!("{}.{}", prefix.display(), stopped.pid()));
    drop(stopped);
    let original = std::fs::read(&path).unwrap();
    let cache = TableCache::in_memory(Source::Combined);

    // The intact core unwinds from pause down to main: the test can see a broken walk.
    let dump = CoreDump::parse(&path, original.clone()).expect("gcore's core parses");
    let traces = walk_all(&dump, &cache);
    assert_eq!(traces.len(), 1);
    assert!(traces[0].iter().any(|f| f.as_deref() == Some("main")), "{:?}", traces[0]);
    assert!(traces[0].iter().filter(|f| f.as_deref().is_some_and(|n| n.starts_with("down_"))).count() >= 50);

    let ranges = ranges(&original);
    let mut rng = Rng::new(0x0c0e_d00d);
    let (mut parsed, mut refused) = (0, 0);
    rng.for_each_mutation(&original, &ranges, 8, 300, |bytes| match CoreDump::parse(&path, bytes.to_vec()) {
        Ok(dump) => {
            parsed += 1;
            walk_all(&dump, &cache);
        }
        Err(e) => {
            refused += 1;
            let msg = e.to_string();
            assert!(msg.starts_with(&path.display().to_string()), "errors name the file: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        }
    });
    assert_eq!(parsed + refused, 300);
    assert!(refused > 0, "some corruptions must be refused");
}
