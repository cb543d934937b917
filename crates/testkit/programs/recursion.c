/* Deep recursion through three mutually recursive functions, each with work after its call
 * so that no call is a tail call and every level is a real frame.
 *   recursion [stop] [DEPTH]    (default depth 200; stop mode descends 50 levels) */
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;

NOINLINE static unsigned long down_a(int depth);
NOINLINE static unsigned long down_b(int depth);
NOINLINE static unsigned long down_c(int depth);

NOINLINE static unsigned long bottom(int depth)
{
    sink = depth;
    if (stopping) {
        announce_ready();
        park();
    }
    return 1;
}

NOINLINE static unsigned long down_a(int depth)
{
    if (depth <= 0)
        return bottom(depth);
    unsigned long r = down_b(depth - 1);
    sink = r;
    return r * 3 + (unsigned long)depth;
}

NOINLINE static unsigned long down_b(int depth)
{
    if (depth <= 0)
        return bottom(depth);
    /* Two locals live across the call, so this frame saves registers. */
    unsigned long before = sink;
    unsigned long r = depth % 3 == 0 ? down_c(depth - 1) : down_a(depth - 1);
    BARRIER();
    return (r ^ before) + (unsigned long)depth;
}

NOINLINE static unsigned long down_c(int depth)
{
    if (depth <= 0)
        return bottom(depth);
    volatile char pad[24];
    pad[depth % 24] = (char)depth;
    unsigned long r = down_a(depth - 1);
    return r + pad[depth % 24];
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    int depth = argc > 1 ? atoi(argv[1]) : (stopping ? 50 : 200);
    if (depth < 0 || depth > 100000) {
        fprintf(stderr, "recursion: depth out of range\n");
        return 2;
    }
    unsigned long r = down_a(depth);
    printf("recursion depth=%d result=%lu\n", depth, r);
    return 0;
}
