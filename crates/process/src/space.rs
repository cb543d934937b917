//! A process's address space: which file is mapped where, with its table placed at its
//! runtime addresses; the unwinder's [`OrcLookup`] over all of them; symbolization.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orc_format::{Layout, RawEntry};
use orc_unwind::{OrcLookup, PackedEntry, StackRange};
use serde::Serialize;

use crate::cache::{FileTable, TableCache};
use crate::error::ProcessError;

/// The page size the load-bias computation assumes (x86-64).
const PAGE: u64 = 4096;

/// One mapping of an address space (a line of /proc/PID/maps, or an NT_FILE entry of a core).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the file of the byte at `start`.
    pub offset: u64,
    /// Mapped executable.
    pub executable: bool,
    /// The file mapped, if it is a file.
    pub path: Option<PathBuf>,
    /// What /proc shows for a mapping that is not a file (`[stack]`, `[vdso]`, `[heap]`), or
    /// empty.
    pub label: String,
}

/// An executable mapping: a piece of a program or library, or code without a file.
#[derive(Debug)]
pub struct Module {
    /// The file, or the label of a mapping without file (`[vdso]`, `[anon]`).
    pub name: String,
    /// Runtime range of this executable mapping.
    pub start: u64,
    /// One past its end.
    pub end: u64,
    /// Runtime address minus link-time address.
    pub bias: u64,
    /// The file's table; `None` for code without a usable file, with the reason in `problem`.
    pub table: Option<Arc<FileTable>>,
    /// Why there is no table (or why the file could not be placed).
    pub problem: Option<String>,
    /// Checked against the live process (vDSO image read, build-id compared).
    pub checked: bool,
}

impl Module {
    /// The short name printed in traces: the file name without directories.
    pub fn short_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// The link-time address of runtime address `addr`.
    pub fn link_address(&self, addr: u64) -> u64 {
        addr.wrapping_sub(self.bias)
    }

    fn orc(&self) -> Option<&orc_unwind::OwnedTable> {
        self.table.as_ref()?.orc().ok()
    }
}

/// A frame's address, symbolized.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize)]
pub struct Symbolized {
    /// Short name of the module (file name), if the address is in one.
    pub module: Option<String>,
    /// The function, if a symbol covers the address.
    pub function: Option<String>,
    /// Offset of the address from the function's start.
    pub offset: u64,
    /// Functions inlined at the address (innermost first), where debug info says so.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inlined: Vec<String>,
    /// Source file, where debug info exists.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
}

/// The executable mappings of a process (or core), each with its file's table, sorted by
/// address; and all its mappings, for stack ranges.
#[derive(Debug, Default)]
pub struct AddressSpace {
    modules: Vec<Module>,
    mappings: Vec<Mapping>,
    /// The /proc/PID/maps text the space was built from, to make `refresh` cheap.
    maps_text: String,
}

impl AddressSpace {
    /// The address space of a live process, from /proc/PID/maps.
    pub fn from_pid(pid: i32, cache: &TableCache) -> Result<AddressSpace, ProcessError> {
        let text = read_maps(pid)?;
        let mappings = parse_maps(pid, &text)?;
        let mut space = AddressSpace::from_mappings(mappings, cache);
        space.maps_text = text;
        check_in_memory(&mut space.modules, pid, cache);
        Ok(space)
    }

    /// An address space from a list of mappings (a core file's, or a test's). Files that
    /// cannot be read become modules without table (their `problem` says why).
    pub fn from_mappings(mut mappings: Vec<Mapping>, cache: &TableCache) -> AddressSpace {
        mappings.sort_by_key(|m| m.start);
        let modules = mappings.iter().filter(|m| m.executable).map(|m| make_module(m, cache)).collect();
        AddressSpace { modules, mappings, maps_text: String::new() }
    }

    /// Re-reads /proc/PID/maps and adds the executable mappings that are new (a `dlopen`,
    /// say), dropping those that are gone. Returns whether anything changed; when the maps
    /// are unchanged it costs one read of the maps file.
    pub fn refresh(&mut self, pid: i32, cache: &TableCache) -> Result<bool, ProcessError> {
        let text = read_maps(pid)?;
        if text == self.maps_text {
            return Ok(false);
        }
        let mut mappings = parse_maps(pid, &text)?;
        mappings.sort_by_key(|m| m.start);
        let mut old: Vec<Module> = std::mem::take(&mut self.modules);
        let mut modules = Vec::new();
        for m in mappings.iter().filter(|m| m.executable) {
            let keep = old.iter().position(|o| o.start == m.start && o.end == m.end && o.name == display_name(m));
            match keep {
                Some(i) => modules.push(old.swap_remove(i)),
                None => modules.push(make_module(m, cache)),
            }
        }
        modules.sort_by_key(|m| m.start);
        check_in_memory(&mut modules, pid, cache);
        self.modules = modules;
        self.mappings = mappings;
        self.maps_text = text;
        Ok(true)
    }

