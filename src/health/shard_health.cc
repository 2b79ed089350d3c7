#include "inventory/health/shard_health.h"

namespace inventory {

void ShardHealth::ReportFailure(absl::string_view what) {
  reachable_.store(false);
  absl::MutexLock lock(&mu_);
  last_error_ = std::string(what);
  last_error_time_ = absl::Now();
}

bool ShardHealth::Reachable(absl::Time now) const {
  if (!verified_.load() || !reachable_.load(std::memory_order_relaxed)) {
    return false;
  }
  const int64_t started = probe_started_us_.load(std::memory_order_relaxed);
  return started == 0 || now - absl::FromUnixMicros(started) < hang_after_;
}

std::string ShardHealth::last_error() const {
  absl::MutexLock lock(&mu_);
  return last_error_;
}

absl::Time ShardHealth::last_error_time() const {
  absl::MutexLock lock(&mu_);
  return last_error_time_;
}

}  // namespace inventory
