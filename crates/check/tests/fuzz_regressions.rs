//! Inputs found by the fuzz targets (fuzz/, docs/fuzzing.md).

use orc_check::image::extract_function;
use orc_elf::ElfFile;
use orc_flow::KernelEra;

/// fuzz target `flow_special`: a linked image whose `foo.cold` has a size that runs past the
/// end of the address space overflowed while `annotate vmlinux --function foo` looked for the
/// cold part (a panic in a debug build, a wrapped range in a release one). The cold part is now
/// skipped, and the function itself extracted.
#[test]
fn a_cold_part_whose_size_overflows_is_skipped() {
    let source = "\t.text\n\t.globl foo\n\t.type foo,@function\nfoo:\n\tret\n\t.size foo, 1\n\
                  \t.type foo.cold,@function\nfoo.cold:\n\tret\n\t.size foo.cold, 0xfffffffffffffff0\n";
    let script = "SECTIONS { . = 0xffffffff81000000; .text : { *(.text) } }\n";
    let (_, image) = orc_testkit::link(source, script);
    let file = ElfFile::parse(&image).unwrap();
    let extracted = extract_function(&file, "foo", KernelEra::V6_12);
    assert!(extracted.is_ok(), "{:?}", extracted.err());
}

/// fuzz target `check_kernel`: with `--ibt`, a function whose size runs past the end of the
/// address space overflowed where the IBT check asks whether an address ends it (and the same
/// sum in the graph, the walker, the cold-part and the annotate views). Checked now: the check
/// runs to its end.
#[test]
fn a_function_size_that_overflows_under_ibt() {
    let object = orc_testkit::assemble(
        "\t.text\n\t.globl f\n\t.type f,@function\nf:\n\tendbr64\n\tlea f+4(%rip), %rax\n\tret\n\t.size f, 0xffffffffffffffff\n\
         \t.globl g\n\t.type g,@function\ng:\n\tendbr64\n\tret\n\t.size g, 5\n",
    );
    let file = ElfFile::parse(&object).unwrap();
    let mut opts = orc_check::Options::kernel_module();
    opts.link = true;
    opts.ibt = true;
    let analysis = orc_check::check(&file, KernelEra::V6_12, &opts);
    assert!(analysis.instructions > 0);
}
