//! Reading ORC tables from objects assembled from a few lines, and surviving broken ones.

use orc_elf::orc::{read_orc_table, LayoutSource, OrcAddress};
use orc_elf::{ElfError, ElfFile};
use orc_format::{DumpAddress, DumpLine, Entry, EntryType, Layout, Reg};
use orc_testkit::{assemble, Rng, ORC_HEADER_V3};

/// `f`: push %rbp; mov %rsp,%rbp; pop %rbp; ret — with a hand-written v3 table.
const FUNCTION_WITH_TABLE: &str = r#"
    .text
    .globl f
    .type f,@function
f:
    push %rbp
    mov %rsp,%rbp
    pop %rbp
    ret
    .size f, .-f
    .section .orc_unwind_ip,"a"
    .long .text+0 - .
    .long .text+1 - .
    .long f+5 - .
    .long .text+6 - .
    .section .orc_unwind,"a"
    .short 8, 0
    .byte 0x05, 0x02
    .short 16, -16
    .byte 0x15, 0x02
    .short 8, 0
    .byte 0x05, 0x02
    .short 0, 0
    .byte 0x00, 0x00
"#;

fn with_header() -> Vec<u8> {
    assemble(&format!("{FUNCTION_WITH_TABLE}{ORC_HEADER_V3}"))
}

#[test]
fn relocated_addresses_and_entries() {
    let bytes = with_header();
    let file = ElfFile::parse(&bytes).unwrap();
    let table = read_orc_table(&file, None).unwrap().expect("has a table");
    assert_eq!(table.layout, Layout::V3);
    assert_eq!(table.layout_source, LayoutSource::Header);
    assert_eq!(table.len(), 4);
    let names: Vec<(String, i64)> = table
        .addresses
        .iter()
        .map(|a| match a {
            OrcAddress::Relocated { name, addend, .. } => (name.to_string(), *addend),
            OrcAddress::Absolute(_) => panic!("relocatable file"),
        })
        .collect();
    assert_eq!(names, [(".text".into(), 0), (".text".into(), 1), ("f".into(), 5), (".text".into(), 6)]);
    let second = Layout::V3.decode(table.entry(1));
    assert_eq!(
        second,
        Entry { kind: EntryType::Call, sp_reg: Reg::SP, sp_offset: 16, bp_reg: Reg::PREV_SP, bp_offset: -16, signal: false }
    );
    assert_eq!(Layout::V3.decode(table.entry(3)), Entry::UNDEFINED);
}

#[test]
fn layout_from_vermagic_when_no_header() {
    let src = format!("{FUNCTION_WITH_TABLE}\t.section .modinfo,\"a\"\n\t.asciz \"license=GPL\"\n\t.asciz \"vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions \"\n");
    let bytes = assemble(&src);
    let file = ElfFile::parse(&bytes).unwrap();
    let table = read_orc_table(&file, None).unwrap().unwrap();
    assert_eq!(table.layout, Layout::V1);
    assert!(matches!(table.layout_source, LayoutSource::KernelVersion(v) if v.major == 6 && v.minor == 1));
    // A caller's choice wins over everything.
    let table = read_orc_table(&file, Some(Layout::V2)).unwrap().unwrap();
    assert_eq!((table.layout, table.layout_source), (Layout::V2, LayoutSource::Given));
    // Without any hint the newest layout is assumed, and said so.
    let bare = assemble(FUNCTION_WITH_TABLE);
    let file = ElfFile::parse(&bare).unwrap();
    assert_eq!(read_orc_table(&file, None).unwrap().unwrap().layout_source, LayoutSource::Assumed);
}

#[test]
fn no_table_is_none_and_half_a_table_is_an_error() {
    let bytes = assemble("\t.text\n\tret\n");
    assert!(read_orc_table(&ElfFile::parse(&bytes).unwrap(), None).unwrap().is_none());
    let half = assemble("\t.text\n\tret\n\t.section .orc_unwind,\"a\"\n\t.short 8,0\n\t.byte 5,2\n");
    let err = read_orc_table(&ElfFile::parse(&half).unwrap(), None).err().unwrap();
    assert!(err.to_string().contains("no .orc_unwind_ip"), "{err}");
}

#[test]
fn sizes_and_counts_are_checked() {
    // Seven bytes of .orc_unwind: not a multiple of six.
    let odd = assemble(&FUNCTION_WITH_TABLE.replace("    .short 0, 0\n    .byte 0x00, 0x00\n", "    .short 0, 0\n    .byte 0x00, 0x00, 0x00\n"));
    let err = read_orc_table(&ElfFile::parse(&odd).unwrap(), None).err().unwrap();
    assert!(matches!(err, ElfError::BadSectionSize { .. }), "{err}");
    // Five entries against four slots.
    let more = assemble(&FUNCTION_WITH_TABLE.replace("    .short 0, 0\n    .byte 0x00, 0x00\n", "    .short 0, 0\n    .byte 0x00, 0x00\n    .short 0, 0\n    .byte 0x00, 0x00\n"));
    let err = read_orc_table(&ElfFile::parse(&more).unwrap(), None).err().unwrap();
    assert_eq!(err, ElfError::OrcCountMismatch { orc: 5, ip: 4 });
}

