//! `orctool annotate`: code, patch sites, stack states and the ORC table side by side.
//!
//! With no file it shows the embedded example: the 2017 paravirt case that started this
//! project (`seed/pv_save_fl.S`), then the layout the union rule refuses
//! (`seed/pv_conflict.S`).

use std::fmt::Write as _;
use std::path::PathBuf;

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};
use orc_check::inspect::{inspect, FunctionView, InsnView, SiteView, StreamView};
use orc_check::image::extract_function;
use orc_check::Options;
use orc_elf::{ElfFile, FileKind};
use orc_flow::KernelEra;
use orc_format::{DumpAddress, DumpLine, Layout};

use crate::input::{read_input, FileError};

static SEED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pv_save_fl.o"));
static CONFLICT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pv_conflict.o"));
static HAZARD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pv_hazard.o"));

// Options of `orctool annotate`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct AnnotateArgs {
    /// The object to annotate; without it, the embedded example.
    pub file: Option<PathBuf>,
    /// Only this function.
    #[arg(long)]
    pub function: Option<String>,
    /// The kernel the object belongs to (default: from `.modinfo`, else 6.12).
    #[arg(long)]
    pub kernel: Option<String>,
}

/// The kernel's module flags, plus orctool's own: go on where objtool gives up, and the
/// strict check of return addresses inside patch sites.
fn module_options() -> Options {
    Options { assume_intra_function_calls: true, strict_alternatives: true, ..Options::kernel_module() }
}

/// Runs the command; returns the exit code.
pub fn run(args: &AnnotateArgs) -> i32 {
    let mut out = String::new();
    let result = match &args.file {
        Some(path) => read_input(path).and_then(|bytes| {
            let name = path.display().to_string();
            annotate(&mut out, &name, &bytes, args).map_err(|e| FileError::new(path, e))
        }),
        None => annotate_example(&mut out, args),
    };
    print!("{out}");
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("orctool: {e}");
            2
        }
    }
}

fn annotate_example(out: &mut String, args: &AnnotateArgs) -> Result<(), FileError> {
    out.push_str(
        "The embedded example: `callq *pv_irq_ops.save_fl`, patched at run time into\n\
         `pushfq; pop %rax` (bare metal) or `call xen_save_fl` (Xen). An interrupt right after\n\
         `pushfq` must still unwind, so the ORC table holds the union of all three streams.\n\n",
    );
    let seed = PathBuf::from("<embedded pv_save_fl.o>");
    annotate(out, "pv_save_fl.o", SEED, args).map_err(|e| FileError::new(&seed, e))?;
    out.push_str(
        "\nThe layout the rule refuses: `pushfq; nop6; pop %rax` against the 7-byte call.\n\
         Offset 7 is an instruction boundary in both streams with different states, so no\n\
         single ORC entry can be right there.\n\n",
    );
    let bad = PathBuf::from("<embedded pv_conflict.o>");
    annotate(out, "pv_conflict.o", CONFLICT, args).map_err(|e| FileError::new(&bad, e))?;
    out.push_str(
        "\nWhat the union rule misses (Peter Zijlstra, January 2021): no shared boundary\n\
         disagrees, but a call's return address is looked up at ip-1, inside the call, where\n\
         the table holds another stream's entry. objtool accepts this site; orctool's strict\n\
         check (`check --strict-alternatives`, always on here) reports it.\n\n",
    );
    let hazard = PathBuf::from("<embedded pv_hazard.o>");
    annotate(out, "pv_hazard.o", HAZARD, args).map_err(|e| FileError::new(&hazard, e))
}

