//! perf's profiles unwound with ORC.
//!
//! `perf record --call-graph dwarf` stores, with each sample, the kernel's part of the call
//! chain, the user registers and a copy of the user stack; `perf script` unwinds that copy
//! with DWARF when it prints. [`perf_script`] reads the same `perf.data` (through the
//! `linux-perf-data` crate), follows the process's mappings from its MMAP/COMM/FORK records,
//! unwinds each user stack with the ORC tables of `orc-process`'s [`TableCache`] and
//! `orc-unwind`'s user-space mode, and prints `perf script`'s default text: a header line per
//! sample, then one line per frame (`\t<addr> <sym>+0x<off> (<dso>)`, functions inlined at a
//! user address first, marked `(inlined)`), then an empty line. Programs that read
//! `perf script` (flame-graph collapsers) take it unchanged.
//!
//! Addresses are printed as perf prints them: kernel addresses as they are, user addresses
//! relative to their file (the link-time address), and a return address minus one (perf's
//! DWARF unwinder reports the call, not the return address).

#![deny(unsafe_code)] // but for the file mapping, which says why it is sound
#![warn(missing_docs)]

mod kallsyms;
mod symbols;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use linux_perf_data::linux_perf_event_reader::{EventRecord, SampleRecord};
use linux_perf_data::{PerfFileReader, PerfFileRecord};
use orc_process::{AddressSpace, Mapping, TableCache};
use orc_unwind::{Config, Frame, StackRange, StackSnapshot, Unwinder};

pub use kallsyms::KernelSymbols;
pub use symbols::PerfSymbols;

/// A `perf.data` that cannot be read, or output that cannot be written.
#[derive(Debug)]
pub enum ProfileError {
    /// The file is not a perf.data file orctool can read, or it is cut short.
    BadInput {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Writing the output failed (a closed pipe, a full disk).
    Output(io::Error),
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::BadInput { path, what } => write!(f, "{}: {what}", path.display()),
            ProfileError::Output(e) => write!(f, "writing the output: {e}"),
        }
    }
}

impl std::error::Error for ProfileError {}

/// What to do beyond the default.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// At most this many frames per sample, kernel and user together (perf's default: 127).
    pub max_stack: usize,
    /// Print the functions inlined at each user address (perf does where debug info exists).
    pub inline: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { max_stack: 127, inline: true }
    }
}

/// Counts over one profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Samples printed.
    pub samples: u64,
    /// User frames found by unwinding (the first, from the registers, included).
    pub user_frames: u64,
    /// Kernel frames, from the samples' own call chains.
    pub kernel_frames: u64,
}

/// perf's markers inside a call chain (`enum perf_callchain_context`): every value at or above
/// `PERF_CONTEXT_MAX` is one.
const PERF_CONTEXT_MAX: u64 = (-4095i64) as u64;
const PERF_CONTEXT_KERNEL: u64 = (-128i64) as u64;
/// perf's x86-64 register numbers (`enum perf_event_x86_regs`).
const PERF_REG_BP: u64 = 6;
const PERF_REG_SP: u64 = 7;
const PERF_REG_IP: u64 = 8;

/// One process seen in the profile: its mappings and what was built from them.
#[derive(Default)]
struct Process {
    mappings: Vec<Mapping>,
    /// Built from `mappings` when a sample needs it; dropped when they change.
    space: Option<AddressSpace>,
    /// The printed lines of a user address (runtime address, exact), for this `space`.
    lines: HashMap<(u64, bool), Rc<str>>,
}

impl Process {
    fn changed(&mut self) {
        self.space = None;
        self.lines.clear();
    }

    /// Adds a mapping; the parts of older mappings it covers are gone (a `MAP_FIXED` over a
    /// reservation, as ld.so maps a library's segments).
    fn map(&mut self, new: Mapping) {
        let mut kept = Vec::with_capacity(self.mappings.len() + 2);
        for m in self.mappings.drain(..) {
            if m.end <= new.start || new.end <= m.start {
                kept.push(m);
                continue;
            }
            if m.start < new.start {
                kept.push(Mapping { end: new.start, ..m.clone() });
            }
            if new.end < m.end {
                let cut = new.end - m.start;
                kept.push(Mapping { start: new.end, offset: m.offset.wrapping_add(cut), ..m });
            }
        }
        kept.push(new);
        kept.sort_by_key(|m| m.start);
        self.mappings = kept;
        self.changed();
    }
}

