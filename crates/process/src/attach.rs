//! Stopping every thread of a live process with ptrace, and letting them all go again.
//!
//! `PTRACE_SEIZE` + `PTRACE_INTERRUPT` stops a thread without sending it a signal (unlike
//! `PTRACE_ATTACH`'s SIGSTOP), so the process cannot observe the pause except as time. A
//! thread that was about to receive a signal when it stopped gets it back at detach.

use std::collections::BTreeSet;

use nix::errno::Errno;
use nix::libc;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::ProcessError;

/// One stopped thread.
#[derive(Debug)]
pub struct StoppedThread {
    /// Thread id.
    pub tid: i32,
    /// A signal the thread was stopped on its way to receiving; given back at detach.
    pending: Option<Signal>,
}

/// Every thread of a process, stopped under ptrace. Dropping it detaches them all (also on
/// error paths and panics), so the process continues.
#[derive(Debug)]
pub struct StoppedProcess {
    pid: i32,
    threads: Vec<StoppedThread>,
}

impl StoppedProcess {
    /// Seizes and stops every thread of `pid`. Threads created meanwhile are found by listing
    /// /proc/PID/task again until no new one appears (a stopped thread creates none). On
    /// failure every thread seized so far is let go again, stopped or not: a failed attach
    /// leaves the process as it found it.
    pub fn attach(pid: i32) -> Result<StoppedProcess, ProcessError> {
        let mut stopped = StoppedProcess { pid, threads: Vec::new() };
        // Seized but not yet stopped and recorded: released by `release` on an error.
        let mut in_flight: Vec<i32> = Vec::new();
        let result = stopped.stop_all(&mut in_flight);
        if let Err(e) = result {
            release(pid, &in_flight);
            // `stopped` detaches the threads it holds when dropped.
            return Err(e);
        }
        if stopped.threads.is_empty() {
            return Err(ProcessError::process(pid, "no thread could be stopped"));
        }
        stopped.threads.sort_by_key(|t| t.tid);
        Ok(stopped)
    }

