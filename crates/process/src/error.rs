//! The one error type of the crate.

use std::path::PathBuf;

/// Why a process, a core file or one of their ELF files could not be used. Each variant names
/// the file or process and what is wrong, in one line.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// An ELF file (a mapped object or a core file) is malformed or not usable.
    #[error("{}: {message}", path.display())]
    Elf {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// No ORC table could be made for a file.
    #[error("{}: cannot make an ORC table: {message}", path.display())]
    Table {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A ptrace or /proc operation on a process or thread failed.
    #[error("process {pid}: {message}")]
    Process {
        /// The process or thread id.
        pid: i32,
        /// What failed.
        message: String,
    },
}

impl ProcessError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ProcessError::Io { path: path.into(), source }
    }

    pub(crate) fn elf(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        ProcessError::Elf { path: path.into(), message: message.to_string() }
    }

    pub(crate) fn process(pid: i32, message: impl std::fmt::Display) -> Self {
        ProcessError::Process { pid, message: message.to_string() }
    }
}
