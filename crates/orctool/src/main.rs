//! `orctool`: the command line. Thin by design: each command parses its options and calls the
//! library crates; nothing here knows ELF or x86.

mod annotate;
mod cfi_compare;
mod check;
mod check_linked;
mod compare_objects;
mod dump;
mod input;
mod progress;
mod unwind;
mod verify_exec;
mod verify_patching;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "orctool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
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

fn main() {
    let cli = Cli::parse_from(objtool_style(std::env::args().collect()));
    let code = match cli.command {
        Command::Dump(args) => dump::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Annotate(args) => annotate::run(&args),
        Command::Unwind(args) => unwind::run(&args),
        Command::VerifyPatching(args) => verify_patching::run(&args),
        Command::VerifyExec(args) => verify_exec::run(&args),
        Command::CfiCompare(args) => cfi_compare::run(&args),
        Command::CompareObjects(args) => compare_objects::run(&args),
    };
    std::process::exit(code);
}
