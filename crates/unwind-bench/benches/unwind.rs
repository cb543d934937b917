//! `cargo bench -p orc-unwind-bench`: per-frame unwinding cost of orctool, framehop (warm
//! and cold cache) and an uncached DWARF unwinder on the same real stacks, and ORC lookup cost
//! per index. Each walk bench counts frames (divan's items), so `item/s` is frames per second
//! and time / depth is the per-frame cost. Results: docs/benchmarks.md, "Unwinder".

use std::sync::LazyLock;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use framehop::x86_64::CacheX86_64;
use orc_unwind::{CachedLookup, Frame, IndexKind, OrcLookup, OwnedTable};
use orc_unwind_bench::{DwarfUncached, Fixture, Snapshot};

const DEPTHS: [usize; 4] = [8, 16, 32, 64];

static FX: LazyLock<Fixture> = LazyLock::new(|| {
    let fx = Fixture::load(&DEPTHS).expect("fixture");
    // Correctness first: every unwinder gives the same frames (tests/agree.rs checks more).
    let dwarf = DwarfUncached::new(&fx.binary).unwrap();
    let mut cache = CacheX86_64::new();
    for (snap, depth) in fx.snapshots.iter().zip(DEPTHS) {
        let (mut d, mut f) = (Vec::new(), Vec::new());
        dwarf.walk(snap, &mut d).unwrap();
        fx.framehop_walk(&mut cache, snap, &mut f).unwrap();
        let mut out = vec![Frame::default(); 256];
        let t = Fixture::orc_walk(&fx.orc.table(), snap, &mut out);
        let o: Vec<u64> = out[..t.frames].iter().map(|f| f.ip).collect();
        assert!(d.len() == depth && f == d && o == d && t.is_reliable(), "unwinders disagree at depth {depth}");
    }
    fx
});

fn snap(depth: usize) -> &'static Snapshot {
    let i = DEPTHS.iter().position(|&d| d == depth).unwrap();
    &FX.snapshots[i]
}

fn main() {
    divan::main();
}

mod walk {
    use super::*;

    fn orc(bencher: Bencher, depth: usize, table: &OwnedTable) {
        let s = snap(depth);
        let table = table.table();
        let mut out = Vec::with_capacity(256);
        bencher
            .counter(ItemsCount::new(depth))
            .bench_local(|| Fixture::orc_walk_ips(&table, black_box(s), &mut out).frames);
    }

    /// orctool, default index (direct slots over 16-byte blocks), no cache.
    #[divan::bench(args = DEPTHS)]
    fn orctool(bencher: Bencher, depth: usize) {
        orc(bencher, depth, &FX.orc);
    }

    /// orctool with the block index alone (32-byte blocks, the default before direct slots):
    /// count, then a search of the block's addresses, then the entry.
    #[divan::bench(args = DEPTHS)]
    fn orctool_blocks_32b(bencher: Bencher, depth: usize) {
        orc(bencher, depth, &FX.orc_table_with(IndexKind::Blocks(5)));
    }

    /// orctool with direct slots over 8-byte blocks (nearly every lookup one load; 150% of
    /// the text's size in index).
    #[divan::bench(args = DEPTHS)]
    fn orctool_direct_8b(bencher: Bencher, depth: usize) {
        orc(bencher, depth, &FX.orc_table_with(IndexKind::Direct(3)));
    }

    /// orctool with a warm 512-slot lookup cache in front of the default index (the analogue of
    /// framehop's warm rule cache; the kernel has none).
    #[divan::bench(args = DEPTHS)]
    fn orctool_cached(bencher: Bencher, depth: usize) {
        let s = snap(depth);
        let cached = CachedLookup::<_, 512>::new(FX.orc.table());
        let mut out = Vec::with_capacity(256);
        Fixture::orc_walk_ips_cached(&cached, s, &mut out);
        bencher
            .counter(ItemsCount::new(depth))
            .bench_local(|| Fixture::orc_walk_ips_cached(&cached, black_box(s), &mut out).frames);
    }

    /// orctool with the kernel's 256-byte block index.
    #[divan::bench(args = DEPTHS)]
    fn orctool_kernel_index(bencher: Bencher, depth: usize) {
        let t = FX.orc_table_with(IndexKind::Blocks(8));
        orc(bencher, depth, &t);
    }

