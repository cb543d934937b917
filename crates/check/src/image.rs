//! One function of a linked kernel image (vmlinux), rebuilt as the small relocatable object
//! the analysis reads, so that `annotate` looks at a function of a 340 MB image by analysing
//! only that function.
//!
//! A linked image has no relocations: its branches, calls and table fields hold resolved
//! values. The object made here puts them back the way the compiler left them for objtool:
//!
//! - the function's bytes in a section named after the image's section (`.text`,
//!   `.init.text`...), at offset 0;
//! - a `R_X86_64_PLT32` relocation for every direct call or `jmp`/`jcc` (rel32) that leaves
//!   the function, against an undefined symbol named after the symbol at the target
//!   (`__x86_return_thunk`, `__SCT__...`, `__stack_chk_fail`: objtool's rules key on these
//!   names), and a `R_X86_64_PC32` for every RIP-relative operand that points at a symbol
//!   (`call *pv_ops+0x138(%rip)` shows as such);
//! - the function's patch sites with their relocations: `.altinstructions` (the entries whose
//!   original lies in the function, their replacements copied into `.altinstr_replacement`
//!   with the same relocations for the branches in them), `__jump_table`,
//!   `.parainstructions` (before 6.8) and `__ex_table`, each entry in the image's own era
//!   layout (parsed by `orc-flow` in its linked-file mode);
//! - `.discard.reachable` after each `WARN()`'s `ud2`, from the image's `__bug_table`;
//! - the `.altinstr_aux` code the function jumps to (`static_cpu_has()`'s test before
//!   patching), which objtool follows.
//!
//! What the image no longer has, the object cannot have either: the `.discard.*` annotations
//! and unwind hints (the final link drops them), and the bodies of the functions called
//! (objtool's noreturn detection by analysis of a callee in the same object falls back to its
//! lists). [`Extracted::left_out`] says what was left out for this function.

use std::collections::HashMap;

use object::write::{Object, Relocation as WRelocation, Symbol as WSymbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags,
    SymbolKind as WKind, SymbolScope,
};
use orc_decode::{InsnKind, SectionDecoder};
use orc_elf::{ElfFile, SymbolKind};
use orc_flow::special::{alternatives, bug_table, extable, jump_table, paravirt, AltLayout};
use orc_flow::{AddressMap, KernelEra, Location};

const R_X86_64_64: u32 = 1;
const R_X86_64_PC32: u32 = 2;
const R_X86_64_PLT32: u32 = 4;

/// The function, as an object.
pub struct Extracted {
    /// The relocatable object (ELF bytes).
    pub object: Vec<u8>,
    /// The function's address in the image.
    pub address: u64,
    /// Its section in the image.
    pub section: String,
    /// Its offset there.
    pub offset: u64,
    /// Its size.
    pub size: u64,
    /// Patch sites carried over: alternatives entries, jump labels, paravirt sites,
    /// exception-table entries.
    pub sites: (usize, usize, usize, usize),
    /// What could not be carried over, one line each.
    pub left_out: Vec<String>,
    /// The function's `.parainstructions` sites (before 6.8): offset in the function, `pv_ops`
    /// slot, length. objtool of those kernels does not read them; `verify-patching` does.
    pub paravirt: Vec<(u64, u8, u8)>,
}

/// A symbol of the image: address, size, name, kind.
struct ImageSymbol<'d> {
    address: u64,
    size: u64,
    name: &'d str,
    kind: SymbolKind,
}

/// The image's symbols by address, to name a target.
struct Symbols<'d> {
    sorted: Vec<ImageSymbol<'d>>,
}

