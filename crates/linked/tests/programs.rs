//! The analysis on the project's C test programs: it must agree with the compiler's CFI at
//! every instruction both describe, analyse every function of the program's own code, and
//! express the shapes each program exists for.

use orc_elf::ElfFile;
use orc_format::{EntryType, Reg};
use orc_linked::compare::compare;
use orc_linked::{generate, Source};
use orc_testkit::programs::{self, Build};

fn build(name: &str) -> Vec<u8> {
    let path = programs::build(name, &Build::default()).unwrap_or_else(|e| panic!("building {name}: {e}"));
    std::fs::read(path).unwrap()
}

#[test]
fn analysis_and_converter_agree_on_every_test_program() {
    let mut failures = Vec::new();
    for name in programs::names() {
        let bytes = build(name);
        let elf = ElfFile::parse(&bytes).unwrap();
        let c = compare(&elf).unwrap();
        assert!(c.instructions > 50, "{name}: only {} instructions compared", c.instructions);
        for d in &c.differences {
            failures.push(format!("{name}: {}+{:#x} ({:#x}): analysis {:?}, converter {:?}", d.function, d.offset, d.addr, d.analysis, d.converter));
        }
        for (addr, function, offset) in &c.missing {
            failures.push(format!("{name}: {function}+{offset:#x} ({addr:#x}): the analysis has no entry"));
        }
        let table = generate(&elf, Source::Analysis).unwrap();
        for p in &table.report.problems {
            failures.push(format!("{name}: {}", p.render(name)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The address of a `.symtab` function.
fn symbol(elf: &ElfFile<'_>, name: &str) -> u64 {
    elf.symbols().flatten().find(|s| s.name == name).unwrap_or_else(|| panic!("no symbol {name}")).value
}

#[test]
fn drap_function_is_described_through_the_saved_drap_pointer() {
    let bytes = build("alloca_drap");
    let elf = ElfFile::parse(&bytes).unwrap();
    let table = generate(&elf, Source::Analysis).unwrap();
    // Some row of the program's tables uses BP_INDIRECT (GCC's DRAP) or a BP-based CFA
    // (alloca with a frame pointer): the shapes the program exists for.
    let regs: Vec<Reg> = table.ips.iter().map(|&ip| table.lookup(ip).unwrap().sp_reg).collect();
    assert!(regs.contains(&Reg::BP_INDIRECT) || regs.contains(&Reg::R10), "no DRAP rows");
    assert!(regs.contains(&Reg::BP), "no frame-pointer rows");
}

#[test]
fn entry_point_ends_the_stack() {
    let bytes = build("recursion");
    let elf = ElfFile::parse(&bytes).unwrap();
    let start = symbol(&elf, "_start");
    for source in [Source::Analysis, Source::Combined] {
        let table = generate(&elf, source).unwrap();
        assert_eq!(table.lookup(start).unwrap().kind, EntryType::EndOfStack, "{source:?}");
    }
}