/// Reads `path` (a `perf.data` from `perf record --call-graph dwarf`) and writes every sample
/// as `perf script` prints it to `out`.
pub fn perf_script(path: &Path, out: &mut dyn Write, cache: &TableCache, kernel: &KernelSymbols, options: Options) -> Result<Stats, ProfileError> {
    let bad = |what: String| ProfileError::BadInput { path: path.to_path_buf(), what };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    // Mapped, not read: a profile is mostly stack copies, and the reader copies each record
    // once more anyway. Safety of the mapping: perf.data is not written while it is read
    // (perf writes a new file and renames it).
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| bad(e.to_string()))?;
    let reader = io::Cursor::new(&map[..]);
    let PerfFileReader { mut perf_file, mut record_iter } =
        PerfFileReader::parse_file(reader).map_err(|e| bad(format!("not a perf.data file orctool can read: {e}")))?;
    if let Ok(Some(_)) = perf_file.compression_info() {
        return Err(bad("compressed perf.data (perf record -z) is not supported".to_string()));
    }
    let names: Vec<String> = perf_file
        .event_attributes()
        .iter()
        .map(|a| a.name().map(str::to_string).unwrap_or_else(|| "unknown-event".to_string()))
        .collect();

    let mut processes: HashMap<i32, Process> = HashMap::new();
    let mut comms: HashMap<i32, String> = HashMap::new();
    let mut symbols: HashMap<String, Rc<PerfSymbols>> = HashMap::new();
    let mut stats = Stats::default();
    let mut text = String::with_capacity(4096);
    loop {
        let record = match record_iter.next_record(&mut perf_file) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => return Err(bad(format!("cut short or corrupt after {} samples: {e}", stats.samples))),
        };
        let PerfFileRecord::EventRecord { attr_index, record } = record else { continue };
        let parsed = record.parse().map_err(|e| bad(format!("corrupt {:?} record: {e}", record.record_type)))?;
        match parsed {
            EventRecord::Comm(c) => {
                let name = String::from_utf8_lossy(&c.name.as_slice()).into_owned();
                if c.is_execve {
                    let p = processes.entry(c.pid).or_default();
                    p.mappings.clear();
                    p.changed();
                }
                comms.insert(c.tid, name);
            }
            EventRecord::Fork(f) => {
                if let Some(comm) = comms.get(&f.ptid).cloned() {
                    comms.insert(f.tid, comm);
                }
                if f.pid != f.ppid {
                    let mappings = processes.get(&f.ppid).map(|p| p.mappings.clone()).unwrap_or_default();
                    processes.insert(f.pid, Process { mappings, ..Process::default() });
                }
            }
            EventRecord::Mmap(m) => {
                let path = String::from_utf8_lossy(&m.path.as_slice()).into_owned();
                let mapping = mapping(m.address, m.length, m.page_offset, m.is_executable, path);
                processes.entry(m.pid).or_default().map(mapping);
            }
            EventRecord::Mmap2(m) => {
                let path = String::from_utf8_lossy(&m.path.as_slice()).into_owned();
                let executable = m.protection & 4 != 0; // PROT_EXEC
                let mapping = mapping(m.address, m.length, m.page_offset, executable, path);
                processes.entry(m.pid).or_default().map(mapping);
            }
            EventRecord::Sample(s) => {
                let event = names.get(attr_index).map(String::as_str).unwrap_or("unknown-event");
                text.clear();
                sample(&s, event, &comms, &mut processes, &mut symbols, cache, kernel, options, &mut text, &mut stats);
                out.write_all(text.as_bytes()).map_err(ProfileError::Output)?;
                stats.samples += 1;
            }
            _ => {}
        }
    }
    out.flush().map_err(ProfileError::Output)?;
    Ok(stats)
}

