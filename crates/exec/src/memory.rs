//! The traced thread's stack memory for the unwinder, read ahead in blocks: one
//! `process_vm_readv` per checked step usually serves the whole walk.

use orc_unwind::{Memory, StackRange};

use crate::sys;

/// Bytes read at rsp when a walk starts: most walks need no more (fewer pages to pin).
const FIRST_BLOCK: u64 = 2048;
/// Bytes read at once when a walk goes past what was read.
const BLOCK: u64 = 8192;

/// Where the thread's own registers are shown to the unwinder, as a `struct sigcontext`:
/// a non-canonical address, which no stack of a user-space process can have.
pub const REGS_ADDR: u64 = 0xdead_0000_0000_0000;
/// Its size.
const REGS_SIZE: u64 = orc_unwind::sigcontext::SIZE;

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
    /// The current registers as a `struct sigcontext` (at [`REGS_ADDR`]).
    regs: [u8; REGS_SIZE as usize],
    /// `process_vm_readv` calls made.
    pub reads: u64,
}

impl ReadAhead {
    /// Memory of process `pid`.
    pub fn new(pid: i32) -> Self {
        ReadAhead { pid, buf: vec![0; BLOCK as usize], base: 0, filled: 0, stacks: Vec::new(), regs: [0; REGS_SIZE as usize], reads: 0 }
    }

    /// Starts a new stop: forgets what was read, sets the stacks and reads the block at `sp`.
    pub fn begin(&mut self, sp: u64, stacks: &[StackRange]) {
        self.stacks.clear();
        self.stacks.extend_from_slice(stacks);
        self.filled = 0;
        self.fill(sp, FIRST_BLOCK);
    }

    /// Shows `regs` to the unwinder as a `struct sigcontext` at [`REGS_ADDR`] (in the range
    /// [`regs_range`]), so that a walk can start from all registers: the first frame may
    /// need one that is not rsp or rbp (the DRAP register of a prologue).
    pub fn set_regs(&mut self, regs: &crate::sys::Regs) {
        // struct sigcontext: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip.
        let words = [
            regs.r8, regs.r9, regs.r10, regs.r11, regs.r12, regs.r13, regs.r14, regs.r15, regs.rdi, regs.rsi, regs.rbp,
            regs.rbx, regs.rdx, regs.rax, regs.rcx, regs.rsp, regs.rip,
        ];
        for (slot, w) in self.regs.chunks_exact_mut(8).zip(words) {
            slot.copy_from_slice(&w.to_le_bytes());
        }
    }

    fn fill(&mut self, addr: u64, block: u64) {
        let start = addr & !7;
        let Some(stack) = self.stacks.iter().find(|s| s.contains(start, 8)) else {
            self.filled = 0;
            return;
        };
        let len = (stack.end - start).min(block) as usize;
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
        if let Some(off) = addr.checked_sub(REGS_ADDR).filter(|&o| o < REGS_SIZE) {
            let b = self.regs.get(off as usize..off as usize + 8)?;
            return Some(u64::from_le_bytes(b.try_into().ok()?));
        }
        self.fill(addr, BLOCK);
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

/// The range holding the registers block.
pub const fn regs_range() -> StackRange {
    StackRange::new(REGS_ADDR, REGS_ADDR + REGS_SIZE)
}

impl orc_sframe::unwind::Memory for ReadAhead {
    #[inline]
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self.word(addr)
    }
}
