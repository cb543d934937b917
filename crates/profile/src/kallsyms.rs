//! The kernel's function symbols, as perf names kernel frames: from `/proc/kallsyms`.

/// Kernel function symbols sorted by address.
#[derive(Debug, Default)]
pub struct KernelSymbols {
    /// (address, name, where: `[kernel.kallsyms]` or `[module]`), sorted by address.
    symbols: Vec<(u64, String, String)>,
}

impl KernelSymbols {
    /// The symbols of the running kernel (none if `/proc/kallsyms` cannot be read or hides
    /// its addresses: every kernel frame is then `[unknown]`).
    pub fn running() -> KernelSymbols {
        std::fs::read_to_string("/proc/kallsyms").map(|t| KernelSymbols::parse(&t)).unwrap_or_default()
    }

    /// Parses the text of `/proc/kallsyms`: `address type name [module]` per line; text
    /// symbols only (types t, T, w, W), as perf keeps.
    pub fn parse(text: &str) -> KernelSymbols {
        let mut symbols: Vec<(u64, String, String)> = text
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let addr = u64::from_str_radix(f.next()?, 16).ok()?;
                let kind = f.next()?;
                let name = f.next()?;
                if addr == 0 || !matches!(kind, "t" | "T" | "w" | "W") {
                    return None;
                }
                let dso = match f.next() {
                    Some(module) => module.to_string(),
                    None => "[kernel.kallsyms]".to_string(),
                };
                Some((addr, name.to_string(), dso))
            })
            .collect();
        symbols.sort_by_key(|s| s.0);
        KernelSymbols { symbols }
    }

    /// The function holding `addr`: its name, start and where it lives.
    pub fn find(&self, addr: u64) -> Option<(&str, u64, &str)> {
        let i = self.symbols.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, name, dso) = &self.symbols[i];
        Some((name, *start, dso))
    }
}
