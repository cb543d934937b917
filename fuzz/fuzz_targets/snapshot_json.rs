//! The snapshot JSON of `orctool unwind --snapshot` (the command's own parser, compiled from its
//! source file), then a walk over its stacks with a small fixed table.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_format::{Entry, EntryType, Layout, Reg};
use orc_unwind::{Config, IndexKind, ModuleTables, OwnedTable, Snapshots, StackSnapshot, Unwinder};

#[path = "../../crates/orctool/src/snapshot.rs"]
#[allow(dead_code)]
mod snapshot;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(snap) = snapshot::parse(text) else { return };
    // Text at 0x1000..0x1100: a frame-pointer function and a call-frame one.
    let call = Entry { kind: EntryType::Call, sp_reg: Reg::SP, sp_offset: 8, bp_reg: Reg::UNDEFINED, bp_offset: 0, signal: false };
    let fp = Entry { sp_reg: Reg::BP, sp_offset: 16, bp_reg: Reg::PREV_SP, bp_offset: -16, ..call };
    let layout = Layout::V3;
    let pairs = [(0x1000, call), (0x1040, fp), (0x1080, call)].map(|(ip, e)| (ip, layout.encode(e).expect("encodable")));
    let table = OwnedTable::build(pairs, layout, 0x1000..0x1100, IndexKind::default()).expect("table builds");
    let views = [table.table()];
    let modules = ModuleTables::new(&views);
    let stacks: Vec<StackSnapshot<'_>> = snap.stacks.iter().map(|(_, base, bytes)| StackSnapshot::new(*base, bytes)).collect();
    let ranges: Vec<_> = stacks.iter().map(StackSnapshot::range).collect();
    let unwinder = Unwinder::new(&modules, &ranges).with_config(Config { max_frames: 64, ..Config::default() });
    let mut mem = Snapshots(&stacks);
    let state = match snap.pt_regs {
        Some(addr) => unwinder.start_from_regs(&mut mem, addr).ok(),
        None => Some(unwinder.start(snap.rip, snap.rsp, snap.rbp, snap.exact)),
    };
    if let Some(mut state) = state {
        let trace = unwinder.walk_with(&mut state, &mut mem, |_| true);
        assert!(trace.frames <= 64);
    }
});
