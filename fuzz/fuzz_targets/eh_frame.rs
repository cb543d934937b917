//! The `.eh_frame` converter on raw section bytes (no ELF around them), at a few addresses
//! and in each layout.
#![no_main]
use libfuzzer_sys::fuzz_target;
use orc_format::Layout;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (head, section) = data.split_at(2);
    let layout = Layout::ALL[usize::from(head[0]) % Layout::ALL.len()];
    let (eh_frame_addr, text_addr) = match head[1] % 4 {
        0 => (0x2000, 0x1000),
        1 => (0x1000, 0x2000),
        2 => (u64::MAX - 0x100, 0),
        _ => (0, u64::MAX - 0x100),
    };
    let _ = orc_linked::eh_frame::convert(section, eh_frame_addr, text_addr, layout);
});
