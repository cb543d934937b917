//! `orctool annotate` and `verify-patching` on linked kernel images: the testkit's small image
//! (linked with `ld`), bad input, and Debian's images when they are cached
//! (scripts/fetch-images.sh; those tests say so and pass when they are not).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orc_testkit::{link_in, linked_image_g_table, linked_image_source, LINKED_IMAGE_SCRIPT};

fn orctool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(args)
        .output()
        .expect("run orctool")
}

fn run(args: &[&str], file: &Path) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.insert(1, file.as_os_str());
    orctool(&all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(dir: &Path) -> PathBuf {
    link_in(
        dir,
        "image",
        &linked_image_source(&linked_image_g_table(false)),
        LINKED_IMAGE_SCRIPT,
    )
    .1
}

/// One line on stderr naming the file, exit 2, nothing on stdout about it.
fn one_error_line(out: &Output, file: &Path) -> String {
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("orctool: {}: ", file.display())),
        "{err}"
    );
    err
}

#[test]
fn annotate_one_function_of_a_linked_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixture(dir.path());
    let out = run(&["annotate", "--function", "g"], &image);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.starts_with("g in "), "{s}");
    assert!(
        s.contains("(Linux 6.12): 0xffffffff81"),
        "era from the banner, the address: {s}"
    );
    assert!(s.contains("1 alternative entries, 1 jump labels"), "{s}");
    // The jump into .altinstr_aux is followed (it is copied with the function), the return
    // thunk is named, the WARN's ud2 goes on (from __bug_table), every instruction reached.
    assert!(s.contains("<.altinstr_aux>"), "{s}");
    assert!(s.contains("<__x86_return_thunk>"), "{s}");
    assert!(!s.contains("not reached"), "{s}");
    assert!(
        s.contains("patch site A at g+0x6: 5 bytes, 2 streams"),
        "{s}"
    );
    assert!(s.contains("warnings: none"), "{s}");

    // The seed's site, linked: the union of its three streams.
    let out = run(&["annotate", "--function", "arch_local_save_flags"], &image);
    let s = text(&out.stdout);
    assert!(s.contains("union, as the table records it: +0 cfa=rsp+8, +1 cfa=rsp+16, +2 cfa=rsp+8, +5 cfa=rsp+8"), "{s}");
}

#[test]
fn verify_patching_reads_a_linked_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixture(dir.path());
    let out = run(&["verify-patching"], &image);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("6.12 rules: 3 sites (2 alternatives, 1 jump labels, 0 paravirt)"),
        "{s}"
    );
    assert!(s.contains("0 unmodelled, 0 failures"), "{s}");
}

#[test]
fn bad_requests_and_broken_images_get_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixture(dir.path());
    let err = one_error_line(&run(&["annotate", "--function", "nosuch"], &image), &image);
    assert!(err.ends_with("no function called nosuch\n"), "{err}");
    let err = one_error_line(&run(&["annotate"], &image), &image);
    assert!(err.contains("--function"), "{err}");

    let bytes = std::fs::read(&image).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 1, 100] {
        let broken = dir.path().join(format!("cut{cut}"));
        std::fs::write(&broken, &bytes[..cut]).unwrap();
        one_error_line(&run(&["annotate", "--function", "g"], &broken), &broken);
        one_error_line(&run(&["verify-patching"], &broken), &broken);
        assert_eq!(
            std::fs::read(&broken).unwrap(),
            &bytes[..cut],
            "input untouched"
        );
    }
}

fn cached_image(kernel: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("ORCTOOL_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/orctool")))?;
    let path = cache.join("images").join(kernel).join("vmlinux");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} is not cached (scripts/fetch-images.sh {kernel})",
            path.display()
        );
        None
    }
}

#[test]
fn debian_images_the_seed_site_in_both_eras() {
    for kernel in ["6.12", "6.1"] {
        let Some(image) = cached_image(kernel) else {
            continue;
        };
        let out = run(
            &["annotate", "--function", "_raw_spin_lock_irqsave"],
            &image,
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{kernel}: {}",
            text(&out.stderr)
        );
        let s = text(&out.stdout);
        assert!(s.contains(&format!("(Linux {kernel})")), "{s}");
        // pv_ops.irq.save_fl, native `pushf; pop %rax`, and the union with sp+24 after pushf.
        assert!(s.contains("<pv_ops+0xf0>"), "{s}");
        assert!(s.contains("| pushf  [cfa=rsp+16 rbx@cfa-16]"), "{s}");
        assert!(s.contains("+1 cfa=rsp+24 rbx@cfa-16"), "{s}");
        assert!(!s.contains("not reached"), "{s}");
        if kernel == "6.1" {
            assert!(
                s.contains("+0x6: 6 bytes, pv_ops.irq.save_fl"),
                "the .parainstructions site: {s}"
            );
        } else {
            assert!(
                s.contains("(direct call)"),
                "the ALT_FLAG_DIRECT_CALL stream: {s}"
            );
        }
    }
}

#[test]
fn debian_images_truncated_get_one_line() {
    let Some(image) = cached_image("6.12") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&image).unwrap();
    // Cut inside the special sections (the image's first 48 MB hold .text, .rodata, the
    // tables) and inside the section headers at the end.
    for cut in [40 << 20, bytes.len() - 4096] {
        let broken = dir.path().join("vmlinux");
        std::fs::write(&broken, &bytes[..cut]).unwrap();
        one_error_line(&run(&["verify-patching"], &broken), &broken);
        one_error_line(
            &run(&["annotate", "--function", "schedule"], &broken),
            &broken,
        );
    }
}

#[test]
fn debian_image_with_a_corrupted_table_gets_one_line() {
    let Some(image) = cached_image("6.12") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&image).unwrap();
    let start = {
        let file = orc_elf::ElfFile::parse(&bytes).unwrap();
        let alt = file.section_by_name(".altinstructions").unwrap().unwrap();
        alt.data.as_ptr() as usize - bytes.as_ptr() as usize
    };
    let broken = dir.path().join("vmlinux");
    // Entry 7's `orig` pointing 1 GiB away, into no section.
    bytes[start + 7 * 14..start + 7 * 14 + 4].copy_from_slice(&0x4000_0000i32.to_le_bytes());
    std::fs::write(&broken, &bytes).unwrap();
    let err = one_error_line(&run(&["verify-patching"], &broken), &broken);
    assert!(
        err.contains(".altinstructions entry 7: the `orig` field points to"),
        "{err}"
    );
    let err = one_error_line(
        &run(&["annotate", "--function", "schedule"], &broken),
        &broken,
    );
    assert!(err.contains(".altinstructions entry 7"), "{err}");
}
