/*
 * The seed of orctool: the 2017 paravirt case (LKML, "x86/unwind: add ORC unwinder", Sep 2017).
 *
 * `callq *pv_irq_ops.save_fl` is patched at run time into `pushfq; pop %rax` plus NOPs on
 * bare metal, or into `call xen_save_fl` under Xen. One address range, three instruction
 * streams: an interrupt right after `pushfq` (site+1) must still unwind, with the caller's
 * stack pointer 16 bytes up there, not 8. The answer agreed in that thread: emit the union
 * of the ORC entries of all alternatives, and check that alternatives agree wherever they
 * share an instruction boundary.
 *
 * Written the way the kernel's ALTERNATIVE_2 macro lays it out (6.3+ `alt_instr`, 14 bytes):
 * the original at 661:, replacements in .altinstr_replacement, one entry per replacement.
 */
	.text
	.globl	arch_local_save_flags
	.type	arch_local_save_flags, @function
arch_local_save_flags:
	endbr64
661:
	call	*pv_irq_ops+8			/* 7 bytes: ff 14 25 <abs32> */
662:
	jmp	__x86_return_thunk		/* RET, as a return-thunk build spells it */
	int3
	.size	arch_local_save_flags, .-arch_local_save_flags

	.section .altinstr_replacement, "ax"
6641:
	pushfq					/* native: save the flags ... */
	pop	%rax				/* ... into %rax */
6651:
6642:
	call	xen_save_fl			/* Xen: a direct call */
6652:

	.section .altinstructions, "a"
	/* native, patched when X86_FEATURE_XENPV is absent (ALT_FLAG_NOT) */
	.long	661b - .
	.long	6641b - .
	.4byte	(8*32 + 16) | (1 << 16)		/* X86_FEATURE_XENPV, ALT_FLAG_NOT */
	.byte	662b - 661b
	.byte	6651b - 6641b
	/* Xen, patched when X86_FEATURE_XENPV is present */
	.long	661b - .
	.long	6642b - .
	.4byte	(8*32 + 16)
	.byte	662b - 661b
	.byte	6652b - 6642b

	/* ANNOTATE_RETPOLINE_SAFE: the indirect call is patched away before it can run. */
	.section .discard.retpoline_safe, ""
	.long	661b

	.section .orc_header, "a"
	.byte 0xfe,0x5d,0x32,0xbf,0x58,0x1b,0xd6,0x3b,0x2c,0xa9,0xa5,0xc6,0x5b,0xa5,0xa6,0x25,0xea,0xb3,0xfe,0x24
