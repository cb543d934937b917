//! Properties over arbitrary operation sequences: the rules never panic, the merge check
//! agrees with equality on the fields it compares, and pushes undo pops.

use orc_decode::{Dest, Reg, Src, StackOp};
use orc_stack::{mismatch, CfiState, OpContext};
use proptest::prelude::*;

fn reg() -> impl Strategy<Value = Reg> {
    (0u8..16).prop_map(|n| Reg::new(n).unwrap())
}

fn op() -> impl Strategy<Value = StackOp> {
    let off = -256i32..256;
    let src = prop_oneof![
        reg().prop_map(Src::Reg),
        (reg(), off.clone()).prop_map(|(reg, offset)| Src::RegIndirect { reg, offset }),
        Just(Src::Const),
        Just(Src::Pop),
        Just(Src::Popf),
        (reg(), off.clone()).prop_map(|(reg, offset)| Src::Add { reg, offset }),
        (reg(), off.clone()).prop_map(|(reg, offset)| Src::And { reg, offset }),
    ];
    let dest = prop_oneof![
        reg().prop_map(Dest::Reg),
        (reg(), off).prop_map(|(reg, offset)| Dest::RegIndirect { reg, offset }),
        Just(Dest::Mem),
        Just(Dest::Push),
        Just(Dest::Pushf),
    ];
    (src, dest).prop_map(|(src, dest)| StackOp::new(src, dest))
}

proptest! {
    #[test]
    fn rules_never_panic(ops in proptest::collection::vec(op(), 0..40), in_function: bool, hint: bool, stackval: bool) {
        let ctx = OpContext { in_function, next_has_hint: hint, stackval };
        let mut state = CfiState::FUNCTION_ENTRY;
        for op in &ops {
            if state.apply(op, &ctx).is_err() {
                break;
            }
            let _ = state.orc_entry();
        }
    }

    #[test]
    fn merge_check_is_equality_of_its_fields(a in proptest::collection::vec(op(), 0..12), b in proptest::collection::vec(op(), 0..12)) {
        let run = |ops: &[StackOp]| {
            let mut s = CfiState::FUNCTION_ENTRY;
            for op in ops {
                if s.apply(op, &OpContext::IN_FUNCTION).is_err() { break; }
            }
            s
        };
        let (x, y) = (run(&a), run(&b));
        let same = x.cfa == y.cfa && x.regs == y.regs && x.frame_type == y.frame_type && x.drap == y.drap
            && (!x.drap || (x.drap_reg == y.drap_reg && x.drap_offset == y.drap_offset));
        prop_assert_eq!(mismatch(&x, &y).is_none(), same);
        prop_assert_eq!(mismatch(&x, &y).is_none(), mismatch(&y, &x).is_none());
    }

    #[test]
    fn push_then_pop_of_a_scratch_register_is_a_no_op(n in 0usize..6, r in prop_oneof![Just(Reg::AX), Just(Reg::CX), Just(Reg::R11)]) {
        let mut s = CfiState::FUNCTION_ENTRY;
        for _ in 0..n { s.apply(&StackOp::push(r), &OpContext::IN_FUNCTION).unwrap(); }
        for _ in 0..n { s.apply(&StackOp::pop(r), &OpContext::IN_FUNCTION).unwrap(); }
        prop_assert_eq!(s, CfiState::FUNCTION_ENTRY);
    }
}
