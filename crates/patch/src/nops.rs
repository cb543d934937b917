//! The kernel's NOPs, and how each kernel era pads and tidies patched bytes.
//!
//! Facts read in Debian's sources (`arch/x86/include/asm/nops.h`, `arch/x86/kernel/alternative.c`
//! of 6.1.192 and 6.12.117); the code here is written from those facts, not copied.
//!
//! | | 6.1 | 6.12 |
//! |---|---|---|
//! | longest NOP (`ASM_NOP_MAX`) | 8 bytes | 11 bytes (`cs` and `osp` prefixes on the 8-byte NOP) |
//! | filling *n* bytes | `add_nops()`: as many 8-byte NOPs as fit, then one NOP of the rest | `add_nop()`: one NOP if *n* <= 11; else `jmp` over the rest (`eb` if *n* < 128, else `e9`), the skipped bytes `int3` |
//! | `optimize_nops()` | runs of single-byte `0x90` (two or more) are refilled with `add_nops()` | every run of NOP instructions (`0x90` unless the first prefix is `f3`, and `0f 1f`) is refilled with one `add_nop()`, except a single NOP that already ends the site |
//! | where it runs | on every alternative site after its entry is handled, patched or not | on the original bytes of a site left alone, and on a replacement after its relocations |

use orc_decode::decode_one;

/// The kernel's NOP of each length 1-11 (`x86_nops[len]`; 6.1 has only 1-8).
pub const NOPS: [&[u8]; 12] = [
    &[],
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// `int3`, the filler the kernel puts after a padding `jmp`.
pub const INT3: u8 = 0xcc;

/// How one kernel era pads and tidies NOPs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NopRules {
    /// 6.1 (and the 5.x kernels since `optimize_nops_range()`): NOPs of at most 8 bytes, long
    /// runs become several NOPs.
    Chunks8,
    /// 6.12 (since "x86/alternative: Rewrite optimize_nops() some", 6.5/6.6): NOPs of at most
    /// 11 bytes, longer runs become a `jmp` over `int3`s.
    OneNopOrJump,
}

impl NopRules {
    /// Longest single NOP.
    pub const fn max_nop(self) -> usize {
        match self {
            NopRules::Chunks8 => 8,
            NopRules::OneNopOrJump => 11,
        }
    }

    /// Fills `buf` the way the era's padding helper does (`add_nops()` / `add_nop()`).
    pub fn fill(self, buf: &mut [u8]) {
        let len = buf.len();
        match self {
            NopRules::Chunks8 => {
                let mut at = 0;
                while at < len {
                    let n = (len - at).min(8);
                    buf[at..at + n].copy_from_slice(NOPS[n]);
                    at += n;
                }
            }
            NopRules::OneNopOrJump => {
                if len == 0 {
                    return;
                }
                if len <= 11 {
                    buf.copy_from_slice(NOPS[len]);
                    return;
                }
                let jump_len = if len < 128 {
                    buf[0] = 0xeb;
                    buf[1] = (len - 2) as u8;
                    2
                } else {
                    buf[0] = 0xe9;
                    buf[1..5].copy_from_slice(&((len - 5) as u32).to_le_bytes());
                    5
                };
                buf[jump_len..].fill(INT3);
            }
        }
    }

    /// The era's `optimize_nops()` over a whole site.
    pub fn optimize(self, buf: &mut [u8]) {
        match self {
            NopRules::Chunks8 => optimize_single_byte_runs(buf),
            NopRules::OneNopOrJump => optimize_nop_runs(buf),
        }
    }
}

/// Length of the instruction at the start of `bytes`, if it decodes inside them.
fn insn_len(bytes: &[u8]) -> Option<usize> {
    let insn = decode_one(bytes, 0, true).ok()?;
    let len = usize::from(insn.len);
    (len > 0 && len <= bytes.len()).then_some(len)
}

/// 6.1: walk the instructions; at a one-byte `0x90`, count the `0x90` bytes that follow and,
/// if there are two or more, refill them with [`NopRules::Chunks8`].
fn optimize_single_byte_runs(buf: &mut [u8]) {
    let len = buf.len();
    let mut i = 0;
    while i < len {
        let Some(n) = insn_len(&buf[i..]) else { return };
        if n == 1 && buf[i] == 0x90 {
            let run = buf[i..].iter().take_while(|&&b| b == 0x90).count();
            if run > 1 {
                NopRules::Chunks8.fill(&mut buf[i..i + run]);
            }
            i += run;
        } else {
            i += n;
        }
    }
}

