/*
 * The layout the 2017 rule rejects: an alternative `pushfq; nop6; pop %rax` against the
 * 7-byte `callq *pv_irq_ops.save_fl` (padded to 8 with a NOP). Offset 7 is an instruction
 * boundary in both streams, with different stack states: after the call the caller's stack
 * pointer is 8 bytes up, inside the alternative (after pushfq) it is 16. No single ORC entry
 * can be right for both, so the site must be refused.
 */
	.text
	.globl	bad_save_flags
	.type	bad_save_flags, @function
bad_save_flags:
	endbr64
661:
	call	*pv_irq_ops+8			/* 7 bytes */
	nop					/* padding to the replacement's 8 */
662:
	jmp	__x86_return_thunk		/* RET, as a return-thunk build spells it */
	int3
	.size	bad_save_flags, .-bad_save_flags

	.section .altinstr_replacement, "ax"
6641:
	pushfq
	.byte	0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00	/* nopw 0x0(%rax,%rax,1): 6 bytes */
	pop	%rax
6651:

	.section .altinstructions, "a"
	.long	661b - .
	.long	6641b - .
	.4byte	(8*32 + 16) | (1 << 16)
	.byte	662b - 661b
	.byte	6651b - 6641b

	/* ANNOTATE_RETPOLINE_SAFE: the indirect call is patched away before it can run. */
	.section .discard.retpoline_safe, ""
	.long	661b

	.section .orc_header, "a"
	.byte 0xfe,0x5d,0x32,0xbf,0x58,0x1b,0xd6,0x3b,0x2c,0xa9,0xa5,0xc6,0x5b,0xa5,0xa6,0x25,0xea,0xb3,0xfe,0x24
