//! The few ptrace and wait calls the tracer makes, over raw signal numbers.
//!
//! nix's `Signal` has no real-time signals, and its `waitpid` turns a stop for one into an
//! error after the stop has been consumed, which would leave that thread stopped forever. So
//! the hot loop uses `libc` (through nix's re-export) directly; each `unsafe` block is one
//! system call on plain values or on a buffer owned by the caller.

use std::io;
use std::io::IoSliceMut;

use nix::libc;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

/// Registers of a stopped thread (the kernel's `user_regs_struct`).
pub type Regs = libc::user_regs_struct;

/// What `waitpid` reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wait {
    /// The thread stopped for signal `sig`; `event` is the ptrace event (`status >> 16`), 0
    /// for a plain signal stop.
    Stopped { tid: i32, sig: i32, event: i32 },
    /// The thread exited with this status.
    Exited { tid: i32, code: i32 },
    /// The thread was killed by this signal.
    Killed { tid: i32, sig: i32 },
}

/// Waits for any traced thread (`__WALL`: clone children too); `None` once none is left.
pub fn wait_any() -> io::Result<Option<Wait>> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes one int into `status`, which we own.
        let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if tid < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // No child left to wait for: the traced program and all its threads are gone.
            if e.raw_os_error() == Some(libc::ECHILD) {
                return Ok(None);
            }
            return Err(e);
        }
        return Ok(Some(decode_status(tid, status)));
    }
}

/// Waits for one thread.
pub fn wait_for(tid: i32) -> io::Result<Wait> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: as in `wait_any`.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(decode_status(r, status));
    }
}

fn decode_status(tid: i32, status: i32) -> Wait {
    if libc::WIFEXITED(status) {
        Wait::Exited { tid, code: libc::WEXITSTATUS(status) }
    } else if libc::WIFSIGNALED(status) {
        Wait::Killed { tid, sig: libc::WTERMSIG(status) }
    } else {
        Wait::Stopped { tid, sig: libc::WSTOPSIG(status), event: (status >> 16) & 0xff }
    }
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Executes one instruction of `tid`, delivering `sig` first if it is not 0.
#[inline]
pub fn single_step(tid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: PTRACE_SINGLESTEP takes no pointers; `data` is the signal number.
    check(unsafe { libc::ptrace(libc::PTRACE_SINGLESTEP, tid, 0usize, sig as usize) })
}

/// The registers of stopped thread `tid`, into `regs`.
#[inline]
pub fn get_regs(tid: i32, regs: &mut Regs) -> io::Result<()> {
    // SAFETY: PTRACE_GETREGS writes one `user_regs_struct` into `regs`, which we own.
    check(unsafe { libc::ptrace(libc::PTRACE_GETREGS, tid, 0usize, regs as *mut Regs) })
}

/// Sets the ptrace options of `tid`.
pub fn set_options(tid: i32, options: i32) -> io::Result<()> {
    // SAFETY: PTRACE_SETOPTIONS takes the options in `data`, no pointer.
    check(unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, tid, 0usize, options as usize) })
}

/// True when the stop of `tid` has signal information, i.e. it is a signal-delivery stop and
/// not a group stop (`PTRACE_GETSIGINFO` fails with EINVAL for those).
pub fn has_siginfo(tid: i32) -> bool {
    // SAFETY: PTRACE_GETSIGINFO writes one `siginfo_t` into `info`, which we own.
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, tid, 0usize, info.as_mut_ptr()) >= 0 }
}

/// Reads as much of `[addr, addr + buf.len())` of process `pid` as is mapped, in up to two
/// pieces split at a page boundary (process_vm_readv stops at the first piece it cannot
/// read, so the mapped part before an unmapped page still arrives). Returns the bytes read.
pub fn read_memory(pid: i32, addr: u64, buf: &mut [u8]) -> usize {
    let Ok(base) = usize::try_from(addr) else { return 0 };
    let len = buf.len();
    let to_page_end = 4096 - (base & 4095);
    if len <= to_page_end {
        let remote = [RemoteIoVec { base, len }];
        return process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(buf)], &remote).unwrap_or(0);
    }
    let Some(second) = base.checked_add(to_page_end) else { return 0 };
    let (a, b) = buf.split_at_mut(to_page_end);
    let remote = [RemoteIoVec { base, len: to_page_end }, RemoteIoVec { base: second, len: len - to_page_end }];
    process_vm_readv(Pid::from_raw(pid), &mut [IoSliceMut::new(a), IoSliceMut::new(b)], &remote).unwrap_or(0)
}

/// Sends `sig` to thread `tid` of process `pid`.
pub fn kill_thread(pid: i32, tid: i32, sig: i32) {
    // SAFETY: tgkill takes three integers.
    unsafe {
        libc::syscall(libc::SYS_tgkill, pid, tid, sig);
    }
}
