//! Sidecar files: an ORC table kept beside a binary rather than in it, named by the binary's
//! build-id (`<hex build-id>.orc` in the cache directory).
//!
//! The format, all integers little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `"ORCSIDE\0"` |
//! | 8 | 2 | format version, 2 |
//! | 10 | 1 | ORC layout of the entries: 1, 2 or 3 ([`Layout`]; orctool writes 3) |
//! | 11 | 1 | build-id length `B` (0-64) |
//! | 12 | 4 | generator: the [`crate::GENERATOR`] of the orctool that made the table |
//! | 16 | `B` | build-id bytes |
//! | 16+B | 4 | entry count `N` |
//! | 20+B | 8·N | instruction addresses (`u64`, link-time virtual addresses, strictly increasing) |
//! | 20+B+8N | 6·N | ORC entries (`sp_offset` i16, `bp_offset` i16, flags u16), canonical in the layout |
//!
//! The file is exactly that long. [`decode`] checks every field and never panics. The
//! generator number lets a cache tell a table made by an older analysis from a current one
//! (the build-id alone names the binary, not the table).

use orc_format::{Endian, Layout, RawEntry, ORC_ENTRY_SIZE};

use crate::LinkedTable;

/// The first eight bytes of a sidecar file.
pub const MAGIC: [u8; 8] = *b"ORCSIDE\0";
/// The format version [`encode`] writes and [`decode`] reads.
pub const VERSION: u16 = 2;
/// The longest build-id accepted (GNU build-ids are 20 bytes; 64 leaves room for others).
pub const MAX_BUILD_ID: usize = 64;
/// What a sidecar stores of `build_id` and compares a file's build-id by: its first
/// [`MAX_BUILD_ID`] bytes.
pub fn stored_id(build_id: &[u8]) -> &[u8] {
    &build_id[..build_id.len().min(MAX_BUILD_ID)]
}

/// The name of the sidecar of a file with `build_id`, without `.orc`: the build-id in hex, or for
/// one longer than [`MAX_BUILD_ID`] the hex of what is stored and the full length (so that
/// build-ids of any length have a sidecar that is found again). `None` for an empty build-id:
/// it names nothing, and files without one are not cached.
pub fn file_stem(build_id: &[u8]) -> Option<String> {
    use std::fmt::Write as _;
    if build_id.is_empty() {
        return None;
    }
    let mut s = String::with_capacity(2 * MAX_BUILD_ID + 8);
    for b in stored_id(build_id) {
        let _ = write!(s, "{b:02x}");
    }
    if build_id.len() > MAX_BUILD_ID {
        let _ = write!(s, "-{}", build_id.len());
    }
    Some(s)
}

/// Bytes before the build-id.
const HEADER: usize = 16;

/// A decoded sidecar file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Sidecar {
    /// The build-id of the binary the table belongs to.
    pub build_id: Vec<u8>,
    /// The layout of `entries`.
    pub layout: Layout,
    /// The [`crate::GENERATOR`] that made the table.
    pub generator: u32,
    /// Instruction addresses, strictly increasing.
    pub ips: Vec<u64>,
    /// One entry per address.
    pub entries: Vec<RawEntry>,
}

/// Why bytes are not a sidecar file.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SidecarError {
    /// Shorter than its header says.
    #[error("sidecar file is truncated: {0}")]
    Truncated(&'static str),
    /// Longer than its header says.
    #[error("sidecar file has {0} bytes after its table")]
    TrailingBytes(usize),
    /// Not the magic.
    #[error("not an orctool sidecar file (bad magic)")]
    BadMagic,
    /// Another version.
    #[error("sidecar format version {0}, this orctool reads version {VERSION}")]
    Version(u16),
    /// No such ORC layout.
    #[error("sidecar layout {0} is not an ORC layout (1, 2 or 3)")]
    Layout(u8),
    /// Build-id length beyond [`MAX_BUILD_ID`].
    #[error("sidecar build-id of {0} bytes (at most {MAX_BUILD_ID})")]
    BuildIdLength(usize),
    /// Addresses out of order.
    #[error("sidecar address {index} ({ip:#x}) is not above the one before it")]
    Unsorted {
        /// Position.
        index: usize,
        /// The address.
        ip: u64,
    },
    /// An entry with bits the layout does not define.
    #[error("sidecar entry {0} is not a canonical ORC entry")]
    BadEntry(usize),
}

