//! Finding the functions of a linked file.
//!
//! - With a `.symtab`: its `STT_FUNC` symbols (GCC's `foo.cold` parts are fragments, not
//!   entries), plus `.eh_frame` FDEs no symbol starts at.
//! - Stripped: the FDE ranges, named from `.dynsym` where a symbol starts there, else
//!   `func_<addr>`; `.dynsym` functions no FDE covers; the entry point. An FDE whose first row
//!   is not a plain function entry (CFA = `%rsp + 8`, nothing saved) and that no symbol names
//!   is a fragment: GCC's cold part of a function, entered from its parent with the parent's
//!   frame.
//! - PLT stubs (`.plt`, `.plt.sec`, `.plt.got`), one per entry, named `<import>@plt` after the
//!   GOT slot each jumps through (or, for lazy `.plt` entries, the `.rela.plt` index they
//!   push). The first `.plt` entry (PLT0) is entered with the pushed index on the stack.
//!
//! Ranges are made disjoint: a function ends where the next one starts.

use std::collections::HashMap;

use orc_elf::{ElfFile, SymbolKind};

use crate::eh_frame::Conversion;
use crate::image::Image;
use crate::FunctionCounts;

/// How the walk treats a function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FuncKind {
    /// Entered by calls, with the call state.
    Normal,
    /// Entered by jumps from its parent, with the parent's state: never walked on its own.
    Fragment,
    /// Code between two functions that no symbol or FDE covers and that is not padding: the
    /// tail of the function before it whose CFI was cut short (glibc's `clone3` ends its FDE
    /// before the `syscall`, the parent's side has no CFI at all). Reached by falling
    /// through or jumping, with the state of the code that got there; never walked on its own.
    Orphan,
    /// A PLT stub.
    Plt,
    /// The first `.plt` entry, entered with one word pushed.
    Plt0,
    /// The program's entry point: the bottom of the stack.
    Entry,
    /// A signal trampoline (`__restore_rt`).
    SignalTrampoline,
}

/// Where a function was found.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum FuncSource {
    Symtab,
    EhFrame,
    Dynsym,
    Entry,
    Plt,
    Loader,
}

/// One function.
#[derive(Clone, Debug)]
pub(crate) struct Func {
    pub start: u64,
    pub end: u64,
    pub name: String,
    pub kind: FuncKind,
    pub source: FuncSource,
    /// For a PLT stub: the imported function.
    pub import: Option<String>,
}

/// The bytes of `mov $0xf,%rax; syscall`: `rt_sigreturn`, the whole signal trampoline.
pub(crate) const SIGRETURN: [u8; 9] = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];

/// The functions, sorted by start, disjoint.
pub(crate) struct Functions {
    pub list: Vec<Func>,
    pub counts: FunctionCounts,
}

impl Functions {
    /// The function whose range holds `addr`.
    pub fn containing(&self, addr: u64) -> Option<usize> {
        let i = self.list.partition_point(|f| f.start <= addr).checked_sub(1)?;
        (addr < self.list[i].end).then_some(i)
    }

    /// The function starting exactly at `addr`.
    pub fn starting_at(&self, addr: u64) -> Option<usize> {
        let i = self.list.partition_point(|f| f.start < addr);
        (self.list.get(i)?.start == addr).then_some(i)
    }
}

