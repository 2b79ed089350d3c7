// WatchInventoryEvents: one EventWatch per open stream. Its own thread reads
// every shard's outbox (through the shard executors) after the stream's
// cursor, writes the events one at a time in id order per shard, each with the
// cursor just after it, and polls again.
#include <atomic>
#include <functional>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "inventory/api/convert.h"
#include "inventory/api/inventory_service.h"
#include "inventory/api/page_token.h"
#include "inventory/common/errors.h"
#include "spdlog/spdlog.h"

namespace inventory {

namespace v1 = ::inventory::v1;

// One open WatchInventoryEvents stream.
class EventWatch
    : public grpc::ServerWriteReactor<v1::WatchInventoryEventsResponse> {
 public:
  EventWatch(InventoryServiceImpl* service,
             std::vector<ShardExecutor*> executors, std::vector<int64_t> cursor,
             absl::Duration poll_interval)
      : service_(service),
        executors_(std::move(executors)),
        cursor_(std::move(cursor)),
        poll_interval_(poll_interval) {}

  void Start() {
    std::thread([this] { Loop(); }).detach();
  }

  // Ends the stream soon (shutdown).
  void Stop() {
    if (!stop_requested_.exchange(true)) stop_.Notify();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_ok_ = ok;
    write_pending_ = false;
  }

  void OnCancel() override { Stop(); }

  void OnDone() override {
    service_->WatchDone(this);
    delete this;
  }

 private:
  static constexpr int kBatch = 200;

  // Runs `work` (given the shard's index) on every shard at once and returns
  // each one's answer, or nothing for a shard that did not answer in time.
  template <typename T>
  std::vector<std::optional<T>> AskEveryShard(
      std::function<absl::StatusOr<T>(ShardStore&, size_t)> work) {
    const size_t n = executors_.size();
    struct Round {
      absl::Mutex mu;
      std::vector<std::optional<T>> answers ABSL_GUARDED_BY(mu);
      size_t pending ABSL_GUARDED_BY(mu);
      absl::Notification done;
    };
    auto round = std::make_shared<Round>();
    {
      absl::MutexLock lock(&round->mu);
      round->answers.resize(n);
      round->pending = n;
    }
    for (size_t s = 0; s < n; ++s) {
      executors_[s]->Submit<T>(
          absl::Now() + absl::Seconds(2),
          [work, s](ShardStore& store) { return work(store, s); },
          [round, s](absl::StatusOr<T> r) {
            absl::MutexLock lock(&round->mu);
            if (r.ok()) round->answers[s] = *std::move(r);
            if (--round->pending == 0) round->done.Notify();
          });
    }
    round->done.WaitForNotificationWithTimeout(absl::Seconds(3));
    absl::MutexLock lock(&round->mu);
    return round->answers;  // copies: late answers may still land in `round`
  }

  // Up to kBatch events after the cursor from every shard (none from a
  // shard that does not answer this round).
  std::vector<std::vector<InventoryEventRecord>> Poll() {
    std::vector<std::vector<InventoryEventRecord>> events(executors_.size());
    std::vector<std::optional<std::vector<InventoryEventRecord>>> answers =
        AskEveryShard<std::vector<InventoryEventRecord>>(
            [after = cursor_](ShardStore& store, size_t s) {
              return store.ReadEvents(after[s], kBatch);
            });
    for (size_t s = 0; s < answers.size(); ++s) {
      if (answers[s].has_value()) events[s] = *std::move(answers[s]);
    }
    return events;
  }

  // INVALID_ARGUMENT if the cursor is beyond a shard's newest event: it was
  // forged, or made against another cluster or before a shard was restored
  // from a backup, and would silently skip that shard's next events. Shards
  // that do not answer now are not checked.
  absl::Status CheckCursor() {
    std::vector<std::optional<int64_t>> last = AskEveryShard<int64_t>(
        [](ShardStore& store, size_t) { return store.LastEventId(); });
    for (size_t s = 0; s < last.size(); ++s) {
      if (!last[s].has_value() || cursor_[s] <= *last[s]) continue;
      return InvalidArgumentError(
          {{"cursor",
            absl::StrCat("is beyond shard ", s, "'s newest event (", cursor_[s],
                         " > ", *last[s], "): it is not from this cluster, "
                         "or the shard was restored from a backup. Resume "
                         "from a cursor this cluster gave, or from none")}});
    }
    return absl::OkStatus();
  }

  // Writes one message and waits for it to be sent; false if the stream is
  // gone.
  bool Write(const v1::WatchInventoryEventsResponse& message) {
    {
      absl::MutexLock lock(&mu_);
      response_ = message;
      write_pending_ = true;
    }
    StartWrite(&response_);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* pending) { return !*pending; }, &write_pending_));
    return write_ok_;
  }

  void Loop() {
    if (absl::Status s = CheckCursor(); !s.ok()) {
      Finish(ToGrpcStatus(s));  // OnDone deletes this
      return;
    }
    bool open = true;
    while (open && !stop_.HasBeenNotified()) {
      std::vector<std::vector<InventoryEventRecord>> events = Poll();
      bool more = false;
      for (size_t s = 0; open && s < events.size(); ++s) {
        more = more || events[s].size() == kBatch;
        for (const auto& e : events[s]) {
          if (stop_.HasBeenNotified()) break;
          cursor_[s] = e.id;
          v1::WatchInventoryEventsResponse message;
          ToProto(e, static_cast<int>(s), message.mutable_event());
          message.set_cursor(EncodeEventCursor(cursor_));
          if (!Write(message)) {
            open = false;
            break;
          }
          if (service_->metrics() != nullptr) {
            service_->metrics()->CountEventStreamed();
          }
        }
      }
      if (!more) stop_.WaitForNotificationWithTimeout(poll_interval_);
    }
    // Touch nothing of ours after Finish: OnDone deletes this.
    Finish(open ? ToGrpcStatus(MakeError(
                      absl::StatusCode::kUnavailable, reason::kServiceStopping,
                      "the server is shutting down; resume with the last "
                      "cursor on another instance"))
                : grpc::Status::CANCELLED);
  }

  InventoryServiceImpl* const service_;
  const std::vector<ShardExecutor*> executors_;
  std::vector<int64_t> cursor_;
  const absl::Duration poll_interval_;
  std::atomic<bool> stop_requested_{false};
  absl::Notification stop_;
  absl::Mutex mu_;
  v1::WatchInventoryEventsResponse response_;
  bool write_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = true;
};

