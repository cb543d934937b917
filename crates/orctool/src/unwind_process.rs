//! `orctool unwind --pid PID` and `--core FILE`: every thread of a user-space process, walked
//! with the ORC tables of its mapped files and printed symbolized.

use std::path::Path;

use orc_process::{
    describe_end, symbolize_with, thread_name, unwind_raw, AddressSpace, ProcessMemory, RawTrace, Regs, Source, StoppedProcess,
    TableCache, ThreadTrace,
};
use serde::Serialize;

use super::UnwindArgs;
use crate::input::FileError;

/// How much of a stack is read in the first (usually only) read: from the stack pointer up.
const STACK_PREFETCH: u64 = 512 * 1024;

/// One thread's walk, before symbolization.
struct RawThread {
    tid: i32,
    name: String,
    trace: RawTrace,
}

fn cache(args: &UnwindArgs) -> TableCache {
    if args.no_cache {
        TableCache::in_memory(Source::Combined)
    } else {
        match args.cache_dir.clone() {
            Some(dir) => TableCache::new(dir, Source::Combined),
            None => TableCache::with_default_dir(Source::Combined),
        }
    }
}

fn pid_error(pid: i32, e: impl std::fmt::Display) -> FileError {
    FileError::new(Path::new(&format!("pid {pid}")), e)
}

/// `--pid`: stop every thread, walk each, let them go, then symbolize and print.
pub fn run_pid(args: &UnwindArgs, pid: i32) -> Result<i32, FileError> {
    let cache = cache(args);
    let (space, threads) = {
        // Dropping `stopped` detaches every thread, on every path out of this block.
        let stopped = StoppedProcess::attach(pid).map_err(|e| pid_error(pid, strip_pid(&e.to_string())))?;
        let space = AddressSpace::from_pid(pid, &cache).map_err(|e| pid_error(pid, strip_pid(&e.to_string())))?;
        let mut threads = Vec::new();
        for tid in stopped.tids() {
            let regs = Regs::from(&stopped.regs(tid).map_err(|e| pid_error(pid, e))?);
            // Memory is read through the thread itself: all threads share one address space,
            // but a leader that has exited (`pthread_exit` in main) has none to read through.
            let mut mem = ProcessMemory::new(tid);
            let trace = walk(&space, regs, &mut mem, args.max_frames);
            threads.push(RawThread { tid, name: thread_name(pid, tid), trace });
        }
        stopped.detach().map_err(|e| pid_error(pid, e))?;
        (space, threads)
    };
    print(args, pid, &space, &threads)
}

/// `Process {pid}: ...` errors already name the process; the CLI line names it once.
fn strip_pid(s: &str) -> String {
    match s.split_once(": ") {
        Some((head, rest)) if head.starts_with("process ") => rest.to_string(),
        _ => s.to_string(),
    }
}

/// Walks one thread whose stack is the mapping holding its stack pointer, read in one go.
fn walk<M: orc_unwind::Memory + Prefetch>(space: &AddressSpace, regs: Regs, mem: &mut M, max_frames: usize) -> RawTrace {
    let stack = space.stack_range(regs.sp).unwrap_or(orc_unwind::StackRange::new(regs.sp, regs.sp));
    mem.prefetch(regs.sp.max(stack.start), stack.end.min(regs.sp.saturating_add(STACK_PREFETCH)));
    unwind_raw(space, regs, mem, stack, max_frames)
}

/// Memory that can read a range ahead of the walk.
pub trait Prefetch {
    /// Reads `[start, end)` ahead, if that helps.
    fn prefetch(&mut self, start: u64, end: u64);
}

impl Prefetch for ProcessMemory {
    fn prefetch(&mut self, start: u64, end: u64) {
        ProcessMemory::prefetch(self, start, end);
    }
}

/// `--core`: the threads and memory of a core dump.
pub fn run_core(args: &UnwindArgs, core: &Path) -> Result<i32, FileError> {
    let cache = cache(args);
    let dump = orc_process::CoreDump::open(core).map_err(|e| FileError::new(core, strip_path(&e.to_string(), core)))?;
    let space = dump.address_space(&cache);
    let mut mem = dump.memory();
    let threads: Vec<RawThread> = dump
        .threads()
        .iter()
        .map(|t| RawThread { tid: t.tid, name: t.name.clone(), trace: walk(&space, t.regs, &mut mem, args.max_frames) })
        .collect();
    print(args, dump.pid(), &space, &threads)
}

