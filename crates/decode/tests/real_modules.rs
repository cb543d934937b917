//! Real Debian 6.12 modules, decoded and compared with objtool's own decoder.
//!
//! Runs when `ORCTOOL_REAL_MODULES` names the corpus's plain `.ko` tree (scripts/test.sh sets
//! it). The expected values were taken from objtool 6.12.117 built with a debugging dump of
//! each instruction right after its x86 decoder ran (`SECTION OFFSET LEN TYPE IMMEDIATE OPS`,
//! the format of `objtool_dump`): the number of instructions and an FNV-1a hash of the whole
//! dump. The same comparison over all 4225 modules with code found no difference.

mod objtool_dump;

/// Module, instructions decoded by objtool, FNV-1a 64 of objtool's dump.
const EXPECTED: &[(&str, usize, u64)] = &[
    ("arch/x86/kvm/kvm.ko", 148346, 0xbc1f6b4f1e2100d0),
    ("arch/x86/kvm/kvm-intel.ko", 52905, 0xe695e628dbee7668),
    ("fs/xfs/xfs.ko", 287518, 0xbdb049f7646728ae),
    ("arch/x86/crypto/aesni-intel.ko", 18074, 0x19c2ce1929df47dd),
    ("arch/x86/crypto/crc32c-intel.ko", 1192, 0x5aa474b70d71ac87),
    ("drivers/xen/xen-privcmd.ko", 2114, 0x2f3eb8109abb50ce),
];

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn decoding_matches_objtool_on_real_modules() {
    let Some(dir) = std::env::var_os("ORCTOOL_REAL_MODULES") else {
        eprintln!("ORCTOOL_REAL_MODULES not set: real-module decoding skipped");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for &(module, count, hash) in EXPECTED {
        let data = std::fs::read(dir.join(module)).unwrap_or_else(|e| panic!("{module}: {e}"));
        let dump = objtool_dump::dump(&data).unwrap();
        assert_eq!(dump.lines().count(), count, "{module}: instruction count");
        assert_eq!(
            fnv1a(dump.as_bytes()),
            hash,
            "{module}: dump differs from objtool's"
        );
    }
}
