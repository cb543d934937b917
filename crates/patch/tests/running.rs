//! Which choice a running kernel's bytes are (`orc_patch::running`), on the testkit's small
//! linked image: its own bytes are the original; a jump label's `jmp` matches in the kernel's
//! rel32 and shortened rel8 forms, only when aimed at the table's target; a changed byte
//! matches nothing.

use orc_elf::ElfFile;
use orc_flow::{AddressMap, KernelEra};
use orc_patch::running::{running_choice, RunningRules};
use orc_patch::{Origin, SiteKind};
use orc_testkit::{link, linked_image_g_table, linked_image_source, LINKED_IMAGE_SCRIPT};

#[test]
fn running_bytes_against_the_choices() {
    let (_, exe) = link(&linked_image_source(&linked_image_g_table(false)), LINKED_IMAGE_SCRIPT);
    let file = ElfFile::parse(&exe).unwrap();
    let era = KernelEra::from_file(&file).unwrap_or(KernelEra::V6_12);
    let sites = orc_patch::sites(&file, era).unwrap();
    let map = AddressMap::new(&file);
    let rules = RunningRules::default();
    assert!(!sites.is_empty());
    for site in &sites {
        let data = file.section(site.at.section).unwrap().data;
        let own = &data[site.at.offset as usize..site.at.offset as usize + site.len];
        let m = running_choice(&map, site, own, &rules).expect("the image's own bytes are a choice");
        if site.kind == SiteKind::Alternative {
            assert_eq!(m.index, 0, "the original");
        }
        // Any byte changed: no choice.
        for i in 0..site.len {
            let mut bad = own.to_vec();
            bad[i] ^= 0x40;
            let again = running_choice(&map, site, &bad, &rules);
            assert!(again.is_none() || again.unwrap().index != m.index || site.choices[m.index].bytes.len() <= i, "{i}");
        }
    }
    let label = sites.iter().find(|s| s.kind == SiteKind::JumpLabel).expect("a jump label");
    assert_eq!(label.len, 5);
    let Origin::Branch(to) = label.choices[1].origins[1] else { panic!("{:?}", label.choices[1].origins) };
    let site = map.address(label.at);
    let target = map.address(to);
    let rel32 = |t: u64| {
        let mut b = vec![0xe9];
        b.extend_from_slice(&(t.wrapping_sub(site + 5) as i32).to_le_bytes());
        b
    };
    let jmp = running_choice(&map, label, &rel32(target), &rules).unwrap();
    assert_eq!(label.choices[jmp.index].name, "jmp");
    assert!(running_choice(&map, label, &rel32(target + 1), &rules).is_none(), "aimed elsewhere");
    let short = target.wrapping_sub(site + 2) as i64;
    if (-128..128).contains(&short) {
        let b = [0xeb, short as i8 as u8, 0xcc, 0xcc, 0xcc];
        assert_eq!(running_choice(&map, label, &b, &rules).map(|m| m.index), Some(jmp.index));
        let b = [0xeb, short as i8 as u8, 0xcc, 0x90, 0xcc];
        assert!(running_choice(&map, label, &b, &rules).is_none(), "padding neither int3s nor a NOP");
    }
    let nop = running_choice(&map, label, &label.choices[0].bytes, &rules).unwrap();
    assert_eq!(label.choices[nop.index].name, "nop");
}