fn annotate(out: &mut String, name: &str, bytes: &[u8], args: &AnnotateArgs) -> Result<(), String> {
    let file = ElfFile::parse(bytes).map_err(|e| e.to_string())?;
    let era = match &args.kernel {
        Some(k) => KernelEra::parse(k).ok_or_else(|| format!("--kernel {k}: not a kernel version"))?,
        None => KernelEra::from_file(&file).unwrap_or(KernelEra::V6_12),
    };
    if file.kind() != FileKind::Relocatable {
        return annotate_image(out, name, &file, era, args);
    }
    let inspection = inspect(&file, era, &module_options());
    let mut shown = 0;
    for f in &inspection.functions {
        if args.function.as_deref().is_some_and(|n| n != f.name) {
            continue;
        }
        function(out, f, era);
        shown += 1;
    }
    if shown == 0 {
        if let Some(n) = &args.function {
            return Err(format!("no function called {n}"));
        }
    }
    let layout = Layout::from_kernel_version(u32::from(era.major), u32::from(era.minor));
    match (&inspection.analysis.orc, &inspection.analysis.fatal) {
        (_, Some(fatal)) => {
            let _ = writeln!(out, "ORC table: none (the analysis gave up: {fatal})");
        }
        (Some(rows), None) => {
            let _ = writeln!(out, "ORC table ({} entries, layout {layout}, as `objtool --dump=orc` prints it):", rows.len());
            for r in rows {
                let sec = file.section(r.section).map(|s| s.name).unwrap_or("?");
                let raw = layout.encode(r.entry).map_err(|e| e.to_string())?;
                let line = DumpLine { address: DumpAddress::Symbol { name: sec, addend: r.offset as i64 }, raw, layout };
                let _ = writeln!(out, "  {line}");
            }
        }
        (None, None) => out.push_str("ORC table: none\n"),
    }
    warnings(out, &inspection.analysis.warnings, name);
    Ok(())
}

/// A function of a linked kernel image: only that function is analysed, rebuilt as the
/// object objtool would have seen (orc-check's `image`), with the image kernel's flags.
fn annotate_image(out: &mut String, name: &str, image: &ElfFile<'_>, era: KernelEra, args: &AnnotateArgs) -> Result<(), String> {
    let Some(function) = &args.function else {
        return Err("a linked image: say which function with --function NAME (the whole image is not annotated)".into());
    };
    let x = extract_function(image, function, era)?;
    let (alts, labels, para, extable) = x.sites;
    let _ = writeln!(
        out,
        "{function} in {name} (Linux {era}): {:#x}, {}+{:#x}, {} bytes; {alts} alternative entries, {labels} jump labels, {para} paravirt sites, {extable} exception-table entries",
        x.address, x.section, x.offset, x.size
    );
    for l in &x.left_out {
        let _ = writeln!(out, "  left out: {l}");
    }
    out.push_str(
        "  (offsets below are from the function's start; the source's unwind hints and .discard annotations,\n   \
         retpoline-safe marks among them, are not in the image: --retpoline's check is off)\n\n",
    );
    let object = ElfFile::parse(&x.object).map_err(|e| format!("the rebuilt object of {function}: {e}"))?;
    let options = Options { module: false, retpoline: false, ..module_options() };
    let inspection = inspect(&object, era, &options);
    let cold = format!("{function}.cold");
    for f in inspection.functions.iter().filter(|f| f.name == *function || f.name == cold) {
        self::function(out, f, era);
    }
    if !x.paravirt.is_empty() {
        out.push_str("paravirt sites (.parainstructions: apply_paravirt() writes a direct call to the op, or NOPs; objtool of this era does not read them, `orctool verify-patching` checks them):\n");
        for (offset, pv_type, len) in &x.paravirt {
            let op = orc_patch::choices::pv_op_name(*pv_type);
            let op = if op.starts_with("pv_ops[") { op } else { format!("pv_ops.{op}") };
            let _ = writeln!(out, "  +{offset:#x}: {len} bytes, {op}");
        }
    }
    warnings(out, &inspection.analysis.warnings, name);
    Ok(())
}

/// The analysis's warnings, in objtool's shape, or that there are none.
fn warnings(out: &mut String, warnings: &[orc_check::Warning], name: &str) {
    if warnings.is_empty() {
        out.push_str("warnings: none\n");
    } else {
        out.push_str("warnings:\n");
        for w in warnings {
            let _ = writeln!(out, "  {}", w.render(name));
        }
    }
}

