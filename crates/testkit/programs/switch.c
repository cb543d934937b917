/* A large dense switch (GCC and clang emit a jump table for it at -O2) in a function with a
 * frame, called in a loop; some cases call further functions so that the table's targets
 * have frames below them.
 *   switch [stop] [ROUNDS]    (default 2000 rounds) */
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;

NOINLINE static long chain(int depth, long v)
{
    if (depth > 0) {
        long r = chain(depth - 1, v + 1);
        BARRIER();
        return r + 1;
    }
    sink = (unsigned long)v;
    if (stopping) {
        announce_ready();
        park();
    }
    return v;
}

NOINLINE static long helper(long v)
{
    sink = (unsigned long)v;
    return v ^ 0x55;
}

/* Locals live across calls keep a frame; sixteen consecutive cases make the jump table. */
NOINLINE static long dispatch(unsigned op, long acc)
{
    volatile long scratch[4];
    scratch[op % 4] = acc;
    long r;
    switch (op) {
    case 0: r = acc + 1; break;
    case 1: r = acc * 3; break;
    case 2: r = acc - 7; break;
    case 3: r = helper(acc) + 2; break;
    case 4: r = acc ^ 0x1234; break;
    case 5: r = acc << 1; break;
    case 6: r = acc >> 2; break;
    case 7: r = helper(acc * 5); break;
    case 8: r = acc + scratch[0]; break;
    case 9: r = acc % 1009; break;
    case 10: r = ~acc; break;
    case 11: r = helper(acc) - helper(acc + 1); break;
    case 12: r = acc * acc % 65521; break;
    case 13: r = chain(stopping ? 8 : 3, acc); break;
    case 14: r = acc | 0x100; break;
    case 15: r = acc & 0xffff; break;
    default: r = -1; break;
    }
    BARRIER();
    return r + scratch[op % 4] % 3;
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    long rounds = argc > 1 ? atol(argv[1]) : 2000;
    if (stopping) {
        dispatch(13, 1);
        return 1;
    }
    long acc = 1;
    for (long i = 0; i < rounds; i++)
        acc = dispatch((unsigned)(i * 7 % 17), acc) % 1000000007;
    printf("switch rounds=%ld result=%ld\n", rounds, acc);
    return 0;
}
