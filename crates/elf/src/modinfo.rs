//! The kernel version a file was built for, used to pick the ORC layout when a file has no
//! `.orc_header` (kernels before 6.3.10/6.4).

use crate::file::ElfFile;

/// A kernel release, as far as the layout question needs it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct KernelVersion {
    /// Major number (`6` of `6.1.0-56-amd64`).
    pub major: u32,
    /// Minor number (`1` of `6.1.0-56-amd64`).
    pub minor: u32,
}

impl core::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Parses the leading `MAJOR.MINOR` of a release string such as `6.12.117+deb12-amd64`.
pub fn parse_release(release: &str) -> Option<KernelVersion> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some(KernelVersion { major, minor })
}

/// The kernel version a file says it was built for: a module's `vermagic=` in `.modinfo`, or
/// the `Linux version X.Y` banner in a vmlinux's `.rodata`.
pub fn kernel_version(file: &ElfFile<'_>) -> Option<KernelVersion> {
    if let Ok(Some(modinfo)) = file.section_by_name(".modinfo") {
        for field in modinfo.data.split(|&b| b == 0) {
            if let Some(value) = field.strip_prefix(b"vermagic=") {
                return parse_release(core::str::from_utf8(value).ok()?);
            }
        }
    }
    if let Ok(Some(rodata)) = file.section_by_name(".rodata") {
        const BANNER: &[u8] = b"Linux version ";
        let at = rodata.data.windows(BANNER.len()).position(|w| w == BANNER)?;
        let rest = &rodata.data[at + BANNER.len()..];
        let end = rest.iter().position(|&b| b == b' ' || b == 0).unwrap_or(rest.len()).min(64);
        return parse_release(core::str::from_utf8(&rest[..end]).ok()?);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(parse_release("6.12.117+deb12-amd64"), Some(KernelVersion { major: 6, minor: 12 }));
        assert_eq!(parse_release("6.1.0-56-amd64 SMP"), Some(KernelVersion { major: 6, minor: 1 }));
        assert_eq!(parse_release("4.14"), Some(KernelVersion { major: 4, minor: 14 }));
        assert_eq!(parse_release("vermagic"), None);
        assert_eq!(parse_release("6"), None);
    }
}
