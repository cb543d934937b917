//! The ORC rows of an analysed object, as objtool's `orc_create` lists them: per text
//! section, in address order, an entry wherever the state changes (the state of unreached or
//! ignored code is "undefined"), the union of all alternatives at a patch site, and an
//! undefined terminator at the end of every section that got an entry.

use orc_format::{Entry, Layout};
use orc_stack::{orc_entry, CfiState, OrcError};

use crate::report::Fatal;
use crate::Checker;

/// One row of the table: the entry for the instruction at `offset` in section `section`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Row {
    /// Section index of the text section.
    pub section: usize,
    /// Offset of the instruction (or of a byte of a patch site).
    pub offset: u64,
    /// The entry.
    pub entry: Entry,
}

/// The entry of a row: `orc-stack`'s mapping with the 6.4+ rules (the vocabulary [`Entry`]
/// speaks) and the registers of `layout`; the writer encodes it in the object's layout. `None`
/// is unreached or ignored code.
pub(crate) fn row_entry(state: Option<&CfiState>, layout: Layout) -> Result<Entry, OrcError> {
    orc_entry(state, layout)
}

impl Checker<'_> {
    /// The layout whose rules and registers the rows are made with: the era's from 6.4 on (a
    /// `%rax` DRAP base exists from 7.1), else v3's rules (older layouts are encoded from them).
    pub(crate) fn row_layout(&self) -> Layout {
        let layout = self.era.orc_layout();
        if layout.has_typed_undefined() {
            layout
        } else {
            Layout::V3
        }
    }

    pub(crate) fn orc_rows(&self) -> Result<Vec<Row>, Fatal> {
        let mut rows = Vec::new();
        for (si, sec) in self.p.sections.iter().enumerate() {
            if !sec.text {
                continue;
            }
            // The table starts "undefined", so leading undefined code needs no entry.
            let mut prev = Entry::UNDEFINED;
            let mut empty = true;
            let mut id = sec.insns.start;
            while id < sec.insns.end {
                let insn = &self.p.insns[id as usize];
                let fail = |e: OrcError| Fatal::at(self.p.offstr(si, insn.offset), e.to_string());
                match self.p.alt_group(id) {
                    None => {
                        let state = self.insn_cfi[id as usize].map(|c| self.cfi(c));
                        let entry = row_entry(state, self.row_layout()).map_err(fail)?;
                        if entry != prev {
                            rows.push(Row { section: si, offset: insn.offset, entry });
                            prev = entry;
                            empty = false;
                        }
                        id += 1;
                    }
                    Some(g) => {
                        // A patch site: one entry per byte offset where any alternative has an
                        // instruction boundary, from the shared array.
                        let group = &self.groups[g as usize];
                        let states = &self.alt_cfi[group.cfi as usize];
                        for (i, state) in states.iter().enumerate() {
                            let Some(c) = state else { continue };
                            let entry = row_entry(Some(self.cfi(*c)), self.row_layout()).map_err(fail)?;
                            if entry != prev {
                                rows.push(Row { section: si, offset: insn.offset + i as u64, entry });
                                prev = entry;
                                empty = false;
                            }
                        }
                        id = group.last_insn.unwrap_or(id) + 1;
                    }
                }
            }
            if !empty {
                rows.push(Row { section: si, offset: sec.size, entry: Entry::UNDEFINED });
            }
        }
        Ok(rows)
    }
}