impl<'d> Symbols<'d> {
    fn new(file: &ElfFile<'d>) -> Symbols<'d> {
        let mut sorted: Vec<ImageSymbol<'d>> = file
            .symbols()
            .flatten()
            .filter(|s| {
                s.section.is_some()
                    && !s.name.is_empty()
                    && !s.name.starts_with("__pfx_")
                    && matches!(
                        s.kind,
                        SymbolKind::Func | SymbolKind::Object | SymbolKind::NoType
                    )
            })
            .map(|s| ImageSymbol {
                address: s.value,
                size: s.size,
                name: s.name,
                kind: s.kind,
            })
            .collect();
        // At one address, functions first, then sized symbols; the `__pi_` aliases of 6.17+
        // (position-independent copies' names, `__pi___x86_return_thunk`) last, since
        // objtool's rules key on the plain names.
        sorted.sort_by_key(|s| (s.address, s.name.starts_with("__pi_"), s.kind != SymbolKind::Func, s.size == 0));
        Symbols { sorted }
    }

    /// The symbol starting at `address`, else the sized symbol containing it: name and offset.
    fn name(&self, address: u64) -> Option<(&'d str, u64)> {
        let n = self.sorted.partition_point(|s| s.address < address);
        if let Some(s) = self.sorted.get(n).filter(|s| s.address == address) {
            return Some((s.name, 0));
        }
        self.sorted[..n]
            .iter()
            .rev()
            .take(64)
            .find(|s| s.size != 0 && address - s.address < s.size)
            .map(|s| (s.name, address - s.address))
    }
}

/// Builds the object of function `name` of the linked image `image`, with the special-section
/// layouts of `era`.
pub fn extract_function(
    image: &ElfFile<'_>,
    name: &str,
    era: KernelEra,
) -> Result<Extracted, String> {
    let map = AddressMap::new(image);
    let mut candidates = image
        .symbols()
        .flatten()
        .filter(|s| s.name == name && s.section.is_some());
    let Some(sym) = candidates.find(|s| s.kind == SymbolKind::Func && s.size != 0) else {
        return Err(match image.symbols().flatten().find(|s| s.name == name) {
            Some(s) if s.kind == SymbolKind::NoType => format!(
                "{name} is not a function with a size (a NOTYPE symbol: code written in assembly without a function type, whose unwind hints the image no longer has)"
            ),
            Some(_) => format!("{name} is not a function (a data symbol)"),
            None => format!("no function called {name}"),
        });
    };
    let start = sym.value;
    start
        .checked_add(sym.size)
        .ok_or_else(|| format!("{name}: size past the end of the address space"))?;
    let at = map
        .locate(start)
        .ok_or_else(|| format!("{name}: address {start:#x} is in no section"))?;
    let sec = image.section(at.section).map_err(|e| e.to_string())?;
    let from = usize::try_from(at.offset).map_err(|_| "offset too large".to_string())?;
    let code = sec
        .data
        .get(from..from.saturating_add(sym.size as usize))
        .ok_or_else(|| {
            format!(
                "{name}: its {} bytes run past the end of {}",
                sym.size, sec.name
            )
        })?;
    let symbols = Symbols::new(image);
    let names = image
        .sections()
        .flatten()
        .map(|s| (s.index, s.name))
        .collect();
    let aux = image
        .sections()
        .flatten()
        .filter(|s| s.name == ".altinstr_aux")
        .map(|s| (s.index, s.data))
        .collect();
    let mut b = Builder::new(sec.name, code, start, &symbols, &map, names, aux);
    b.func_symbol(name, 0, sym.size);
    // GCC's `foo.cold` part (in `.text.unlikely`, linked into `.text` elsewhere): objtool
    // follows jumps into it as the same function, so it comes along, after the function.
    let cold_name = format!("{name}.cold");
    let cold = image
        .symbols()
        .flatten()
        .find(|s| s.name == cold_name && s.kind == SymbolKind::Func && s.size != 0)
        .and_then(|c| {
            let l = map.locate(c.value).filter(|l| l.section == at.section)?;
            // Checked: the size is the file's to choose (the fuzz target `flow_special` gave one
            // that overflowed).
            let end = usize::try_from(l.offset.checked_add(c.size)?).ok()?;
            let bytes = sec.data.get(usize::try_from(l.offset).ok()?..end)?;
            Some((c.value, c.size, bytes))
        });
    if let Some((address, size, bytes)) = cold {
        let pad = (16 - code.len() % 16) % 16;
        b.append(Part::Text, &vec![0xcc; pad]);
        let off = b.append(Part::Text, bytes);
        b.cold = Some((address, size, off));
        b.func_symbol(&cold_name, off, size);
    }
    b.relocate_code(Part::Text, code, start, 0)?;
    if let Some((address, _, bytes)) = cold {
        let off = b.cold.map_or(0, |c| c.2);
        b.relocate_code(Part::Text, bytes, address, off)?;
    }
    let text_ranges = (start, sym.size, b.cold);
    let section_address = sec.address;
    let text_offset = move |l: &Location| -> Option<u64> {
        if l.section != at.section {
            return None;
        }
        offset_in_text(text_ranges, section_address + l.offset)
    };

    // Patch sites whose first byte lies in the function (or its cold part), from orc-flow's
    // linked-file mode.
    let inside = |l: &Location| text_offset(l).is_some();
    let rel = |l: &Location| text_offset(l).unwrap_or(0);
    let alts = alternatives::read_alternatives_for(image, era).map_err(|e| e.to_string())?;
    let mut alt_count = 0;
    for a in alts.iter().filter(|a| inside(&a.orig)) {
        let replacement = match a.replacement {
            Some(r) => {
                let rsec = image.section(r.section).map_err(|e| e.to_string())?;
                let from = r.offset as usize;
                let bytes = rsec
                    .data
                    .get(from..from + usize::from(a.repl_len))
                    .ok_or_else(|| {
                        format!(
                            "alternative entry {}: replacement past the end of {}",
                            a.index, rsec.name
                        )
                    })?;
                let base = map.address(r);
                let off = b.append_replacement(bytes, base)?;
                Some(off)
            }
            None => None,
        };
        let layout = era.alt_layout();
        let mut entry = vec![0u8; layout.entry_size()];
        match layout {
            AltLayout::FtFlags14 => entry[8..12]
                .copy_from_slice(&(u32::from(a.cpuid) | u32::from(a.flags.0) << 16).to_le_bytes()),
            AltLayout::Cpuid12 | AltLayout::Padlen13 => {
                entry[8..10].copy_from_slice(&a.feature.to_le_bytes())
            }
        }
        entry[layout.orig_len_offset()] = a.orig_len;
        entry[layout.repl_len_offset()] = a.repl_len;
        if let Some(p) = a.padlen {
            entry[12] = p;
        }
        let base = b.append(Part::AltInstructions, &entry);
        b.reloc_to_text(
            Part::AltInstructions,
            base,
            rel(&a.orig) as i64,
            R_X86_64_PC32,
        );
        if let Some(off) = replacement {
            b.reloc_to(
                Part::AltInstructions,
                base + 4,
                Part::Replacement,
                off as i64,
                R_X86_64_PC32,
            );
        }
        alt_count += 1;
    }

    let labels = jump_table::read_jump_table_for(image, era).map_err(|e| e.to_string())?;
    let mut label_count = 0;
    for e in labels.iter().filter(|e| inside(&e.code)) {
        if !inside(&e.target) {
            b.left_out.push(format!(
                "jump label at +{:#x}: its target {} is outside the function",
                rel(&e.code),
                describe(&symbols, map.address(e.target))
            ));
            continue;
        }
        let base = b.append(Part::JumpTable, &[0u8; 16]);
        b.reloc_to_text(Part::JumpTable, base, rel(&e.code) as i64, R_X86_64_PC32);
        b.reloc_to_text(
            Part::JumpTable,
            base + 4,
            rel(&e.target) as i64,
            R_X86_64_PC32,
        );
        let key = b.undefined("__image_static_key");
        b.reloc_sym(Part::JumpTable, base + 8, key, e.key.addend, R_X86_64_PC32);
        label_count += 1;
    }

    let mut para_count = 0;
    let mut para_list = Vec::new();
    if era.has_parainstructions() {
        for p in paravirt::read_parainstructions(image)
            .map_err(|e| e.to_string())?
            .iter()
            .filter(|p| inside(&p.instr))
        {
            let mut entry = [0u8; paravirt::ENTRY_SIZE];
            entry[8] = p.pv_type;
            entry[9] = p.len;
            entry[10..12].copy_from_slice(&p.clobbers.to_le_bytes());
            let base = b.append(Part::ParaInstructions, &entry);
            b.reloc_to_text(
                Part::ParaInstructions,
                base,
                rel(&p.instr) as i64,
                R_X86_64_64,
            );
            para_list.push((rel(&p.instr), p.pv_type, p.len));
            para_count += 1;
        }
    }

    let mut ex_count = 0;
    for x in extable::read_extable(image)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|x| inside(&x.insn))
    {
        if !inside(&x.fixup) {
            b.left_out.push(format!(
                "exception-table entry at +{:#x}: its fixup is outside the function",
                rel(&x.insn)
            ));
            continue;
        }
        let mut entry = [0u8; extable::ENTRY_SIZE];
        entry[8..12].copy_from_slice(&x.data.to_le_bytes());
        let base = b.append(Part::ExTable, &entry);
        b.reloc_to_text(Part::ExTable, base, rel(&x.insn) as i64, R_X86_64_PC32);
        b.reloc_to_text(Part::ExTable, base + 4, rel(&x.fixup) as i64, R_X86_64_PC32);
        ex_count += 1;
    }

