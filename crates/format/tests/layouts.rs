//! Each layout with hand-made entries, and round trips over every field.

use orc_format::{DumpAddress, DumpLine, Endian, Entry, EntryType, Layout, RawEntry, Reg};
use proptest::prelude::*;

/// The worked example of the reference (section 1.7): `push %rbp` done, no frame pointer yet.
fn pushed_rbp() -> Entry {
    Entry {
        kind: EntryType::Call,
        sp_reg: Reg::SP,
        sp_offset: 16,
        bp_reg: Reg::PREV_SP,
        bp_offset: -16,
        signal: false,
    }
}

#[test]
fn worked_example_bytes_in_each_layout() {
    let v3 = Layout::V3.encode(pushed_rbp()).unwrap();
    assert_eq!(v3.to_bytes(Endian::Little), [0x10, 0x00, 0xf0, 0xff, 0x15, 0x02]);
    for layout in [Layout::V1, Layout::V2] {
        let raw = layout.encode(pushed_rbp()).unwrap();
        assert_eq!(raw.to_bytes(Endian::Little), [0x10, 0x00, 0xf0, 0xff, 0x15, 0x00]);
    }
    // Big-endian: only the offsets are swapped.
    assert_eq!(v3.to_bytes(Endian::Big), [0x00, 0x10, 0xff, 0xf0, 0x15, 0x02]);
    assert_eq!(RawEntry::from_bytes([0x00, 0x10, 0xff, 0xf0, 0x15, 0x02], Endian::Big), v3);
}

#[test]
fn v1_spells_undefined_and_end_with_sp_reg() {
    // Terminator: sp_reg UNDEFINED, type CALL, end 0.
    let term = RawEntry { sp_offset: 0, bp_offset: 0, flags: 0x0000 };
    assert_eq!(Layout::V1.decode(term).kind, EntryType::Undefined);
    // UNWIND_HINT_EMPTY: sp_reg UNDEFINED, end 1.
    let eos = RawEntry { sp_offset: 0, bp_offset: 0, flags: 1 << 10 };
    assert_eq!(Layout::V1.decode(eos).kind, EntryType::EndOfStack);
    assert_eq!(Layout::V1.encode(Entry::END_OF_STACK).unwrap(), eos);
    // The same bit in v2 is signal, not end.
    assert_eq!(Layout::V2.decode(eos).kind, EntryType::Undefined);
    assert!(Layout::V2.decode(eos).signal);
    let eos2 = RawEntry { flags: 1 << 11, ..eos };
    assert_eq!(Layout::V2.decode(eos2).kind, EntryType::EndOfStack);
}

#[test]
fn v1_signal_is_implied_by_type() {
    // REGS (type 1) with sp = sp+0: signal implied.
    let regs = RawEntry { sp_offset: 0, bp_offset: 0, flags: 0x0105 };
    let e = Layout::V1.decode(regs);
    assert_eq!(e.kind, EntryType::Regs);
    assert!(e.signal);
    // v1 cannot store a signalled call frame.
    let mut call = Entry::call(8);
    call.signal = true;
    assert!(Layout::V1.encode(call).is_err());
    assert!(Layout::V2.encode(call).is_ok());
    assert!(Layout::V3.encode(call).is_ok());
}

#[test]
fn v3_types_and_signal_bits() {
    let partial = Entry {
        kind: EntryType::RegsPartial,
        sp_reg: Reg::SP,
        sp_offset: 40,
        bp_reg: Reg::UNDEFINED,
        bp_offset: 0,
        signal: true,
    };
    let raw = Layout::V3.encode(partial).unwrap();
    assert_eq!(raw.flags, 0x0805 | 4 << 8);
    assert_eq!(Layout::V3.decode(raw), partial);
    // The all-zero entry is UNDEFINED in v3 and a CALL-typed undefined in v1.
    assert_eq!(Layout::V3.decode(RawEntry::default()), Entry::UNDEFINED);
    assert_eq!(Layout::V1.decode(RawEntry::default()), Entry::UNDEFINED);
    assert_eq!(Layout::V3.encode(Entry::END_OF_STACK).unwrap().flags, 0x0100);
}

#[test]
fn header_hashes_select_layouts() {
    let v3 = Layout::V3.header_hash().unwrap();
    assert_eq!(Layout::from_header(&v3), Ok(Layout::V3));
    let v2 = Layout::V2.header_hash().unwrap();
    assert_eq!(Layout::from_header(&v2), Ok(Layout::V2));
    let mut other = v3;
    other[0] ^= 1;
    assert!(matches!(Layout::from_header(&other), Err(orc_format::LayoutError::UnknownHeaderHash(_))));
    assert!(Layout::from_header(&v3[..19]).is_err());
    assert_eq!(Layout::from_kernel_version(6, 12), Layout::V3);
    assert_eq!(Layout::from_kernel_version(6, 3), Layout::V2);
    assert_eq!(Layout::from_kernel_version(6, 1), Layout::V1);
    assert_eq!(Layout::from_kernel_version(4, 14), Layout::V1);
}

