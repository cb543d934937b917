//! Hand-built tiny ELF vmcores: a PT_NOTE with VMCOREINFO and NT_PRSTATUS, a few PT_LOADs with
//! page tables in them.

use orc_vmcore::kernel::translate;
use orc_vmcore::{Vmcore, VmcoreError, VmcoreInfo};

/// Builds an x86-64 ET_CORE file: notes (name, type, desc), then memory segments
/// (physical address, bytes), each in its own PT_LOAD.
fn core(notes: &[(&str, u32, Vec<u8>)], loads: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let phnum = 1 + loads.len();
    let mut note_bytes = Vec::new();
    for (name, kind, desc) in notes {
        let n = name.len() + 1;
        note_bytes.extend_from_slice(&(n as u32).to_le_bytes());
        note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note_bytes.extend_from_slice(&kind.to_le_bytes());
        note_bytes.extend_from_slice(name.as_bytes());
        note_bytes.push(0);
        while note_bytes.len() % 4 != 0 {
            note_bytes.push(0);
        }
        note_bytes.extend_from_slice(desc);
        while note_bytes.len() % 4 != 0 {
            note_bytes.push(0);
        }
    }
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // 64-bit
    out[5] = 1; // little-endian
    out[6] = 1;
    out[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    let mut offset = 64 + 56 * phnum as u64;
    let mut headers = Vec::new();
    let ph = |kind: u32, off: u64, paddr: u64, size: u64| {
        let mut h = vec![0u8; 56];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..16].copy_from_slice(&off.to_le_bytes());
        h[24..32].copy_from_slice(&paddr.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..48].copy_from_slice(&size.to_le_bytes());
        h
    };
    headers.extend(ph(4, offset, 0, note_bytes.len() as u64));
    offset += note_bytes.len() as u64;
    for (paddr, bytes) in loads {
        headers.extend(ph(1, offset, *paddr, bytes.len() as u64));
        offset += bytes.len() as u64;
    }
    out.extend(headers);
    out.extend(note_bytes);
    for (_, bytes) in loads {
        out.extend_from_slice(bytes);
    }
    out
}

fn prstatus(rip: u64, rsp: u64, rbp: u64, cs: u64) -> Vec<u8> {
    let mut d = vec![0u8; 336];
    let mut set = |word: usize, v: u64| d[112 + 8 * word..120 + 8 * word].copy_from_slice(&v.to_le_bytes());
    set(4, rbp);
    set(16, rip);
    set(17, cs);
    set(19, rsp);
    d
}

const INFO: &str = "OSRELEASE=6.12.0-test\nBUILD-ID=00112233\nKERNELOFFSET=2d600000\nNUMBER(phys_base)=-637534208\nNUMBER(pgtable_l5_enabled)=1\nSYMBOL(init_top_pgt)=ffffffffb0222000\n";

