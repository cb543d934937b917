//! ORC for linked x86-64 programs: executables (`ET_EXEC`, PIE) and shared libraries.
//!
//! The kernel's objtool analyses relocatable objects; user-space code arrives linked, often
//! stripped. This crate finds the functions of a linked file, derives ORC from its machine code,
//! converts `.eh_frame` to ORC where the compiler's CFI can be expressed, and stores tables in
//! sidecar files.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bytes = std::fs::read("/usr/bin/true")?;
//! let elf = orc_elf::ElfFile::parse(&bytes)?;
//! let table = orc_linked::generate(&elf, orc_linked::Source::Combined)?;
//! let sidecar = orc_linked::sidecar::encode(orc_linked::build_id(&elf).unwrap_or(&[]), &table);
//! # let _ = sidecar; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod analysis;
pub mod compare;
pub mod eh_frame;
mod funcs;
mod image;
mod jumptable;
pub mod sframe;
pub mod sidecar;
mod table;
pub mod write;

use std::fmt;

use orc_elf::{ElfError, ElfFile};
use orc_format::{Entry, Layout, RawEntry};

pub use analysis::NORETURN;

/// The version of the tables [`generate`] makes. Raise it whenever the analysis or the
/// converter changes what they produce, so that cached sidecar files from an older orctool are
/// made again rather than trusted (a build-id names the binary, not the table).
pub const GENERATOR: u32 = 8;
pub use image::build_id;

use crate::table::TableBuilder;

/// Where a table's rows come from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Source {
    /// The analysis of the machine code (objtool's rules on every function).
    Analysis,
    /// The compiler's `.eh_frame`, converted where ORC can express it.
    EhFrame,
    /// The analysis, with the converter's rows for functions the analysis could not do and the
    /// converter's END_OF_STACK where the CFI says the return address is undefined. What the
    /// unwinder uses by default.
    Combined,
}

/// An ORC table for a linked file, in [`Layout::V3`], addresses being the file's link-time
/// virtual addresses.
#[derive(Clone, Debug, Default)]
pub struct LinkedTable {
    /// Instruction addresses, strictly increasing.
    pub ips: Vec<u64>,
    /// One entry per address, valid from it up to the next address. Each covered range ends
    /// with an UNDEFINED terminator.
    pub entries: Vec<RawEntry>,
    /// How the table was made.
    pub report: Report,
}

impl LinkedTable {
    /// The entry covering `ip`: the last one at or below it.
    pub fn lookup(&self, ip: u64) -> Option<Entry> {
        let i = self.ips.partition_point(|&a| a <= ip).checked_sub(1)?;
        self.entries.get(i).map(|&raw| Layout::V3.decode(raw))
    }
}

/// Functions found, by where they were found.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FunctionCounts {
    /// `STT_FUNC` symbols of `.symtab`.
    pub symtab: usize,
    /// `.eh_frame` FDEs no symbol covered.
    pub eh_frame: usize,
    /// `STT_FUNC` symbols of `.dynsym` no FDE or `.symtab` symbol covered.
    pub dynsym: usize,
    /// The entry point, when nothing else covered it.
    pub entry: usize,
    /// PLT stubs.
    pub plt: usize,
    /// Functions only the dynamic loader calls (`.init_array`, `.fini_array`, `.init`,
    /// `.fini`) that nothing else covered.
    pub loader: usize,
}

impl FunctionCounts {
    /// All functions.
    pub fn total(&self) -> usize {
        self.symtab + self.eh_frame + self.dynsym + self.entry + self.plt + self.loader
    }
}

/// What went into a table.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The functions, by source (analysis) or the FDEs (converter only).
    pub functions: FunctionCounts,
    /// Functions the analysis walked without a problem and with every instruction reached.
    pub analysed: usize,
    /// Functions whose rows came from the converter in a combined table.
    pub from_converter: usize,
    /// What the analysis could not follow.
    pub problems: Vec<Problem>,
    /// Instructions the analysis reached.
    pub instructions: usize,
    /// Rows in the table.
    pub rows: usize,
    /// The converter's counts, when it ran.
    pub converter: Option<eh_frame::Stats>,
}

/// Something the analysis could not follow, at one instruction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Problem {
    /// Address of the instruction.
    pub addr: u64,
    /// The function it is in (its name, `func_<addr>` for one found without a name).
    pub function: String,
    /// Offset of the instruction in that function.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// The warning line, in objtool's shape: `FILE: warning: orctool: func()+0xoff: message`.
    pub fn render(&self, file: &str) -> String {
        format!("{file}: warning: orctool: {}()+0x{:x}: {}", self.function, self.offset, self.message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}()+0x{:x}: {}", self.function, self.offset, self.message)
    }
}

