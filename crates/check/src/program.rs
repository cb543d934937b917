//! The program model the analysis works on: sections, symbols and decoded instructions of one
//! relocatable object, with the lookups objtool's algorithms need (instruction at an offset,
//! symbol containing an offset, relocation inside an instruction).
//!
//! Built once from an [`ElfFile`]; after that nothing reads ELF bytes. Instructions live in
//! one vector, section after section in section order, so "the next instruction in the
//! section" is the next index.

use std::sync::atomic::AtomicBool;
use std::ops::Range;

use orc_decode::{InsnKind, SectionDecoder, StackOps};
use orc_elf::{ElfFile, Relocation, SymbolKind};

use crate::report::Fatal;

/// Index of an instruction in [`Program::insns`].
pub type InsnId = u32;
/// Index of a symbol in [`Program::symbols`] (the same as its `.symtab` index).
pub type SymId = u32;

const SHF_EXECINSTR: u64 = 0x4;
/// The block size of [`Section`]'s instruction index.
const INSN_BLOCK: usize = 16;
const STB_GLOBAL: u8 = 1;
const STB_LOCAL: u8 = 0;
const STB_WEAK: u8 = 2;

/// One section.
pub struct Section<'d> {
    /// Section header index.
    pub index: usize,
    /// Name.
    pub name: &'d str,
    /// `sh_size`.
    pub size: u64,
    /// Contents.
    pub data: &'d [u8],
    /// `SHF_EXECINSTR`.
    pub exec: bool,
    /// Objtool's `sec->text`: executable and not `.altinstr_replacement`, `.altinstr_aux` or
    /// `.discard.*`. Only these get ORC.
    pub text: bool,
    /// `.noinstr.text`, `.entry.text`, `.cpuidle.text`, `.text..__x86.*`.
    pub noinstr: bool,
    /// May hold jump tables: `.rodata*` except string sections, and `.data.rel.ro*`.
    pub rodata: bool,
    /// This section's instructions in [`Program::insns`] (empty if not executable).
    pub insns: Range<InsnId>,
    /// Relocations applying to this section, sorted by offset (stable).
    pub relocs: Vec<Relocation>,
    /// Symbols defined in this section, sorted by offset, ties in symbol-table order.
    pub syms: Vec<SymId>,
    /// `max_end[i]`: the largest `offset + len` among `syms[..=i]` (for containment lookups).
    pub max_end: Vec<u64>,
    /// `insn_at[b]`: the first instruction at or after offset `16 * b` (one more entry than
    /// there are 16-byte blocks). An instruction is at most 15 bytes, so finding the one at
    /// an offset looks at a few records, not a binary search over millions.
    insn_at: Vec<InsnId>,
}

/// One symbol, with objtool's derived facts.
pub struct Symbol<'d> {
    /// `.symtab` index.
    pub index: SymId,
    /// Name (a section symbol is named after its section).
    pub name: &'d str,
    /// Type.
    pub kind: SymbolKind,
    /// Binding (`STB_*`).
    pub bind: u8,
    /// Defining section.
    pub sec: Option<usize>,
    /// `st_value`.
    pub offset: u64,
    /// `st_size`, minus a `.cold` child placed at its end.
    pub len: u64,
    /// The symbol that stands for all symbols of the same place, type and size (the last one
    /// in the symbol table, as objtool picks it).
    pub alias: SymId,
    /// For a `foo.cold` part: `foo`. Otherwise itself.
    pub pfunc: SymId,
    /// For `foo` with a `foo.cold` part: that part. Otherwise itself.
    pub cfunc: SymId,
    /// `__SCT__*`: a static-call trampoline.
    pub static_call_tramp: bool,
    /// `__x86_indirect_*`: a retpoline thunk.
    pub retpoline_thunk: bool,
    /// `__x86_return_thunk`.
    pub return_thunk: bool,
    /// `retbleed_return_thunk`, `srso_safe_ret`: a RET hidden inside another instruction.
    pub embedded_insn: bool,
    /// `__fentry__`.
    pub fentry: bool,
    /// `.L*` local label (STT_NOTYPE).
    pub local_label: bool,
    /// A warning was already printed for an instruction of this symbol.
    pub warned: AtomicBool,
}

impl Symbol<'_> {
    /// `STT_FUNC`.
    pub fn is_func(&self) -> bool {
        self.kind == SymbolKind::Func
    }
}

/// A branch into an alternative stream: taken in addition to falling through.
#[derive(Clone, Copy, Debug)]
pub struct Alt {
    /// First instruction of the alternative path (a fake NOP for an empty replacement).
    pub insn: InsnId,
    /// After following the alternatives, do not continue with the original.
    pub skip_orig: bool,
}

/// An optional index in four bytes (`u32::MAX` stands for none). The instruction record has
/// several, and `vmlinux.o` has millions of records: `Option<u32>` would take eight each.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptIndex(u32);

impl OptIndex {
    /// No index.
    pub const NONE: OptIndex = OptIndex(u32::MAX);

    /// The index, if any.
    #[inline]
    pub fn get(self) -> Option<u32> {
        (self.0 != u32::MAX).then_some(self.0)
    }

    /// True when there is an index.
    #[inline]
    pub fn is_some(self) -> bool {
        self.0 != u32::MAX
    }

    /// True when there is none.
    #[inline]
    pub fn is_none(self) -> bool {
        self.0 == u32::MAX
    }
}

impl From<Option<u32>> for OptIndex {
    /// `Some(u32::MAX)` cannot be stored; no object has that many instructions or symbols
    /// (the program model refuses one that would).
    #[inline]
    fn from(v: Option<u32>) -> OptIndex {
        OptIndex(v.unwrap_or(u32::MAX))
    }
}

