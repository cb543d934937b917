//! `VMCOREINFO`: the `KEY=VALUE` lines the kernel leaves for dump readers (kernel/vmcore_info.c,
//! arch/x86/kernel/machine_kexec_64.c): release, build ID, KASLR offset, `phys_base`, the page
//! table root, 5-level paging.

use crate::VmcoreError;

/// The note's lines, parsed.
#[derive(Clone, Debug, Default)]
pub struct VmcoreInfo {
    lines: Vec<(String, String)>,
}

impl VmcoreInfo {
    /// Parses the note's text (lines without `=` are ignored, as the kernel never writes them).
    pub fn parse(text: &str) -> VmcoreInfo {
        let lines = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        VmcoreInfo { lines }
    }

    /// The value of `key` (`OSRELEASE`, `SYMBOL(init_top_pgt)`, ...).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn required(&self, key: &str) -> Result<&str, VmcoreError> {
        self.get(key).ok_or_else(|| VmcoreError::NotVmcore(format!("VMCOREINFO has no {key}")))
    }

    /// `OSRELEASE`: the kernel release (`uname -r`).
    pub fn osrelease(&self) -> Option<&str> {
        self.get("OSRELEASE")
    }

    /// `BUILD-ID`: the kernel image's GNU build ID, hex.
    pub fn build_id(&self) -> Option<&str> {
        self.get("BUILD-ID")
    }

    /// `SYMBOL(name)`: a runtime (KASLR-shifted) address, hex without `0x`.
    pub fn symbol(&self, name: &str) -> Option<u64> {
        u64::from_str_radix(self.get(&format!("SYMBOL({name})"))?, 16).ok()
    }

    /// `NUMBER(name)`: a decimal number, signed (phys_base is negative when the kernel runs
    /// below its link address), as the word it is in the kernel.
    pub fn number(&self, name: &str) -> Option<u64> {
        let v = self.get(&format!("NUMBER({name})"))?;
        let v = v
            .strip_prefix("0x")
            .map_or_else(|| v.parse::<i64>().ok().map(|n| n as u64), |h| u64::from_str_radix(h, 16).ok())?;
        Some(v)
    }

    /// `KERNELOFFSET`: how far KASLR moved the kernel image from its link address (hex; 0 when
    /// KASLR is off).
    pub fn kernel_offset(&self) -> Result<u64, VmcoreError> {
        let v = self.required("KERNELOFFSET")?;
        u64::from_str_radix(v, 16)
            .map_err(|_| VmcoreError::NotVmcore(format!("VMCOREINFO: KERNELOFFSET={v} is not hex")))
    }

    /// `NUMBER(phys_base)`: physical address = virtual - `__START_KERNEL_map` + phys_base, for
    /// the kernel image's mapping.
    pub fn phys_base(&self) -> Result<u64, VmcoreError> {
        self.number("phys_base").ok_or_else(|| VmcoreError::NotVmcore("VMCOREINFO has no NUMBER(phys_base)".into()))
    }

    /// `NUMBER(pgtable_l5_enabled)`: 5-level paging (LA57) in use.
    pub fn five_level(&self) -> bool {
        self.number("pgtable_l5_enabled") == Some(1)
    }
}
