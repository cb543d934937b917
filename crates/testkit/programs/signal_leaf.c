/* A SIGALRM handler interrupting a tight frameless leaf loop; the handler calls a couple of
 * functions, so the stack at a step inside it is: handler's callees, the handler, the
 * kernel's signal frame (__restore_rt), the interrupted leaf, its callers.
 *
 * The timer counts wall-clock time, so under single-stepping (which slows the program a
 * thousandfold) the loop spins for few instructions before each signal.
 *   signal_leaf [stop] [SIGNALS]    (default 3 signals) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include "stop.h"

static int stopping;
static volatile sig_atomic_t hits;
static volatile sig_atomic_t wanted;
static volatile sig_atomic_t in_spin;

NOINLINE static void handler_chain(int depth)
{
    if (depth > 0) {
        handler_chain(depth - 1);
        BARRIER();
        return;
    }
    sink++;
    if (stopping) {
        announce_ready();
        park();
    }
}

NOINLINE static void note_hit(int sig)
{
    sink += (unsigned long)sig;
    hits++;
    handler_chain(stopping ? 6 : 2);
}

NOINLINE static void on_alarm(int sig)
{
    /* Stop mode promises a stack with the leaf right below the signal frame. On a busy
     * machine the program can be held up past the timer before it reaches the leaf: such a
     * signal is not counted, and the timer is armed again. */
    if (stopping && !in_spin) {
        struct itimerval again = { { 0, 0 }, { 0, 2000 } };
        setitimer(ITIMER_REAL, &again, NULL);
        return;
    }
    note_hit(sig);
}

/* The leaf: no calls, no frame, just loads and stores until enough signals arrived. */
NOINLINE static unsigned long spin(void)
{
    unsigned long n = 0;
    in_spin = 1;
    while (hits < wanted)
        n++;
    in_spin = 0;
    return n;
}

NOINLINE static unsigned long run(void)
{
    unsigned long n = spin();
    BARRIER();
    return n;
}

NOINLINE static unsigned long outer(void)
{
    unsigned long n = run();
    BARRIER();
    return n + 1;
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    if (stopping)
        rounds = 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGALRM, &sa, NULL) != 0) {
        perror("sigaction");
        return 2;
    }
    /* One signal at a time, 2 ms after arming: long enough that even a single-stepped
     * program reaches the leaf first (a few dozen steps), short enough that the leaf spins
     * for only some dozens of steps then. A periodic timer would, under single-stepping,
     * fire again before the slowed-down handler returns, and the program would do nothing
     * but run its handler. */
    for (int round = 1; round <= rounds; round++) {
        wanted = round;
        struct itimerval once = { { 0, 0 }, { 0, 2000 } };
        if (setitimer(ITIMER_REAL, &once, NULL) != 0) {
            perror("setitimer");
            return 2;
        }
        outer();
    }
    /* The spin count depends on timing; only the number of signals is printed. */
    printf("signal_leaf signals=%d\n", (int)hits);
    return 0;
}
