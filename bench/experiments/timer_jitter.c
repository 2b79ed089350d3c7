/* How late this machine wakes a sleeping thread: the floor under any
 * latency tail measured here (docs/benchmarks.md, "The p99 target and this
 * machine"). Sleeps 0.5 ms N times (default 10000) and prints how much each
 * sleep overshot, in microseconds: p50, p99, p99.9 and the maximum.
 *
 *   cc -O2 -o /tmp/timer_jitter bench/experiments/timer_jitter.c
 *   /tmp/timer_jitter [N]
 *
 * Run it on the idle machine, then while bench/run.sh runs. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
  const long long x = *(const long long*)a, y = *(const long long*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 10000;
  if (n < 1000) {
    fprintf(stderr, "timer_jitter: N must be at least 1000\n");
    return 2;
  }
  const struct timespec nap = {0, 500000};
  long long* late = malloc(sizeof(long long) * n);
  if (late == NULL) return 1;
  for (int i = 0; i < n; ++i) {
    const long long start = now_ns();
    nanosleep(&nap, NULL);
    late[i] = now_ns() - start - nap.tv_nsec;
  }
  qsort(late, n, sizeof(long long), by_value);
  printf("oversleep us: p50 %lld p99 %lld p99.9 %lld max %lld\n",
         late[n / 2] / 1000, late[n * 99 / 100] / 1000,
         late[n * 999 / 1000] / 1000, late[n - 1] / 1000);
  free(late);
  return 0;
}
