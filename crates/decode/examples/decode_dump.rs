//! Decodes every executable section of an ELF object and prints one line per instruction:
//! `SECTION OFFSET LEN KIND IMMEDIATE OPS...`, with kinds and operations as objtool's
//! enum numbers (`insn_type`, `op_src_type`, `op_dest_type`), so the output can be compared
//! line for line with a debugging dump of objtool's decoder (see `tests/real_modules.rs`).
//!
//! Usage: `cargo run -p orc-decode --example decode_dump -- FILE.o`

#[path = "../tests/objtool_dump/mod.rs"]
mod objtool_dump;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: decode_dump FILE.o")?;
    let data = std::fs::read(&path)?;
    print!("{}", objtool_dump::dump(&data)?);
    Ok(())
}
