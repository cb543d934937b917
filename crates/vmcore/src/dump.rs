//! The ELF vmcore itself: physical memory from `PT_LOAD` segments, `VMCOREINFO` and the CPUs'
//! `NT_PRSTATUS` registers from `PT_NOTE`. kdump's `/proc/vmcore` (made by makedumpfile -E or
//! copied) and QEMU's `dump-guest-memory` (ELF, with `-device vmcoreinfo`) are the same format.

use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::LittleEndian as LE;

use crate::VmcoreError;

/// `struct elf_prstatus` (x86-64): where `pr_pid` and `pr_reg` are.
mod prstatus {
    pub const PID: usize = 32;
    pub const REG: usize = 112;
    /// `user_regs_struct`: 27 words.
    pub const REG_WORDS: usize = 27;
}

/// One CPU's registers at the time of the dump (kdump: saved by the crash path; QEMU: the vCPU's
/// state when the guest was stopped). Notes come in CPU order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuRegs {
    /// `pr_pid`: the task kdump saw on this CPU (QEMU writes the vCPU number + 1 or 0).
    pub pid: u32,
    /// `user_regs_struct`: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax
    /// rip cs eflags rsp ss fs_base gs_base ds es fs gs.
    pub words: [u64; prstatus::REG_WORDS],
}

impl CpuRegs {
    /// Instruction pointer.
    pub fn rip(&self) -> u64 {
        self.words[16]
    }
    /// Stack pointer.
    pub fn rsp(&self) -> u64 {
        self.words[19]
    }
    /// Frame pointer.
    pub fn rbp(&self) -> u64 {
        self.words[4]
    }
    /// Code segment: its low two bits are the privilege level (3: user mode).
    pub fn cs(&self) -> u64 {
        self.words[17]
    }
}

/// A `PT_LOAD` segment: physical addresses `[phys, phys + file_size)` are at `offset` in the file
/// (`mem_size` beyond `file_size` reads as zeros, as makedumpfile writes excluded pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Physical address of the first byte.
    pub phys: u64,
    /// Kernel virtual address of the first byte (kdump fills it for the direct map and the
    /// kernel text; QEMU writes 0).
    pub virt: u64,
    /// File offset of the first byte.
    pub offset: u64,
    /// Bytes present in the file.
    pub file_size: u64,
    /// Bytes of memory the segment covers.
    pub mem_size: u64,
}

/// A parsed vmcore over its bytes.
#[derive(Debug)]
pub struct Vmcore<'d> {
    data: &'d [u8],
    /// Sorted by physical address.
    loads: Vec<Load>,
    vmcoreinfo: Option<&'d str>,
    cpus: Vec<CpuRegs>,
}

fn not_vmcore(why: impl Into<String>) -> VmcoreError {
    VmcoreError::NotVmcore(why.into())
}

