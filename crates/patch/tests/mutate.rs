//! Corrupted objects never make the verifier panic: random bytes in the code, the patch
//! tables, the ORC table, the relocations and the symbol table.

use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_patch::{verify, Options};
use orc_testkit::{assemble, section_ranges, seed_source, seed_table, Rng};

fn run(bytes: &[u8]) {
    if let Ok(file) = ElfFile::parse(bytes) {
        for era in [None, Some(KernelEra::V6_1)] {
            let _ = verify(&file, &Options { era });
        }
    }
}

#[test]
fn mutated_seed_objects_never_panic() {
    for name in ["pv_save_fl", "pv_hazard"] {
        // pv_hazard's table for both: the mutations need a file whose sites are walked.
        let original = assemble(&format!("{}{}", seed_source(name), seed_table("pv_hazard")));
        let mut rng = Rng::new(0x9a7c ^ name.len() as u64);
        rng.for_each_mutation(&original, &section_ranges(&original), 6, 3000, run);
    }
}

/// With `ORCTOOL_REAL_MODULES`: a few real modules, mutated.
#[test]
fn mutated_real_modules_never_panic() {
    let modules = ["arch/x86/kvm/kvm-amd.ko", "drivers/input/mouse/psmouse.ko", "net/8021q/8021q.ko", "lib/libcrc32c.ko"];
    let Some(done) = Rng::new(11).for_each_real_module_mutation(&modules, 12, 40, run) else {
        eprintln!("ORCTOOL_REAL_MODULES not set: skipped");
        return;
    };
    assert!(done > 0, "none of the modules found under ORCTOOL_REAL_MODULES");
}
