//! `orctool verify-patching`: every patch site built as the kernel patches it, the file's own
//! ORC table checked at each boundary; with the era from the file and forced to each era.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_patch::{verify, Options};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let Ok(file) = ElfFile::parse(bytes) else { return };
    let era = match selector % 4 {
        0 => None,
        1 => Some(KernelEra::V6_1),
        2 => Some(KernelEra::V6_12),
        _ => Some(KernelEra::V7_2),
    };
    let _ = verify(&file, &Options { era });
});
