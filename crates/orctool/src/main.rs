//! `orctool`: the command line. Thin by design: each command parses its options and calls the
//! library crates; nothing here knows ELF or x86.

mod alloc;
mod annotate;
mod cfi_compare;
mod check;
mod check_linked;
mod compare_objects;
mod dump;
mod input;
mod perf_script;
mod progress;
mod sframe_dump;
mod unwind;
mod verify_exec;
mod verify_patching;

use clap::{CommandFactory, FromArgMatches, Subcommand};

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

#[derive(clap::Parser, Debug)]
#[command(name = "orctool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `defer`: a command's options are built only when that command runs (or its help is shown).
// kbuild starts one process per object, and building every command's parser up front was a
// third of the instructions of `orctool dump` on a small module. (A deferred command takes its
// description from the options struct's doc comment over the one here: they have none.)
#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Command {
    /// Print the ORC table of kernel objects, modules or vmlinux, as objtool --dump=orc does.
    Dump(dump::DumpArgs),
    /// Show code, patch sites, stack states and the ORC table side by side (no file: the
    /// embedded 2017 paravirt example).
    Annotate(annotate::AnnotateArgs),
    /// Unwind with ORC: a live process (--pid, every thread), a core dump (--core), or a kernel
    /// stack snapshot with the tables of vmlinux and modules (--snapshot).
    Unwind(unwind::UnwindArgs),
    /// Validate the stack state of an x86-64 kernel object, or analyse an executable or shared
    /// library, and write its ORC table (objtool's flags).
    Check(check::CheckArgs),
    /// Prove the ORC table right at every patch site by applying each patch as the kernel does.
    VerifyPatching(verify_patching::VerifyPatchingArgs),
    /// Prove ORC by execution: single-step a program, keep a shadow stack of its calls and
    /// returns, and compare ORC unwinds against it.
    VerifyExec(verify_exec::VerifyExecArgs),
    /// Compare the analysis of executables and shared libraries with their `.eh_frame`, one
    /// line per file.
    CfiCompare(cfi_compare::CfiCompareArgs),
    /// Compare two objects as a linker sees them: sections' bytes, symbols as a set,
    /// relocations by symbol name (layout aside). Exit 0 if the same, 1 if not.
    CompareObjects(compare_objects::CompareObjectsArgs),
    /// A perf.data from `perf record --call-graph dwarf`, its user stacks unwound with ORC,
    /// printed as `perf script` prints it.
    PerfScript(perf_script::PerfScriptArgs),
    /// Print the SFrame v3 section of a file (as `objdump --sframe` lays it out), read with
    /// orctool's own reader.
    SframeDump(sframe_dump::SframeDumpArgs),
}

/// objtool is run as `objtool --dump=orc FILE` (5.18+); accept that spelling so orctool can
/// stand in for it: a first argument that is an objtool option selects the matching command.
fn objtool_style(args: Vec<String>) -> Vec<String> {
    let Some(first) = args.get(1) else { return args };
    if !first.starts_with("--") || matches!(first.as_str(), "--help" | "--version") {
        return args;
    }
    let command = if args.iter().any(|a| a == "--dump" || a.starts_with("--dump=")) { "dump" } else { "check" };
    let mut out = vec![args[0].clone(), command.to_string()];
    out.extend(args.into_iter().skip(1));
    out
}

/// `Cli::parse_from`, without freeing the parser: the process exits soon after, and dropping
/// clap's command tree cost as much as a small module's dump.
fn parse_args() -> Cli {
    let mut command = Cli::command();
    let parsed = command
        .try_get_matches_from_mut(objtool_style(std::env::args().collect()))
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches));
    let cli = parsed.unwrap_or_else(|e| e.format(&mut command).exit());
    std::mem::forget(command);
    cli
}

fn main() {
    let cli = parse_args();
    let code = match cli.command {
        Command::Dump(args) => dump::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Annotate(args) => annotate::run(&args),
        Command::Unwind(args) => unwind::run(&args),
        Command::VerifyPatching(args) => verify_patching::run(&args),
        Command::VerifyExec(args) => verify_exec::run(&args),
        Command::CfiCompare(args) => cfi_compare::run(&args),
        Command::CompareObjects(args) => compare_objects::run(&args),
        Command::PerfScript(args) => perf_script::run(&args),
        Command::SframeDump(args) => sframe_dump::run(&args),
    };
    std::process::exit(code);
}
