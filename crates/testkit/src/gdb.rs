//! gdb's view of a live process's stacks, the reference the unwinder tests compare with.
//!
//! gdb is asked through its Python API (`gdb/frames.py`, also used by
//! `scripts/compare-gdb.sh`), which prints one tab-separated record per line in a format this
//! crate defines. The text of gdb's `bt` is not read: its spacing changes with the frame
//! number (`#9  ` but `#10 `) and with the pc (`0x... in f ()` mid-line, `f ()` at the start of a
//! line), which made a parser of it fail now and then.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The script, as a file (for scripts that run gdb themselves).
pub fn frames_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("gdb").join("frames.py")
}

/// What kind of frame gdb says a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A frame on the stack.
    Normal,
    /// A function inlined into its caller: gdb rebuilds it from DWARF, it has no frame.
    Inline,
    /// A function that tail-called the next: gdb rebuilds it from DWARF call-site records.
    TailCall,
    /// The signal trampoline (`<signal handler called>` in `bt`).
    Signal,
    /// Any other kind gdb has (dummy, architecture, sentinel frames).
    Other,
}

impl FrameKind {
    fn parse(word: &str) -> Option<FrameKind> {
        Some(match word {
            "normal" => FrameKind::Normal,
            "inline" => FrameKind::Inline,
            "tailcall" => FrameKind::TailCall,
            "signal" => FrameKind::Signal,
            "other" => FrameKind::Other,
            _ => return None,
        })
    }

    /// Whether the frame is on the stack, so that a stack unwinder must find it too.
    pub fn is_on_stack(self) -> bool {
        matches!(self, FrameKind::Normal | FrameKind::Signal)
    }
}

/// One frame: its function's name (`??` where gdb has none) and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function's name.
    pub name: String,
    /// The kind.
    pub kind: FrameKind,
}

/// One thread's frames, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The thread id (LWP).
    pub tid: u32,
    /// The frames.
    pub frames: Vec<Frame>,
    /// gdb's error where it could not go past the last frame.
    pub stopped_by: Option<String>,
}

impl Thread {
    /// The function names of the frames.
    pub fn names(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f.name.as_str()).collect()
    }
}

/// Whether gdb can be run.
pub fn available() -> bool {
    Command::new("gdb").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Attaches gdb to `pid` and returns every thread's frames, threads by ascending id. Fails, with
/// what gdb said, when gdb does not list everything (it could not attach, or died).
pub fn frames(pid: u32) -> Result<Vec<Thread>, String> {
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-iex", "set debuginfod enabled off", "-p", &pid.to_string(), "-x"])
        .arg(frames_script())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run gdb: {e}"))?;
    parse(&String::from_utf8_lossy(&out.stdout)).map_err(|e| format!("gdb -p {pid}: {e}; stderr: {}", String::from_utf8_lossy(&out.stderr).trim()))
}

/// Reads the records of `gdb/frames.py` out of gdb's output.
pub fn parse(text: &str) -> Result<Vec<Thread>, String> {
    let mut threads: Vec<Thread> = Vec::new();
    let mut ended = false;
    for line in text.lines() {
        let mut fields = line.split('\t');
        match fields.next() {
            Some("thread") => {
                let tid = fields.next().and_then(|t| t.parse().ok()).ok_or_else(|| format!("bad thread record {line:?}"))?;
                threads.push(Thread { tid, frames: Vec::new(), stopped_by: None });
            }
            Some("frame") => {
                let kind = fields.next().and_then(FrameKind::parse).ok_or_else(|| format!("bad frame record {line:?}"))?;
                let name = fields.next().ok_or_else(|| format!("bad frame record {line:?}"))?.to_string();
                threads.last_mut().ok_or("a frame before any thread")?.frames.push(Frame { name, kind });
            }
            Some("stop") => {
                threads.last_mut().ok_or("a stop before any thread")?.stopped_by = Some(fields.collect::<Vec<_>>().join("\t"));
            }
            Some("end") if line == "end" => ended = true,
            _ => {}
        }
    }
    if !ended {
        return Err(format!("the frame list did not end ({} threads read)", threads.len()));
    }
    if threads.is_empty() {
        return Err("no threads listed".into());
    }
    Ok(threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_skips_gdb_messages() {
        let text = "[Thread debugging using libthread_db enabled]\nthread\t7\nframe\tnormal\tpause\nframe\tsignal\t??\nframe\tinline\tf\nstop\tCannot access memory at 0x0\nthread\t8\nframe\ttailcall\tg\n0x00007f in pause () from /lib\nend\n";
        let threads = parse(text).unwrap();
        assert_eq!(threads.len(), 2);
        assert_eq!(threads[0].tid, 7);
        assert_eq!(threads[0].names(), ["pause", "??", "f"]);
        assert_eq!(threads[0].frames[1].kind, FrameKind::Signal);
        assert_eq!(threads[0].stopped_by.as_deref(), Some("Cannot access memory at 0x0"));
        assert_eq!(threads[1].frames, [Frame { name: "g".into(), kind: FrameKind::TailCall }]);
        assert_eq!(threads[1].stopped_by, None);
    }

    #[test]
    fn output_without_the_end_record_is_an_error() {
        assert!(parse("thread\t7\nframe\tnormal\tpause\n").unwrap_err().contains("did not end"));
        assert!(parse("end\n").unwrap_err().contains("no threads"));
        assert!(parse("thread\tx\nend\n").is_err());
        assert!(parse("thread\t1\nframe\tweird\tf\nend\n").is_err());
    }
}