/// Finds the functions of `elf`.
pub(crate) fn find(elf: &ElfFile<'_>, image: &Image<'_>, conv: &Conversion) -> Functions {
    let mut counts = FunctionCounts::default();
    let mut funcs: Vec<Func> = Vec::new();
    let fde_at: HashMap<u64, usize> = conv.fdes.iter().enumerate().map(|(i, f)| (f.start, i)).collect();

    let symtab: Vec<_> = elf
        .symbols()
        .flatten()
        .filter(|s| s.kind == SymbolKind::Func && s.section.is_some() && s.value != 0)
        .filter(|s| image.is_code(s.value))
        .collect();
    if !symtab.is_empty() {
        for s in &symtab {
            let end = if s.size > 0 { s.value.saturating_add(s.size) } else { fde_end(conv, &fde_at, s.value) };
            let kind = if s.name.contains(".cold") { FuncKind::Fragment } else { FuncKind::Normal };
            funcs.push(Func { start: s.value, end, name: s.name.to_string(), kind, source: FuncSource::Symtab, import: None });
        }
    }
    let covered = |funcs: &[Func], addr: u64| funcs.iter().any(|f| f.start <= addr && addr < f.end.max(f.start + 1));
    // Sorted starts of what symbols cover, for the FDE pass below.
    let mut sym_ranges: Vec<(u64, u64)> = funcs.iter().map(|f| (f.start, f.end.max(f.start + 1))).collect();
    sym_ranges.sort_unstable();
    let in_sym = |addr: u64| {
        let i = sym_ranges.partition_point(|r| r.0 <= addr);
        sym_ranges[..i].iter().rev().take(8).any(|r| addr < r.1)
    };
    let dyn_at: HashMap<u64, &str> = image.dynsyms.iter().map(|d| (d.value, d.name)).collect();
    for fde in &conv.fdes {
        if fde.end <= fde.start || !image.is_code(fde.start) || in_sym(fde.start) {
            continue;
        }
        let named = dyn_at.get(&fde.start).copied();
        let kind = if fde.signal_trampoline {
            FuncKind::SignalTrampoline
        } else if fde.entry_like || named.is_some() || fde.start == image.entry {
            FuncKind::Normal
        } else {
            FuncKind::Fragment
        };
        let name = named.map_or_else(|| format!("func_{:x}", fde.start), str::to_string);
        funcs.push(Func { start: fde.start, end: fde.end, name, kind, source: FuncSource::EhFrame, import: None });
    }
    funcs.sort_by_key(|f| f.start);
    let mut dyn_funcs = Vec::new();
    for d in &image.dynsyms {
        if !image.is_code(d.value) || covered_sorted(&funcs, d.value) {
            continue;
        }
        let end = if d.size > 0 { d.value.saturating_add(d.size) } else { d.value };
        dyn_funcs.push(Func { start: d.value, end, name: d.name.to_string(), kind: FuncKind::Normal, source: FuncSource::Dynsym, import: None });
    }
    funcs.extend(dyn_funcs);
    funcs.sort_by_key(|f| f.start);
    loader_called(image, &mut funcs);
    if image.entry != 0 && image.is_code(image.entry) && !covered(&funcs, image.entry) {
        let end = fde_end(conv, &fde_at, image.entry);
        funcs.push(Func { start: image.entry, end, name: "_start".into(), kind: FuncKind::Entry, source: FuncSource::Entry, import: None });
    }
    plt_stubs(image, &mut funcs);

    // Names: the entry point and signal trampolines.
    for f in funcs.iter_mut() {
        if f.start == image.entry && f.kind == FuncKind::Normal {
            f.kind = FuncKind::Entry;
        }
        if f.kind != FuncKind::Plt && f.kind != FuncKind::Plt0 && starts_sigreturn(image, f) {
            f.kind = FuncKind::SignalTrampoline;
        }
        if f.name == "__restore_rt" {
            f.kind = FuncKind::SignalTrampoline;
        }
    }

    // Sort, drop duplicates (aliases: the first symbol at an address wins, a plain function
    // over a fragment), make disjoint, give empty ones the room up to the next function
    // within their section.
    funcs.sort_by_key(|f| (f.start, f.kind == FuncKind::Fragment, std::cmp::Reverse(f.end)));
    funcs.dedup_by_key(|f| f.start);
    for i in 0..funcs.len() {
        let next = funcs.get(i + 1).map(|n| n.start);
        let section_end = image.section_of(funcs[i].start).map_or(funcs[i].start, |m| m.end());
        let f = &mut funcs[i];
        if f.end <= f.start {
            f.end = next.unwrap_or(section_end).min(section_end);
        }
        if let Some(n) = next {
            f.end = f.end.min(n);
        }
        f.end = f.end.min(section_end);
    }
    funcs.retain(|f| f.end > f.start);
    add_orphans(image, &mut funcs);
    for f in &funcs {
        match f.source {
            FuncSource::Symtab => counts.symtab += 1,
            FuncSource::EhFrame => counts.eh_frame += 1,
            FuncSource::Dynsym => counts.dynsym += 1,
            FuncSource::Entry => counts.entry += 1,
            FuncSource::Plt => counts.plt += 1,
            FuncSource::Loader => counts.loader += 1,
        }
    }
    Functions { list: funcs, counts }
}

