//! The encodings the decoder is tested on, each with its assembly text (GNU syntax), its
//! bytes, and what objtool makes of it. `assembles.rs` checks that the text really assembles
//! to the bytes; `ops.rs` and `kinds.rs` check the decoder.

#![allow(dead_code)]

use orc_decode::InsnKind::{self, *};

/// One instruction: what GNU `as` is given, what it emits, and the expected stack operations
/// (in `StackOp`'s `src -> dest` notation).
pub struct OpCase {
    pub asm: &'static str,
    pub bytes: &'static [u8],
    pub ops: &'static [&'static str],
}

macro_rules! ops {
    ($($asm:literal => [$($b:literal),*] => [$($op:literal),*];)*) => {
        &[$(OpCase { asm: $asm, bytes: &[$($b),*], ops: &[$($op),*] }),*]
    };
}

/// The stack-operation encodings of objtool's decoder (reference 3.2), and the near misses it
/// deliberately ignores.
pub const OPS: &[OpCase] = ops! {
    // push/pop of registers
    "push %rbp"               => [0x55]                   => ["%rbp -> push"];
    "push %rbx"               => [0x53]                   => ["%rbx -> push"];
    "push %r12"               => [0x41, 0x54]             => ["%r12 -> push"];
    "push %r15"               => [0x41, 0x57]             => ["%r15 -> push"];
    "pop %rbp"                => [0x5d]                   => ["pop -> %rbp"];
    "pop %r13"                => [0x41, 0x5d]             => ["pop -> %r13"];
    "pop %rsp"                => [0x5c]                   => ["pop -> %rsp"];
    // pushes of untracked values
    "push $0"                 => [0x6a, 0x00]             => ["const -> push"];
    "push $0x12345678"        => [0x68, 0x78, 0x56, 0x34, 0x12] => ["const -> push"];
    "pushq 8(%rax)"           => [0xff, 0x70, 0x08]       => ["const -> push"];
    "pushq -8(%r10)"          => [0x41, 0xff, 0x72, 0xf8] => ["const -> push"];
    "push %fs"                => [0x0f, 0xa0]             => ["const -> push"];
    "push %gs"                => [0x0f, 0xa8]             => ["const -> push"];
    // pops to untracked places
    "popq (%rax)"             => [0x8f, 0x00]             => ["pop -> mem"];
    "pop %fs"                 => [0x0f, 0xa1]             => ["pop -> mem"];
    "pop %gs"                 => [0x0f, 0xa9]             => ["pop -> mem"];
    // flags
    "pushf"                   => [0x9c]                   => ["const -> pushf"];
    "popf"                    => [0x9d]                   => ["popf -> mem"];
    // add/sub/and on %rsp
    "add $0x10,%rsp"          => [0x48, 0x83, 0xc4, 0x10] => ["add(%rsp, 16) -> %rsp"];
    "sub $0x10,%rsp"          => [0x48, 0x83, 0xec, 0x10] => ["add(%rsp, -16) -> %rsp"];
    "sub $0x1000,%rsp"        => [0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00] => ["add(%rsp, -4096) -> %rsp"];
    "add $0x80,%rsp"          => [0x48, 0x81, 0xc4, 0x80, 0x00, 0x00, 0x00] => ["add(%rsp, 128) -> %rsp"];
    "sub $-8,%rsp"            => [0x48, 0x83, 0xec, 0xf8] => ["add(%rsp, 8) -> %rsp"];
    "and $-16,%rsp"           => [0x48, 0x83, 0xe4, 0xf0] => ["and(%rsp, -16) -> %rsp"];
    "and $0xffffffffffffffc0,%rsp" => [0x48, 0x83, 0xe4, 0xc0] => ["and(%rsp, -64) -> %rsp"];
    "and $-4096,%rsp"         => [0x48, 0x81, 0xe4, 0x00, 0xf0, 0xff, 0xff] => ["and(%rsp, -4096) -> %rsp"];
    "add %rax,%rsp"           => [0x48, 0x01, 0xc4]       => ["add(%rax, 0) -> %rsp"];
    "sub %rcx,%rsp"           => [0x48, 0x29, 0xcc]       => ["add(%rcx, 0) -> %rsp"];
    // mov between registers
    "mov %rsp,%rbp"           => [0x48, 0x89, 0xe5]       => ["%rsp -> %rbp"];
    "mov %rbp,%rsp"           => [0x48, 0x89, 0xec]       => ["%rbp -> %rsp"];
    "mov %rsp,%r10"           => [0x49, 0x89, 0xe2]       => ["%rsp -> %r10"];
    "mov %rax,%rsp"           => [0x48, 0x89, 0xc4]       => ["%rax -> %rsp"];
    "mov %rdi,%rax"           => [0x48, 0x89, 0xf8]       => ["%rdi -> %rax"];
    // stores to stack slots
    "mov %rbx,-8(%rbp)"       => [0x48, 0x89, 0x5d, 0xf8] => ["%rbx -> -8(%rbp)"];
    "mov %rax,-0x108(%rbp)"   => [0x48, 0x89, 0x85, 0xf8, 0xfe, 0xff, 0xff] => ["%rax -> -264(%rbp)"];
    "mov %r12,8(%rsp)"        => [0x4c, 0x89, 0x64, 0x24, 0x08] => ["%r12 -> 8(%rsp)"];
    "mov %rbx,(%rsp)"         => [0x48, 0x89, 0x1c, 0x24] => ["%rbx -> 0(%rsp)"];
    "mov %r10,-0x10(%rbp)"    => [0x4c, 0x89, 0x55, 0xf0] => ["%r10 -> -16(%rbp)"];
    // %rsp stored through another register: the first step of a stack swizzle
    "mov %rsp,(%rdi)"         => [0x48, 0x89, 0x27]       => ["%rsp -> 0(%rdi)"];
    "mov %rsp,0x10(%rax)"     => [0x48, 0x89, 0x60, 0x10] => ["%rsp -> 16(%rax)"];
    "mov %rsp,(%r11)"         => [0x49, 0x89, 0x23]       => ["%rsp -> 0(%r11)"];
    // loads from stack slots
    "mov -8(%rbp),%rbx"       => [0x48, 0x8b, 0x5d, 0xf8] => ["-8(%rbp) -> %rbx"];
    "mov 8(%rsp),%r12"        => [0x4c, 0x8b, 0x64, 0x24, 0x08] => ["8(%rsp) -> %r12"];
    "mov (%rsp),%rbp"         => [0x48, 0x8b, 0x2c, 0x24] => ["0(%rsp) -> %rbp"];
    "mov -0x18(%rbp),%r10"    => [0x4c, 0x8b, 0x55, 0xe8] => ["-24(%rbp) -> %r10"];
    // lea
    "lea 8(%rsp),%r10"        => [0x4c, 0x8d, 0x54, 0x24, 0x08] => ["add(%rsp, 8) -> %r10"];
    "lea 0x10(%rsp),%r13"     => [0x4c, 0x8d, 0x6c, 0x24, 0x10] => ["add(%rsp, 16) -> %r13"];
    "lea -8(%r10),%rsp"       => [0x49, 0x8d, 0x62, 0xf8] => ["add(%r10, -8) -> %rsp"];
    "lea -0x10(%r13),%rsp"    => [0x49, 0x8d, 0x65, 0xf0] => ["add(%r13, -16) -> %rsp"];
    "lea -0x28(%rbp),%rsp"    => [0x48, 0x8d, 0x65, 0xd8] => ["add(%rbp, -40) -> %rsp"];
    "lea (%rsp),%rbp"         => [0x48, 0x8d, 0x2c, 0x24] => ["%rsp -> %rbp"];
    "lea 0x8(%rsp),%rcx"      => [0x48, 0x8d, 0x4c, 0x24, 0x08] => ["add(%rsp, 8) -> %rcx"];
    // leave is two operations
    "leave"                   => [0xc9]                   => ["%rbp -> %rsp", "pop -> %rbp"];
    // a direct call pushes its return address (later stages drop it for real calls)
    "call .+5"                => [0xe8, 0x00, 0x00, 0x00, 0x00] => ["const -> push"];

    // Near misses objtool ignores.
    "sub $0x10,%esp"          => [0x83, 0xec, 0x10]       => [];
    "mov %esp,%ebp"           => [0x89, 0xe5]             => [];
    "{load} mov %rsp,%rbp"   => [0x48, 0x8b, 0xec]       => [];
    "or $1,%rsp"              => [0x48, 0x83, 0xcc, 0x01] => [];
    "add $8,%rax"             => [0x48, 0x83, 0xc0, 0x08] => [];
    "lea 8(%rip),%rax"        => [0x48, 0x8d, 0x05, 0x08, 0x00, 0x00, 0x00] => [];
    "lea 8(%rsp,%rax,1),%rbp" => [0x48, 0x8d, 0x6c, 0x04, 0x08] => [];
    "lea 8(%rsp),%ecx"        => [0x8d, 0x4c, 0x24, 0x08] => [];
    "mov %rbx,8(%rsp,%rax,8)" => [0x48, 0x89, 0x5c, 0xc4, 0x08] => [];
    "mov %rbx,8(%rax)"        => [0x48, 0x89, 0x58, 0x08] => [];
    "mov %rbx,-8(%r13)"       => [0x49, 0x89, 0x5d, 0xf8] => [];
    "mov %rax,0x10(%rip)"     => [0x48, 0x89, 0x05, 0x10, 0x00, 0x00, 0x00] => [];
    "mov 0x10(%rip),%rax"     => [0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00] => [];
    "mov %ebx,-8(%rbp)"       => [0x89, 0x5d, 0xf8]       => [];
    "mov %rbx,0x10"           => [0x48, 0x89, 0x1c, 0x25, 0x10, 0x00, 0x00, 0x00] => [];
    "vmovdqu (%rsp),%ymm0"    => [0xc5, 0xfe, 0x6f, 0x04, 0x24] => [];
    "vmovdqu %ymm0,-0x20(%rbp)" => [0xc5, 0xfe, 0x7f, 0x45, 0xe0] => [];
    "inc %rsp"                => [0x48, 0xff, 0xc4]       => [];

    // A faithful oddity: an absolute store of %rsp through a SIB byte with no base is taken
    // for a store relative to %rbp (objtool reads the SIB base field, 5, as a register).
    "mov %rsp,0x10"           => [0x48, 0x89, 0x24, 0x25, 0x10, 0x00, 0x00, 0x00] => ["%rsp -> 16(%rbp)"];
};

