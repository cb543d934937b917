//! Sidecar table files (`<build-id>.orc` in the cache): decoding arbitrary bytes, and a
//! decoded sidecar encodes back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_linked::{sidecar, LinkedTable};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = sidecar::decode(data) else { return };
    let table = LinkedTable { ips: s.ips.clone(), entries: s.entries.clone(), ..Default::default() };
    for &ip in s.ips.iter().take(8) {
        let _ = table.lookup(ip);
    }
    let again = sidecar::decode(&sidecar::encode(&s.build_id, &table)).expect("re-encoded sidecar decodes");
    assert_eq!(again.ips, s.ips);
    assert_eq!(again.entries, s.entries);
});
