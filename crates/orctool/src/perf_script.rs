//! `orctool perf-script`: a perf.data from `perf record --call-graph dwarf`, its user stacks
//! unwound with ORC, printed as `perf script` prints them (so that the scripts that read
//! `perf script`, flame-graph collapsers among them, read it unchanged).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use orc_process::{Source, TableCache};
use orc_profile::{KernelSymbols, Options, ProfileError};

// Named after `perf script`, whose output it reproduces, with its `-i` and `--max-stack`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(Args, Debug)]
pub struct PerfScriptArgs {
    /// The profile (perf's default name).
    #[arg(short = 'i', long = "input", default_value = "perf.data")]
    pub input: PathBuf,
    /// At most this many frames per sample, kernel and user together (perf's default).
    #[arg(long, default_value_t = 127)]
    pub max_stack: usize,
    /// Leave out the functions inlined at user addresses (no DWARF is read).
    #[arg(long)]
    pub no_inline: bool,
    /// Where the ORC tables of the profiled files are cached (default: $ORCTOOL_CACHE, else
    /// $XDG_CACHE_HOME/orctool/orc, else ~/.cache/orctool/orc).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Print the counts (samples, user and kernel frames) on stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

pub fn run(args: &PerfScriptArgs) -> i32 {
    let cache = match args.cache_dir.clone() {
        Some(dir) => TableCache::new(dir, Source::Combined),
        None => TableCache::with_default_dir(Source::Combined),
    };
    let kernel = KernelSymbols::running();
    let options = Options { max_stack: args.max_stack, inline: !args.no_inline };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let started = std::time::Instant::now();
    match orc_profile::perf_script(&args.input, &mut out, &cache, &kernel, options) {
        Ok(stats) => {
            if args.stats {
                eprintln!(
                    "orctool: {}: {} samples, {} user frames, {} kernel frames in {:.3} s",
                    args.input.display(),
                    stats.samples,
                    stats.user_frames,
                    stats.kernel_frames,
                    started.elapsed().as_secs_f64()
                );
            }
            0
        }
        // A reader that stops early (`| head`) is not an error.
        Err(ProfileError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = out.flush();
            eprintln!("orctool: {e}");
            2
        }
    }
}
