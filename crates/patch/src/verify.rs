//! Walking the patched code of one choice and asking the table at every boundary.

use std::collections::{HashMap, HashSet};

use orc_decode::{decode_one, disassemble, InsnKind, Instruction};
use orc_elf::{ElfFile, Relocation};
use orc_flow::{AddressMap, Location};
use orc_format::{Entry, EntryType};

use crate::choices::{Choice, Origin, Site, SiteKind};
use crate::state::{intra_function_call, same_state, step, Unmodelled};
use crate::table::{Lookup, Names, Row};

/// `R_X86_64_PC32` and `R_X86_64_PLT32`: the relocations of a branch displacement.
const R_X86_64_PC32: u32 = 2;
const R_X86_64_PLT32: u32 = 4;

/// Which unwinder lookup disagreed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum CheckKind {
    /// Interrupted at a boundary inside the site: the lookup of the exact ip.
    Interrupt,
    /// A call in the patched code: the lookup of its return address minus one.
    ReturnAddress,
    /// Where the patched code continues: the end of the site, or a jump's target outside it.
    Exit,
}

impl CheckKind {
    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            CheckKind::Interrupt => "interrupt",
            CheckKind::ReturnAddress => "return address",
            CheckKind::Exit => "exit",
        }
    }
}

/// One lookup that did not give the derived state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Failure {
    /// Which lookup.
    pub check: CheckKind,
    /// The site's table.
    pub site_kind: SiteKind,
    /// The site's first byte.
    pub site: Location,
    /// `function+0xoff (section+0xoff)` of the site.
    pub site_name: String,
    /// The choice.
    pub choice: String,
    /// The table entry that produced the choice, if any.
    pub entry: Option<usize>,
    /// Offset of the boundary (or the call) in the site; `None` for a jump's target outside.
    pub boundary: Option<u64>,
    /// The address looked up (for a return address: the return address minus one).
    pub lookup: Location,
    /// Its name.
    pub lookup_name: String,
    /// The patched instruction at the boundary (the call, for a return address), as objdump
    /// spells it; `None` at an exit.
    pub instruction: Option<String>,
    /// The state derived from the patched code.
    pub derived: Entry,
    /// The table's entry there and its own address; `None` if the section has no entry at or
    /// before the address.
    pub table: Option<(Row, String)>,
}

/// A choice whose walk stopped because a state could not be derived.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UnmodelledAt {
    /// Why.
    pub reason: Unmodelled,
    /// The site's table.
    pub site_kind: SiteKind,
    /// The site's first byte.
    pub site: Location,
    /// Its name.
    pub site_name: String,
    /// The choice.
    pub choice: String,
    /// Offset in the site of the instruction, if the walk got that far.
    pub boundary: Option<u64>,
    /// The instruction, if it decodes.
    pub instruction: Option<String>,
}

/// A site whose choices were not walked: the table gives no state before it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct WithoutState {
    /// The site's table.
    pub site_kind: SiteKind,
    /// The site's first byte.
    pub site: Location,
    /// Its name.
    pub site_name: String,
    /// The entry the lookup found (undefined or end of stack), `None` when there is none.
    pub entry: Option<Entry>,
    /// Number of choices left unwalked.
    pub choices: usize,
}

/// Counters of one file (or many: they add up).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Counts {
    /// Alternative sites.
    pub alternative_sites: usize,
    /// Of those, the sites with an `ALT_FLAG_DIRECT_CALL` entry (`pv_ops` calls, 6.8+).
    pub direct_call_sites: usize,
    /// Jump-label sites.
    pub jump_label_sites: usize,
    /// Paravirt sites.
    pub paravirt_sites: usize,
    /// Choices walked (choices of sites without a state are not counted).
    pub choices: usize,
    /// Choices not walked: the table's entry before the site is undefined (or there is none),
    /// so there is no state to derive from.
    pub choices_without_state: usize,
    /// Boundaries inside sites looked up as interrupted ips.
    pub boundaries: usize,
    /// Return addresses looked up (at ip - 1).
    pub return_addresses: usize,
    /// Exits looked up (site ends and jump targets outside the site).
    pub exits: usize,
    /// Exits that could not be looked up: jumps out of the file (tail calls, the return
    /// thunk) or to a target no relocation names.
    pub exits_away: usize,
    /// Exits that could not be looked up: jumps into a section without ORC entries.
    pub exits_uncovered: usize,
    /// Exits that could not be looked up: jumps through a register or memory.
    pub exits_indirect: usize,
    /// Exits that could not be looked up: the site ends by loading `%rsp` from a register
    /// (the entry code's `mov %rax,%rsp` onto the task stack). What the new stack holds is
    /// not in the code: the kernel declares it with an unwind hint right after the site,
    /// and the table's entry there is that declaration.
    pub exits_stack_switch: usize,
    /// Choices whose walk met something unmodelled.
    pub unmodelled: usize,
    /// Failed lookups.
    pub failures: usize,
}