impl std::fmt::Debug for OptIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// One decoded instruction plus everything the graph stage learns about it.
///
/// There is one per instruction (millions in `vmlinux.o`), so it is kept small: optional
/// links are [`OptIndex`]es, and what few instructions have (stack operations, alternative
/// paths, jump tables) lives in side tables of [`Program`], reached by index.
#[derive(Clone, Debug)]
pub struct Insn {
    /// Offset in the section.
    pub offset: u64,
    /// Section index.
    pub sec: u32,
    /// objtool's `insn->immediate` for direct jumps and calls (their displacement); 0 for
    /// every other instruction, whose immediate nothing reads.
    pub immediate: i32,
    /// The function or label symbol covering the instruction.
    pub sym: OptIndex,
    /// Where a direct jump goes, inside this object.
    pub jump_dest: OptIndex,
    /// The symbol a call (or sibling call) goes to.
    pub call_dest: OptIndex,
    /// The first relocation inside the instruction's bytes: an index in its section's
    /// `relocs` (objtool's `insn_reloc`, asked of most instructions by several passes).
    reloc: OptIndex,
    /// Stack operations (removed for ordinary calls): an index in [`Program::stack_ops`].
    ops: OptIndex,
    /// What few instructions have (an alternative group, alternative paths, a switch
    /// table): an index in [`Program::extras`].
    extra: OptIndex,
    /// Length in bytes.
    pub len: u8,
    /// Control-flow kind (changed by the graph stage for retpolines, return thunks and
    /// intra-function calls).
    pub kind: InsnKind,
    /// `instrumentation_begin()` (+1) and `instrumentation_end()` (-1) annotations here.
    pub instr: i8,
    /// Yes/no facts (bits of [`Insn`]'s accessors: `dead_end`, `ignore`, ...), packed: there
    /// are ten, and a record per instruction.
    flags: u16,
}

/// Declares the flag bits of [`Insn`] with a reader and a setter each.
macro_rules! insn_flags {
    ($($bit:literal $name:ident $set:ident: $doc:literal;)*) => {
        impl Insn {
            $(
                #[doc = $doc]
                #[inline]
                pub fn $name(&self) -> bool {
                    self.flags & (1 << $bit) != 0
                }

                #[doc = concat!("Sets [`Insn::", stringify!($name), "`].")]
                #[inline]
                pub fn $set(&mut self, on: bool) {
                    if on {
                        self.flags |= 1 << $bit;
                    } else {
                        self.flags &= !(1 << $bit);
                    }
                }
            )*
        }
    };
}

insn_flags! {
    0 dead_end set_dead_end: "Execution does not continue after this instruction.";
    1 ignore set_ignore: "Not validated (`STACK_FRAME_NON_STANDARD`): no CFI, hence an undefined ORC entry.";
    2 ignore_alts set_ignore_alts: "Do not follow this instruction's alternatives.";
    3 hint set_hint: "Carries an unwind hint: its CFI is given, not computed.";
    4 save set_save: "`UNWIND_HINT_SAVE` is here.";
    5 restore set_restore: "`UNWIND_HINT_RESTORE` is here.";
    6 retpoline_safe set_retpoline_safe: "A retpoline or return-thunk site, or annotated safe.";
    7 noendbr set_noendbr: "Annotated as needing no ENDBR.";
    8 fake set_fake: "A NOP objtool invents to pad a short replacement; not in any section's range.";
    9 unret set_unret: "An entry point of the `--unret` walk.";
}

impl Insn {
    /// A decoded instruction that nothing is known about yet; its stack operations are
    /// [`Program::stack_ops`]`[ops]` (`None`: it has none).
    fn with_ops(sec: u32, offset: u64, len: u8, kind: InsnKind, ops: Option<u32>, immediate: i64) -> Insn {
        let branch = kind.is_static_jump() || kind == InsnKind::Call;
        Insn {
            offset,
            sec,
            // A direct branch's displacement is rel8 or rel32.
            immediate: if branch { immediate as i32 } else { 0 },
            sym: OptIndex::NONE,
            jump_dest: OptIndex::NONE,
            call_dest: OptIndex::NONE,
            reloc: OptIndex::NONE,
            ops: ops.into(),
            extra: OptIndex::NONE,
            len,
            kind,
            instr: 0,
            // ud2 is a dead end unless annotated reachable (GCC 7 emits it for divisions by
            // zero).
            flags: if kind == InsnKind::Bug { 1 } else { 0 },
        }
    }

    /// A NOP objtool invents (no stack operations, no branch).
    pub fn fake_nop(sec: u32, offset: u64, len: u8) -> Insn {
        let mut insn = Insn::with_ops(sec, offset, len, InsnKind::Nop, None, 0);
        insn.set_fake(true);
        insn
    }

    /// Offset just past the instruction.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// What few instructions have, kept beside their records.
#[derive(Clone, Debug)]
struct Extra {
    /// The alternative group the instruction belongs to.
    alt_group: OptIndex,
    /// Alternative paths starting here, most recently added first.
    alts: Vec<Alt>,
    /// For a dynamic jump through a switch table: (section index, index of the table's first
    /// relocation in that section's `relocs`).
    jump_table: Option<(u32, u32)>,
}

impl Default for Extra {
    fn default() -> Extra {
        Extra { alt_group: OptIndex::NONE, alts: Vec::new(), jump_table: None }
    }
}

/// The whole object, ready for the graph stage.
pub struct Program<'d> {
    /// Sections by header index (index 0 is the null section).
    pub sections: Vec<Section<'d>>,
    /// Symbols by `.symtab` index (index 0 is the null symbol).
    pub symbols: Vec<Symbol<'d>>,
    /// Instructions, section by section, then fake NOPs.
    pub insns: Vec<Insn>,
    /// The stack operations of the instructions that have any (most have none).
    stack_ops: Vec<StackOps>,
    /// What few instructions have, by [`Insn`]'s `extra` index.
    extras: Vec<Extra>,
    /// The first symbol of each name (a `vmlinux.o` has hundreds of thousands: looking names
    /// up by scanning was most of `check`'s time there).
    by_name: rustc_hash::FxHashMap<&'d str, SymId>,
    /// Warnings name a place by the alias of the symbol containing it (objtool 7.x: the last
    /// symbol of the same address, type and size, e.g. `init_module` for a module's init
    /// function), not by the symbol itself (6.12).
    pub names_by_alias: bool,
}

