//! Walks the 64-frame stack N times with one unwinder, for profilers (`valgrind
//! --tool=callgrind` counts instructions, immune to a busy machine; `perf record`).
//!
//! `cargo run --release -p orc-unwind-bench --example walk_loop -- [N] [orc|orc-blocks|orc-direct8|orc-cached|orc-frames|framehop|framehop-cold|dwarf]`
use framehop::x86_64::CacheX86_64;
use orc_unwind::Frame;
use orc_unwind_bench::{DwarfUncached, Fixture};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "orc".into());
    let fx = Fixture::load(&[64]).unwrap();
    let table = fx.orc.table();
    // `orc` is the default index (direct slots over 16-byte blocks); for comparison in one
    // run, the block index alone (32-byte blocks, the default before direct slots) and direct
    // slots over 8-byte blocks.
    let blocks = fx.orc_table_with(orc_unwind::IndexKind::Blocks(orc_unwind::DEFAULT_BLOCK_ORDER));
    let blocks = blocks.table();
    let direct8 = fx.orc_table_with(orc_unwind::IndexKind::Direct(3));
    let direct8 = direct8.table();
    let dwarf = DwarfUncached::new(&fx.binary).unwrap();
    let mut out = vec![Frame::default(); 256];
    let mut ips = Vec::with_capacity(256);
    let mut cache = CacheX86_64::new();
    let cached = orc_unwind::CachedLookup::<_, 512>::new(fx.orc.table());
    let mut frames = 0;
    let cpu0 = cpu_ns();
    let t = std::time::Instant::now();
    for _ in 0..n {
        let snap = std::hint::black_box(&fx.snapshots[0]);
        ips.clear();
        frames += match which.as_str() {
            "orc" => Fixture::orc_walk_ips(&table, snap, &mut ips).frames,
            "orc-direct8" => Fixture::orc_walk_ips(&direct8, snap, &mut ips).frames,
            "orc-blocks" => Fixture::orc_walk_ips(&blocks, snap, &mut ips).frames,
            "orc-cached" => Fixture::orc_walk_ips_cached(&cached, snap, &mut ips).frames,
            "orc-frames" => Fixture::orc_walk(&table, snap, &mut out).frames,
            "framehop" => {
                fx.framehop_walk(&mut cache, snap, &mut ips).unwrap();
                ips.len()
            }
            "framehop-cold" => {
                let mut cache = CacheX86_64::new();
                fx.framehop_walk(&mut cache, snap, &mut ips).unwrap();
                ips.len()
            }
            "dwarf" => {
                dwarf.walk(snap, &mut ips).unwrap();
                ips.len()
            }
            other => panic!("unknown unwinder {other}"),
        };
    }
    let dt = t.elapsed();
    let cpu = cpu_ns() - cpu0;
    println!(
        "{which}: {frames} frames, {:.2} ns/frame wall, {:.2} ns/frame on CPU",
        dt.as_nanos() as f64 / frames as f64,
        cpu as f64 / frames as f64
    );
}

/// Nanoseconds this process has spent running on a CPU (`/proc/self/schedstat`), which a
/// busy machine inflates far less than wall time.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
