// What it costs this machine to hand work from one thread to another that
// sleeps: two threads take turns through a mutex and condition variable, N
// times (default 50000), as a gRPC thread hands a call to a shard worker and
// the worker hands the answer back. Prints the wall time and the CPU time of
// the whole machine (/proc/stat: user, system, irq, softirq, steal) per
// hand-off. Run it unpinned (the threads land on both CPUs: a wake-up is an
// interrupt to an idle virtual CPU) and under `taskset -c 0` (both threads on
// one CPU) to see the difference. bench/machine_costs.sh builds and runs it.
//
//   g++ -O2 -pthread -o /tmp/handoff bench/probes/handoff.cc && /tmp/handoff
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include <unistd.h>

namespace {

// Busy CPU time of the whole machine, in clock ticks.
long long BusyTicks() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  long long user, nice, system, idle, iowait, irq, softirq, steal;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >>
      steal;
  return user + nice + system + irq + softirq + steal;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 50000;
  if (n < 1000) {
    std::fprintf(stderr, "handoff: N must be at least 1000\n");
    return 2;
  }
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;  // 0: main thread's turn, 1: the other's
  const long long busy0 = BusyTicks();
  const auto t0 = std::chrono::steady_clock::now();
  std::thread other([&] {
    for (int i = 0; i < n; ++i) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return turn == 1; });
      turn = 0;
      cv.notify_one();
    }
  });
  for (int i = 0; i < n; ++i) {
    std::unique_lock<std::mutex> lock(mu);
    turn = 1;
    cv.notify_one();
    cv.wait(lock, [&] { return turn == 0; });
  }
  other.join();
  const auto t1 = std::chrono::steady_clock::now();
  const long long busy1 = BusyTicks();
  const double handoffs = 2.0 * n;
  const double wall_us =
      std::chrono::duration<double, std::micro>(t1 - t0).count() / handoffs;
  const double cpu_us =
      (busy1 - busy0) * 1e6 / sysconf(_SC_CLK_TCK) / handoffs;
  std::printf("hand-off to a sleeping thread: %.1f us wall, %.1f us of "
              "machine CPU (%d round trips)\n",
              wall_us, cpu_us, n);
  return 0;
}
