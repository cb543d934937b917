//! `__jump_table`: static keys (jump labels). Each entry says: the instruction at `code` (a
//! 2- or 5-byte NOP or JMP) is switched at run time between falling through and jumping to
//! `target`, by the static key `key`.
//!
//! | era | size | layout |
//! |---|---|---|
//! | before 4.20 | 24 | u64 code @0, u64 target @8, u64 key @16 (absolute; `R_X86_64_64`) |
//! | 4.20+ | 16 | s32 code @0, s32 target @4, s64 key @8 (self-relative; PC32, PC32, PC64) |
//!
//! The key field is `key + flags - .`: the low bits of the addend are flags, not part of the
//! key's address. Bit 0 is the branch direction (`JUMP_TYPE_TRUE`: the code is a `jmp` when
//! the key is off). Bit 1 at build time is objtool's `--hacks=jump_label` request: the
//! compiler emitted a `jmp` (`CONFIG_HAVE_JUMP_LABEL_HACK`) and objtool must turn it into a
//! NOP. objtool keeps the addend in a `u8` (`key_addend`) and tests `& 2`.

use orc_elf::ElfFile;

use crate::era::KernelEra;
use crate::error::SpecialSectionError;
use crate::special::reloc::{remove_extable_bias, Field, Location, RelocTarget, Table};

/// The flag bits of the key field (`JUMP_TYPE_TRUE`, `JUMP_TYPE_LINKED`): static keys are
/// aligned, and the kernel keeps these in the low bits of the pointer.
const KEY_FLAGS: u64 = 3;

/// The section name.
pub const SECTION: &str = "__jump_table";

/// The layout of one `__jump_table` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JumpLayout {
    /// Before 4.20: three absolute 64-bit words.
    Absolute24,
    /// 4.20+: two self-relative 32-bit words and a self-relative 64-bit key.
    Relative16,
}

impl JumpLayout {
    /// Bytes per entry (objtool's `JUMP_ENTRY_SIZE`).
    pub const fn entry_size(self) -> usize {
        match self {
            JumpLayout::Absolute24 => 24,
            JumpLayout::Relative16 => 16,
        }
    }

    /// Offsets of the code, target and key fields.
    pub const fn offsets(self) -> (usize, usize, usize) {
        match self {
            JumpLayout::Absolute24 => (0, 8, 16),
            JumpLayout::Relative16 => (0, 4, 8),
        }
    }

    /// The kernels that use it.
    pub const fn kernels(self) -> &'static str {
        match self {
            JumpLayout::Absolute24 => "before 4.20",
            JumpLayout::Relative16 => "4.20+",
        }
    }

    /// The layouts a section of `size` bytes with relocations at `reloc_offsets` (sorted) can
    /// have: whole entries, each with relocations at exactly its three field offsets. A table
    /// of 48 bytes with relocations at 0, 4, 8, 16, 20, 24, 32, 36, 40 is three 16-byte
    /// entries, not two 24-byte ones.
    pub fn candidates(size: usize, reloc_offsets: &[u64]) -> Vec<JumpLayout> {
        [JumpLayout::Relative16, JumpLayout::Absolute24]
            .into_iter()
            .filter(|l| {
                let n = l.entry_size();
                let (a, b, c) = l.offsets();
                let expected: Vec<u64> =
                    (0..size / n).flat_map(|i| [i * n + a, i * n + b, i * n + c]).map(|o| o as u64).collect();
                size % n == 0 && expected == reloc_offsets
            })
            .collect()
    }
}

/// One `__jump_table` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JumpEntry<'data> {
    /// Entry index.
    pub index: usize,
    /// The patched instruction (objtool's `orig`).
    pub code: Location,
    /// The jump target (objtool's `new`).
    pub target: Location,
    /// True if objtool's `_ASM_EXTABLE_EX` bias was removed from `target` (never in practice).
    pub target_biased: bool,
    /// The key: usually a global (often undefined) `struct static_key`; for a key local to the
    /// object, a section symbol whose addend is the key's offset plus the flag bits.
    pub key: RelocTarget<'data>,
}

impl JumpEntry<'_> {
    /// The key relocation's addend: the flag bits (plus the key's offset for a section-symbol
    /// key; static keys are at least 8-aligned, so the low bits are flags either way).
    pub const fn key_addend(&self) -> i64 {
        self.key.addend
    }

    /// Bit 0: the branch direction (`static_branch_likely()` sites).
    pub const fn branch(&self) -> bool {
        self.key.addend & 1 != 0
    }

    /// Bit 1 of objtool's `u8 key_addend`: under `--hacks=jump_label` objtool rewrites the
    /// `jmp` at `code` into a NOP of the same length.
    pub const fn objtool_nops_jump(&self) -> bool {
        (self.key.addend as u8) & 2 != 0
    }
}

/// Reads `__jump_table` with `layout`; an empty list if the file has none. Fails like
/// objtool when the size is not a whole number of entries or an entry lacks any of its three
/// relocations; also when code or target is not defined in the file.
pub fn read_jump_table<'data>(
    file: &ElfFile<'data>,
    layout: JumpLayout,
) -> Result<Vec<JumpEntry<'data>>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    let size = layout.entry_size();
    let count = match table.entries(size) {
        Ok(n) => n,
        Err(e) => {
            let offsets: Vec<u64> = table.by_offset.keys().copied().collect();
            return Err(match JumpLayout::candidates(table.section.data.len(), &offsets).as_slice() {
                [other] => table.wrong_era(size, layout.kernels(), other.entry_size(), other.kernels()),
                _ => e,
            });
        }
    };
    table.require_relocations()?;
    let (code_at, target_at, key_at) = layout.offsets();
    // In a linked file the fields are resolved: relative in the 16-byte layout, absolute
    // in the old one; the key's two low bits are the flags either way.
    let encoding = match layout {
        JumpLayout::Relative16 => Field::Relative32,
        JumpLayout::Absolute24 => Field::Absolute64,
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * size;
        let code = table.field_location_as(i, base + code_at, "code", encoding)?;
        let (target, target_biased) =
            remove_extable_bias(table.field_location_as(i, base + target_at, "target", encoding)?);
        let key = table.field_target_with_flags(i, base + key_at, "key", encoding, KEY_FLAGS)?;
        out.push(JumpEntry { index: i, code, target, target_biased, key });
    }
    Ok(out)
}

/// Reads `__jump_table` with the layout of `era`.
pub fn read_jump_table_for<'data>(
    file: &ElfFile<'data>,
    era: KernelEra,
) -> Result<Vec<JumpEntry<'data>>, SpecialSectionError> {
    read_jump_table(file, era.jump_layout())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_candidates() {
        let rel = [0, 4, 8, 16, 20, 24, 32, 36, 40];
        assert_eq!(JumpLayout::candidates(48, &rel), [JumpLayout::Relative16]);
        assert_eq!(JumpLayout::candidates(48, &[0, 8, 16, 24, 32, 40]), [JumpLayout::Absolute24]);
        assert!(JumpLayout::candidates(48, &[0, 4]).is_empty());
        assert!(JumpLayout::candidates(0, &[]).len() == 2);
    }
}
