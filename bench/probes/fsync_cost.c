/* What one durable write costs this machine: N times (default 5000) an 8 kB
 * pwrite into a preallocated file followed by fdatasync, as PostgreSQL's WAL
 * flush at commit does (wal_sync_method = fdatasync, Linux's default).
 * Prints the wall time and the CPU time of the whole machine (/proc/stat:
 * user, system, irq, softirq, steal) per flush. On a virtual machine the
 * disk's doorbell and completion interrupt are exits to the hypervisor, which
 * the guest sees as CPU time. bench/machine_costs.sh builds and runs it.
 *
 *   cc -O2 -o /tmp/fsync_cost bench/probes/fsync_cost.c
 *   /tmp/fsync_cost FILE [N]      (FILE: a new file on the shards' disk) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long busy_ticks(void) {
  long long v[8] = {0};
  FILE* f = fopen("/proc/stat", "r");
  if (f == NULL || fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld",
                          &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                          &v[7]) != 8) {
    fprintf(stderr, "fsync_cost: cannot read /proc/stat\n");
    exit(1);
  }
  fclose(f);
  return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];  /* not idle, not iowait */
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: fsync_cost FILE [N]\n");
    return 2;
  }
  const char* path = argv[1];
  const int n = argc > 2 ? atoi(argv[2]) : 5000;
  if (n < 100) {
    fprintf(stderr, "fsync_cost: N must be at least 100\n");
    return 2;
  }
  enum { kBlock = 8192, kBlocks = 256 };
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    perror("fsync_cost: open");
    return 1;
  }
  static char block[kBlock];
  memset(block, 'w', sizeof block);
  for (int i = 0; i < kBlocks; ++i) {
    if (pwrite(fd, block, kBlock, (off_t)i * kBlock) != kBlock) {
      perror("fsync_cost: pwrite");
      return 1;
    }
  }
  fsync(fd);
  const long long busy0 = busy_ticks();
  const double t0 = now_s();
  for (int i = 0; i < n; ++i) {
    if (pwrite(fd, block, kBlock, (off_t)(i % kBlocks) * kBlock) != kBlock ||
        fdatasync(fd) != 0) {
      perror("fsync_cost: write");
      return 1;
    }
  }
  const double t1 = now_s();
  const long long busy1 = busy_ticks();
  close(fd);
  unlink(path);
  printf("8 kB write + fdatasync: %.0f us wall, %.0f us of machine CPU "
         "(%d flushes)\n",
         (t1 - t0) / n * 1e6,
         (busy1 - busy0) * 1e6 / sysconf(_SC_CLK_TCK) / n, n);
  return 0;
}