    // WARN()'s ud2 goes on: the `.discard.reachable` annotation objtool read is gone from
    // the image, `__bug_table` still says it. The annotation points just past the ud2.
    for w in bug_table::read_bug_table(image, era)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|w| w.is_warning() && inside(&w.addr))
    {
        let ud2 = rel(&w.addr);
        if code.get(ud2 as usize..ud2 as usize + 2) != Some(&[0x0f, 0x0b][..]) {
            continue;
        }
        let base = b.append(Part::Reachable, &[0u8; 4]);
        b.reloc_to_text(Part::Reachable, base, ud2 as i64 + 2, R_X86_64_PC32);
    }

    let left_out = std::mem::take(&mut b.left_out);
    let object = b.finish()?;
    Ok(Extracted {
        object,
        address: start,
        section: sec.name.to_string(),
        offset: at.offset,
        size: sym.size,
        sites: (alt_count, label_count, para_count, ex_count),
        left_out,
        paravirt: para_list,
    })
}

fn describe(symbols: &Symbols<'_>, address: u64) -> String {
    match symbols.name(address) {
        Some((n, 0)) => n.to_string(),
        Some((n, off)) => format!("{n}+{off:#x}"),
        None => format!("{address:#x}"),
    }
}

/// Where `address` is in our text section: in the function (at its offset from the start) or
/// in its cold part (after it).
fn offset_in_text(ranges: (u64, u64, Option<(u64, u64, u64)>), address: u64) -> Option<u64> {
    let (start, size, cold) = ranges;
    if address >= start && address - start < size {
        return Some(address - start);
    }
    let (c, csize, off) = cold?;
    (address >= c && address - c < csize).then(|| off + address - c)
}

