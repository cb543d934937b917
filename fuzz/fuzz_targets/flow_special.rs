//! Every special-section parser of orc-flow, each on its own (one failing does not hide the
//! next), in every layout and for the kernel eras that change them; the address map of a
//! linked file; the function of a linked kernel image rebuilt as an object (`annotate
//! vmlinux --function`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_elf::ElfFile;
use orc_flow::special::{
    alternatives, annotations, bug_table, extable, hints, jump_table, paravirt, sites, AddressMap, AltLayout, JumpLayout,
};
use orc_flow::{KernelEra, ObjtoolOutputs, SpecialSections};

const ERAS: [KernelEra; 5] = [KernelEra::new(5, 10), KernelEra::V6_1, KernelEra::new(6, 3), KernelEra::V6_12, KernelEra::V7_2];

fuzz_target!(|data: &[u8]| {
    let Ok(file) = ElfFile::parse(data) else { return };
    let _ = KernelEra::from_file(&file);
    for layout in AltLayout::ALL {
        let _ = alternatives::read_alternatives(&file, layout);
    }
    for layout in [JumpLayout::Absolute24, JumpLayout::Relative16] {
        let _ = jump_table::read_jump_table(&file, layout);
    }
    let _ = extable::read_extable(&file);
    let _ = annotations::read_unified_annotations(&file);
    let _ = annotations::read_non_standard_frames(&file);
    let _ = paravirt::read_parainstructions(&file);
    let _ = ObjtoolOutputs::read(&file);
    let _ = sites::read_patchable_function_entries(&file);
    for era in ERAS {
        let _ = hints::read_unwind_hints_for(&file, era);
        for (name, kind, rule) in annotations::separate_sections(era) {
            let _ = annotations::read_annotation_section(&file, name, kind, rule);
        }
        let _ = bug_table::read_bug_table(&file, era);
        let _ = SpecialSections::read(&file, era);
    }
    let map = AddressMap::new(&file);
    for s in file.sections().flatten().take(64) {
        if let Some(at) = map.locate(s.address) {
            let _ = map.address(at);
        }
        let _ = map.ending_at(s.address.wrapping_add(s.size));
    }
    // A few functions of a linked image, as `annotate vmlinux --function` rebuilds them.
    if file.kind() == orc_elf::FileKind::Executable {
        let names: Vec<&str> = file
            .symbols()
            .flatten()
            .filter(|s| s.kind == orc_elf::SymbolKind::Func)
            .map(|s| s.name)
            .take(4)
            .collect();
        for name in names {
            let _ = orc_check::image::extract_function(&file, name, KernelEra::V6_12);
        }
    }
});
