//! Per-file ORC tables: generated once per build-id and kept in a cache directory, and kept in
//! memory per (device, inode, mtime) while the program runs.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use orc_format::Layout;
use orc_unwind::{IndexKind, OwnedTable};

use crate::elfinfo::{self, ElfInfo, FuncSym};
use crate::error::ProcessError;
use crate::linked_api::{self, Rows, Source};

/// Where a [`FileTable`]'s ORC rows came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Origin {
    /// Read from the cache directory.
    Cache,
    /// Generated now (and stored, when the file has a build-id and the cache has a directory).
    Generated,
}

/// Tables for ELF files, by build-id on disk and by file identity in memory.
///
/// Shared between threads (`&self` everywhere).
pub struct TableCache {
    dir: Option<PathBuf>,
    source: Source,
    loaded: Mutex<HashMap<FileKey, Arc<FileTable>>>,
}

/// What identifies one version of a file on this machine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct FileKey {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl TableCache {
    /// A cache storing sidecar files in `dir` (created on first store), with tables from
    /// `source`.
    pub fn new(dir: PathBuf, source: Source) -> TableCache {
        TableCache { dir: Some(dir), source, loaded: Mutex::new(HashMap::new()) }
    }

    /// A cache that never reads or writes files: every table is generated (kept in memory
    /// only).
    pub fn in_memory(source: Source) -> TableCache {
        TableCache { dir: None, source, loaded: Mutex::new(HashMap::new()) }
    }

    /// `$ORCTOOL_CACHE`, else `$XDG_CACHE_HOME/orctool/orc`, else `~/.cache/orctool/orc`;
    /// without a home, a directory of this user's own under the temporary directory
    /// (`orctool-<uid>`, mode 0700, checked to be ours and private), never one shared by all
    /// users (another user could plant tables there). `None` when even that cannot be had:
    /// then tables are kept in memory only ([`TableCache::in_memory`]).
    pub fn default_dir() -> Option<PathBuf> {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = env("ORCTOOL_CACHE") {
            return Some(dir);
        }
        if let Some(xdg) = env("XDG_CACHE_HOME") {
            return Some(xdg.join("orctool").join("orc"));
        }
        match env("HOME") {
            Some(home) => Some(home.join(".cache").join("orctool").join("orc")),
            None => private_temp_dir(),
        }
    }

    /// A cache in [`TableCache::default_dir`], or in memory when there is none.
    pub fn with_default_dir(source: Source) -> TableCache {
        match TableCache::default_dir() {
            Some(dir) => TableCache::new(dir, source),
            None => TableCache::in_memory(source),
        }
    }

    /// The cache directory, if the cache stores files.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Which rows the tables hold.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The table of the ELF file at `path`. The file is mapped and its headers read now; the
    /// ORC rows are loaded (or generated and stored) on first use ([`FileTable::orc`]), so
    /// that files no stack passes through cost nothing.
    pub fn table_for(&self, path: &Path) -> Result<Arc<FileTable>, ProcessError> {
        // A path from a process's maps or a core's file list may name anything by now (a
        // FIFO would block the open): only regular files are read.
        let kind = std::fs::metadata(path).map_err(|e| ProcessError::io(path, e))?;
        if !kind.is_file() {
            return Err(ProcessError::io(path, std::io::Error::other("not a regular file")));
        }
        let file = File::open(path).map_err(|e| ProcessError::io(path, e))?;
        let meta = file.metadata().map_err(|e| ProcessError::io(path, e))?;
        let key = FileKey { dev: meta.dev(), ino: meta.ino(), mtime: meta.mtime(), mtime_nsec: meta.mtime_nsec() };
        if let Some(t) = self.loaded.lock().map_err(|_| poisoned(path))?.get(&key) {
            return Ok(Arc::clone(t));
        }
        let bytes = Bytes::map(&file, meta.len(), path)?;
        let table = Arc::new(FileTable::new(path.to_path_buf(), bytes, self.dir.clone(), self.source)?);
        self.loaded.lock().map_err(|_| poisoned(path))?.insert(key, Arc::clone(&table));
        Ok(table)
    }

    /// A table for an ELF image that is not a file (the vDSO, read from the process): never
    /// stored on disk, never shared.
    pub fn table_for_image(&self, name: &str, image: Vec<u8>) -> Result<Arc<FileTable>, ProcessError> {
        Ok(Arc::new(FileTable::new(PathBuf::from(name), Bytes::Owned(image), None, self.source)?))
    }
}

