/* Shared by the test programs: the "stop" mode and the tricks that keep GCC and clang from
 * folding away the shapes each program exists to exercise.
 *
 * Stop mode (first argument "stop"): every thread descends into a deep chain of distinct
 * frames, the main thread prints "ready" once all of them are in place, and every thread then
 * blocks in pause() at the bottom of its chain until the tester kills the process. An
 * unwinder and gdb can then be compared on a process that does not move. */
#ifndef ORC_TESTKIT_STOP_H
#define ORC_TESTKIT_STOP_H

#include <string.h>
#include <unistd.h>

/* A function that must exist as its own frame: not inlined, not cloned, not merged with a
 * twin (noipa also stops GCC from using facts about it in its callers). */
#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noipa))
#endif

/* A compiler barrier: memory is clobbered, so loads and stores around it stay. */
#define BARRIER() __asm__ volatile("" ::: "memory")

/* Written by every frame of a chain, so that no frame is a pure function GCC may fold. */
static volatile unsigned long sink;

/* Removes a leading "stop" argument; returns whether it was there. */
static int take_stop_arg(int *argc, char ***argv)
{
    if (*argc > 1 && strcmp((*argv)[1], "stop") == 0) {
        (*argv)[1] = (*argv)[0];
        (*argv)++;
        (*argc)--;
        return 1;
    }
    return 0;
}

/* Async-signal-safe: stop mode may announce from inside a signal handler. */
static void announce_ready(void)
{
    static const char line[] = "ready\n";
    ssize_t done = 0;
    while (done < (ssize_t)sizeof line - 1) {
        ssize_t n = write(1, line + done, sizeof line - 1 - done);
        if (n <= 0)
            _exit(3);
        done += n;
    }
}

/* The bottom of every stopped chain: blocks until the process is killed. */
NOINLINE static void park(void)
{
    for (;;) {
        pause();
        BARRIER();
    }
}

#endif
