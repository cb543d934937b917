//! `orctool sframe-dump`: the SFrame v3 section of a file read with orctool's own reader and
//! printed in the layout of binutils' `objdump --sframe`, so that the two can be compared row
//! for row (`scripts/sframe-compare.sh`, the CLI tests).

use std::fmt::Write as _;
use std::path::PathBuf;

use orc_elf::ElfFile;
use orc_sframe::read::Section;
use orc_sframe::write::Function;
use orc_sframe::{Rule, Saved};

use crate::input::FileError;

// Arguments of `orctool sframe-dump`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct SframeDumpArgs {
    /// ELF files with an `.sframe` section, or (with `--raw`) sidecar files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The files are bare sections (`orctool check --sframe --sidecar`), at address 0.
    #[arg(long)]
    pub raw: bool,
}

/// The `.sframe` section of an ELF file and its address.
pub fn section_of(bytes: &[u8]) -> Result<(&[u8], u64), String> {
    let elf = ElfFile::parse(bytes).map_err(|e| e.to_string())?;
    let s = elf.section_by_name(".sframe").map_err(|e| e.to_string())?.ok_or("no .sframe section")?;
    Ok((s.data, s.address))
}

/// Reads `data` (at `addr`) back and checks that it holds exactly `functions`.
pub fn same_as_written(data: &[u8], addr: u64, functions: &[Function]) -> Result<(), String> {
    let s = Section::parse(data, addr).map_err(|e| e.to_string())?;
    s.validate().map_err(|e| e.to_string())?;
    if s.len() as usize != functions.len() {
        return Err(format!("{} FDEs, {} written", s.len(), functions.len()));
    }
    for (f, want) in s.fdes().zip(functions) {
        let f = f.map_err(|e| e.to_string())?;
        let rows: Result<Vec<_>, _> = s.rows(&f).collect();
        let rows = rows.map_err(|e| e.to_string())?;
        if (f.start, f.size, f.signal) != (want.start, want.size, want.signal) || rows != want.rows {
            return Err(format!("FDE {} at {:#x}", f.index, f.start));
        }
    }
    Ok(())
}

/// The dump of one section, in `objdump --sframe`'s layout (its "Function Index" part).
pub fn dump(data: &[u8], addr: u64) -> Result<String, String> {
    let s = Section::parse(data, addr).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let h = &s.header;
    let _ = writeln!(out, "  Header :\n\n    Version: SFRAME_VERSION_3\n    Num FDEs: {}\n    Num FREs: {}\n\n  Function Index :\n", h.num_fdes, h.num_fres);
    for f in s.fdes() {
        let f = f.map_err(|e| e.to_string())?;
        let mut attr = String::new();
        if f.signal {
            attr.push('S');
        }
        if f.flexible {
            attr.push('F');
        }
        let attr = if attr.is_empty() { String::new() } else { format!(", attr = \"{attr}\"") };
        let _ = writeln!(out, "    func idx [{}]: pc = {:#x}, size = {} bytes{attr}", f.index, f.start, f.size);
        let _ = writeln!(out, "    STARTPC         CFA       FP        RA");
        for r in s.rows(&f) {
            let r = r.map_err(|e| e.to_string())?;
            let pc = f.start + u64::from(r.start);
            match r.rule {
                Rule::Outermost => {
                    let _ = writeln!(out, "    {pc:016x}  RA undefined");
                }
                Rule::Frame { cfa, ra, fp } => {
                    let ra = if ra == Saved::Default { "f".to_string() } else { ra.to_string() };
                    let _ = writeln!(out, "    {pc:016x}  {:<9} {:<9} {ra}", cfa.to_string(), fp.to_string());
                }
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// Runs the command; returns the exit code.
pub fn run(args: &SframeDumpArgs) -> i32 {
    let mut code = 0;
    for path in &args.files {
        let result = std::fs::read(path).map_err(|e| e.to_string()).and_then(|bytes| {
            let (data, addr) = if args.raw { (&bytes[..], 0) } else { section_of(&bytes)? };
            dump(data, addr)
        });
        match result {
            Ok(text) => print!("{}:\n\nContents of the SFrame section .sframe:\n{text}", path.display()),
            Err(e) => {
                eprintln!("{}", FileError::new(path, e));
                code = 2;
            }
        }
    }
    code
}