impl<'d> Vmcore<'d> {
    /// Parses the headers and notes. Checks that every segment and note lies inside the file:
    /// a dump cut short (a full disk, an interrupted copy) is [`VmcoreError::Truncated`].
    pub fn parse(data: &'d [u8]) -> Result<Vmcore<'d>, VmcoreError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(not_vmcore("not an ELF file"));
        }
        let header = elf::FileHeader64::<LE>::parse(data).map_err(|e| {
            if data.len() < 64 {
                VmcoreError::Truncated(format!("the ELF header needs 64 bytes, the file has {}", data.len()))
            } else {
                not_vmcore(format!("not a 64-bit little-endian ELF file ({e})"))
            }
        })?;
        let endian = LE;
        if header.e_type(endian) != elf::ET_CORE {
            return Err(not_vmcore(format!(
                "an ELF file of type {}, not a core dump (ET_CORE)",
                header.e_type(endian)
            )));
        }
        if header.e_machine(endian) != elf::EM_X86_64 {
            return Err(not_vmcore(format!("a core dump of machine {}, not x86-64", header.e_machine(endian))));
        }
        let phoff = header.e_phoff(endian);
        let phnum = u64::from(header.e_phnum(endian));
        let ph_end = phoff.checked_add(phnum * 56).ok_or_else(|| not_vmcore("program headers out of range"))?;
        if ph_end > data.len() as u64 {
            return Err(VmcoreError::Truncated(format!(
                "the program headers end at byte {ph_end}, the file has {}",
                data.len()
            )));
        }
        let headers = header.program_headers(endian, data).map_err(|e| not_vmcore(format!("program headers: {e}")))?;
        let mut loads = Vec::new();
        let mut vmcoreinfo = None;
        let mut cpus = Vec::new();
        for (i, ph) in headers.iter().enumerate() {
            let offset = ph.p_offset(endian);
            let file_size = ph.p_filesz(endian);
            let end =
                offset.checked_add(file_size).ok_or_else(|| not_vmcore(format!("segment {i}: size out of range")))?;
            if end > data.len() as u64 {
                let what = match ph.p_type(endian) {
                    elf::PT_NOTE => "the notes".to_string(),
                    _ => format!("memory at physical {:#x}", ph.p_paddr(endian)),
                };
                return Err(VmcoreError::Truncated(format!(
                    "segment {i} ({what}) ends at byte {end}, the file has {}",
                    data.len()
                )));
            }
            match ph.p_type(endian) {
                elf::PT_LOAD => loads.push(Load {
                    phys: ph.p_paddr(endian),
                    virt: ph.p_vaddr(endian),
                    offset,
                    file_size,
                    mem_size: ph.p_memsz(endian).max(file_size),
                }),
                elf::PT_NOTE => {
                    let notes = ph
                        .notes(endian, data)
                        .map_err(|e| not_vmcore(format!("segment {i}: notes: {e}")))?
                        .ok_or_else(|| not_vmcore(format!("segment {i}: not a note segment")))?;
                    let mut notes = notes;
                    while let Some(note) = notes.next().map_err(|e| not_vmcore(format!("segment {i}: notes: {e}")))? {
                        let name = note.name();
                        let desc = note.desc();
                        if name == b"VMCOREINFO" {
                            let text = std::str::from_utf8(desc).map_err(|_| not_vmcore("VMCOREINFO is not text"))?;
                            vmcoreinfo = Some(text.trim_end_matches('\0'));
                        } else if name == b"CORE" && note.n_type(endian) == elf::NT_PRSTATUS {
                            let need = prstatus::REG + prstatus::REG_WORDS * 8;
                            if desc.len() < need {
                                return Err(not_vmcore(format!(
                                    "NT_PRSTATUS of {} bytes, expected at least {need}",
                                    desc.len()
                                )));
                            }
                            let word = |at: usize| u64::from_le_bytes(desc[at..at + 8].try_into().expect("8 bytes"));
                            let mut words = [0u64; prstatus::REG_WORDS];
                            for (k, w) in words.iter_mut().enumerate() {
                                *w = word(prstatus::REG + 8 * k);
                            }
                            let pid =
                                u32::from_le_bytes(desc[prstatus::PID..prstatus::PID + 4].try_into().expect("4 bytes"));
                            cpus.push(CpuRegs { pid, words });
                        }
                    }
                }
                _ => {}
            }
        }
        if loads.is_empty() {
            return Err(not_vmcore("no PT_LOAD segment: no memory in this core"));
        }
        loads.sort_by_key(|l| l.phys);
        Ok(Vmcore { data, loads, vmcoreinfo, cpus })
    }

    /// The `VMCOREINFO` note's text, if the dump has one.
    pub fn vmcoreinfo_text(&self) -> Option<&'d str> {
        self.vmcoreinfo
    }

    /// The CPUs' registers, in note order (CPU 0 first).
    pub fn cpus(&self) -> &[CpuRegs] {
        &self.cpus
    }

    /// The memory segments, sorted by physical address.
    pub fn loads(&self) -> &[Load] {
        &self.loads
    }

    /// The dump's bytes at physical `[phys, phys + len)`, when they lie in one segment's file
    /// part; `Some(None)` when they are in a segment but beyond its file part (zeros).
    fn phys_slice(&self, phys: u64, len: usize) -> Option<Option<&'d [u8]>> {
        let i = self.loads.partition_point(|l| l.phys <= phys).checked_sub(1)?;
        let load = &self.loads[i];
        let off = phys - load.phys;
        let end = off.checked_add(len as u64)?;
        if end > load.mem_size {
            return None;
        }
        if end > load.file_size {
            return Some(None);
        }
        let start = usize::try_from(load.offset + off).ok()?;
        Some(Some(&self.data[start..start + len]))
    }

    /// Copies physical memory into `buf`; false when some byte of it is not in the dump.
    pub fn read_phys(&self, phys: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let at = phys.wrapping_add(done as u64);
            // Never cross a page: segments start and end on page boundaries.
            let chunk = (4096 - (at & 4095) as usize).min(buf.len() - done);
            match self.phys_slice(at, chunk) {
                Some(Some(bytes)) => buf[done..done + chunk].copy_from_slice(bytes),
                Some(None) => buf[done..done + chunk].fill(0),
                None => return false,
            }
            done += chunk;
        }
        true
    }

    /// The little-endian word at physical `phys`.
    pub fn phys_u64(&self, phys: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_phys(phys, &mut b).then(|| u64::from_le_bytes(b))
    }
}
