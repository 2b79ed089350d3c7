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

void ExpirySweeper::Loop() {
  while (!stop_.HasBeenNotified()) {
    for (size_t i = 0; i < executors_.size(); ++i) {
      if (busy_[i].exchange(true)) continue;  // previous sweep still going
      const int batch = options_.batch;
      executors_[i]->Submit<int>(
          absl::Now() + options_.interval + absl::Seconds(5),
          [batch](ShardStore& store) { return store.ExpireDue(batch); },
          [this, i](absl::StatusOr<int> expired) {
            if (expired.ok() && *expired > 0) {
              expired_total_ += *expired;
              spdlog::debug("shard {}: expired {} hold(s)", i, *expired);
            }
            busy_[i].store(false);
          });
    }
    stop_.WaitForNotificationWithTimeout(options_.interval);
  }
}

}  // namespace inventory
