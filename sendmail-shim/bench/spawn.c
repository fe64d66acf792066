/* Runs a command N times with the same stdin file; prints per-run statistics.
 *
 * Why C and static: a child's ru_maxrss includes the high-water RSS of the process it was
 * forked from (the kernel records the old mm's peak at exec), so measuring from Python or
 * Bash would report their 5-10 MiB for every tool. Forked from this tiny static program, the
 * floor is its own few hundred KiB, printed as the "floor" row.
 *
 * usage: spawn NAME N STDIN_FILE STDERR_FILE -- CMD ARGS...
 * prints: name runs failures wall_mean wall_median wall_p95 (ms) cpu_mean (ms) maxrss_max (KiB)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--noop") == 0) return 0; /* the RSS floor row */
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        fprintf(stderr, "usage: spawn NAME N STDIN_FILE STDERR_FILE -- CMD ARGS...\n");
        return 2;
    }
    const char *name = argv[1];
    int n = atoi(argv[2]);
    double *wall = calloc(n, sizeof(double));
    double cpu = 0;
    long rss = 0;
    int failures = 0;
    for (int i = 0; i < n; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = fork();
        if (pid == 0) {
            int in = open(argv[3], O_RDONLY);
            int out = open("/dev/null", O_WRONLY);
            int err = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(in, 0);
            dup2(out, 1);
            dup2(err, 2);
            execvp(argv[6], argv + 6);
            _exit(127);
        }
        int status;
        struct rusage ru;
        wait4(pid, &status, 0, &ru);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        wall[i] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        cpu += (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
        if (ru.ru_maxrss > rss) rss = ru.ru_maxrss;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) sum += wall[i];
    qsort(wall, n, sizeof(double), cmp);
    int p95 = (int)(n * 0.95);
    if (p95 >= n) p95 = n - 1;
    printf("%s\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%ld\n", name, n, failures, sum / n, wall[n / 2],
           wall[p95], cpu / n, rss);
    return 0;
}
