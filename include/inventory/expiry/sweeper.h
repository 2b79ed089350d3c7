// The expiry sweeper: periodically asks every shard's executor to expire due
// PENDING holds in bounded batches, then to fill backorders the fill trigger
// skipped (the late-fill queue). Safe with many inventoryd instances: SKIP
// LOCKED hands each due hold and each queued fill to one sweeper at a time.
#ifndef INVENTORY_EXPIRY_SWEEPER_H_
#define INVENTORY_EXPIRY_SWEEPER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "inventory/executor/shard_executor.h"

namespace inventory {

// Expires due holds on every shard.
class ExpirySweeper {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(1);
    int batch = 500;
    // Entries of a shard's late-fill queue run again per sweep.
    int late_fill_batch = 100;
  };

  // The executors must outlive the sweeper.
  ExpirySweeper(std::vector<ShardExecutor*> executors, Options options);
  ~ExpirySweeper();

  void Start();
  void Stop();

  // Holds expired by this sweeper since start.
  int64_t expired_total() const { return expired_total_.load(); }
  // Backordered units its late fills gave stock to since start.
  int64_t late_filled_total() const { return late_filled_total_.load(); }

 private:
  struct SweepResult;  // what one sweep of one shard did

  void Loop();
  // Adds a finished sweep of `shard` to the totals and logs it.
  void Count(size_t shard, const SweepResult& result);

  std::vector<ShardExecutor*> executors_;
  Options options_;
  // One flag per shard: a sweep is queued or running there.
  std::unique_ptr<std::atomic<bool>[]> busy_;
  std::atomic<int64_t> expired_total_{0};
  std::atomic<int64_t> late_filled_total_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace inventory

#endif  // INVENTORY_EXPIRY_SWEEPER_H_
