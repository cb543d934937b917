//! `orctool cfi-compare`: the analysis of linked code against the converted `.eh_frame`, one
//! line per file, and with `-v` every difference.

use std::io::Write as _;
use std::path::PathBuf;

use orc_elf::ElfFile;
use orc_linked::compare::{compare, Comparison};
use rayon::prelude::*;

use crate::input::{read_input, FileError};

// Options of `orctool cfi-compare`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct CfiCompareArgs {
    /// Executables and shared libraries.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// One JSON object per file (and a `total` object last) instead of text.
    #[arg(long)]
    pub json: bool,
    /// List every difference and every instruction the analysis has no entry for.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

fn one(path: &PathBuf) -> Result<Comparison, FileError> {
    let bytes = read_input(path)?;
    let elf = ElfFile::parse(&bytes).map_err(|e| FileError::new(path, e))?;
    compare(&elf).map_err(|e| FileError::new(path, e))
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Runs the command; returns the exit code (2 if a file could not be read).
pub fn run(args: &CfiCompareArgs) -> i32 {
    let results: Vec<Result<Comparison, FileError>> = args.files.par_iter().map(one).collect();
    let mut total = Comparison::default();
    let mut code = 0;
    let mut files = 0;
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    // A closed pipe (`| head`) ends the output quietly.
    macro_rules! println {
        ($($t:tt)*) => {
            if writeln!(stdout, $($t)*).is_err() {
                return code;
            }
        };
    }
    for (path, r) in args.files.iter().zip(results) {
        let name = path.display().to_string();
        let c = match r {
            Ok(c) => c,
            Err(e) => {
                eprintln!("orctool: {e}");
                code = 2;
                continue;
            }
        };
        files += 1;
        total.add(&c);
        if args.json {
            let differences: Vec<_> = c
                .differences
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "addr": d.addr, "function": d.function, "offset": d.offset,
                        "analysis": format!("{:?}", d.analysis), "converter": format!("{:?}", d.converter),
                    })
                })
                .collect();
            let mut v = counts_json(&c);
            v["file"] = name.into();
            v["differences"] = (if args.verbose { differences } else { Vec::new() }).into();
            println!("{v}");
        } else {
            println!("{name}: {}", counts_text(&c));
            if args.verbose {
                for d in &c.differences {
                    println!(
                        "  differ {}+{:#x} ({:#x}): analysis {}, converter {}",
                        d.function,
                        d.offset,
                        d.addr,
                        describe(&d.analysis),
                        describe(&d.converter)
                    );
                }
                for (addr, function, offset) in &c.missing {
                    println!("  missing {function}+{offset:#x} ({addr:#x})");
                }
            }
        }
    }
    if files > 1 {
        if args.json {
            let mut v = counts_json(&total);
            v["total"] = files.into();
            println!("{v}");
        } else {
            println!("total: {files} files, {}", counts_text(&total));
        }
    }
    code
}

/// The counts of a comparison, as printed for a file and for the total.
fn counts_text(c: &Comparison) -> String {
    format!(
        "{} instructions, {} agree ({:.2}%), {} differ ({} bp only), {} unexpressible, {} analysis-missing",
        c.instructions,
        c.agree,
        percent(c.agree, c.instructions),
        c.differ,
        c.bp_only,
        c.unexpressible,
        c.analysis_missing
    )
}

/// The counts of a comparison as a JSON object.
fn counts_json(c: &Comparison) -> serde_json::Value {
    serde_json::json!({
        "instructions": c.instructions, "agree": c.agree, "differ": c.differ, "bp_only": c.bp_only,
        "unexpressible": c.unexpressible, "analysis_missing": c.analysis_missing,
    })
}

/// `call sp+16 bp=prevsp-16`.
fn describe(e: &orc_format::Entry) -> String {
    let reg = |r: orc_format::Reg| r.name().unwrap_or("?");
    let mut s = format!("{:?} {}{:+}", e.kind, reg(e.sp_reg), e.sp_offset);
    if e.bp_reg != orc_format::Reg::UNDEFINED {
        s += &format!(" bp={}{:+}", reg(e.bp_reg), e.bp_offset);
    }
    s
}
