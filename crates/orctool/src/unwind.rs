//! `orctool unwind`: walk a kernel stack snapshot with the ORC tables of vmlinux and modules,
//! and print symbolized frames.
//!
//! The snapshot is one JSON object (docs/unwinder.md):
//!
//! ```json
//! { "regs": { "rip": "0x…", "rsp": "0x…", "rbp": "0x…" }, "ip_is_exact": true,
//!   "pt_regs": null,
//!   "stacks": [ { "name": "task", "base": "0x…", "bytes": "<hex, lowest address first>" } ],
//!   "kernel": { "version": "6.12" } }
//! ```
//!
//! Numbers are `0x` hex strings (plain JSON numbers are accepted too).
//!
//! With `--pid PID` or `--core FILE` it unwinds a user-space process instead (every thread,
//! see `unwind_process.rs`); with `--vmcore FILE --vmlinux F`, every task of a kernel crash dump
//! (`unwind_vmcore.rs`).

#[path = "unwind_process.rs"]
mod process;
#[path = "unwind_vmcore.rs"]
mod vmcore;
/// Opening a dump and its image, shared with `verify-patching --vmcore`.
pub(crate) mod vmcore_input {
    pub(crate) use super::vmcore::{error, open};
}

use std::path::{Path, PathBuf};

use orc_elf::orc::{read_orc_table, OrcAddress};
use orc_elf::{ElfFile, FileKind, SymbolKind};
use orc_format::Layout;
use orc_unwind::{Config, End, Frame, IndexKind, ModuleTables, OwnedTable, StackSnapshot, Snapshots, Unwinder};
use serde::Serialize;
use serde_json::Value;

use crate::input::{read_input, FileError};