#[test]
fn dump_lines_match_objtool_text() {
    let sym = DumpAddress::Symbol { name: ".text", addend: 0x41 };
    let v3 = DumpLine { address: sym, raw: Layout::V3.encode(pushed_rbp()).unwrap(), layout: Layout::V3 };
    assert_eq!(v3.to_string(), ".text+41:type:call sp:sp+16 bp:prevsp-16 signal:0");
    let v1 = DumpLine { address: sym, raw: Layout::V1.encode(pushed_rbp()).unwrap(), layout: Layout::V1 };
    assert_eq!(v1.to_string(), ".text+41: sp:sp+16 bp:prevsp-16 type:call end:0");
    let v2 = DumpLine { address: sym, raw: Layout::V2.encode(pushed_rbp()).unwrap(), layout: Layout::V2 };
    assert_eq!(v2.to_string(), ".text+41: sp:sp+16 bp:prevsp-16 type:call signal:0 end:0");

    let und = DumpLine { address: DumpAddress::Absolute(0xffffffff81000041), raw: RawEntry::default(), layout: Layout::V3 };
    assert_eq!(und.to_string(), "ffffffff81000041:type:(und) sp:(und) bp:(und) signal:0");
    let und1 = DumpLine { layout: Layout::V1, ..und };
    assert_eq!(und1.to_string(), "ffffffff81000041: sp:(und) bp:(und) type:call end:0");

    // Indirect bases and a negative addend (printed as unsigned 64-bit, as objtool does).
    let ind = RawEntry { sp_offset: 8, bp_offset: -8, flags: 0x0209 | 0x0040 };
    let line = DumpLine { address: DumpAddress::Symbol { name: "f", addend: -4 }, raw: ind, layout: Layout::V3 };
    assert_eq!(line.to_string(), "f+fffffffffffffffc:type:call sp:(sp)+8 bp:bp-8 signal:0");
    let bpind = RawEntry { sp_offset: -8, bp_offset: 0, flags: 0x0208 };
    let line = DumpLine { address: sym, raw: bpind, layout: Layout::V3 };
    assert_eq!(line.to_string(), ".text+41:type:call sp:(bp-8) bp:(und) signal:0");
    // Unknown register and type numbers print as `?`.
    let odd = RawEntry { sp_offset: 1, bp_offset: 0, flags: 0x070f };
    let line = DumpLine { address: sym, raw: odd, layout: Layout::V3 };
    assert_eq!(line.to_string(), ".text+41:type:? sp:?+1 bp:(und) signal:0");
}

fn any_entry() -> impl Strategy<Value = Entry> {
    (0u8..8, 0u8..16, any::<i16>(), 0u8..16, any::<i16>(), any::<bool>()).prop_map(
        |(kind, sp, spo, bp, bpo, signal)| Entry {
            kind: EntryType::from_v3_number(kind),
            sp_reg: Reg(sp),
            sp_offset: spo,
            bp_reg: Reg(bp),
            bp_offset: bpo,
            signal,
        },
    )
}

proptest! {
    /// Whatever a layout accepts, it gives back unchanged.
    #[test]
    fn encode_then_decode_is_identity(entry in any_entry(), layout in prop::sample::select(Layout::ALL.to_vec())) {
        if let Ok(raw) = layout.encode(entry) {
            prop_assert_eq!(layout.decode(raw), entry);
            prop_assert!(layout.is_canonical(raw));
        }
    }

    /// v3 accepts every entry with 4-bit registers and a 3-bit type.
    #[test]
    fn v3_holds_everything(entry in any_entry()) {
        prop_assert!(Layout::V3.encode(entry).is_ok());
    }

    /// Canonical bytes survive decode and re-encode exactly; every other pattern is normalised
    /// to a canonical one with the same meaning.
    #[test]
    fn decode_then_encode(flags in any::<u16>(), spo in any::<i16>(), bpo in any::<i16>(),
                          layout in prop::sample::select(Layout::ALL.to_vec())) {
        let raw = RawEntry { sp_offset: spo, bp_offset: bpo, flags };
        let entry = layout.decode(raw);
        let back = layout.encode(entry);
        if layout.is_canonical(raw) {
            prop_assert_eq!(back, Ok(raw));
        } else if let Ok(normal) = back {
            prop_assert!(layout.is_canonical(normal));
            prop_assert_eq!(layout.decode(normal), entry);
        }
    }

    /// Bytes round-trip in both byte orders.
    #[test]
    fn bytes_round_trip(bytes in any::<[u8; 6]>()) {
        for endian in [Endian::Little, Endian::Big] {
            prop_assert_eq!(RawEntry::from_bytes(bytes, endian).to_bytes(endian), bytes);
        }
    }
}
