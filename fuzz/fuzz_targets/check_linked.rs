//! `orctool check` on an executable or shared library: the analysis combined with the
//! converted `.eh_frame`, written into the file as sections and as a sidecar, both read back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_elf::ElfFile;
use orc_linked::{build_id, generate, sidecar, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ElfFile::parse(data) else { return };
    let Ok(table) = generate(&file, Source::Combined) else { return };
    for p in &table.report.problems {
        let _ = p.render("fuzz");
    }
    for &ip in table.ips.iter().take(16) {
        let _ = table.lookup(ip);
    }
    if let Ok(written) = orc_linked::write::add_orc_sections(data, &table) {
        let again = ElfFile::parse(&written).expect("a written file parses");
        let orc = orc_elf::orc::read_orc_table(&again, None).expect("its ORC table reads");
        assert_eq!(orc.map_or(0, |t| t.len()), table.ips.len());
    }
    let id = build_id(&file).unwrap_or(b"fuzz");
    if id.len() <= sidecar::MAX_BUILD_ID {
        let bytes = sidecar::encode(id, &table);
        let back = sidecar::decode(&bytes).expect("an encoded sidecar decodes");
        assert_eq!(back.ips, table.ips);
        assert_eq!(back.entries, table.entries);
    }
});
