#include "inventory/executor/shard_executor.h"

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "inventory/common/errors.h"
#include "spdlog/spdlog.h"

namespace inventory {
namespace {

// Answer a little before the caller's deadline so the caller sees our reason
// rather than its own timer.
constexpr absl::Duration kDeadlineMargin = absl::Milliseconds(20);

// Whether `status` stops the rest of a batch: the shard is unreachable. (A
// statement that ran out of time stops only itself: the calls not in it are
// decided within their own deadlines.)
bool EndsBatch(const absl::Status& status) {
  return ErrorReason(status) == reason::kShardUnavailable;
}

// Whether `status` says a statement ran out of time.
bool TimedOut(const absl::Status& status) {
  return ErrorReason(status) == reason::kDeadlineExceeded;
}

// Most requests of one group transaction (inv_apply_batch); see RunBatch.
constexpr size_t kGroupChunk = 32;

// The lock wait of a batch's statements once one of them has waited out a
// whole lock_timeout: the row is locked elsewhere for long (an operator's
// open transaction, say), and each retry would wait for it again. It holds
// for every row the rest of the batch locks (which one was locked is not
// known): long enough for the service's own transactions, which hold a row
// for milliseconds.
constexpr absl::Duration kLockWaitAfterTimeout = absl::Milliseconds(200);

// At least one connection, and a batch lane of 1..connections (otherwise
// reservations would never run, or the limit would mean nothing).
ShardExecutor::Options Checked(ShardExecutor::Options options) {
  options.connections = std::max(1, options.connections);
  options.batch_connections =
      std::clamp(options.batch_connections, 1, options.connections);
  options.max_batch = std::max(1, options.max_batch);
  return options;
}

}  // namespace

ShardExecutor::ShardExecutor(int shard_index, StoreFactory make_store,
                             ShardHealth* health, Options options)
    : shard_index_(shard_index),
      make_store_(std::move(make_store)),
      health_(health),
      options_(Checked(std::move(options))) {}

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
  return DeadlineExceededStatus();
}

absl::Status ShardExecutor::DeadlineExceededStatus() const {
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
  if (FailIfDue(*call, now)) return;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && queue_.size() < options_.max_queue) {
      if (call->op() != nullptr) ++queued_ops_;
      queue_.push_back(std::move(call));
      return;
    }
  }
  call->Fail(ShardUnavailableError(shard_index_, "overloaded or stopping"));
}

bool ShardExecutor::FailIfDue(Call& call, absl::Time now) {
  if (call.deadline() - kDeadlineMargin > now) return false;
  call.Fail(DeadlineStatus());
  return true;
}

bool ShardExecutor::StillWanted(Call& call) {
  if (call.answered()) return false;
  if (call.GivenUp()) {
    call.Fail(absl::CancelledError("the caller cancelled the call"));
    return false;
  }
  return true;
}

bool ShardExecutor::ReportIfUnavailable(const absl::Status& status) {
  if (ErrorReason(status) != reason::kShardUnavailable) return false;
  health_->ReportFailure(status.message());
  return true;
}

bool ShardExecutor::Runnable() const {
  return queue_.size() > queued_ops_ ||
         (queued_ops_ > 0 && batches_running_ < options_.batch_connections);
}