fn page(words: &[(usize, u64)]) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    for &(i, v) in words {
        p[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    p
}

#[test]
fn notes_and_memory() {
    let mem: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    let bytes = core(
        &[
            ("CORE", 1, prstatus(0xffffffff81000010, 0xffffc90000003f00, 0x1234, 0x10)),
            ("CORE", 1, prstatus(0x401000, 0x7ffc0000, 0, 0x33)),
            ("VMCOREINFO", 0, INFO.as_bytes().to_vec()),
        ],
        &[(0x10000, mem.clone())],
    );
    let dump = Vmcore::parse(&bytes).unwrap();
    assert_eq!(dump.cpus().len(), 2);
    assert_eq!(dump.cpus()[0].rip(), 0xffffffff81000010);
    assert_eq!(dump.cpus()[0].rsp(), 0xffffc90000003f00);
    assert_eq!(dump.cpus()[0].rbp(), 0x1234);
    assert_eq!(dump.cpus()[1].cs() & 3, 3);
    let mut buf = [0u8; 16];
    // Across a page boundary inside the segment.
    assert!(dump.read_phys(0x10000 + 4090, &mut buf));
    assert_eq!(&buf[..], &mem[4090..4106]);
    // Outside every segment, or running past its end.
    assert!(!dump.read_phys(0x0, &mut buf));
    assert!(!dump.read_phys(0x10000 + 8190, &mut buf));
    let info = VmcoreInfo::parse(dump.vmcoreinfo_text().unwrap());
    assert_eq!(info.osrelease(), Some("6.12.0-test"));
    assert_eq!(info.kernel_offset().unwrap(), 0x2d60_0000);
    // A negative phys_base is the two's complement word the kernel holds.
    assert_eq!(info.phys_base().unwrap(), (-637_534_208i64) as u64);
    assert!(info.five_level());
    assert_eq!(info.symbol("init_top_pgt"), Some(0xffff_ffff_b022_2000));
}

#[test]
fn page_tables_four_and_five_levels() {
    // 4 levels: PGD at 0x1000 -> PUD 0x2000 -> PMD 0x3000 -> PT 0x4000 -> page 0x5000;
    // a 2 MiB page and a 1 GiB page beside them.
    let va: u64 = 0xffff_c900_0000_3000;
    let (l4, l3, l2, l1) = ((va >> 39) & 511, (va >> 30) & 511, (va >> 21) & 511, (va >> 12) & 511);
    let pgd = page(&[(l4 as usize, 0x2000 | 1)]);
    let pud = page(&[(l3 as usize, 0x3000 | 1), ((l3 + 1) as usize, 0x4000_0000 | 0x80 | 1)]);
    let pmd = page(&[(l2 as usize, 0x4000 | 1), ((l2 + 1) as usize, 0x20_0000 | 0x80 | 1)]);
    let pt = page(&[(l1 as usize, 0x8000_0000_0000_5000 | 1)]); // NX bit set: not part of the address
    let data = page(&[(3, 0xfeed_f00d)]);
    let mut mem = Vec::new();
    for p in [pgd, pud, pmd, pt, data] {
        mem.extend(p);
    }
    let bytes = core(&[("VMCOREINFO", 0, INFO.as_bytes().to_vec())], &[(0x1000, mem)]);
    let dump = Vmcore::parse(&bytes).unwrap();
    assert_eq!(translate(&dump, 0x1000, 4, va + 0x18), Some(0x5018));
    assert_eq!(dump.phys_u64(translate(&dump, 0x1000, 4, va + 0x18).unwrap()), Some(0xfeed_f00d));
    let va_2m = va + (1 << 21) + 0x1234;
    assert_eq!(translate(&dump, 0x1000, 4, va_2m), Some(0x20_0000 + ((va_2m) & 0x1f_ffff)));
    let va_1g = va + (1 << 30) + 0x12345;
    assert_eq!(translate(&dump, 0x1000, 4, va_1g), Some(0x4000_0000 + (va_1g & 0x3fff_ffff)));
    // Not present at the top level.
    assert_eq!(translate(&dump, 0x1000, 4, va ^ (1 << 39)), None);
    // 5 levels: a P4D level above, indexed by bits 48..56.
    let l5 = (va >> 48) & 511;
    let top = page(&[(l5 as usize, 0x1000 | 1)]);
    let mut bytes5_mem = top;
    bytes5_mem.extend_from_slice(&bytes[bytes.len() - 5 * 4096..]);
    let bytes5 = core(&[("VMCOREINFO", 0, INFO.as_bytes().to_vec())], &[(0x0, bytes5_mem)]);
    let dump5 = Vmcore::parse(&bytes5).unwrap();
    assert_eq!(translate(&dump5, 0x0, 5, va + 0x18), Some(0x5018));
}

#[test]
fn not_a_vmcore_and_truncated() {
    let bytes = core(&[("VMCOREINFO", 0, INFO.as_bytes().to_vec())], &[(0x0, vec![0u8; 8192])]);
    assert!(Vmcore::parse(&bytes).is_ok());
    // Cut inside the memory segment, inside the notes, inside the program headers.
    for cut in [bytes.len() - 1, 64 + 2 * 56 + 10, 70, 10] {
        match Vmcore::parse(&bytes[..cut]) {
            Err(VmcoreError::Truncated(_)) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert!(matches!(Vmcore::parse(b"hello, world"), Err(VmcoreError::NotVmcore(_))));
    // An executable, not a core.
    let mut exec = bytes.clone();
    exec[16] = 2;
    assert!(matches!(Vmcore::parse(&exec), Err(VmcoreError::NotVmcore(m)) if m.contains("ET_CORE")));
    // Another machine.
    let mut arm = bytes.clone();
    arm[18] = 183;
    assert!(matches!(Vmcore::parse(&arm), Err(VmcoreError::NotVmcore(m)) if m.contains("x86-64")));
    // No memory at all.
    let empty = core(&[("VMCOREINFO", 0, INFO.as_bytes().to_vec())], &[]);
    assert!(matches!(Vmcore::parse(&empty), Err(VmcoreError::NotVmcore(_))));
}

#[test]
fn corrupted_cores_never_panic() {
    let va: u64 = 0xffff_c900_0000_3000;
    let idx = |shift: u32| ((va >> shift) & 511) as usize;
    let mut mem = Vec::new();
    for p in [
        page(&[(idx(39), 0x2000 | 1)]),
        page(&[(idx(30), 0x3000 | 1)]),
        page(&[(idx(21), 0x4000 | 1)]),
        page(&[(idx(12), 0x5000 | 1)]),
        page(&[(3, 0xfeed_f00d)]),
    ] {
        mem.extend(p);
    }
    let bytes = core(
        &[("CORE", 1, prstatus(0xffffffff81000010, va, 0, 0x10)), ("VMCOREINFO", 0, INFO.as_bytes().to_vec())],
        &[(0x1000, mem)],
    );
    let ranges = [0..bytes.len()];
    let mut rng = orc_testkit::Rng::new(0x76_6d63_6f72_65);
    let mut parsed = 0;
    rng.for_each_mutation(&bytes, &ranges, 8, 3000, |b| {
        if let Ok(dump) = Vmcore::parse(b) {
            parsed += 1;
            let _ = dump.cpus().first().map(|c| (c.rip(), c.rsp()));
            if let Some(text) = dump.vmcoreinfo_text() {
                let info = VmcoreInfo::parse(text);
                let _ = (info.kernel_offset(), info.phys_base(), info.five_level(), info.symbol("init_top_pgt"));
            }
            for levels in [4, 5] {
                if let Some(pa) = translate(&dump, 0x1000, levels, va) {
                    let mut buf = [0u8; 64];
                    let _ = dump.read_phys(pa, &mut buf);
                }
            }
        }
    });
    assert!(parsed > 0, "some mutations leave a readable core");
}
