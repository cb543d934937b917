/* Calls to functions that never return (abort, exit, a local noreturn function) on paths not
 * taken at run time, except the final exit. GCC moves such paths into `NAME.cold` parts
 * placed away from the function, and puts nothing after a noreturn call: the byte after it
 * may belong to the next function, so the return address of such a call must be looked up
 * at ip - 1.
 *   noreturn [stop] [ROUNDS]    (default 300 rounds) */
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;

__attribute__((noreturn, cold)) NOINLINE static void die(const char *why, long value)
{
    fprintf(stderr, "noreturn: %s (%ld)\n", why, value);
    exit(4);
}

/* Ends in a noreturn call: the last instruction of the function is the call. */
__attribute__((noreturn)) NOINLINE static void finish(long result)
{
    printf("noreturn result=%ld\n", result);
    fflush(stdout);
    exit(0);
}

NOINLINE static long check_range(long v)
{
    if (v < 0 || v > 1000000)
        die("value out of range", v);
    return v * 2;
}

NOINLINE static long checked_div(long a, long b)
{
    if (b == 0)
        abort();
    return a / b;
}

NOINLINE static long deep_check(int depth, long v)
{
    if (depth > 0) {
        long r = deep_check(depth - 1, v + 1);
        if (r == -12345)
            die("impossible", r);
        BARRIER();
        return r + 1;
    }
    if (stopping) {
        announce_ready();
        park();
    }
    return check_range(v % 1000);
}

NOINLINE static long step(long i)
{
    long a = check_range(i);
    long b = checked_div(a + 17, (i % 5) + 1);
    if (__builtin_expect(b == 999999999, 0))
        die("unexpected quotient", b);
    return a + b + deep_check((int)(i % 4), i);
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    long rounds = argc > 1 ? atol(argv[1]) : 300;
    if (stopping)
        deep_check(9, 1);
    long total = 0;
    for (long i = 0; i < rounds; i++)
        total = (total + step(i)) % 1000003;
    finish(total);
}
