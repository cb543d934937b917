//! `orctool dump`: print ORC tables as objtool's `--dump=orc` does, or as JSON.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use orc_elf::orc::{read_orc_table, LayoutSource, OrcAddress, OrcTable};
use orc_elf::ElfFile;
use orc_format::{DumpAddress, DumpLine, EntryType, Layout, Reg};
use rayon::prelude::*;
use serde::Serialize;

use crate::input::{expand_paths, read_input, FileError};
use crate::progress::Progress;

// Options of `orctool dump`.
// (Not a doc comment: clap would show it as the command's description, over main.rs's.)
#[derive(clap::Args, Debug)]
pub struct DumpArgs {
    /// Files to dump; directories are walked for `.ko`, `.ko.xz`, `.o` and `vmlinux`.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Read the entries in this layout instead of detecting it (v1: 4.14-6.2, v2: 6.3, v3: 6.4-7.0,
    /// v3+ax: 6.12.y/7.0.y with the AX backport, v4: 7.1+).
    #[arg(long, value_parser = parse_layout)]
    pub orc_layout: Option<Layout>,
    /// One JSON object per file, one per line, instead of objtool's text.
    #[arg(long)]
    pub json: bool,
    /// objtool's spelling: `--dump` or `--dump=orc` (accepted and ignored).
    #[arg(long = "dump", num_args = 0..=1, default_missing_value = "orc", hide = true)]
    pub objtool_dump: Option<String>,
}

pub fn parse_layout(s: &str) -> Result<Layout, String> {
    Layout::from_name(s).map_err(|e| e.to_string())
}

/// What happened to one file.
struct Rendered {
    text: String,
    note: Option<String>,
    /// The file has no ORC table (objtool prints nothing for it; so does orctool).
    no_orc: bool,
    error: Option<FileError>,
}

/// Runs the command. Returns the process exit code.
pub fn run(args: &DumpArgs) -> i32 {
    let paths = match expand_paths(&args.files) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("orctool: {e}");
            return 2;
        }
    };
    let several = paths.len() > 1;
    let progress = Progress::new(paths.len() as u64, "dumping", several);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    let mut without_orc = 0usize;
    // Files are independent: render them in parallel, a chunk at a time, and print each chunk
    // in order so that the output does not depend on scheduling.
    for chunk in paths.chunks(64) {
        let render = |p: &PathBuf| {
            let r = render_file(p, args, several);
            progress.inc();
            r
        };
        // One file needs no thread pool: starting rayon's threads would cost more than the
        // whole dump of a small module.
        let rendered: Vec<Rendered> =
            if several { chunk.par_iter().map(render).collect() } else { chunk.iter().map(render).collect() };
        for r in rendered {
            if let Some(e) = r.error {
                progress.println(&format!("orctool: {e}"));
                failed += 1;
                continue;
            }
            without_orc += usize::from(r.no_orc);
            if let Some(note) = r.note {
                progress.println(&format!("orctool: {note}"));
            }
            if out.write_all(r.text.as_bytes()).is_err() {
                // A closed pipe (`| head`) is not an error worth a message.
                return if failed > 0 { 2 } else { 0 };
            }
        }
    }
    let _ = out.flush();
    progress.finish();
    if several {
        eprintln!(
            "orctool: dumped {} files: {} with ORC, {} without, {} failed",
            paths.len(),
            paths.len() - without_orc - failed,
            without_orc,
            failed
        );
    }
    if failed > 0 {
        2
    } else {
        0
    }
}

