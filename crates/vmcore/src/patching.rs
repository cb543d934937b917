//! `verify-patching` on a running kernel: at every patch site of the image, the bytes the dead
//! kernel really had, which modelled choice they are (orc-patch's [`running`] match), and the
//! image's ORC table checked at every boundary of that code (orc-patch's walker, given only
//! the running choice).

use std::collections::BTreeMap;

use orc_elf::orc::read_orc_table;
use orc_flow::{AddressMap, KernelEra};
use orc_patch::running::{as_running, running_choice, RunningRules};
use orc_patch::table::{Lookup, Names};
use orc_patch::verify::Walker;
use orc_patch::{Counts, Failure, Site, SiteKind, UnmodelledAt};

use crate::kernel::Kernel;
use crate::VmcoreError;

/// A site whose running bytes are none of the modelled choices: a finding.
#[derive(Clone, Debug)]
pub struct Unmatched {
    /// Which table.
    pub kind: SiteKind,
    /// `function+0xoff (section+0xoff)`.
    pub site_name: String,
    /// Runtime address.
    pub address: u64,
    /// The bytes found, as long as the longest choice.
    pub running: Vec<u8>,
    /// Each choice: name and bytes.
    pub choices: Vec<(String, Vec<u8>)>,
    /// Another site at the same address whose choice the bytes are (6.1: the native
    /// alternative written over a paravirt call site).
    pub same_place: Option<String>,
    /// In `.init.*`/`.exit.*` code, which the kernel freed after boot.
    pub freed: bool,
}

/// The verdict on the running kernel.
#[derive(Debug)]
pub struct RunningReport {
    /// Kernel era of the patching rules.
    pub era: KernelEra,
    /// How many sites ran each choice, by (site kind, choice class).
    pub census: BTreeMap<(String, String), usize>,
    /// Sites whose bytes are not in the dump.
    pub unreadable: Vec<String>,
    /// Sites whose bytes are no modelled choice.
    pub unmatched: Vec<Unmatched>,
    /// The walker's counters over the running choices.
    pub counts: Counts,
    /// Failed lookups in the running code.
    pub failures: Vec<Failure>,
    /// Running choices the state rules cannot follow.
    pub unmodelled: Vec<UnmodelledAt>,
    /// `pv_ops` direct calls, by target function.
    pub call_targets: BTreeMap<String, usize>,
}

/// What kind of choice a name is, for the census: `original`, `replacement`, `direct call`,
/// `nop_func`, `nop`, `jmp`, `call`, `_paravirt_nop`.
fn class(kind: SiteKind, index: usize, name: &str) -> String {
    match kind {
        SiteKind::Alternative if index == 0 => "original".into(),
        SiteKind::Alternative if name.ends_with("(direct call)") => "direct call".into(),
        SiteKind::Alternative if name.ends_with("(nop_func)") => "nop_func".into(),
        SiteKind::Alternative => "replacement".into(),
        SiteKind::JumpLabel => name.to_string(),
        SiteKind::Paravirt => name.rsplit(": ").next().unwrap_or(name).to_string(),
    }
}

/// Reads every patch site's running bytes and checks the table over them.
pub fn verify_running(kernel: &Kernel<'_, '_>) -> Result<RunningReport, VmcoreError> {
    let file = &kernel.image.file;
    let bad = |e: &dyn std::fmt::Display| VmcoreError::Image(e.to_string());
    let table = read_orc_table(file, None)
        .map_err(|e| bad(&e))?
        .ok_or_else(|| VmcoreError::Image("has no ORC table".into()))?;
    let era = KernelEra::from_file(file).unwrap_or(KernelEra::V6_12);
    let sites = orc_patch::sites(file, era).map_err(|e| bad(&e))?;
    let map = AddressMap::new(file);
    let lookup = Lookup::new(file, &table);
    let names = Names::new(file);
    let mut walker = Walker::new(file, &lookup, &names);
    let rules =
        RunningRules { kaslr: kernel.kaslr, return_thunk: kernel.image.symbol("__x86_return_thunk").map(|s| s.value) };
    let mut census = BTreeMap::new();
    let mut unreadable = Vec::new();
    let mut unmatched = Vec::new();
    let mut call_targets = BTreeMap::new();
    // Which choice ran at each address (for a site overwritten by another at the same place).
    let mut ran_at: BTreeMap<u64, (String, Vec<u8>)> = BTreeMap::new();
    let mut pending = Vec::new();
    for site in &sites {
        let link = map.address(site.at);
        let address = link.wrapping_add(kernel.kaslr);
        let mut running = vec![0u8; site.len];
        if !kernel.read(address, &mut running) {
            unreadable.push(names.both(site.at));
            continue;
        }
        match running_choice(&map, site, &running, &rules) {
            Some(m) => {
                let choice = &site.choices[m.index];
                *census.entry((site.kind.name().to_string(), class(site.kind, m.index, &choice.name))).or_insert(0) +=
                    1;
                if let Some(t) = m.call_target {
                    let name = kernel.image.function_at(t).map_or_else(
                        || format!("{t:#x}"),
                        |(f, off)| {
                            if off == 0 {
                                f.name.to_string()
                            } else {
                                format!("{}+{off:#x}", f.name)
                            }
                        },
                    );
                    *call_targets.entry(name).or_insert(0) += 1;
                }
                ran_at.insert(link, (format!("{} {}", site.kind.name(), choice.name), choice.bytes.clone()));
                let only = Site { choices: vec![as_running(choice, &running)], ..site.clone() };
                walker.site(&only);
            }
            None => pending.push((site, link, address, running)),
        }
    }
    for (site, link, address, running) in pending {
        // A shorter site written over by another at the same address.
        let same_place = ran_at
            .get(&link)
            .filter(|(_, b)| running.starts_with(b) || b.starts_with(&running))
            .map(|(n, _)| n.clone());
        // The kernel frees its init code after boot (free_initmem()): what is there now is
        // whatever reused the pages, and no task can be running it.
        let freed = names.section(site.at.section).starts_with(".init.")
            || names.section(site.at.section).starts_with(".exit.");
        let key = if same_place.is_some() {
            "overwritten at the same place"
        } else if freed {
            "freed (init/exit code)"
        } else {
            "none (finding)"
        };
        *census.entry((site.kind.name().to_string(), key.to_string())).or_insert(0) += 1;
        unmatched.push(Unmatched {
            kind: site.kind,
            site_name: names.both(site.at),
            address,
            running,
            choices: site.choices.iter().map(|c| (c.name.clone(), c.bytes.clone())).collect(),
            same_place,
            freed,
        });
    }
    Ok(RunningReport {
        era,
        census,
        unreadable,
        unmatched,
        counts: walker.counts,
        failures: walker.failures,
        unmodelled: walker.unmodelled,
        call_targets,
    })
}
