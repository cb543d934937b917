//! Getting input files into memory: mapping plain files, decompressing `.xz` modules, and
//! walking directories.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A failure tied to one input file; printed as `orctool: FILE: message`.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it, one line.
    pub message: String,
}

impl FileError {
    pub fn new(path: &Path, message: impl fmt::Display) -> Self {
        FileError { path: path.to_path_buf(), message: message.to_string() }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The bytes of one input file.
pub enum InputBytes {
    /// A plain file, mapped read-only.
    Mapped(memmap2::Mmap),
    /// A decompressed file, or an empty one (which cannot be mapped).
    Owned(Vec<u8>),
}

impl Deref for InputBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            InputBytes::Mapped(m) => m,
            InputBytes::Owned(v) => v,
        }
    }
}

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";

/// Reads `path`: maps it, or decompresses it if it is an xz stream (Debian ships modules as
/// `.ko.xz`).
pub fn read_input(path: &Path) -> Result<InputBytes, FileError> {
    let file = File::open(path).map_err(|e| FileError::new(path, e))?;
    let meta = file.metadata().map_err(|e| FileError::new(path, e))?;
    if meta.is_dir() {
        return Err(FileError::new(path, "is a directory"));
    }
    if meta.len() == 0 {
        return Ok(InputBytes::Owned(Vec::new()));
    }
    // SAFETY: the map is read-only and private to this process. If another process truncates
    // the file while we read it we may get SIGBUS, the same contract every mmap-based tool
    // (objtool's libelf included) accepts; we never write through it.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| FileError::new(path, e))?;
    if map.starts_with(XZ_MAGIC) {
        let mut out = Vec::with_capacity(map.len() * 4);
        lzma_rs::xz_decompress(&mut BufReader::new(&map[..]), &mut out)
            .map_err(|e| FileError::new(path, format!("cannot decompress xz: {e}")))?;
        return Ok(InputBytes::Owned(out));
    }
    Ok(InputBytes::Mapped(map))
}

/// What a file was when it was read (device, inode, size, modification time). A file about to
/// be written over is written only if it still is: otherwise another writer (a second
/// `check` of the same file, an editor, a build) changed it meanwhile, and the result, made
/// from the old contents, would undo that.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Identity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Identity {
    fn from_meta(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity { dev: meta.dev(), ino: meta.ino(), len: meta.len(), mtime: (meta.mtime(), meta.mtime_nsec()) }
    }

    /// The file at `path` now.
    pub fn of(path: &Path) -> Result<Identity, FileError> {
        std::fs::metadata(path).map(|m| Identity::from_meta(&m)).map_err(|e| FileError::new(path, e))
    }
}

/// Reads `path` whole into memory, for a file that will be written over: a copy cannot fault
/// when another process truncates the file meanwhile (a mapping would, with SIGBUS). Returns
/// the file's identity as it was opened.
pub fn read_for_rewrite(path: &Path) -> Result<(InputBytes, Identity), FileError> {
    use std::io::Read as _;
    let mut file = File::open(path).map_err(|e| FileError::new(path, e))?;
    let meta = file.metadata().map_err(|e| FileError::new(path, e))?;
    if meta.is_dir() {
        return Err(FileError::new(path, "is a directory"));
    }
    let identity = Identity::from_meta(&meta);
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| FileError::new(path, e))?;
    if bytes.starts_with(XZ_MAGIC) {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        lzma_rs::xz_decompress(&mut BufReader::new(&bytes[..]), &mut out)
            .map_err(|e| FileError::new(path, format!("cannot decompress xz: {e}")))?;
        return Ok((InputBytes::Owned(out), identity));
    }
    Ok((InputBytes::Owned(bytes), identity))
}

/// True for the names orctool picks up when walking a directory: kernel modules (plain or
/// xz), relocatable objects, and `vmlinux`.
fn is_candidate(name: &str) -> bool {
    name.ends_with(".ko") || name.ends_with(".ko.xz") || name.ends_with(".o") || name == "vmlinux"
}

/// Expands the command line's paths: files as given, directories walked recursively for
/// candidate files, in sorted order so that output is deterministic.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| FileError::new(path, e))?;
        if meta.is_dir() {
            let start = out.len();
            walk(path, &mut out)?;
            out[start..].sort();
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), FileError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FileError::new(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| FileError::new(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| FileError::new(&path, e))?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if kind.is_file() && path.file_name().and_then(|n| n.to_str()).is_some_and(is_candidate) {
            out.push(path);
        }
    }
    Ok(())
}
