//! Every special section of every real module. Runs when `ORCTOOL_REAL_MODULES` names a
//! directory of `.ko` files (for example the 6.12 corpus, `scripts/lib/corpus.sh modules
//! 6.12`) or of pre-link `.o` objects (the gold set, which still has its `.discard.*`
//! sections); each file is read with the era its `vermagic` names, 6.12 when it names none. Besides "no errors", checks
//! that the records point where they must: code into executable sections, replacements into
//! `.altinstr_replacement`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use orc_elf::ElfFile;
use orc_flow::{Counts, KernelEra, Location, SpecialSections};

fn modules() -> Option<Vec<PathBuf>> {
    let dir = std::env::var_os("ORCTOOL_REAL_MODULES")?;
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable corpus directory").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "ko" || x == "o") {
                out.push(p);
            }
        }
    }
    out.sort();
    Some(out)
}

#[test]
fn every_special_section_of_every_module() {
    let Some(modules) = modules() else {
        eprintln!("ORCTOOL_REAL_MODULES not set: real-module special sections skipped");
        return;
    };
    assert!(!modules.is_empty(), "no .ko or .o under ORCTOOL_REAL_MODULES");
    let mut total = Counts::default();
    let mut with: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut eras: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for path in &modules {
        let bytes = std::fs::read(path).unwrap();
        let file = ElfFile::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let era = KernelEra::from_file(&file).unwrap_or(KernelEra::V6_12);
        *eras.entry(era.to_string()).or_default() += 1;
        let s = match SpecialSections::read(&file, era) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let exec = |l: Location| file.section(l.section).map(|s| s.is_executable()).unwrap_or(false);
        let name = |l: Location| file.section(l.section).map(|s| s.name).unwrap_or("");
        let mut bad =
            |what: &str, l: Location| failures.push(format!("{}: {what} at {l} ({})", path.display(), name(l)));
        for a in &s.alternatives {
            if !exec(a.orig) {
                bad("alternative orig", a.orig);
            }
            if let Some(r) = a.replacement {
                if name(r) != ".altinstr_replacement" {
                    bad("alternative replacement", r);
                }
            }
            assert_eq!(a.replacement.is_some(), a.repl_len > 0);
            assert!(a.group_orig_len >= a.orig_len);
        }
        for j in &s.jump_labels {
            if !exec(j.code) || !exec(j.target) {
                bad("jump label", j.code);
            }
        }
        for x in &s.exception_table {
            if !exec(x.insn) || !exec(x.fixup) {
                bad("exception table entry", x.insn);
            }
        }
        for h in &s.unwind_hints {
            if !exec(h.site) {
                bad("unwind hint", h.site);
            }
        }
        for a in &s.annotations {
            if !exec(a.site) {
                bad("annotation", a.site);
            }
        }
        for p in &s.paravirt {
            if !exec(p.instr) {
                bad("paravirt site", p.instr);
            }
        }
        let o = &s.outputs;
        for list in [&o.retpoline_sites, &o.return_sites, &o.call_sites, &o.ibt_endbr_seal, &o.cfi_sites] {
            for &l in list.iter().flatten() {
                if !exec(l) {
                    bad("objtool site", l);
                }
            }
        }
        for sc in o.static_call_sites.iter().flatten() {
            if !exec(sc.addr) {
                bad("static call site", sc.addr);
            }
        }
        let c = s.counts();
        for (n, k) in c.fields() {
            if k > 0 {
                *with.entry(n).or_default() += 1;
            }
        }
        total += c;
    }
    eprintln!("{} modules, eras {eras:?}", modules.len());
    eprintln!("{:<40} {:>8} {:>10}", "section", "modules", "records");
    for (n, k) in total.fields() {
        eprintln!("{:<40} {:>8} {:>10}", n, with.get(n).copied().unwrap_or(0), k);
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}