/// One instruction and its kind.
pub struct KindCase {
    pub asm: &'static str,
    pub bytes: &'static [u8],
    pub kind: InsnKind,
}

macro_rules! kinds {
    ($($asm:literal => [$($b:literal),*] => $kind:ident;)*) => {
        &[$(KindCase { asm: $asm, bytes: &[$($b),*], kind: $kind }),*]
    };
}

/// One instruction per kind objtool's decoder can produce, and the odd cases.
pub const KINDS: &[KindCase] = kinds! {
    "je .+7"                  => [0x74, 0x05]             => JumpConditional;
    "jne .+0x106"             => [0x0f, 0x85, 0x00, 0x01, 0x00, 0x00] => JumpConditional;
    "jrcxz .+2"               => [0xe3, 0x00]             => JumpConditional;
    "loop .+2"                => [0xe2, 0x00]             => JumpConditional;
    "loope .+2"               => [0xe1, 0x00]             => JumpConditional;
    "loopne .+2"              => [0xe0, 0x00]             => JumpConditional;
    "jmp .+2"                 => [0xeb, 0x00]             => JumpUnconditional;
    "jmp .+0x105"             => [0xe9, 0x00, 0x01, 0x00, 0x00] => JumpUnconditional;
    "cs jmp .+0x106"          => [0x2e, 0xe9, 0x00, 0x01, 0x00, 0x00] => JumpUnconditional;
    "bnd jmp .+0x106"         => [0xf2, 0xe9, 0x00, 0x01, 0x00, 0x00] => JumpUnconditional;
    "jmp *%rax"               => [0xff, 0xe0]             => JumpDynamic;
    "jmp *%r11"               => [0x41, 0xff, 0xe3]       => JumpDynamic;
    "jmp *8(%rax)"            => [0xff, 0x60, 0x08]       => JumpDynamic;
    "notrack jmp *%rax"       => [0x3e, 0xff, 0xe0]       => JumpDynamic;
    "call .+0x105"            => [0xe8, 0x00, 0x01, 0x00, 0x00] => Call;
    "call *%rax"              => [0xff, 0xd0]             => CallDynamic;
    "call *0x10(%rdi)"        => [0xff, 0x57, 0x10]       => CallDynamic;
    "lcall *(%rax)"           => [0xff, 0x18]             => CallDynamic;
    "ret"                     => [0xc3]                   => Return;
    "ret $8"                  => [0xc2, 0x08, 0x00]       => Return;
    "rep ret"                 => [0xf3, 0xc3]             => Return;
    "ljmp *(%rax)"            => [0xff, 0x28]             => ContextSwitch;
    "lret"                    => [0xcb]                   => ContextSwitch;
    "lret $8"                 => [0xca, 0x08, 0x00]       => ContextSwitch;
    "iret"                    => [0xcf]                   => ContextSwitch;
    "iretq"                   => [0x48, 0xcf]             => ContextSwitch;
    "syscall"                 => [0x0f, 0x05]             => ContextSwitch;
    "sysretq"                 => [0x48, 0x0f, 0x07]       => ContextSwitch;
    "sysenter"                => [0x0f, 0x34]             => ContextSwitch;
    "sysexit"                 => [0x0f, 0x35]             => ContextSwitch;
    "ud2"                     => [0x0f, 0x0b]             => Bug;
    "ud1 (%rax),%eax"         => [0x0f, 0xb9, 0x00]       => Bug;
    "nop"                     => [0x90]                   => Nop;
    "pause"                   => [0xf3, 0x90]             => Nop;
    "xchg %ax,%ax"            => [0x66, 0x90]             => Nop;
    "xchg %eax,%r8d"          => [0x41, 0x90]             => Nop;
    "nopl (%rax)"             => [0x0f, 0x1f, 0x00]       => Nop;
    "{disp8} nopw 0x0(%rax,%rax,1)" => [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00] => Nop;
    "{disp32} cs nopw 0x0(%rax,%rax,1)" => [0x2e, 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00] => Nop;
    "prefetchw (%rax)"        => [0x0f, 0x0d, 0x08]       => Nop;
    "stac"                    => [0x0f, 0x01, 0xcb]       => Stac;
    "clac"                    => [0x0f, 0x01, 0xca]       => Clac;
    "std"                     => [0xfd]                   => Std;
    "cld"                     => [0xfc]                   => Cld;
    "int3"                    => [0xcc]                   => Trap;
    "endbr64"                 => [0xf3, 0x0f, 0x1e, 0xfa] => Endbr;
    "endbr32"                 => [0xf3, 0x0f, 0x1e, 0xfb] => Endbr;
    "hlt"                     => [0xf4]                   => Other;
    "lfence"                  => [0x0f, 0xae, 0xe8]       => Other;
    "cpuid"                   => [0x0f, 0xa2]             => Other;
    "swapgs"                  => [0x0f, 0x01, 0xf8]       => Other;
    "rdpid %rax"              => [0xf3, 0x0f, 0xc7, 0xf8] => Other;
    "rdsspq %rax"             => [0xf3, 0x48, 0x0f, 0x1e, 0xc8] => Other;
    "mov %rdi,%rax"           => [0x48, 0x89, 0xf8]       => Other;
    "vzeroupper"              => [0xc5, 0xf8, 0x77]       => Other;
};

/// Encodings GNU `as` 2.40 cannot produce from text (too new, or not what it would pick),
/// given as bytes only.
pub const KINDS_BYTES_ONLY: &[KindCase] = kinds! {
    "int $3 (as would pick int3)" => [0xcd, 0x03]         => Other;
    "cs call .+0x106 (the retpoline call form GCC emits)" => [0x2e, 0xe8, 0x00, 0x01, 0x00, 0x00] => Call;
    "cs nopw 0x0(%rax,%rax,1) (as pads with this order)" => [0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00] => Nop;
    "eretu"                   => [0xf3, 0x0f, 0x01, 0xca] => ContextSwitch;
    "erets"                   => [0xf2, 0x0f, 0x01, 0xca] => ContextSwitch;
    "ud0 (no ModRM, as the kernel decodes it)" => [0x0f, 0xff] => Other;
    "ud2; .ascii \"xen\"; cpuid (Xen emulate prefix)" => [0x0f, 0x0b, 0x78, 0x65, 0x6e, 0x0f, 0xa2] => Other;
    "ud2; .ascii \"kvm\"; cpuid (KVM emulate prefix)" => [0x0f, 0x0b, 0x6b, 0x76, 0x6d, 0x0f, 0xa2] => Other;
};
