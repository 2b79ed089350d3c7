#include "inventory/health/shard_health.h"

#include "absl/strings/str_cat.h"

namespace inventory {

void ShardHealth::ReportFailure(absl::string_view what) {
  reachable_.store(false);
  absl::MutexLock lock(&mu_);
  last_error_ = std::string(what);
  last_error_time_ = absl::Now();
}

namespace {

std::string HangText(absl::Duration waited, bool ended) {
  return absl::StrCat(
      ended ? "a health probe took " : "a health probe has had no answer for ",
      absl::FormatDuration(absl::Trunc(waited, absl::Milliseconds(100))),
      " (shard hung or overloaded)");
}

}  // namespace

void ShardHealth::ProbeFinished(absl::Time now) {
  const int64_t started = probe_started_us_.exchange(0);
  if (started == 0) return;
  const absl::Time start = absl::FromUnixMicros(started);
  if (now - start < hang_after_) return;
  absl::MutexLock lock(&mu_);
  last_error_ = HangText(now - start, true);
  last_error_time_ = start + hang_after_;
}

ShardHealth::Failure ShardHealth::LastFailure(absl::Time now) const {
  const int64_t started = probe_started_us_.load();
  if (started != 0) {
    const absl::Time start = absl::FromUnixMicros(started);
    if (now - start >= hang_after_) {
      return Failure{HangText(now - start, false), start + hang_after_};
    }
  }
  absl::MutexLock lock(&mu_);
  return Failure{last_error_, last_error_time_};
}

bool ShardHealth::Reachable(absl::Time now) const {
  if (!verified_.load() || !reachable_.load(std::memory_order_relaxed)) {
    return false;
  }
  const int64_t started = probe_started_us_.load(std::memory_order_relaxed);
  return started == 0 || now - absl::FromUnixMicros(started) < hang_after_;
}

}  // namespace inventory
