//! Correctness before speed: on every captured stack, orctool (on the table converted from
//! `.eh_frame`), framehop and the uncached DWARF unwinder return the same frames, the whole
//! way down to `_start`, and orctool calls the trace reliable.

use orc_unwind::{End, Frame, IndexKind};
use orc_unwind_bench::{DwarfUncached, Fixture};

const DEPTHS: [usize; 4] = [8, 16, 32, 64];

#[test]
fn all_unwinders_agree_on_real_stacks() {
    let fx = Fixture::load(&DEPTHS).unwrap();
    let s = fx.stats;
    eprintln!("eh_frame -> ORC: {s:?}; {} entries", fx.orc.ips().len());
    assert!(s.expressed * 100 >= s.rows * 95, "too few rows expressed: {s:?}");
    let dwarf = DwarfUncached::new(&fx.binary).unwrap();
    let mut cache = framehop::x86_64::CacheX86_64::new();
    assert_eq!(fx.snapshots.len(), DEPTHS.len());
    for (snap, depth) in fx.snapshots.iter().zip(DEPTHS) {
        let mut d = Vec::new();
        dwarf.walk(snap, &mut d).unwrap();
        let mut fh = Vec::new();
        fx.framehop_walk(&mut cache, snap, &mut fh).unwrap();
        for index in [IndexKind::BinarySearch, IndexKind::Blocks(8), IndexKind::Blocks(6), IndexKind::Blocks(5), IndexKind::Blocks(4), IndexKind::Direct(5), IndexKind::Direct(4)] {
            let owned = fx.orc_table_with(index);
            let mut out = vec![Frame::default(); 256];
            let trace = Fixture::orc_walk(&owned.table(), snap, &mut out);
            let orc: Vec<u64> = out[..trace.frames].iter().map(|f| f.ip).collect();
            assert_eq!(trace.end, End::EndOfStack, "depth {depth} {index:?}: {trace:?}");
            assert!(trace.is_reliable(), "depth {depth}: {:?}", trace.unreliable);
            assert_eq!(orc, d, "orctool vs DWARF, depth {depth} {index:?}");
        }
        let cached = orc_unwind::CachedLookup::<_, 64>::new(fx.orc.table());
        for _ in 0..2 {
            let mut c = Vec::new();
            let trace = Fixture::orc_walk_ips_cached(&cached, snap, &mut c);
            assert!(trace.is_reliable() && trace.end == End::EndOfStack);
            assert_eq!(c, d, "orctool (cached) vs DWARF, depth {depth}");
        }
        assert_eq!(fh, d, "framehop vs DWARF, depth {depth}");
        assert_eq!(d.len(), depth, "frames in the trace");
    }
}