/// The sections of the object being built.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Part {
    Text,
    Replacement,
    AltInstructions,
    JumpTable,
    ParaInstructions,
    ExTable,
    Reachable,
    Aux,
}

struct Builder<'a, 'd> {
    obj: Object<'static>,
    sections: HashMap<Part, object::write::SectionId>,
    data: HashMap<Part, Vec<u8>>,
    relocs: Vec<(Part, u64, RelocTarget, i64, u32)>,
    undefined: HashMap<String, object::write::SymbolId>,
    text_name: &'a str,
    /// The function: image address and size.
    func: (u64, u64),
    /// The function's cold part: image address, size, offset in our text section.
    cold: Option<(u64, u64, u64)>,
    /// Replacement bytes appended so far: (image address, offset in our section, length).
    replacements: Vec<(u64, u64, u64)>,
    symbols: &'a Symbols<'d>,
    map: &'a AddressMap,
    section_names: HashMap<usize, &'d str>,
    /// The image's `.altinstr_aux` contents, by section index.
    aux_data: HashMap<usize, &'d [u8]>,
    /// Snippets of `.altinstr_aux` copied: (image address, offset in our section).
    aux: Vec<(u64, u64)>,
    left_out: Vec<String>,
}

#[derive(Clone, Copy)]
enum RelocTarget {
    Part(Part),
    Symbol(object::write::SymbolId),
}

