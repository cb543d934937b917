//! Copies the ORC table of one file into another (same sections), through the writer: a
//! quick way to check the writer against a real module whose ORC was stripped.
//! Usage: reorc WITH_ORC STRIPPED OUT
use orc_elf::orc::{read_orc_table, OrcAddress};
use orc_elf::write::{add_orc_sections, OrcRow};
use orc_elf::ElfFile;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let with = std::fs::read(&args[1]).unwrap();
    let stripped = std::fs::read(&args[2]).unwrap();
    let file = ElfFile::parse(&with).unwrap();
    let table = read_orc_table(&file, None).unwrap().unwrap();
    let target = ElfFile::parse(&stripped).unwrap();
    let rows: Vec<OrcRow> = table
        .iter()
        .map(|(a, raw)| match a {
            OrcAddress::Relocated { section, addend, .. } => {
                let name = file.section(section.unwrap()).unwrap().name;
                let section = target.section_by_name(name).unwrap().unwrap().index;
                OrcRow { section, offset: addend as u64, raw }
            }
            OrcAddress::Absolute(_) => panic!("relocatable only"),
        })
        .collect();
    std::fs::write(&args[3], add_orc_sections(&stripped, &rows).unwrap()).unwrap();
}
