//! Whole functions, instruction by instruction: the ORC entry before each one, as objtool
//! 6.12 generated it for the same bytes (each listing was assembled with GNU `as` and run
//! through objtool; the expected column is its `--dump=orc`). The instructions are decoded by
//! `orc-decode` and applied by the rules, from the function entry state.

mod common;

use common::assert_listing;

/// The classic frame-pointer function: `push %rbp; mov %rsp,%rbp`, a callee-saved
/// register pushed below the frame, restored with a load, and `leave`.
#[test]
fn frame_pointer_with_leave() {
    assert_listing(&[
        ("push %rbp", &[0x55], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:sp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "sub $0x18,%rsp",
            &[0x48, 0x83, 0xec, 0x18],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov -8(%rbp),%rbx",
            &[0x48, 0x8b, 0x5d, 0xf8],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        ("leave", &[0xc9], "type:call sp:bp+16 bp:prevsp-16 signal:0"),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// Without a frame pointer the CFA follows every push, pop and `%rsp` adjustment.
#[test]
fn no_frame_pointer() {
    assert_listing(&[
        (
            "push %r12",
            &[0x41, 0x54],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        ("push %rbx", &[0x53], "type:call sp:sp+16 bp:(und) signal:0"),
        (
            "sub $8,%rsp",
            &[0x48, 0x83, 0xec, 0x08],
            "type:call sp:sp+24 bp:(und) signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:sp+32 bp:(und) signal:0",
        ),
        (
            "add $8,%rsp",
            &[0x48, 0x83, 0xc4, 0x08],
            "type:call sp:sp+32 bp:(und) signal:0",
        ),
        ("pop %rbx", &[0x5b], "type:call sp:sp+24 bp:(und) signal:0"),
        (
            "pop %r12",
            &[0x41, 0x5c],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// GCC's DRAP realignment through `%r10`, with the DRAP register pushed (CFA found through
/// the saved copy, `*(bp-16)`) and popped back before `lea -8(%r10),%rsp`.
#[test]
fn gcc_drap_r10() {
    assert_listing(&[
        (
            "lea 0x8(%rsp),%r10",
            &[0x4c, 0x8d, 0x54, 0x24, 0x08],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "and $0xffffffffffffffc0,%rsp",
            &[0x48, 0x83, 0xe4, 0xc0],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "pushq -0x8(%r10)",
            &[0x41, 0xff, 0x72, 0xf8],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        ("push %rbp", &[0x55], "type:call sp:r10+0 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        (
            "push %r12",
            &[0x41, 0x54],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "push %r10",
            &[0x41, 0x52],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            "type:call sp:(bp-16) bp:bp+0 signal:0",
        ),
        (
            "sub $0x48,%rsp",
            &[0x48, 0x83, 0xec, 0x48],
            "type:call sp:(bp-16) bp:bp+0 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:(bp-16) bp:bp+0 signal:0",
        ),
        (
            "add $0x48,%rsp",
            &[0x48, 0x83, 0xc4, 0x48],
            "type:call sp:(bp-16) bp:bp+0 signal:0",
        ),
        ("pop %rbx", &[0x5b], "type:call sp:(bp-16) bp:bp+0 signal:0"),
        (
            "pop %r10",
            &[0x41, 0x5a],
            "type:call sp:(bp-16) bp:bp+0 signal:0",
        ),
        (
            "pop %r12",
            &[0x41, 0x5c],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        ("pop %rbp", &[0x5d], "type:call sp:r10+0 bp:bp+0 signal:0"),
        (
            "lea -0x8(%r10),%rsp",
            &[0x49, 0x8d, 0x62, 0xf8],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// The DRAP epilogue variant that ends with `leave; lea -0x8(%r10),%rsp`.
#[test]
fn gcc_drap_r10_leave_epilogue() {
    assert_listing(&[
        (
            "lea 0x8(%rsp),%r10",
            &[0x4c, 0x8d, 0x54, 0x24, 0x08],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "and $0xfffffffffffffff0,%rsp",
            &[0x48, 0x83, 0xe4, 0xf0],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "pushq -0x8(%r10)",
            &[0x41, 0xff, 0x72, 0xf8],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        ("push %rbp", &[0x55], "type:call sp:r10+0 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        (
            "push %r14",
            &[0x41, 0x56],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "push %r13",
            &[0x41, 0x55],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "push %r12",
            &[0x41, 0x54],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "push %r10",
            &[0x41, 0x52],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            "type:call sp:(bp-32) bp:bp+0 signal:0",
        ),
        (
            "sub $0x28,%rsp",
            &[0x48, 0x83, 0xec, 0x28],
            "type:call sp:(bp-32) bp:bp+0 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:(bp-32) bp:bp+0 signal:0",
        ),
        (
            "add $0x28,%rsp",
            &[0x48, 0x83, 0xc4, 0x28],
            "type:call sp:(bp-32) bp:bp+0 signal:0",
        ),
        ("pop %rbx", &[0x5b], "type:call sp:(bp-32) bp:bp+0 signal:0"),
        (
            "pop %r10",
            &[0x41, 0x5a],
            "type:call sp:(bp-32) bp:bp+0 signal:0",
        ),
        (
            "pop %r12",
            &[0x41, 0x5c],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "pop %r13",
            &[0x41, 0x5d],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "pop %r14",
            &[0x41, 0x5e],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        ("leave", &[0xc9], "type:call sp:r10+0 bp:bp+0 signal:0"),
        (
            "lea -0x8(%r10),%rsp",
            &[0x49, 0x8d, 0x62, 0xf8],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// The DRAP variant that saves registers with `mov` to `%rbp`-relative slots and reloads
/// them (the DRAP register too) before `leave`.
#[test]
fn gcc_drap_r10_stores_and_loads() {
    assert_listing(&[
        (
            "lea 0x8(%rsp),%r10",
            &[0x4c, 0x8d, 0x54, 0x24, 0x08],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "and $0xfffffffffffffff0,%rsp",
            &[0x48, 0x83, 0xe4, 0xf0],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "pushq -0x8(%r10)",
            &[0x41, 0xff, 0x72, 0xf8],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        ("push %rbp", &[0x55], "type:call sp:r10+0 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        (
            "mov %r10,-0x18(%rbp)",
            &[0x4c, 0x89, 0x55, 0xe8],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "mov %rbx,-0x20(%rbp)",
            &[0x48, 0x89, 0x5d, 0xe0],
            "type:call sp:(bp-24) bp:bp+0 signal:0",
        ),
        (
            "mov %r12,-0x10(%rbp)",
            &[0x4c, 0x89, 0x65, 0xf0],
            "type:call sp:(bp-24) bp:bp+0 signal:0",
        ),
        (
            "mov %r13,-0x8(%rbp)",
            &[0x4c, 0x89, 0x6d, 0xf8],
            "type:call sp:(bp-24) bp:bp+0 signal:0",
        ),
        (
            "sub $0x30,%rsp",
            &[0x48, 0x83, 0xec, 0x30],
            "type:call sp:(bp-24) bp:bp+0 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:(bp-24) bp:bp+0 signal:0",
        ),
        (
            "mov -0x18(%rbp),%r10",
            &[0x4c, 0x8b, 0x55, 0xe8],
            "type:call sp:(bp-24) bp:bp+0 signal:0",
        ),
        (
            "mov -0x20(%rbp),%rbx",
            &[0x48, 0x8b, 0x5d, 0xe0],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "mov -0x10(%rbp),%r12",
            &[0x4c, 0x8b, 0x65, 0xf0],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        (
            "mov -0x8(%rbp),%r13",
            &[0x4c, 0x8b, 0x6d, 0xf8],
            "type:call sp:r10+0 bp:bp+0 signal:0",
        ),
        ("leave", &[0xc9], "type:call sp:r10+0 bp:bp+0 signal:0"),
        (
            "lea -0x8(%r10),%rsp",
            &[0x49, 0x8d, 0x62, 0xf8],
            "type:call sp:r10+0 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// DRAP through `%r13`, which is callee-saved and so pushed before being used.
#[test]
fn gcc_drap_r13() {
    assert_listing(&[
        (
            "push %r13",
            &[0x41, 0x55],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "lea 0x10(%rsp),%r13",
            &[0x4c, 0x8d, 0x6c, 0x24, 0x10],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "and $0xfffffffffffffff0,%rsp",
            &[0x48, 0x83, 0xe4, 0xf0],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "pushq -0x8(%r13)",
            &[0x41, 0xff, 0x75, 0xf8],
            "type:call sp:r13+0 bp:(und) signal:0",
        ),
        ("push %rbp", &[0x55], "type:call sp:r13+0 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:r13+0 bp:(und) signal:0",
        ),
        (
            "push %r13",
            &[0x41, 0x55],
            "type:call sp:r13+0 bp:bp+0 signal:0",
        ),
        (
            "sub $0x18,%rsp",
            &[0x48, 0x83, 0xec, 0x18],
            "type:call sp:(bp-8) bp:bp+0 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:(bp-8) bp:bp+0 signal:0",
        ),
        (
            "add $0x18,%rsp",
            &[0x48, 0x83, 0xc4, 0x18],
            "type:call sp:(bp-8) bp:bp+0 signal:0",
        ),
        (
            "pop %r13",
            &[0x41, 0x5d],
            "type:call sp:(bp-8) bp:bp+0 signal:0",
        ),
        ("pop %rbp", &[0x5d], "type:call sp:r13+0 bp:bp+0 signal:0"),
        (
            "lea -0x10(%r13),%rsp",
            &[0x49, 0x8d, 0x65, 0xf0],
            "type:call sp:r13+0 bp:(und) signal:0",
        ),
        (
            "pop %r13",
            &[0x41, 0x5d],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// The kernel's `call_on_stack()`: `mov %rsp,(tos); mov tos,%rsp; call; pop %rsp`. During the
/// call the caller's frame is `*%rsp + 16`.
#[test]
fn stack_swizzle() {
    assert_listing(&[
        ("push %rbx", &[0x53], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rdi,%rbx",
            &[0x48, 0x89, 0xfb],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "mov %rsp,(%rbx)",
            &[0x48, 0x89, 0x23],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "mov %rbx,%rsp",
            &[0x48, 0x89, 0xdc],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:(sp)+16 bp:(und) signal:0",
        ),
        (
            "pop %rsp",
            &[0x5c],
            "type:call sp:(sp)+16 bp:(und) signal:0",
        ),
        ("pop %rbx", &[0x5b], "type:call sp:sp+16 bp:(und) signal:0"),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// The same swizzle with the CFA on `%rbp`: the base cannot change, so the swizzle counts
/// as a push and `pop %rsp` as an ordinary pop.
#[test]
fn stack_swizzle_with_frame_pointer() {
    assert_listing(&[
        ("push %rbp", &[0x55], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:sp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov %rsp,(%rdi)",
            &[0x48, 0x89, 0x27],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov %rdi,%rsp",
            &[0x48, 0x89, 0xfc],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rsp",
            &[0x5c],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rbp",
            &[0x5d],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// Clang's copy of `%rsp` passed through two registers and moved back.
#[test]
fn clang_rsp_musical_chairs() {
    assert_listing(&[
        ("push %rbx", &[0x53], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rsp,%rdx",
            &[0x48, 0x89, 0xe2],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "sub $0x100,%rsp",
            &[0x48, 0x81, 0xec, 0x00, 0x01, 0x00, 0x00],
            "type:call sp:sp+16 bp:(und) signal:0",
        ),
        (
            "mov %rdx,%rbx",
            &[0x48, 0x89, 0xd3],
            "type:call sp:sp+272 bp:(und) signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:sp+272 bp:(und) signal:0",
        ),
        (
            "mov %rbx,%rsp",
            &[0x48, 0x89, 0xdc],
            "type:call sp:sp+272 bp:(und) signal:0",
        ),
        ("pop %rbx", &[0x5b], "type:call sp:sp+16 bp:(und) signal:0"),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// GCC's `lea 0x8(%rsp),%rcx ... mov %rcx,%rsp`: the copy restores the frame (here to
/// CFA+0, so the function pushes its own return slot again).
#[test]
fn lea_copy_of_rsp_moved_back() {
    assert_listing(&[
        (
            "lea 0x8(%rsp),%rcx",
            &[0x48, 0x8d, 0x4c, 0x24, 0x08],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "sub $0x20,%rsp",
            &[0x48, 0x83, 0xec, 0x20],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:sp+40 bp:(und) signal:0",
        ),
        (
            "mov %rcx,%rsp",
            &[0x48, 0x89, 0xcc],
            "type:call sp:sp+40 bp:(und) signal:0",
        ),
        (
            "sub $8,%rsp",
            &[0x48, 0x83, 0xec, 0x08],
            "type:call sp:sp+0 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// Callee-saved registers stored to and loaded from `%rbp`-relative slots; `mov %rbp,%rsp`
/// then `pop %rbp`.
#[test]
fn frame_pointer_with_stores() {
    assert_listing(&[
        ("push %rbp", &[0x55], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:sp+16 bp:prevsp-16 signal:0",
        ),
        (
            "sub $0x20,%rsp",
            &[0x48, 0x83, 0xec, 0x20],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov %rbx,-0x10(%rbp)",
            &[0x48, 0x89, 0x5d, 0xf0],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov %r12,-0x8(%rbp)",
            &[0x4c, 0x89, 0x65, 0xf8],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov -0x10(%rbp),%rbx",
            &[0x48, 0x8b, 0x5d, 0xf0],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov -0x8(%rbp),%r12",
            &[0x4c, 0x8b, 0x65, 0xf8],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "mov %rbp,%rsp",
            &[0x48, 0x89, 0xec],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rbp",
            &[0x5d],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// Callee-saved registers stored to and loaded from `%rsp`-relative slots, no frame pointer.
#[test]
fn stores_relative_to_rsp() {
    assert_listing(&[
        (
            "sub $0x28,%rsp",
            &[0x48, 0x83, 0xec, 0x28],
            "type:call sp:sp+8 bp:(und) signal:0",
        ),
        (
            "mov %rbx,0x18(%rsp)",
            &[0x48, 0x89, 0x5c, 0x24, 0x18],
            "type:call sp:sp+48 bp:(und) signal:0",
        ),
        (
            "mov %rbp,0x20(%rsp)",
            &[0x48, 0x89, 0x6c, 0x24, 0x20],
            "type:call sp:sp+48 bp:(und) signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:sp+48 bp:prevsp-16 signal:0",
        ),
        (
            "mov 0x18(%rsp),%rbx",
            &[0x48, 0x8b, 0x5c, 0x24, 0x18],
            "type:call sp:sp+48 bp:prevsp-16 signal:0",
        ),
        (
            "mov 0x20(%rsp),%rbp",
            &[0x48, 0x8b, 0x6c, 0x24, 0x20],
            "type:call sp:sp+48 bp:prevsp-16 signal:0",
        ),
        (
            "add $0x28,%rsp",
            &[0x48, 0x83, 0xc4, 0x28],
            "type:call sp:sp+48 bp:(und) signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// Clang's frame-pointer prologue pushing callee-saved registers and `%rax` for alignment.
#[test]
fn clang_frame_pointer_with_pushes() {
    assert_listing(&[
        ("push %rbp", &[0x55], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:sp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %r15",
            &[0x41, 0x57],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %r14",
            &[0x41, 0x56],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %rax",
            &[0x50],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "add $0x8,%rsp",
            &[0x48, 0x83, 0xc4, 0x08],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rbx",
            &[0x5b],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %r14",
            &[0x41, 0x5e],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %r15",
            &[0x41, 0x5f],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rbp",
            &[0x5d],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}

/// An epilogue that points `%rsp` below the saved registers with `lea -0x10(%rbp),%rsp`.
#[test]
fn lea_from_rbp_epilogue() {
    assert_listing(&[
        ("push %rbp", &[0x55], "type:call sp:sp+8 bp:(und) signal:0"),
        (
            "mov %rsp,%rbp",
            &[0x48, 0x89, 0xe5],
            "type:call sp:sp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %r12",
            &[0x41, 0x54],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "push %rbx",
            &[0x53],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "sub $0x10,%rsp",
            &[0x48, 0x83, 0xec, 0x10],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "call ext",
            &[0xe8, 0x00, 0x00, 0x00, 0x00],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "lea -0x10(%rbp),%rsp",
            &[0x48, 0x8d, 0x65, 0xf0],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rbx",
            &[0x5b],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %r12",
            &[0x41, 0x5c],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        (
            "pop %rbp",
            &[0x5d],
            "type:call sp:bp+16 bp:prevsp-16 signal:0",
        ),
        ("ret", &[0xc3], "type:call sp:sp+8 bp:(und) signal:0"),
    ]);
}