impl<'a, 'd> Builder<'a, 'd> {
    fn new(
        text_name: &'a str,
        code: &[u8],
        address: u64,
        symbols: &'a Symbols<'d>,
        map: &'a AddressMap,
        section_names: HashMap<usize, &'d str>,
        aux_data: HashMap<usize, &'d [u8]>,
    ) -> Self {
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let mut sections = HashMap::new();
        let text = obj.add_section(Vec::new(), text_name.as_bytes().to_vec(), SectionKind::Text);
        sections.insert(Part::Text, text);
        let mut data = HashMap::new();
        data.insert(Part::Text, code.to_vec());
        Builder {
            obj,
            sections,
            data,
            relocs: Vec::new(),
            undefined: HashMap::new(),
            text_name,
            func: (address, code.len() as u64),
            cold: None,
            replacements: Vec::new(),
            symbols,
            map,
            section_names,
            aux_data,
            aux: Vec::new(),
            left_out: Vec::new(),
        }
    }

    fn section(&mut self, part: Part) -> object::write::SectionId {
        if let Some(&id) = self.sections.get(&part) {
            return id;
        }
        let (name, kind): (&str, SectionKind) = match part {
            Part::Text => (self.text_name, SectionKind::Text),
            Part::Replacement => (".altinstr_replacement", SectionKind::Text),
            Part::AltInstructions => (".altinstructions", SectionKind::ReadOnlyData),
            Part::JumpTable => ("__jump_table", SectionKind::Data),
            Part::ParaInstructions => (".parainstructions", SectionKind::ReadOnlyData),
            Part::ExTable => ("__ex_table", SectionKind::ReadOnlyData),
            Part::Reachable => (".discard.reachable", SectionKind::ReadOnlyData),
            Part::Aux => (".altinstr_aux", SectionKind::Text),
        };
        let id = self
            .obj
            .add_section(Vec::new(), name.as_bytes().to_vec(), kind);
        self.sections.insert(part, id);
        id
    }