/// `call *0x0`, from the bytes, GAS syntax, with the relocation target appended.
fn disassemble(insn: &InsnView) -> String {
    if insn.bytes.is_empty() {
        return format!("(padding: {} byte{} of NOP)", insn.len, if insn.len == 1 { "" } else { "s" });
    }
    let mut decoder = Decoder::with_ip(64, &insn.bytes, insn.offset, DecoderOptions::NONE);
    let decoded = decoder.decode();
    let mut text = String::new();
    let mut formatter = GasFormatter::new();
    formatter.options_mut().set_branch_leading_zeros(false);
    formatter.options_mut().set_uppercase_hex(false);
    formatter.options_mut().set_gas_show_mnemonic_size_suffix(false);
    formatter.format(&decoded, &mut text);
    if let Some(r) = &insn.reloc {
        text += &format!("  <{r}>");
    }
    text
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn function(out: &mut String, f: &FunctionView, era: KernelEra) {
    let size = f.insns.last().map(|i| i.offset + u64::from(i.len) - f.offset).unwrap_or(0);
    let _ = writeln!(out, "{} ({}+{:#x}, {} bytes)", f.name, f.section, f.offset, size);
    let _ = writeln!(out, "  {:<8}{:<24}{:<46}{}", "offset", "bytes", "instruction", "stack state before");
    for insn in &f.insns {
        let mark = insn.site.map(|s| format!("  <- patch site {}", site_letter(s))).unwrap_or_default();
        let state = insn.state.as_deref().unwrap_or("(not reached)");
        let _ = writeln!(
            out,
            "  {:<8}{:<24}{:<46}{}{}",
            format!("{:#x}", insn.offset - f.offset),
            hex(&insn.bytes),
            disassemble(insn),
            state,
            mark
        );
    }
    for (i, site) in f.sites.iter().enumerate() {
        site_table(out, f, i, site, era);
    }
    out.push('\n');
}

fn site_letter(i: usize) -> char {
    (b'A' + (i % 26) as u8) as char
}

fn stream_title(s: &StreamView, era: KernelEra) -> String {
    match s.feature {
        None => "original".into(),
        Some((feature, flags)) => {
            let name = orc_flow::special::cpufeatures::name(era, feature)
                .map(|n| format!("X86_FEATURE_{n}"))
                .unwrap_or_else(|| format!("feature {}*32+{}", feature / 32, feature % 32));
            let mut t = if flags & 1 != 0 { format!("if no {name}") } else { format!("if {name}") };
            if flags & 2 != 0 {
                t += " (direct call)";
            }
            t
        }
    }
}

fn site_table(out: &mut String, f: &FunctionView, i: usize, site: &SiteView, era: KernelEra) {
    let _ = writeln!(
        out,
        "\n  patch site {} at {}+{:#x}: {} bytes, {} streams",
        site_letter(i),
        f.name,
        site.offset - f.offset,
        site.len,
        site.streams.len()
    );
    // One row per byte offset where any stream has an instruction boundary.
    let mut offsets: Vec<u64> = site.streams.iter().flat_map(|s| s.insns.iter().map(|i| i.offset)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let cells: Vec<Vec<String>> = site
        .streams
        .iter()
        .map(|s| {
            offsets
                .iter()
                .map(|&o| match s.insns.iter().find(|i| i.offset == o) {
                    Some(insn) => format!("{}  [{}]", disassemble(insn), insn.state.as_deref().unwrap_or("not reached")),
                    None => String::new(),
                })
                .collect()
        })
        .collect();
    let titles: Vec<String> = site.streams.iter().map(|s| stream_title(s, era)).collect();
    let widths: Vec<usize> = (0..site.streams.len())
        .map(|k| cells[k].iter().map(String::len).chain([titles[k].len()]).max().unwrap_or(0))
        .collect();
    let mut line = format!("    {:<6}", "+off");
    for (k, t) in titles.iter().enumerate() {
        line += &format!("| {:<w$} ", t, w = widths[k]);
    }
    let _ = writeln!(out, "{}", line.trim_end());
    for (row, o) in offsets.iter().enumerate() {
        let mut line = format!("    {:<6}", format!("+{o}"));
        for k in 0..site.streams.len() {
            line += &format!("| {:<w$} ", cells[k][row], w = widths[k]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let union: Vec<String> = site.union.iter().map(|(o, s)| format!("+{o} {s}")).collect();
    let _ = writeln!(out, "    union, as the table records it: {}", union.join(", "));
}
