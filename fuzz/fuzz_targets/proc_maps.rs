//! `/proc/PID/maps` text as `unwind --pid` and `verify-exec` read it, made into an address
//! space (file paths that do not exist are skipped as the command skips them).
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_process::{parse_maps, AddressSpace, Source, TableCache};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut maps) = parse_maps(1, text) else { return };
    // Only anonymous mappings: files named by the input are the core_file target's business.
    for m in &mut maps {
        m.path = None;
    }
    let space = AddressSpace::from_mappings(maps, &TableCache::in_memory(Source::Combined));
    for m in space.mappings().iter().take(8) {
        let _ = space.module_for(m.start);
        let _ = space.stack_range(m.end);
        let _ = space.symbolize_with(m.start, true, false);
    }
});