fn render_file(path: &Path, args: &DumpArgs, several: bool) -> Rendered {
    let fail = |e: FileError| Rendered { text: String::new(), note: None, no_orc: false, error: Some(e) };
    let bytes = match read_input(path) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let file = match ElfFile::parse(&bytes) {
        Ok(f) => f,
        Err(e) => return fail(FileError::new(path, e)),
    };
    let table = match read_orc_table(&file, args.orc_layout) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Rendered {
                text: String::new(),
                // One file: say why nothing was printed. Several: the summary counts them.
                note: (!several).then(|| format!("{}: no ORC table", path.display())),
                no_orc: true,
                error: None,
            }
        }
        Err(e) => return fail(FileError::new(path, e)),
    };
    let note = (table.layout_source == LayoutSource::Assumed).then(|| {
        format!(
            "{}: no .orc_header and no kernel version in the file; read as layout {} (use --orc-layout to choose)",
            path.display(),
            table.layout
        )
    });
    let text = if args.json { render_json(path, &table) } else { render_text(path, &table, several) };
    Rendered { text, note, no_orc: false, error: None }
}

/// objtool's text, one line per entry, in file order.
fn render_text(path: &Path, table: &OrcTable<'_>, several: bool) -> String {
    let mut s = String::with_capacity(table.len() * 48 + 64);
    if several {
        let _ = writeln!(s, "File: {}", path.display());
    }
    for (address, raw) in table.iter() {
        let address = match address {
            OrcAddress::Relocated { name, addend, .. } => DumpAddress::Symbol { name, addend },
            OrcAddress::Absolute(a) => DumpAddress::Absolute(a),
        };
        let _ = writeln!(s, "{}", DumpLine { address, raw, layout: table.layout });
    }
    s
}

#[derive(Serialize)]
struct JsonFile<'a> {
    file: String,
    layout: &'static str,
    layout_source: String,
    entries: Vec<JsonEntry<'a>>,
}

#[derive(Serialize)]
struct JsonEntry<'a> {
    /// `{"symbol": ".text", "addend": 65}` or `{"address": 18446744071578845249}`.
    ip: JsonIp<'a>,
    #[serde(rename = "type")]
    kind: String,
    sp_reg: String,
    sp_offset: i16,
    bp_reg: String,
    bp_offset: i16,
    signal: bool,
    /// Only in v1 and v2, which have the bit.
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<bool>,
    /// The six stored bytes, hex.
    raw: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonIp<'a> {
    Symbol { symbol: &'a str, addend: i64 },
    Absolute { address: u64 },
}

fn reg_name(reg: Reg) -> String {
    match reg.name() {
        Some(n) => n.to_string(),
        None if reg == Reg::UNDEFINED => "undefined".to_string(),
        None => format!("reg{}", reg.0),
    }
}

fn type_name(kind: EntryType) -> String {
    match kind {
        EntryType::Undefined => "undefined".into(),
        EntryType::EndOfStack => "end_of_stack".into(),
        EntryType::Call => "call".into(),
        EntryType::Regs => "regs".into(),
        EntryType::RegsPartial => "regs_partial".into(),
        EntryType::Other(n) => format!("other{n}"),
    }
}

fn render_json(path: &Path, table: &OrcTable<'_>) -> String {
    let layout = table.layout;
    let entries = table
        .iter()
        .map(|(address, raw)| {
            let e = layout.decode(raw);
            let bytes = raw.to_bytes(orc_format::Endian::Little);
            JsonEntry {
                ip: match address {
                    OrcAddress::Relocated { name, addend, .. } => JsonIp::Symbol { symbol: name, addend },
                    OrcAddress::Absolute(a) => JsonIp::Absolute { address: a },
                },
                kind: type_name(e.kind),
                sp_reg: reg_name(e.sp_reg),
                sp_offset: e.sp_offset,
                bp_reg: reg_name(e.bp_reg),
                bp_offset: e.bp_offset,
                signal: e.signal,
                end: (layout != Layout::V3).then(|| layout.raw_end(raw)),
                raw: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            }
        })
        .collect();
    let doc = JsonFile {
        file: path.display().to_string(),
        layout: layout.name(),
        layout_source: match &table.layout_source {
            LayoutSource::Given => "given".into(),
            LayoutSource::Header => "orc_header".into(),
            LayoutSource::KernelVersion(v) => format!("kernel {v}"),
            LayoutSource::Assumed => "assumed".into(),
        },
        entries,
    };
    let mut s = serde_json::to_string(&doc).expect("plain data serializes");
    s.push('\n');
    s
}
