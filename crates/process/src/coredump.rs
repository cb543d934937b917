//! Core dumps (`ET_CORE`): threads from `NT_PRSTATUS`, mapped files from `NT_FILE`, memory
//! from the `PT_LOAD` segments.

use std::fs::File;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::LittleEndian as LE;
use orc_unwind::Memory;

use crate::cache::TableCache;
use crate::elfinfo;
use crate::error::ProcessError;
use crate::space::{AddressSpace, Mapping};
use crate::trace::Regs;

/// `struct elf_prstatus` (x86-64): where `pr_pid` and `pr_reg` are, and `pr_reg`'s size.
mod prstatus {
    pub const PID: usize = 32;
    pub const REG: usize = 112;
    /// `user_regs_struct`: 27 words.
    pub const REG_WORDS: usize = 27;
    /// Word indexes in `user_regs_struct`.
    pub const RBP: usize = 4;
    pub const RIP: usize = 16;
    pub const RSP: usize = 19;
}

/// `struct elf_prpsinfo` (x86-64): `pr_fname`, the command name.
mod prpsinfo {
    pub const FNAME: usize = 40;
    pub const FNAME_LEN: usize = 16;
}

/// One thread of a core dump.
#[derive(Clone, Debug)]
pub struct CoreThread {
    /// Thread id (`pr_pid`).
    pub tid: i32,
    /// The command name of the process (cores do not keep thread names).
    pub name: String,
    /// The registers a walk starts from.
    pub regs: Regs,
    /// The whole `user_regs_struct` (r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi
    /// orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs).
    pub user_regs: [u64; prstatus::REG_WORDS],
}

/// One `PT_LOAD` segment of a core: a mapping of the process and the bytes dumped of it.
type Load = crate::elfinfo::Segment;

/// A core dump, mapped.
pub struct CoreDump {
    path: PathBuf,
    bytes: Vec<u8>,
    threads: Vec<CoreThread>,
    files: Vec<(u64, u64, u64, PathBuf)>,
    loads: Vec<Load>,
}

impl std::fmt::Debug for CoreDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreDump").field("path", &self.path).field("threads", &self.threads.len()).finish()
    }
}