/// Fills the gaps between functions of one section that hold more than padding with
/// [`FuncKind::Orphan`] ranges, so that a walk falling off a function whose extent came from
/// CFI can go on. `funcs` is sorted and disjoint, and stays so.
fn add_orphans(image: &Image<'_>, funcs: &mut Vec<Func>) {
    let mut orphans = Vec::new();
    for pair in funcs.windows(2) {
        let (f, next) = (&pair[0], &pair[1]);
        // After the entry point too: crtstuff's helpers (`register_tm_clones`...) follow
        // `_start` without symbol or FDE in a stripped program, and loader-called functions
        // tail-call them.
        let before_ok = matches!(f.kind, FuncKind::Normal | FuncKind::Fragment | FuncKind::Orphan | FuncKind::Entry);
        if next.start <= f.end || !before_ok {
            continue;
        }
        let same_section = image.section_of(f.start).is_some_and(|m| m.contains(next.start));
        let Some(bytes) = image.bytes_from(f.end) else { continue };
        let gap = &bytes[..bytes.len().min((next.start - f.end) as usize)];
        if same_section && !is_padding(gap) {
            let name = format!("{}.tail", f.name);
            orphans.push(Func { start: f.end, end: next.start, name, kind: FuncKind::Orphan, source: f.source, import: None });
        }
    }
    // The head of a code section before its first function (crtstuff's helpers open `.text`
    // in a shared library).
    for m in image.mapped.iter().filter(|m| m.exec && !matches!(m.name, ".plt" | ".plt.sec" | ".plt.got")) {
        let i = funcs.partition_point(|f| f.start < m.address);
        let first = funcs.get(i).map_or(m.end(), |f| f.start.min(m.end()));
        let covered = i > 0 && funcs[i - 1].end > m.address;
        let gap = &m.data[..((first - m.address) as usize).min(m.data.len())];
        if !covered && !gap.is_empty() && !is_padding(gap) {
            let name = format!("{}.head", m.name);
            orphans.push(Func { start: m.address, end: first, name, kind: FuncKind::Orphan, source: FuncSource::EhFrame, import: None });
        }
    }
    if !orphans.is_empty() {
        funcs.extend(orphans);
        funcs.sort_by_key(|f| f.start);
    }
}

/// Bytes compilers and assemblers put between functions: NOPs of every length (`90`,
/// `66 90`, `0f 1f /0` with prefixes, `66 2e 0f 1f 84 ..`), `int3`, and zeros.
fn is_padding(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| matches!(b, 0x90 | 0xcc | 0x00 | 0x66 | 0x2e | 0x0f | 0x1f | 0x40 | 0x44 | 0x80 | 0x84))
}

/// Functions only the dynamic loader calls: the entries of `.preinit_array`, `.init_array`
/// and `.fini_array` (crtstuff's `frame_dummy` and `__do_global_dtors_aux`, constructors) and
/// the `.init` and `.fini` sections (`_init`, `_fini`). A stripped file often gives them
/// neither a symbol nor an FDE, and nothing in its code calls them, so only here are they
/// found; without them a stack at exit has no rows for its loader-called frames. `funcs` is
/// sorted on entry and on return.
fn loader_called(image: &Image<'_>, funcs: &mut Vec<Func>) {
    let mut found = Vec::new();
    for m in image.mapped.iter().filter(|m| matches!(m.name, ".preinit_array" | ".init_array" | ".fini_array")) {
        for i in 0..m.data.len() / 8 {
            let Some(p) = image.read_pointer(m.address + 8 * i as u64) else { continue };
            if image.is_code(p) && !covered_sorted(funcs, p) && !found.iter().any(|f: &Func| f.start == p) {
                let name = format!("{}[{i}]", m.name.trim_start_matches('.'));
                found.push(Func { start: p, end: p, name, kind: FuncKind::Normal, source: FuncSource::Loader, import: None });
            }
        }
    }
    for m in image.mapped.iter().filter(|m| m.exec && matches!(m.name, ".init" | ".fini")) {
        if !covered_sorted(funcs, m.address) {
            let name = format!("_{}", m.name.trim_start_matches('.'));
            found.push(Func { start: m.address, end: m.end(), name, kind: FuncKind::Normal, source: FuncSource::Loader, import: None });
        }
    }
    if !found.is_empty() {
        funcs.extend(found);
        funcs.sort_by_key(|f| f.start);
    }
}