    /// The executable mappings, sorted by address.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// All mappings, sorted by address.
    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    /// The executable mapping holding `addr`.
    #[inline]
    pub fn module_for(&self, addr: u64) -> Option<&Module> {
        let i = self.modules.partition_point(|m| m.start <= addr).checked_sub(1)?;
        let m = &self.modules[i];
        (addr < m.end).then_some(m)
    }

    /// The whole mapping holding stack pointer `sp` (the top of a mapping counts: the stack
    /// pointer of an empty stack), as the stack the unwinder may read.
    pub fn stack_range(&self, sp: u64) -> Option<StackRange> {
        let i = self.mappings.partition_point(|m| m.start <= sp).checked_sub(1);
        let below = |m: &Mapping| (m.start <= sp && sp <= m.end).then(|| StackRange::new(m.start, m.end));
        let hit = i.and_then(|i| below(&self.mappings[i]));
        // sp == end of the mapping before: the partition point lands on the next one.
        hit.or_else(|| i.and_then(|i| i.checked_sub(1)).and_then(|i| below(&self.mappings[i])))
    }

    /// Symbolizes `ip`. `exact` says whether it is the address of an instruction (first
    /// frame, after a signal) or a return address, whose call is looked up at `ip - 1` (a
    /// call to a noreturn function may be the last instruction of its function).
    pub fn symbolize(&self, ip: u64, exact: bool) -> Symbolized {
        self.symbolize_with(ip, exact, true)
    }

    /// [`AddressSpace::symbolize`]; with `dwarf` false, from the symbol tables only (no
    /// DWARF: no file:line, no inlined functions, no DWARF names), which is much cheaper for
    /// a file with large debug info.
    pub fn symbolize_with(&self, ip: u64, exact: bool, dwarf: bool) -> Symbolized {
        let at = if exact { ip } else { ip.wrapping_sub(1) };
        let Some(m) = self.module_for(at) else { return Symbolized::default() };
        let mut s = Symbolized { module: Some(m.short_name().to_string()), ..Symbolized::default() };
        if let Some(t) = &m.table {
            let link = m.link_address(at);
            if let Some((name, start)) = t.function_at(link) {
                s.function = Some(name.to_string());
                s.offset = m.link_address(ip).wrapping_sub(start);
            }
            // DWARF's name where there is one: it is the one debuggers show (`__libc_pause`,
            // where the dynamic symbol table only has its alias `pause`).
            if let Some(d) = dwarf.then(|| t.debug_info_at(link)).flatten() {
                if d.function.is_some() {
                    s.function = d.function;
                }
                s.inlined = d.inlined;
                s.file = d.file;
                s.line = d.line;
            }
        }
        s
    }

    /// Loads the tables of every module now (they are otherwise loaded when a walk first
    /// needs them); returns the modules whose table failed, with why.
    pub fn load_all(&self) -> Vec<(&Module, ProcessError)> {
        self.modules
            .iter()
            .filter_map(|m| m.table.as_ref().and_then(|t| t.orc().err()).map(|e| (m, e)))
            .collect()
    }
}

impl OrcLookup for AddressSpace {
    #[inline]
    fn lookup(&self, addr: u64) -> Option<(RawEntry, Layout)> {
        let m = self.module_for(addr)?;
        m.orc()?.table().lookup(m.link_address(addr))
    }

    #[inline]
    fn lookup_packed(&self, addr: u64) -> Option<PackedEntry> {
        let m = self.module_for(addr)?;
        m.orc()?.table().lookup_packed(m.link_address(addr))
    }

    /// Any executable mapping counts as text, with or without table: code without table
    /// (a JIT's, the vDSO) gets the frame-pointer guess rather than ending the walk.
    #[inline]
    fn is_text(&self, addr: u64) -> bool {
        self.module_for(addr).is_some()
    }
}

fn display_name(m: &Mapping) -> String {
    match &m.path {
        Some(p) => p.display().to_string(),
        None if m.label.is_empty() => "[anon]".to_string(),
        None => m.label.clone(),
    }
}

fn make_module(m: &Mapping, cache: &TableCache) -> Module {
    let name = display_name(m);
    let mut module = Module { name, start: m.start, end: m.end, bias: 0, table: None, problem: None, checked: false };
    let Some(path) = &m.path else {
        module.problem = Some("no file".to_string());
        return module;
    };
    match cache.table_for(path).and_then(|t| place(&t, m, path).map(|bias| (t, bias))) {
        Ok((t, bias)) => {
            module.bias = bias;
            module.table = Some(t);
        }
        Err(e) => module.problem = Some(e.to_string()),
    }
    module
}

