//! The site tables objtool writes after validation (`create_static_call_sections`,
//! `create_retpoline_sites_sections`, `create_return_sites_sections`,
//! `create_direct_call_sections`, `create_mcount_loc_sections`, `create_ibt_endbr_seal_sections`): which instructions each
//! lists, in objtool's order. Writing them is `orc-elf`'s job.

use orc_decode::InsnKind;
use orc_elf::SymbolKind;

use crate::program::{InsnId, SymId};
use crate::report::Fatal;
use crate::Checker;

/// One `.static_call_sites` row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StaticCallRow {
    /// Input section index of the call or jump.
    pub section: usize,
    /// Its offset in that section.
    pub offset: u64,
    /// `.symtab` index of the key: the `__SCK__*` symbol, or (in a module that cannot see
    /// the key) the `__SCT__*` trampoline called.
    pub key: usize,
    /// A tail call (`jmp`): `STATIC_CALL_SITE_TAIL` goes into the key's addend.
    pub tail: bool,
}

/// The rows of the site sections objtool would write; an empty list means no section.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct SiteRows {
    /// `.static_call_sites` (`--static-call`).
    pub static_calls: Vec<StaticCallRow>,
    /// `.retpoline_sites` (`--retpoline`): (input section index, offset).
    pub retpoline_sites: Vec<(usize, u64)>,
    /// `.return_sites` (`--rethunk`).
    pub return_sites: Vec<(usize, u64)>,
    /// `.call_sites` (`--rethunk` with `--hacks=skylake`, 6.2 and later).
    pub call_sites: Vec<(usize, u64)>,
    /// `__mcount_loc` (`--mcount`): the `__fentry__` calls, 8-byte absolute slots.
    pub mcount_loc: Vec<(usize, u64)>,
    /// `.ibt_endbr_seal` (`--ibt`).
    pub ibt_endbr_seal: Vec<(usize, u64)>,
}

impl SiteRows {
    /// True when no section would be written.
    pub fn is_empty(&self) -> bool {
        self.static_calls.is_empty()
            && self.retpoline_sites.is_empty()
            && self.return_sites.is_empty()
            && self.call_sites.is_empty()
            && self.mcount_loc.is_empty()
            && self.ibt_endbr_seal.is_empty()
    }
}

impl Checker<'_> {
    fn site(&self, id: InsnId) -> (usize, u64) {
        let insn = &self.p.insns[id as usize];
        (self.p.sections[insn.sec as usize].index, insn.offset)
    }

    /// objtool skips (with a warning) a table the file already has.
    fn already_has(&mut self, name: &str, message: &str) -> bool {
        if self.p.sections.iter().any(|s| s.name == name) {
            self.warn(message.to_string());
            return true;
        }
        false
    }

    /// ENDBRs at the start of functions (objtool's `endbr_list`, built while decoding), in
    /// section and symbol order, each once.
    fn endbr_at_function_starts(&self) -> Vec<InsnId> {
        let mut out: Vec<InsnId> = Vec::new();
        // Membership through a set: vmlinux.o has tens of thousands of them.
        let mut seen = std::collections::HashSet::new();
        for sec in &self.p.sections {
            if !sec.exec || sec.insns.is_empty() {
                continue;
            }
            for &s in &sec.syms {
                let sym = &self.p.symbols[s as usize];
                if sym.kind != SymbolKind::Func
                    || sym.embedded_insn
                    || sym.alias != s
                    || sym.offset == sec.size
                {
                    continue;
                }
                let Some(first) = self.p.find_insn(sec.index, sym.offset) else {
                    continue;
                };
                if self.p.insns[first as usize].kind == InsnKind::Endbr && seen.insert(first) {
                    out.push(first);
                }
            }
        }
        out
    }

    /// The site rows, in the order `check()` creates the sections (its warnings too).
    pub(crate) fn site_rows(&mut self) -> Result<SiteRows, Fatal> {
        let mut rows = SiteRows::default();
        if self.opts.static_call
            && !self.already_has(
                ".static_call_sites",
                "file already has .static_call_sites section, skipping",
            )
        {
            for id in self.sites.static_calls.clone() {
                let Some(tramp) = self
                    .call_dest(id)
                    .or_else(|| self.p.insn_reloc(id).map(|r| r.symbol as SymId))
                else {
                    continue;
                };
                let name = self.p.symbols[tramp as usize].name;
                let Some(rest) = name.strip_prefix("__SCT__") else {
                    return Err(Fatal::new(format!(
                        "static_call: trampoline name malformed: {name}"
                    )));
                };
                let key_name = format!("__SCK__{rest}");
                let key = match self.p.find_symbol_by_name(&key_name) {
                    Some(k) => k,
                    None if self.opts.module => tramp,
                    None => {
                        return Err(Fatal::new(format!(
                            "static_call: can't find static_call_key symbol: {key_name}"
                        )))
                    }
                };
                let (section, offset) = self.site(id);
                let tail = self.is_sibling_call(id);
                rows.static_calls.push(StaticCallRow {
                    section,
                    offset,
                    key: self.p.symbols[key as usize].index as usize,
                    tail,
                });
            }
        }
        if self.opts.retpoline
            && !self.already_has(
                ".retpoline_sites",
                "file already has .retpoline_sites, skipping",
            )
        {
            rows.retpoline_sites = self
                .sites
                .retpoline_calls
                .iter()
                .map(|&id| self.site(id))
                .collect();
        }
        if self.opts.rethunk {
            if !self.already_has(".return_sites", "file already has .return_sites, skipping") {
                rows.return_sites = self
                    .sites
                    .return_sites
                    .iter()
                    .map(|&id| self.site(id))
                    .collect();
            }
            let call_sites_era = (self.era.major, self.era.minor) >= (6, 2);
            if self.opts.hack_skylake
                && call_sites_era
                && !self.already_has(
                    ".call_sites",
                    "file already has .call_sites section, skipping",
                )
            {
                rows.call_sites = self.sites.calls.iter().map(|&id| self.site(id)).collect();
            }
        }
        if self.opts.mcount
            && !self.already_has("__mcount_loc", "file already has __mcount_loc section, skipping")
        {
            rows.mcount_loc = self.sites.mcount_loc.iter().map(|&id| self.site(id)).collect();
        }
        if self.opts.ibt
            && !self.already_has(
                ".ibt_endbr_seal",
                "file already has .ibt_endbr_seal, skipping",
            )
        {
            for id in self.endbr_at_function_starts() {
                if self.sites.endbr_used.contains(&id) {
                    continue;
                }
                let insn = &self.p.insns[id as usize];
                if let Some(s) = insn.sym.get() {
                    let sym = &self.p.symbols[s as usize];
                    if self.opts.module
                        && sym.kind == SymbolKind::Func
                        && insn.offset == sym.offset
                        && (sym.name == "init_module" || sym.name == "cleanup_module")
                    {
                        let message = format!("{}(): not an indirect call target", sym.name);
                        self.warn(message);
                    }
                }
                let site = self.site(id);
                rows.ibt_endbr_seal.push(site);
            }
        }
        Ok(rows)
    }
}
