#include "inventory/health/shard_monitor.h"

#include <atomic>

#include "absl/strings/str_cat.h"

#include "inventory/common/errors.h"
#include "spdlog/spdlog.h"

namespace inventory {

// Shared with the probe thread, so a detached thread never touches freed
// memory.
struct ShardMonitor::State {
  std::unique_ptr<ShardStore> store;
  int shard_count;
  ShardHealth* health;
  absl::Duration interval;
  IdentityMismatch on_mismatch;
  absl::Notification stop;
  absl::Notification exited;
  bool mismatch_reported = false;
  // The first probe's status, written once before first_probe is notified.
  absl::Status first_status;
  absl::Notification first_probe;
};

ShardMonitor::ShardMonitor(std::unique_ptr<ShardStore> store, int shard_count,
                           ShardHealth* health, absl::Duration interval,
                           IdentityMismatch on_mismatch)
    : state_(std::make_shared<State>()) {
  state_->store = std::move(store);
  state_->shard_count = shard_count;
  state_->health = health;
  state_->interval = interval;
  state_->on_mismatch = std::move(on_mismatch);
}

ShardMonitor::~ShardMonitor() {
  if (thread_.joinable()) Stop(absl::Seconds(2));
}

namespace {

absl::Status Probe(ShardStore& store, int shard_count, ShardHealth& health,
                   bool& mismatch_reported,
                   const ShardMonitor::IdentityMismatch& on_mismatch) {
  health.ProbeStarted(absl::Now());
  absl::Status status;
  if (!health.verified()) {
    status = store.Bootstrap(shard_count);
    if (status.ok()) {
      spdlog::info("shard {} ({}): identity verified, schema up to date",
                   store.shard_index(), store.dsn().Redacted());
      health.MarkVerified();
    }
  } else {
    // A ping that also re-reads the shard's identity.
    status = store.CheckIdentity(shard_count);
  }
  health.ProbeFinished(absl::Now());
  if (status.ok()) {
    health.ReportSuccess();
  } else if (status.code() == absl::StatusCode::kFailedPrecondition) {
    // Wrong database behind this entry: no call may reach it any more.
    health.ReportFailure("shard identity mismatch");
    if (!mismatch_reported) {
      mismatch_reported = true;
      spdlog::critical("{}", std::string(status.message()));
      if (on_mismatch) on_mismatch(status);
    }
  } else {
    health.ReportFailure(status.message());
  }
  return status;
}

}  // namespace

void ShardMonitor::Start() {
  thread_ = std::thread([state = state_] {
    while (!state->stop.HasBeenNotified()) {
      // Probe reports to the shard's health itself.
      absl::Status status =
          Probe(*state->store, state->shard_count, *state->health,
                state->mismatch_reported, state->on_mismatch);
      if (!state->first_probe.HasBeenNotified()) {
        state->first_status = std::move(status);
        state->first_probe.Notify();
      }
      state->stop.WaitForNotificationWithTimeout(state->interval);
    }
    state->exited.Notify();
  });
}

absl::Status ShardMonitor::WaitForFirstProbe(absl::Duration wait) {
  if (!state_->first_probe.WaitForNotificationWithTimeout(wait)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "its first probe has had no answer for ", absl::FormatDuration(wait),
        " (shard hung?)"));
  }
  return state_->first_status;
}

bool ShardMonitor::Stop(absl::Duration wait) {
  if (!thread_.joinable()) return true;
  if (!state_->stop.HasBeenNotified()) state_->stop.Notify();
  if (state_->exited.WaitForNotificationWithTimeout(wait)) {
    thread_.join();
    return true;
  }
  thread_.detach();
  return false;
}

}  // namespace inventory
