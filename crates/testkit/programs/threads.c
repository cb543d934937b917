/* N threads, each recursing to depth D through non-inlined functions.
 *   threads [stop] [N [D]]    (default 4 threads, depth 16)
 * In stop mode (`threads stop 8 32`) each worker and the main thread descend D frames and
 * park; the main thread prints "ready" once every worker has reached its bottom. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "stop.h"

static int stopping;
static int depth_wanted;
static pthread_t main_thread;
static pthread_barrier_t all_down;

NOINLINE static unsigned long climb_b(int depth, unsigned long seed);

NOINLINE static unsigned long at_bottom(unsigned long seed)
{
    sink = seed;
    if (stopping) {
        pthread_barrier_wait(&all_down);
        if (pthread_equal(pthread_self(), main_thread))
            announce_ready();
        park();
    }
    return seed % 97;
}

/* Depth counts frames of the chain: climb_a and climb_b alternate, at_bottom is the last. */
NOINLINE static unsigned long climb_a(int depth, unsigned long seed)
{
    if (depth <= 1)
        return at_bottom(seed);
    unsigned long r = climb_b(depth - 1, seed * 5 + 1);
    BARRIER();
    return r + (unsigned long)depth;
}

NOINLINE static unsigned long climb_b(int depth, unsigned long seed)
{
    volatile unsigned long here = seed;
    if (depth <= 1)
        return at_bottom(here);
    unsigned long r = climb_a(depth - 1, here + 3);
    BARRIER();
    return r ^ here;
}

NOINLINE static void *worker(void *arg)
{
    unsigned long id = (unsigned long)arg;
    unsigned long r = climb_a(depth_wanted, id + 1);
    BARRIER(); /* keeps worker's frame: no tail call */
    return (void *)r;
}

int main(int argc, char **argv)
{
    stopping = take_stop_arg(&argc, &argv);
    int n = argc > 1 ? atoi(argv[1]) : 4;
    depth_wanted = argc > 2 ? atoi(argv[2]) : 16;
    if (n < 1 || n > 256 || depth_wanted < 1 || depth_wanted > 10000) {
        fprintf(stderr, "threads: thread count or depth out of range\n");
        return 2;
    }
    pthread_t *tids = calloc((size_t)n, sizeof *tids);
    if (tids == NULL)
        return 2;
    main_thread = pthread_self();
    if (stopping)
        pthread_barrier_init(&all_down, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, worker, (void *)(unsigned long)i) != 0) {
            fprintf(stderr, "threads: pthread_create failed\n");
            return 2;
        }
    }
    if (stopping)
        climb_a(depth_wanted, 0);
    unsigned long total = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(tids[i], &r);
        total += (unsigned long)r;
    }
    free(tids);
    printf("threads n=%d depth=%d total=%lu\n", n, depth_wanted, total);
    return 0;
}