impl<'d> Program<'d> {
    /// Reads sections and symbols, and decodes every executable section.
    /// Reads `file` as objtool of `era` does.
    pub fn build(file: &ElfFile<'d>, era: orc_flow::KernelEra) -> Result<Program<'d>, Fatal> {
        Program::build_with_threads(file, era, 1)
    }

    /// [`Program::build`], decoding each large executable section with up to `threads`
    /// threads (the result is the same as with one).
    pub fn build_with_threads(file: &ElfFile<'d>, era: orc_flow::KernelEra, threads: usize) -> Result<Program<'d>, Fatal> {
        Program::build_in_chunks(file, era, threads, MIN_CHUNK)
    }

    /// [`Program::build_with_threads`], with sections split in chunks of at least
    /// `min_chunk` bytes.
    fn build_in_chunks(file: &ElfFile<'d>, era: orc_flow::KernelEra, threads: usize, min_chunk: u64) -> Result<Program<'d>, Fatal> {
        let mut sections = Vec::with_capacity(file.section_count());
        sections.push(Section {
            index: 0,
            name: "",
            size: 0,
            data: &[],
            exec: false,
            text: false,
            noinstr: false,
            rodata: false,
            insns: 0..0,
            relocs: Vec::new(),
            syms: Vec::new(),
            max_end: Vec::new(),
            insn_at: Vec::new(),
        });
        for s in file.sections() {
            let s = s.map_err(|e| Fatal::new(e.to_string()))?;
            let exec = s.flags & SHF_EXECINSTR != 0;
            let name = s.name;
            let mut relocs = match file.relocation_section_for(s.index) {
                Some(r) => file.relocations(r).map_err(|e| Fatal::new(e.to_string()))?,
                None => Vec::new(),
            };
            // Usually in order already; a stable sort would still allocate half their size.
            if !relocs.is_sorted_by_key(|r| r.offset) {
                relocs.sort_by_key(|r| r.offset);
            }
            sections.push(Section {
                index: s.index,
                name,
                size: s.size,
                data: s.data,
                exec,
                text: exec && name != ".altinstr_replacement" && name != ".altinstr_aux" && !name.starts_with(".discard."),
                noinstr: matches!(name, ".noinstr.text" | ".entry.text" | ".cpuidle.text") || name.starts_with(".text..__x86."),
                rodata: (name.starts_with(".rodata") && !name.contains(".str1.")) || name.starts_with(".data.rel.ro"),
                insns: 0..0,
                relocs,
                syms: Vec::new(),
                max_end: Vec::new(),
            insn_at: Vec::new(),
            });
        }

        let mut symbols = Vec::with_capacity(file.symbol_count());
        symbols.push(null_symbol());
        for (i, sym) in file.symbols().enumerate() {
            let sym = sym.map_err(|e| Fatal::new(e.to_string()))?;
            let index = (i + 1) as SymId;
            let global = sym.binding == STB_GLOBAL;
            let name = sym.name;
            symbols.push(Symbol {
                index,
                name,
                kind: sym.kind,
                bind: sym.binding,
                sec: sym.section.filter(|&s| s < sections.len()),
                offset: sym.value,
                len: sym.size,
                alias: index,
                pfunc: index,
                cfunc: index,
                static_call_tramp: global && name.starts_with("__SCT__"),
                retpoline_thunk: global && name.starts_with("__x86_indirect_"),
                return_thunk: global && name == "__x86_return_thunk",
                embedded_insn: global && (name == "retbleed_return_thunk" || name == "srso_safe_ret"),
                fentry: global && name == "__fentry__",
                local_label: sym.kind == SymbolKind::NoType && name.starts_with(".L"),
                warned: AtomicBool::new(false),
            });
        }
        for sym in symbols.iter().skip(1) {
            if let Some(sec) = sym.sec {
                sections[sec].syms.push(sym.index);
            }
        }
        for sec in &mut sections {
            sec.syms.sort_by_key(|&s| (symbols[s as usize].offset, s));
            let mut max = 0u64;
            sec.max_end = sec
                .syms
                .iter()
                .map(|&s| {
                    let sym = &symbols[s as usize];
                    if sym.len != 0 {
                        max = max.max(sym.offset.saturating_add(sym.len));
                    }
                    max
                })
                .collect();
        }
        // objtool refuses relocations to symbols that do not exist; so do we, once, here,
        // so that every later lookup of a relocation's symbol is in range.
        for sec in &sections {
            if let Some(r) = sec.relocs.iter().find(|r| r.symbol >= symbols.len()) {
                return Err(Fatal::new(format!("can't find reloc entry symbol {} (relocations of {})", r.symbol, sec.name)));
            }
        }
        let mut by_name = rustc_hash::FxHashMap::with_capacity_and_hasher(symbols.len(), Default::default());
        for s in symbols.iter().skip(1) {
            by_name.entry(s.name).or_insert(s.index);
        }
        link_aliases(&sections, &mut symbols);
        if era.cold_parents_by_file_scope() {
            link_cold_parts_by_file_scope(&sections, &mut symbols)?;
        } else {
            link_cold_parts(&mut symbols, &by_name)?;
        }
        let names_by_alias = era.warnings_name_aliases();
        let mut program = Program {
            sections,
            symbols,
            insns: Vec::new(),
            stack_ops: Vec::new(),
            extras: Vec::new(),
            by_name,
            names_by_alias,
        };
        program.decode(threads, min_chunk)?;
        Ok(program)
    }

    fn decode(&mut self, threads: usize, min_chunk: u64) -> Result<(), Fatal> {
        for si in 0..self.sections.len() {
            if !self.sections[si].exec {
                continue;
            }
            let start = self.insns.len() as InsnId;
            let data = self.sections[si].data;
            let bounds = self.chunk_bounds(si, threads, min_chunk);
            // Decode straight into the records (no intermediate list: on a large module that
            // list alone was as big as the records), except for the chunks other threads
            // decode, which come back as small `Decoded` values.
            let Program { sections, symbols, insns, stack_ops, .. } = self;
            let (sections, symbols) = (&*sections, &*symbols);
            insns.reserve(data.len() / 4);
            let in_function = |off: u64| containing(sections, symbols, si, off, |s| s.is_func()).is_some();
            let (first, others) = std::thread::scope(|scope| {
                let workers: Vec<_> = bounds
                    .windows(2)
                    .skip(1)
                    .map(|w| {
                        let (from, to) = (w[0], w[1]);
                        let in_function = &in_function;
                        scope.spawn(move || decode_chunk(data, from, to, in_function))
                    })
                    .collect();
                let first = decode_into(sections, si, 0, bounds[1], &in_function, insns, stack_ops);
                let others: Vec<_> = workers.into_iter().map(|w| w.join().ok()).collect();
                (first, others)
            });
            // A chunk counts only if the one before ended exactly where it starts (the linear
            // sweep from the section's start reaches the same boundary); otherwise decode the
            // rest here, as one thread would have.
            let mut at = first?;
            for (k, chunk) in others.into_iter().enumerate() {
                if at != bounds[k + 1] {
                    break;
                }
                match chunk {
                    Some(Ok(chunk)) => at = chunk.append_to(sections, si, insns, stack_ops),
                    Some(Err(offset)) => return Err(Fatal::new(format!("{}+0x{:x}: can't decode instruction", sections[si].name, offset))),
                    None => break,
                }
            }
            if (at as usize) < data.len() {
                decode_into(sections, si, at, data.len() as u64, &in_function, insns, stack_ops)?;
            }
            if self.insns.len() >= u32::MAX as usize {
                return Err(Fatal::new("more than 2^32 instructions".to_string()));
            }
            let end = self.insns.len() as InsnId;
            self.sections[si].insns = start..end;
            let blocks = data.len() / INSN_BLOCK + 1;
            let mut insn_at = Vec::with_capacity(blocks + 1);
            let mut id = start;
            for b in 0..=blocks {
                while id < end && self.insns[id as usize].offset < (b * INSN_BLOCK) as u64 {
                    id += 1;
                }
                insn_at.push(id);
            }
            self.sections[si].insn_at = insn_at;
            self.assign_symbols(si)?;
        }
        Ok(())
    }

    /// Where the decoding of a section is split between threads: `0`, then the starts of
    /// functions near equal fractions of it, then its size. One chunk for small sections (a
    /// thread costs more than it saves) or one thread.
    fn chunk_bounds(&self, si: usize, threads: usize, min_chunk: u64) -> Vec<u64> {
        let sec = &self.sections[si];
        let size = sec.data.len() as u64;
        let mut bounds = vec![0];
        // (Chunks give offsets as 32-bit deltas.)
        let chunks = if size > u64::from(u32::MAX) { 1 } else { (threads as u64).min(size / min_chunk.max(1)).max(1) };
        for k in 1..chunks {
            let target = size * k / chunks;
            let first = sec.syms.partition_point(|&s| self.symbols[s as usize].offset < target);
            let start = sec.syms[first..]
                .iter()
                .map(|&s| &self.symbols[s as usize])
                .find(|s| s.is_func())
                .map(|s| s.offset)
                .filter(|&o| o < size && o > *bounds.last().unwrap_or(&0));
            if let Some(o) = start {
                bounds.push(o);
            }
        }
        bounds.push(size);
        bounds
    }

    /// objtool's rule: every FUNC/NOTYPE symbol (its canonical alias) claims the instructions
    /// it covers, later symbols over earlier ones.
    fn assign_symbols(&mut self, si: usize) -> Result<(), Fatal> {
        let size = self.sections[si].size;
        for k in 0..self.sections[si].syms.len() {
            let s = self.sections[si].syms[k];
            let sym = &self.symbols[s as usize];
            if !matches!(sym.kind, SymbolKind::Func | SymbolKind::NoType) {
                continue;
            }
            if sym.offset == size {
                if sym.kind == SymbolKind::NoType {
                    continue;
                }
                return Err(Fatal::new(format!("{}(): STT_FUNC at end of section", sym.name)));
            }
            if sym.embedded_insn || sym.alias != s {
                continue;
            }
            let Some(first) = self.find_insn(si, sym.offset) else {
                return Err(Fatal::new(format!("{}(): can't find starting instruction", sym.name)));
            };
            let end = sym.offset.saturating_add(sym.len);
            let last = self.sections[si].insns.end;
            let mut i = first;
            while i < last && self.insns[i as usize].offset < end {
                self.insns[i as usize].sym = Some(s).into();
                i += 1;
            }
        }
        Ok(())
    }

    /// The instruction starting exactly at `offset` of section `sec`.
    pub fn find_insn(&self, sec: usize, offset: u64) -> Option<InsnId> {
        let s = self.sections.get(sec)?;
        let block = usize::try_from(offset / INSN_BLOCK as u64).ok()?;
        let mut id = *s.insn_at.get(block)?;
        while id < s.insns.end {
            let at = self.insns[id as usize].offset;
            if at >= offset {
                return (at == offset).then_some(id);
            }
            id += 1;
        }
        None
    }

    /// Every relocation inside the instruction's bytes, in offset order.
    pub fn insn_relocs(&self, id: InsnId) -> &[Relocation] {
        let insn = &self.insns[id as usize];
        let Some(k) = insn.reloc.get() else { return &[] };
        let relocs = &self.sections[insn.sec as usize].relocs[k as usize..];
        let n = relocs.iter().take_while(|r| r.offset < insn.end()).count();
        &relocs[..n]
    }

    /// The instruction's stack operations.
    #[inline]
    pub fn ops(&self, id: InsnId) -> StackOps {
        match self.insns[id as usize].ops.get() {
            Some(k) => self.stack_ops[k as usize],
            None => StackOps::NONE,
        }
    }

    /// Removes an instruction's stack operations (a call's: the callee's return undoes its
    /// push).
    pub fn remove_ops(&mut self, id: InsnId) {
        self.insns[id as usize].ops = OptIndex::NONE;
    }

    fn extra(&self, id: InsnId) -> Option<&Extra> {
        self.insns[id as usize].extra.get().map(|k| &self.extras[k as usize])
    }

    fn extra_mut(&mut self, id: InsnId) -> &mut Extra {
        let k = match self.insns[id as usize].extra.get() {
            Some(k) => k as usize,
            None => {
                self.extras.push(Extra::default());
                self.insns[id as usize].extra = Some((self.extras.len() - 1) as u32).into();
                self.extras.len() - 1
            }
        };
        &mut self.extras[k]
    }

    /// The alternative group the instruction belongs to.
    #[inline]
    pub fn alt_group(&self, id: InsnId) -> Option<u32> {
        self.extra(id).and_then(|e| e.alt_group.get())
    }

    /// Puts the instruction in an alternative group.
    pub fn set_alt_group(&mut self, id: InsnId, group: u32) {
        self.extra_mut(id).alt_group = Some(group).into();
    }

    /// The alternative paths starting at the instruction, most recently added first (as
    /// objtool keeps them).
    #[inline]
    pub fn alts(&self, id: InsnId) -> &[Alt] {
        self.extra(id).map_or(&[], |e| &e.alts)
    }

    /// Adds an alternative path in front of the instruction's others (objtool prepends).
    pub fn push_alt_front(&mut self, id: InsnId, alt: Alt) {
        self.extra_mut(id).alts.insert(0, alt);
    }

    /// The switch table of a dynamic jump: (section index, index of its first relocation).
    pub fn jump_table(&self, id: InsnId) -> Option<(u32, u32)> {
        self.extra(id).and_then(|e| e.jump_table)
    }

    /// Records the switch table of a dynamic jump.
    pub fn set_jump_table(&mut self, id: InsnId, table: (u32, u32)) {
        self.extra_mut(id).jump_table = Some(table);
    }

    /// The next instruction of the same section.
    pub fn next_in_sec(&self, id: InsnId) -> Option<InsnId> {
        let insn = &self.insns[id as usize];
        if insn.fake() {
            return None;
        }
        let next = id + 1;
        (next < self.sections[insn.sec as usize].insns.end).then_some(next)
    }

    /// The previous instruction of the same section.
    pub fn prev_in_sec(&self, id: InsnId) -> Option<InsnId> {
        let insn = &self.insns[id as usize];
        if insn.fake() || id == 0 {
            return None;
        }
        (id > self.sections[insn.sec as usize].insns.start).then(|| id - 1)
    }

    /// The STT_FUNC symbol covering the instruction (objtool's `insn_func`).
    pub fn insn_func(&self, id: InsnId) -> Option<SymId> {
        self.insns[id as usize].sym.get().filter(|&s| self.symbols[s as usize].is_func())
    }

    /// The symbol's parent function (itself unless it is a `.cold` part).
    pub fn pfunc(&self, s: SymId) -> SymId {
        self.symbols[s as usize].pfunc
    }

    fn containing(&self, sec: usize, offset: u64, pred: impl Fn(&Symbol<'_>) -> bool) -> Option<SymId> {
        containing(&self.sections, &self.symbols, sec, offset, pred)
    }

    /// objtool's `find_func_containing`.
    pub fn find_func_containing(&self, sec: usize, offset: u64) -> Option<SymId> {
        self.containing(sec, offset, |s| s.is_func())
    }

    /// objtool's `find_symbol_containing` (any type but section).
    pub fn find_symbol_containing(&self, sec: usize, offset: u64) -> Option<SymId> {
        self.containing(sec, offset, |_| true)
    }

    fn at_offset(&self, sec: usize, offset: u64, pred: impl Fn(&Symbol<'_>) -> bool) -> Option<SymId> {
        self.containing(sec, offset, |s| s.offset == offset && pred(s))
    }

    /// objtool's `find_symbol_by_offset`: a non-section symbol starting at `offset`.
    pub fn find_symbol_by_offset(&self, sec: usize, offset: u64) -> Option<SymId> {
        self.at_offset(sec, offset, |_| true)
    }

    /// objtool's `find_func_by_offset`: an STT_FUNC starting at `offset`.
    pub fn find_func_by_offset(&self, sec: usize, offset: u64) -> Option<SymId> {
        self.at_offset(sec, offset, |s| s.is_func())
    }

    /// The first symbol called `name`.
    pub fn find_symbol_by_name(&self, name: &str) -> Option<SymId> {
        self.by_name.get(name).copied()
    }

    /// The first relocation of section `sec` inside `[offset, offset + len)`.
    pub fn reloc_in(&self, sec: usize, offset: u64, len: u64) -> Option<&Relocation> {
        let relocs = &self.sections.get(sec)?.relocs;
        let k = relocs.partition_point(|r| r.offset < offset);
        relocs.get(k).filter(|r| r.offset < offset.saturating_add(len))
    }

    /// Index (in its section's `relocs`) of the relocation at exactly `offset`.
    pub fn reloc_index_at(&self, sec: usize, offset: u64) -> Option<usize> {
        let relocs = &self.sections.get(sec)?.relocs;
        let k = relocs.partition_point(|r| r.offset < offset);
        relocs.get(k).filter(|r| r.offset == offset).map(|_| k)
    }

    /// The relocation inside an instruction's bytes (objtool's `insn_reloc`).
    pub fn insn_reloc(&self, id: InsnId) -> Option<&Relocation> {
        let insn = &self.insns[id as usize];
        let k = insn.reloc.get()?;
        self.sections[insn.sec as usize].relocs.get(k as usize)
    }

    /// objtool's `offstr`: `func+0xoff` (the containing function, else any containing
    /// symbol), or `section+0xoff`.
    pub fn offstr(&self, sec: usize, offset: u64) -> String {
        let Some(s) = self.sections.get(sec) else { return format!("[section {sec}]+0x{offset:x}") };
        let sym = if s.exec { self.find_func_containing(sec, offset) } else { None }
            .or_else(|| self.find_symbol_containing(sec, offset));
        let sym = sym.map(|s| if self.names_by_alias { self.symbols[s as usize].alias } else { s });
        match sym {
            Some(sym) => {
                let sym = &self.symbols[sym as usize];
                format!("{}+0x{:x}", sym.name, offset.wrapping_sub(sym.offset))
            }
            None => format!("{}+0x{:x}", s.name, offset),
        }
    }

    /// objtool's `find_symbol_hole_containing`: `None` if `offset` is covered by a symbol or
    /// precedes every symbol; `Some(None)` for a hole running to the end of the section;
    /// `Some(Some(n))` for a hole of `n` bytes up to the next symbol.
    pub fn symbol_hole_containing(&self, sec: usize, offset: u64) -> Option<Option<u64>> {
        let section = self.sections.get(sec)?;
        let syms = &section.syms;
        // Only symbols with a size take part, as in objtool's tree. `syms` is sorted by offset:
        // binary searches, not a scan per instruction (vmlinux.o asks for every unreached one).
        let sym = |s: &SymId| &self.symbols[*s as usize];
        let sized = |s: &&SymId| sym(s).len != 0;
        let upto = syms.partition_point(|s| sym(s).offset <= offset);
        let first = section.max_end.partition_point(|&end| end <= offset);
        if syms[first.min(upto)..upto].iter().filter(sized).any(|s| offset - sym(s).offset < sym(s).len) {
            return None;
        }
        syms[..upto].iter().rfind(sized)?;
        match syms[upto..].iter().find(sized) {
            None => Some(None),
            Some(next) => Some(Some(sym(next).offset - offset)),
        }
    }

    /// Weak symbols are never noreturn; helper for the noreturn rules.
    pub fn is_weak(&self, s: SymId) -> bool {
        self.symbols[s as usize].bind == STB_WEAK
    }

    /// Global binding.
    pub fn is_global(&self, s: SymId) -> bool {
        self.symbols[s as usize].bind == STB_GLOBAL
    }
}

fn null_symbol<'d>() -> Symbol<'d> {
    Symbol {
        index: 0,
        name: "",
        kind: SymbolKind::NoType,
        bind: 0,
        sec: None,
        offset: 0,
        len: 0,
        alias: 0,
        pfunc: 0,
        cfunc: 0,
        static_call_tramp: false,
        retpoline_thunk: false,
        return_thunk: false,
        embedded_insn: false,
        fentry: false,
        local_label: false,
        warned: AtomicBool::new(false),
    }
}

/// Symbols of the same section, offset, type and size are one: objtool makes the last one in
/// the symbol table the representative. Zero-sized symbols are not in its interval tree, so
/// they stand for themselves only.
fn link_aliases(sections: &[Section<'_>], symbols: &mut [Symbol<'_>]) {
    for sec in sections {
        let syms = &sec.syms;
        let mut i = 0;
        while i < syms.len() {
            let mut j = i + 1;
            while j < syms.len() && symbols[syms[j] as usize].offset == symbols[syms[i] as usize].offset {
                j += 1;
            }
            // syms[i..j] share an offset; within it, group by (kind, len).
            for a in i..j {
                let sa = syms[a] as usize;
                if symbols[sa].len == 0 {
                    continue;
                }
                let mut rep = syms[a];
                for &b in &syms[a + 1..j] {
                    let sb = b as usize;
                    if symbols[sb].len != 0 && symbols[sb].kind == symbols[sa].kind && symbols[sb].len == symbols[sa].len {
                        rep = rep.max(b);
                    }
                }
                symbols[sa].alias = rep;
            }
            i = j;
        }
    }
}

/// `foo.cold` parts: link them to `foo`, and shrink `foo` when the part sits at its end
/// (`-fno-reorder-functions` puts it inside).
fn link_cold_parts(symbols: &mut [Symbol<'_>], by_name: &rustc_hash::FxHashMap<&str, SymId>) -> Result<(), Fatal> {
    for i in 1..symbols.len() {
        if !symbols[i].is_func() || symbols[i].sec.is_none() {
            continue;
        }
        let Some(at) = symbols[i].name.find(".cold") else { continue };
        let parent_name = &symbols[i].name[..at];
        // The first symbol of that name (a scan per part was quadratic in vmlinux.o).
        let Some(p) = by_name.get(parent_name).map(|&p| p as usize) else {
            return Err(Fatal::new(format!("{}(): can't find parent function", symbols[i].name)));
        };
        symbols[i].pfunc = p as SymId;
        symbols[p].cfunc = i as SymId;
        let (c_sec, c_off, c_len) = (symbols[i].sec, symbols[i].offset, symbols[i].len);
        let parent = &mut symbols[p];
        if c_sec == parent.sec && c_off >= parent.offset && c_off.checked_add(c_len) == parent.offset.checked_add(parent.len) {
            parent.len -= c_len;
        }
    }
    Ok(())
}

/// `foo.cold` parts as objtool 7.x links them: in section order and by address, each to the
/// last local `foo` (in symbol-table order) of the same `STT_FILE` scope, else the last global
/// `foo`, through its alias; the parent shrinks as in [`link_cold_parts`]. No jump relinks
/// them later. With two local `foo`s of one scope (a module linked from two objects, its
/// `STT_FILE` symbols stripped) both parts go to the second `foo`, as objtool's do.
fn link_cold_parts_by_file_scope(sections: &[Section<'_>], symbols: &mut [Symbol<'_>]) -> Result<(), Fatal> {
    let mut scope = vec![0 as SymId; symbols.len()];
    let mut current = 0 as SymId;
    for (i, s) in symbols.iter().enumerate().skip(1) {
        if s.kind == SymbolKind::File {
            current = i as SymId;
        } else if s.bind == STB_LOCAL && s.kind != SymbolKind::Section {
            scope[i] = current;
        }
    }
    let mut by_name: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (j, s) in symbols.iter().enumerate().skip(1) {
        if s.kind != SymbolKind::Section {
            by_name.entry(s.name).or_default().push(j);
        }
    }
    for sec in sections {
        for &c in &sec.syms {
            let i = c as usize;
            if !symbols[i].is_func() {
                continue;
            }
            let Some(at) = symbols[i].name.find(".cold") else { continue };
            let parent_name = &symbols[i].name[..at];
            let named = by_name.get(parent_name).map(Vec::as_slice).unwrap_or(&[]);
            let local = named.iter().rev().copied().find(|&j| symbols[j].bind == STB_LOCAL && scope[j] == scope[i]);
            let parent = local.or_else(|| named.iter().rev().copied().find(|&j| symbols[j].bind != STB_LOCAL));
            let Some(p) = parent else {
                return Err(Fatal::new(format!("{}(): can't find parent function", symbols[i].name)));
            };
            let alias = symbols[p].alias;
            symbols[i].pfunc = alias;
            symbols[p].cfunc = i as SymId;
            symbols[alias as usize].cfunc = i as SymId;
            let (c_sec, c_off, c_len) = (symbols[i].sec, symbols[i].offset, symbols[i].len);
            let parent = &mut symbols[p];
            if c_sec == parent.sec && c_off >= parent.offset && c_off.checked_add(c_len) == parent.offset.checked_add(parent.len) {
                parent.len -= c_len;
            }
        }
    }
    Ok(())
}

/// objtool's interval-tree query: the first (lowest start) symbol of section `sec` whose
/// `[start, start + len)` holds `offset` and that `pred` accepts. Zero-sized symbols are not in
/// that tree at all (objtool removes them: they would confuse the ordering), nor are section
/// symbols. `Section::max_end` (the largest end among the first i+1 symbols) finds the first
/// candidate by binary search, so a lookup is logarithmic plus the few overlapping symbols.
fn containing(sections: &[Section<'_>], symbols: &[Symbol<'_>], sec: usize, offset: u64, pred: impl Fn(&Symbol<'_>) -> bool) -> Option<SymId> {
    let section = sections.get(sec)?;
    let first = section.max_end.partition_point(|&end| end <= offset);
    section.syms[first..]
        .iter()
        .copied()
        .take_while(|&s| symbols[s as usize].offset <= offset)
        .find(|&s| {
            let sym = &symbols[s as usize];
            sym.len != 0 && offset - sym.offset < sym.len && sym.kind != SymbolKind::Section && pred(sym)
        })
}

/// Sections below this many bytes per thread are decoded by one thread.
const MIN_CHUNK: u64 = 1 << 20;

/// Decodes section `si` from `from` while the offset is below `to`, appending records to
/// `insns`; returns where the last instruction ends.
fn decode_into(
    sections: &[Section<'_>],
    si: usize,
    from: u64,
    to: u64,
    in_function: &(impl Fn(u64) -> bool + Sync),
    insns: &mut Vec<Insn>,
    stack_ops: &mut Vec<StackOps>,
) -> Result<u64, Fatal> {
    let section = &sections[si];
    let mut decoder = SectionDecoder::new(section.data);
    let relocs = &section.relocs;
    let mut next_reloc = relocs.partition_point(|r| r.offset < from);
    let mut offset = from;
    while offset < to {
        let d = decoder
            .decode_at(offset, in_function)
            .map_err(|e| Fatal::new(format!("{}+0x{:x}: can't decode instruction", section.name, e.offset)))?;
        offset = d.end();
        let ops = (!d.stack_ops.is_empty()).then(|| {
            stack_ops.push(d.stack_ops);
            (stack_ops.len() - 1) as u32
        });
        let mut insn = Insn::with_ops(si as u32, d.offset, d.len, d.kind, ops, d.immediate);
        insn.reloc = first_reloc_in(relocs, &mut next_reloc, d.offset, d.end());
        insns.push(insn);
    }
    Ok(offset)
}

/// The first of `relocs` (sorted by offset) inside `[start, end)`, searched from `*next`,
/// which moves up to `start`: instructions and relocations both go up by offset, so one merge
/// finds every instruction's relocation without a search.
fn first_reloc_in(relocs: &[Relocation], next: &mut usize, start: u64, end: u64) -> OptIndex {
    while *next < relocs.len() && relocs[*next].offset < start {
        *next += 1;
    }
    let found = *next < relocs.len() && relocs[*next].offset < end;
    found.then_some(*next as u32).into()
}

/// An instruction a worker thread decoded: what the record is made of, in 16 bytes.
struct Decoded {
    /// Offset from the chunk's start.
    delta: u32,
    /// The immediate as [`Insn`] keeps it (a branch's displacement fits).
    immediate: i32,
    /// Index in the chunk's own stack operations.
    ops: OptIndex,
    len: u8,
    kind: InsnKind,
}

/// The instructions of one chunk of a section, decoded by a worker thread.
struct Chunk {
    /// Where it starts.
    from: u64,
    insns: Vec<Decoded>,
    stack_ops: Vec<StackOps>,
    /// Where the last instruction ends.
    end: u64,
}

impl Chunk {
    /// Appends the chunk's records (stack operations renumbered, relocations found);
    /// returns where it ends.
    fn append_to(self, sections: &[Section<'_>], si: usize, insns: &mut Vec<Insn>, stack_ops: &mut Vec<StackOps>) -> u64 {
        let base = stack_ops.len() as u32;
        stack_ops.extend_from_slice(&self.stack_ops);
        let relocs = &sections[si].relocs;
        let mut next_reloc = relocs.partition_point(|r| r.offset < self.from);
        for d in &self.insns {
            let offset = self.from + u64::from(d.delta);
            let mut insn = Insn::with_ops(si as u32, offset, d.len, d.kind, d.ops.get().map(|k| k + base), i64::from(d.immediate));
            insn.reloc = first_reloc_in(relocs, &mut next_reloc, offset, offset + u64::from(d.len));
            insns.push(insn);
        }
        self.end
    }
}

/// Decodes `data` from `from` while the offset is below `to` (a worker thread's share of a
/// section); an error is the offset that does not decode.
fn decode_chunk(data: &[u8], from: u64, to: u64, in_function: &(impl Fn(u64) -> bool + Sync)) -> Result<Chunk, u64> {
    let mut decoder = SectionDecoder::new(data);
    let mut chunk = Chunk { from, insns: Vec::with_capacity(((to - from) / 4) as usize), stack_ops: Vec::new(), end: from };
    while chunk.end < to {
        let d = decoder.decode_at(chunk.end, in_function).map_err(|e| e.offset)?;
        chunk.end = d.end();
        let ops = (!d.stack_ops.is_empty()).then(|| {
            chunk.stack_ops.push(d.stack_ops);
            (chunk.stack_ops.len() - 1) as u32
        });
        let delta = u32::try_from(d.offset - from).map_err(|_| d.offset)?;
        chunk.insns.push(Decoded { delta, immediate: d.immediate as i32, ops: ops.into(), len: d.len, kind: d.kind });
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `vmlinux.o` has millions of instruction records: their size is most of `check`'s
    /// memory there (they were 128 bytes each).
    #[test]
    fn instruction_record_stays_small() {
        let size = std::mem::size_of::<Insn>();
        eprintln!("Insn: {size} bytes");
        assert!(size <= 48, "Insn grew to {size} bytes");
        assert_eq!(std::mem::size_of::<OptIndex>(), 4);
        // The state before each instruction.
        assert_eq!(std::mem::size_of::<Option<orc_stack::CfiId>>(), 4);
    }

    fn functions(stray: &str) -> Vec<u8> {
        let mut src = String::from(".text\n");
        for i in 0..64 {
            src += &format!(".globl f{i}\n.type f{i},@function\nf{i}:\npush %rbp\nmov %rsp,%rbp\nsub $16,%rsp\n");
            src += &format!("call f{}\nadd $16,%rsp\npop %rbp\nret\nint3\n.size f{i}, .-f{i}\n", (i + 1) % 64);
            if i % 5 == 2 {
                src += stray;
            }
        }
        orc_testkit::assemble(&src)
    }

    fn describe(p: &Program<'_>) -> Vec<String> {
        (0..p.insns.len() as InsnId).map(|id| format!("{:?} {:?} {:?}", p.insns[id as usize], p.ops(id), p.extra(id))).collect()
    }

    /// Functions split between threads give the records one thread makes.
    #[test]
    fn threads_decode_what_one_thread_decodes() {
        let bytes = functions(".byte 0x90\n");
        let file = ElfFile::parse(&bytes).expect("assembled object");
        let one = Program::build_in_chunks(&file, orc_flow::KernelEra::V6_12, 1, 64).expect("one thread");
        assert!(one.insns.len() > 64 * 8);
        let text = one.sections.iter().position(|s| s.name == ".text").expect(".text");
        for threads in [2, 3, 8, 64] {
            let many = Program::build_in_chunks(&file, orc_flow::KernelEra::V6_12, threads, 64).expect("threads");
            assert!(many.chunk_bounds(text, threads, 64).len() > 2, "{threads} threads: the section is split");
            assert_eq!(describe(&one), describe(&many), "{threads} threads");
            for (a, b) in one.sections.iter().zip(&many.sections) {
                assert_eq!((&a.insns, &a.insn_at), (&b.insns, &b.insn_at));
            }
        }
    }

    /// A stray `e9` (a 5-byte jmp to the linear sweep) swallows the next function's first
    /// bytes: a chunk starting there is not what the sweep decodes, and the answer is the
    /// sweep's (here objtool's refusal of a function that starts inside an instruction).
    #[test]
    fn a_chunk_the_sweep_does_not_reach_gives_way() {
        let bytes = functions(".byte 0xe9\n");
        let file = ElfFile::parse(&bytes).expect("assembled object");
        let message = |threads| match Program::build_in_chunks(&file, orc_flow::KernelEra::V6_12, threads, 64) {
            Ok(_) => "no error".to_string(),
            Err(fatal) => fatal.warning.message,
        };
        let one = message(1);
        assert!(one.contains("can't find starting instruction"), "{one}");
        for threads in [2, 3, 8, 64] {
            assert_eq!(message(threads), one, "{threads} threads");
        }
    }

    #[test]
    fn optional_index_round_trips() {
        assert_eq!(OptIndex::from(None).get(), None);
        assert_eq!(OptIndex::from(Some(0)).get(), Some(0));
        assert_eq!(OptIndex::from(Some(u32::MAX - 1)).get(), Some(u32::MAX - 1));
        assert!(OptIndex::NONE.is_none() && OptIndex::from(Some(7)).is_some());
    }
}
