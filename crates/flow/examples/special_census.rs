//! Parses every special section of every `.ko` under a directory and reports counts.
//!
//!     cargo run --release -p orc-flow --example special_census -- DIR [--era 6.12] [--features] [--dump]
//!
//! The era comes from each module's `vermagic` unless `--era` is given. Prints, per section,
//! the number of modules that have records and the total number of records, then the files
//! that failed (one line each). `--features` adds a histogram of alternative features;
//! `--dump` prints every record of every file (objtool's output sections excepted).
//! Exits 1 if any module failed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orc_elf::ElfFile;
use orc_flow::special::cpufeatures;
use orc_flow::{Counts, KernelEra, SpecialSections};

fn modules(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ko" || x == "o") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn print_records(path: &Path, file: &ElfFile<'_>, s: &SpecialSections<'_>) {
    let at = |l: orc_flow::Location| {
        let name = file.section(l.section).map(|s| s.name).unwrap_or("?");
        format!("{name}+{:#x}", l.offset)
    };
    println!("== {}", path.display());
    for a in &s.alternatives {
        let repl = a.replacement.map(at).unwrap_or_else(|| "-".into());
        println!(
            "alt {}: {} -> {repl} feature {} (cpuid {}, flags {:#x}) len {}/{} group {}",
            a.index,
            at(a.orig),
            a.feature,
            a.cpuid,
            a.flags.0,
            a.orig_len,
            a.repl_len,
            a.group_orig_len
        );
    }
    for j in &s.jump_labels {
        println!("jump {}: {} -> {} key {}{:+}", j.index, at(j.code), at(j.target), j.key.name, j.key.addend);
    }
    for x in &s.exception_table {
        println!("extable {}: {} -> {} data {:#x}", x.index, at(x.insn), at(x.fixup), x.data);
    }
    for h in &s.unwind_hints {
        println!(
            "hint {}: {} {:?} (type {}) sp_reg {} sp_offset {} signal {:?} end {:?}",
            h.index,
            at(h.site),
            h.kind,
            h.raw_type,
            h.sp_reg.0,
            h.sp_offset,
            h.signal,
            h.end
        );
    }
    for a in &s.annotations {
        println!("annotation {} {}: {:?} at {}", a.section, a.index, a.kind, at(a.site));
    }
    for f in &s.non_standard_frames {
        println!("non-standard frame {}: {:?}", f.index, f.target);
    }
    for p in &s.paravirt {
        println!("paravirt {}: {} type {} len {} clobbers {:#x}", p.index, at(p.instr), p.pv_type, p.len, p.clobbers);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut era = None;
    let mut features = false;
    let mut dump = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--era" => era = Some(KernelEra::parse(&args.next().expect("--era VERSION")).expect("an era such as 6.12")),
            "--features" => features = true,
            "--dump" => dump = true,
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.expect("usage: special_census DIR [--era X.Y] [--features]");
    let files = modules(&dir);
    let mut total = Counts::default();
    let mut with: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut eras: BTreeMap<String, usize> = BTreeMap::new();
    let mut feature_hist: BTreeMap<(u16, u16), usize> = BTreeMap::new();
    let mut ok = 0;
    for path in &files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let file = match ElfFile::parse(&bytes) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let module_era = era.or_else(|| KernelEra::from_file(&file)).unwrap_or(KernelEra::V6_12);
        *eras.entry(module_era.to_string()).or_default() += 1;
        match SpecialSections::read(&file, module_era) {
            Ok(s) => {
                ok += 1;
                if dump {
                    print_records(path, &file, &s);
                }
                let c = s.counts();
                for (name, n) in c.fields() {
                    if n > 0 {
                        *with.entry(name).or_default() += 1;
                    }
                }
                total += c;
                for a in &s.alternatives {
                    *feature_hist.entry((a.cpuid, a.flags.0)).or_default() += 1;
                }
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    println!("{} files, {} parsed, {} failed; eras {:?}", files.len(), ok, failures.len(), eras);
    println!("{:<40} {:>8} {:>10}", "section", "modules", "records");
    for (name, n) in total.fields() {
        println!("{:<40} {:>8} {:>10}", name, with.get(name).copied().unwrap_or(0), n);
    }
    if features {
        let era = era.unwrap_or(KernelEra::V6_12);
        println!("alternative features (cpuid, flags): entries");
        for ((cpuid, flags), n) in &feature_hist {
            let name = match (cpufeatures::name(era, *cpuid), cpufeatures::bug_name(*cpuid)) {
                (Some(n), _) => n.to_string(),
                (None, Some(b)) => format!("BUG_{b}"),
                (None, None) => format!("{}*32+{}", cpuid / 32, cpuid % 32),
            };
            println!("  {cpuid:>4} {name:<20} flags {flags:#x}: {n}");
        }
    }
    for f in &failures {
        println!("FAILED {f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
