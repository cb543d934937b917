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
    assert_eq!(Layout::from_kernel_version(7, 0), Layout::V3);
    assert_eq!(Layout::from_kernel_version(7, 1), Layout::V4);
    assert_eq!(Layout::from_kernel_version(7, 2), Layout::V4);
    assert_eq!(Layout::from_kernel_version(8, 0), Layout::V4);
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

/// An entry whose registers are what `layout` reads from some field value (named or unknown).
fn any_entry(layout: Layout) -> impl Strategy<Value = Entry> {
    (0u8..8, 0u8..16, any::<i16>(), 0u8..16, any::<i16>(), any::<bool>()).prop_map(
        move |(kind, sp, spo, bp, bpo, signal)| Entry {
            kind: EntryType::from_v3_number(kind),
            sp_reg: layout.reg(sp),
            sp_offset: spo,
            bp_reg: layout.reg(bp),
            bp_offset: bpo,
            signal,
        },
    )
}

fn any_layout() -> impl Strategy<Value = Layout> {
    prop::sample::select(Layout::ALL.to_vec())
}

/// The bytes of `flags` decoded as `layout`, printed as objtool does at `.text+0`.
fn dump(layout: Layout, flags: u16, sp_offset: i16, bp_offset: i16) -> String {
    let raw = RawEntry { sp_offset, bp_offset, flags };
    DumpLine { address: DumpAddress::Symbol { name: ".text", addend: 0 }, raw, layout }.to_string()
}

#[test]
fn v4_renumbers_the_registers() {
    // The worked example: sp is field 3 and prevsp field 8 in 7.1+.
    let raw = Layout::V4.encode(pushed_rbp()).unwrap();
    assert_eq!(raw.to_bytes(Endian::Little), [0x10, 0x00, 0xf0, 0xff, 0x83, 0x02]);
    assert_eq!(Layout::V4.decode(raw), pushed_rbp());
    // The same bytes read as v3 say `di` and `bp(ind)`: the mistake a wrong layout makes.
    assert_eq!(Layout::V3.decode(raw).sp_reg, Reg::DI);
    assert_eq!(Layout::V3.decode(raw).bp_reg, Reg::BP_INDIRECT);
    // 7.1's numbering, field by field (orc-reference.md 1.2).
    let v4 = [
        Reg::UNDEFINED,
        Reg::AX,
        Reg::DX,
        Reg::SP,
        Reg::BP,
        Reg::DI,
        Reg::R10,
        Reg::R13,
        Reg::PREV_SP,
        Reg::SP_INDIRECT,
        Reg::BP_INDIRECT,
    ];
    for (field, reg) in v4.into_iter().enumerate() {
        assert_eq!(Layout::V4.reg(field as u8), reg, "field {field}");
        assert_eq!(Layout::V4.field(reg), Some(field as u8));
    }
    for field in 11..16 {
        assert_eq!(Layout::V4.reg(field), Reg::unknown(field));
    }
}

#[test]
fn ax_exists_only_in_the_layouts_that_define_it() {
    let mut drap = Entry::call(8);
    drap.sp_reg = Reg::AX;
    for layout in [Layout::V1, Layout::V2, Layout::V3] {
        assert!(!layout.has_reg(Reg::AX));
        assert!(matches!(layout.encode(drap), Err(orc_format::EncodeError::RegisterOutOfRange(Reg::AX))));
        // Field 10 means nothing there: it is kept as an unknown register.
        assert_eq!(layout.reg(10), Reg::unknown(10));
    }
    assert_eq!(Layout::V3Ax.encode(drap).unwrap().flags, 0x020a);
    assert_eq!(Layout::V4.encode(drap).unwrap().flags, 0x0201);
    assert_eq!(Layout::V3Ax.reg(10), Reg::AX);
    // An unknown register is only valid in a layout where its field value means nothing.
    let mut odd = Entry::call(8);
    odd.sp_reg = Reg::unknown(10);
    assert_eq!(Layout::V3.encode(odd).unwrap().flags, 0x020a);
    assert!(Layout::V3Ax.encode(odd).is_err());
    assert!(Layout::V4.encode(odd).is_err());
    odd.sp_reg = Reg(12);
    assert!(Layout::ALL.iter().all(|l| l.encode(odd).is_err()));
}

