//! What the tracer needs to know of the instruction about to execute: its length and whether
//! it is a call or a system call, decoded once per address.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use orc_decode::{decode_one, InsnKind};

/// The classes of instructions the shadow stack cares about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Class {
    /// `call rel32`, `call *r/m`: pushes a return address.
    Call,
    /// `syscall` (`0f 05`): not a call; the tracer looks at the mapping-changing ones.
    Syscall,
    /// Anything else (including bytes that do not decode: the step will fault).
    Other,
}

/// A decoded instruction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Insn {
    /// Length in bytes (0 when the bytes did not decode).
    pub len: u8,
    /// Its class.
    pub class: Class,
}

/// Classifies the instruction at the start of `bytes`.
pub fn classify(bytes: &[u8]) -> Insn {
    match decode_one(bytes, 0, true) {
        Ok(insn) => {
            let class = match insn.kind {
                InsnKind::Call | InsnKind::CallDynamic => Class::Call,
                InsnKind::ContextSwitch if bytes.get(..2) == Some(&[0x0f, 0x05]) => Class::Syscall,
                _ => Class::Other,
            };
            Insn { len: insn.len, class }
        }
        Err(_) => Insn { len: 0, class: Class::Other },
    }
}

/// Addresses are already well spread; hashing them again would only cost time.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        // A multiplicative mix so that the low bits (which the table uses) depend on all bits.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by address.
pub type AddrMap<V> = HashMap<u64, V, BuildHasherDefault<AddrHasher>>;

/// Decoded instructions by address.
#[derive(Default)]
pub struct DecodeCache {
    map: AddrMap<Insn>,
    /// Instructions decoded (cache misses).
    pub decoded: u64,
}

impl DecodeCache {
    /// The instruction at `ip`, decoding it from `read(ip, buf)` (which returns the bytes it
    /// could read) on a miss.
    #[inline]
    pub fn get(&mut self, ip: u64, read: impl FnOnce(u64, &mut [u8]) -> usize) -> Insn {
        if let Some(&insn) = self.map.get(&ip) {
            return insn;
        }
        let mut bytes = [0u8; 16];
        let n = read(ip, &mut bytes);
        let insn = classify(&bytes[..n]);
        self.decoded += 1;
        // Bytes that did not decode are not cached: the page may not have been readable yet.
        if insn.len != 0 {
            self.map.insert(ip, insn);
        }
        insn
    }

    /// Forgets the instructions in `[start, end)` (code unmapped or remapped there).
    pub fn forget(&mut self, start: u64, end: u64) {
        self.map.retain(|&ip, _| ip < start || ip >= end);
    }

    /// Forgets everything (exec).
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        // call rel32
        assert_eq!(classify(&[0xe8, 0, 0, 0, 0]), Insn { len: 5, class: Class::Call });
        // call *%rax
        assert_eq!(classify(&[0xff, 0xd0]), Insn { len: 2, class: Class::Call });
        // call *0x10(%rip)
        assert_eq!(classify(&[0xff, 0x15, 0x10, 0, 0, 0]), Insn { len: 6, class: Class::Call });
        // syscall is not a call
        assert_eq!(classify(&[0x0f, 0x05]), Insn { len: 2, class: Class::Syscall });
        // jmp *%rax, ret, push %rbp
        assert_eq!(classify(&[0xff, 0xe0]).class, Class::Other);
        assert_eq!(classify(&[0xc3]), Insn { len: 1, class: Class::Other });
        assert_eq!(classify(&[0x55]), Insn { len: 1, class: Class::Other });
        // nothing readable
        assert_eq!(classify(&[]).len, 0);
    }

    #[test]
    fn cache_reads_once() {
        let mut cache = DecodeCache::default();
        let mut reads = 0;
        for _ in 0..3 {
            let insn = cache.get(0x1000, |_, buf| {
                reads += 1;
                buf[..5].copy_from_slice(&[0xe8, 1, 2, 3, 4]);
                5
            });
            assert_eq!(insn.class, Class::Call);
        }
        assert_eq!(reads, 1);
        cache.forget(0x1000, 0x1001);
        cache.get(0x1000, |_, _| {
            reads += 1;
            0
        });
        assert_eq!(reads, 2);
    }
}