impl Counts {
    /// All sites.
    pub fn sites(&self) -> usize {
        self.alternative_sites + self.jump_label_sites + self.paravirt_sites
    }

    /// All exits that could not be looked up.
    pub fn exits_unchecked(&self) -> usize {
        self.exits_away + self.exits_uncovered + self.exits_indirect + self.exits_stack_switch
    }
}

impl core::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.alternative_sites += o.alternative_sites;
        self.direct_call_sites += o.direct_call_sites;
        self.jump_label_sites += o.jump_label_sites;
        self.paravirt_sites += o.paravirt_sites;
        self.choices += o.choices;
        self.choices_without_state += o.choices_without_state;
        self.boundaries += o.boundaries;
        self.return_addresses += o.return_addresses;
        self.exits += o.exits;
        self.exits_away += o.exits_away;
        self.exits_uncovered += o.exits_uncovered;
        self.exits_indirect += o.exits_indirect;
        self.exits_stack_switch += o.exits_stack_switch;
        self.unmodelled += o.unmodelled;
        self.failures += o.failures;
    }
}

/// Where a branch goes.
enum Target {
    /// Inside the patched code, at this offset (the site length: its end).
    Inside(u64),
    /// Elsewhere in the file.
    Outside(Location),
    /// Out of the file (an undefined symbol) or unknown.
    Away,
}

/// `mov %reg,%rsp` (either encoding, 64-bit, any of the 16 registers): a switch to another
/// stack, whose contents the code does not say.
fn loads_rsp_from_register(b: &[u8]) -> bool {
    match *b {
        // 89 /r: mov r64 -> r/m64, r/m = rsp (REX.B clear).
        [rex, 0x89, modrm] => rex & 0xf9 == 0x48 && modrm & 0xc7 == 0xc4,
        // 8b /r: mov r/m64 -> r64, reg = rsp (REX.R clear), r/m a register.
        [rex, 0x8b, modrm] => rex & 0xfc == 0x48 && modrm & 0xf8 == 0xe0,
        _ => false,
    }
}

/// The per-file context of the walks.
pub struct Walker<'a, 'data> {
    file: &'a ElfFile<'data>,
    lookup: &'a Lookup,
    names: &'a Names<'data>,
    relocations: HashMap<usize, HashMap<u64, Relocation>>,
    data: HashMap<usize, &'data [u8]>,
    /// A linked file's sections by address: its branches hold resolved displacements, which
    /// may reach into another section (`.text` to `.altinstr_aux`, `.altinstr_replacement`
    /// back to `.text`). `None` for a relocatable file.
    linked: Option<std::rc::Rc<AddressMap>>,
    /// Results.
    pub counts: Counts,
    /// Failures found.
    pub failures: Vec<Failure>,
    /// Unmodelled choices.
    pub unmodelled: Vec<UnmodelledAt>,
    /// Sites without a state before them.
    pub without_state: Vec<WithoutState>,
    /// Jumps out of a site into a section without ORC entries: (site, choice, target) names.
    pub uncovered_exits: Vec<(String, String, String)>,
}