impl CoreDump {
    /// Reads and parses the core file at `path`.
    pub fn open(path: &Path) -> Result<CoreDump, ProcessError> {
        let kind = std::fs::metadata(path).map_err(|e| ProcessError::io(path, e))?;
        if !kind.is_file() {
            return Err(ProcessError::io(path, std::io::Error::other("not a regular file")));
        }
        let mut file = File::open(path).map_err(|e| ProcessError::io(path, e))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| ProcessError::io(path, e))?;
        CoreDump::parse(path, bytes)
    }

    /// Parses the bytes of a core file (`path` names it in errors).
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<CoreDump, ProcessError> {
        let bad = |m: String| ProcessError::elf(path, m);
        let header = elfinfo::parse_header(&bytes).map_err(bad)?;
        if header.e_type(LE) != elf::ET_CORE {
            return Err(bad("not a core file (e_type is not ET_CORE)".into()));
        }
        let phdrs = header.program_headers(LE, &*bytes).map_err(|e| bad(format!("bad program headers: {e}")))?;
        let mut loads = Vec::new();
        let mut threads = Vec::new();
        let mut files = Vec::new();
        let mut fname = String::new();
        for ph in phdrs {
            match ph.p_type(LE) {
                elf::PT_LOAD => loads.push(Load::of(ph)),
                elf::PT_NOTE => {
                    let notes = ph.notes(LE, &*bytes).map_err(|e| bad(format!("bad note segment: {e}")))?;
                    let Some(mut notes) = notes else { continue };
                    while let Some(note) = notes.next().map_err(|e| bad(format!("bad note: {e}")))? {
                        let desc = note.desc();
                        match (note.name(), note.n_type(LE)) {
                            (b"CORE", elf::NT_PRSTATUS) => threads.push(parse_prstatus(desc).map_err(bad)?),
                            (b"CORE", elf::NT_FILE) => files = parse_nt_file(desc).map_err(bad)?,
                            (b"CORE", elf::NT_PRPSINFO) => {
                                let name = desc.get(prpsinfo::FNAME..prpsinfo::FNAME + prpsinfo::FNAME_LEN).unwrap_or(&[]);
                                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                                fname = String::from_utf8_lossy(&name[..end]).into_owned();
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if threads.is_empty() {
            return Err(bad("core file has no NT_PRSTATUS note (no threads)".into()));
        }
        if files.is_empty() {
            return Err(bad("core file has no NT_FILE note: the mapped files are unknown".into()));
        }
        let len = bytes.len() as u64;
        if let Some(l) = loads.iter().find(|l| l.offset.checked_add(l.filesz).is_none_or(|end| end > len)) {
            return Err(bad(format!("segment at {:#x} extends past the end of the file (truncated core?)", l.vaddr)));
        }
        for t in &mut threads {
            t.name = fname.clone();
        }
        threads.sort_by_key(|t| t.tid);
        loads.sort_by_key(|l| l.vaddr);
        Ok(CoreDump { path: path.to_path_buf(), bytes, threads, files, loads })
    }

    /// The core file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The process id (of the first thread, the one the dump was triggered in).
    pub fn pid(&self) -> i32 {
        self.threads.iter().map(|t| t.tid).min().unwrap_or(0)
    }

    /// The threads, by id.
    pub fn threads(&self) -> &[CoreThread] {
        &self.threads
    }

    /// The mappings: one per `PT_LOAD` (named by the `NT_FILE` entry starting at the same
    /// address, anonymous otherwise), plus the `NT_FILE` entries that have no segment (gdb's
    /// `gcore` leaves read-only file pages out, text included). Whether a file mapping is
    /// executable comes from its segment's flags, or else from the file's own segment that
    /// holds the mapped offset (read through `cache`).
    pub fn mappings(&self, cache: &TableCache) -> Vec<Mapping> {
        let mut out: Vec<Mapping> = self
            .loads
            .iter()
            .map(|l| {
                let file = self.files.iter().find(|f| f.0 == l.vaddr);
                Mapping {
                    start: l.vaddr,
                    end: l.vaddr.saturating_add(l.memsz),
                    offset: file.map_or(0, |f| f.2),
                    executable: l.executable,
                    path: file.map(|f| f.3.clone()),
                    label: String::new(),
                    inode: 0,
                }
            })
            .collect();
        for (start, end, offset, path) in &self.files {
            if self.loads.iter().any(|l| l.vaddr == *start) {
                continue;
            }
            let executable = cache.table_for(path).is_ok_and(|t| {
                t.segments().iter().any(|s| s.executable && s.vaddr_of_offset(*offset, 4096).is_some())
            });
            out.push(Mapping { start: *start, end: *end, offset: *offset, executable, path: Some(path.clone()), label: String::new(), inode: 0 });
        }
        out
    }

    /// The address space of the dumped process, with tables for the files it had mapped
    /// (read from where they are now: they must be the same files).
    pub fn address_space(&self, cache: &TableCache) -> AddressSpace {
        AddressSpace::from_mappings(self.mappings(cache), cache)
    }

    /// The dumped memory.
    pub fn memory(&self) -> CoreMemory<'_> {
        CoreMemory { core: self, last: 0 }
    }
}

fn word(desc: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(desc.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn parse_prstatus(desc: &[u8]) -> Result<CoreThread, String> {
    let need = prstatus::REG + prstatus::REG_WORDS * 8;
    if desc.len() < need {
        return Err(format!("NT_PRSTATUS note is {} bytes, expected at least {need}", desc.len()));
    }
    let tid = i32::from_le_bytes(desc[prstatus::PID..prstatus::PID + 4].try_into().expect("4 bytes"));
    let mut user_regs = [0u64; prstatus::REG_WORDS];
    for (i, r) in user_regs.iter_mut().enumerate() {
        *r = word(desc, prstatus::REG + i * 8).expect("length checked");
    }
    let regs = Regs { ip: user_regs[prstatus::RIP], sp: user_regs[prstatus::RSP], bp: user_regs[prstatus::RBP] };
    Ok(CoreThread { tid, name: String::new(), regs, user_regs })
}

/// `NT_FILE`: count, page size, `count` (start, end, page offset) triples, then `count`
/// NUL-terminated names.
fn parse_nt_file(desc: &[u8]) -> Result<Vec<(u64, u64, u64, PathBuf)>, String> {
    use std::os::unix::ffi::OsStrExt;
    let bad = || "NT_FILE note is truncated".to_string();
    let count = word(desc, 0).ok_or_else(bad)?;
    let page = word(desc, 8).ok_or_else(bad)?;
    let count = usize::try_from(count).ok().filter(|&c| c.checked_mul(24).is_some_and(|n| n <= desc.len())).ok_or_else(bad)?;
    let mut names = desc.get(16 + count * 24..).ok_or_else(bad)?.split(|&b| b == 0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = 16 + i * 24;
        let (start, end, pgoff) = (word(desc, at).ok_or_else(bad)?, word(desc, at + 8).ok_or_else(bad)?, word(desc, at + 16).ok_or_else(bad)?);
        let offset = pgoff.checked_mul(page).ok_or("NT_FILE: page offset overflows")?;
        let name = names.next().ok_or_else(bad)?;
        if end < start {
            return Err(format!("NT_FILE: mapping {start:#x}-{end:#x} ends before it starts"));
        }
        out.push((start, end, offset, PathBuf::from(std::ffi::OsStr::from_bytes(name))));
    }
    Ok(out)
}

/// The memory of a core dump: what its `PT_LOAD` segments hold. Pages the kernel did not
/// dump (file-backed text, usually) read as unreadable.
#[derive(Debug)]
pub struct CoreMemory<'c> {
    core: &'c CoreDump,
    /// The segment of the last read: walks read neighbouring words.
    last: usize,
}

impl CoreMemory<'_> {
    fn in_load(&self, i: usize, addr: u64) -> Option<u64> {
        let l = self.core.loads.get(i)?;
        let off = addr.checked_sub(l.vaddr)?;
        if off.checked_add(8)? > l.filesz {
            return None;
        }
        let at = usize::try_from(l.offset.checked_add(off)?).ok()?;
        word(&self.core.bytes, at)
    }
}

impl Memory for CoreMemory<'_> {
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        if let Some(w) = self.in_load(self.last, addr) {
            return Some(w);
        }
        let i = self.core.loads.partition_point(|l| l.vaddr <= addr).checked_sub(1)?;
        self.last = i;
        self.in_load(i, addr)
    }
}
