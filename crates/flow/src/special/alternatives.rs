//! `.altinstructions`: the kernel's `ALTERNATIVE()` sites, patched at boot by CPU feature.
//!
//! Each entry describes one replacement for one original site. The original instructions are
//! in a text section, the replacement in `.altinstr_replacement`. Both are self-relative 32-bit
//! fields (`.long 661b - .`), so in a relocatable object each carries a PC32 relocation whose
//! addend is the target's offset from the section symbol.
//!
//! | era | size | layout |
//! |---|---|---|
//! | before 5.13 | 13 | s32 orig @0, s32 repl @4, u16 cpuid @8, u8 orig_len @10, u8 repl_len @11, u8 padlen @12 |
//! | 5.13–6.2 | 12 | s32 orig @0, s32 repl @4, u16 cpuid @8 (bit 15: `ALT_NOT`), u8 orig_len @10, u8 repl_len @11 |
//! | 6.3+ | 14 | s32 orig @0, s32 repl @4, u32 ft_flags @8 (cpuid: low 16 bits; flags: high 16), u8 orig_len @12, u8 repl_len @13 |
//!
//! objtool reads the feature as the `u16` at offset 8 in every era, so in 5.13–6.2 its number
//! includes the `ALT_NOT` bit ([`AltInstr::feature`]).

use crate::era::KernelEra;
use crate::error::SpecialSectionError;
use crate::special::cpufeatures;
use crate::special::reloc::{remove_extable_bias, Location, Table};
use orc_elf::ElfFile;

/// The section name.
pub const SECTION: &str = ".altinstructions";

/// The layout of one `.altinstructions` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AltLayout {
    /// Before 5.13: 13 bytes, ending with `padlen`.
    Padlen13,
    /// 5.13–6.2: 12 bytes; bit 15 of the `u16` cpuid is `ALT_NOT` (`ALTINSTR_FLAG_INV`).
    Cpuid12,
    /// 6.3+: 14 bytes; a `u32 ft_flags` whose high half holds `ALT_FLAG_*`.
    FtFlags14,
}

impl AltLayout {
    /// Every layout, newest first.
    pub const ALL: [AltLayout; 3] = [AltLayout::FtFlags14, AltLayout::Cpuid12, AltLayout::Padlen13];

    /// Bytes per entry (objtool's `ALT_ENTRY_SIZE`).
    pub const fn entry_size(self) -> usize {
        match self {
            AltLayout::Padlen13 => 13,
            AltLayout::Cpuid12 => 12,
            AltLayout::FtFlags14 => 14,
        }
    }

    /// Offset of `instrlen` (objtool's `ALT_ORIG_LEN_OFFSET`).
    pub const fn orig_len_offset(self) -> usize {
        match self {
            AltLayout::Padlen13 | AltLayout::Cpuid12 => 10,
            AltLayout::FtFlags14 => 12,
        }
    }

    /// Offset of `replacementlen` (objtool's `ALT_NEW_LEN_OFFSET`).
    pub const fn repl_len_offset(self) -> usize {
        self.orig_len_offset() + 1
    }

    /// The kernels that use it.
    pub const fn kernels(self) -> &'static str {
        match self {
            AltLayout::Padlen13 => "4.14-5.12",
            AltLayout::Cpuid12 => "5.13-6.2",
            AltLayout::FtFlags14 => "6.3+",
        }
    }

    /// The layouts a section of `size` bytes whose relocations apply at `reloc_offsets` can
    /// have: each entry has a relocation at +0 and relocations only at +0 and +4. Exactly one
    /// for every real table with at least two entries; several (or none) for tiny or broken
    /// ones.
    pub fn candidates(size: usize, reloc_offsets: &[u64]) -> Vec<AltLayout> {
        AltLayout::ALL
            .into_iter()
            .filter(|l| {
                let n = l.entry_size() as u64;
                size % l.entry_size() == 0
                    && reloc_offsets.iter().all(|&o| o % n == 0 || o % n == 4)
                    && (0..size as u64 / n).all(|i| reloc_offsets.binary_search(&(i * n)).is_ok())
            })
            .collect()
    }
}

/// `ALT_FLAG_*`, in the 6.3+ bit positions (the high half of `ft_flags`). For the 12-byte
/// layout, `ALT_NOT` (bit 15 of the cpuid) is reported as [`AltFlags::NOT`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct AltFlags(pub u16);

impl AltFlags {
    /// `ALT_FLAG_NOT`: patch when the feature is *absent*.
    pub const NOT: u16 = 1 << 0;
    /// `ALT_FLAG_DIRECT_CALL` (6.8+): the site is `call *ptr(%rip)`, patched to a direct call
    /// to the pointer's value at boot; the replacement is `call BUG_func`.
    pub const DIRECT_CALL: u16 = 1 << 1;

    /// `ALT_FLAG_NOT` is set.
    pub const fn not(self) -> bool {
        self.0 & Self::NOT != 0
    }