fn mapping(start: u64, len: u64, offset: u64, executable: bool, name: String) -> Mapping {
    // Only absolute paths are files; perf's other names are labels (`[vdso]`, `//anon`).
    let path = name.starts_with('/').then(|| PathBuf::from(&name));
    let label = if path.is_some() { String::new() } else { name };
    Mapping { start, end: start.saturating_add(len), offset, executable, path, label }
}

#[allow(clippy::too_many_arguments)]
fn sample(
    s: &SampleRecord,
    event: &str,
    comms: &HashMap<i32, String>,
    processes: &mut HashMap<i32, Process>,
    symbols: &mut HashMap<String, Rc<PerfSymbols>>,
    cache: &TableCache,
    kernel: &KernelSymbols,
    options: Options,
    text: &mut String,
    stats: &mut Stats,
) {
    use std::fmt::Write as _;
    let pid = s.pid.unwrap_or(-1);
    let tid = s.tid.unwrap_or(-1);
    let comm = comms.get(&tid).map(String::as_str).unwrap_or(":-1");
    let _ = write!(text, "{comm} {tid:5} ");
    if let Some(cpu) = s.cpu {
        let _ = write!(text, "[{cpu:03}] ");
    }
    if let Some(t) = s.timestamp {
        let _ = write!(text, "{:5}.{:06}: ", t / 1_000_000_000, t % 1_000_000_000 / 1000);
    }
    let _ = writeln!(text, "{:10} {event}: ", s.period.unwrap_or(0));

    let mut budget = options.max_stack;
    // The kernel's part: the call chain between PERF_CONTEXT_KERNEL and the next marker.
    if let Some(chain) = &s.callchain {
        let mut in_kernel = false;
        for i in 0..chain.len() {
            let Some(ip) = chain.get(i) else { break };
            if ip >= PERF_CONTEXT_MAX {
                in_kernel = ip == PERF_CONTEXT_KERNEL;
                continue;
            }
            if !in_kernel || budget == 0 {
                continue;
            }
            budget -= 1;
            stats.kernel_frames += 1;
            match kernel.find(ip) {
                Some((name, start, dso)) => {
                    let _ = writeln!(text, "\t{ip:16x} {name}+{:#x} ({dso})", ip - start);
                }
                None => {
                    let _ = writeln!(text, "\t{ip:16x} [unknown] ([kernel.kallsyms])");
                }
            }
        }
    }

    // The user part: unwound from the registers over the stack copy.
    if let (Some(regs), Some((stack, dyn_size))) = (&s.user_regs, &s.user_stack) {
        let (Some(ip), Some(sp), Some(bp)) = (regs.get(PERF_REG_IP), regs.get(PERF_REG_SP), regs.get(PERF_REG_BP)) else {
            text.push('\n');
            return;
        };
        let process = processes.entry(pid).or_default();
        let space = process.space.get_or_insert_with(|| AddressSpace::from_mappings(process.mappings.clone(), cache));
        let bytes = stack.as_slice();
        let len = (*dyn_size as usize).min(bytes.len());
        let copy = StackSnapshot::new(sp, &bytes[..len]);
        let stacks = [copy.range()];
        let mut frames = [Frame::default(); 128];
        let max = budget.min(frames.len());
        let walked = if max == 0 { 0 } else { unwind(space, &stacks, copy, ip, sp, bp, max, &mut frames) };
        stats.user_frames += walked as u64;
        for (i, f) in frames[..walked].iter().enumerate() {
            let exact = i == 0 || f.signal || f.regs.is_some();
            let lines = process
                .lines
                .entry((f.ip, exact))
                .or_insert_with(|| user_lines(space, symbols, f.ip, exact, options.inline).into());
            text.push_str(lines);
        }
    }
    text.push('\n');
}

#[allow(clippy::too_many_arguments)]
fn unwind(space: &AddressSpace, stacks: &[StackRange], mut copy: StackSnapshot, ip: u64, sp: u64, bp: u64, max: usize, frames: &mut [Frame]) -> usize {
    let config = Config { max_frames: max, ..Config::user_space() };
    let unwinder = Unwinder::new(space, stacks).with_config(config);
    let mut state = unwinder.start(ip, sp, bp, true);
    unwinder.walk(&mut state, &mut copy, &mut frames[..max]).frames
}

