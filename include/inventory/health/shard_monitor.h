// Probes one shard on its own connection: bootstraps it (migrations, identity)
// once it is reachable, then pings it periodically, feeding ShardHealth. A
// probe that hangs marks the shard unreachable without blocking anyone else.
#ifndef INVENTORY_HEALTH_SHARD_MONITOR_H_
#define INVENTORY_HEALTH_SHARD_MONITOR_H_

#include <functional>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "inventory/health/shard_health.h"
#include "inventory/store/shard_store.h"

namespace inventory {

// Keeps one shard's ShardHealth current.
class ShardMonitor {
 public:
  // Called (once) if the shard's recorded identity does not match its place
  // in the shard list: the service must not serve then.
  using IdentityMismatch = std::function<void(const absl::Status&)>;

  // `health` must outlive the monitor.
  ShardMonitor(std::unique_ptr<ShardStore> store, int shard_count,
               ShardHealth* health, absl::Duration interval,
               IdentityMismatch on_mismatch);
  ~ShardMonitor();

  // Probes every `interval` on a thread of its own until Stop(), starting at
  // once: the first probe bootstraps the shard.
  void Start();

  // Waits up to `wait` for Start()'s first probe and returns its status, or
  // DEADLINE_EXCEEDED if it is still running (a hung shard: it goes on in
  // the background, and the shard serves once it succeeds).
  absl::Status WaitForFirstProbe(absl::Duration wait);

  // Stops probing. Returns false if the probe thread is stuck on a hung
  // shard (it is then detached and must be left alone).
  bool Stop(absl::Duration wait);

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace inventory

#endif  // INVENTORY_HEALTH_SHARD_MONITOR_H_
