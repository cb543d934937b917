//! Test support shared by orctool's crates.
//!
//! Tests read like the thing they check: a few lines of assembly in, a table out. This crate
//! turns the assembly into an object with GNU `as` (part of binutils, installed with gcc on
//! every machine of this project), and offers the small deterministic random generator the
//! mutation tests use, the C test programs of user space ([`programs`]), and gdb's view of their
//! stacks, the unwinder tests' reference ([`gdb`]).

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod gdb;
pub mod programs;

/// The 20-byte `.orc_header` of 6.4+ kernels, as assembler directives.
pub const ORC_HEADER_V3: &str = "\t.section .orc_header,\"a\"\n\t.byte 0xfe,0x5d,0x32,0xbf,0x58,0x1b,0xd6,0x3b,0x2c,0xa9,0xa5,0xc6,0x5b,0xa5,0xa6,0x25,0xea,0xb3,0xfe,0x24\n";

/// Assembles `source` (AT&T syntax, x86-64) and returns the object's bytes.
///
/// # Panics
/// If `as` is missing or rejects the source: a test fixture that does not assemble is a bug
/// in the test.
pub fn assemble(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = assemble_in(dir.path(), "fixture", source);
    std::fs::read(path).expect("read assembled object")
}

/// Assembles `source` into `dir/name.o` and returns its path.
pub fn assemble_in(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.s"));
    let obj = dir.join(format!("{name}.o"));
    std::fs::write(&src, source).expect("write assembly source");
    let out = Command::new("as")
        .args(["--64", "-o"])
        .arg(&obj)
        .arg(&src)
        .output()
        .expect("run GNU as (binutils must be installed)");
    assert!(out.status.success(), "as failed on fixture {name}:\n{}", String::from_utf8_lossy(&out.stderr));
    obj
}

/// The source of one of the project's seed examples (`crates/orctool/seed/NAME.S`: the 2017
/// paravirt site and its variants), which several crates' tests assemble.
pub fn seed_source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../orctool/seed").join(format!("{name}.S"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("seed source {}: {e}", path.display()))
}

/// The ORC table objtool writes for a seed example (`crates/orctool/seed/NAME.orc.s`), as
/// assembler directives to append to [`seed_source`].
pub fn seed_table(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../orctool/seed").join(format!("{name}.orc.s"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("seed table {}: {e}", path.display()))
}

/// Byte ranges worth corrupting in an ELF object: its header, then every section's contents.
///
/// # Panics
/// If `bytes` is not a readable ELF file: mutation starts from a valid one.
pub fn section_ranges(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(bytes).expect("a valid object before mutation");
    let mut out = Vec::with_capacity(1 + file.sections().count());
    out.push(0..64);
    for s in file.sections() {
        if let Some((start, len)) = s.file_range() {
            if len > 0 {
                out.push(start as usize..(start + len) as usize);
            }
        }
    }
    out
}

/// xorshift64*: a tiny, deterministic generator, so that a failing mutation test can be
/// replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed (zero is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Calls `f` on `count` corrupted copies of `original` (see [`Rng::mutate`]).
    pub fn for_each_mutation(&mut self, original: &[u8], ranges: &[std::ops::Range<usize>], max: usize, count: usize, mut f: impl FnMut(&[u8])) {
        for _ in 0..count {
            let mut bytes = original.to_vec();
            self.mutate(&mut bytes, ranges, max);
            f(&bytes);
        }
    }

    /// Mutates each module of `modules` (paths under `$ORCTOOL_REAL_MODULES`, the fetched
    /// kernel corpus) `count` times, up to `max` bytes in its headers and chosen sections, and
    /// hands every copy to `f`. Returns how many modules were found, or `None` when the
    /// variable is not set (the caller says it skipped).
    pub fn for_each_real_module_mutation(&mut self, modules: &[&str], max: usize, count: usize, mut f: impl FnMut(&[u8])) -> Option<usize> {
        let dir = std::path::PathBuf::from(std::env::var_os("ORCTOOL_REAL_MODULES")?);
        let mut found = 0;
        for rel in modules {
            let Ok(original) = std::fs::read(dir.join(rel)) else { continue };
            self.for_each_mutation(&original, &section_ranges(&original), max, count, &mut f);
            found += 1;
        }
        Some(found)
    }

    /// Overwrites 1 to `max` bytes of `data` with random values, each inside one of `ranges`
    /// (byte ranges of the file worth hitting: headers, chosen sections) when given.
    pub fn mutate(&mut self, data: &mut [u8], ranges: &[std::ops::Range<usize>], max: usize) {
        if data.is_empty() {
            return;
        }
        let count = 1 + self.below(max.max(1));
        for _ in 0..count {
            let at = match ranges.get(self.below(ranges.len().max(1))) {
                Some(r) if !r.is_empty() && r.end <= data.len() => r.start + self.below(r.len()),
                _ => self.below(data.len()),
            };
            data[at] = self.next_u64() as u8;
        }
    }
}

