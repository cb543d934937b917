//! Inputs found by the fuzz targets (fuzz/, docs/fuzzing.md).

use orc_process::parse_maps;

/// fuzz target `proc_maps`: the maps parser (then the `procfs` crate's) panicked on pathnames
/// it did not expect (`[`, `[stack:`, `/SYSV` with fewer than eight digits). Now every line is
/// either a mapping or an error.
#[test]
fn odd_maps_pathnames_are_mappings_or_errors_never_panics() {
    for name in ["[", "[stack:", "[stack:x]", "/SYSV", "/SYSV12", "]", "[]"] {
        let line = format!("7f0000000000-7f0000001000 r-xp 00000000 fe:00 12 {name}\n");
        let maps = parse_maps(1, &line).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(maps.len(), 1, "{name}");
        assert!(maps[0].executable);
    }
}

#[test]
fn maps_lines_are_read_field_by_field() {
    let text = "\
55c21e53f000-55c21e56e000 r--p 00000000 fe:00 247003                     /usr/bin/with space (deleted)
7ffd5a1c0000-7ffd5a1e1000 rw-p 00000000 00:00 0                          [stack]
7ffd5a1fc000-7ffd5a1fe000 r-xp 0002f000 00:00 0                          [vdso]
7f0000000000-7f0000001000 ---p 00000000 00:00 0 
";
    let maps = parse_maps(7, text).unwrap();
    assert_eq!(maps.len(), 4);
    assert_eq!((maps[0].start, maps[0].end, maps[0].offset, maps[0].executable), (0x55c2_1e53_f000, 0x55c2_1e56_e000, 0, false));
    assert_eq!(maps[0].path.as_deref(), Some(std::path::Path::new("/usr/bin/with space (deleted)")));
    assert_eq!((maps[1].path.is_none(), maps[1].label.as_str()), (true, "[stack]"));
    assert_eq!((maps[2].executable, maps[2].offset, maps[2].label.as_str()), (true, 0x2f000, "[vdso]"));
    assert_eq!((maps[3].path.is_none(), maps[3].label.as_str()), (true, ""));
    for bad in ["55c2-55c1 r--p 0 fe:00 1", "zz-10 r--p 0 fe:00 1", "10-20 r--p 0 fe:00", "10-20 rp 0 fe:00 1"] {
        let e = parse_maps(7, bad).expect_err(bad).to_string();
        assert!(e.contains("maps: line 1"), "{bad}: {e}");
    }
}

/// Build-ids of any length hit the cache: a table generated once is found again by a new
/// cache (a new process) for a file whose build-id is longer than a sidecar stores (80 bytes).
#[test]
fn a_long_build_id_hits_the_cache() {
    use orc_process::{Origin, Source, TableCache};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("p.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let exe = dir.path().join("p");
    let id: String = (0..80).map(|i| format!("{:02x}", (i * 7 + 3) % 256)).collect();
    let status = std::process::Command::new("gcc").arg("-O2").arg(format!("-Wl,--build-id=0x{id}")).arg("-o").arg(&exe).arg(&src).status().unwrap();
    assert!(status.success());
    let cache_dir = dir.path().join("cache");
    let first = TableCache::new(cache_dir.clone(), Source::Combined);
    let t = first.table_for(&exe).unwrap();
    assert_eq!(t.build_id().map(<[u8]>::len), Some(80));
    assert_eq!(t.orc_with_origin().unwrap().1, Origin::Generated);
    let again = TableCache::new(cache_dir.clone(), Source::Combined);
    assert_eq!(again.table_for(&exe).unwrap().orc_with_origin().unwrap().1, Origin::Cache);
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 1);
}

#[test]
fn sidecar_names_for_build_ids_of_every_length() {
    use orc_linked::sidecar::file_stem;
    assert_eq!(file_stem(&[]), None);
    assert_eq!(file_stem(&[0xab, 0x01]).as_deref(), Some("ab01"));
    let long = [0x11u8; 70];
    assert_eq!(file_stem(&long), Some(format!("{}-70", "11".repeat(64))));
}