/// The lines perf prints for one user frame: the functions inlined there (innermost first),
/// then the function itself.
///
/// perf asks binutils' `addr2line` for the chain of functions at the address and prints each
/// under its name, with the file where the name is perf's own symbol and `(inlined)`
/// otherwise; binutils names a function by its DWARF name (so `__GI___libc_read`, where
/// perf's symbol is `read`, prints as `(inlined)`), and code without DWARF function
/// (assembly) by its first alias in symbol-table order.
fn user_lines(space: &AddressSpace, symbols: &mut HashMap<String, Rc<PerfSymbols>>, ip: u64, exact: bool, inline: bool) -> String {
    use std::fmt::Write as _;
    // perf's DWARF unwinder reports a return address as the call (return address - 1).
    let at = if exact { ip } else { ip.wrapping_sub(1) };
    let mut out = String::new();
    let Some(m) = space.module_for(at) else {
        let _ = writeln!(out, "\t{at:16x} [unknown] ([unknown])");
        return out;
    };
    let link = m.link_address(at);
    let dso = &m.name;
    let syms = symbols
        .entry(m.name.clone())
        .or_insert_with(|| {
            Rc::new(match &m.table {
                Some(t) => PerfSymbols::load(t.data(), t.build_id_hex().as_deref()),
                None => PerfSymbols::default(),
            })
        })
        .clone();
    let function = syms.find(link);
    let off = function.map_or(link, |(_, start)| link.wrapping_sub(start));
    if inline {
        if let Some(d) = m.table.as_ref().and_then(|t| t.debug_info_at(link)) {
            let outer = match (&d.function, function) {
                (Some(f), _) => Some(f.clone()),
                (None, Some((_, start))) if d.file.is_some() => syms.first_alias(start).map(str::to_string),
                (None, _) => None,
            };
            if let Some(outer) = outer {
                for name in d.inlined.iter().chain(std::iter::once(&outer)) {
                    if function.is_some_and(|(f, _)| f == name) {
                        let _ = writeln!(out, "\t{link:16x} {name}+{off:#x} ({dso})");
                    } else {
                        let _ = writeln!(out, "\t{link:16x} {name}+{off:#x} (inlined)");
                    }
                }
                return out;
            }
        }
    }
    match function {
        Some((name, _)) => {
            let _ = writeln!(out, "\t{link:16x} {name}+{off:#x} ({dso})");
        }
        None => {
            let _ = writeln!(out, "\t{link:16x} [unknown] ({dso})");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(start: u64, end: u64, offset: u64, name: &str) -> Mapping {
        Mapping { start, end, offset, executable: true, path: Some(PathBuf::from(name)), label: String::new() }
    }

    #[test]
    fn a_new_mapping_replaces_what_it_covers() {
        let mut p = Process::default();
        p.map(m(0x1000, 0x9000, 0, "/lib/a.so"));
        p.map(m(0x3000, 0x5000, 0x10000, "/lib/b.so"));
        let got: Vec<_> = p.mappings.iter().map(|x| (x.start, x.end, x.offset)).collect();
        assert_eq!(got, [(0x1000, 0x3000, 0), (0x3000, 0x5000, 0x10000), (0x5000, 0x9000, 0x4000)]);
        p.map(m(0, 0x10000, 0, "/lib/c.so"));
        assert_eq!(p.mappings.len(), 1);
    }

    #[test]
    fn kernel_symbols_from_kallsyms_text() {
        let kernel = KernelSymbols::default();
        assert_eq!(kernel.find(0xffff_ffff_8100_0000), None);
        let k = KernelSymbols::parse("ffffffff81000000 T _stext\nffffffff81000100 t foo [mod]\n0000000000000000 A zero\n");
        assert_eq!(k.find(0xffff_ffff_8100_0010), Some(("_stext", 0xffff_ffff_8100_0000, "[kernel.kallsyms]")));
        assert_eq!(k.find(0xffff_ffff_8100_0180), Some(("foo", 0xffff_ffff_8100_0100, "[mod]")));
    }
}
