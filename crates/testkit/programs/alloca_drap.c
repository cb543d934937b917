/* Dynamic stack allocation and over-aligned locals.
 *   - vla_sum: a variable-length array, so the stack pointer moves by a run-time amount and
 *     the function restores it from its frame pointer.
 *   - aligned_only: a 64-byte aligned local, so the function realigns its stack with
 *     `and $-64,%rsp`.
 *   - aligned_vla: both at once; GCC then keeps the incoming stack pointer in a DRAP register
 *     (`lea 0x8(%rsp),%r10; and $-64,%rsp; push -0x8(%r10)`) even with -fomit-frame-pointer.
 *   - alloca_chain: alloca in a recursive function, each level's frame a different size.
 *   alloca_drap [stop] [ROUNDS]    (default 40 rounds) */
#include <alloca.h>
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;

NOINLINE static long consume(volatile char *p, long n)
{
    long s = 0;
    for (long i = 0; i < n; i += 8)
        s += p[i];
    sink = (unsigned long)s;
    return s;
}

NOINLINE static long stop_here(long v)
{
    if (stopping) {
        announce_ready();
        park();
    }
    return v + 1;
}

NOINLINE static long vla_sum(int n, long seed)
{
    volatile char buf[n];
    for (int i = 0; i < n; i += 8)
        buf[i] = (char)(seed + i);
    return consume(buf, n);
}

NOINLINE static long aligned_only(long seed)
{
    volatile char buf[128] __attribute__((aligned(64)));
    for (int i = 0; i < 128; i += 8)
        buf[i] = (char)(seed ^ i);
    return consume(buf, 128) + ((unsigned long)buf & 63);
}

NOINLINE static long aligned_vla(int n, long seed)
{
    volatile char big[64] __attribute__((aligned(64)));
    volatile char dyn[n];
    for (int i = 0; i < 64; i++)
        big[i] = (char)i;
    big[seed & 63] = (char)seed;
    for (int i = 0; i < n; i += 8)
        dyn[i] = (char)(i + big[seed & 63]);
    long r = consume(dyn, n) + consume(big, 64) + ((unsigned long)big & 63);
    if (seed < 0)
        r += stop_here(r);
    return r;
}

NOINLINE static long alloca_chain(int depth, long seed)
{
    int size = 16 + (depth % 5) * 24;
    volatile char *p = alloca(size);
    p[0] = (char)depth;
    p[size - 1] = (char)seed;
    if (depth > 0) {
        long r = alloca_chain(depth - 1, seed + p[0]);
        BARRIER();
        return r + p[size - 1];
    }
    return aligned_vla(40 + (int)(seed & 31), stopping ? -1 : seed);
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    long rounds = argc > 1 ? atol(argv[1]) : 40;
    if (stopping) {
        alloca_chain(8, 3);
        return 1;
    }
    long acc = 0;
    for (long i = 0; i < rounds; i++) {
        acc += vla_sum(16 + (int)(i % 7) * 8, i);
        acc += aligned_only(i);
        acc += alloca_chain((int)(i % 6), i);
    }
    printf("alloca_drap rounds=%ld result=%ld\n", rounds, acc);
    return 0;
}