/// Why no table could be made at all.
#[derive(Debug, thiserror::Error)]
pub enum LinkedError {
    /// The ELF structure is broken.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// `.eh_frame` cannot be parsed.
    #[error(".eh_frame: {0}")]
    EhFrame(String),
    /// A relocatable object, core dump or other file that is not linked code.
    #[error("not an executable or shared library")]
    NotLinked,
}

/// The converter's view of `elf`: its `.eh_frame` converted, or an empty conversion if it has
/// none.
pub fn convert_eh_frame(elf: &ElfFile<'_>) -> Result<eh_frame::Conversion, LinkedError> {
    let Some(section) = elf.section_by_name(".eh_frame")? else {
        return Ok(eh_frame::Conversion {
            pairs: Vec::new(),
            stats: eh_frame::Stats::default(),
            spans: Vec::new(),
            fdes: Vec::new(),
        });
    };
    let text = elf.section_by_name(".text")?.map_or(0, |s| s.address);
    eh_frame::convert(section.data, section.address, text, Layout::V3).map_err(|e| LinkedError::EhFrame(e.to_string()))
}

/// Makes the ORC table of an executable or shared library from `source`.
pub fn generate(elf: &ElfFile<'_>, source: Source) -> Result<LinkedTable, LinkedError> {
    if !matches!(elf.kind(), orc_elf::FileKind::Executable | orc_elf::FileKind::Shared) {
        return Err(LinkedError::NotLinked);
    }
    let conversion = convert_eh_frame(elf)?;
    if source == Source::EhFrame {
        return Ok(converter_table(&conversion));
    }
    let image = image::Image::new(elf)?;
    let functions = funcs::find(elf, &image, &conversion);
    let ctx = analysis::Ctx::new(&image, &functions);
    let result = analysis::analyse(&ctx);

    let mut spans = conversion.spans.clone();
    spans.sort_by_key(|s| s.start);
    let mut builder = TableBuilder::default();
    let mut report = Report {
        functions: functions.counts,
        converter: Some(conversion.stats),
        ..Report::default()
    };
    for (f, func) in functions.list.iter().enumerate() {
        let rows = &result.per_func[f];
        report.instructions += rows.instructions;
        if rows.clean {
            report.analysed += 1;
        }
        let from_converter = source == Source::Combined && !rows.clean && covers(&spans, func.start, func.end);
        if from_converter {
            report.from_converter += 1;
            for s in spans_in(&spans, func.start, func.end) {
                builder.row(s.start.max(func.start), s.rule.entry());
            }
        } else {
            for &(ip, entry) in &rows.rows {
                builder.row(ip, entry);
            }
        }
        builder.terminator(func.end);
    }
    if source == Source::Combined {
        // Where the CFI says the return address is undefined (the entry of a process or a
        // thread), the unwinder must stop: those rows replace the analysis's.
        let ends: Vec<_> = spans.iter().filter(|s| s.rule == eh_frame::Rule::Entry(Entry::END_OF_STACK)).collect();
        if !ends.is_empty() {
            let (ips, entries) = std::mem::take(&mut builder).finish();
            let table = LinkedTable { ips, entries, report: Report::default() };
            builder = TableBuilder::default();
            for (ip, raw) in table.ips.iter().zip(&table.entries) {
                if !ends.iter().any(|s| *ip >= s.start && *ip < s.end) {
                    builder.row(*ip, Layout::V3.decode(*raw));
                }
            }
            for s in ends {
                builder.row(s.start, Entry::END_OF_STACK);
                if let Some(after) = table.lookup(s.end) {
                    if table.ips.binary_search(&s.end).is_err() {
                        builder.row(s.end, after);
                    }
                }
            }
        }
    }
    report.problems = result.problems;
    let (ips, entries) = builder.finish();
    report.rows = ips.len();
    Ok(LinkedTable { ips, entries, report })
}

/// The converter has rows somewhere in `[start, end)`.
fn covers(spans: &[eh_frame::Span], start: u64, end: u64) -> bool {
    spans_in(spans, start, end).next().is_some()
}

/// The spans (sorted by start, not overlapping) that meet `[start, end)`.
fn spans_in(spans: &[eh_frame::Span], start: u64, end: u64) -> impl Iterator<Item = &eh_frame::Span> {
    let i = spans.partition_point(|s| s.end <= start);
    spans[i..].iter().take_while(move |s| s.start < end)
}

/// The table of the converter alone: every FDE's rows, each FDE terminated.
fn converter_table(conversion: &eh_frame::Conversion) -> LinkedTable {
    let mut builder = TableBuilder::default();
    for span in &conversion.spans {
        builder.row(span.start, span.rule.entry());
    }
    for fde in &conversion.fdes {
        builder.terminator(fde.end);
    }
    let (ips, entries) = builder.finish();
    let report = Report {
        functions: FunctionCounts { eh_frame: conversion.fdes.len(), ..FunctionCounts::default() },
        rows: ips.len(),
        converter: Some(conversion.stats),
        ..Report::default()
    };
    LinkedTable { ips, entries, report }
}