fn layout_number(layout: Layout) -> u8 {
    match layout {
        Layout::V1 => 1,
        Layout::V2 => 2,
        Layout::V3 => 3,
        Layout::V4 => 4,
        Layout::V3Ax => 5,
    }
}

/// The sidecar file of `table` (whose entries are [`Layout::V3`]) for the binary with
/// `build_id` (cut to [`MAX_BUILD_ID`] bytes).
pub fn encode(build_id: &[u8], table: &LinkedTable) -> Vec<u8> {
    let build_id = stored_id(build_id);
    let n = table.ips.len().min(table.entries.len());
    let mut out = Vec::with_capacity(HEADER + build_id.len() + 4 + n * (8 + ORC_ENTRY_SIZE));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(layout_number(Layout::V3));
    out.push(build_id.len() as u8);
    out.extend_from_slice(&crate::GENERATOR.to_le_bytes());
    out.extend_from_slice(build_id);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for ip in &table.ips[..n] {
        out.extend_from_slice(&ip.to_le_bytes());
    }
    for e in &table.entries[..n] {
        out.extend_from_slice(&e.to_bytes(Endian::Little));
    }
    out
}

/// A cursor that fails instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SidecarError> {
        let end = self.at.checked_add(n).ok_or(SidecarError::Truncated(what))?;
        let slice = self.bytes.get(self.at..end).ok_or(SidecarError::Truncated(what))?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SidecarError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
}

