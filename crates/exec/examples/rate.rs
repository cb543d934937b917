//! The cost of checking: steps per second of verify-exec against a bare single-step loop
//! (`raw_single_step`: PTRACE_SINGLESTEP + waitpid, nothing else) on the same program, run
//! alternately so that both see the same machine load.
//!
//!   cargo run --release -p orc-exec --example rate -- [--rounds N] [--every N] -- CMD ARGS
//!
//! Prints each round and the median ratio (checked rate / bare rate). Tables come from the
//! default cache directory (the first round may generate them: it is a warm-up, not counted).

use orc_exec::{raw_single_step, run, Options};
use orc_process::{Source, TableCache};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (opts, command) = (&args[..split], args.get(split + 1..).unwrap_or(&[]));
    let value = |name: &str, default: u64| {
        opts.iter().position(|a| a == name).and_then(|i| opts.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let rounds = value("--rounds", 5);
    let every = value("--every", 1);
    if command.is_empty() {
        eprintln!("usage: rate [--rounds N] [--every N] -- CMD ARGS");
        std::process::exit(2);
    }
    let cache = TableCache::with_default_dir(Source::Combined);
    let checked_rate = || {
        let report = run(command, &cache, Options { every, ..Options::default() }).expect("verify-exec run");
        report.steps_per_second()
    };
    checked_rate(); // warm-up: tables generated and cached
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let (steps, seconds, _) = raw_single_step(command, None).expect("bare run");
        let bare = steps as f64 / seconds;
        let checked = checked_rate();
        println!("round {round}: bare {bare:.0} steps/s, verify-exec (every {every}) {checked:.0} steps/s, ratio {:.2}", checked / bare);
        ratios.push(checked / bare);
    }
    ratios.sort_by(f64::total_cmp);
    println!("median ratio {:.2} over {rounds} rounds", ratios[ratios.len() / 2]);
}
