//! `orctool compare-objects A B`: are two relocatable objects the same to a linker? Every
//! section's bytes and attributes, the symbol table as a set, relocations by symbol name;
//! layout aside (`orc_elf::compare`). The check behind "orctool writes what objtool writes".

use std::path::PathBuf;

use orc_elf::compare::{compare_objects, Difference};
use orc_elf::ElfFile;

use crate::input::{read_input, FileError};

// Options of `orctool compare-objects`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct CompareObjectsArgs {
    /// The first object (e.g. what objtool wrote).
    pub first: PathBuf,
    /// The second object (e.g. what orctool wrote).
    pub second: PathBuf,
    /// Differences shown per kind (sections, relocations, symbols).
    #[arg(long, default_value_t = 20)]
    pub max_shown: usize,
    /// One JSON object: the counts and every difference kept.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command: exit 0 if the objects are the same, 1 if they differ, 2 on bad input.
pub fn run(args: &CompareObjectsArgs) -> i32 {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("orctool: {e}");
            2
        }
    }
}

fn run_inner(args: &CompareObjectsArgs) -> Result<i32, FileError> {
    let a_bytes = read_input(&args.first)?;
    let b_bytes = read_input(&args.second)?;
    let a = ElfFile::parse(&a_bytes).map_err(|e| FileError::new(&args.first, e))?;
    let b = ElfFile::parse(&b_bytes).map_err(|e| FileError::new(&args.second, e))?;
    // Keep a few more than shown so the count says "more"; a cap keeps unrelated files cheap.
    let keep = args.max_shown.saturating_mul(50).max(1000);
    let cmp = compare_objects(&a, &b, keep).map_err(|e| FileError::new(&args.first, format!("comparing with {}: {e}", args.second.display())))?;
    if args.json {
        let diffs: Vec<serde_json::Value> = cmp.differences.iter().map(difference_json).collect();
        let v = serde_json::json!({
            "first": args.first.display().to_string(),
            "second": args.second.display().to_string(),
            "identical": cmp.identical(),
            "sections": cmp.sections,
            "symbols": cmp.symbols,
            "relocations": cmp.relocations,
            "differences": diffs,
        });
        println!("{v}");
    } else if cmp.identical() {
        println!(
            "identical: {} sections, {} symbols, {} relocations",
            cmp.sections, cmp.symbols, cmp.relocations
        );
    } else {
        let kinds = [
            ("section", cmp.differences.iter().filter(|d| matches!(d, Difference::MissingSection { .. } | Difference::Attribute { .. } | Difference::Bytes { .. })).collect::<Vec<_>>()),
            ("relocation", cmp.differences.iter().filter(|d| matches!(d, Difference::Relocation { .. })).collect()),
            ("symbol", cmp.differences.iter().filter(|d| matches!(d, Difference::Symbol { .. })).collect()),
        ];
        let mut summary = Vec::new();
        for (kind, diffs) in &kinds {
            for d in diffs.iter().take(args.max_shown) {
                println!("{d}");
            }
            if diffs.len() > args.max_shown {
                println!("... {} more {kind} differences", diffs.len() - args.max_shown);
            }
            if !diffs.is_empty() {
                let capped = if diffs.len() >= keep { "+" } else { "" };
                summary.push(format!("{}{capped} {kind}", diffs.len()));
            }
        }
        println!(
            "different: {} ({} sections, {} symbols, {} relocations compared)",
            summary.join(", "),
            cmp.sections,
            cmp.symbols,
            cmp.relocations
        );
    }
    Ok(if cmp.identical() { 0 } else { 1 })
}

fn difference_json(d: &Difference) -> serde_json::Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match d {
        Difference::MissingSection { section, in_first } => {
            serde_json::json!({"kind": "missing-section", "section": section, "in_first": in_first})
        }
        Difference::Attribute { section, what, first, second } => {
            serde_json::json!({"kind": "attribute", "section": section, "attribute": what, "first": first, "second": second})
        }
        Difference::Bytes { section, first_offset, count, first, second } => serde_json::json!({
            "kind": "bytes", "section": section, "offset": first_offset, "count": count,
            "first": hex(first), "second": hex(second),
        }),
        Difference::Relocation { section, relocation, surplus } => {
            serde_json::json!({"kind": "relocation", "section": section, "relocation": relocation, "surplus": surplus})
        }
        Difference::Symbol { symbol, surplus } => {
            serde_json::json!({"kind": "symbol", "symbol": symbol, "surplus": surplus})
        }
    }
}
