//! Prints what the analysis and the converter make of each file given: functions, problems,
//! rows, time. `-v` lists the problems.

use std::time::Instant;

use orc_linked::{generate, Source};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    for path in args.iter().filter(|a| *a != "-v") {
        let Ok(bytes) = std::fs::read(path) else { continue };
        let Ok(elf) = orc_elf::ElfFile::parse(&bytes) else { continue };
        let t = Instant::now();
        let table = match generate(&elf, Source::Combined) {
            Ok(t) => t,
            Err(e) => {
                println!("{path}: {e}");
                continue;
            }
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let r = &table.report;
        println!(
            "{path}: {} functions ({:?}), {} clean, {} from converter, {} problems, {} instructions, {} rows, {ms:.1} ms",
            r.functions.total(),
            r.functions,
            r.analysed,
            r.from_converter,
            r.problems.len(),
            r.instructions,
            r.rows
        );
        if verbose {
            for p in &r.problems {
                println!("  {}", p.render(path));
            }
        }
    }
}