/// Reads a sidecar file, checking magic, version, layout, build-id length, exact size, sorted
/// addresses and canonical entries.
pub fn decode(bytes: &[u8]) -> Result<Sidecar, SidecarError> {
    let mut r = Reader { bytes, at: 0 };
    if r.array::<8>("magic")? != MAGIC {
        return Err(SidecarError::BadMagic);
    }
    let version = u16::from_le_bytes(r.array("version")?);
    if version != VERSION {
        return Err(SidecarError::Version(version));
    }
    let [layout] = r.array::<1>("layout")?;
    let layout = match layout {
        1 => Layout::V1,
        2 => Layout::V2,
        3 => Layout::V3,
        4 => Layout::V4,
        5 => Layout::V3Ax,
        n => return Err(SidecarError::Layout(n)),
    };
    let [id_len] = r.array::<1>("build-id length")?;
    let id_len = usize::from(id_len);
    if id_len > MAX_BUILD_ID {
        return Err(SidecarError::BuildIdLength(id_len));
    }
    let generator = u32::from_le_bytes(r.array("generator")?);
    let build_id = r.take(id_len, "build-id")?.to_vec();
    let count = u32::from_le_bytes(r.array("entry count")?) as usize;
    let ip_bytes = r.take(count.checked_mul(8).ok_or(SidecarError::Truncated("addresses"))?, "addresses")?;
    let entry_bytes = r.take(
        count.checked_mul(ORC_ENTRY_SIZE).ok_or(SidecarError::Truncated("entries"))?,
        "entries",
    )?;
    if r.at != bytes.len() {
        return Err(SidecarError::TrailingBytes(bytes.len() - r.at));
    }
    let mut ips = Vec::with_capacity(count);
    for (index, chunk) in ip_bytes.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let ip = u64::from_le_bytes(word);
        if ips.last().is_some_and(|&prev| prev >= ip) {
            return Err(SidecarError::Unsorted { index, ip });
        }
        ips.push(ip);
    }
    let mut entries = Vec::with_capacity(count);
    for (index, chunk) in entry_bytes.chunks_exact(ORC_ENTRY_SIZE).enumerate() {
        let mut six = [0u8; ORC_ENTRY_SIZE];
        six.copy_from_slice(chunk);
        let raw = RawEntry::from_bytes(six, Endian::Little);
        if !layout.is_canonical(raw) {
            return Err(SidecarError::BadEntry(index));
        }
        entries.push(raw);
    }
    Ok(Sidecar { build_id, layout, generator, ips, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Report;
    use orc_format::Entry;
    use proptest::prelude::*;

    fn table(ips: Vec<u64>, entries: Vec<RawEntry>) -> LinkedTable {
        LinkedTable { ips, entries, report: Report::default() }
    }

    fn entry_strategy() -> impl Strategy<Value = RawEntry> {
        (any::<i16>(), any::<i16>(), 0u8..=15, 0u8..=15, 0u8..=4, any::<bool>()).prop_map(|(sp, bp, sr, br, t, sig)| {
            let e = Entry {
                kind: orc_format::EntryType::from_v3_number(t),
                sp_reg: Layout::V3.reg(sr),
                sp_offset: sp,
                bp_reg: Layout::V3.reg(br),
                bp_offset: bp,
                signal: sig,
            };
            Layout::V3.encode(e).unwrap()
        })
    }

    proptest! {
        #[test]
        fn round_trip(id in proptest::collection::vec(any::<u8>(), 0..=40),
                      rows in proptest::collection::btree_map(any::<u64>(), entry_strategy(), 0..64)) {
            let (ips, entries): (Vec<u64>, Vec<RawEntry>) = rows.into_iter().unzip();
            let bytes = encode(&id, &table(ips.clone(), entries.clone()));
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(back.build_id, id);
            prop_assert_eq!(back.layout, Layout::V3);
            prop_assert_eq!(back.ips, ips);
            prop_assert_eq!(back.entries, entries);
        }

        #[test]
        fn mutations_never_panic(seed in any::<u64>(), cut in any::<usize>()) {
            let ips = vec![0x1000, 0x1004, 0x2000];
            let entries = vec![
                Layout::V3.encode(Entry::call(8)).unwrap(),
                Layout::V3.encode(Entry::call(16)).unwrap(),
                Layout::V3.encode(Entry::UNDEFINED).unwrap(),
            ];
            let good = encode(&[1, 2, 3, 4], &table(ips, entries));
            let mut rng = orc_testkit::Rng::new(seed);
            let mut bad = good.clone();
            rng.mutate(&mut bad, &[], 4);
            let _ = decode(&bad);
            let _ = decode(&bad[..cut % (bad.len() + 1)]);
        }
    }

    #[test]
    fn rejects_each_broken_field() {
        let ips = vec![0x10, 0x20];
        let entries = vec![Layout::V3.encode(Entry::call(8)).unwrap(); 2];
        let good = encode(&[0xab; 20], &table(ips, entries));
        assert!(decode(&good).is_ok());
        let with = |at: usize, b: u8| {
            let mut v = good.clone();
            v[at] = b;
            decode(&v)
        };
        assert_eq!(with(0, b'X'), Err(SidecarError::BadMagic));
        assert_eq!(with(8, 1), Err(SidecarError::Version(1)));
        assert_eq!(with(10, 9), Err(SidecarError::Layout(9)));
        assert_eq!(with(11, 65), Err(SidecarError::BuildIdLength(65)));
        // Second address below the first.
        assert_eq!(with(HEADER + 20 + 4 + 8, 0x01), Err(SidecarError::Unsorted { index: 1, ip: 1 }));
        // An unused flag bit in the second entry (v3 flags: bits 12-15 unused).
        let flags_hi = HEADER + 20 + 4 + 16 + 6 + 5;
        assert_eq!(with(flags_hi, 0xf0), Err(SidecarError::BadEntry(1)));
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(SidecarError::TrailingBytes(1)));
        assert!(matches!(decode(&good[..good.len() - 1]), Err(SidecarError::Truncated(_))));
        // The generator is carried, not judged: the cache decides what an old one means.
        assert_eq!(decode(&good).unwrap().generator, crate::GENERATOR);
        assert_eq!(with(12, 0x7f).unwrap().generator & 0xff, 0x7f);
    }
}
