/* The ORC table objtool 6.12 writes for pv_save_fl.S (layout v3): the union of its streams.
 * Assembled after the source by tests that verify a table against the code (orc-patch).
 * The same rows as objtool's table up to the unreached int3 at .text+0x10 (the section
 * terminator after it is left out); crates/check/tests/seed.rs asserts orctool check's rows. */
    .section .orc_unwind_ip,"a"
    .long .text+0x0 - .
    .long .text+0x5 - .
    .long .text+0x6 - .
    .long .text+0x10 - .
    .section .orc_unwind,"a"
    .short 8, 0
    .byte 0x05, 0x02
    .short 16, 0
    .byte 0x05, 0x02
    .short 8, 0
    .byte 0x05, 0x02
    .short 0, 0
    .byte 0x00, 0x00
