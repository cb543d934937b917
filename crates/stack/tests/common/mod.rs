//! Helpers shared by the tests: run instructions through the rules and print states the way
//! `objtool --dump=orc` prints the entry they give.

#![allow(dead_code)]

use orc_decode::{decode_one, InsnKind, StackOp};
use orc_format::{DumpAddress, DumpLine, Layout};
use orc_stack::{CfiState, OpContext};

/// The ORC entry of `state` as objtool 6.12 dumps it, without the address:
/// `type:call sp:sp+16 bp:prevsp-16 signal:0`.
pub fn orc(state: &CfiState) -> String {
    let entry = state
        .orc_entry()
        .unwrap_or_else(|e| panic!("no ORC entry for {state:?}: {e}"));
    let raw = Layout::V3.encode(entry).unwrap();
    let line = DumpLine {
        address: DumpAddress::Absolute(0),
        raw,
        layout: Layout::V3,
    }
    .to_string();
    line.strip_prefix("0:").unwrap().to_string()
}

/// Applies `ops` in order from `state`, inside a function.
pub fn run(mut state: CfiState, ops: &[StackOp]) -> CfiState {
    for op in ops {
        state
            .apply(op, &OpContext::IN_FUNCTION)
            .unwrap_or_else(|e| panic!("{op}: {e}"));
    }
    state
}

/// Applies `ops` from the function entry state.
pub fn from_entry(ops: &[StackOp]) -> CfiState {
    run(CfiState::FUNCTION_ENTRY, ops)
}

/// The stack operations objtool applies for an instruction: decoded from its bytes, minus the
/// return-address push of a call to another function (the callee pops it).
pub fn ops_of(bytes: &[u8]) -> Vec<StackOp> {
    let insn = decode_one(bytes, 0, true).unwrap();
    assert_eq!(
        insn.len as usize,
        bytes.len(),
        "{bytes:02x?} is not one instruction"
    );
    if insn.kind == InsnKind::Call {
        return Vec::new();
    }
    insn.stack_ops.iter().copied().collect()
}

/// Walks a straight-line function listing from its entry: before each instruction, the ORC
/// entry must be the one given on its row (what objtool 6.12 generates for it).
pub fn assert_listing(listing: &[(&str, &[u8], &str)]) {
    let mut state = CfiState::FUNCTION_ENTRY;
    for (n, &(asm, bytes, expected)) in listing.iter().enumerate() {
        assert_eq!(orc(&state), expected, "before instruction {n}, `{asm}`");
        for op in ops_of(bytes) {
            state
                .apply(&op, &OpContext::IN_FUNCTION)
                .unwrap_or_else(|e| panic!("`{asm}`: {e}"));
        }
    }
    assert!(
        !state.has_modified_stack_frame(),
        "the listing should end with its frame undone"
    );
}
