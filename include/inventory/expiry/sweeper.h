// The expiry sweeper: periodically asks every shard's executor to expire due
// PENDING holds in bounded batches. Safe with many inventoryd instances: the
// store's SKIP LOCKED hands each due hold to exactly one sweeper.
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
  };

  // The executors must outlive the sweeper.
  ExpirySweeper(std::vector<ShardExecutor*> executors, Options options);
  ~ExpirySweeper();

  void Start();
  void Stop();

  // Holds expired by this sweeper since start.
  int64_t expired_total() const { return expired_total_.load(); }

 private:
  void Loop();

  std::vector<ShardExecutor*> executors_;
  Options options_;
  // One flag per shard: a sweep is queued or running there.
  std::unique_ptr<std::atomic<bool>[]> busy_;
  std::atomic<int64_t> expired_total_{0};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace inventory

#endif  // INVENTORY_EXPIRY_SWEEPER_H_
