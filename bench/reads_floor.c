/* The kernel's floor under ksmtop's collector: the same three preads per process (stat, statm, ksm_stat, on file
 * descriptors kept open, as ProcessTable.sample does), from C, with nothing parsed.
 *
 *     reads_floor REPS PID...      prints the median nanoseconds per process over REPS passes
 *
 * Built and run by bench/sample.py when a C compiler is present, so that its figure is measured in the same run
 * as the Python collector's.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char *const FILES[3] = {"stat", "statm", "ksm_stat"};

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s REPS PID...\n", argv[0]);
        return 2;
    }
    int reps = atoi(argv[1]);
    int count = argc - 2;
    if (reps < 1) {
        fprintf(stderr, "REPS must be at least 1\n");
        return 2;
    }
    int(*fds)[3] = calloc(count, sizeof *fds);
    double *per_process = calloc(reps, sizeof *per_process);
    if (!fds || !per_process) {
        perror("calloc");
        return 2;
    }
    char path[64], buffer[2048];
    for (int i = 0; i < count; i++)
        for (int k = 0; k < 3; k++) {
            snprintf(path, sizeof path, "/proc/%s/%s", argv[i + 2], FILES[k]);
            fds[i][k] = open(path, O_RDONLY | O_CLOEXEC);
            if (fds[i][k] < 0) {
                perror(path);
                return 1;
            }
        }
    for (int r = 0; r < reps; r++) {
        double start = now_ns();
        for (int i = 0; i < count; i++)
            for (int k = 0; k < 3; k++)
                if (pread(fds[i][k], buffer, sizeof buffer, 0) <= 0) {
                    fprintf(stderr, "pread of process %s's %s failed\n", argv[i + 2], FILES[k]);
                    return 1;
                }
        per_process[r] = (now_ns() - start) / count;
    }
    qsort(per_process, reps, sizeof *per_process, by_value);
    printf("%.0f\n", per_process[reps / 2]);
    return 0;
}