    /// `ALT_FLAG_DIRECT_CALL` is set.
    pub const fn direct_call(self) -> bool {
        self.0 & Self::DIRECT_CALL != 0
    }
}

/// The features objtool's x86 `arch_handle_alternative()` treats specially. It matches the
/// raw `u16` it reads ([`AltInstr::feature`]), so an `ALT_NOT(X86_FEATURE_SMAP)` of 5.13–6.2
/// (0x8000 | 308) does not match.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SpecialFeature {
    /// `X86_FEATURE_POPCNT` (4*32+23 = 151): the original (no-POPCNT) path is not validated.
    Popcnt,
    /// `X86_FEATURE_SMAP` (9*32+20 = 308): with `--uaccess` only the replacement (STAC/CLAC)
    /// is followed, without it only the original.
    Smap,
}

/// Which side of an alternative objtool follows.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct AltPolicy {
    /// Do not follow the original instructions after following this alternative.
    pub skip_orig: bool,
    /// Do not follow this alternative.
    pub skip_alt: bool,
}

/// One `.altinstructions` entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AltInstr {
    /// Entry index.
    pub index: usize,
    /// The original instructions.
    pub orig: Location,
    /// The replacement (in `.altinstr_replacement`), `None` when `repl_len` is 0: objtool does
    /// not look at that field then, and the alternative means "patch to NOPs".
    pub replacement: Option<Location>,
    /// True if objtool's `_ASM_EXTABLE_EX` bias (0x7ffffff0) was removed from `replacement`.
    pub replacement_biased: bool,
    /// The `u16` at offset 8, as objtool reads it: the feature number, plus bit 15 (`ALT_NOT`)
    /// in 5.13–6.2.
    pub feature: u16,
    /// The CPU feature number proper (`X86_FEATURE_*`, word*32+bit; `X86_BUG_*` numbers
    /// follow the 22 feature words).
    pub cpuid: u16,
    /// Patching flags.
    pub flags: AltFlags,
    /// `instrlen`: length of the original site (padding included).
    pub orig_len: u8,
    /// `replacementlen`.
    pub repl_len: u8,
    /// `padlen` (13-byte layout only).
    pub padlen: Option<u8>,
    /// objtool's `orig_len` for this entry: nested `ALTERNATIVE()`s emit one entry per level
    /// for the same site, the inner ones with shorter lengths, and objtool gives every entry
    /// of a run of consecutive entries with the same `orig` the longest length of the run.
    pub group_orig_len: u8,
}

impl AltInstr {
    /// The feature objtool special-cases, if any.
    pub const fn special_feature(&self) -> Option<SpecialFeature> {
        match self.feature {
            cpufeatures::X86_FEATURE_POPCNT => Some(SpecialFeature::Popcnt),
            cpufeatures::X86_FEATURE_SMAP => Some(SpecialFeature::Smap),
            _ => None,
        }
    }

    /// What objtool follows for this entry, given `--uaccess`.
    pub const fn objtool_policy(&self, uaccess: bool) -> AltPolicy {
        match self.special_feature() {
            Some(SpecialFeature::Popcnt) => AltPolicy { skip_orig: true, skip_alt: false },
            Some(SpecialFeature::Smap) if uaccess => AltPolicy { skip_orig: true, skip_alt: false },
            Some(SpecialFeature::Smap) => AltPolicy { skip_orig: false, skip_alt: true },
            None => AltPolicy { skip_orig: false, skip_alt: false },
        }
    }
}

/// Reads `.altinstructions` with `layout`; an empty list if the file has none.
///
/// Fails like objtool on a size that is not a whole number of entries or a missing `orig`
/// relocation (and `new` relocation when `repl_len` is not 0); also on a relocation to an
/// undefined symbol. If the size does not fit `layout` but exactly one other layout fits the
/// section, the error says so (a wrong era is the likely cause).
pub fn read_alternatives(file: &ElfFile<'_>, layout: AltLayout) -> Result<Vec<AltInstr>, SpecialSectionError> {
    let Some(table) = Table::open(file, SECTION)? else {
        return Ok(Vec::new());
    };
    let size = layout.entry_size();
    let count = match table.entries(size) {
        Ok(n) => n,
        Err(e) => {
            let offsets: Vec<u64> = table.by_offset.keys().copied().collect();
            let fits = AltLayout::candidates(table.section.data.len(), &offsets);
            return Err(match fits.as_slice() {
                [other] => table.wrong_era(size, layout.kernels(), other.entry_size(), other.kernels()),
                _ => e,
            });
        }
    };
    table.require_relocations()?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let base = i * size;
        let orig_len = table.u8_at(base + layout.orig_len_offset());
        let repl_len = table.u8_at(base + layout.repl_len_offset());
        let orig = table.field_location(i, base, "orig")?;
        let (feature, cpuid, flags) = match layout {
            AltLayout::FtFlags14 => {
                let word = table.u32_at(base + 8);
                (word as u16, word as u16, AltFlags((word >> 16) as u16))
            }
            AltLayout::Cpuid12 => {
                let f = table.u16_at(base + 8);
                (f, f & 0x7fff, AltFlags(if f & 0x8000 != 0 { AltFlags::NOT } else { 0 }))
            }
            AltLayout::Padlen13 => {
                let f = table.u16_at(base + 8);
                (f, f, AltFlags(0))
            }
        };
        let (replacement, replacement_biased) = if repl_len != 0 {
            let (loc, biased) = remove_extable_bias(table.field_location(i, base + 4, "new")?);
            (Some(loc), biased)
        } else {
            (None, false)
        };
        let padlen = match layout {
            AltLayout::Padlen13 => Some(table.u8_at(base + 12)),
            _ => None,
        };
        out.push(AltInstr {
            index: i,
            orig,
            replacement,
            replacement_biased,
            feature,
            cpuid,
            flags,
            orig_len,
            repl_len,
            padlen,
            group_orig_len: orig_len,
        });
    }
    set_group_orig_len(&mut out);
    Ok(out)
}