void ShardExecutor::WorkerLoop(int worker) {
  std::unique_ptr<ShardStore> store = make_store_();
  while (true) {
    std::vector<std::shared_ptr<Call>> taken;
    bool batch = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ShardExecutor* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->mu_) {
            return e->Runnable() || (e->stopping_ && e->queue_.empty());
          },
          this));
      if (!Runnable()) break;  // stopping and drained
      // The oldest call this worker may take: anything, or only other work
      // while batch_connections group transactions are running.
      const bool may_batch = batches_running_ < options_.batch_connections;
      auto it = queue_.begin();
      while ((*it)->op() != nullptr && !may_batch) ++it;
      taken.push_back(std::move(*it));
      it = queue_.erase(it);
      // Coalesce: every other reserve / release / commit waiting, in
      // arrival order, up to max_batch. Nothing waits for company.
      if (taken.front()->op() != nullptr) {
        batch = true;
        ++batches_running_;
        --queued_ops_;
        while (it != queue_.end() &&
               static_cast<int>(taken.size()) < options_.max_batch) {
          if ((*it)->op() != nullptr) {
            taken.push_back(std::move(*it));
            it = queue_.erase(it);
            --queued_ops_;
          } else {
            ++it;
          }
        }
      }
      running_[worker] = taken;
    }
    std::vector<std::shared_ptr<Call>> live;
    for (auto& call : taken) {
      if (!StillWanted(*call)) continue;
      const absl::Time now = absl::Now();
      if (!health_->Reachable(now)) {
        call->Fail(ShardUnavailableError(shard_index_, "not reachable"));
      } else if (!FailIfDue(*call, now)) {
        live.push_back(call);
      }
    }
    if (!live.empty()) {
      const absl::Time start = absl::Now();
      if (live.front()->op() != nullptr) {
        RunBatch(*store, live);
      } else {
        store->SetCallDeadline(live.front()->deadline());
        if (!ReportIfUnavailable(live.front()->Run(*store))) {
          health_->ReportSuccess();
        }
      }
      if (options_.observe_call) options_.observe_call(absl::Now() - start);
    }
    absl::MutexLock lock(&mu_);
    running_[worker].clear();
    if (batch) --batches_running_;
  }
  absl::MutexLock lock(&mu_);
  --live_workers_;
}

void ShardExecutor::RunBatch(ShardStore& store,
                             std::vector<std::shared_ptr<Call>> batch) {
  std::vector<ReservationOp> ops;
  ops.reserve(batch.size());
  absl::Time earliest = absl::InfiniteFuture();
  for (const auto& call : batch) {
    ops.push_back(*call->op());
    earliest = std::min(earliest, call->deadline());
  }
  if (options_.observe_batch) options_.observe_batch(static_cast<int>(ops.size()));
  // A row lock this batch waited out is not waited for again in full.
  absl::Cleanup full_lock_wait = [&store] {
    store.SetLockWait(absl::ZeroDuration());
  };
  if (options_.fast_path) {
    // The fast path only saves work: it may run until the first deadline of
    // the batch, and if it cannot finish by then (a product row locked
    // elsewhere), the group transactions below decide the batch, each
    // within the deadlines of its own calls.
    store.SetCallDeadline(earliest);
    // Products whose stock covers all their requests are granted in one
    // plain statement; the rest go on to the group transaction, in order.
    absl::StatusOr<std::vector<std::optional<ReservationRecord>>> granted =
        store.GrantWholeProducts(ops);
    if (granted.ok()) {
      std::vector<std::shared_ptr<Call>> rest;
      std::vector<ReservationOp> rest_ops;
      for (size_t i = 0; i < batch.size(); ++i) {
        if ((*granted)[i].has_value()) {
          batch[i]->CompleteOp(
              ReserveOutcome{std::move(*(*granted)[i]), false});
        } else {
          rest.push_back(std::move(batch[i]));
          rest_ops.push_back(std::move(ops[i]));
        }
      }
      if (options_.observe_fast_path) {
        options_.observe_fast_path(static_cast<int>(batch.size() - rest.size()));
      }
      if (rest.empty()) {
        health_->ReportSuccess();
        return;
      }
      batch = std::move(rest);
      ops = std::move(rest_ops);
    } else if (EndsBatch(granted.status())) {
      ReportIfUnavailable(granted.status());
      for (const auto& call : batch) call->CompleteOp(granted.status());
      return;
    } else if (WaitedOutALock(granted.status())) {
      store.SetLockWait(kLockWaitAfterTimeout);
    }
    // Any other failure, running out of time included: nothing was applied,
    // and the group transactions decide the whole batch.
  }
  // The group transaction's cost grows faster than its size (its PL/pgSQL
  // array work): measured with pgbench, one call of 256 reserves took 54 ms
  // of CPU, one of 32 about 2.7 ms. What is left of a large batch is decided
  // in consecutive group transactions of at most kGroupChunk requests, in
  // arrival order: still exactly the outcomes of one at a time. A group
  // transaction may decide only the first part of its chunk (it stops where
  // a backorder fill runs); the next one starts with the first call it left.
  size_t begin = 0;
  while (begin < batch.size()) {
    const size_t end = std::min(batch.size(), begin + kGroupChunk);
    std::vector<size_t> positions;  // of calls, in batch
    std::vector<std::shared_ptr<Call>> calls;
    std::vector<ReservationOp> chunk;
    absl::Time chunk_latest = absl::InfinitePast();
    // Time has passed since the batch was taken: leave out the calls the
    // deadline scan has answered or whose callers gave up, answer those
    // whose deadline is (all but) gone, and give the statement only the time
    // the remaining calls have.
    const absl::Time now = absl::Now();
    for (size_t i = begin; i < end; ++i) {
      if (!StillWanted(*batch[i]) || FailIfDue(*batch[i], now)) continue;
      positions.push_back(i);
      calls.push_back(batch[i]);
      chunk.push_back(ops[i]);
      chunk_latest = std::max(chunk_latest, batch[i]->deadline());
    }
    if (calls.empty()) {
      begin = end;
      continue;
    }
    store.SetCallDeadline(chunk_latest);
    absl::StatusOr<size_t> decided = DecideInGroupTransaction(store, calls, chunk);
    if (!decided.ok()) {
      // Shard unreachable: so it is for the chunks after this one.
      for (size_t i = end; i < batch.size(); ++i) {
        batch[i]->CompleteOp(decided.status());
      }
      return;
    }
    begin = *decided < calls.size() ? positions[*decided] : end;
  }
}

