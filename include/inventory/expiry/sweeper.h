// The expiry sweeper: periodically asks every shard's executor to expire due
// PENDING holds in bounded batches, then to fill backorders the fill trigger
// skipped. Safe with many inventoryd instances: SKIP LOCKED hands each due
// hold, and each product to fill, to one sweeper at a time.
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
    // BACKORDER products whose fill runs again per shard per sweep; the
    // next sweep goes on after the last of them.
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
  void Loop();

  std::vector<ShardExecutor*> executors_;
  Options options_;
  // One flag per shard: a sweep is queued or running there.
  std::unique_ptr<std::atomic<bool>[]> busy_;
  // One late-fill cursor per shard, touched only by that shard's sweep.
  std::vector<int64_t> late_fill_after_;
  std::atomic<int64_t> expired_total_{0};
  std::atomic<int64_t> late_filled_total_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace inventory

#endif  // INVENTORY_EXPIRY_SWEEPER_H_
