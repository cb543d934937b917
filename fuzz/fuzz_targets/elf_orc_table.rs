//! ELF reading (sections, symbols, relocations, .modinfo) and `read_orc_table` in every layout:
//! detected, and each of the five forced.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_elf::orc::read_orc_table;
use orc_elf::ElfFile;
use orc_format::Layout;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ElfFile::parse(data) else { return };
    let _ = file.kind();
    for s in file.sections().flatten() {
        if let Some(rela) = file.relocation_section_for(s.index) {
            let _ = file.relocations(rela);
        }
    }
    for _ in file.symbols().flatten() {}
    let _ = orc_elf::modinfo::kernel_version(&file);
    for given in [None].into_iter().chain(Layout::ALL.map(Some)) {
        if let Ok(Some(table)) = read_orc_table(&file, given) {
            for (_, raw) in table.iter() {
                let _ = table.layout.decode(raw);
            }
        }
    }
});
