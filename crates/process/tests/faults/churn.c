/* A process that keeps changing while it is being walked (crates/process/tests/live_faults.rs,
 * crates/orctool/tests/live_faults_cli.rs).
 *   churn threads [N]   create and join short-lived threads (N rounds; 0: forever)
 *   churn forks [N]     fork children that exit at once, and reap them
 *   churn exec [N]      exec itself N more times (0: forever), then exit
 *   churn signals       count SIGUSR1; on SIGUSR2 print "count N" and exit 0
 *   churn maps [N]      map and unmap an executable page, over and over
 *   churn idle          three threads that wait in pause() besides the main one
 * Every mode but exec's later images prints "ready" once it is running. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;
static volatile unsigned long sink;

static void on_usr1(int sig) { (void)sig; usr1++; }

static void on_usr2(int sig)
{
    (void)sig;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "count %d\n", (int)usr1);
    (void)!write(1, buf, (size_t)n);
    _exit(0);
}

static void ready(void)
{
    (void)!write(1, "ready\n", 6);
}

static pthread_barrier_t started;

static void *idle(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&started);
    for (;;)
        pause();
}

static void *short_lived(void *arg)
{
    for (int i = 0; i < 1000; i++)
        sink += (unsigned long)i + (unsigned long)arg;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (strcmp(mode, "threads") == 0) {
        ready();
        for (long i = 0; n == 0 || i < n; i++) {
            pthread_t t[4];
            for (int k = 0; k < 4; k++)
                pthread_create(&t[k], NULL, short_lived, (void *)(long)k);
            for (int k = 0; k < 4; k++)
                pthread_join(t[k], NULL);
        }
        return 0;
    }
    if (strcmp(mode, "forks") == 0) {
        ready();
        for (long i = 0; n == 0 || i < n; i++) {
            pid_t c = fork();
            if (c == 0)
                _exit(0);
            if (c > 0)
                waitpid(c, NULL, 0);
        }
        return 0;
    }
    if (strcmp(mode, "exec") == 0) {
        /* argv[3] is set in the later images: only the first says ready. */
        if (argc < 4)
            ready();
        if (n == 1)
            return 0;
        char next[32];
        snprintf(next, sizeof next, "%ld", n == 0 ? 0 : n - 1);
        for (int i = 0; i < 20000; i++)
            sink += (unsigned long)i;
        execl("/proc/self/exe", argv[0], "exec", next, "again", (char *)NULL);
        return 3;
    }
    if (strcmp(mode, "signals") == 0) {
        signal(SIGUSR1, on_usr1);
        signal(SIGUSR2, on_usr2);
        ready();
        for (;;)
            sink++;
    }
    if (strcmp(mode, "idle") == 0) {
        pthread_barrier_init(&started, NULL, 4);
        for (int k = 0; k < 3; k++) {
            pthread_t t;
            pthread_create(&t, NULL, idle, NULL);
        }
        pthread_barrier_wait(&started);
        ready();
        for (;;)
            pause();
    }
    if (strcmp(mode, "maps") == 0) {
        ready();
        for (long i = 0; n == 0 || i < n; i++) {
            unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                return 4;
            p[0] = 0xc3; /* ret */
            ((void (*)(void))p)();
            munmap(p, 4096);
        }
        return 0;
    }
    fprintf(stderr, "usage: churn threads|forks|exec|signals|maps|idle [N]\n");
    return 2;
}