// Options of `orctool unwind`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("target").args(["snapshot", "pid", "core", "vmcore"]).required(true).multiple(false))]
pub struct UnwindArgs {
    /// The register and stack snapshot to unwind (JSON, see docs/unwinder.md).
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Unwind every thread of this live process (ptrace: the threads are stopped, read and
    /// let go).
    #[arg(long)]
    pub pid: Option<i32>,
    /// Unwind every thread of this core dump (threads from NT_PRSTATUS, files from NT_FILE).
    #[arg(long)]
    pub core: Option<PathBuf>,
    /// Unwind every task of this kernel crash dump (an ELF vmcore: kdump's, or QEMU's
    /// dump-guest-memory with -device vmcoreinfo); needs --vmlinux, the -dbg image.
    #[arg(long)]
    pub vmcore: Option<PathBuf>,
    /// Where the ORC tables of user-space files are cached (default: $ORCTOOL_CACHE, else
    /// $XDG_CACHE_HOME/orctool/orc, else ~/.cache/orctool/orc).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// With --pid/--core: names from the symbol tables only, no source lines (DWARF is not
    /// read).
    #[arg(long)]
    pub no_lines: bool,
    /// Generate every table afresh and store none.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// A linked kernel (or any linked ELF with ORC sections): absolute addresses.
    #[arg(long)]
    pub vmlinux: Option<PathBuf>,
    /// A module and where its sections were loaded: `FILE:.text=0xADDR[:.init.text=0xADDR...]`
    /// (the addresses in /sys/module/NAME/sections/). Repeatable.
    #[arg(long = "module")]
    pub modules: Vec<String>,
    /// Read the entries in this layout instead of detecting it.
    #[arg(long, value_parser = crate::dump::parse_layout)]
    pub orc_layout: Option<Layout>,
    /// Most frames to print.
    #[arg(long, default_value_t = 128)]
    pub max_frames: usize,
    /// Frames as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A function symbol placed at its runtime address.
struct Func {
    start: u64,
    size: u64,
    name: String,
    object: String,
}

/// Everything loaded: tables and symbols of every object.
struct Loaded {
    tables: Vec<OwnedTable>,
    funcs: Vec<Func>,
    version: Option<(u32, u32)>,
}

fn parse_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Writes to standard output; a reader that went away (`| head`) is not an error worth a
/// panic: the output is simply no longer wanted.
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    // Digit pairs as bytes, not as string slices: a non-ASCII character must be an error,
    // not a slice through the middle of it.
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    digits.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

/// The snapshot, read and checked.
struct Snapshot {
    rip: u64,
    rsp: u64,
    rbp: u64,
    exact: bool,
    pt_regs: Option<u64>,
    stacks: Vec<(String, u64, Vec<u8>)>,
    version: Option<(u32, u32)>,
}

fn read_snapshot(path: &Path) -> Result<Snapshot, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::new(path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| FileError::new(path, format!("not a snapshot: {e}")))?;
    let bad = |what: &str| FileError::new(path, format!("snapshot: {what}"));
    let regs = v.get("regs").ok_or_else(|| bad("no \"regs\""))?;
    let reg = |name: &str| regs.get(name).and_then(parse_u64).ok_or_else(|| bad(&format!("regs.{name} missing or not a number")));
    let mut stacks = Vec::new();
    for (i, s) in v.get("stacks").and_then(Value::as_array).ok_or_else(|| bad("no \"stacks\" array"))?.iter().enumerate() {
        let base = s.get("base").and_then(parse_u64).ok_or_else(|| bad(&format!("stacks[{i}].base missing")))?;
        let bytes = s
            .get("bytes")
            .and_then(Value::as_str)
            .and_then(hex_bytes)
            .ok_or_else(|| bad(&format!("stacks[{i}].bytes missing or not hex")))?;
        let name = s.get("name").and_then(Value::as_str).unwrap_or("stack").to_string();
        stacks.push((name, base, bytes));
    }
    let version = v
        .get("kernel")
        .and_then(|k| k.get("version"))
        .and_then(Value::as_str)
        .and_then(orc_elf::modinfo::parse_release)
        .map(|k| (k.major, k.minor));
    Ok(Snapshot {
        rip: reg("rip")?,
        rsp: reg("rsp")?,
        rbp: reg("rbp")?,
        exact: v.get("ip_is_exact").and_then(Value::as_bool).unwrap_or(true),
        pt_regs: v.get("pt_regs").and_then(parse_u64),
        stacks,
        version,
    })
}

/// Loads one object: its table placed at runtime addresses, and its function symbols.
/// `placement` gives section load addresses for a relocatable object.
fn load_object(path: &Path, placement: &[(String, u64)], layout: Option<Layout>, loaded: &mut Loaded) -> Result<(), FileError> {
    let bytes = read_input(path)?;
    let file = ElfFile::parse(&bytes).map_err(|e| FileError::new(path, e))?;
    let object = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let relocatable = file.kind() == FileKind::Relocatable;
    let section_base = |index: usize| -> Option<u64> {
        if !relocatable {
            return Some(0);
        }
        let name = file.section(index).ok()?.name;
        placement.iter().find(|(n, _)| n == name).map(|&(_, a)| a)
    };
    if relocatable && placement.is_empty() {
        return Err(FileError::new(path, "a module needs its load addresses: --module FILE:.text=0xADDR"));
    }
    if let Some(v) = orc_elf::modinfo::kernel_version(&file) {
        loaded.version.get_or_insert((v.major, v.minor));
    }
    let table = read_orc_table(&file, layout).map_err(|e| FileError::new(path, e))?;
    let Some(table) = table else { return Err(FileError::new(path, "has no ORC table")) };
    // One lookup table per placed text section (each has its own text range).
    let mut per_text: Vec<(u64, u64, Vec<(u64, orc_format::RawEntry)>)> = Vec::new();
    for (address, raw) in table.iter() {
        let (ip, range) = match address {
            OrcAddress::Absolute(ip) => (ip, None),
            OrcAddress::Relocated { section: Some(sec), symbol_value, addend, .. } => {
                let Some(base) = section_base(sec) else { continue };
                let size = file.section(sec).map(|s| s.size).unwrap_or(0);
                (base.wrapping_add(symbol_value).wrapping_add(addend as u64), Some((base, base + size)))
            }
            OrcAddress::Relocated { .. } => continue,
        };
        let (lo, hi) = range.unwrap_or((0, u64::MAX));
        match per_text.iter_mut().find(|(l, h, _)| *l == lo && *h == hi) {
            Some((_, _, pairs)) => pairs.push((ip, raw)),
            None => per_text.push((lo, hi, vec![(ip, raw)])),
        }
    }
    for (lo, hi, pairs) in per_text {
        // A linked file's text: from its lowest to just past its highest address.
        let (lo, hi) = if hi == u64::MAX {
            let min = pairs.iter().map(|p| p.0).min().unwrap_or(0);
            let max = pairs.iter().map(|p| p.0).max().unwrap_or(0);
            (min, max.saturating_add(1))
        } else {
            (lo, hi)
        };
        let owned = OwnedTable::build(pairs, table.layout, lo..hi, IndexKind::default())
            .map_err(|e| FileError::new(path, format!("cannot index the ORC table: {e:?}")))?;
        loaded.tables.push(owned);
    }
    for sym in file.symbols().flatten() {
        if sym.kind != SymbolKind::Func || sym.name.is_empty() {
            continue;
        }
        let Some(sec) = sym.section else { continue };
        let Some(base) = section_base(sec) else { continue };
        loaded.funcs.push(Func { start: base.wrapping_add(sym.value), size: sym.size, name: sym.name.to_string(), object: object.clone() });
    }
    Ok(())
}

fn parse_module(spec: &str) -> Result<(PathBuf, Vec<(String, u64)>), String> {
    let mut parts = spec.split(':');
    let file = parts.next().filter(|f| !f.is_empty()).ok_or("empty --module")?;
    let mut placement = Vec::new();
    for p in parts {
        let (name, addr) = p.split_once('=').ok_or_else(|| format!("--module {spec}: expected SECTION=ADDR, got {p}"))?;
        let addr = parse_u64(&Value::String(addr.to_string())).ok_or_else(|| format!("--module {spec}: bad address {addr}"))?;
        placement.push((name.to_string(), addr));
    }
    Ok((PathBuf::from(file), placement))
}

/// `func+0xoff/0xsize [object]` for a frame: the function is found at `ip - 1` for a return
/// address (it may point just past a call to a noreturn function), at `ip` for an exact one;
/// the offset shown is of `ip` itself, as the kernel prints it.
fn symbolize(funcs: &[Func], frame: &Frame) -> String {
    let at = if frame.signal { frame.ip } else { frame.ip.wrapping_sub(1) };
    let best = funcs.iter().filter(|f| f.start <= at && at < f.start.saturating_add(f.size.max(1))).min_by_key(|f| f.size);
    match best {
        Some(f) => format!("{}+{:#x}/{:#x} [{}]", f.name, frame.ip.wrapping_sub(f.start), f.size, f.object),
        None => "?".to_string(),
    }
}

/// One frame in `--json` output (kernel stacks: snapshots and crash dumps).
#[derive(Serialize)]
pub(crate) struct JsonFrame {
    ip: String,
    sp: String,
    bp: String,
    exact: bool,
    symbol: String,
}

impl JsonFrame {
    pub(crate) fn of(f: &Frame, symbol: String) -> JsonFrame {
        JsonFrame { ip: format!("{:#x}", f.ip), sp: format!("{:#x}", f.sp), bp: format!("{:#x}", f.bp), exact: f.signal, symbol }
    }
}

#[derive(Serialize)]
struct JsonTrace {
    frames: Vec<JsonFrame>,
    end: String,
    reliable: bool,
    unreliable: Option<String>,
}

/// Runs the command; returns the exit code.
pub fn run(args: &UnwindArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orctool: {e}");
            2
        }
    }
}