grpc::ServerWriteReactor<v1::WatchInventoryEventsResponse>*
InventoryServiceImpl::WatchInventoryEvents(
    grpc::CallbackServerContext* context,
    const v1::WatchInventoryEventsRequest* request) {
  absl::StatusOr<std::vector<int64_t>> cursor =
      DecodeEventCursor(request->cursor(), router_.shard_count());
  if (!cursor.ok()) {
    class Refusal
        : public grpc::ServerWriteReactor<v1::WatchInventoryEventsResponse> {
     public:
      explicit Refusal(grpc::Status s) { Finish(std::move(s)); }
      void OnDone() override { delete this; }
    };
    return new Refusal(ToGrpcStatus(cursor.status()));
  }
  auto* watch = new EventWatch(this, executors_, *std::move(cursor),
                               options_.event_poll_interval);
  {
    absl::MutexLock lock(&watches_mu_);
    watches_.insert(watch);
    if (stopping_) watch->Stop();
  }
  watch->Start();
  return watch;
}

void InventoryServiceImpl::WatchDone(EventWatch* watch) {
  absl::MutexLock lock(&watches_mu_);
  watches_.erase(watch);
}

void InventoryServiceImpl::StopWatchers() {
  absl::MutexLock lock(&watches_mu_);
  stopping_ = true;
  for (EventWatch* w : watches_) w->Stop();
  // OnDone of each removes it; wait (bounded) until all are gone.
  watches_mu_.AwaitWithTimeout(
      absl::Condition(
          +[](absl::flat_hash_set<EventWatch*>* w) { return w->empty(); },
          &watches_),
      absl::Seconds(5));
}

}  // namespace inventory