    fn func_symbol(&mut self, name: &str, value: u64, size: u64) {
        let section = self.section(Part::Text);
        self.obj.add_symbol(WSymbol {
            name: name.as_bytes().to_vec(),
            value,
            size,
            kind: WKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
    }

    fn undefined(&mut self, name: &str) -> object::write::SymbolId {
        if let Some(&id) = self.undefined.get(name) {
            return id;
        }
        let id = self.obj.add_symbol(WSymbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: WKind::Unknown,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        self.undefined.insert(name.to_string(), id);
        // A static call's trampoline comes with its key, which objtool looks up by name to
        // record the site (vmlinux.o has both).
        if let Some(call) = name.strip_prefix("__SCT__") {
            self.undefined(&format!("__SCK__{call}"));
        }
        id
    }

    fn append(&mut self, part: Part, bytes: &[u8]) -> u64 {
        self.section(part);
        let d = self.data.entry(part).or_default();
        let at = d.len() as u64;
        d.extend_from_slice(bytes);
        at
    }

    fn reloc_to_text(&mut self, part: Part, offset: u64, addend: i64, kind: u32) {
        self.reloc_to(part, offset, Part::Text, addend, kind);
    }

    fn reloc_to(&mut self, part: Part, offset: u64, target: Part, addend: i64, kind: u32) {
        self.section(target);
        self.relocs
            .push((part, offset, RelocTarget::Part(target), addend, kind));
    }

    fn reloc_sym(
        &mut self,
        part: Part,
        offset: u64,
        sym: object::write::SymbolId,
        addend: i64,
        kind: u32,
    ) {
        self.relocs
            .push((part, offset, RelocTarget::Symbol(sym), addend, kind));
    }

    /// Copies a replacement in (once per image address) and relocates its branches.
    fn append_replacement(&mut self, bytes: &[u8], address: u64) -> Result<u64, String> {
        if let Some(&(_, off, _)) = self
            .replacements
            .iter()
            .find(|r| r.0 == address && r.2 == bytes.len() as u64)
        {
            return Ok(off);
        }
        let off = self.append(Part::Replacement, bytes);
        self.replacements.push((address, off, bytes.len() as u64));
        let copy = bytes.to_vec();
        self.relocate_code(Part::Replacement, &copy, address, off)
            .map(|()| off)
    }

    /// Puts relocations back into code copied from `address`: branches that leave the code
    /// copied, and RIP-relative operands pointing at a symbol.
    /// `base`: where `code` sits in its section here.
    fn relocate_code(&mut self, part: Part, code: &[u8], address: u64, base: u64) -> Result<(), String> {
        let mut decoder = SectionDecoder::new(code);
        let mut off = 0u64;
        while (off as usize) < code.len() {
            let insn = decoder
                .decode_at(off, |_| true)
                .map_err(|e| format!("{:#x}: can't decode instruction", address + e.offset))?;
            let end = insn.end();
            if let Some(branch) = insn.branch {
                let target = address.wrapping_add(branch.target);
                // Out of the code copied: past the end of a function (its last byte is the
                // next function's), beyond the end of a replacement (its end is the site's).
                let limit = if part == Part::Text {
                    code.len() as u64
                } else {
                    code.len() as u64 + 1
                };
                let leaves = branch.target >= limit;
                // Into the function or its cold part, from elsewhere in what is copied.
                let in_text = offset_in_text((self.func.0, self.func.1, self.cold), target);
                if leaves && branch.field.size == 4 {
                    let field = base + off + u64::from(branch.field.offset);
                    let tail = i64::from(insn.len) - i64::from(branch.field.offset);
                    let kind = if insn.kind == InsnKind::Call {
                        R_X86_64_PLT32
                    } else {
                        R_X86_64_PC32
                    };
                    if let Some(t) = in_text {
                        // A replacement, `.altinstr_aux` code or the cold part jumping into
                        // the function (or the function into its cold part).
                        self.reloc_to_text(part, field, t as i64 - tail, R_X86_64_PC32);
                    } else if let Some(aux) = self.aux_snippet(target)? {
                        // static_cpu_has()'s test before patching, which objtool follows.
                        self.reloc_to(part, field, Part::Aux, aux as i64 - tail, R_X86_64_PC32);
                    } else {
                        let (name, extra) = self.target_name(target);
                        let sym = self.undefined(&name);
                        self.reloc_sym(part, field, sym, extra as i64 - tail, kind);
                    }
                    self.zero(part, field, 4);
                } else if leaves {
                    self.left_out.push(format!(
                        "{:#x}: a {}-byte branch to {} leaves the code copied (no relocation can carry it)",
                        address + off,
                        branch.field.size,
                        describe(self.symbols, target)
                    ));
                }
            } else if insn.rip_relative {
                if let Some(field) = insn.disp_field.filter(|f| f.size == 4) {
                    let at = off as usize + usize::from(field.offset);
                    let disp = i32::from_le_bytes(code[at..at + 4].try_into().expect("four bytes"));
                    let target = address.wrapping_add(end).wrapping_add(disp as i64 as u64);
                    if let Some((name, extra)) = self.symbols.name(target) {
                        let tail = i64::from(insn.len) - i64::from(field.offset);
                        let sym = self.undefined(name);
                        let field_at = base + at as u64;
                        self.reloc_sym(part, field_at, sym, extra as i64 - tail, R_X86_64_PC32);
                        self.zero(part, field_at, 4);
                    }
                }
            }
            off = end;
        }
        Ok(())
    }

    /// If `target` is in `.altinstr_aux`, the code there up to its first unconditional jump
    /// (`testb; jnz yes; jmp no`), copied once into our `.altinstr_aux` with its branches
    /// relocated; returns its offset there.
    fn aux_snippet(&mut self, target: u64) -> Result<Option<u64>, String> {
        let Some(l) = self.map.locate(target) else {
            return Ok(None);
        };
        if self.section_names.get(&l.section) != Some(&".altinstr_aux") {
            return Ok(None);
        }
        if let Some(&(_, off)) = self.aux.iter().find(|a| a.0 == target) {
            return Ok(Some(off));
        }
        let data = self.aux_data.get(&l.section).copied().unwrap_or(&[]);
        let rest = data.get(l.offset as usize..).unwrap_or(&[]);
        let mut decoder = SectionDecoder::new(rest);
        let mut len = 0u64;
        while (len as usize) < rest.len() && len < 256 {
            let insn = decoder
                .decode_at(len, |_| true)
                .map_err(|e| format!("{:#x}: can't decode instruction", target + e.offset))?;
            len = insn.end();
            if insn.kind == InsnKind::JumpUnconditional || insn.kind == InsnKind::Return {
                break;
            }
        }
        let code = rest[..len as usize].to_vec();
        let off = self.append(Part::Aux, &code);
        self.aux.push((target, off));
        self.relocate_code(Part::Aux, &code, target, off)?;
        Ok(Some(off))
    }

    fn target_name(&self, target: u64) -> (String, u64) {
        match self.symbols.name(target) {
            Some((n, extra)) => (n.to_string(), extra),
            // Code without a symbol (vmlinux's `.altinstr_aux`): named after its place.
            None => match self.map.locate(target) {
                Some(l) => (
                    format!(
                        "{}+{:#x}",
                        self.section_names.get(&l.section).copied().unwrap_or("?"),
                        l.offset
                    ),
                    0,
                ),
                None => (format!("{target:#x}"), 0),
            },
        }
    }

    fn zero(&mut self, part: Part, at: u64, len: usize) {
        if let Some(d) = self.data.get_mut(&part) {
            let at = at as usize;
            if let Some(s) = d.get_mut(at..at + len) {
                s.fill(0);
            }
        }
    }

    fn finish(mut self) -> Result<Vec<u8>, String> {
        let parts: Vec<Part> = self.sections.keys().copied().collect();
        for part in &parts {
            let id = self.sections[part];
            let align = if *part == Part::Text { 16 } else { 1 };
            let data = self.data.remove(part).unwrap_or_default();
            self.obj.append_section_data(id, &data, align);
        }
        let relocs = std::mem::take(&mut self.relocs);
        for (part, offset, target, addend, kind) in relocs {
            let symbol = match target {
                RelocTarget::Part(p) => {
                    let id = self.sections[&p];
                    self.obj.section_symbol(id)
                }
                RelocTarget::Symbol(s) => s,
            };
            let section = self.sections[&part];
            self.obj
                .add_relocation(
                    section,
                    WRelocation {
                        offset,
                        symbol,
                        addend,
                        flags: RelocationFlags::Elf {
                            r_type: object::elf::RelocationType(kind),
                        },
                    },
                )
                .map_err(|e| e.to_string())?;
        }
        self.obj.write().map_err(|e| e.to_string())
    }
}
