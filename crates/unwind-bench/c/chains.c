/*
 * Call chains for the unwinder benchmark: builds chains of N frames through functions with
 * different frame shapes, and at the bottom copies its own stack and registers to a file.
 *
 * Built by build.rs with: gcc -O2 -fomit-frame-pointer -static -no-pie (with .eh_frame).
 * Usage: chains OUT N1 N2 ...   (one snapshot per chain length)
 *
 * Snapshot record (all little-endian u64): magic "ORCSNAP1", chain length, rip, rsp, rbp,
 * stack base (= rsp), byte count, then the bytes of [rsp, stack top).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef long (*link_fn)(long n, long x);
static link_fn links[8];
static volatile long sink;
static uint64_t stack_top;
static FILE *out;
static long chain_len;

/* The top of the main thread's stack, from /proc/self/maps. */
static uint64_t find_stack_top(void)
{
	char line[512];
	FILE *maps = fopen("/proc/self/maps", "r");
	uint64_t lo, hi, top = 0;
	if (!maps)
		return 0;
	while (fgets(line, sizeof line, maps))
		if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			top = hi;
	fclose(maps);
	return top;
}

static void put(uint64_t v)
{
	fwrite(&v, sizeof v, 1, out);
}

/* The bottom of every chain: registers at the instruction after the asm, then the stack. */
__attribute__((noinline)) static long capture(long x)
{
	uint64_t rip, rsp, rbp;
	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(rip), "=r"(rsp), "=r"(rbp));
	fwrite("ORCSNAP1", 8, 1, out);
	put((uint64_t)chain_len);
	put(rip);
	put(rsp);
	put(rbp);
	put(rsp);
	put(stack_top - rsp);
	fwrite((void *)rsp, 1, stack_top - rsp, out);
	return x + 1;
}

static long next(long n, long x)
{
	if (n <= 0)
		return capture(x);
	return links[n & 7](n - 1, x);
}

/* Eight frame shapes. Each uses the result of its call, so no call is a tail call. */

/* A small frame: only the alignment push. */
__attribute__((noinline)) static long l0(long n, long x)
{
	return next(n, x + 1) * 3;
}

/* A large local array. */
__attribute__((noinline)) static long l1(long n, long x)
{
	volatile long buf[40];
	for (int i = 0; i < 40; i++)
		buf[i] = x + i;
	return next(n, buf[n % 40]) + buf[3];
}

/* A variable-length array: GCC sets up %rbp as a frame pointer (CFA = rbp + 16). */
__attribute__((noinline)) static long l2(long n, long x)
{
	volatile char vla[16 + (x & 63)];
	vla[0] = (char)x;
	return next(n, x + vla[0]) + vla[0];
}

/* Many live values across the call: callee-saved registers, %rbp among them. */
__attribute__((noinline)) static long l3(long n, long x)
{
	long a = x * 3, b = x ^ 5, c = x + 7, d = x * x, e = x - 9, f = x | 1;
	long r = next(n, a + b);
	return r + a * b + c * d + e * f + (a ^ c) + (b ^ d);
}

/* Two calls, the deep one second. */
__attribute__((noinline)) static long l4(long n, long x)
{
	sink = x;
	long r = next(n, x + 2);
	return r + sink;
}

/* A medium frame with an odd number of pushes. */
__attribute__((noinline)) static long l5(long n, long x)
{
	volatile long v[3] = {x, x + 1, x + 2};
	long k = x * 11;
	return next(n, v[1]) + k + v[2];
}

/* Another VLA function with more saved registers. */
__attribute__((noinline)) static long l6(long n, long x)
{
	volatile long vla[2 + (x & 7)];
	long a = x * 5, b = x * 7, c = x * 13;
	vla[0] = a;
	return next(n, x) + vla[0] + a * b * c;
}

/* Recursion through itself once before moving on. */
__attribute__((noinline)) static long l7(long n, long x)
{
	volatile long pad[5];
	pad[0] = x;
	return next(n, pad[0] + 3) - pad[0];
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s OUT N...\n", argv[0]);
		return 2;
	}
	links[0] = l0; links[1] = l1; links[2] = l2; links[3] = l3;
	links[4] = l4; links[5] = l5; links[6] = l6; links[7] = l7;
	stack_top = find_stack_top();
	if (!stack_top)
		return 3;
	out = fopen(argv[1], "wb");
	if (!out)
		return 4;
	long total = 0;
	for (int i = 2; i < argc; i++) {
		chain_len = atol(argv[i]);
		total += next(chain_len, i);
	}
	fclose(out);
	sink = total;
	return 0;
}