absl::StatusOr<size_t> ShardExecutor::DecideInGroupTransaction(
    ShardStore& store, const std::vector<std::shared_ptr<Call>>& batch,
    const std::vector<ReservationOp>& ops) {
  absl::StatusOr<std::vector<absl::StatusOr<ReserveOutcome>>> outcomes =
      store.ApplyBatch(ops);
  if (!outcomes.ok()) {
    const bool ends = EndsBatch(outcomes.status());
    ReportIfUnavailable(outcomes.status());
    if (batch.size() > 1 && !ends && !TimedOut(outcomes.status())) {
      // Nothing was applied. Decide each request alone, so one request
      // that breaks the statement cannot fail its batch-mates. If it
      // waited out a row lock, the requests of that row's product are
      // answered CONCURRENT_UPDATE after a short wait, not one lock
      // timeout each.
      if (WaitedOutALock(outcomes.status())) {
        store.SetLockWait(kLockWaitAfterTimeout);
      }
      absl::Status stop = DecideOneByOne(store, batch);
      if (!stop.ok()) return stop;
      return batch.size();
    }
    // Out of time: the statement had until the chunk's last deadline (or
    // the --statement_timeout bound, if that came first), so every call of
    // the chunk is past its own deadline or that bound.
    for (const auto& call : batch) call->CompleteOp(outcomes.status());
    if (ends) return outcomes.status();
    return batch.size();
  }
  health_->ReportSuccess();
  for (size_t i = 0; i < outcomes->size(); ++i) {
    batch[i]->CompleteOp(std::move((*outcomes)[i]));
  }
  return outcomes->size();
}

absl::Status ShardExecutor::DecideOneByOne(
    ShardStore& store, const std::vector<std::shared_ptr<Call>>& batch) {
  for (size_t i = 0; i < batch.size(); ++i) {
    Call& call = *batch[i];
    // The failed statement took time: skip what was answered or given up
    // meanwhile, and give each statement only its own call's time.
    if (!StillWanted(call) || FailIfDue(call, absl::Now())) continue;
    store.SetCallDeadline(call.deadline());
    const absl::Status status = call.Run(store);
    if (ReportIfUnavailable(status)) {
      for (size_t j = i + 1; j < batch.size(); ++j) batch[j]->CompleteOp(status);
      return status;
    }
  }
  return absl::OkStatus();
}