/// objtool's "recompute orig_len for nested ALTERNATIVE()s": runs of consecutive entries with
/// the same `orig` share the longest `orig_len` of the run.
fn set_group_orig_len(alts: &mut [AltInstr]) {
    let mut start = 0;
    while start < alts.len() {
        let mut end = start + 1;
        while end < alts.len() && alts[end].orig == alts[start].orig {
            end += 1;
        }
        let longest = alts[start..end].iter().map(|a| a.orig_len).max().unwrap_or(0);
        for a in &mut alts[start..end] {
            a.group_orig_len = longest;
        }
        start = end;
    }
}

/// Reads `.altinstructions` with the layout of `era`.
pub fn read_alternatives_for(file: &ElfFile<'_>, era: KernelEra) -> Result<Vec<AltInstr>, SpecialSectionError> {
    read_alternatives(file, era.alt_layout())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_candidates() {
        // Two 14-byte entries with relocations at 0, 4, 14, 18.
        assert_eq!(AltLayout::candidates(28, &[0, 4, 14, 18]), [AltLayout::FtFlags14]);
        // Two 12-byte entries.
        assert_eq!(AltLayout::candidates(24, &[0, 4, 12, 16]), [AltLayout::Cpuid12]);
        // 13 * 12 = 156 = 12 * 13: only the relocations decide.
        let offs13: Vec<u64> = (0..12u64).flat_map(|i| [i * 13, i * 13 + 4]).collect();
        assert_eq!(AltLayout::candidates(156, &offs13), [AltLayout::Padlen13]);
        // 84 = 6 * 14 = 7 * 12 with relocations that only fit 14.
        let offs14: Vec<u64> = (0..6u64).flat_map(|i| [i * 14, i * 14 + 4]).collect();
        assert_eq!(AltLayout::candidates(84, &offs14), [AltLayout::FtFlags14]);
        assert!(AltLayout::candidates(5, &[0]).is_empty());
    }

    #[test]
    fn group_lengths_cover_runs_only() {
        let alt = |index, section, offset, orig_len| AltInstr {
            index,
            orig: Location::new(section, offset),
            replacement: None,
            replacement_biased: false,
            feature: 0,
            cpuid: 0,
            flags: AltFlags(0),
            orig_len,
            repl_len: 0,
            padlen: None,
            group_orig_len: orig_len,
        };
        let mut alts = [alt(0, 1, 0, 5), alt(1, 1, 0, 10), alt(2, 1, 0, 7), alt(3, 1, 20, 3), alt(4, 1, 0, 2)];
        set_group_orig_len(&mut alts);
        let lens: Vec<u8> = alts.iter().map(|a| a.group_orig_len).collect();
        assert_eq!(lens, [10, 10, 10, 3, 2]);
    }

    #[test]
    fn policy() {
        let mut a = AltInstr {
            index: 0,
            orig: Location::new(1, 0),
            replacement: None,
            replacement_biased: false,
            feature: cpufeatures::X86_FEATURE_SMAP,
            cpuid: cpufeatures::X86_FEATURE_SMAP,
            flags: AltFlags(0),
            orig_len: 3,
            repl_len: 3,
            padlen: None,
            group_orig_len: 3,
        };
        assert_eq!(a.objtool_policy(true), AltPolicy { skip_orig: true, skip_alt: false });
        assert_eq!(a.objtool_policy(false), AltPolicy { skip_orig: false, skip_alt: true });
        a.feature = cpufeatures::X86_FEATURE_POPCNT;
        assert_eq!(a.objtool_policy(false), AltPolicy { skip_orig: true, skip_alt: false });
        a.feature = 0x8000 | cpufeatures::X86_FEATURE_SMAP;
        assert_eq!(a.special_feature(), None);
    }
}
