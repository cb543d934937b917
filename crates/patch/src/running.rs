//! The code a running kernel really has at a patch site (read from a crash dump of a linked
//! image), matched against the modelled choices.
//!
//! Bytes are compared as they are, except the displacements of branches, which are compared by
//! target: a branch copied out of `.altinstr_replacement` to a place outside the replacement
//! is re-aimed by the kernel (`apply_reloc()`), so its bytes differ from the copy's while its
//! target is the same; a jump the patcher writes (a jump label's `jmp`) goes to the table's
//! target; a direct call to a `pv_ops` function ([`Origin::Elsewhere`]) may go anywhere, and its
//! target is reported; a `jmp __x86_return_thunk` may run as `ret` (apply_returns()); RIP-relative operands are compared by target too (the kernel re-aims
//! those it copies). A `jmp rel32` may run as `jmp rel8` and `int3`s or a NOP (the kernel
//! shortens near jumps it relocates). KASLR moves the whole image, so displacements inside it are the
//! same at run time as at link time, except towards per-CPU variables, which it does not move.

use orc_flow::AddressMap;

use crate::choices::{Choice, Origin, Site};

/// A choice the running bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningChoice {
    /// Index in the site's choices.
    pub index: usize,
    /// For a direct call to a `pv_ops` function: its link-time address.
    pub call_target: Option<u64>,
}

/// What the kernel does to patched code besides the choices: where KASLR put it, and where
/// `__x86_return_thunk` is (its `jmp`s may have become `ret`s).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunningRules {
    /// How far the running image was moved from its link address.
    pub kaslr: u64,
    /// Link address of `__x86_return_thunk`, if the image has one.
    pub return_thunk: Option<u64>,
}

fn displacement(bytes: &[u8]) -> Option<i64> {
    match bytes.len() {
        1 => Some(i64::from(bytes[0] as i8)),
        4 => Some(i64::from(i32::from_le_bytes(bytes.try_into().ok()?))),
        _ => None,
    }
}

/// Whether `running` (the bytes at the site in the dead kernel) are `choice` as the kernel
/// writes it there; `Some(call target)` when they are. `map` is the linked image's; `kaslr`
/// how far the running image was moved (a RIP-relative reference to a per-CPU variable, which
/// KASLR does not move, changes by it).
pub fn matches(
    map: &AddressMap,
    site: &Site,
    choice: &Choice,
    running: &[u8],
    rules: &RunningRules,
) -> Option<Option<u64>> {
    let kaslr = rules.kaslr;
    if choice.problem.is_some() {
        return None;
    }
    let n = choice.bytes.len();
    let running = running.get(..n)?;
    let site_address = map.address(site.at);
    let mut by_target = vec![false; n];
    let mut call_target = None;
    let mut off = 0usize;
    while off < n {
        let Ok(insn) = orc_decode::decode_one(&choice.bytes[off..], off as u64, true) else { break };
        let end = off + usize::from(insn.len);
        // The field whose value is relative to the instruction's end: a branch displacement
        // or a RIP-relative operand; its target relative to the patched code's first byte.
        let field = match (insn.branch, insn.disp_field) {
            (Some(b), _) => Some((b.field, b.target as i64)),
            (None, Some(f)) if insn.rip_relative => displacement(
                choice.bytes.get(off + usize::from(f.offset)..off + usize::from(f.offset) + usize::from(f.size))?,
            )
            .map(|d| (f, end as i64 + d)),
            _ => None,
        };
        if let Some((f, literal)) = field {
            let at = off + usize::from(f.offset);
            let size = usize::from(f.size);
            if at + size > n {
                break;
            }
            let wanted = match choice.origins.get(at).copied() {
                Some(Origin::Replacement(_)) => match choice.replacement {
                    Some((start, len)) if !(0..=len as i64).contains(&literal) => {
                        map.address(start).wrapping_add(literal as u64)
                    }
                    _ => site_address.wrapping_add(literal as u64),
                },
                Some(Origin::Branch(loc)) => map.address(loc),
                Some(Origin::Elsewhere) => {
                    let disp = displacement(&running[at..at + size])?;
                    call_target = Some(site_address.wrapping_add(end as u64).wrapping_add(disp as u64));
                    by_target[at..at + size].fill(true);
                    off = end;
                    continue;
                }
                _ => site_address.wrapping_add(literal as u64),
            };
            let aims = |t: u64| t == wanted || (map.locate(wanted).is_none() && t == wanted.wrapping_sub(kaslr));
            let opcode_at = off + usize::from(f.offset) - 1;
            if choice.bytes[off] == 0xe9 && insn.len == 5 && Some(wanted) == rules.return_thunk && running[off] == 0xc3
            {
                // `jmp __x86_return_thunk` that the kernel made a plain `ret` + int3 padding
                // (apply_returns(), when the CPU needs no return thunk).
                if running[off + 1..end].iter().any(|&b| b != 0xcc) {
                    return None;
                }
                by_target[off..end].fill(true);
            } else if choice.bytes[off] == 0xe9 && insn.len == 5 && running[off] == 0xeb {
                // A `jmp rel32` the kernel shortened to `jmp rel8` + int3 padding when the
                // target is near (apply_relocation()).
                let t =
                    site_address.wrapping_add(off as u64 + 2).wrapping_add(i64::from(running[off + 1] as i8) as u64);
                // Padded with int3s (6.12) or with a NOP (6.1's recompute_jump()).
                let pad = &running[off + 2..end];
                if !aims(t) || !(pad.iter().all(|&b| b == 0xcc) || pad == crate::nops::NOPS[pad.len()]) {
                    return None;
                }
                by_target[off..end].fill(true);
            } else {
                let disp = displacement(&running[at..at + size])?;
                if running[opcode_at] != choice.bytes[opcode_at]
                    || !aims(site_address.wrapping_add(end as u64).wrapping_add(disp as u64))
                {
                    return None;
                }
                by_target[at..at + size].fill(true);
            }
        }
        off = end;
    }
    let same = (0..n).all(|i| by_target[i] || running[i] == choice.bytes[i]);
    same.then_some(call_target)
}

/// The first of `site`'s choices that the running bytes are.
pub fn running_choice(map: &AddressMap, site: &Site, running: &[u8], rules: &RunningRules) -> Option<RunningChoice> {
    site.choices.iter().enumerate().find_map(|(index, c)| {
        matches(map, site, c, running, rules).map(|call_target| RunningChoice { index, call_target })
    })
}

/// The running code as a choice of its own, for the walker: its bytes, every displacement
/// relative to the site (as it is at run time), named after the modelled choice it is.
pub fn as_running(choice: &Choice, running: &[u8]) -> Choice {
    let bytes = running[..choice.bytes.len().min(running.len())].to_vec();
    Choice {
        name: choice.name.clone(),
        entry: choice.entry,
        origins: vec![Origin::Synthetic; bytes.len()],
        bytes,
        replacement: None,
        problem: None,
    }
}
