//! Reading another process's memory for the unwinder.

use std::io::IoSliceMut;

use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;
use orc_unwind::Memory;

/// How much is read at once when a word is not in the buffer: a walk reads many neighbouring
/// words going up the stack, so one read usually serves a whole trace.
const READ_AHEAD: u64 = 64 * 1024;

/// A live process's memory, read with `process_vm_readv`, through a read-ahead buffer.
///
/// The buffer holds what the process had when it was read: call [`ProcessMemory::invalidate`]
/// whenever the process may have run since.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: Pid,
    base: u64,
    buf: Vec<u8>,
    /// `process_vm_readv` calls made, for tests and measurements.
    pub reads: u64,
}

impl ProcessMemory {
    /// The memory of process (or thread) `pid`.
    pub fn new(pid: i32) -> ProcessMemory {
        ProcessMemory { pid: Pid::from_raw(pid), base: 0, buf: Vec::new(), reads: 0 }
    }

    /// Forgets everything read: the process has run.
    pub fn invalidate(&mut self) {
        self.buf.clear();
    }

    /// Reads `[start, end)` into the buffer in one call (as much of it as is mapped), so that
    /// a walk over that range needs no further reads. Returns the bytes read.
    pub fn prefetch(&mut self, start: u64, end: u64) -> usize {
        let len = end.saturating_sub(start);
        self.fill(start, len)
    }

    fn fill(&mut self, start: u64, len: u64) -> usize {
        let Ok(len) = usize::try_from(len) else { return 0 };
        self.buf.resize(len, 0);
        self.base = start;
        self.reads += 1;
        let remote = [RemoteIoVec { base: start as usize, len }];
        let got = process_vm_readv(self.pid, &mut [IoSliceMut::new(&mut self.buf)], &remote).unwrap_or(0);
        self.buf.truncate(got);
        got
    }

    /// Copies memory at `addr` into `out`; false if any of it is unreadable. Not buffered.
    pub fn read_exact(&mut self, addr: u64, out: &mut [u8]) -> bool {
        let remote = [RemoteIoVec { base: addr as usize, len: out.len() }];
        self.reads += 1;
        matches!(process_vm_readv(self.pid, &mut [IoSliceMut::new(out)], &remote), Ok(n) if n == remote[0].len)
    }

    #[inline]
    fn buffered(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let bytes = self.buf.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl Memory for ProcessMemory {
    #[inline]
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        if let Some(w) = self.buffered(addr) {
            return Some(w);
        }
        // From the word's page upwards: stacks are walked towards higher addresses. A read
        // that runs into an unmapped page stops there (a partial read), which is fine.
        let start = addr & !0xfff;
        self.fill(start, READ_AHEAD);
        self.buffered(addr)
    }
}