/// `$TMPDIR/orctool-<uid>/orc`, if `orctool-<uid>` is (or could be made) a directory owned by
/// this user that no one else may enter.
fn private_temp_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    // Our effective uid, without a libc call: /proc/self belongs to it.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let dir = std::env::temp_dir().join(format!("orctool-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0).then(|| dir.join("orc"))
}

fn poisoned(path: &Path) -> ProcessError {
    ProcessError::elf(path, "table cache lock poisoned by a panic elsewhere")
}

/// The bytes of a file: mapped, or owned (empty files, images read from memory).
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn map(file: &File, len: u64, path: &Path) -> Result<Bytes, ProcessError> {
        if len == 0 {
            return Ok(Bytes::Owned(Vec::new()));
        }
        // SAFETY: the mapping is read-only and private. Another process truncating the file
        // while it is mapped would fault on access; every reader of ELF files by mapping (the
        // dynamic loader included) accepts that. Executables and libraries being run are
        // not truncated in place (writers replace them: ETXTBSY otherwise).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| ProcessError::io(path, e))?;
        Ok(Bytes::Mapped(map))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One ELF file: its segments and build-id, and on demand its ORC table (link-time
/// addresses), its function symbols and its line table.
pub struct FileTable {
    path: PathBuf,
    bytes: Bytes,
    info: ElfInfo,
    dir: Option<PathBuf>,
    source: Source,
    orc: OnceLock<Result<(OwnedTable, Origin), String>>,
    /// The SFrame v3 section (at address 0, link-time addresses) and where it came from.
    sframe: OnceLock<Result<(Vec<u8>, Origin), String>>,
    /// The function symbols, and whether they are the separate debug file's.
    symbols: OnceLock<(Vec<FuncSym>, bool)>,
    debug: OnceLock<Option<Bytes>>,
    lines: Mutex<Option<Option<Lines>>>,
}

type ArcReader = gimli::EndianArcSlice<gimli::LittleEndian>;
/// The line-table context of a file with debug info.
struct Lines(addr2line::Context<ArcReader>);

impl std::fmt::Debug for FileTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTable").field("path", &self.path).field("build_id", &self.build_id_hex()).finish()
    }
}

impl FileTable {
    fn new(path: PathBuf, bytes: Bytes, dir: Option<PathBuf>, source: Source) -> Result<FileTable, ProcessError> {
        let info = elfinfo::read_info(bytes.as_slice()).map_err(|m| ProcessError::elf(&path, m))?;
        if info.is_core {
            return Err(ProcessError::elf(&path, "is a core file, not a program or library"));
        }
        Ok(FileTable {
            path,
            bytes,
            info,
            dir,
            source,
            orc: OnceLock::new(),
            sframe: OnceLock::new(),
            symbols: OnceLock::new(),
            debug: OnceLock::new(),
            lines: Mutex::new(None),
        })
    }

    /// The file's path (as given to [`TableCache::table_for`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes.
    pub fn data(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Its `PT_LOAD` segments.
    pub fn segments(&self) -> &[elfinfo::Segment] {
        &self.info.segments
    }

    /// Its build-id, if it has one.
    pub fn build_id(&self) -> Option<&[u8]> {
        self.info.build_id.as_deref()
    }

    /// The link-time address of its build-id's bytes (in its note segment).
    pub fn build_id_vaddr(&self) -> Option<u64> {
        self.info.build_id_vaddr
    }

    /// Its build-id in hex.
    pub fn build_id_hex(&self) -> Option<String> {
        self.build_id().map(hex)
    }

    /// The sidecar file that holds (or will hold) this file's table.
    pub fn sidecar_path(&self) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let id = self.build_id_hex()?;
        Some(match linked_api::file_tag(self.source) {
            None => dir.join(format!("{id}.orc")),
            Some(tag) => dir.join(format!("{id}.{tag}.orc")),
        })
    }

    /// The link-time range of the executable segments (the table's text).
    pub fn text_range(&self) -> std::ops::Range<u64> {
        let exec = self.info.segments.iter().filter(|s| s.executable);
        let start = exec.clone().map(|s| s.vaddr).min().unwrap_or(0);
        let end = exec.map(|s| s.vaddr.saturating_add(s.memsz)).max().unwrap_or(0);
        start..end
    }

