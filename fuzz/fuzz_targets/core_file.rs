//! Core files (`orctool unwind --core`): notes, threads, segments, the memory they dump, and a
//! walk of every thread. The files a core names are read from disk, as the command does, through
//! one table cache kept across runs (a file's table is made once).
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orc_process::{unwind_thread, CoreDump, Source, TableCache};
use orc_unwind::Memory;

fn cache() -> &'static TableCache {
    static CACHE: OnceLock<TableCache> = OnceLock::new();
    CACHE.get_or_init(|| TableCache::in_memory(Source::Combined))
}

fuzz_target!(|data: &[u8]| {
    let Ok(core) = CoreDump::parse(Path::new("fuzz.core"), data.to_vec()) else { return };
    let _ = core.pid();
    let space = core.address_space(cache());
    let mut mem = core.memory();
    for t in core.threads().iter().take(4) {
        let _ = mem.read_u64(t.regs.sp);
        let Some(stack) = space.stack_range(t.regs.sp) else { continue };
        let trace = unwind_thread(&space, t.regs, &mut mem, stack);
        let _ = orc_process::describe_end(&trace.end);
    }
});