/// Errors about the core file itself already start with its path.
fn strip_path(s: &str, path: &Path) -> String {
    let prefix = format!("{}: ", path.display());
    s.strip_prefix(&prefix).unwrap_or(s).to_string()
}

impl Prefetch for orc_process::CoreMemory<'_> {
    fn prefetch(&mut self, _start: u64, _end: u64) {}
}

#[derive(Serialize)]
struct JsonFrame {
    ip: String,
    sp: String,
    exact: bool,
    module: Option<String>,
    function: Option<String>,
    /// Functions inlined at this address, innermost first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    inlined: Vec<String>,
    offset: String,
    file: Option<String>,
    line: Option<u32>,
}

#[derive(Serialize)]
struct JsonThread {
    tid: i32,
    name: String,
    frames: Vec<JsonFrame>,
    end: String,
    reliable: bool,
    unreliable: Option<String>,
}

#[derive(Serialize)]
struct JsonProcess {
    pid: i32,
    threads: Vec<JsonThread>,
    /// Executable mappings without table, and why.
    no_table: Vec<JsonNoTable>,
}

#[derive(Serialize)]
struct JsonNoTable {
    module: String,
    start: String,
    why: String,
}

fn print(args: &UnwindArgs, pid: i32, space: &AddressSpace, threads: &[RawThread]) -> Result<i32, FileError> {
    let traces: Vec<ThreadTrace> = threads.iter().map(|t| symbolize_with(space, &t.trace, !args.no_lines)).collect();
    let failed = traces.iter().any(|t| matches!(t.end, orc_unwind::End::Error(_)));
    let no_table: Vec<JsonNoTable> = space
        .modules()
        .iter()
        .filter_map(|m| {
            // Only tables a walk needed were loaded; a failure among them is worth saying.
            let why = match &m.table {
                None => m.problem.clone().unwrap_or_default(),
                Some(t) => t.orc_failed()?.to_string(),
            };
            Some(JsonNoTable { module: m.name.clone(), start: format!("{:#x}", m.start), why })
        })
        .collect();
    if args.json {
        let doc = JsonProcess {
            pid,
            threads: threads
                .iter()
                .zip(&traces)
                .map(|(t, tr)| JsonThread {
                    tid: t.tid,
                    name: t.name.clone(),
                    frames: tr
                        .frames
                        .iter()
                        .map(|f| JsonFrame {
                            ip: format!("{:#x}", f.ip),
                            sp: format!("{:#x}", f.sp),
                            exact: f.signal,
                            module: f.symbolized.module.clone(),
                            function: f.symbolized.function.clone(),
                            inlined: f.symbolized.inlined.clone(),
                            offset: format!("{:#x}", f.symbolized.offset),
                            file: f.symbolized.file.clone(),
                            line: f.symbolized.line,
                        })
                        .collect(),
                    end: describe_end(&tr.end),
                    reliable: tr.reliable,
                    unreliable: tr.unreliable.map(|u| u.to_string()),
                })
                .collect(),
            no_table,
        };
        crate::unwind::emit(&format!("{}\n", serde_json::to_string(&doc).expect("plain data serializes")));
    } else {
        let mut out = String::new();
        for (t, tr) in threads.iter().zip(&traces) {
            out.push_str(&format!("Thread {} ({}):\n", t.tid, t.name));
            for (i, f) in tr.frames.iter().enumerate() {
                let s = &f.symbolized;
                let func = match &s.function {
                    Some(name) => format!("{name}+{:#x}", s.offset),
                    None => "??".to_string(),
                };
                let line = match (&s.file, s.line) {
                    (Some(file), Some(line)) => format!(" ({}:{line})", short(file)),
                    _ => String::new(),
                };
                let inlined = if s.inlined.is_empty() { String::new() } else { format!(" [inlined: {}]", s.inlined.join(", ")) };
                let module = s.module.as_deref().map(|m| format!(" [{m}]")).unwrap_or_default();
                out.push_str(&format!("#{i:<3} {:#018x} {func}{inlined}{line}{module}{}\n", f.ip, if f.signal && i > 0 { " <signal>" } else { "" }));
            }
            out.push_str(&format!("end: {}; {}\n\n", describe_end(&tr.end), match &tr.unreliable {
                None => "reliable".to_string(),
                Some(u) => format!("unreliable ({u})"),
            }));
        }
        crate::unwind::emit(&out);
    }
    Ok(if failed { 1 } else { 0 })
}

/// A source path as printed: the file name only when it is long.
fn short(file: &str) -> &str {
    if file.len() > 40 {
        file.rsplit('/').next().unwrap_or(file)
    } else {
        file
    }
}
