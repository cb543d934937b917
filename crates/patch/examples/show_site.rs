//! Prints the choices of the patch sites of one file, instruction by instruction, with the
//! table's entry at each boundary: what `verify-patching` walks, for reading a finding.
//!
//! `cargo run --example show_site -- FILE [SECTION+0xOFF]` (all sites when no address given;
//! `--kernel 6.1` before FILE to choose the patching rules).

use orc_decode::{decode_one, disassemble};
use orc_elf::orc::read_orc_table;
use orc_elf::ElfFile;
use orc_flow::{KernelEra, Location};
use orc_patch::table::{Lookup, Names};
use orc_patch::ShowEntry;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut era = None;
    if args.first().map(String::as_str) == Some("--kernel") {
        era = KernelEra::parse(&args[1]);
        args.drain(..2);
    }
    let path = args.first().expect("usage: show_site [--kernel K] FILE [SECTION+0xOFF]");
    let bytes = std::fs::read(path).expect("read file");
    let file = ElfFile::parse(&bytes).expect("parse ELF");
    let table = read_orc_table(&file, None).expect("table").expect("has a table");
    let era = era.or_else(|| KernelEra::from_file(&file)).unwrap_or(KernelEra::V6_12);
    let lookup = Lookup::new(&file, &table);
    let names = Names::new(&file);
    let wanted = args.get(1).map(|a| {
        let (sec, off) = a.rsplit_once('+').expect("SECTION+0xOFF");
        let off = u64::from_str_radix(off.trim_start_matches("0x"), 16).expect("hex offset");
        let sec = file.section_by_name(sec).expect("section").expect("no such section").index;
        Location::new(sec, off)
    });
    for site in orc_patch::sites(&file, era).expect("sites") {
        if wanted.is_some_and(|w| w != site.at) {
            continue;
        }
        println!("{} site at {}, {} bytes", site.kind.name(), names.both(site.at), site.len);
        for c in &site.choices {
            println!("  choice {}{}", c.name, c.problem.map(|p| format!(" ({p})")).unwrap_or_default());
            let mut off = 0usize;
            while off < c.bytes.len() {
                let here = Location::new(site.at.section, site.at.offset + off as u64);
                let Ok(insn) = decode_one(&c.bytes[off..], off as u64, true) else {
                    println!("    +{off:#x}  (undecodable)");
                    break;
                };
                let text = disassemble(&c.bytes[off..], here.offset).unwrap_or_default();
                let row = lookup.find(here).map(|r| ShowEntry(r.entry).to_string()).unwrap_or("-".into());
                let hex: Vec<String> =
                    c.bytes[off..off + usize::from(insn.len)].iter().map(|b| format!("{b:02x}")).collect();
                println!(
                    "    +{off:<4x} {:<30} {:<36} table: {row}",
                    hex.join(" "),
                    text.split_whitespace().collect::<Vec<_>>().join(" ")
                );
                off += usize::from(insn.len);
            }
        }
        let end = Location::new(site.at.section, site.at.offset + site.len as u64);
        let row = lookup.find(end).map(|r| ShowEntry(r.entry).to_string()).unwrap_or("-".into());
        println!("  after the site ({}): table: {row}", names.in_section(end));
    }
}