fn run_inner(args: &UnwindArgs) -> Result<i32, FileError> {
    if let Some(pid) = args.pid {
        return process::run_pid(args, pid);
    }
    if let Some(core) = &args.core {
        return process::run_core(args, core);
    }
    if let Some(dump) = &args.vmcore {
        return vmcore::run(args, dump);
    }
    let Some(snapshot) = &args.snapshot else {
        return Err(FileError::new(Path::new("unwind"), "give --snapshot, --pid or --core"));
    };
    let snap = read_snapshot(snapshot)?;
    let mut loaded = Loaded { tables: Vec::new(), funcs: Vec::new(), version: snap.version };
    if let Some(v) = &args.vmlinux {
        load_object(v, &[], args.orc_layout, &mut loaded)?;
    }
    for spec in &args.modules {
        let (file, placement) = parse_module(spec).map_err(|e| FileError::new(Path::new(spec), e))?;
        load_object(&file, &placement, args.orc_layout, &mut loaded)?;
    }
    if loaded.tables.is_empty() {
        return Err(FileError::new(snapshot, "no tables to unwind with: give --vmlinux and/or --module"));
    }
    loaded.tables.sort_by_key(|t| t.table().text.start);
    let views: Vec<_> = loaded.tables.iter().map(OwnedTable::table).collect();
    let modules = ModuleTables::new(&views);
    let snapshots: Vec<StackSnapshot<'_>> = snap.stacks.iter().map(|(_, base, bytes)| StackSnapshot::new(*base, bytes)).collect();
    let ranges: Vec<_> = snapshots.iter().map(StackSnapshot::range).collect();
    let (major, minor) = loaded.version.unwrap_or((6, 12));
    let config = Config { max_frames: args.max_frames.max(1), ..Config::for_kernel(major, minor) };
    let unwinder = Unwinder::new(&modules, &ranges).with_config(config);
    let mut mem = Snapshots(&snapshots);
    let mut state = match snap.pt_regs {
        Some(addr) => unwinder
            .start_from_regs(&mut mem, addr)
            .map_err(|e| FileError::new(snapshot, format!("cannot start from pt_regs at {addr:#x}: {e}")))?,
        None => unwinder.start(snap.rip, snap.rsp, snap.rbp, snap.exact),
    };
    let mut frames: Vec<Frame> = Vec::new();
    let trace = unwinder.walk_with(&mut state, &mut mem, |f| {
        frames.push(*f);
        true
    });
    let end = match trace.end {
        End::EndOfStack => "end of stack".to_string(),
        End::UserMode => "user-mode registers".to_string(),
        End::Error(e) => format!("error: {e}"),
        End::NotText => "the last address is not in any text".to_string(),
        End::FrameLimit => "frame limit".to_string(),
        End::BufferFull => "buffer full".to_string(),
    };
    let unreliable = trace.unreliable.map(|u| format!("{u:?}"));
    if args.json {
        let doc = JsonTrace {
            frames: frames.iter().map(|f| JsonFrame::of(f, symbolize(&loaded.funcs, f))).collect(),
            end,
            reliable: unreliable.is_none(),
            unreliable,
        };
        emit(&format!("{}\n", serde_json::to_string(&doc).expect("plain data serializes")));
    } else {
        let mut out = String::new();
        for (i, f) in frames.iter().enumerate() {
            let sym = symbolize(&loaded.funcs, f);
            out += &format!("#{i:<3} {:#018x} {sym}  sp={:#x}{}\n", f.ip, f.sp, if f.signal { " (exact)" } else { "" });
        }
        out += &format!("end: {end}; {}\n", match &unreliable {
            None => "reliable".to_string(),
            Some(u) => format!("unreliable ({u})"),
        });
        emit(&out);
    }
    Ok(if matches!(trace.end, End::Error(_)) { 1 } else { 0 })
}