    fn stop_all(&mut self, in_flight: &mut Vec<i32>) -> Result<(), ProcessError> {
        let pid = self.pid;
        let mut seen = BTreeSet::new();
        loop {
            let new: Vec<i32> = list_threads(pid)?.into_iter().filter(|t| !seen.contains(t)).collect();
            if new.is_empty() {
                return Ok(());
            }
            for &tid in &new {
                seen.insert(tid);
                match ptrace::seize(Pid::from_raw(tid), ptrace::Options::empty()) {
                    Ok(()) => in_flight.push(tid),
                    // Exited since it was listed.
                    Err(Errno::ESRCH) => {}
                    // A thread that has exited but not been reaped (the main thread after
                    // `pthread_exit` while others run) refuses ptrace: it has no stack left.
                    Err(Errno::EPERM) if is_zombie(pid, tid) => {}
                    Err(e) => return Err(ProcessError::process(tid, format!("cannot attach (PTRACE_SEIZE): {}", refusal(pid, e)))),
                }
            }
            // Interrupt them all before waiting, so they stop in parallel.
            for &tid in in_flight.iter() {
                match ptrace::interrupt(Pid::from_raw(tid)) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(ProcessError::process(tid, format!("cannot stop (PTRACE_INTERRUPT): {}", e.desc()))),
                }
            }
            while let Some(&tid) = in_flight.first() {
                let state = wait_stopped(pid, tid)?;
                in_flight.remove(0);
                if let Some(pending) = state {
                    self.threads.push(StoppedThread { tid, pending });
                }
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The stopped threads' ids, in order.
    pub fn tids(&self) -> impl Iterator<Item = i32> + '_ {
        self.threads.iter().map(|t| t.tid)
    }

    /// The general registers of stopped thread `tid` (`PTRACE_GETREGS`).
    pub fn regs(&self, tid: i32) -> Result<libc::user_regs_struct, ProcessError> {
        ptrace::getregs(Pid::from_raw(tid))
            .map_err(|e| ProcessError::process(tid, format!("cannot read registers: {}", e.desc())))
    }

    /// Lets every thread go (what dropping does), reporting the first failure.
    pub fn detach(mut self) -> Result<(), ProcessError> {
        self.detach_all()
    }

    fn detach_all(&mut self) -> Result<(), ProcessError> {
        let mut first = None;
        for t in self.threads.drain(..) {
            match ptrace::detach(Pid::from_raw(t.tid), t.pending) {
                Ok(()) => {}
                // Killed meanwhile: a traced thread that dies stays a zombie until its tracer
                // waits for it, and its process cannot be reaped by its parent before that.
                // Not the leader: a wait for it could reap the whole process for good (when we
                // are its parent too), and its exit status is the parent's to collect; it is
                // released when its threads are and this tracer goes away.
                Err(Errno::ESRCH) if t.tid != self.pid => reap_traced(t.tid),
                Err(Errno::ESRCH) => {}
                Err(e) => {
                    first.get_or_insert_with(|| ProcessError::process(t.tid, format!("cannot detach: {}", e.desc())));
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for StoppedProcess {
    fn drop(&mut self) {
        let _ = self.detach_all();
    }
}

/// Waits for a traced thread that a detach found no longer stopped (killed while we held it):
/// it dies, and this tracer's wait releases it. A stop it makes first (a signal before the kill
/// lands) is let go of like any other.
fn reap_traced(tid: i32) {
    loop {
        match waitpid(Pid::from_raw(tid), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => return,
            Ok(WaitStatus::Stopped(_, sig)) => {
                if ptrace::detach(Pid::from_raw(tid), Some(sig)).is_ok() {
                    return;
                }
            }
            Ok(WaitStatus::PtraceEvent(..)) => {
                if ptrace::detach(Pid::from_raw(tid), None).is_ok() {
                    return;
                }
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Lets go of threads seized by a failed attach: each is interrupted (if it was not yet),
/// waited for, and detached; one that exited meanwhile needs nothing.
fn release(pid: i32, tids: &[i32]) {
    for &tid in tids {
        let _ = ptrace::interrupt(Pid::from_raw(tid));
        if let Ok(Some(pending)) = wait_stopped(pid, tid) {
            let _ = ptrace::detach(Pid::from_raw(tid), pending);
        }
    }
}

/// Why ptrace refused, with what the system says about it: the Yama policy
/// (`kernel.yama.ptrace_scope`) or another tracer already attached.
fn refusal(pid: i32, e: Errno) -> String {
    if e != Errno::EPERM {
        return e.desc().to_string();
    }
    let tracer = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("TracerPid:").map(|v| v.trim().to_string())))
        .filter(|t| t != "0");
    if let Some(t) = tracer {
        // TracerPid is the tracing thread; name its process.
        let status = std::fs::read_to_string(format!("/proc/{t}/status")).unwrap_or_default();
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
        let process = field("Tgid:").unwrap_or(t);
        let name = std::fs::read_to_string(format!("/proc/{process}/comm")).map(|s| s.trim().to_string()).unwrap_or_default();
        return format!("already traced by process {process} ({name}); a process has one tracer at a time");
    }
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").map(|s| s.trim().to_string()) {
        Ok(scope) if scope != "0" => format!(
            "not permitted: kernel.yama.ptrace_scope is {scope} (1: only descendants, 2: only with CAP_SYS_PTRACE, 3: never)"
        ),
        _ => "not permitted (another user's process, or not dumpable)".to_string(),
    }
}

/// Waits until seized thread `tid` stops. `Ok(Some(pending))` once stopped (with the signal
/// it was about to receive, if that is what stopped it); `Ok(None)` if it exited instead.
fn wait_stopped(pid: i32, tid: i32) -> Result<Option<Option<Signal>>, ProcessError> {
    loop {
        // The leader's exit is looked at, not collected: when this process is also its parent
        // (a test, a library user's own child), collecting it would take the exit status and
        // the process away from its parent. Other threads' exits are collected: a traced thread
        // that died stays until its tracer waits for it, and holds up its process's reaping.
        if tid == pid {
            let peek = WaitPidFlag::WEXITED | WaitPidFlag::WSTOPPED | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL;
            match nix::sys::wait::waitid(nix::sys::wait::Id::Pid(Pid::from_raw(tid)), peek) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(Errno::ECHILD) => return Ok(None),
                Err(Errno::EINTR) => continue,
                _ => {}
            }
        }
        match waitpid(Pid::from_raw(tid), Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::PtraceEvent(..)) => return Ok(Some(None)),
            Ok(WaitStatus::Stopped(_, sig)) => return Ok(Some(Some(sig))),
            Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) => return Ok(None),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return Ok(None),
            Err(e) => return Err(ProcessError::process(tid, format!("waitpid: {}", e.desc()))),
        }
    }
}

/// The thread ids of `pid`, from /proc/PID/task.
pub fn list_threads(pid: i32) -> Result<Vec<i32>, ProcessError> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ProcessError::process(pid, "no such process"),
        _ => ProcessError::process(pid, format!("{dir}: {e}")),
    })?;
    let mut tids: Vec<i32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    Ok(tids)
}

/// The name of thread `tid` of `pid` (/proc/PID/task/TID/comm), or empty.
pub fn thread_name(pid: i32, tid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default()
}

/// The thread's state in `/proc/PID/task/TID/stat` is Z (exited, not reaped) or X (dead).
fn is_zombie(pid: i32, tid: i32) -> bool {
    // A thread whose exit ptrace saw (EPERM for an exit state) may be reaped by the time its
    // stat is read: gone is exited too (live_faults' exiting threads hit this under load).
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) {
        Ok(stat) => stat,
        Err(e) => return e.kind() == std::io::ErrorKind::NotFound,
    };
    // The state follows the command name, which is in parentheses and may hold anything.
    stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|st| st == "Z" || st == "X")
}
