//! Keeps the test tables honest: each assembly text must assemble, with GNU `as`, to exactly
//! the bytes the table pairs it with. Needs binutils (`as`, `objcopy`) on the PATH.

mod table;

use std::path::Path;
use std::process::Command;

fn assemble(dir: &Path, n: usize, asm: &str) -> Vec<u8> {
    let src = dir.join(format!("{n}.s"));
    let obj = dir.join(format!("{n}.o"));
    let bin = dir.join(format!("{n}.bin"));
    std::fs::write(&src, format!(".text\n{asm}\n")).unwrap();
    let ok = Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(&obj)
        .arg(&src)
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "as failed on {asm:?}");
    let ok = Command::new("objcopy")
        .args(["-O", "binary", "--only-section=.text"])
        .arg(&obj)
        .arg(&bin)
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "objcopy failed on {asm:?}");
    std::fs::read(&bin).unwrap()
}

#[test]
fn table_text_assembles_to_table_bytes() {
    let dir = std::env::temp_dir().join(format!("orc-decode-asm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = table::OPS
        .iter()
        .map(|c| (c.asm, c.bytes))
        .chain(table::KINDS.iter().map(|c| (c.asm, c.bytes)));
    let mut wrong = Vec::new();
    for (n, (asm, bytes)) in cases.enumerate() {
        let got = assemble(&dir, n, asm);
        if got != bytes {
            wrong.push(format!(
                "{asm}: as gives {got:02x?}, table says {bytes:02x?}"
            ));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
