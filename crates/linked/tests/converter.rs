//! The converter and the table API on the system's own binaries.

use orc_elf::ElfFile;
use orc_format::{Entry, EntryType, Reg};
use orc_linked::{build_id, generate, sidecar, Source};

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

/// The address of the signal trampoline in libc: the bytes of `mov $0xf,%rax; syscall`.
fn restore_rt(bytes: &[u8], elf: &ElfFile<'_>) -> u64 {
    let text = elf.section_by_name(".text").unwrap().unwrap();
    let pat = [0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05];
    let at = text.data.windows(pat.len()).position(|w| w == pat).expect("libc has __restore_rt");
    let _ = bytes;
    text.address + at as u64
}

#[test]
fn libc_signal_trampoline_is_a_regs_entry_from_one_byte_before() {
    let Ok(bytes) = std::fs::read(LIBC) else { return };
    let elf = ElfFile::parse(&bytes).unwrap();
    let table = generate(&elf, Source::EhFrame).unwrap();
    let tramp = restore_rt(&bytes, &elf);
    // The signal bit: the ip in the sigcontext is where the signal struck, looked up as is.
    let want = Entry { kind: EntryType::Regs, sp_reg: Reg::SP, sp_offset: 40, signal: true, ..Entry::UNDEFINED };
    assert_eq!(table.lookup(tramp - 1), Some(want));
    assert_eq!(table.lookup(tramp + 7), Some(want));
    assert_ne!(table.lookup(tramp - 2), Some(want));
    assert!(table.ips.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(table.ips.len(), table.entries.len());
}

#[test]
fn build_id_and_sidecar_of_libc() {
    let Ok(bytes) = std::fs::read(LIBC) else { return };
    let elf = ElfFile::parse(&bytes).unwrap();
    let id = build_id(&elf).expect("Debian's libc has a build-id");
    assert_eq!(id.len(), 20);
    let table = generate(&elf, Source::EhFrame).unwrap();
    let back = sidecar::decode(&sidecar::encode(id, &table)).unwrap();
    assert_eq!(back.build_id, id);
    assert_eq!(back.ips, table.ips);
    assert_eq!(back.entries, table.entries);
}
