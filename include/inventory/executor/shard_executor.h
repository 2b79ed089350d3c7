// A shard's executor: a queue of calls drained by worker threads that each own
// one ShardStore (one connection). gRPC handlers hand their work here and never
// block on the database; every call is answered exactly once, by its worker or,
// when its deadline runs out first, by the executor's deadline scan.
//
// This is also where concurrent reserve / release / commit calls for the shard
// are coalesced: a worker takes every such call waiting (up to max_batch, in
// arrival order) and decides them in one group transaction, at most
// batch_connections of them at a time. A lone call is never held back to wait
// for company.
#ifndef INVENTORY_EXECUTOR_SHARD_EXECUTOR_H_
#define INVENTORY_EXECUTOR_SHARD_EXECUTOR_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "inventory/health/shard_health.h"
#include "inventory/store/shard_store.h"

namespace inventory {

// Runs one shard's database work on its own connections.
class ShardExecutor {
 public:
  struct Options {
    // Worker threads, one connection each.
    int connections = 2;
    // Of those, how many may run group transactions at the same time (the
    // others meanwhile serve reads and administration). One is fastest: a
    // single group transaction in flight per shard gathers everything that
    // arrives while it runs, and batches do not queue behind each other's
    // row locks (docs/benchmarks.md).
    int batch_connections = 1;
    // Calls waiting beyond this are refused with UNAVAILABLE.
    size_t max_queue = 20000;
    // How often queued and running calls are checked against their deadline.
    absl::Duration deadline_scan = absl::Milliseconds(10);
    // Reserve / release / commit calls decided in one transaction, at most.
    int max_batch = 256;
    // Try each batch of reserves first with the one-statement fast path
    // (ShardStore::GrantWholeProducts); what it leaves goes to ApplyBatch.
    bool fast_path = true;
    // Told how many requests of a batch the fast path granted (metrics);
    // may be empty.
    std::function<void(int)> observe_fast_path;
    // Told how long each call's database work took (metrics); may be empty.
    std::function<void(absl::Duration)> observe_call;
    // Told the size of each group transaction (metrics); may be empty.
    std::function<void(int)> observe_batch;
  };

  using StoreFactory = std::function<std::unique_ptr<ShardStore>()>;

  // `health` must outlive the executor.
  ShardExecutor(int shard_index, StoreFactory make_store, ShardHealth* health,
                Options options);
  ~ShardExecutor();
  ShardExecutor(const ShardExecutor&) = delete;
  ShardExecutor& operator=(const ShardExecutor&) = delete;

  // Starts the workers and the deadline scan.
  void Start();

  // Runs `work` on a worker and hands its result to `done`, or hands `done`
  // an error when the shard is unreachable, the queue is full, the executor
  // is stopping, or `deadline` passes first. `done` runs exactly once, on
  // some executor thread (or inline, when refused at once). If `cancelled`
  // says the caller gave up before a worker starts the call, the work is
  // skipped (its connection stays free) and `done` gets CANCELLED.
  template <typename T>
  void Submit(absl::Time deadline,
              std::function<absl::StatusOr<T>(ShardStore&)> work,
              std::function<void(absl::StatusOr<T>)> done,
              std::function<bool()> cancelled = nullptr) {
    Enqueue(std::make_shared<TypedCall<T>>(deadline, std::move(work),
                                           std::move(done),
                                           std::move(cancelled)));
  }

  // Like Submit, for a reserve / release / commit: it may be decided in one
  // transaction with others waiting for the shard.
  void SubmitOp(absl::Time deadline, ReservationOp op,
                std::function<void(absl::StatusOr<ReserveOutcome>)> done,
                std::function<bool()> cancelled = nullptr) {
    Enqueue(std::make_shared<OpCall>(deadline, std::move(op), std::move(done),
                                     std::move(cancelled)));
  }

  // Stops taking calls, lets queued and running ones finish until `deadline`,
  // then answers the rest UNAVAILABLE. Returns false if a worker is still
  // stuck (hung shard); the executor must then not be destroyed.
  bool Shutdown(absl::Time deadline);

  int shard_index() const { return shard_index_; }
  // Calls waiting for a worker.
  size_t queued() const;
  // Workers busy with a call.
  int busy() const;

 private:
  class Call {
   public:
    Call(absl::Time deadline, std::function<bool()> cancelled)
        : deadline_(deadline), cancelled_(std::move(cancelled)) {}
    virtual ~Call() = default;
    // Runs the work; returns the outcome's status (for health reporting).
    virtual absl::Status Run(ShardStore& store) = 0;
    // Answers with `status` unless already answered.
    virtual void Fail(absl::Status status) = 0;
    // The batchable request, or null for other work.
    virtual const ReservationOp* op() const { return nullptr; }
    // Answers a batchable request with its outcome.
    virtual void CompleteOp(absl::StatusOr<ReserveOutcome> outcome) {}
    absl::Time deadline() const { return deadline_; }
    bool answered() const { return answered_.load(); }
    // Whether the caller has given up (answered calls count as given up).
    // Asked under the answer lock, so the caller's state is still alive.
    bool GivenUp() {
      absl::MutexLock lock(&answer_mu_);
      return answered_.load() || (cancelled_ && cancelled_());
    }

   protected:
    // Answers through `answer` unless already answered; exactly once.
    template <typename F>
    void AnswerOnce(F&& answer) {
      absl::MutexLock lock(&answer_mu_);
      if (answered_.exchange(true)) return;
      answer();
    }