impl<'a, 'data> Walker<'a, 'data> {
    /// A walker over `file` with its table.
    pub fn new(file: &'a ElfFile<'data>, lookup: &'a Lookup, names: &'a Names<'data>) -> Self {
        Walker {
            file,
            lookup,
            names,
            relocations: HashMap::new(),
            data: HashMap::new(),
            linked: (file.kind() != orc_elf::FileKind::Relocatable).then(|| std::rc::Rc::new(AddressMap::new(file))),
            counts: Counts::default(),
            failures: Vec::new(),
            unmodelled: Vec::new(),
            without_state: Vec::new(),
            uncovered_exits: Vec::new(),
        }
    }

    fn relocation_at(&mut self, section: usize, offset: u64) -> Option<Relocation> {
        let file = self.file;
        let map = self.relocations.entry(section).or_insert_with(|| {
            file.relocation_section_for(section)
                .and_then(|r| file.relocations(r).ok())
                .map(|rs| rs.into_iter().map(|r| (r.offset, r)).collect())
                .unwrap_or_default()
        });
        map.get(&offset).copied()
    }

    fn section_data(&mut self, section: usize) -> &'data [u8] {
        let file = self.file;
        self.data.entry(section).or_insert_with(|| file.section(section).map(|s| s.data).unwrap_or(&[]))
    }

    /// Walks every choice of `site`.
    pub fn site(&mut self, site: &Site) {
        match site.kind {
            SiteKind::Alternative => {
                self.counts.alternative_sites += 1;
                self.counts.direct_call_sites += usize::from(site.direct_call);
            }
            SiteKind::JumpLabel => self.counts.jump_label_sites += 1,
            SiteKind::Paravirt => self.counts.paravirt_sites += 1,
        }
        let start = self.lookup.find(site.at).map(|r| r.entry);
        let start = match start {
            Some(e) if matches!(e.kind, EntryType::Call | EntryType::Regs | EntryType::RegsPartial) => e,
            entry => {
                self.counts.choices_without_state += site.choices.len();
                self.without_state.push(WithoutState {
                    site_kind: site.kind,
                    site: site.at,
                    site_name: self.names.both(site.at),
                    entry,
                    choices: site.choices.len(),
                });
                return;
            }
        };
        for choice in &site.choices {
            self.counts.choices += 1;
            self.choice(site, choice, start);
        }
    }

    fn unmodelled(
        &mut self,
        site: &Site,
        choice: &Choice,
        reason: Unmodelled,
        boundary: Option<u64>,
        insn: Option<String>,
    ) {
        self.counts.unmodelled += 1;
        self.unmodelled.push(UnmodelledAt {
            reason,
            site_kind: site.kind,
            site: site.at,
            site_name: self.names.both(site.at),
            choice: choice.name.clone(),
            boundary,
            instruction: insn,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        site: &Site,
        choice: &Choice,
        check: CheckKind,
        boundary: Option<u64>,
        lookup: Location,
        derived: Entry,
        insn: Option<String>,
    ) {
        match check {
            CheckKind::Interrupt => self.counts.boundaries += 1,
            CheckKind::ReturnAddress => self.counts.return_addresses += 1,
            CheckKind::Exit => self.counts.exits += 1,
        }
        let row = self.lookup.find(lookup);
        if row.is_some_and(|r| same_state(r.entry, derived)) {
            return;
        }
        self.counts.failures += 1;
        self.failures.push(Failure {
            check,
            site_kind: site.kind,
            site: site.at,
            site_name: self.names.both(site.at),
            choice: choice.name.clone(),
            entry: choice.entry,
            boundary,
            lookup,
            lookup_name: self.names.both(lookup),
            instruction: insn,
            derived,
            table: row.map(|r| (r, self.names.in_section(Location::new(lookup.section, r.offset)))),
        });
    }

    fn choice(&mut self, site: &Site, choice: &Choice, start: Entry) {
        if let Some(why) = choice.problem {
            self.unmodelled(site, choice, why, None, None);
            return;
        }
        let at = site.at;
        let len = choice.bytes.len() as u64;
        let section_len = self.section_data(at.section).len() as u64;
        if at.offset.checked_add(len).is_none_or(|end| end > section_len) {
            self.unmodelled(site, choice, Unmodelled::OutsideSection, None, None);
            return;
        }
        // The patched bytes, then the section's bytes after the site (to see an instruction
        // that would run past the end).
        let mut code = choice.bytes.clone();
        let after = self.section_data(at.section);
        let tail_start = usize::try_from(at.offset + len).unwrap_or(usize::MAX).min(after.len());
        code.extend_from_slice(&after[tail_start..(tail_start + 16).min(after.len())]);

        let mut seen: HashMap<u64, Entry> = HashMap::new();
        let mut exits: HashSet<(Location, Entry)> = HashSet::new();
        let mut work = vec![(0u64, start)];
        let mut stopped = false;
        while let Some((off, state)) = work.pop() {
            if off == len {
                let end = Location::new(at.section, at.offset + len);
                if exits.insert((end, state)) {
                    self.check(site, choice, CheckKind::Exit, Some(len), end, state, None);
                }
                continue;
            }
            if let Some(&before) = seen.get(&off) {
                if !same_state(before, state) && !stopped {
                    stopped = true;
                    self.unmodelled(site, choice, Unmodelled::Join, Some(off), None);
                }
                continue;
            }
            seen.insert(off, state);
            let here = Location::new(at.section, at.offset + off);
            let text = disassemble(&code[off as usize..], here.offset);
            if off != 0 {
                self.check(site, choice, CheckKind::Interrupt, Some(off), here, state, text.clone());
            }
            let insn = match decode_one(&code[off as usize..], off, true) {
                Ok(i) => i,
                Err(_) => {
                    if !stopped {
                        stopped = true;
                        self.unmodelled(site, choice, Unmodelled::Undecodable, Some(off), None);
                    }
                    continue;
                }
            };
            let next = off + u64::from(insn.len);
            if next > len {
                if !stopped {
                    stopped = true;
                    self.unmodelled(site, choice, Unmodelled::CrossesSiteEnd, Some(off), text);
                }
                continue;
            }
            match insn.kind {
                InsnKind::Call if matches!(self.target(site, choice, &insn, off), Target::Inside(_)) => {
                    // An intra-function call: a jump that pushes; nothing returns to it.
                    let Target::Inside(t) = self.target(site, choice, &insn, off) else { unreachable!() };
                    match intra_function_call(state) {
                        Ok(s) => work.push((t, s)),
                        Err(why) => {
                            if !stopped {
                                stopped = true;
                                self.unmodelled(site, choice, why, Some(off), text);
                            }
                        }
                    }
                }
                InsnKind::Call | InsnKind::CallDynamic => {
                    let ret = Location::new(at.section, at.offset + next - 1);
                    self.check(site, choice, CheckKind::ReturnAddress, Some(off), ret, state, text);
                    work.push((next, state));
                }
                InsnKind::Return | InsnKind::ContextSwitch | InsnKind::Bug | InsnKind::Trap => {}
                InsnKind::JumpDynamic | InsnKind::JumpDynamicConditional => self.counts.exits_indirect += 1,
                InsnKind::JumpUnconditional | InsnKind::JumpConditional => {
                    if insn.kind == InsnKind::JumpConditional {
                        work.push((next, state));
                    }
                    match self.target(site, choice, &insn, off) {
                        Target::Inside(t) => work.push((t, state)),
                        Target::Outside(loc) if self.linked.is_some() && self.tail_call(site.at, loc) => {
                            // A linked file resolves what a relocatable one leaves to the
                            // linker: a jump to another function's first byte (a tail call,
                            // the return thunk) goes out of this code, as it does in a module.
                            self.counts.exits_away += 1;
                        }
                        Target::Outside(loc) => {
                            if !self.lookup.covers(loc.section) {
                                self.counts.exits_uncovered += 1;
                                self.uncovered_exits.push((
                                    self.names.both(site.at),
                                    choice.name.clone(),
                                    self.names.in_section(loc),
                                ));
                            } else if exits.insert((loc, state)) {
                                self.check(site, choice, CheckKind::Exit, None, loc, state, None);
                            }
                        }
                        Target::Away => self.counts.exits_away += 1,
                    }
                }
                _ => match step(state, &insn) {
                    Ok(s) => work.push((next, s)),
                    Err(Unmodelled::StackPointerWrite)
                        if next == len
                            && loads_rsp_from_register(&code[off as usize..next as usize])
                            && self
                                .lookup
                                .find(Location::new(at.section, at.offset + len))
                                .is_some_and(|r| r.offset == at.offset + len) =>
                    {
                        self.counts.exits_stack_switch += 1;
                    }
                    Err(why) => {
                        if !stopped {
                            stopped = true;
                            self.unmodelled(site, choice, why, Some(off), text);
                        }
                    }
                },
            }
        }
    }

    /// Resolves a direct branch at offset `off` of the patched code.
    fn target(&mut self, site: &Site, choice: &Choice, insn: &Instruction, off: u64) -> Target {
        let Some(branch) = insn.branch else { return Target::Away };
        let len = choice.bytes.len() as i128;
        let field_at = off + u64::from(branch.field.offset);
        let origin = choice.origins.get(field_at as usize).copied().unwrap_or(Origin::Site(site.at.offset + field_at));
        // The literal displacement, relative to the patched code.
        let literal = i128::from(branch.target as i64);
        let linked = self.linked.clone();
        // A place `t` bytes from `base`: by address in a linked file (it may be in another
        // section), else in `base`'s section.
        let from = |base: Location, t: i128| -> Target {
            match linked.as_deref() {
                Some(map) => {
                    let address = i128::from(map.address(base)) + t;
                    match u64::try_from(address).ok().and_then(|a| map.locate(a)) {
                        Some(loc) => Target::Outside(loc),
                        None => Target::Away,
                    }
                }
                None => match u64::try_from(i128::from(base.offset) + t) {
                    Ok(o) => Target::Outside(Location::new(base.section, o)),
                    Err(_) => Target::Away,
                },
            }
        };
        let inside_or_site = |t: i128| -> Target {
            if (0..=len).contains(&t) {
                Target::Inside(t as u64)
            } else {
                from(site.at, t)
            }
        };
        // From the end of the displacement field to the end of the instruction.
        let tail = i128::from(insn.len) - i128::from(branch.field.offset);
        match origin {
            Origin::Branch(loc) => self.place(site, len, loc),
            Origin::Elsewhere => Target::Away,
            Origin::Synthetic => inside_or_site(literal),
            Origin::Site(o) => match self.relocation_at(site.at.section, o) {
                Some(r) => self.by_relocation(site, len, r, tail),
                None => inside_or_site(literal),
            },
            Origin::Replacement(loc) => match self.relocation_at(loc.section, loc.offset) {
                Some(r) => self.by_relocation(site, len, r, tail),
                None => {
                    let Some((start, repl_len)) = choice.replacement else { return inside_or_site(literal) };
                    if (0..=repl_len as i128).contains(&literal) {
                        Target::Inside(literal as u64)
                    } else {
                        // Out of the replacement: the kernel keeps the absolute target (in a
                        // relocatable file, somewhere else in the replacement section; in a
                        // linked one, wherever the address is).
                        match from(start, literal) {
                            Target::Outside(loc) => self.place(site, len, loc),
                            other => other,
                        }
                    }
                }
            },
        }
    }

    /// `to` is the first byte of a code symbol other than the one holding `from`.
    fn tail_call(&self, from: Location, to: Location) -> bool {
        let target = self.names.code_start(to);
        target == Some(to.offset) && (from.section != to.section || self.names.code_start(from) != target)
    }

    fn by_relocation(&mut self, site: &Site, len: i128, r: Relocation, tail: i128) -> Target {
        if r.kind != R_X86_64_PC32 && r.kind != R_X86_64_PLT32 {
            return Target::Away;
        }
        let Ok(sym) = self.file.symbol(r.symbol) else { return Target::Away };
        let Some(section) = sym.section else { return Target::Away };
        match u64::try_from(i128::from(sym.value) + i128::from(r.addend) + tail) {
            Ok(o) => self.place(site, len, Location::new(section, o)),
            Err(_) => Target::Away,
        }
    }

    fn place(&self, site: &Site, len: i128, loc: Location) -> Target {
        if loc.section == site.at.section
            && loc.offset >= site.at.offset
            && i128::from(loc.offset - site.at.offset) <= len
        {
            Target::Inside(loc.offset - site.at.offset)
        } else {
            Target::Outside(loc)
        }
    }
}
