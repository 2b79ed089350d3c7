#include "inventory/expiry/sweeper.h"

#include "spdlog/spdlog.h"

namespace inventory {

ExpirySweeper::ExpirySweeper(std::vector<ShardExecutor*> executors,
                             Options options)
    : executors_(std::move(executors)),
      options_(options),
      busy_(new std::atomic<bool>[executors_.size()]) {
  for (size_t i = 0; i < executors_.size(); ++i) busy_[i] = false;
}

ExpirySweeper::~ExpirySweeper() { Stop(); }

void ExpirySweeper::Start() { thread_ = std::thread([this] { Loop(); }); }

void ExpirySweeper::Stop() {
  if (!thread_.joinable()) return;
  if (!stop_.HasBeenNotified()) stop_.Notify();
  thread_.join();
  // Wait for sweeps in flight: their callbacks touch this object.
  for (size_t i = 0; i < executors_.size(); ++i) {
    while (busy_[i].load()) absl::SleepFor(absl::Milliseconds(5));
  }
}

struct ExpirySweeper::SweepResult {
  int expired = 0;
  absl::StatusOr<LateFill> late_fill;
};

void ExpirySweeper::Loop() {
  while (!stop_.HasBeenNotified()) {
    for (size_t i = 0; i < executors_.size(); ++i) {
      if (busy_[i].exchange(true)) continue;  // previous sweep still going
      // The work may outlive this sweep's wait (a hung shard): it captures
      // values only, never `this`.
      const int batch = options_.batch;
      const int late_fill_batch = options_.late_fill_batch;
      executors_[i]->Submit<SweepResult>(
          absl::Now() + options_.interval + absl::Seconds(5),
          [batch, late_fill_batch](
              ShardStore& store) -> absl::StatusOr<SweepResult> {
            SweepResult result;
            absl::StatusOr<int> expired = store.ExpireDue(batch);
            if (!expired.ok()) return expired.status();
            result.expired = *expired;
            result.late_fill = store.FillLateBackorders(late_fill_batch);
            return result;
          },
          [this, i](absl::StatusOr<SweepResult> result) {
            if (result.ok()) Count(i, *result);
            busy_[i].store(false);
          });
    }
    stop_.WaitForNotificationWithTimeout(options_.interval);
  }
}

void ExpirySweeper::Count(size_t shard, const SweepResult& result) {
  expired_total_ += result.expired;
  if (result.expired > 0) {
    spdlog::debug("shard {}: expired {} hold(s)", shard, result.expired);
  }
  // A failed late fill stays queued for the next sweep.
  if (!result.late_fill.ok()) {
    spdlog::warn("shard {}: late backorder fill failed: {}", shard,
                 result.late_fill.status().ToString());
    return;
  }
  late_filled_total_ += result.late_fill->units;
  if (result.late_fill->units > 0) {
    spdlog::info("shard {}: filled {} backordered unit(s) of {} product(s) "
                 "late",
                 shard, result.late_fill->units, result.late_fill->products);
  }
}

}  // namespace inventory