    /// The ORC table in link-time addresses, loaded from the cache directory or generated
    /// (and then stored) on first call.
    pub fn orc(&self) -> Result<&OwnedTable, ProcessError> {
        self.orc_with_origin().map(|(t, _)| t)
    }

    /// [`FileTable::orc`] and where it came from.
    pub fn orc_with_origin(&self) -> Result<(&OwnedTable, Origin), ProcessError> {
        match self.orc.get_or_init(|| self.load_orc()) {
            Ok((t, o)) => Ok((t, *o)),
            Err(m) => Err(ProcessError::Table { path: self.path.clone(), message: m.clone() }),
        }
    }

    /// The ORC table if it is already loaded (no I/O).
    pub fn orc_if_loaded(&self) -> Option<&OwnedTable> {
        self.orc.get().and_then(|r| r.as_ref().ok()).map(|(t, _)| t)
    }

    fn load_orc(&self) -> Result<(OwnedTable, Origin), String> {
        let sidecar = self.sidecar_path();
        if let Some(p) = &sidecar {
            if let Some(rows) = self.read_sidecar(p) {
                return self.index(rows).map(|t| (t, Origin::Cache));
            }
        }
        let mut rows = linked_api::generate(self.data(), self.source)?;
        if let (Some(p), Some(id)) = (&sidecar, self.build_id()) {
            let (bytes, back) = linked_api::encode(id, rows);
            rows = back;
            // A cache that cannot be written is not an error: the table is still good.
            let _ = store_atomically(p, &bytes);
        }
        self.index(rows).map(|t| (t, Origin::Generated))
    }

    /// The rows of a sidecar for this file; `None` if it is missing, unreadable, or for
    /// another build-id (then it is regenerated and replaced).
    fn read_sidecar(&self, path: &Path) -> Option<Rows> {
        let bytes = std::fs::read(path).ok()?;
        let (id, rows) = linked_api::decode(&bytes).ok()?;
        (Some(id.as_slice()) == self.build_id()).then_some(rows)
    }

    fn index(&self, rows: Rows) -> Result<OwnedTable, String> {
        let mut text = self.text_range();
        if text.is_empty() {
            let lo = rows.ips.iter().copied().min().unwrap_or(0);
            let hi = rows.ips.iter().copied().max().unwrap_or(0);
            text = lo..hi.saturating_add(1);
        }
        OwnedTable::build(rows.ips.into_iter().zip(rows.entries), Layout::V3, text, IndexKind::default())
            .map_err(|e| format!("cannot index the table: {e:?}"))
    }

    /// The file's SFrame v3 table: the bytes of the section `orctool check --sframe` writes,
    /// placed at address 0 (so its addresses are link-time ones), read from the cache
    /// directory (`<build-id>.g<generator>.sframe`) or generated and stored on first call.
    /// The unwinder reads these bytes with `orc-sframe`'s reader: what it proves is what a
    /// file gets.
    pub fn sframe(&self) -> Result<&[u8], ProcessError> {
        match self.sframe.get_or_init(|| self.load_sframe()) {
            Ok((b, _)) => Ok(b),
            Err(m) => Err(ProcessError::Table { path: self.path.clone(), message: m.clone() }),
        }
    }

