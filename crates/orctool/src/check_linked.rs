//! `orctool check` on executables and shared libraries: the ORC table from the analysis of
//! the machine code (with the converted `.eh_frame` for what the analysis could not do),
//! written into the file as non-allocated sections or into a sidecar file named by build-id.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use orc_elf::ElfFile;
use orc_linked::{build_id, generate, sidecar, Source};

use crate::check::{write_atomically, write_checked, CheckArgs};
use crate::input::{FileError, Identity};

/// The table cache of every command: the directory given, else orc-process's default
/// (`$ORCTOOL_CACHE`, `$XDG_CACHE_HOME/orctool/orc`, `~/.cache/orctool/orc`), else one error,
/// the same for every command, naming the option that gives one (`how`).
pub fn cache_dir(given: Option<&PathBuf>, how: &str) -> Result<PathBuf, FileError> {
    given
        .cloned()
        .or_else(orc_process::TableCache::default_dir)
        .ok_or_else(|| FileError::new(Path::new("cache"), format!("{} ({how})", orc_process::NO_CACHE_DIR)))
}

/// Checks one linked file; the warnings and the summary go to `out`.
pub fn run(args: &CheckArgs, path: &Path, read_as: Option<&Identity>, bytes: &[u8], file: &ElfFile<'_>, out: &mut String) -> Result<i32, FileError> {
    let name = path.display().to_string();
    let table = generate(file, Source::Combined).map_err(|e| FileError::new(path, e))?;
    let r = &table.report;
    for p in &r.problems {
        let _ = writeln!(out, "{}", p.render(&name));
    }
    let f = &r.functions;
    let mut summary = format!(
        "orctool: {name}: {} functions ({} .symtab, {} .eh_frame, {} .dynsym, {} loader-called, {} PLT), {} analysed, {} from .eh_frame, {} problems, {} instructions, {} ORC entries",
        f.total(),
        f.symtab,
        f.eh_frame,
        f.dynsym + f.entry,
        f.loader,
        f.plt,
        r.analysed,
        r.from_converter,
        r.problems.len(),
        r.instructions,
        r.rows
    );
    let wants_sidecar = args.sidecar.is_some();
    if !args.dry_run && wants_sidecar {
        let id = build_id(file).ok_or_else(|| FileError::new(path, "has no build-id (NT_GNU_BUILD_ID) to name a sidecar file by"))?;
        let dir = cache_dir(args.sidecar.as_ref().and_then(Option::as_ref), "--sidecar=DIR")?;
        std::fs::create_dir_all(&dir).map_err(|e| FileError::new(&dir, e))?;
        let stem = sidecar::file_stem(id).ok_or_else(|| FileError::new(path, "has an empty build-id (NT_GNU_BUILD_ID) to name a sidecar file by"))?;
        let target = dir.join(format!("{stem}.orc"));
        write_atomically(&target, &sidecar::encode(id, &table))?;
        summary += &format!("; wrote {}", target.display());
    } else if !args.dry_run && args.orc {
        let written = orc_linked::write::add_orc_sections(bytes, &table).map_err(|e| FileError::new(path, e))?;
        let target = write_checked(args, path, read_as, &written)?;
        summary += &format!("; wrote .orc_unwind_ip, .orc_unwind, .orc_header into {}", target.display());
    }
    let _ = writeln!(out, "{summary}");
    Ok(if args.werror && !r.problems.is_empty() { 1 } else { 0 })
}