/// Every field value as both registers, printed as objtool 7.2 (v4), 6.12 (v3) and a kernel
/// with the AX backport (v3+ax) print them. The v4 and v3 lines are objtool's own output for
/// an object with these 16 entries (type call, sp offset 8, bp offset -16).
#[test]
fn dump_names_registers_per_layout() {
    let v4 = [
        "sp:(und) bp:(und)",
        "sp:ax+8 bp:ax-16",
        "sp:dx+8 bp:dx-16",
        "sp:sp+8 bp:sp-16",
        "sp:bp+8 bp:bp-16",
        "sp:di+8 bp:di-16",
        "sp:r10+8 bp:r10-16",
        "sp:r13+8 bp:r13-16",
        "sp:prevsp+8 bp:prevsp-16",
        "sp:(sp)+8 bp:(sp)-16",
        "sp:(bp+8) bp:(bp-16)",
    ];
    let v3 = [
        "sp:(und) bp:(und)",
        "sp:prevsp+8 bp:prevsp-16",
        "sp:dx+8 bp:dx-16",
        "sp:di+8 bp:di-16",
        "sp:bp+8 bp:bp-16",
        "sp:sp+8 bp:sp-16",
        "sp:r10+8 bp:r10-16",
        "sp:r13+8 bp:r13-16",
        "sp:(bp+8) bp:(bp-16)",
        "sp:(sp)+8 bp:(sp)-16",
    ];
    for field in 0..16u16 {
        let flags = field | field << 4 | 2 << 8;
        let want = |names: &[&str]| {
            let regs = names.get(field as usize).copied().unwrap_or("sp:?+8 bp:?-16");
            format!(".text+0:type:call {regs} signal:0")
        };
        assert_eq!(dump(Layout::V4, flags, 8, -16), want(&v4), "v4 field {field}");
        assert_eq!(dump(Layout::V3, flags, 8, -16), want(&v3), "v3 field {field}");
        let mut v3ax = v3.to_vec();
        v3ax.push("sp:ax+8 bp:ax-16");
        assert_eq!(dump(Layout::V3Ax, flags, 8, -16), want(&v3ax), "v3+ax field {field}");
    }
    // Types print as in v3.
    assert_eq!(dump(Layout::V4, 0x0903, 8, 0), ".text+0:type:end sp:sp+8 bp:(und) signal:1");
    assert_eq!(dump(Layout::V4, 0x0403, 8, 0), ".text+0:type:regs (partial) sp:sp+8 bp:(und) signal:0");
    assert_eq!(dump(Layout::V4, 0x0503, 8, 0), ".text+0:type:? sp:sp+8 bp:(und) signal:0");
}

#[test]
fn every_known_hash_names_one_layout_and_others_are_an_error() {
    let mut seen = Vec::new();
    for layout in Layout::ALL {
        if let Some(hash) = layout.header_hash() {
            assert_eq!(Layout::from_header(&hash), Ok(layout));
            assert!(!seen.contains(&hash));
            seen.push(hash);
        }
    }
    assert_eq!(seen.len(), 4);
    let v4 = Layout::V4.header_hash().unwrap();
    assert_eq!(v4[..4], [0x13, 0x7c, 0x36, 0xad]);
    let mut other = v4;
    other[19] ^= 0x80;
    let err = Layout::from_header(&other).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("137c36ad7627c4dd55932176bb0ecdbd5041fc02"), "{text}");
    assert!(text.contains("--orc-layout"), "{text}");
    for name in ["v1", "v2", "v3", "v3+ax", "v4"] {
        assert_eq!(Layout::from_name(name).unwrap().name(), name);
        assert!(text.contains(name), "{text} names {name}");
    }
    assert_eq!(Layout::from_name("v3ax"), Ok(Layout::V3Ax));
    assert!(Layout::from_name("v5").is_err());
}

proptest! {
    /// Whatever a layout accepts, it gives back unchanged.
    #[test]
    fn encode_then_decode_is_identity((layout, entry) in any_layout().prop_flat_map(|l| (Just(l), any_entry(l)))) {
        if let Ok(raw) = layout.encode(entry) {
            prop_assert_eq!(layout.decode(raw), entry);
            prop_assert!(layout.is_canonical(raw));
        }
    }

    /// The 6.4+ layouts accept every entry of their own registers and a 3-bit type.
    #[test]
    fn typed_layouts_hold_everything((layout, entry) in prop::sample::select(vec![Layout::V3, Layout::V3Ax, Layout::V4])
        .prop_flat_map(|l| (Just(l), any_entry(l)))) {
        prop_assert!(layout.encode(entry).is_ok());
    }

    /// Canonical bytes survive decode and re-encode exactly; every other pattern is normalised
    /// to a canonical one with the same meaning.
    #[test]
    fn decode_then_encode(flags in any::<u16>(), spo in any::<i16>(), bpo in any::<i16>(),
                          layout in any_layout()) {
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
