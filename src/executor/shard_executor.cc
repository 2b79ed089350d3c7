#include "inventory/executor/shard_executor.h"

#include "absl/strings/str_cat.h"
#include "inventory/common/errors.h"
#include "spdlog/spdlog.h"

namespace inventory {
namespace {

// Answer a little before the caller's deadline so the caller sees our reason
// rather than its own timer.
constexpr absl::Duration kDeadlineMargin = absl::Milliseconds(20);

}  // namespace

ShardExecutor::ShardExecutor(int shard_index, StoreFactory make_store,
                             ShardHealth* health, Options options)
    : shard_index_(shard_index),
      make_store_(std::move(make_store)),
      health_(health),
      options_(options) {}

ShardExecutor::~ShardExecutor() {
  if (started_ && !detached_) Shutdown(absl::Now() + absl::Seconds(5));
}

void ShardExecutor::Start() {
  started_ = true;
  {
    absl::MutexLock lock(&mu_);
    running_.resize(options_.connections);
    live_workers_ = options_.connections;
  }
  for (int i = 0; i < options_.connections; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
  deadline_thread_ = std::thread([this] { DeadlineLoop(); });
}

absl::Status ShardExecutor::DeadlineStatus() const {
  if (!health_->Reachable(absl::Now())) {
    return ShardUnavailableError(shard_index_, "not reachable");
  }
  return MakeError(absl::StatusCode::kDeadlineExceeded,
                   reason::kDeadlineExceeded,
                   absl::StrCat("shard ", shard_index_,
                                " did not answer before the deadline"),
                   {{"shard", absl::StrCat(shard_index_)}});
}

void ShardExecutor::Enqueue(std::shared_ptr<Call> call) {
  const absl::Time now = absl::Now();
  if (!health_->Reachable(now)) {
    call->Fail(ShardUnavailableError(shard_index_, "not reachable"));
    return;
  }
  if (call->deadline() - kDeadlineMargin <= now) {
    call->Fail(DeadlineStatus());
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && queue_.size() < options_.max_queue) {
      queue_.push_back(std::move(call));
      return;
    }
  }
  call->Fail(ShardUnavailableError(shard_index_, "overloaded or stopping"));
}

void ShardExecutor::WorkerLoop(int worker) {
  std::unique_ptr<ShardStore> store = make_store_();
  while (true) {
    std::shared_ptr<Call> call;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ShardExecutor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return !e->queue_.empty() || e->stopping_;
          },
          this));
      if (queue_.empty()) break;  // stopping and drained
      call = std::move(queue_.front());
      queue_.pop_front();
      running_[worker] = call;
    }
    if (!call->answered() && call->GivenUp()) {
      call->Fail(absl::CancelledError("the caller cancelled the call"));
    } else if (!call->answered()) {
      store->SetCallDeadline(call->deadline());
      if (!health_->Reachable(absl::Now())) {
        call->Fail(ShardUnavailableError(shard_index_, "not reachable"));
      } else {
        const absl::Time start = absl::Now();
        absl::Status outcome = call->Run(*store);
        if (options_.observe_call) options_.observe_call(absl::Now() - start);
        if (ErrorReason(outcome) == reason::kShardUnavailable) {
          health_->ReportFailure(outcome.message());
        } else {
          health_->ReportSuccess();
        }
      }
    }
    absl::MutexLock lock(&mu_);
    running_[worker].reset();
  }
  absl::MutexLock lock(&mu_);
  --live_workers_;
}

void ShardExecutor::DeadlineLoop() {
  while (true) {
    std::vector<std::shared_ptr<Call>> expired;
    // A shard found unreachable (down or hung) answers everything waiting
    // for it now rather than at each call's deadline.
    const bool unreachable = !health_->Reachable(absl::Now());
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ && live_workers_ == 0) return;
      const absl::Time limit = absl::Now() + kDeadlineMargin;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (unreachable || (*it)->deadline() <= limit || (*it)->answered()) {
          expired.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      for (const auto& c : running_) {
        if (c != nullptr && !c->answered() &&
            (unreachable || c->deadline() <= limit)) {
          expired.push_back(c);
        }
      }
    }
    if (!expired.empty()) {
      absl::Status status = DeadlineStatus();
      for (auto& c : expired) c->Fail(status);
    }
    absl::SleepFor(options_.deadline_scan);
  }
}

bool ShardExecutor::Shutdown(absl::Time deadline) {
  if (!started_ || detached_) return !detached_;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return live_workers_ == 0;
    };
    mu_.AwaitWithDeadline(absl::Condition(&drained), deadline);
    if (live_workers_ > 0) {
      // Workers stuck on a hung shard: answer whatever waits and leave them.
      for (auto& c : queue_) {
        c->Fail(ShardUnavailableError(shard_index_, "service is stopping"));
      }
      queue_.clear();
      for (auto& c : running_) {
        if (c != nullptr) {
          c->Fail(ShardUnavailableError(shard_index_, "service is stopping"));
        }
      }
    }
  }
  absl::MutexLock lock(&mu_);
  if (live_workers_ > 0) {
    spdlog::warn("shard {}: {} worker(s) still busy at shutdown (hung shard?)",
                 shard_index_, live_workers_);
    detached_ = true;
    for (auto& t : workers_) t.detach();
    deadline_thread_.detach();
    return false;
  }
  mu_.Unlock();
  for (auto& t : workers_) t.join();
  deadline_thread_.join();
  mu_.Lock();
  workers_.clear();
  started_ = false;
  return true;
}

size_t ShardExecutor::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

int ShardExecutor::busy() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& c : running_) n += c != nullptr;
  return n;
}

}  // namespace inventory
