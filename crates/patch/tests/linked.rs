//! Proof by patching on a linked image: the testkit's small kernel image and the object it was
//! linked from must get the same verdict (same sites, choices, lookups and failures), with a
//! right table and with a wrong one. Plus Debian's images when they are cached
//! (scripts/fetch-images.sh); those tests say so and pass when they are not.

use orc_elf::ElfFile;
use orc_patch::{verify, Options, Report};
use orc_testkit::{link, linked_image_g_table, linked_image_source, LINKED_IMAGE_SCRIPT};

fn both(wrong: bool) -> (Report, Report) {
    let (obj, exe) = link(
        &linked_image_source(&linked_image_g_table(wrong)),
        LINKED_IMAGE_SCRIPT,
    );
    let run = |b: &[u8]| verify(&ElfFile::parse(b).unwrap(), &Options::default()).unwrap();
    (run(&obj), run(&exe))
}

#[test]
fn linked_image_and_object_agree() {
    let (o, e) = both(false);
    assert_eq!(o.counts, e.counts);
    assert_eq!(e.counts.sites(), 3, "{:?}", e.counts);
    assert_eq!(
        (e.counts.jump_label_sites, e.counts.alternative_sites),
        (1, 2)
    );
    assert_eq!(e.counts.failures, 0, "{:#?}", e.failures);
    assert_eq!(e.counts.unmodelled, 0, "{:#?}", e.unmodelled);
    // static_cpu_has()'s original jumps into .altinstr_aux, which has no ORC entries, in both
    // (in the image, .text's terminator sits at .altinstr_aux's first address).
    assert_eq!((o.counts.exits_uncovered, e.counts.exits_uncovered), (1, 1));
    // Listed once, by name (the replacement's jump back into .text is an exit checked).
    assert_eq!(e.uncovered_exits.len(), 1);
}

#[test]
fn a_wrong_row_fails_the_same_way_in_both() {
    let (o, e) = both(true);
    assert!(e.counts.failures > 0);
    assert_eq!(o.counts, e.counts);
    let names = |r: &Report| {
        r.failures
            .iter()
            .map(|f| (f.site_name.clone(), f.choice.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&o), names(&e));
    assert!(
        e.failures.iter().all(|f| f.site_name.starts_with("g+")),
        "{:#?}",
        e.failures
    );
}

fn image(kernel: &str) -> Option<Vec<u8>> {
    let home = std::env::var_os("ORCTOOL_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/orctool"))
        })?;
    let path = home.join("images").join(kernel).join("vmlinux");
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!(
                "skipped: {} is not cached (scripts/fetch-images.sh {kernel})",
                path.display()
            );
            None
        }
    }
}

#[test]
fn debian_images_have_no_unmodelled_choice() {
    for (kernel, paravirt, direct_calls) in [("6.12", false, true), ("6.1", true, false), ("7.2", false, true)] {
        let Some(bytes) = image(kernel) else { continue };
        let r = verify(&ElfFile::parse(&bytes).unwrap(), &Options::default()).unwrap();
        assert_eq!(r.era.to_string(), kernel, "era from the banner");
        let c = r.counts;
        assert_eq!(
            c.unmodelled,
            0,
            "{kernel}: {:#?}",
            &r.unmodelled[..r.unmodelled.len().min(5)]
        );
        assert!(
            c.alternative_sites > 1000 && c.jump_label_sites > 1000,
            "{kernel}: {c:?}"
        );
        assert_eq!(c.paravirt_sites > 1000, paravirt, "{kernel}: {c:?}");
        assert_eq!(c.direct_call_sites > 1000, direct_calls, "{kernel}: {c:?}");
        // Every failure is of a kind docs/findings.md explains: the Xen entry stubs' exits
        // (a callee that moves the stack, then an unwind hint) and, in 6.1, the RSB-filling
        // loops whose streams' boundaries differ.
        for f in &r.failures {
            let known = f.choice == "XENPV"
                || f.site_name.starts_with("__switch_to_asm")
                || f.site_name.starts_with("entry_ibpb");
            assert!(
                known,
                "{kernel}: unexplained failure {:?} at {} ({})",
                f.check, f.site_name, f.choice
            );
        }
    }
}
