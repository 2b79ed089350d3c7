#include "inventory/expiry/sweeper.h"

#include "spdlog/spdlog.h"

namespace inventory {

ExpirySweeper::ExpirySweeper(std::vector<ShardExecutor*> executors,
                             Options options)
    : executors_(std::move(executors)),
      options_(options),
      busy_(new std::atomic<bool>[executors_.size()]),
      late_fill_after_(executors_.size(), 0) {
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

namespace {

// What one sweep of one shard did.
struct SweepResult {
  int expired = 0;
  LateFill late_fill;
};

}  // namespace

void ExpirySweeper::Loop() {
  while (!stop_.HasBeenNotified()) {
    for (size_t i = 0; i < executors_.size(); ++i) {
      if (busy_[i].exchange(true)) continue;  // previous sweep still going
      executors_[i]->Submit<SweepResult>(
          absl::Now() + options_.interval + absl::Seconds(5),
          [this, i](ShardStore& store) -> absl::StatusOr<SweepResult> {
            SweepResult result;
            absl::StatusOr<int> expired = store.ExpireDue(options_.batch);
            if (!expired.ok()) return expired.status();
            result.expired = *expired;
            // A failed late fill is tried again at the next sweep; the
            // holds expired above are counted either way.
            absl::StatusOr<LateFill> fill = store.FillLateBackorders(
                late_fill_after_[i], options_.late_fill_batch);
            if (fill.ok()) {
              result.late_fill = *fill;
              // A short pass reached the last product: start again at 0.
              late_fill_after_[i] = fill->products < options_.late_fill_batch
                                        ? 0
                                        : fill->last_product;
            }
            return result;
          },
          [this, i](absl::StatusOr<SweepResult> result) {
            if (result.ok()) {
              expired_total_ += result->expired;
              late_filled_total_ += result->late_fill.units;
              if (result->expired > 0) {
                spdlog::debug("shard {}: expired {} hold(s)", i,
                              result->expired);
              }
              if (result->late_fill.units > 0) {
                spdlog::info("shard {}: filled {} backordered unit(s) late",
                             i, result->late_fill.units);
              }
            }
            busy_[i].store(false);
          });
    }
    stop_.WaitForNotificationWithTimeout(options_.interval);
  }
}

}  // namespace inventory
