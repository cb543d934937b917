/* Chains of sibling calls: functions that end in a call GCC turns into a jmp, some after
 * tearing down a real frame (saved registers, locals), with ordinary frames in between.
 * An unwinder that expects every function to appear in the chain is wrong here: a function
 * that tail-called has left the stack.
 *   tailcall [stop] [ROUNDS]    (default 500 rounds) */
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;

NOINLINE static long leaf(long x)
{
    sink = x;
    if (stopping && x < 0) {
        announce_ready();
        park();
    }
    return x * 7 + 1;
}

/* A frameless function whose only call is a tail call: a plain jmp. */
NOINLINE static long hop_plain(long x)
{
    return leaf(x + 1);
}

/* A real frame (a register saved across a call) torn down before the tail call. */
NOINLINE static long hop_after_call(long x)
{
    long a = leaf(x);
    BARRIER();
    return hop_plain(a + x);
}

/* Locals on the stack, released before jumping on. */
NOINLINE static long hop_with_locals(long x)
{
    volatile long buf[8];
    for (int i = 0; i < 8; i++)
        buf[i] = x + i;
    long s = buf[(unsigned long)x % 8];
    return hop_after_call(s);
}

/* Mutual tail recursion: even/odd jump to each other, never returning through each other. */
NOINLINE static long odd_hop(long n, long acc);
NOINLINE static long even_hop(long n, long acc)
{
    if (n <= 0)
        return hop_with_locals(acc);
    BARRIER();
    return odd_hop(n - 1, acc + 2);
}

NOINLINE static long odd_hop(long n, long acc)
{
    if (n <= 0)
        return hop_plain(acc);
    BARRIER();
    return even_hop(n - 1, acc * 3 % 1000003);
}

/* Ordinary frames between the tail-call chains. */
NOINLINE static long frame_outer(long n, int depth)
{
    if (depth > 0) {
        long r = frame_outer(n, depth - 1);
        BARRIER();
        return r + depth;
    }
    return even_hop(n, n) + 1;
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    long rounds = argc > 1 ? atol(argv[1]) : 500;
    if (stopping) {
        /* Eight real frames, then a tail-call chain that reaches the parked leaf with a
         * negative argument. */
        frame_outer(-9, 8);
        return 1;
    }
    unsigned long total = 0;
    for (long i = 0; i < rounds; i++)
        total = total * 31 + (unsigned long)frame_outer(i % 16, (int)(i % 4));
    printf("tailcall rounds=%ld result=%lu\n", rounds, total);
    return 0;
}
