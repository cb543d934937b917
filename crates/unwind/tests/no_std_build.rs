//! The crate builds for a bare-metal target with no `std` at all (`x86_64-unknown-none`),
//! which proves that neither it nor its dependencies use `std`.
//!
//! Needs the target's standard library (`rustup target add x86_64-unknown-none`); without it
//! the test says so and checks the weaker property it can: both crates declare `#![no_std]`.

use std::path::Path;
use std::process::Command;

#[test]
fn builds_for_x86_64_unknown_none() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in [manifest.join("src/lib.rs"), manifest.join("../format/src/lib.rs")] {
        let src = std::fs::read_to_string(&krate).unwrap();
        assert!(src.contains("\n#![no_std]"), "{} is not #![no_std]", krate.display());
        assert!(!src.contains("extern crate std"), "{} pulls in std", krate.display());
    }

    let installed = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .map(|sysroot| Path::new(&sysroot).join("lib/rustlib/x86_64-unknown-none/lib").is_dir())
        .unwrap_or(false);
    if !installed {
        eprintln!("SKIP: target x86_64-unknown-none not installed; only checked the #![no_std] attributes");
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-std");
    for features in ["", "alloc"] {
        let status = Command::new(&cargo)
            .current_dir(manifest)
            .args(["build", "--quiet", "--offline", "--target", "x86_64-unknown-none", "--features", features])
            .arg("--manifest-path")
            .arg(manifest.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir)
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --target x86_64-unknown-none --features '{features}' failed");
    }
}