    /// orctool without index (binary search of the whole table).
    #[divan::bench(args = DEPTHS)]
    fn orctool_binary_search(bencher: Bencher, depth: usize) {
        let t = FX.orc_table_with(IndexKind::BinarySearch);
        orc(bencher, depth, &t);
    }

    /// framehop with its rule cache warm (the same stack unwound before).
    #[divan::bench(args = DEPTHS)]
    fn framehop_warm(bencher: Bencher, depth: usize) {
        let s = snap(depth);
        let mut cache = CacheX86_64::new();
        let mut out = Vec::with_capacity(256);
        FX.framehop_walk(&mut cache, s, &mut out).unwrap();
        bencher.counter(ItemsCount::new(depth)).bench_local(|| {
            out.clear();
            FX.framehop_walk(&mut cache, black_box(s), &mut out).unwrap();
            out.len()
        });
    }

    /// framehop with a new (empty) rule cache for every walk; the cache's creation is not
    /// timed.
    #[divan::bench(args = DEPTHS)]
    fn framehop_cold(bencher: Bencher, depth: usize) {
        let s = snap(depth);
        let mut out = Vec::with_capacity(256);
        bencher.counter(ItemsCount::new(depth)).with_inputs(CacheX86_64::new).bench_local_values(|mut cache| {
            out.clear();
            FX.framehop_walk(&mut cache, black_box(s), &mut out).unwrap();
            out.len()
        });
    }

    /// gimli `.eh_frame` evaluation per frame, no caching.
    #[divan::bench(args = DEPTHS)]
    fn dwarf_uncached(bencher: Bencher, depth: usize) {
        let s = snap(depth);
        let dwarf = DwarfUncached::new(&FX.binary).unwrap();
        let mut out = Vec::with_capacity(256);
        bencher.counter(ItemsCount::new(depth)).bench_local(|| {
            out.clear();
            dwarf.walk(black_box(s), &mut out).unwrap();
            out.len()
        });
    }
}

mod lookup {
    use super::*;

    const INDEXES: [&str; 9] = [
        "binary_search",
        "kernel_256B",
        "blocks_128B",
        "blocks_64B",
        "blocks_32B",
        "blocks_16B",
        "direct_32B",
        "direct_16B",
        "direct_8B",
    ];

    fn kind(name: &str) -> IndexKind {
        match name {
            "binary_search" => IndexKind::BinarySearch,
            "kernel_256B" => IndexKind::Blocks(8),
            "blocks_128B" => IndexKind::Blocks(7),
            "blocks_64B" => IndexKind::Blocks(6),
            "blocks_32B" => IndexKind::Blocks(5),
            "blocks_16B" => IndexKind::Blocks(4),
            "direct_32B" => IndexKind::Direct(5),
            "direct_16B" => IndexKind::Direct(4),
            "direct_8B" => IndexKind::Direct(3),
            _ => unreachable!(),
        }
    }

    fn run(bencher: Bencher, index: &str, addrs: &[u64]) {
        let owned = FX.orc_table_with(kind(index));
        let table = owned.table();
        bencher.counter(ItemsCount::new(addrs.len())).bench_local(|| {
            let mut hits = 0usize;
            for &a in black_box(addrs) {
                hits += usize::from(table.find(a).is_some());
            }
            hits
        });
    }

    /// The addresses a walk looks up: the 64-deep stack's ip and return addresses − 1.
    #[divan::bench(args = INDEXES)]
    fn stack_addresses(bencher: Bencher, index: &str) {
        let s = snap(64);
        let mut out = vec![Frame::default(); 256];
        let t = Fixture::orc_walk(&FX.orc.table(), s, &mut out);
        let addrs: Vec<u64> =
            out[..t.frames].iter().enumerate().map(|(i, f)| if i == 0 { f.ip } else { f.ip - 1 }).collect();
        run(bencher, index, &addrs);
    }

    /// 4096 pseudo-random addresses spread over the whole executable segment (colder).
    #[divan::bench(args = INDEXES)]
    fn random_addresses(bencher: Bencher, index: &str) {
        let r = FX.binary.exec.clone();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let addrs: Vec<u64> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                r.start + x % (r.end - r.start)
            })
            .collect();
        run(bencher, index, &addrs);
    }
}
