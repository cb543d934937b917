//! The process's allocator: the system's, except while iced-x86 builds its decoder tables.
//!
//! iced-x86 builds its decoding tables on first use, as about 8,700 small boxes that live until
//! the process ends. Taken from glibc's malloc, each fresh chunk costs about 180 instructions:
//! 1.5 million in all, more than a quarter of `orctool check` on a small module, and kbuild starts one
//! process per object. [`prepare_decoder`] builds the tables with every allocation served by
//! bumping a pointer through a static arena; before and after it, every allocation goes to the
//! system allocator. Arena blocks are never reused: freeing one does nothing, and growing one
//! copies it out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

/// The arena's size: the tables take about 420 KiB; what does not fit comes from the system.
const ARENA_BYTES: usize = 1 << 20;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; ARENA_BYTES]>);

// SAFETY: the bytes are handed out in disjoint blocks (`bump` reserves each with an atomic
// compare-and-swap) and never handed out twice.
unsafe impl Sync for Arena {}

/// Zeroed, in `.bss`: pages are touched only as the tables use them.
static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_BYTES]));
/// Bytes of the arena handed out.
static USED: AtomicUsize = AtomicUsize::new(0);
/// Whether new allocations come from the arena.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The global allocator (see the module's comment).
pub struct Allocator;

fn arena_start() -> usize {
    ARENA.0.get() as usize
}

fn in_arena(ptr: *mut u8) -> bool {
    (arena_start()..arena_start() + ARENA_BYTES).contains(&(ptr as usize))
}

/// Reserves `layout` in the arena; `None` when it does not fit.
fn bump(layout: Layout) -> Option<*mut u8> {
    let base = arena_start();
    let mut used = USED.load(Relaxed);
    loop {
        let start = (base + used).checked_next_multiple_of(layout.align())? - base;
        let end = start.checked_add(layout.size())?;
        if end > ARENA_BYTES {
            return None;
        }
        match USED.compare_exchange_weak(used, end, Relaxed, Relaxed) {
            Ok(_) => return Some((base + start) as *mut u8),
            Err(now) => used = now,
        }
    }
}

// SAFETY: arena blocks are aligned as asked, disjoint and never reused (so they are zeroed
// when first handed out); every other pointer is the system allocator's and goes back to it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ACTIVE.load(Relaxed) {
            if let Some(p) = bump(layout) {
                return p;
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ACTIVE.load(Relaxed) {
            if let Some(p) = bump(layout) {
                return p;
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr) {
            // SAFETY: not the arena's, so the system allocator's.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr) {
            // SAFETY: not the arena's, so the system allocator's.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` is valid for `layout.align()` (the caller's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid, non-zero layout (the caller's contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

/// Builds iced-x86's decoder tables now, from the arena. Call it before starting threads
/// (others would allocate from the arena meanwhile: correct, but wasted).
pub fn prepare_decoder() {
    ACTIVE.store(true, Relaxed);
    let _ = iced_x86::Decoder::new(64, &[0x90], iced_x86::DecoderOptions::NONE);
    ACTIVE.store(false, Relaxed);
    if std::env::var_os("ORCTOOL_DEBUG_ARENA").is_some() {
        eprintln!("arena: {} bytes used", USED.load(Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The arena's switch is process-wide: the tests that turn it take turns.
    static SWITCH: Mutex<()> = Mutex::new(());

    #[test]
    fn tables_come_from_the_arena_and_later_allocations_do_not() {
        let _turn = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
        prepare_decoder();
        let used = USED.load(Relaxed);
        assert!(used > 100_000, "the decoder tables took {used} bytes of the arena");
        let after = Box::new([7u64; 4]);
        assert!(!in_arena(&*after as *const _ as *mut u8));
        // The tables work: decoding after the arena is closed uses them.
        let mut decoder = iced_x86::Decoder::new(64, &[0x48, 0x83, 0xec, 0x18], iced_x86::DecoderOptions::NONE);
        assert_eq!(decoder.decode().len(), 4);
    }

    #[test]
    fn an_arena_block_grows_into_the_system_heap_with_its_contents() {
        let _turn = SWITCH.lock().unwrap_or_else(|e| e.into_inner());
        ACTIVE.store(true, Relaxed);
        let mut v: Vec<u32> = Vec::with_capacity(4);
        ACTIVE.store(false, Relaxed);
        assert!(in_arena(v.as_mut_ptr().cast()));
        v.extend(0..4);
        v.extend(4..1000);
        assert!(!in_arena(v.as_mut_ptr().cast()));
        assert!(v.iter().copied().eq(0..1000));
    }

    #[test]
    fn arena_blocks_are_aligned_and_disjoint() {
        let a = bump(Layout::from_size_align(3, 1).unwrap()).unwrap() as usize;
        let b = bump(Layout::from_size_align(64, 64).unwrap()).unwrap() as usize;
        assert_eq!(b % 64, 0);
        assert!(b >= a + 3);
        assert!(bump(Layout::from_size_align(ARENA_BYTES + 1, 1).unwrap()).is_none());
    }
}
