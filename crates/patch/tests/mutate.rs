//! Corrupted objects never make the verifier panic: random bytes in the code, the patch
//! tables, the ORC table, the relocations and the symbol table.

use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_patch::{verify, Options};
use orc_testkit::{assemble, section_ranges, seed_source, Rng};

/// A union table for `pv_hazard.S`, so that the mutations hit a file whose sites are walked.
const TABLE: &str = r#"
    .section .orc_unwind_ip,"a"
    .long .text+0x0 - .
    .long .text+0x6 - .
    .long .text+0x9 - .
    .long .text+0xa - .
    .long .text+0xb - .
    .long .text+0x10 - .
    .section .orc_unwind,"a"
    .short 8, 0
    .byte 0x05, 0x02
    .short 16, 0
    .byte 0x05, 0x02
    .short 8, 0
    .byte 0x05, 0x02
    .short 16, 0
    .byte 0x05, 0x02
    .short 8, 0
    .byte 0x05, 0x02
    .short 0, 0
    .byte 0x00, 0x00
"#;

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
        let original = assemble(&format!("{}{TABLE}", seed_source(name)));
        let mut rng = Rng::new(0x9a7c ^ name.len() as u64);
        rng.for_each_mutation(&original, &section_ranges(&original), 6, 3000, run);
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
    let mut rng = Rng::new(11);
    let mut done = 0;
    for rel in ["arch/x86/kvm/kvm-amd.ko", "drivers/input/mouse/psmouse.ko", "net/8021q/8021q.ko", "lib/libcrc32c.ko"] {
        let Ok(original) = std::fs::read(dir.join(rel)) else { continue };
        rng.for_each_mutation(&original, &section_ranges(&original), 12, 40, run);
        done += 1;
    }
    assert!(done > 0, "none of the modules found under ORCTOOL_REAL_MODULES");
}
