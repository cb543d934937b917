//! The kernel image (`vmlinux`, unstripped, with DWARF for the layouts): symbols at their link
//! addresses, functions for naming frames, its ORC table, its build ID and release.

use std::collections::HashMap;

use orc_elf::orc::{read_orc_table, OrcAddress};
use orc_elf::{ElfFile, SymbolKind};
use orc_format::RawEntry;

use crate::VmcoreError;

/// A symbol of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sym {
    /// Link-time value (for a per-CPU symbol: its offset in the per-CPU area).
    pub value: u64,
    /// Size in bytes (0 when the symbol has none).
    pub size: u64,
    /// A per-CPU variable (in `.data..percpu`): not moved by KASLR, read through
    /// `__per_cpu_offset[cpu]`.
    pub percpu: bool,
}

/// A function, for naming frames.
#[derive(Clone, Debug)]
pub struct Func<'d> {
    /// Link-time start.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// Its symbol name.
    pub name: &'d str,
}

/// The image, indexed.
pub struct Image<'d> {
    /// The ELF file.
    pub file: ElfFile<'d>,
    symbols: HashMap<&'d str, Sym>,
    /// Sorted by start.
    funcs: Vec<Func<'d>>,
    /// The GNU build ID (`.notes`), which VMCOREINFO's BUILD-ID must equal.
    pub build_id: Option<Vec<u8>>,
    /// `uname -r` of the image, from `linux_banner`.
    pub release: Option<String>,
    /// Kernel version (major, minor), for the unwinder's rules.
    pub version: Option<(u32, u32)>,
}

impl std::fmt::Debug for Image<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Image").field("release", &self.release).field("symbols", &self.symbols.len()).finish()
    }
}

/// GNU build ID from the notes sections of a file.
fn build_id(file: &ElfFile<'_>) -> Option<Vec<u8>> {
    for sec in file.sections().flatten() {
        if sec.kind != 7 {
            continue; // SHT_NOTE
        }
        let mut d = sec.data;
        while d.len() >= 12 {
            let word = |at: usize| u32::from_le_bytes(d[at..at + 4].try_into().expect("4 bytes")) as usize;
            let (namesz, descsz, kind) = (word(0), word(4), word(8));
            let name_end = 12 + namesz.div_ceil(4) * 4;
            let desc_end = name_end.checked_add(descsz.div_ceil(4) * 4)?;
            if desc_end > d.len() {
                break;
            }
            if kind == 3 && d.get(12..12 + namesz) == Some(b"GNU\0".as_slice()) {
                return Some(d[name_end..name_end + descsz].to_vec());
            }
            d = &d[desc_end..];
        }
    }
    None
}

impl<'d> Image<'d> {
    /// Indexes a linked kernel image.
    pub fn parse(data: &'d [u8]) -> Result<Image<'d>, VmcoreError> {
        let file = ElfFile::parse(data).map_err(|e| VmcoreError::Image(e.to_string()))?;
        if file.kind() != orc_elf::FileKind::Executable {
            return Err(VmcoreError::Image("not a linked kernel image (vmlinux)".into()));
        }
        let percpu_section = file.section_by_name(".data..percpu").ok().flatten().map(|s| s.index);
        let mut symbols: HashMap<&'d str, Sym> = HashMap::new();
        let mut funcs = Vec::new();
        let executable: std::collections::HashSet<usize> =
            file.sections().flatten().filter(|s| s.is_executable()).map(|s| s.index).collect();
        for sym in file.symbols().flatten() {
            if sym.name.is_empty() {
                continue;
            }
            let percpu = sym.section.is_some() && sym.section == percpu_section;
            let s = Sym { value: sym.value, size: sym.size, percpu };
            // A global wins over a local of the same name.
            if sym.binding == 1 || !symbols.contains_key(sym.name) {
                symbols.insert(sym.name, s);
            }
            // Functions, and the entry code's labels (NOTYPE, no size: entry_SYSCALL_64,
            // ret_from_fork_asm), which name the frames of the entry code.
            let in_text = sym.section.is_some_and(|i| executable.contains(&i));
            let named = sym.kind == SymbolKind::Func || (sym.kind == SymbolKind::NoType && sym.binding == 1);
            if in_text && named {
                funcs.push(Func { start: sym.value, size: sym.size, name: sym.name });
            }
        }
        funcs.sort_by_key(|f| (f.start, std::cmp::Reverse(f.size)));
        // A label without size reaches to the next symbol.
        for i in 0..funcs.len() {
            if funcs[i].size == 0 {
                let start = funcs[i].start;
                funcs[i].size = funcs[i + 1..].iter().find(|f| f.start > start).map_or(1, |f| f.start - start);
            }
        }
        let release = symbols.get("linux_banner").and_then(|b| {
            let sec = file
                .sections()
                .flatten()
                .find(|s| s.address <= b.value && b.value < s.address + s.size && s.kind == 1)?;
            let bytes = sec.data.get((b.value - sec.address) as usize..)?;
            let text = std::str::from_utf8(&bytes[..bytes.iter().position(|&c| c == 0)?]).ok()?;
            text.strip_prefix("Linux version ")?.split_whitespace().next().map(str::to_string)
        });
        let version = release.as_deref().and_then(orc_elf::modinfo::parse_release).map(|v| (v.major, v.minor));
        let build_id = build_id(&file);
        Ok(Image { file, symbols, funcs, build_id, release, version })
    }

    /// A symbol by name.
    pub fn symbol(&self, name: &str) -> Option<Sym> {
        self.symbols.get(name).copied()
    }

    /// A symbol that must exist.
    pub fn require(&self, name: &str) -> Result<Sym, VmcoreError> {
        self.symbol(name).ok_or_else(|| VmcoreError::Image(format!("no symbol {name}")))
    }

    /// The function containing link-time address `addr`: name and offset.
    pub fn function_at(&self, addr: u64) -> Option<(&Func<'d>, u64)> {
        let i = self.funcs.partition_point(|f| f.start <= addr);
        // The last function starting at or before addr that covers it (aliases share a start).
        self.funcs[..i]
            .iter()
            .rev()
            .take(8)
            .find(|f| addr < f.start.saturating_add(f.size.max(1)))
            .map(|f| (f, addr - f.start))
    }

    /// The image's ORC table as (link-time address, entry) pairs, with its layout.
    pub fn orc_pairs(&self) -> Result<(Vec<(u64, RawEntry)>, orc_format::Layout), VmcoreError> {
        let table = read_orc_table(&self.file, None)
            .map_err(|e| VmcoreError::Image(format!("ORC table: {e}")))?
            .ok_or_else(|| VmcoreError::Image("has no ORC table".into()))?;
        let pairs = table
            .iter()
            .filter_map(|(a, raw)| match a {
                OrcAddress::Absolute(ip) => Some((ip, raw)),
                OrcAddress::Relocated { .. } => None,
            })
            .collect();
        Ok((pairs, table.layout))
    }
}
