//! `orctool check` on one kernel object: objtool's validation in every kernel era that changes
//! its rules, then the rewrite with the ORC rows and edits it produced (as the command writes
//! the checked object).
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_check::{check, Options};
use orc_elf::write::{Changes, OrcRow, Rewriter};
use orc_elf::ElfFile;
use orc_flow::KernelEra;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let Ok(file) = ElfFile::parse(bytes) else { return };
    let era = match selector % 4 {
        0 => KernelEra::V6_12,
        1 => KernelEra::V6_1,
        2 => KernelEra::V7_2,
        _ => KernelEra::new(6, 3),
    };
    let mut opts = Options::kernel_module();
    opts.strict_alternatives = selector & 0x10 != 0;
    opts.link = selector & 0x20 != 0;
    if opts.link {
        opts.noinstr = selector & 0x40 != 0;
        opts.unret = selector & 0x40 != 0;
        opts.ibt = selector & 0x80 != 0;
    }
    let analysis = check(&file, era, &opts);
    for w in &analysis.warnings {
        let _ = w.render("fuzz.o");
    }
    if analysis.fatal.is_some() {
        return;
    }
    let layout = era.orc_layout();
    let mut rows = Vec::new();
    for r in analysis.orc.iter().flatten() {
        let Ok(raw) = layout.encode(r.entry) else { return };
        rows.push(OrcRow { section: r.section, offset: r.offset, raw });
    }
    let changes = Changes { tables: &[], orc: Some(&rows), patches: &analysis.edits.patches, symbols: &analysis.edits.symbols };
    if let Ok(written) = Rewriter::read(bytes).and_then(|r| r.finish(&changes)) {
        // What was written reads back.
        let again = ElfFile::parse(&written).expect("a rewritten object parses");
        if !rows.is_empty() {
            let table = orc_elf::orc::read_orc_table(&again, Some(layout)).expect("the written ORC table reads");
            assert_eq!(table.map_or(0, |t| t.len()), rows.len());
        }
    }
});
