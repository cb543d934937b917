//! The traced thread's stack memory for the unwinder, read ahead in blocks: one
//! `process_vm_readv` per checked step usually serves the whole walk.

use orc_unwind::{Memory, StackRange};

use crate::sys;

/// Bytes read at once: the first block starts at rsp.
const BLOCK: u64 = 8192;

/// Stack memory of a stopped process, valid for one stop (the buffer is reused).
pub struct ReadAhead {
    pid: i32,
    buf: Vec<u8>,
    /// Address of `buf[0]`.
    base: u64,
    /// Bytes of `buf` that hold memory.
    filled: usize,
    /// The stacks of the current walk (reads are clamped to them).
    stacks: Vec<StackRange>,
    /// `process_vm_readv` calls made.
    pub reads: u64,
}

impl ReadAhead {
    /// Memory of process `pid`.
    pub fn new(pid: i32) -> Self {
        ReadAhead { pid, buf: vec![0; BLOCK as usize], base: 0, filled: 0, stacks: Vec::new(), reads: 0 }
    }

    /// Starts a new stop: forgets what was read, sets the stacks and reads the block at `sp`.
    pub fn begin(&mut self, sp: u64, stacks: &[StackRange]) {
        self.stacks.clear();
        self.stacks.extend_from_slice(stacks);
        self.filled = 0;
        self.fill(sp);
    }

    fn fill(&mut self, addr: u64) {
        let start = addr & !7;
        let Some(stack) = self.stacks.iter().find(|s| s.contains(start, 8)) else {
            self.filled = 0;
            return;
        };
        let len = (stack.end - start).min(BLOCK) as usize;
        self.base = start;
        self.reads += 1;
        self.filled = sys::read_memory(self.pid, start, &mut self.buf[..len]);
    }

    #[inline]
    fn cached(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let bytes = self.buf.get(off..off.checked_add(8)?)?;
        if off + 8 > self.filled {
            return None;
        }
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    /// The word at `addr` (read on demand if outside what was read).
    pub fn word(&mut self, addr: u64) -> Option<u64> {
        if let Some(w) = self.cached(addr) {
            return Some(w);
        }
        self.fill(addr);
        self.cached(addr)
    }
}

impl Memory for ReadAhead {
    #[inline]
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self.word(addr)
    }
}

/// Reads one word of process `pid` anywhere (not only on a stack).
pub fn read_word(pid: i32, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    (sys::read_memory(pid, addr, &mut b) == 8).then(|| u64::from_le_bytes(b))
}