    fn sframe_path(&self) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{}.g{}.sframe", self.build_id_hex()?, orc_linked::GENERATOR)))
    }

    fn load_sframe(&self) -> Result<(Vec<u8>, Origin), String> {
        let path = self.sframe_path();
        if let Some(bytes) = path.as_ref().and_then(|p| std::fs::read(p).ok()) {
            if orc_sframe::read::Section::parse(&bytes, 0).and_then(|s| s.validate()).is_ok() {
                return Ok((bytes, Origin::Cache));
            }
        }
        let bytes = linked_api::generate_sframe(self.data())?;
        if let Some(p) = &path {
            let _ = store_atomically(p, &bytes);
        }
        Ok((bytes, Origin::Generated))
    }

    /// Whether loading the ORC table was tried and failed (no I/O).
    pub fn orc_failed(&self) -> Option<ProcessError> {
        match self.orc.get()? {
            Ok(_) => None,
            Err(m) => Some(ProcessError::Table { path: self.path.clone(), message: m.clone() }),
        }
    }

    /// The separate debug file (`/usr/lib/debug/.build-id/xx/yyyy.debug`, as distributions
    /// ship them), mapped on first use.
    fn debug_file(&self) -> Option<&Bytes> {
        self.debug
            .get_or_init(|| {
                let id = self.build_id_hex()?;
                if id.len() < 3 {
                    return None;
                }
                let path = PathBuf::from(format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..]));
                let file = File::open(&path).ok()?;
                let len = file.metadata().ok()?.len();
                Bytes::map(&file, len, &path).ok()
            })
            .as_ref()
    }

    /// The function containing link-time address `addr`, from the symbol tables: name and
    /// start. `.symtab` of the file, else of its separate debug file, else `.dynsym`.
    pub fn function_at(&self, addr: u64) -> Option<(&str, u64)> {
        let (syms, in_debug) = self.symbols.get_or_init(|| {
            let own = elfinfo::read_symbols(self.data(), false);
            if own.1 {
                return (own.0, false);
            }
            match self.debug_file().map(|d| elfinfo::read_symbols(d.as_slice(), true)) {
                Some((syms, true)) if !syms.is_empty() => (syms, true),
                _ => (own.0, false),
            }
        });
        let data = if *in_debug { self.debug_file()?.as_slice() } else { self.data() };
        elfinfo::find_symbol(syms, addr).map(|s| (s.name(data), s.start))
    }

    /// What the DWARF of the file (or of its separate debug file) says about link-time
    /// address `addr`: the containing function's name, the functions inlined at it
    /// (innermost first), and the file and line.
    pub fn debug_info_at(&self, addr: u64) -> Option<DebugInfo> {
        let mut guard = self.lines.lock().ok()?;
        let lines = guard.get_or_insert_with(|| {
            load_lines(self.data()).or_else(|| self.debug_file().and_then(|d| load_lines(d.as_slice())))
        });
        let ctx = &lines.as_ref()?.0;
        let mut frames = ctx.find_frames(addr).skip_all_loads().ok()?;
        let mut info = DebugInfo::default();
        let mut names = Vec::new();
        while let Ok(Some(f)) = frames.next() {
            if info.line.is_none() {
                if let Some(loc) = &f.location {
                    info.file = loc.file.map(str::to_string);
                    info.line = loc.line;
                }
            }
            names.push(f.function.as_ref().and_then(|n| n.raw_name().ok()).map(|n| n.into_owned()));
        }
        // The last frame is the function the code belongs to; the others were inlined into it.
        info.function = names.pop().flatten();
        info.inlined = names.into_iter().flatten().collect();
        Some(info)
    }
}

/// DWARF facts about one address.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DebugInfo {
    /// The (non-inlined) function containing the address.
    pub function: Option<String>,
    /// Functions inlined at the address, innermost first.
    pub inlined: Vec<String>,
    /// Source file.
    pub file: Option<String>,
    /// Source line.
    pub line: Option<u32>,
}

fn load_lines(data: &[u8]) -> Option<Lines> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(data).ok()?;
    file.section_by_name(".debug_info")?;
    let load = |id: gimli::SectionId| -> Result<ArcReader, gimli::Error> {
        use gimli::SectionId as S;
        // Variable locations, macros and CFI are no part of names and lines, and often the
        // largest sections: never decompressed.
        if matches!(id, S::DebugLoc | S::DebugLocLists | S::DebugMacinfo | S::DebugMacro | S::DebugFrame | S::DebugTypes) {
            return Ok(gimli::EndianArcSlice::new(Arc::from(&[][..]), gimli::LittleEndian));
        }
        // Decompressed if compressed (zlib or zstd); a section that does not decompress is
        // left out: no line info rather than an error.
        let bytes: Arc<[u8]> = match file.section_by_name(id.name()).and_then(|s| s.uncompressed_data().ok()) {
            Some(data) => Arc::from(&*data),
            None => Arc::from(&[][..]),
        };
        Ok(gimli::EndianArcSlice::new(bytes, gimli::LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    addr2line::Context::from_dwarf(dwarf).ok().map(Lines)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// that a reader never sees half a file.
pub(crate) fn store_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
