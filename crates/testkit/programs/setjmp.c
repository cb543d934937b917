/* setjmp/longjmp out of a deep chain, repeatedly: longjmp abandons every frame between the
 * jump and the setjmp, and restores a stack pointer the code never computed by pops.
 *   setjmp [stop] [ROUNDS]    (default 50 rounds, each 20 frames deep) */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;
static jmp_buf target;

NOINLINE static void dive(int depth, int round);

NOINLINE static void escape(int round)
{
    sink += (unsigned long)round;
    if (stopping && round < 0) {
        announce_ready();
        park();
    }
    longjmp(target, round + 1);
}

NOINLINE static void dive_b(int depth, int round)
{
    volatile int local = depth;
    dive(local - 1, round);
    BARRIER();
}

NOINLINE static void dive(int depth, int round)
{
    if (depth <= 0)
        escape(round);
    dive_b(depth, round);
    sink++;
}

/* The frame holding the jmp_buf's context; returns through the setjmp many times. */
NOINLINE static long rounds_loop(int rounds, int depth)
{
    volatile long total = 0;
    volatile int round = 0;
    int got = setjmp(target);
    if (got != 0) {
        total += got;
        round++;
    }
    if (round < rounds)
        dive(depth, round);
    return total;
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    if (stopping) {
        /* A few jumps, then a final dive that parks instead of jumping. */
        rounds_loop(3, 10);
        dive(10, -1);
        return 1;
    }
    long total = rounds_loop(rounds, 10);
    printf("setjmp rounds=%d total=%ld\n", rounds, total);
    return 0;
}
