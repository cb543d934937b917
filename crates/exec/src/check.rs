//! One check: unwind with ORC from the thread's registers and compare with the chain the
//! shadow stack says is there.

use orc_unwind::{End, Memory, OrcLookup, UnwindState, Unwinder};
use serde::Serialize;

use crate::shadow::ChainFrame;

/// How an ORC unwind differs from the expected chain.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mismatch {
    /// Frame `depth` (0 = the current ip) is not the expected one.
    WrongFrame {
        /// Depth of the first wrong frame.
        depth: usize,
    },
    /// The walk ended after `depth` correct frames, before the expected chain did.
    StoppedEarly {
        /// Frames that were right.
        depth: usize,
        /// How the walk ended.
        why: String,
    },
    /// Every expected frame was found but the walk did not end at END_OF_STACK after them.
    NoEndOfStack {
        /// What came instead (more frames, or how the walk ended).
        why: String,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::WrongFrame { depth } => write!(f, "wrong frame at depth {depth}"),
            Mismatch::StoppedEarly { depth, why } => write!(f, "stopped early after {depth} frames: {why}"),
            Mismatch::NoEndOfStack { why } => write!(f, "no end of stack after the last frame: {why}"),
        }
    }
}

/// Words describing how a walk ended.
pub fn describe_end(end: End) -> String {
    match end {
        End::EndOfStack => "end of stack".to_string(),
        End::UserMode => "user-mode registers".to_string(),
        End::Error(e) => e.to_string(),
        End::NotText => "return address outside every mapping of code".to_string(),
        End::FrameLimit => "frame limit".to_string(),
        End::BufferFull => "more frames".to_string(),
    }
}

/// Unwinds from `state` (the thread's registers) and compares with `expected`, stopping at
/// the first difference. `got` receives the frames ORC gave (up to one past the difference).
pub fn compare<L: OrcLookup, M: Memory>(
    unwinder: &Unwinder<'_, L>,
    mut state: UnwindState,
    mem: &mut M,
    expected: &[ChainFrame],
    got: &mut Vec<ChainFrame>,
) -> (Result<(), Mismatch>, End) {
    got.clear();
    let mut wrong = None;
    let trace = unwinder.walk_with(&mut state, mem, |f| {
        let k = got.len();
        let frame = ChainFrame { ip: f.ip, exact: f.signal };
        got.push(frame);
        match expected.get(k) {
            Some(e) if *e == frame => true,
            Some(_) => {
                wrong = Some(k);
                false
            }
            None => false,
        }
    });
    let ended = if trace.end == End::EndOfStack { Ok(()) } else { Err(describe_end(trace.end)) };
    (judge(wrong, got.len(), expected.len(), ended), trace.end)
}

/// The verdict of a walk against the expected chain: the first wrong frame (`wrong`), the
/// frames found and expected, and whether the walk ended at the end of the stack (else why it
/// stopped).
pub fn judge(wrong: Option<usize>, got: usize, expected: usize, ended: Result<(), String>) -> Result<(), Mismatch> {
    if let Some(depth) = wrong {
        Err(Mismatch::WrongFrame { depth })
    } else if got > expected {
        Err(Mismatch::NoEndOfStack { why: "more frames".to_string() })
    } else if got < expected {
        Err(Mismatch::StoppedEarly { depth: got, why: ended.err().unwrap_or_default() })
    } else {
        ended.map_err(|why| Mismatch::NoEndOfStack { why })
    }
}

/// The whole ORC chain from `state`, at most `limit` frames, for a report.
pub fn full_chain<L: OrcLookup, M: Memory>(
    unwinder: &Unwinder<'_, L>,
    mut state: UnwindState,
    mem: &mut M,
    limit: usize,
) -> (Vec<ChainFrame>, End) {
    let mut out = Vec::new();
    let trace = unwinder.walk_with(&mut state, mem, |f| {
        out.push(ChainFrame { ip: f.ip, exact: f.signal });
        out.len() < limit
    });
    (out, trace.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orc_format::{Entry, Layout};
    use orc_unwind::{Config, OrcTable, StackSnapshot};

    /// f at 0x1000 (frame 16: one push), called from main at 0x2000 (bottom of the stack).
    fn check(expected: &[(u64, bool)], end_of_stack_in_main: bool) -> Result<(), Mismatch> {
        let layout = Layout::V3;
        let ips = [0x1000, 0x1100, 0x2000, 0x2100];
        let main = if end_of_stack_in_main { Entry::END_OF_STACK } else { Entry::call(8) };
        let entries = [
            layout.encode(Entry::call(16)).unwrap(),
            layout.encode(Entry::UNDEFINED).unwrap(),
            layout.encode(main).unwrap(),
            layout.encode(Entry::UNDEFINED).unwrap(),
        ];
        let table = OrcTable::new(&ips, &entries, layout, 0x1000..0x2100);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xdead_u64.to_le_bytes());
        bytes.extend_from_slice(&0x2010_u64.to_le_bytes());
        bytes.extend_from_slice(&0_u64.to_le_bytes());
        let mut stack = StackSnapshot::new(0x7000, &bytes);
        let stacks = [stack.range()];
        let unwinder = Unwinder::new(&table, &stacks).with_config(Config::user_space());
        let expected: Vec<ChainFrame> = expected.iter().map(|&(ip, exact)| ChainFrame { ip, exact }).collect();
        let mut got = Vec::new();
        compare(&unwinder, unwinder.start(0x1040, 0x7000, 0, true), &mut stack, &expected, &mut got).0
    }

    #[test]
    fn agreement_needs_the_same_frames_and_the_end_of_stack() {
        assert_eq!(check(&[(0x1040, true), (0x2010, false)], true), Ok(()));
        assert_eq!(check(&[(0x1040, true), (0x2011, false)], true), Err(Mismatch::WrongFrame { depth: 1 }));
        // The return address must not be taken for an exact ip.
        assert_eq!(check(&[(0x1040, true), (0x2010, true)], true), Err(Mismatch::WrongFrame { depth: 1 }));
        assert!(matches!(check(&[(0x1040, true)], true), Err(Mismatch::NoEndOfStack { .. })));
        assert!(matches!(
            check(&[(0x1040, true), (0x2010, false), (0x3000, false)], true),
            Err(Mismatch::StoppedEarly { depth: 2, .. })
        ));
        // main's entry is not END_OF_STACK: the walk goes on (and fails reading past the stack).
        assert!(matches!(check(&[(0x1040, true), (0x2010, false)], false), Err(Mismatch::NoEndOfStack { .. })));
    }
}
