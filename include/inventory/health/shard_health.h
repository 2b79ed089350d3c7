// What the service currently knows about one shard's reachability: fed by the
// shard's monitor and by every call's outcome, read before queueing work so a
// shard that is down answers at once instead of when the deadline runs out.
#ifndef INVENTORY_HEALTH_SHARD_HEALTH_H_
#define INVENTORY_HEALTH_SHARD_HEALTH_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace inventory {

// Thread-safe reachability state of one shard.
class ShardHealth {
 public:
  // A probe running longer than `hang_after` counts as "shard unreachable".
  explicit ShardHealth(absl::Duration hang_after = absl::Seconds(2))
      : hang_after_(hang_after) {}

  // The shard's identity has been checked (or recorded); until then it serves
  // nothing.
  void MarkVerified() { verified_.store(true); }
  bool verified() const { return verified_.load(); }

  // A round trip to the shard succeeded.
  void ReportSuccess() {
    if (!reachable_.load(std::memory_order_relaxed)) reachable_.store(true);
  }

  // A round trip failed because the shard could not be reached.
  void ReportFailure(absl::string_view what);

  // The monitor starts / ends a probe; a probe that never ends means a hung
  // shard. A probe that ended after more than hang_after is recorded as the
  // last failure (the hang), dated when it began to count as one.
  void ProbeStarted(absl::Time now) {
    probe_started_us_.store(absl::ToUnixMicros(now));
  }
  void ProbeFinished(absl::Time now);

  // Whether calls should be sent to the shard now.
  bool Reachable(absl::Time now) const;

  // The last failure and when it happened ("" / InfinitePast if none). A
  // probe running longer than hang_after at `now` is the last failure.
  struct Failure {
    std::string what;
    absl::Time when = absl::InfinitePast();
  };
  Failure LastFailure(absl::Time now) const;

 private:
  const absl::Duration hang_after_;
  std::atomic<bool> verified_{false};
  std::atomic<bool> reachable_{true};
  std::atomic<int64_t> probe_started_us_{0};
  mutable absl::Mutex mu_;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_error_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace inventory

#endif  // INVENTORY_HEALTH_SHARD_HEALTH_H_