   private:
    const absl::Time deadline_;
    const std::function<bool()> cancelled_;
    absl::Mutex answer_mu_;
    std::atomic<bool> answered_{false};
  };

  template <typename T>
  class TypedCall : public Call {
   public:
    TypedCall(absl::Time deadline,
              std::function<absl::StatusOr<T>(ShardStore&)> work,
              std::function<void(absl::StatusOr<T>)> done,
              std::function<bool()> cancelled)
        : Call(deadline, std::move(cancelled)),
          work_(std::move(work)),
          done_(std::move(done)) {}
    absl::Status Run(ShardStore& store) override {
      absl::StatusOr<T> result = work_(store);
      absl::Status status = result.status();
      AnswerOnce([&] { done_(std::move(result)); });
      return status;
    }
    void Fail(absl::Status status) override {
      AnswerOnce([&] { done_(std::move(status)); });
    }

   private:
    std::function<absl::StatusOr<T>(ShardStore&)> work_;
    std::function<void(absl::StatusOr<T>)> done_;
  };

  // A reserve / release / commit.
  class OpCall : public Call {
   public:
    OpCall(absl::Time deadline, ReservationOp op,
           std::function<void(absl::StatusOr<ReserveOutcome>)> done,
           std::function<bool()> cancelled)
        : Call(deadline, std::move(cancelled)),
          op_(std::move(op)),
          done_(std::move(done)) {}
    absl::Status Run(ShardStore& store) override {
      absl::StatusOr<std::vector<absl::StatusOr<ReserveOutcome>>> r =
          store.ApplyBatch({op_});
      absl::Status status = r.ok() ? r->front().status() : r.status();
      CompleteOp(r.ok() ? std::move(r->front())
                        : absl::StatusOr<ReserveOutcome>(r.status()));
      return status;
    }
    void Fail(absl::Status status) override {
      AnswerOnce([&] { done_(std::move(status)); });
    }
    const ReservationOp* op() const override { return &op_; }
    void CompleteOp(absl::StatusOr<ReserveOutcome> outcome) override {
      AnswerOnce([&] { done_(std::move(outcome)); });
    }

   private:
    const ReservationOp op_;
    std::function<void(absl::StatusOr<ReserveOutcome>)> done_;
  };

  void Enqueue(std::shared_ptr<Call> call);
  // Decides `batch` (OpCalls) in one group transaction on `store`.
  void RunBatch(ShardStore& store, std::vector<std::shared_ptr<Call>> batch);
  // Decides `ops` (of `batch`) with one ApplyBatch and answers the ones it
  // decided: a prefix, all of them unless a backorder fill ended the group
  // transaction early. Returns how many, or the error that should stop the
  // rest of the batch (shard unreachable).
  absl::StatusOr<size_t> DecideInGroupTransaction(
      ShardStore& store, const std::vector<std::shared_ptr<Call>>& batch,
      const std::vector<ReservationOp>& ops);
  // Decides each call of a failed group transaction alone, in order, within
  // its own deadline. Returns the error that should stop the rest of the
  // batch (shard unreachable), else OK.
  absl::Status DecideOneByOne(ShardStore& store,
                              const std::vector<std::shared_ptr<Call>>& batch);
  void WorkerLoop(int worker);
  // False for a call no longer worth running: answered already, or its
  // caller gave up (then it is answered CANCELLED here).
  bool StillWanted(Call& call);
  // Answers DEADLINE_EXCEEDED a call that is within the answer margin of its
  // deadline at `now` (too late to start: a grant could not be answered in
  // time); returns whether it did.
  bool FailIfDue(Call& call, absl::Time now);
  // Marks the shard unreachable if `status` says so; returns whether it did.
  bool ReportIfUnavailable(const absl::Status& status);
  // Whether a worker may take something from the queue now.
  bool Runnable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeadlineLoop();
  // The error for a call whose deadline ran out before it was sent: plain
  // "not reachable" if the shard is unreachable now, else DEADLINE_EXCEEDED.
  absl::Status DeadlineStatus() const;
  // DEADLINE_EXCEEDED ("outcome unknown"), whatever the shard's state: the
  // deadline scan's answer once it has read the shard's reachability (a
  // second reading could turn a running call's answer into "not reached").
  absl::Status DeadlineExceededStatus() const;

  const int shard_index_;
  const StoreFactory make_store_;
  ShardHealth* const health_;
  const Options options_;

  mutable absl::Mutex mu_;
  std::deque<std::shared_ptr<Call>> queue_ ABSL_GUARDED_BY(mu_);
  // How many of queue_ are reserve / release / commit calls.
  size_t queued_ops_ ABSL_GUARDED_BY(mu_) = 0;
  // Group transactions running now (at most batch_connections).
  int batches_running_ ABSL_GUARDED_BY(mu_) = 0;
  // What each worker is doing now (one call, or a batch).
  std::vector<std::vector<std::shared_ptr<Call>>> running_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int live_workers_ ABSL_GUARDED_BY(mu_) = 0;

  std::vector<std::thread> workers_;
  std::thread deadline_thread_;
  bool started_ = false;
  bool detached_ = false;
};

}  // namespace inventory

#endif  // INVENTORY_EXECUTOR_SHARD_EXECUTOR_H_
