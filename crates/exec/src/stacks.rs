//! The stacks of a traced process: each mapping that has held a stack pointer, numbered once.
//!
//! A stack is the mapping holding rsp (`[stack]` for the main thread, the thread's mmapped
//! block for the others, the block given to `sigaltstack` for an alternate signal stack). A
//! stack that grows keeps its end, so a mapping with the end of a known stack is that stack,
//! grown.

use std::fs;

use orc_unwind::StackRange;

use crate::shadow::StackId;

/// One line of `/proc/PID/maps`, the parts used here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Mapped executable.
    pub exec: bool,
    /// The path or pseudo-name (`[stack]`, `[vdso]`), empty for anonymous memory.
    pub name: String,
}

/// Parses `/proc/PID/maps` text.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut rest = line;
            let mut field = || {
                let t = rest.trim_start();
                let end = t.find(|c: char| c.is_ascii_whitespace()).unwrap_or(t.len());
                rest = &t[end..];
                &t[..end]
            };
            let range = field();
            let perms = field();
            // offset, device, inode, then the name (which may contain spaces).
            for _ in 0..3 {
                field();
            }
            let name = rest.trim().to_string();
            let (start, end) = range.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some(Mapping { start, end, exec: perms.as_bytes().get(2) == Some(&b'x'), name })
        })
        .collect()
}

/// Reads the mappings of process `pid`.
pub fn read_maps(pid: i32) -> std::io::Result<Vec<Mapping>> {
    Ok(parse_maps(&fs::read_to_string(format!("/proc/{pid}/maps"))?))
}

/// The stacks seen so far.
#[derive(Default, Debug)]
pub struct Stacks {
    ranges: Vec<StackRange>,
    /// Times `/proc/PID/maps` was read to place a stack pointer.
    pub maps_reads: u64,
}

impl Stacks {
    /// The range of stack `id`.
    pub fn range(&self, id: StackId) -> StackRange {
        self.ranges.get(id as usize).copied().unwrap_or(StackRange::new(0, 0))
    }

    /// The stack holding `sp`, trying `hint` first; reads the maps of `pid` for a stack
    /// pointer outside every known stack. `None` when no mapping holds it.
    #[inline]
    pub fn id_for(&mut self, sp: u64, hint: Option<StackId>, pid: i32) -> Option<StackId> {
        if let Some(h) = hint {
            if self.range(h).holds_sp(sp) {
                return Some(h);
            }
        }
        if let Some(i) = self.ranges.iter().position(|r| r.holds_sp(sp)) {
            return Some(i as StackId);
        }
        self.place(sp, pid)
    }

    #[cold]
    fn place(&mut self, sp: u64, pid: i32) -> Option<StackId> {
        self.maps_reads += 1;
        let maps = read_maps(pid).ok()?;
        // An empty stack's pointer is its end, which belongs to the mapping below it.
        let m = maps.iter().find(|m| m.start <= sp && sp < m.end).or_else(|| maps.iter().find(|m| m.end == sp))?;
        let range = StackRange::new(m.start, m.end);
        if let Some(i) = self.ranges.iter().position(|r| r.end == m.end) {
            self.ranges[i] = range;
            return Some(i as StackId);
        }
        self.ranges.push(range);
        Some((self.ranges.len() - 1) as StackId)
    }

    /// Forgets every stack (exec).
    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines() {
        let text = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 123 /usr/bin/true
55d0c0a01000-55d0c0a05000 r-xp 00001000 fe:01 123 /usr/bin/true
7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]
7f0000-7f1000 rw-p 00000000 00:00 0
7ffe0000-7ffe2000 r-xp 00000000 00:00 0                          [vdso]
600000-601000 r-xp 00000000 fe:01 9 /tmp/a b/c
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[1], Mapping { start: 0x55d0c0a01000, end: 0x55d0c0a05000, exec: true, name: "/usr/bin/true".into() });
        assert_eq!(maps[2].name, "[stack]");
        assert!(!maps[2].exec);
        assert_eq!(maps[3].name, "");
        assert_eq!(maps[4].name, "[vdso]");
        assert_eq!(maps[5].name, "/tmp/a b/c");
    }
}
