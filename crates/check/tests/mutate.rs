//! Corrupted objects never make the checker panic or hang: random bytes in the code, the
//! patch-site tables, the relocations and the symbol table.

use orc_check::{check, Options};
use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_testkit::{assemble, section_ranges, seed_source, Rng};

fn options() -> Options {
    Options { assume_intra_function_calls: true, strict_alternatives: true, ..Options::kernel_module() }
}

fn run(bytes: &[u8]) {
    if let Ok(file) = ElfFile::parse(bytes) {
        let _ = check(&file, KernelEra::V6_12, &options());
    }
}

#[test]
fn mutated_seed_objects_never_panic() {
    for name in ["pv_save_fl", "pv_conflict"] {
        let original = assemble(&seed_source(name));
        let mut rng = Rng::new(0x5eed ^ name.len() as u64);
        rng.for_each_mutation(&original, &section_ranges(&original), 6, 3000, run);
    }
}

/// With `ORCTOOL_REAL_MODULES`: a few real modules, mutated.
#[test]
fn mutated_real_modules_never_panic() {
    let modules = ["drivers/block/null_blk/null_blk.ko", "arch/x86/crypto/crc32c-intel.ko", "lib/libcrc32c.ko", "drivers/block/nbd.ko"];
    let Some(done) = Rng::new(7).for_each_real_module_mutation(&modules, 12, 40, run) else {
        eprintln!("ORCTOOL_REAL_MODULES not set: skipped");
        return;
    };
    assert!(done > 0, "none of the modules found under ORCTOOL_REAL_MODULES");
}
