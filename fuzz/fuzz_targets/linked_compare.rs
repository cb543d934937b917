//! The linked-file analysis (orc-linked: functions from .symtab, or .eh_frame and .dynsym,
//! PLT stubs, machine-code analysis) and its comparison with the converted `.eh_frame`
//! (`orctool cfi-compare`), each source on its own.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_elf::ElfFile;
use orc_linked::{generate, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ElfFile::parse(data) else { return };
    let _ = generate(&file, Source::Analysis);
    let _ = generate(&file, Source::EhFrame);
    let _ = orc_linked::convert_eh_frame(&file);
    let _ = orc_linked::compare::compare(&file);
});
