//! A readable view of an analysed object: per function, each instruction with the stack
//! state before it; per patch site, every alternative stream with its states and the union
//! the ORC table gets. This is what `orctool annotate` prints; it is built from the same
//! analysis that produces the table, not recomputed.

use orc_decode::Reg;
use orc_elf::ElfFile;
use orc_flow::KernelEra;
use orc_stack::{Base, CfiState, FrameType};

use crate::program::InsnId;
use crate::{analyse, Analysis, Checker, Options};

/// One instruction and the state before it.
#[derive(Clone, Debug)]
pub struct InsnView {
    /// Section name.
    pub section: String,
    /// Offset in its section.
    pub offset: u64,
    /// The instruction's bytes (empty for objtool's invented padding NOP).
    pub bytes: Vec<u8>,
    /// Length (the padding NOP has no bytes but a length).
    pub len: u8,
    /// The state before it, described; `None` when no path reached it.
    pub state: Option<String>,
    /// Index of the patch site this instruction starts, in [`FunctionView::sites`].
    pub site: Option<usize>,
    /// What a relocation inside the instruction refers to (`pv_irq_ops+0x8`), PC-relative
    /// addends already adjusted to the target.
    pub reloc: Option<String>,
}

/// One instruction stream at a patch site.
#[derive(Clone, Debug)]
pub struct StreamView {
    /// `None` for the original code; the feature number and `ALT_FLAG_*` bits for a
    /// replacement.
    pub feature: Option<(u16, u16)>,
    /// Its instructions, offsets relative to the site.
    pub insns: Vec<InsnView>,
}

/// A patch site: the original and every replacement over the same bytes.
#[derive(Clone, Debug)]
pub struct SiteView {
    /// Offset of the site in its section.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// The original first, then the replacements in table order.
    pub streams: Vec<StreamView>,
    /// The shared state per byte offset: `(offset in site, state)` where any stream has an
    /// instruction boundary.
    pub union: Vec<(u64, String)>,
}

/// One function.
#[derive(Clone, Debug)]
pub struct FunctionView {
    /// Symbol name.
    pub name: String,
    /// Section name.
    pub section: String,
    /// Offset of the function.
    pub offset: u64,
    /// Its instructions in address order.
    pub insns: Vec<InsnView>,
    /// Its patch sites.
    pub sites: Vec<SiteView>,
}

/// The analysis and its views.
pub struct Inspection {
    /// What `check` returns.
    pub analysis: Analysis,
    /// The functions, in section and address order.
    pub functions: Vec<FunctionView>,
}

fn base_name(base: Base) -> String {
    match base {
        Base::UNDEFINED => "undef".into(),
        Base::CFA => "cfa".into(),
        Base::SP_INDIRECT => "(sp)".into(),
        Base::BP_INDIRECT => "(bp)".into(),
        b => b.as_reg().map(|r| r.name().to_string()).unwrap_or_else(|| format!("r{}", b.number())),
    }
}

/// A state in a few words: `cfa=sp+16 bp@cfa-16`, plus the frame type when it is not a
/// call frame.
pub fn describe(cfi: &CfiState) -> String {
    if cfi.cfa.base == Base::UNDEFINED {
        return "cfa=undefined".into();
    }
    let mut s = format!("cfa={}{:+}", base_name(cfi.cfa.base), cfi.cfa.offset);
    for reg in Reg::all().filter(|&r| r != Reg::RA) {
        let r = cfi.reg(reg);
        if r.base == Base::UNDEFINED {
            continue;
        }
        s += &format!(" {}@{}{:+}", reg.name(), base_name(r.base), r.offset);
    }
    match cfi.frame_type {
        FrameType::CALL => {}
        FrameType::REGS => s += " [regs]",
        FrameType::REGS_PARTIAL => s += " [iret regs]",
        FrameType::END_OF_STACK => s = "end of stack".into(),
        FrameType::UNDEFINED => s = "undefined (hint)".into(),
        FrameType(k) => s += &format!(" [type {k}]"),
    }
    if cfi.signal {
        s += " signal";
    }
    s
}

/// Analyses `file` and builds the views.
pub fn inspect(file: &ElfFile<'_>, era: KernelEra, opts: &Options) -> Inspection {
    let (analysis, checker) = analyse(file, era, opts);
    let functions = match &checker {
        Some(c) => c.function_views(),
        None => Vec::new(),
    };
    Inspection { analysis, functions }
}