/// What only the live process can say about its modules, for modules not yet checked:
/// - `[vdso]` has no file: its table is made from the image read out of the process (the
///   kernel maps the whole ELF image there);
/// - a file's table was made from the file at the mapped path, which may have been replaced
///   since the process mapped it (an upgrade, another mount namespace): the build-id bytes the
///   process has at the note's address must be the file's, else the module gets no table
///   rather than another file's.
fn check_in_memory(modules: &mut [Module], pid: i32, cache: &TableCache) {
    let mut mem = crate::memory::ProcessMemory::new(pid);
    for m in modules.iter_mut().filter(|m| !m.checked) {
        m.checked = true;
        if m.name == "[vdso]" && m.table.is_none() {
            let mut image = vec![0u8; usize::try_from(m.end - m.start).unwrap_or(0).min(1 << 20)];
            if !mem.read_exact(m.start, &mut image) {
                m.problem = Some("the vDSO image cannot be read from the process".to_string());
                continue;
            }
            let placed = cache.table_for_image("[vdso]", image).and_then(|t| {
                let bias = place(&t, &Mapping { start: m.start, end: m.end, offset: 0, executable: true, path: None, label: String::new() }, Path::new("[vdso]"))?;
                Ok((t, bias))
            });
            match placed {
                Ok((t, bias)) => {
                    m.table = Some(t);
                    m.bias = bias;
                    m.problem = None;
                }
                Err(e) => m.problem = Some(e.to_string()),
            }
            continue;
        }
        let Some(t) = &m.table else { continue };
        let (Some(id), Some(at)) = (t.build_id(), t.build_id_vaddr()) else { continue };
        let mut seen = vec![0u8; id.len()];
        // The note may lie in a segment this process did not map readable: then nothing is
        // known either way and the table stays.
        if mem.read_exact(at.wrapping_add(m.bias), &mut seen) && seen != id {
            m.problem = Some(format!(
                "{} has build-id {} but the process mapped one with {}: the file was replaced; no table",
                t.path().display(),
                crate::cache::hex(id),
                crate::cache::hex(&seen)
            ));
            m.table = None;
        }
    }
}

/// The load bias of a file mapped by `m`: the segment whose file pages `m` maps gives the
/// link-time address of `m.start`.
fn place(t: &FileTable, m: &Mapping, path: &Path) -> Result<u64, ProcessError> {
    let seg = t
        .segments()
        .iter()
        .filter(|s| s.executable == m.executable)
        .chain(t.segments())
        .find_map(|s| s.vaddr_of_offset(m.offset, PAGE))
        .ok_or_else(|| ProcessError::elf(path, format!("no segment maps file offset {:#x}", m.offset)))?;
    Ok(m.start.wrapping_sub(seg))
}

fn read_maps(pid: i32) -> Result<String, ProcessError> {
    let path = format!("/proc/{pid}/maps");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ProcessError::process(pid, "no such process"),
        _ => ProcessError::process(pid, format!("{path}: {e}")),
    })?;
    if !text.is_empty() {
        return Ok(text);
    }
    // A leader that has exited while its other threads run (`pthread_exit` in main) shows
    // empty maps; a live thread of the same process still shows them.
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| ProcessError::process(pid, format!("task list: {e}")))?;
    for task in tasks.flatten() {
        if let Ok(t) = std::fs::read_to_string(task.path().join("maps")) {
            if !t.is_empty() {
                return Ok(t);
            }
        }
    }
    Ok(text)
}

/// Parses the text of /proc/PID/maps.
pub fn parse_maps(pid: i32, text: &str) -> Result<Vec<Mapping>, ProcessError> {
    use procfs::process::{MMPermissions, MMapPath, MemoryMaps};
    use procfs::FromBufRead;
    let maps = MemoryMaps::from_buf_read(text.as_bytes()).map_err(|e| ProcessError::process(pid, format!("maps: {e}")))?;
    Ok(maps
        .into_iter()
        .map(|m| {
            let (path, label) = match m.pathname {
                MMapPath::Path(p) => (Some(p), String::new()),
                MMapPath::Stack => (None, "[stack]".to_string()),
                MMapPath::TStack(t) => (None, format!("[stack:{t}]")),
                MMapPath::Heap => (None, "[heap]".to_string()),
                MMapPath::Vdso => (None, "[vdso]".to_string()),
                MMapPath::Vvar => (None, "[vvar]".to_string()),
                MMapPath::Vsyscall => (None, "[vsyscall]".to_string()),
                MMapPath::Anonymous => (None, String::new()),
                other => (None, format!("{other:?}")),
            };
            Mapping {
                start: m.address.0,
                end: m.address.1,
                offset: m.offset,
                executable: m.perms.contains(MMPermissions::EXECUTE),
                path,
                label,
            }
        })
        .collect())
}
