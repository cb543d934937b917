//! Corrupted objects never make the checker panic or hang: random bytes in the code, the
//! patch-site tables, the relocations and the symbol table.

use orc_check::{check, Options};
use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_testkit::{assemble, Rng};

fn options() -> Options {
    Options { assume_intra_function_calls: true, strict_alternatives: true, ..Options::kernel_module() }
}

fn ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let file = ElfFile::parse(bytes).unwrap();
    let base = bytes.as_ptr() as usize;
    let mut out = vec![0..64];
    for s in file.sections().flatten() {
        if !s.data.is_empty() {
            let start = s.data.as_ptr() as usize - base;
            out.push(start..start + s.data.len());
        }
    }
    out
}

fn run(bytes: &[u8]) {
    if let Ok(file) = ElfFile::parse(bytes) {
        let _ = check(&file, KernelEra::V6_12, &options());
    }
}

#[test]
fn mutated_seed_objects_never_panic() {
    for name in ["pv_save_fl", "pv_conflict"] {
        let path = format!("{}/../orctool/seed/{name}.S", env!("CARGO_MANIFEST_DIR"));
        let original = assemble(&std::fs::read_to_string(path).unwrap());
        let r = ranges(&original);
        let mut rng = Rng::new(0x5eed ^ name.len() as u64);
        for _ in 0..3000 {
            let mut bytes = original.clone();
            rng.mutate(&mut bytes, &r, 6);
            run(&bytes);
        }
    }
}

/// With `ORCTOOL_REAL_MODULES`: a few real modules, mutated.
#[test]
fn mutated_real_modules_never_panic() {
    let Some(dir) = std::env::var_os("ORCTOOL_REAL_MODULES") else {
        eprintln!("ORCTOOL_REAL_MODULES not set: skipped");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut rng = Rng::new(7);
    let mut done = 0;
    for rel in ["drivers/block/null_blk/null_blk.ko", "arch/x86/crypto/crc32c-intel.ko", "lib/libcrc32c.ko", "drivers/block/nbd.ko"] {
        let Ok(original) = std::fs::read(dir.join(rel)) else { continue };
        let r = ranges(&original);
        for _ in 0..40 {
            let mut bytes = original.clone();
            rng.mutate(&mut bytes, &r, 12);
            run(&bytes);
        }
        done += 1;
    }
    assert!(done > 0, "none of the modules found under ORCTOOL_REAL_MODULES");
}