#[test]
fn relocation_to_a_missing_symbol_is_an_error() {
    let mut bytes = with_header();
    // Point the first relocation of .rela.orc_unwind_ip at symbol 200 (r_info's high half).
    let file = ElfFile::parse(&bytes).unwrap();
    let rela = file.section_by_name(".rela.orc_unwind_ip").unwrap().unwrap();
    let offset = rela.data.as_ptr() as usize - bytes.as_ptr() as usize;
    drop(file);
    bytes[offset + 12..offset + 16].copy_from_slice(&200u32.to_le_bytes());
    let err = read_orc_table(&ElfFile::parse(&bytes).unwrap(), None).err().unwrap();
    assert!(err.to_string().contains("symbol index 200 does not exist"), "{err}");
}

#[test]
fn not_elf_and_truncated() {
    assert_eq!(ElfFile::parse(b"hello world").err(), Some(ElfError::NotElf));
    let bytes = with_header();
    assert!(ElfFile::parse(&bytes[..40]).is_err());
    let mut other_machine = bytes.clone();
    other_machine[18] = 0x28; // EM_ARM
    assert!(matches!(ElfFile::parse(&other_machine), Err(ElfError::Unsupported(_))));
}

/// Reads everything a dump reads, and renders it, so that a mutation anywhere is exercised.
fn read_all(bytes: &[u8]) {
    let Ok(file) = ElfFile::parse(bytes) else { return };
    for section in file.sections().flatten() {
        if let Some(r) = file.relocation_section_for(section.index) {
            let _ = file.relocations(r);
        }
    }
    for sym in file.symbols() {
        let _ = sym;
    }
    if let Ok(Some(table)) = read_orc_table(&file, None) {
        for (address, raw) in table.iter() {
            let address = match address {
                OrcAddress::Relocated { name, addend, .. } => DumpAddress::Symbol { name, addend },
                OrcAddress::Absolute(a) => DumpAddress::Absolute(a),
            };
            let _ = DumpLine { address, raw, layout: table.layout }.to_string();
        }
    }
}

/// Byte ranges worth mutating: the ELF header, the section headers, and the ORC sections with
/// their relocations and the symbol table.
fn interesting_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let file = ElfFile::parse(bytes).expect("valid before mutation");
    let base = bytes.as_ptr() as usize;
    let mut ranges = vec![0..64];
    let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
    ranges.push(shoff..bytes.len().min(shoff + 64 * file.section_count()));
    for s in file.sections().flatten() {
        if [".orc_unwind", ".orc_unwind_ip", ".rela.orc_unwind_ip", ".symtab", ".orc_header", ".strtab", ".shstrtab"].contains(&s.name) && !s.data.is_empty() {
            let start = s.data.as_ptr() as usize - base;
            ranges.push(start..start + s.data.len());
        }
    }
    ranges
}

#[test]
fn mutated_fixture_never_panics() {
    let original = with_header();
    let ranges = interesting_ranges(&original);
    let mut rng = Rng::new(0x0c0ffee);
    for _ in 0..20_000 {
        let mut bytes = original.clone();
        rng.mutate(&mut bytes, &ranges, 8);
        read_all(&bytes);
        // Truncation at a random point as well.
        let cut = rng.below(bytes.len());
        read_all(&bytes[..cut]);
    }
}

/// Real modules, mutated. Runs when `ORCTOOL_REAL_MODULES` names a directory of `.ko` files
/// (scripts/test.sh sets it to the fetched corpus); says so and passes otherwise.
#[test]
fn mutated_real_modules_never_panic() {
    let Some(dir) = std::env::var_os("ORCTOOL_REAL_MODULES") else {
        eprintln!("ORCTOOL_REAL_MODULES not set: real-module mutation skipped");
        return;
    };
    let mut modules = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable corpus directory").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ko") {
                modules.push(p);
            }
        }
    }
    modules.sort();
    assert!(!modules.is_empty(), "no .ko under ORCTOOL_REAL_MODULES");
    let mut rng = Rng::new(42);
    // A fixed spread of modules: every k-th, at most 12, small ones preferred by the cap.
    let step = (modules.len() / 12).max(1);
    let mut tried = 0;
    for path in modules.iter().step_by(step).take(12) {
        let original = std::fs::read(path).unwrap();
        if original.len() > 4 << 20 || ElfFile::parse(&original).is_err() {
            continue;
        }
        let ranges = interesting_ranges(&original);
        for _ in 0..300 {
            let mut bytes = original.clone();
            rng.mutate(&mut bytes, &ranges, 16);
            read_all(&bytes);
        }
        tried += 1;
    }
    assert!(tried > 0, "no module was small enough to mutate");
    eprintln!("mutated {tried} real modules 300 times each");
}