void ShardExecutor::DeadlineLoop() {
  while (true) {
    std::vector<std::shared_ptr<Call>> queued;   // never handed to the store
    std::vector<std::shared_ptr<Call>> running;  // their statement may be sent
    bool unreachable = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ && live_workers_ == 0) return;
      // A shard found unreachable (down or hung) answers everything waiting
      // for it now rather than at each call's deadline. Read under the lock:
      // a call queued after the shard came back (Enqueue checks before it
      // locks) is then never answered from an older reading.
      const absl::Time now = absl::Now();
      unreachable = !health_->Reachable(now);
      // Due before the next scan's margin: answered now, so the answer is
      // out 20-30 ms before the deadline, not up to a scan period later.
      const absl::Time limit = now + kDeadlineMargin + options_.deadline_scan;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if (unreachable || (*it)->deadline() <= limit || (*it)->answered()) {
          if ((*it)->op() != nullptr) --queued_ops_;
          queued.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      for (const auto& calls : running_) {
        for (const auto& c : calls) {
          if (!c->answered() && (unreachable || c->deadline() <= limit)) {
            running.push_back(c);
          }
        }
      }
    }
    if (!queued.empty()) {
      const absl::Status status =
          unreachable ? ShardUnavailableError(shard_index_, "not reachable")
                      : DeadlineExceededStatus();
      for (auto& c : queued) c->Fail(status);
    }
    if (!running.empty()) {
      // The worker may have sent the call's statement already, and the shard
      // may still apply it: the caller must not read this as "not done".
      // A reserve, release or commit can be settled by its retry; other
      // calls (reads, stock administration) by reading the state again.
      const absl::Status op_status =
          unreachable
              ? ShardUnavailableError(
                    shard_index_,
                    "not reachable while the call was in progress, so its "
                    "outcome is unknown (a retry with the same request_id "
                    "or GetReservation tells)")
              : DeadlineExceededStatus();
      const absl::Status other_status =
          unreachable ? ShardUnavailableError(
                            shard_index_,
                            "not reachable while the call was in progress, "
                            "so its outcome is unknown")
                      : DeadlineExceededStatus();
      for (auto& c : running) {
        c->Fail(c->op() != nullptr ? op_status : other_status);
      }
    }
    absl::SleepFor(options_.deadline_scan);
  }
}

bool ShardExecutor::Shutdown(absl::Time deadline) {
  if (!started_ || detached_) return !detached_;
  std::vector<std::shared_ptr<Call>> abandoned;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return live_workers_ == 0;
    };
    mu_.AwaitWithDeadline(absl::Condition(&drained), deadline);
    if (live_workers_ > 0) {
      // Workers stuck on a hung shard: answer whatever waits and leave them.
      spdlog::warn("shard {}: {} worker(s) still busy at shutdown (hung shard?)",
                   shard_index_, live_workers_);
      detached_ = true;
      abandoned.assign(queue_.begin(), queue_.end());
      queue_.clear();
      queued_ops_ = 0;
      for (const auto& calls : running_) {
        abandoned.insert(abandoned.end(), calls.begin(), calls.end());
      }
    }
  }
  // Answered outside the lock: an answer may call back into the executor.
  for (const auto& c : abandoned) {
    c->Fail(ShardUnavailableError(shard_index_, "service is stopping"));
  }
  if (detached_) {
    for (auto& t : workers_) t.detach();
    deadline_thread_.detach();
    return false;
  }
  for (auto& t : workers_) t.join();
  deadline_thread_.join();
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
  for (const auto& calls : running_) n += !calls.empty();
  return n;
}

}  // namespace inventory
