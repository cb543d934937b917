//! Garbage in, no panic out: any byte string decodes to back-to-back instructions or to an
//! error at the first undecodable offset.

use orc_decode::{decode_one, SectionDecoder};
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(code in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut decoder = SectionDecoder::new(&code);
        let mut offset = 0u64;
        while (offset as usize) < code.len() {
            match decoder.decode_at(offset, |_| true) {
                Ok(insn) => {
                    prop_assert_eq!(insn.offset, offset);
                    prop_assert!(insn.len >= 1 && insn.end() as usize <= code.len());
                    prop_assert!(insn.stack_ops.len() <= 2);
                    if let Some(field) = insn.disp_field.or(insn.imm_field) {
                        prop_assert!((field.offset + field.size) <= insn.len);
                    }
                    offset = insn.end();
                }
                Err(e) => {
                    prop_assert_eq!(e.offset, offset);
                    break;
                }
            }
        }
    }

    #[test]
    fn decode_one_agrees_with_the_section_decoder(code in proptest::collection::vec(any::<u8>(), 1..16), at in 0u64..0x1000) {
        let one = decode_one(&code, at, false);
        let sec = SectionDecoder::new(&code).decode_at(0, |_| false);
        match (one, sec) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a.len, b.len);
                prop_assert_eq!(a.kind, b.kind);
                prop_assert_eq!(a.stack_ops, b.stack_ops);
                prop_assert_eq!(a.branch.map(|x| x.target), b.branch.map(|x| x.target.wrapping_add(at)));
            }
            (Err(_), Err(_)) => {}
            (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
        }
    }
}
