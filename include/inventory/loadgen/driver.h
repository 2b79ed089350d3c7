// The load engine: a few client threads, each with its own completion queue
// and channels (one TCP connection per target, or --connections), keep many
// asynchronous calls in flight. Closed loop: --concurrency sessions each start
// their next request (or cart) when the previous one ends. Open loop: new
// requests (carts) start at a fixed --rate whatever the latency, and latency
// is measured from the scheduled start (no coordinated omission).
#ifndef INVENTORY_LOADGEN_DRIVER_H_
#define INVENTORY_LOADGEN_DRIVER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inventory/loadgen/options.h"
#include "inventory/loadgen/stats.h"
#include "inventory/loadgen/tally.h"

namespace inventory::loadgen {

// What a run measured.
struct RunResult {
  // Calls started after the warm-up, by method.
  MethodStats stats;
  // From the end of the warm-up to the last measured completion.
  int64_t measured_ns = 0;
  // Calls issued in all (warm-up included).
  int64_t issued_calls = 0;
  // Cart: carts started, checked out (committed), released, left with their
  // hold (abandoned), and ended by OUT_OF_STOCK.
  int64_t carts_started = 0;
  int64_t carts_committed = 0;
  int64_t carts_released = 0;
  int64_t carts_abandoned = 0;
  int64_t carts_out_of_stock = 0;
  // Open loop: scheduled requests not sent because --max_inflight were
  // already in flight (the server could not keep up with --rate).
  int64_t dropped = 0;
  // Resources over the measured window (after the warm-up until the last
  // call ended), from getrusage and /proc: CPU the load generator itself used
  // (user + system, seconds), busy CPU of the whole machine and of
  // --server_pid (in cores, -1 if unknown), and the server's peak RSS
  // (VmHWM, KiB, -1 if unknown). They tell which process the bottleneck is.
  double window_seconds = 0;
  double client_cpu_seconds = 0;
  double machine_busy_cores = -1;
  int machine_cores = 0;
  double server_cpu_cores = -1;
  int64_t server_peak_rss_kb = -1;
  // Reservations the server acknowledged, and a sample of them.
  int64_t acknowledged = 0;
  std::vector<AckedReservation> sample;
  // Answers that were OK but wrong (e.g. a fresh request answered as a
  // replay, a commit that did not purchase), and how many there were.
  std::vector<std::string> problems;
  int64_t problem_count = 0;
  // last-widget: every product sold out before the bounds were reached.
  bool all_sold_out = false;
};

// Runs the load described by `options` (finalized) and records what the
// server acknowledged in `tally` (which covers options.products products).
// Fails only if a target cannot be reached at the start.
absl::StatusOr<RunResult> RunLoad(const LoadOptions& options, Tally* tally);

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_DRIVER_H_
