//! Assembles the embedded example (`seed/*.S`, the 2017 paravirt case) with GNU `as`, so that
//! `orctool annotate` with no file has an object to show.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in ["pv_save_fl", "pv_conflict", "pv_hazard"] {
        let src = format!("seed/{name}.S");
        println!("cargo:rerun-if-changed={src}");
        let obj = out.join(format!("{name}.o"));
        let status = Command::new("as").args(["--64", "-o"]).arg(&obj).arg(&src).status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("GNU as failed on {src} ({s})"),
            Err(e) => panic!("cannot run GNU as (package binutils) to build the embedded example {src}: {e}"),
        }
    }
}
