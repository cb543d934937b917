//! `orctool check` on executables and shared libraries: the ORC table from the analysis of
//! the machine code (with the converted `.eh_frame` for what the analysis could not do),
//! written into the file as non-allocated sections or into a sidecar file named by build-id.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use orc_elf::ElfFile;
use orc_linked::{build_id, generate, sidecar, Source};

use crate::check::{write_atomically, write_checked, CheckArgs};
use crate::input::FileError;

/// The table cache: `$ORCTOOL_CACHE`, else `$XDG_CACHE_HOME/orctool/orc`, else
/// `~/.cache/orctool/orc`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ORCTOOL_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("orctool").join("orc"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("orctool").join("orc"))
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Checks one linked file; the warnings and the summary go to `out`.
pub fn run(args: &CheckArgs, path: &Path, bytes: &[u8], file: &ElfFile<'_>, out: &mut String) -> Result<i32, FileError> {
    if args.sframe {
        return run_sframe(args, path, bytes, file, out);
    }
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
        let target = sidecar_path(args, path, file, "orc")?;
        write_atomically(&target, &sidecar::encode(build_id(file).unwrap_or(&[]), &table))?;
        summary += &format!("; wrote {}", target.display());
    } else if !args.dry_run && args.orc {
        let written = orc_linked::write::add_orc_sections(bytes, &table).map_err(|e| FileError::new(path, e))?;
        let target = write_checked(args, path, &written)?;
        summary += &format!("; wrote .orc_unwind_ip, .orc_unwind, .orc_header into {}", target.display());
    }
    let _ = writeln!(out, "{summary}");
    Ok(if args.werror && !r.problems.is_empty() { 1 } else { 0 })
}

/// `DIR/<build-id>.EXT` for `--sidecar[=DIR]`, the directory made if needed.
fn sidecar_path(args: &CheckArgs, path: &Path, file: &ElfFile<'_>, ext: &str) -> Result<PathBuf, FileError> {
    let id = build_id(file).ok_or_else(|| FileError::new(path, "has no build-id (NT_GNU_BUILD_ID) to name a sidecar file by"))?;
    let dir = match args.sidecar.clone().flatten() {
        Some(d) => d,
        None => cache_dir().ok_or_else(|| FileError::new(path, "no cache directory (set ORCTOOL_CACHE or HOME)"))?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| FileError::new(&dir, e))?;
    Ok(dir.join(format!("{}.{ext}", hex(id))))
}

/// `--sframe`: the SFrame v3 table, written, then read back with orctool's reader and checked
/// row for row against what was meant before the file is renamed into place.
fn run_sframe(args: &CheckArgs, path: &Path, bytes: &[u8], file: &ElfFile<'_>, out: &mut String) -> Result<i32, FileError> {
    let name = path.display().to_string();
    let table = orc_linked::sframe::generate(file).map_err(|e| FileError::new(path, e))?;
    let s = &table.stats;
    let rows: usize = table.functions.iter().map(|f| f.rows.len()).sum();
    let mut summary = format!(
        "orctool: {name}: SFrame v3, {} FDEs ({} flexible), {rows} FREs ({} rows from the analysis and ORC, {} from CFI ORC cannot express, {} CFI rows neither can)",
        table.functions.len(),
        s.flexible_fdes,
        s.from_orc,
        s.from_cfi,
        s.cfi_unexpressible
    );
    let encode = |addr: u64| orc_sframe::write::write(&table.functions, addr).map_err(|e| e.to_string());
    let check = |data: &[u8], addr: u64| -> Result<(), FileError> {
        crate::sframe_dump::same_as_written(data, addr, &table.functions).map_err(|e| FileError::new(path, format!("SFrame read back differs: {e}")))
    };
    if args.dry_run || args.sidecar.is_some() {
        let data = encode(0).map_err(|e| FileError::new(path, e))?;
        check(&data, 0)?;
        summary += &format!(", {} bytes", data.len());
        if !args.dry_run {
            let target = sidecar_path(args, path, file, "sframe")?;
            write_atomically(&target, &data)?;
            summary += &format!("; wrote {}", target.display());
        }
    } else {
        let (written, addr) = orc_linked::write::add_sframe_segment(bytes, encode).map_err(|e| FileError::new(path, e))?;
        let (data, at) = crate::sframe_dump::section_of(&written).map_err(|e| FileError::new(path, e))?;
        if at != addr {
            return Err(FileError::new(path, "the written .sframe section is not where it was placed"));
        }
        check(data, at)?;
        let len = data.len();
        let target = write_checked(args, path, &written)?;
        summary += &format!(", {len} bytes; wrote .sframe (PT_GNU_SFRAME at {addr:#x}) into {}", target.display());
    }
    let _ = writeln!(out, "{summary}");
    Ok(0)
}
