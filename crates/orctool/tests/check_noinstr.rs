//! `--noinstr` and `--unret`, the rules kbuild asks for on `vmlinux.o`: calls that leave
//! noinstr code (directly, or through a `pv_ops` slot with an instrumentable target),
//! returns inside `instrumentation_begin()`, and entry points that reach an indirect branch or
//! a `ret` before untraining the return predictor.

use std::process::Command;

use orc_testkit::assemble_in;

/// `.noinstr.text`: `entry_fn` calls an instrumentable function; `guarded` does it between
/// `instrumentation_begin()` and `_end()`, then calls `pv_ops[1]` (whose initial value is
/// instrumentable); `leaky` returns with instrumentation enabled. `.text`: three
/// `--unret` entry points: an indirect jump first, a `ret` first, and a `ret` after the
/// untraining's annotated NOP.
const SOURCE: &str = "\t.section .noinstr.text, \"ax\"\n\t.globl entry_fn\n\t.type entry_fn, @function\nentry_fn:\n\tcall instrumented\n\tcall other_noinstr\n\tret\n\t.size entry_fn, .-entry_fn\n\t.globl guarded\n\t.type guarded, @function\nguarded:\n1:\tnop\n\t.pushsection .discard.instr_begin\n\t.long 1b - .\n\t.popsection\n\tcall instrumented\n2:\tnop\n\t.pushsection .discard.instr_end\n\t.long 2b - .\n\t.popsection\n\tcall *pv_ops+8(%rip)\n\tret\n\t.size guarded, .-guarded\n\t.globl leaky\n\t.type leaky, @function\nleaky:\n1:\tnop\n\t.pushsection .discard.instr_begin\n\t.long 1b - .\n\t.popsection\n\tret\n\t.size leaky, .-leaky\n\t.globl other_noinstr\n\t.type other_noinstr, @function\nother_noinstr:\n\tret\n\t.size other_noinstr, .-other_noinstr\n\t.text\n\t.globl instrumented\n\t.type instrumented, @function\ninstrumented:\n\tret\n\t.size instrumented, .-instrumented\n\t.globl entry_unret\n\t.type entry_unret, @function\nentry_unret:\n1:\n\t.pushsection .discard.validate_unret\n\t.long 1b - .\n\t.popsection\n\tjmp *%rax\n\t.size entry_unret, .-entry_unret\n\t.globl entry_ret\n\t.type entry_ret, @function\nentry_ret:\n1:\n\t.pushsection .discard.validate_unret\n\t.long 1b - .\n\t.popsection\n\tnop\n\tret\n\t.size entry_ret, .-entry_ret\n\t.globl entry_untrained\n\t.type entry_untrained, @function\nentry_untrained:\n1:\n\t.pushsection .discard.validate_unret\n\t.long 1b - .\n\t.popsection\n2:\tnop\n\t.pushsection .discard.retpoline_safe\n\t.long 2b - .\n\t.popsection\n\tret\n\t.size entry_untrained, .-entry_untrained\n\t.data\n\t.globl pv_ops\n\t.type pv_ops, @object\npv_ops:\n\t.quad other_noinstr\n\t.quad instrumented\n\t.quad 0\n\t.size pv_ops, .-pv_ops\n";

fn warnings(flags: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let obj = assemble_in(dir.path(), "noinstr", SOURCE);
    let out = dir.path().join("out.o");
    let r = Command::new(env!("CARGO_BIN_EXE_orctool"))
        .arg("check")
        .args(flags)
        .arg(&obj)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let prefix = format!("{}: warning: objtool: ", obj.display());
    String::from_utf8_lossy(&r.stderr)
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or_else(|| panic!("not objtool's shape: {l}")).to_string())
        .collect()
}

#[test]
fn noinstr_and_unret_rules_on_a_linked_object() {
    let w = warnings(&["--noinstr", "--unret", "--orc", "--link"]);
    assert_eq!(
        w,
        [
            "entry_fn+0x0: call to instrumented() leaves .noinstr.text section",
            "pv_ops[1]: instrumented",
            "guarded+0x7: call to {dynamic}() leaves .noinstr.text section",
            "leaky+0x1: return with instrumentation enabled",
            "entry_unret+0x0: early indirect call",
            "entry_ret+0x1: RET before UNTRAIN",
        ]
    );
}

#[test]
fn without_the_flags_none_of_these_rules() {
    let w = warnings(&["--orc", "--link"]);
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn noinstr_unret_and_ibt_need_the_linked_object() {
    // Without --link a call's destination may be defined elsewhere: refused, as objtool
    // refuses, with one line naming the file; the object is left alone.
    let dir = tempfile::tempdir().unwrap();
    let obj = assemble_in(dir.path(), "noinstr", SOURCE);
    let before = std::fs::read(&obj).unwrap();
    for flag in ["--noinstr", "--unret", "--ibt"] {
        let r = Command::new(env!("CARGO_BIN_EXE_orctool")).args(["check", flag, "--orc"]).arg(&obj).output().unwrap();
        assert_eq!(r.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(stderr.trim_end(), format!("orctool: {}: {flag} requires --link", obj.display()));
    }
    let r = Command::new(env!("CARGO_BIN_EXE_orctool")).args(["check", "--mnop", "--orc", "--link"]).arg(&obj).output().unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("--mnop requires --mcount"));
    assert_eq!(std::fs::read(&obj).unwrap(), before);
}