/// The kernel's `insn_is_nop()` of 6.12: opcode `0x90` unless the first legacy prefix is
/// `f3` (`pause`), or the two-byte opcode `0f 1f` (NOPL). REX prefixes are not legacy prefixes
/// (so `41 90`, `xchg %eax,%r8d`, counts as a NOP, as it does for the kernel).
pub fn is_kernel_nop(bytes: &[u8]) -> bool {
    let mut at = 0;
    let mut first_prefix = None;
    while let Some(&b) = bytes.get(at) {
        if matches!(b, 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x36 | 0x3e | 0x26 | 0x64 | 0x65 | 0x66 | 0x67) {
            first_prefix.get_or_insert(b);
            at += 1;
        } else {
            break;
        }
    }
    if matches!(bytes.get(at), Some(0x40..=0x4f)) {
        at += 1;
    }
    match bytes.get(at) {
        Some(0x90) => first_prefix != Some(0xf3),
        Some(0x0f) => bytes.get(at + 1) == Some(&0x1f),
        _ => false,
    }
}

/// 6.12: walk the instructions; at a NOP, unless it is a single NOP ending the site, find the
/// end of the run of NOP instructions and refill the run with [`NopRules::OneNopOrJump`].
fn optimize_nop_runs(buf: &mut [u8]) {
    let len = buf.len();
    let mut i = 0;
    while i < len {
        let Some(n) = insn_len(&buf[i..]) else { return };
        let mut next = i + n;
        if is_kernel_nop(&buf[i..]) {
            if next == len {
                return;
            }
            while next < len {
                match insn_len(&buf[next..]) {
                    Some(m) if is_kernel_nop(&buf[next..]) => next += m,
                    _ => break,
                }
            }
            NopRules::OneNopOrJump.fill(&mut buf[i..next]);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nop_decodes_to_its_length() {
        for (n, nop) in NOPS.iter().enumerate().skip(1) {
            assert_eq!(insn_len(nop), Some(n), "NOP{n}");
            assert!(is_kernel_nop(nop), "NOP{n}");
        }
        assert!(!is_kernel_nop(&[0xf3, 0x90]), "pause");
        assert!(is_kernel_nop(&[0x41, 0x90]));
    }

    #[test]
    fn fills() {
        let mut b = [0u8; 13];
        NopRules::Chunks8.fill(&mut b);
        assert_eq!(&b[..8], NOPS[8]);
        assert_eq!(&b[8..], NOPS[5]);
        NopRules::OneNopOrJump.fill(&mut b);
        assert_eq!(b, [0xeb, 11, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc]);
        let mut b = [0u8; 200];
        NopRules::OneNopOrJump.fill(&mut b);
        assert_eq!(&b[..5], [0xe9, 195, 0, 0, 0]);
        assert!(b[5..].iter().all(|&x| x == INT3));
    }

    #[test]
    fn optimize_6_12() {
        // pushf; pop %rax; five one-byte NOPs: one NOP5.
        let mut b = [0x9c, 0x58, 0x90, 0x90, 0x90, 0x90, 0x90];
        NopRules::OneNopOrJump.optimize(&mut b);
        assert_eq!(b, [0x9c, 0x58, 0x0f, 0x1f, 0x44, 0x00, 0x00]);
        // A single trailing NOP is left alone.
        let mut b = [0xe8, 0, 0, 0, 0, 0x90];
        NopRules::OneNopOrJump.optimize(&mut b);
        assert_eq!(b, [0xe8, 0, 0, 0, 0, 0x90]);
        // NOPs in the middle are merged up to the next real instruction.
        let mut b = [0x90, 0x66, 0x90, 0x58];
        NopRules::OneNopOrJump.optimize(&mut b);
        assert_eq!(b, [0x0f, 0x1f, 0x00, 0x58]);
    }

    #[test]
    fn optimize_6_1() {
        let mut b = [0x9c, 0x58, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90];
        NopRules::Chunks8.optimize(&mut b);
        assert_eq!(&b[2..], [0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0, 0x66, 0x90]);
        // Multi-byte NOPs are not touched.
        let mut b = [0x66, 0x90, 0x90];
        NopRules::Chunks8.optimize(&mut b);
        assert_eq!(b, [0x66, 0x90, 0x90]);
    }
}