impl Checker<'_> {
    fn state_of(&self, id: InsnId) -> Option<String> {
        // `get`: when the analysis gave up before sizing its arrays to the fake NOPs it had
        // already added, those have no state.
        self.insn_cfi.get(id as usize).copied().flatten().map(|c| describe(self.cfi(c)))
    }

    fn insn_view(&self, id: InsnId, site: Option<usize>) -> InsnView {
        let insn = &self.p.insns[id as usize];
        let sec = &self.p.sections[insn.sec as usize];
        let bytes = if insn.fake() {
            Vec::new()
        } else {
            let start = insn.offset as usize;
            sec.data.get(start..start + insn.len as usize).map(<[u8]>::to_vec).unwrap_or_default()
        };
        let reloc = self.p.insn_reloc(id).map(|r| {
            let sym = &self.p.symbols[r.symbol];
            // PC32/PLT32 count from the end of the 4-byte field.
            let addend = if r.kind == 2 || r.kind == 4 { r.addend.wrapping_add(4) } else { r.addend };
            match addend {
                0 => sym.name.to_string(),
                a if a > 0 => format!("{}+{:#x}", sym.name, a),
                a => format!("{}-{:#x}", sym.name, a.unsigned_abs()),
            }
        });
        InsnView { section: sec.name.to_string(), offset: insn.offset, bytes, len: insn.len, state: self.state_of(id), site, reloc }
    }

    fn stream(&self, first: InsnId, last: Option<InsnId>, nop: Option<InsnId>) -> Vec<InsnView> {
        let mut out = Vec::new();
        let mut it = Some(first);
        while let Some(id) = it {
            if self.p.insns[id as usize].fake() {
                break;
            }
            out.push(self.insn_view(id, None));
            if Some(id) == last {
                break;
            }
            it = self.p.next_in_sec(id);
        }
        if let Some(n) = nop {
            out.push(self.insn_view(n, None));
        }
        out
    }

    fn function_views(&self) -> Vec<FunctionView> {
        let mut out = Vec::new();
        for (si, sec) in self.p.sections.iter().enumerate() {
            if !sec.text {
                continue;
            }
            for &s in &sec.syms {
                let sym = &self.p.symbols[s as usize];
                if !sym.is_func() || sym.alias != s || sym.len == 0 || sym.name.starts_with("__pfx_") {
                    continue;
                }
                let mut view = FunctionView {
                    name: sym.name.to_string(),
                    section: sec.name.to_string(),
                    offset: sym.offset,
                    insns: Vec::new(),
                    sites: Vec::new(),
                };
                let end = sym.offset.saturating_add(sym.len);
                let mut it = self.p.find_insn(si, sym.offset);
                while let Some(id) = it {
                    let insn = &self.p.insns[id as usize];
                    if insn.offset >= end {
                        break;
                    }
                    let mut site = None;
                    if let Some(g) = self.p.alt_group(id) {
                        let group = &self.groups[g as usize];
                        if group.first_insn == id && group.orig_group.is_none() {
                            site = Some(view.sites.len());
                            view.sites.push(self.site_view(g));
                        }
                    }
                    view.insns.push(self.insn_view(id, site));
                    it = self.p.next_in_sec(id);
                }
                out.push(view);
            }
        }
        out
    }

    fn site_view(&self, orig: u32) -> SiteView {
        let group = &self.groups[orig as usize];
        let first = &self.p.insns[group.first_insn as usize];
        let last = group.last_insn.map(|l| self.p.insns[l as usize].end()).unwrap_or(first.end());
        let rel = |mut v: InsnView, base: u64| {
            v.offset = v.offset.wrapping_sub(base);
            v
        };
        let mut streams = vec![StreamView {
            feature: None,
            insns: self.stream(group.first_insn, group.last_insn, None).into_iter().map(|v| rel(v, first.offset)).collect(),
        }];
        for g in &self.groups {
            if g.orig_group != Some(orig) {
                continue;
            }
            let start = self.p.insns[g.first_insn as usize].offset;
            let insns = if self.p.insns[g.first_insn as usize].fake() {
                vec![self.insn_view(g.first_insn, None)]
            } else {
                self.stream(g.first_insn, g.last_insn, g.nop)
            };
            streams.push(StreamView { feature: g.feature, insns: insns.into_iter().map(|v| rel(v, start)).collect() });
        }
        let union = self.alt_cfi[group.cfi as usize]
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (i as u64, describe(self.cfi(c)))))
            .collect();
        SiteView { offset: first.offset, len: last - first.offset, streams, union }
    }
}
