//! Builds every test program with gcc (and clang when present) and prints `name path` per
//! line, with the compiler appended to the name for clang (`recursion-clang`), for scripts.
//!
//! `cargo run -p orc-testkit --example build-programs [-- NAME...]`

use orc_testkit::programs::{self, Build, Compiler};

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let mut builds = vec![("", Build::default())];
    if programs::clang_available() {
        builds.push(("-clang", Build::with(Compiler::Clang)));
    }
    let mut failed = false;
    for name in programs::names() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        for (suffix, build) in &builds {
            match programs::build(name, build) {
                Ok(path) => println!("{name}{suffix} {}", path.display()),
                Err(e) => {
                    eprintln!("build-programs: {e}");
                    failed = true;
                }
            }
        }
    }
    if failed {
        std::process::exit(2);
    }
}
