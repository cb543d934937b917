//! Builds the C program whose stacks the benchmark unwinds: GCC, -O2, no frame pointers,
//! static and not position-independent (fixed addresses), with .eh_frame (GCC's default on
//! x86-64) and an .eh_frame_hdr index (which the linker leaves out of static programs unless asked).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("chains");
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("c/chains.c");
    println!("cargo:rerun-if-changed={}", src.display());
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .args(["-O2", "-fomit-frame-pointer", "-fasynchronous-unwind-tables", "-static", "-no-pie", "-Wl,--eh-frame-hdr", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(status.success(), "{cc} failed to build {}", src.display());
    println!("cargo:rustc-env=ORC_BENCH_CHAINS={}", out.display());
}
