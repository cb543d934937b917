//! Building a sorted ORC table from rows of several sources.
//!
//! Each covered range contributes its rows (strong) and an UNDEFINED terminator at its end
//! (weak): where another range starts at that very address, its row wins, as objtool lets
//! the next section's first entry win over the previous one's terminator. After sorting,
//! rows equal to the one before them are dropped, because a lookup finds the same entry
//! either way.

use orc_format::{Entry, Layout, RawEntry};

/// Rows collected before sorting.
#[derive(Default)]
pub(crate) struct TableBuilder {
    /// `(ip, weak, insertion order, entry)`.
    rows: Vec<(u64, bool, u32, Entry)>,
}

impl TableBuilder {
    /// A row: from `ip` on, `entry` (until the next row).
    pub fn row(&mut self, ip: u64, entry: Entry) {
        let n = self.rows.len() as u32;
        self.rows.push((ip, false, n, entry));
    }

    /// The end of a covered range: UNDEFINED from `ip` on, unless a row starts there.
    pub fn terminator(&mut self, ip: u64) {
        let n = self.rows.len() as u32;
        self.rows.push((ip, true, n, Entry::UNDEFINED));
    }

    /// The sorted table in [`Layout::V3`]: one row per address (the first strong one added,
    /// else the terminator), rows that repeat the previous entry dropped.
    pub fn finish(mut self) -> (Vec<u64>, Vec<RawEntry>) {
        self.rows.sort_unstable_by_key(|&(ip, weak, n, _)| (ip, weak, n));
        let mut ips = Vec::with_capacity(self.rows.len());
        let mut entries: Vec<RawEntry> = Vec::with_capacity(self.rows.len());
        let mut last_ip = None;
        let mut last_entry = None;
        for (ip, _, _, entry) in self.rows {
            if last_ip == Some(ip) {
                continue;
            }
            last_ip = Some(ip);
            if last_entry == Some(entry) {
                continue;
            }
            last_entry = Some(entry);
            ips.push(ip);
            entries.push(encode(entry));
        }
        (ips, entries)
    }
}

/// The v3 form of an entry; every entry this crate makes is encodable (registers below 16,
/// v3 types), and anything else would become UNDEFINED rather than a panic.
pub(crate) fn encode(entry: Entry) -> RawEntry {
    Layout::V3.encode(entry).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminator_yields_to_a_row_at_the_same_address_and_repeats_merge() {
        let mut b = TableBuilder::default();
        b.row(0x10, Entry::call(8));
        b.row(0x11, Entry::call(16));
        b.terminator(0x20);
        b.row(0x20, Entry::call(8));
        b.row(0x24, Entry::call(8));
        b.terminator(0x30);
        let (ips, entries) = b.finish();
        assert_eq!(ips, [0x10, 0x11, 0x20, 0x30]);
        let decoded: Vec<Entry> = entries.iter().map(|&r| Layout::V3.decode(r)).collect();
        assert_eq!(decoded, [Entry::call(8), Entry::call(16), Entry::call(8), Entry::UNDEFINED]);
    }
}
