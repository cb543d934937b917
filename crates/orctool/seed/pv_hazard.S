/*
 * A site the union rule accepts but the unwinder gets wrong (Peter Zijlstra, January 2021):
 * the two streams share no instruction boundary with different states, yet the Xen stream's
 * `call xen_save_fl` returns to site+5, and the unwinder looks that return address up at
 * site+4, where the table holds the native stream's entry from site+2 (after pushfq: the
 * caller's stack pointer 16 bytes up). Unwinding out of xen_save_fl would be off by 8.
 * objtool accepts this; `orctool check --strict-alternatives` reports it.
 */
	.text
	.globl	hazard_save_flags
	.type	hazard_save_flags, @function
hazard_save_flags:
	endbr64
661:
	call	*pv_irq_ops+8			/* 7 bytes */
662:
	jmp	__x86_return_thunk
	int3
	.size	hazard_save_flags, .-hazard_save_flags

	.section .altinstr_replacement, "ax"
6641:
	nop					/* +0 */
	pushfq					/* +1; after it, +2: sp+16 */
	.byte	0x0f, 0x1f, 0x40, 0x00		/* nopl 0x0(%rax): +2..+5, no boundary at +5 */
	pop	%rax				/* +6; after it, +7: sp+8 */
6651:
6642:
	call	xen_save_fl			/* +0; returns to +5 */
6652:

	.section .altinstructions, "a"
	.long	661b - .
	.long	6641b - .
	.4byte	(8*32 + 16) | (1 << 16)
	.byte	662b - 661b
	.byte	6651b - 6641b
	.long	661b - .
	.long	6642b - .
	.4byte	(8*32 + 16)
	.byte	662b - 661b
	.byte	6652b - 6642b

	.section .discard.retpoline_safe, ""
	.long	661b

	.section .orc_header, "a"
	.byte 0xfe,0x5d,0x32,0xbf,0x58,0x1b,0xd6,0x3b,0x2c,0xa9,0xa5,0xc6,0x5b,0xa5,0xa6,0x25,0xea,0xb3,0xfe,0x24
