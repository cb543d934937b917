//! `--strict-alternatives`: the hazard Peter Zijlstra pointed out in January 2021, which the
//! union rule does not catch.
//!
//! The union rule checks boundaries that two streams share. But the unwinder looks a return
//! address up at `ip - 1` (the call instruction, not what follows it), and inside a patch
//! site the entry found there can come from *another* stream's boundary that falls inside the
//! call. If that entry's state differs from the call's own, every unwind through that call
//! is wrong, though no two streams disagree at any shared boundary.
//!
//! For every call in every stream of every site, this compares the entry the finished table
//! gives at `return address - 1` with the entry of the call's own state.

use orc_decode::InsnKind;
use orc_format::Entry;

use crate::orc::{row_entry, Row};
use crate::program::InsnId;
use crate::Checker;

/// The rightmost row at or before `offset` of section `sec`: what the unwinder finds.
fn lookup(rows: &[Row], sec: usize, offset: u64) -> Entry {
    rows.iter().rfind(|r| r.section == sec && r.offset <= offset).map(|r| r.entry).unwrap_or(Entry::UNDEFINED)
}

fn show(e: &Entry) -> String {
    if e.kind == orc_format::EntryType::Undefined {
        return "undefined".into();
    }
    format!("{}{:+}", e.sp_reg, e.sp_offset)
}

impl Checker<'_> {
    fn stream_calls(&self, first: InsnId, last: Option<InsnId>) -> Vec<InsnId> {
        let mut out = Vec::new();
        let mut it = Some(first);
        while let Some(id) = it {
            let insn = &self.p.insns[id as usize];
            if insn.fake() {
                break;
            }
            if matches!(insn.kind, InsnKind::Call | InsnKind::CallDynamic) {
                out.push(id);
            }
            if Some(id) == last {
                break;
            }
            it = self.p.next_in_sec(id);
        }
        out
    }

    /// Returns the number of hazards found (each also a warning).
    pub(crate) fn check_return_addresses_in_sites(&mut self, rows: &[Row]) -> usize {
        let mut found = 0;
        for g in 0..self.groups.len() {
            let group = self.groups[g].clone();
            if group.orig_group.is_some() {
                continue;
            }
            let site_first = &self.p.insns[group.first_insn as usize];
            let (sec, site_off) = (site_first.sec as usize, site_first.offset);
            let site_len = self.alt_cfi[group.cfi as usize].len() as u64;
            let mut streams = vec![(None, group.first_insn, group.last_insn)];
            for r in &self.groups {
                if r.orig_group == Some(g as u32) {
                    streams.push((r.feature, r.first_insn, r.last_insn));
                }
            }
            for (feature, first, last) in streams {
                let start = self.p.insns[first as usize].offset;
                for call in self.stream_calls(first, last) {
                    let insn = &self.p.insns[call as usize];
                    let ret = insn.end() - start;
                    if ret == 0 || ret > site_len {
                        continue;
                    }
                    let Some(state) = self.insn_cfi[call as usize] else { continue };
                    let Ok(expected) = row_entry(Some(self.cfi(state)), self.row_layout()) else { continue };
                    let at = lookup(rows, sec, site_off + ret - 1);
                    if at == expected {
                        continue;
                    }
                    let stream = match feature {
                        None => "the original".to_string(),
                        Some((f, flags)) => format!("the replacement for feature {}*32+{}{}", f / 32, f % 32, if flags & 1 != 0 { " (absent)" } else { "" }),
                    };
                    let message = format!(
                        "return address inside alternative: the call at site+{:#x} in {stream} returns to site+{ret:#x}; the unwinder looks up site+{:#x} and finds {} (another stream's boundary), but the call's frame is {}",
                        insn.offset - start,
                        ret - 1,
                        show(&at),
                        show(&expected)
                    );
                    let orig = group.first_insn;
                    let location = self.p.offstr(sec, self.p.insns[orig as usize].offset);
                    self.warnings.push(crate::Warning { location: Some(location), message });
                    found += 1;
                }
            }
        }
        found
    }
}
