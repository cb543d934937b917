//! `orctool verify-exec`: proof by execution (crate `orc-exec`).

use clap::Args;

/// Arguments of `verify-exec`.
#[derive(Args, Debug)]
pub struct VerifyExecArgs {
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Runs `verify-exec`.
pub fn run(args: &VerifyExecArgs) -> i32 {
    eprintln!("orctool: verify-exec {}: not built yet", args.command.join(" "));
    2
}