fn covered_sorted(funcs: &[Func], addr: u64) -> bool {
    let i = funcs.partition_point(|f| f.start <= addr);
    funcs[..i].iter().rev().take(8).any(|f| addr < f.end.max(f.start + 1))
}

/// The end of the FDE starting at `addr`, or `addr` (an empty range, sized later).
fn fde_end(conv: &Conversion, fde_at: &HashMap<u64, usize>, addr: u64) -> u64 {
    fde_at.get(&addr).map_or(addr, |&i| conv.fdes[i].end)
}

fn starts_sigreturn(image: &Image<'_>, f: &Func) -> bool {
    image.bytes_from(f.start).is_some_and(|b| b.starts_with(&SIGRETURN))
}

/// The PLT stubs, named after the import each one reaches.
fn plt_stubs(image: &Image<'_>, funcs: &mut Vec<Func>) {
    // Stubs replace whatever covered these sections (an FDE for the whole .plt).
    let plt_sections: Vec<_> = image
        .mapped
        .iter()
        .filter(|m| m.exec && matches!(m.name, ".plt" | ".plt.sec" | ".plt.got"))
        .copied()
        .collect();
    if plt_sections.is_empty() {
        return;
    }
    funcs.retain(|f| !plt_sections.iter().any(|m| m.contains(f.start)));
    for m in plt_sections {
        let endbr = m.data.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]);
        let size: usize = match m.name {
            ".plt.got" if !endbr => 8,
            _ => 16,
        };
        for (i, stub) in m.data.chunks(size).enumerate() {
            let start = m.address + (i * size) as u64;
            let end = start + stub.len() as u64;
            let (kind, import) = if m.name == ".plt" && i == 0 {
                (FuncKind::Plt0, None)
            } else {
                (FuncKind::Plt, stub_import(image, start, stub))
            };
            let name = match (&import, kind) {
                (_, FuncKind::Plt0) => ".plt".to_string(),
                (Some(n), _) => format!("{n}@plt"),
                (None, _) => format!("{}+0x{:x}", m.name, start - m.address),
            };
            funcs.push(Func { start, end, name, kind, source: crate::funcs::FuncSource::Plt, import });
        }
    }
}

/// The import a stub reaches: through the GOT slot of its `jmp *slot(%rip)`, or by the
/// `.rela.plt` index of its `push $n` (a lazy entry whose jump is elsewhere).
fn stub_import(image: &Image<'_>, start: u64, stub: &[u8]) -> Option<String> {
    let mut at = 0usize;
    if stub.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        at = 4;
    }
    let rest = stub.get(at..)?;
    // `bnd` prefix before the jump.
    let (skip, rest) = if rest.first() == Some(&0xf2) { (1, &rest[1..]) } else { (0, rest) };
    if rest.starts_with(&[0xff, 0x25]) {
        let disp = i32::from_le_bytes(rest.get(2..6)?.try_into().ok()?);
        let next = start + (at + skip + 6) as u64;
        let slot = next.wrapping_add(disp as i64 as u64);
        return image.slot_names.get(&slot).map(|s| s.to_string());
    }
    if rest.first() == Some(&0x68) {
        let index = u32::from_le_bytes(rest.get(1..5)?.try_into().ok()?) as usize;
        return image.plt_names.get(index).filter(|n| !n.is_empty()).map(|s| s.to_string());
    }
    None
}

