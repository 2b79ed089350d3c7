#include "inventory/expiry/sweeper.h"

#include "absl/strings/str_join.h"
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

namespace {

// A shard that is down is already logged by its monitor: debug only then.
void LogFailure(size_t shard, const char* what, const absl::Status& status) {
  const auto level = absl::IsUnavailable(status) ? spdlog::level::debug
                                                 : spdlog::level::warn;
  spdlog::log(level, "shard {}: {} failed: {}", shard, what,
              status.ToString());
}

}  // namespace

struct ExpirySweeper::SweepResult {
  absl::StatusOr<int> expired;
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
            // An expiry that waited out a product lock must not hold up the
            // late fills; one that found the shard down ends the sweep.
            SweepResult result;
            result.expired = store.ExpireDue(batch);
            if (absl::IsUnavailable(result.expired.status())) {
              return result.expired.status();
            }
            result.late_fill = store.FillLateBackorders(late_fill_batch);
            return result;
          },
          [this, i](absl::StatusOr<SweepResult> result) {
            if (result.ok()) {
              Count(i, *result);
            } else {
              LogFailure(i, "sweep", result.status());
            }
            busy_[i].store(false);
          });
    }
    stop_.WaitForNotificationWithTimeout(options_.interval);
  }
}

void ExpirySweeper::Count(size_t shard, const SweepResult& result) {
  // Failed steps are tried again at the next sweep.
  if (!result.expired.ok()) {
    LogFailure(shard, "expiry", result.expired.status());
  } else {
    expired_total_ += *result.expired;
    if (*result.expired > 0) {
      spdlog::debug("shard {}: expired {} hold(s)", shard, *result.expired);
    }
  }
  if (!result.late_fill.ok()) {
    LogFailure(shard, "late backorder fill", result.late_fill.status());
    return;
  }
  const LateFill& fill = *result.late_fill;
  late_filled_total_ += fill.units;
  if (fill.units > 0) {
    spdlog::info("shard {}: filled {} backordered unit(s) of {} product(s) "
                 "late",
                 shard, fill.units, fill.filled_products);
  }
  if (!fill.dropped.empty()) {
    spdlog::warn("shard {}: product(s) {} backorder more units than their "
                 "reservations do (counter drift); they left the late-fill "
                 "queue. Run `invctl verify` (docs/operations.md: if it "
                 "reports drift)",
                 shard, absl::StrJoin(fill.dropped, ", "));
  }
}

}  // namespace inventory