/// A small kernel image for the linked-file tests: the seed's paravirt site (`f`, from
/// `pv_save_fl.S`, with its ORC table) plus a function `g` with a jump label, a
/// `static_cpu_has()`-style alternative whose original jumps into `.altinstr_aux` and whose
/// replacement jumps back into `.text`, and a `WARN()` (`ud2` with a `__bug_table` entry), a
/// `Linux version` banner, and `__jump_table` placed inside `.data` between
/// `__start___jump_table` and `__stop___jump_table` the way vmlinux's linker script does.
/// `g_table` is the ORC table of `g` (rows as `.long ADDR - .` and 6-byte v3 entries).
pub fn linked_image_source(g_table: &str) -> String {
    let defs = "\
\t.section .rodata, \"a\"
\t.asciz \"Linux version 6.12.0-orctool-test (test@fixture) #1 SMP\"
\t.data
\t.globl pv_irq_ops
pv_irq_ops: .quad 0, 0
\t.balign 8
\t.globl static_key
static_key: .quad 0
\t.section .text.other, \"ax\"\t/* another object's code: reached by rel32 branches */
\t.globl xen_save_fl
\t.type xen_save_fl, @function
xen_save_fl: pushfq; pop %rax; jmp __x86_return_thunk
\t.size xen_save_fl, .-xen_save_fl
\t.globl __x86_return_thunk
\t.type __x86_return_thunk, @function
__x86_return_thunk: ret; int3
\t.size __x86_return_thunk, .-__x86_return_thunk
\t.text
\t.globl g
\t.type g, @function
g:
\tpush %rbx
10:\t.byte 0xe9; .long 20f - . - 4\t/* jump label: jmp 20f, 5 bytes */
11:\t.byte 0xe9; .long 30f - . - 4\t/* static_cpu_has(): jmp into .altinstr_aux */
12:\tpop %rbx
\t.byte 0xe9; .long __x86_return_thunk - . - 4\t/* RET, as a return-thunk build spells it */
20:\tud2\t\t\t\t/* WARN() */
21:\tjmp 12b
\t.size g, .-g
\t.section .altinstr_aux, \"ax\"
30:\ttestb $1, static_key(%rip)
\tjmp 12b
\t.section .altinstr_replacement, \"ax\"
40:\t.byte 0xe9; .long 12b - . - 4\t/* back into .text */
41:
\t.section .altinstructions, \"a\"
\t.long 11b - .
\t.long 40b - .
\t.4byte (3*32 + 21)
\t.byte 12b - 11b
\t.byte 41b - 40b
\t.section __jump_table, \"aw\"
\t.balign 8
\t.long 10b - .
\t.long 20b - .
\t.quad static_key + 1 - .
\t.section __bug_table, \"aw\"
\t.long 20b - .
\t.long 0
\t.short 0, 1
";
    format!(
        "{}{}{defs}{g_table}",
        seed_source("pv_save_fl"),
        seed_table("pv_save_fl")
    )
}

/// The linker script of [`linked_image_source`]: vmlinux's addresses and section order in
/// miniature.
pub const LINKED_IMAGE_SCRIPT: &str = "\
ENTRY(g)
SECTIONS {
  . = 0xffffffff81000000;
  .text : { *(.text) *(.text.*) }
  . = ALIGN(16);
  .altinstr_aux : { *(.altinstr_aux) }
  .rodata : { *(.rodata) }
  .data : { *(.data) . = ALIGN(8); __start___jump_table = .; *(__jump_table) __stop___jump_table = .; }
  __bug_table : { *(__bug_table) }
  .altinstructions : { *(.altinstructions) }
  .altinstr_replacement : { *(.altinstr_replacement) }
  .orc_header : { *(.orc_header) }
  .orc_unwind_ip : { *(.orc_unwind_ip) }
  .orc_unwind : { *(.orc_unwind) }
  /DISCARD/ : { *(.discard.*) *(.note.GNU-stack) }
}
";

/// Assembles `source` into `dir/name.o` and links it with `ld -T script` into `dir/name`
/// (an `ET_EXEC`, as vmlinux is); returns both paths.
///
/// # Panics
/// If `as` or `ld` fails.
pub fn link_in(dir: &Path, name: &str, source: &str, script: &str) -> (PathBuf, PathBuf) {
    let obj = assemble_in(dir, name, source);
    let lds = dir.join(format!("{name}.lds"));
    std::fs::write(&lds, script).expect("write linker script");
    let exe = dir.join(name);
    let out = Command::new("ld")
        .arg("-T")
        .arg(&lds)
        .arg("-o")
        .arg(&exe)
        .arg(&obj)
        .output()
        .expect("run GNU ld (binutils must be installed)");
    assert!(
        out.status.success(),
        "ld failed on fixture {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (obj, exe)
}

/// The ORC table of `g` in [`linked_image_source`]: call frames `sp+8` at entry, `sp+16`
/// after `push %rbx`, `sp+8` after the `pop`, `sp+16` at the `ud2`, and the end of `.text`.
/// With `wrong_after_push`, the row after the push says `sp+24`.
pub fn linked_image_g_table(wrong_after_push: bool) -> String {
    let after_push = if wrong_after_push { 24 } else { 16 };
    format!(
        "\t.section .orc_unwind_ip,\"a\"\n\t.long g - .\n\t.long g+1 - .\n\t.long 12b+1 - .\n\t.long 20b - .\n\t.long 21b+2 - .\n\
         \t.section .orc_unwind,\"a\"\n\t.short 8, 0\n\t.byte 0x05, 0x02\n\t.short {after_push}, 0\n\t.byte 0x05, 0x02\n\
         \t.short 8, 0\n\t.byte 0x05, 0x02\n\t.short 16, 0\n\t.byte 0x05, 0x02\n\t.short 0, 0\n\t.byte 0x00, 0x00\n"
    )
}

/// [`link_in`] in a temporary directory: the object's and the linked file's bytes.
pub fn link(source: &str, script: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (obj, exe) = link_in(dir.path(), "fixture", source, script);
    (
        std::fs::read(obj).expect("read object"),
        std::fs::read(exe).expect("read linked file"),
    )
}
