// Database test of ShardExecutor's batch lanes (Options::batch_connections)
// on a real shard. A reserve is made to block in the database on a product
// row another connection holds locked. Then:
//  * with batch_connections = 1 (of 2 connections), a second reserve (of
//    another, free product) waits for the blocked group transaction, while a
//    plain call (a product read) submitted after it is served at once by the
//    other worker: a worker never starts a second group transaction while
//    the limit is reached, and the limit never holds back other work;
//  * with batch_connections = 2, the second reserve is answered at once
//    although the first is still blocked.
// Without the limit the second reserve would be answered at once in the
// first case too (the free worker takes the oldest call), so the first case
// fails if the limit is not enforced. Both cases run with and without the
// fast path (GrantWholeProducts), since both take the product lock.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/executor/shard_executor.h"
#include "inventory/health/shard_health.h"
#include "inventory/store/shard_store.h"
#include "backorder_fill.h"
#include "one_shard.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

// application_name of the executor's connections (to watch their lock waits).
constexpr char kApp[] = "executor_lanes_pgtest";
// Deadline of every submitted call; only reached on failure.
constexpr absl::Duration kCallDeadline = absl::Seconds(30);
// "Promptly": far above a round trip, far below anything a blocked lane or a
// test failure would take.
constexpr absl::Duration kPrompt = absl::Seconds(2);
// How long the reserve behind the busy lane must stay unanswered.
constexpr absl::Duration kHeldBack = absl::Milliseconds(600);


// The answer one submitted call gets. Shared with the `done` callback, so it
// outlives it whatever order things are torn down in.
template <typename T>
struct Answer {
  absl::Notification done;
  absl::StatusOr<T> result = absl::UnknownError("never answered");
  absl::Time time;

  bool WaitFor(absl::Duration d) {
    return done.WaitForNotificationWithTimeout(d);
  }
};

template <typename T>
std::function<void(absl::StatusOr<T>)> Done(std::shared_ptr<Answer<T>> a) {
  return [a](absl::StatusOr<T> r) {
    a->result = std::move(r);
    a->time = absl::Now();
    a->done.Notify();
  };
}

struct LanesCase {
  int batch_connections;
  bool fast_path;
};

// gtest output: the case's settings instead of raw bytes.
void PrintTo(const LanesCase& c, std::ostream* os) {
  *os << "batch_connections=" << c.batch_connections
      << " fast_path=" << (c.fast_path ? "true" : "false");
}

struct BlockedLane;

class ExecutorLanesTest
    : public OneShardTest<::testing::TestWithParam<LanesCase>> {
 protected:
  void SetUp() override {
    OneShardTest::SetUp();
    health_.MarkVerified();
  }


  static ReservationOp ReserveOp(int64_t product) {
    ReservationOp op;
    op.kind = ReservationOp::Kind::kReserve;
    op.reserve.request_id = absl::StrCat("lanes-", product);
    op.reserve.product_id = product;
    op.reserve.quantity = 1;
    op.reserve.customer_id = "cust";
    op.reserve.hold_ttl = absl::Minutes(15);
    return op;
  }

  // Executor connections waiting for a lock in the database.
  static int64_t LockWaits() {
    return QueryInt(dsn(), absl::StrCat(
                               "SELECT count(*) FROM pg_stat_activity WHERE "
                               "application_name = '", kApp,
                               "' AND wait_event_type = 'Lock'"));
  }

  // Fills `lane`: see BlockedLane.
  // `lock_timeout` is the stores' (the blocked reserve must be released
  // before it runs out); `connections` the executor's.
  void BlockLane(BlockedLane* lane, bool fast_path = true,
                 absl::Duration lock_timeout = kCallDeadline,
                 int connections = 2);

  // Declared before the executors the tests create: outlives them.
  ShardHealth health_;
};

TEST_P(ExecutorLanesTest, BatchLaneLimitHoldsBackOnlyGroupTransactions) {
  const LanesCase c = GetParam();
  const int64_t x = MakeProduct(10);
  const int64_t y = MakeProduct(10);

  // Another connection holds X's row.
  HeldLock held = HeldLock::ProductRow(dsn(), x);

  ShardExecutor::Options options;
  options.connections = 2;
  options.batch_connections = c.batch_connections;
  options.fast_path = c.fast_path;
  ShardStoreOptions store_options;
  store_options.application_name = kApp;
  // The blocked reserve must wait for the lock, not give up on it.
  store_options.lock_timeout = kCallDeadline;
  store_options.statement_timeout = kCallDeadline;
  const std::string shard_dsn = dsn();
  auto executor = std::make_unique<ShardExecutor>(
      0,
      [shard_dsn, store_options] {
        return std::make_unique<ShardStore>(0, Dsn(shard_dsn), store_options);
      },
      &health_, options);
  executor->Start();

  // The reserve of X blocks in the database on the row lock.
  auto on_x = std::make_shared<Answer<ReserveOutcome>>();
  executor->SubmitOp(absl::Now() + kCallDeadline, ReserveOp(x), Done(on_x));
  ASSERT_TRUE(PollUntil([&] { return executor->busy() == 1; }));
  ASSERT_TRUE(PollUntil([&] { return LockWaits() == 1; }))
      << "the reserve of X never waited for the row lock";

  // A reserve of the free product Y, then a plain call.
  auto on_y = std::make_shared<Answer<ReserveOutcome>>();
  auto read = std::make_shared<Answer<ProductRecord>>();
  const absl::Time submitted = absl::Now();
  executor->SubmitOp(absl::Now() + kCallDeadline, ReserveOp(y), Done(on_y));
  executor->Submit<ProductRecord>(
      absl::Now() + kCallDeadline,
      [y](ShardStore& store) { return store.GetProduct(y); }, Done(read));

  // The plain call is served by the other worker at once.
  ASSERT_TRUE(read->WaitFor(kPrompt)) << "the plain call was held back";
  ASSERT_TRUE(read->result.ok()) << read->result.status();
  EXPECT_EQ(read->result->product_id, y);

  if (c.batch_connections == 1) {
    // The only batch lane is busy: the reserve of Y waits, in the queue.
    EXPECT_FALSE(on_y->WaitFor(kHeldBack))
        << "a second group transaction ran while batch_connections=1 was "
           "busy (answered after "
        << absl::FormatDuration(on_y->time - submitted) << ")";
    EXPECT_EQ(executor->queued(), 1u);
    EXPECT_EQ(executor->busy(), 1);
    EXPECT_FALSE(on_x->done.HasBeenNotified());
  } else {
    // A second lane is free: Y is reserved while X still waits.
    ASSERT_TRUE(on_y->WaitFor(kPrompt))
        << "the reserve of Y waited although a batch lane was free";
    ASSERT_TRUE(on_y->result.ok()) << on_y->result.status();
    EXPECT_EQ(on_y->result->reservation.product_id, y);
    EXPECT_FALSE(on_x->done.HasBeenNotified());
    EXPECT_EQ(LockWaits(), 1);
  }

  // The lock goes away: both reserves are granted.
  held.Release();
  ASSERT_TRUE(on_x->WaitFor(kCallDeadline));
  ASSERT_TRUE(on_y->WaitFor(kCallDeadline));
  ASSERT_TRUE(on_x->result.ok()) << on_x->result.status();
  ASSERT_TRUE(on_y->result.ok()) << on_y->result.status();
  EXPECT_EQ(on_x->result->reservation.product_id, x);
  EXPECT_EQ(on_y->result->reservation.product_id, y);
  EXPECT_FALSE(on_x->result->replayed);
  EXPECT_FALSE(on_y->result->replayed);
  if (c.batch_connections == 1) {
    // Y's group transaction started only after X's ended.
    EXPECT_GE(on_y->time, on_x->time);
  }
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kCallDeadline));

  for (int64_t id : {x, y}) {
    auto p = store_->GetProduct(id);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->reserved_quantity, 1) << id;
  }
}

// An executor whose stores wait for locks as long as the calls' deadlines,
// logging batch sizes and fast-path grants.
struct LoggedExecutor {
  absl::Mutex mu;
  std::vector<int> sizes ABSL_GUARDED_BY(mu);
  std::atomic<int> fast_granted{0};
  std::unique_ptr<ShardExecutor> executor;

  LoggedExecutor(const std::string& shard_dsn, ShardHealth* health,
                 bool fast_path, absl::Duration lock_timeout,
                 int connections) {
    ShardExecutor::Options options;
    options.connections = connections;
    options.fast_path = fast_path;
    options.observe_batch = [this](int n) {
      absl::MutexLock lock(&mu);
      sizes.push_back(n);
    };
    options.observe_fast_path = [this](int n) { fast_granted += n; };
    ShardStoreOptions store_options;
    store_options.application_name = kApp;
    store_options.lock_timeout = lock_timeout;
    store_options.statement_timeout = kCallDeadline;
    executor = std::make_unique<ShardExecutor>(
        0,
        [shard_dsn, store_options] {
          return std::make_unique<ShardStore>(0, Dsn(shard_dsn),
                                              store_options);
        },
        health, options);
    executor->Start();
  }
  std::vector<int> Sizes() {
    absl::MutexLock lock(&mu);
    return sizes;
  }
};

// The shard's only batch lane held: a reserve of a fresh product waits in
// the database on the product's row, which `held` keeps locked. Whatever is
// submitted meanwhile forms one batch.
struct BlockedLane {
  std::unique_ptr<HeldLock> held;
  std::unique_ptr<LoggedExecutor> logged;
  std::shared_ptr<Answer<ReserveOutcome>> on_x;

  ShardExecutor* executor() { return logged->executor.get(); }
  // Lets the blocked reserve go; it is granted.
  void Release() {
    held->Release();
  }
};

void ExecutorLanesTest::BlockLane(BlockedLane* lane, bool fast_path,
                                  absl::Duration lock_timeout,
                                  int connections) {
  const int64_t x = MakeProduct(10);
  lane->held =
      std::make_unique<HeldLock>(HeldLock::ProductRow(dsn(), x));
  lane->logged =
      std::make_unique<LoggedExecutor>(dsn(), &health_, fast_path, lock_timeout,
                                       connections);
  lane->on_x = std::make_shared<Answer<ReserveOutcome>>();
  lane->executor()->SubmitOp(absl::Now() + kCallDeadline, ReserveOp(x),
                             Done(lane->on_x));
  ASSERT_TRUE(PollUntil([&] { return lane->executor()->busy() == 1; }));
}

// A batch whose fast path grants one product and leaves more than one group
// transaction's worth (32) of another, short of stock: 20 reserves of W
// (stock 100) interleaved with 80 of Z (stock 50), queued behind a blocked
// batch so that they form one batch. The fast path grants all of W and none
// of Z; Z's 80 are decided in three group transactions, in order: the first
// 50 granted, the rest refused. A partial grant of Z by the fast path, or a
// chunk decided out of order, changes which.
TEST_F(ExecutorLanesTest, FastPathAndChunksKeepArrivalOrder) {
  const int64_t w = MakeProduct(100);
  const int64_t z = MakeProduct(50);
  BlockedLane lane;
  ASSERT_NO_FATAL_FAILURE(BlockLane(&lane));
  LoggedExecutor& logged = *lane.logged;

  // Every fifth request is for W.
  constexpr int kOps = 100;
  std::vector<std::shared_ptr<Answer<ReserveOutcome>>> answers;
  std::vector<int64_t> product_of;
  for (int i = 0; i < kOps; ++i) {
    product_of.push_back(i % 5 == 0 ? w : z);
    ReservationOp op = ReserveOp(product_of.back());
    op.reserve.request_id = absl::StrCat("mix-", z, "-", i);
    answers.push_back(std::make_shared<Answer<ReserveOutcome>>());
    logged.executor->SubmitOp(absl::Now() + kCallDeadline, op,
                              Done(answers.back()));
  }
  ASSERT_EQ(logged.executor->queued(), static_cast<size_t>(kOps));
  lane.Release();
  ASSERT_TRUE(lane.on_x->WaitFor(kCallDeadline));
  for (auto& a : answers) ASSERT_TRUE(a->WaitFor(kCallDeadline));
  EXPECT_TRUE(logged.executor->Shutdown(absl::Now() + kCallDeadline));
  EXPECT_EQ(logged.Sizes(), (std::vector<int>{1, kOps}));
  EXPECT_EQ(logged.fast_granted.load(), 1 + 20);  // X's alone, and all of W

  int z_seen = 0;
  for (int i = 0; i < kOps; ++i) {
    const absl::StatusOr<ReserveOutcome>& r = answers[i]->result;
    if (product_of[i] == w || z_seen++ < 50) {
      ASSERT_TRUE(r.ok()) << i << ": " << r.status();
      EXPECT_FALSE(r->replayed) << i;
      EXPECT_EQ(r->reservation.product_id, product_of[i]) << i;
    } else {
      EXPECT_EQ(ErrorReason(r.status()), reason::kOutOfStock) << i;
    }
  }
  for (auto [id, units] : {std::pair<int64_t, int64_t>{w, 20}, {z, 50}}) {
    auto p = store_->GetProduct(id);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->reserved_quantity, units) << id;
  }
}

// A batch larger than one group transaction takes (the executor decides
// what the fast path leaves in consecutive group transactions of at most 32)
// gets exactly the one-at-a-time outcomes: 80 reserves of one unit on a
// product with 50, queued behind a blocked batch so that they form one
// batch, with a replay and a conflict of earlier request ids in a later
// chunk (so the fast path leaves the product to the group transaction). The first 50 distinct requests in
// arrival order are granted, the rest refused; a chunk decided out of order
// changes which.
TEST_F(ExecutorLanesTest, LargeBatchIsDecidedInArrivalOrderAcrossChunks) {
  const int64_t z = MakeProduct(50);
  BlockedLane lane;
  ASSERT_NO_FATAL_FAILURE(BlockLane(&lane));
  LoggedExecutor& logged = *lane.logged;
  ShardExecutor* executor = lane.executor();

  constexpr int kOps = 80;
  std::vector<std::shared_ptr<Answer<ReserveOutcome>>> answers;
  for (int i = 0; i < kOps; ++i) {
    ReservationOp op = ReserveOp(z);
    op.reserve.request_id = absl::StrCat("big-", z, "-", i);
    if (i == 40) op.reserve.request_id = absl::StrCat("big-", z, "-5");
    if (i == 41) {
      op.reserve.request_id = absl::StrCat("big-", z, "-6");
      op.reserve.quantity = 2;  // same id, other parameters
    }
    answers.push_back(std::make_shared<Answer<ReserveOutcome>>());
    executor->SubmitOp(absl::Now() + kCallDeadline, op, Done(answers.back()));
  }
  ASSERT_EQ(executor->queued(), static_cast<size_t>(kOps));
  lane.Release();
  ASSERT_TRUE(lane.on_x->WaitFor(kCallDeadline));
  for (auto& a : answers) ASSERT_TRUE(a->WaitFor(kCallDeadline));
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kCallDeadline));
  EXPECT_EQ(logged.Sizes(), (std::vector<int>{1, kOps}));

  for (int i = 0; i < kOps; ++i) {
    const absl::StatusOr<ReserveOutcome>& r = answers[i]->result;
    if (i == 40) {
      ASSERT_TRUE(r.ok()) << i << ": " << r.status();
      EXPECT_TRUE(r->replayed) << i;
      EXPECT_EQ(r->reservation.row_id, answers[5]->result->reservation.row_id);
    } else if (i == 41) {
      EXPECT_EQ(ErrorReason(r.status()), reason::kRequestIdConflict) << i;
    } else if (i < 52) {  // 40 + 10 distinct requests: the 50 units
      ASSERT_TRUE(r.ok()) << i << ": " << r.status();
      EXPECT_FALSE(r->replayed) << i;
    } else {
      EXPECT_EQ(ErrorReason(r.status()), reason::kOutOfStock) << i;
    }
  }
  auto p = store_->GetProduct(z);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->reserved_quantity, 50);
}

// The backorder-fill scenario (see BackorderFill) queued behind a blocked
// batch, so that its five requests form one batch: the group transactions
// stop where a fill runs, and the executor sends the rest on, so every
// request is answered, with the fill seen as one at a time would.
TEST_F(ExecutorLanesTest, ABatchSeesTheBackorderFillsOfItsEarlierRequests) {
  const BackorderFill s =
      BackorderFill::Build(*store_, NewProductId(), "lanes-fill-");
  ASSERT_EQ(s.ops.size(), 5u);
  BlockedLane lane;
  ASSERT_NO_FATAL_FAILURE(BlockLane(&lane));
  LoggedExecutor& logged = *lane.logged;
  std::vector<std::shared_ptr<Answer<ReserveOutcome>>> answers;
  for (const ReservationOp& op : s.ops) {
    answers.push_back(std::make_shared<Answer<ReserveOutcome>>());
    logged.executor->SubmitOp(absl::Now() + kCallDeadline, op,
                              Done(answers.back()));
  }
  ASSERT_EQ(logged.executor->queued(), s.ops.size());
  lane.Release();
  ASSERT_TRUE(lane.on_x->WaitFor(kCallDeadline));
  std::vector<absl::StatusOr<ReserveOutcome>> results;
  for (auto& a : answers) {
    ASSERT_TRUE(a->WaitFor(kCallDeadline)) << "a request was never answered";
    results.push_back(a->result);
  }
  EXPECT_TRUE(logged.executor->Shutdown(absl::Now() + kCallDeadline));
  EXPECT_EQ(logged.Sizes(), (std::vector<int>{1, 5}));
  EXPECT_EQ(BackorderFill::Describe(results), BackorderFill::Expected());
  ASSERT_TRUE(results[2].ok()) << results[2].status();
  s.ExpectFilled(*store_, results[2]->reservation.row_id);
}

// A batch whose first 40 requests (more than a group transaction's 32) cannot
// be decided within their short deadline, since their product's row is
// locked elsewhere, followed by 3 requests of a free product with time to
// spare. The 3 are still granted, by a group transaction of their own; the
// 40 are answered DEADLINE_EXCEEDED. Fails if a statement that ran out of
// time (the fast path's, or the first group transaction's) ends the whole
// batch, or if the fast path waits for the batch's last deadline.
TEST_P(ExecutorLanesTest, TimedOutRequestsDoNotFailTheirBatchMates) {
  const LanesCase c = GetParam();
  if (c.batch_connections != 1) {
    GTEST_SKIP() << "one lane: the case runs once with, once without fast path";
  }
  const int64_t a = MakeProduct(10);
  const int64_t b = MakeProduct(10);
  HeldLock held = HeldLock::ProductRow(dsn(), a);
  BlockedLane lane;
  ASSERT_NO_FATAL_FAILURE(BlockLane(&lane, c.fast_path));
  ShardExecutor* executor = lane.executor();

  constexpr int kShort = 40;
  const absl::Time short_deadline = absl::Now() + absl::Milliseconds(1500);
  std::vector<std::shared_ptr<Answer<ReserveOutcome>>> to_a, to_b;
  for (int i = 0; i < kShort; ++i) {
    to_a.push_back(std::make_shared<Answer<ReserveOutcome>>());
    executor->SubmitOp(short_deadline,
                       inventory::testing::ReserveOp(
                           absl::StrCat("short-", a, "-", i), a, 1),
                       Done(to_a.back()));
  }
  for (int i = 0; i < 3; ++i) {
    to_b.push_back(std::make_shared<Answer<ReserveOutcome>>());
    executor->SubmitOp(absl::Now() + kCallDeadline,
                       inventory::testing::ReserveOp(
                           absl::StrCat("long-", b, "-", i), b, 1),
                       Done(to_b.back()));
  }
  ASSERT_EQ(executor->queued(), static_cast<size_t>(kShort + 3));
  lane.Release();

  for (auto& answer : to_b) {
    ASSERT_TRUE(answer->WaitFor(kCallDeadline));
    ASSERT_TRUE(answer->result.ok()) << answer->result.status();
    EXPECT_EQ(answer->result->reservation.product_id, b);
    EXPECT_LE(answer->time, short_deadline + kPrompt)
        << "the free product's requests waited for the locked one's";
  }
  for (auto& answer : to_a) {
    ASSERT_TRUE(answer->WaitFor(kCallDeadline));
    EXPECT_EQ(ErrorReason(answer->result.status()), reason::kDeadlineExceeded)
        << answer->result.status();
  }
  held.Release();
  ASSERT_TRUE(lane.on_x->WaitFor(kCallDeadline));
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kCallDeadline));
  EXPECT_EQ(lane.logged->Sizes(), (std::vector<int>{1, kShort + 3}));
  auto pa = store_->GetProduct(a);
  auto pb = store_->GetProduct(b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->reserved_quantity, 0);
  EXPECT_EQ(pb->reserved_quantity, 3);
}

// A group transaction that fails (here: a lock wait beyond lock_timeout) is
// decided again one request at a time, and a request whose caller gave up
// meanwhile is then answered CANCELLED without running again; its
// batch-mate is granted. Fails if the one-at-a-time fallback runs calls its
// callers gave up (that request would wait for the lock again and be
// answered CONCURRENT_UPDATE).
TEST_P(ExecutorLanesTest, FailedGroupTransactionSkipsCallsGivenUpMeanwhile) {
  const LanesCase c = GetParam();
  if (c.batch_connections != 1 || c.fast_path) {
    GTEST_SKIP() << "the fallback of the group transaction: one case";
  }
  const int64_t a = MakeProduct(10);
  const int64_t b = MakeProduct(10);
  HeldLock held = HeldLock::ProductRow(dsn(), a);
  constexpr absl::Duration kLockTimeout = absl::Seconds(1);
  BlockedLane lane;
  ASSERT_NO_FATAL_FAILURE(BlockLane(&lane, false, kLockTimeout));
  ShardExecutor* executor = lane.executor();

  auto gave_up = std::make_shared<std::atomic<bool>>(false);
  auto on_a = std::make_shared<Answer<ReserveOutcome>>();
  auto on_b = std::make_shared<Answer<ReserveOutcome>>();
  executor->SubmitOp(
      absl::Now() + kCallDeadline,
      inventory::testing::ReserveOp(absl::StrCat("gave-up-", a), a, 1),
      Done(on_a), [gave_up] { return gave_up->load(); });
  executor->SubmitOp(
      absl::Now() + kCallDeadline,
      inventory::testing::ReserveOp(absl::StrCat("stays-", b), b, 1),
      Done(on_b));
  ASSERT_EQ(executor->queued(), 2u);
  lane.Release();
  ASSERT_TRUE(lane.on_x->WaitFor(kCallDeadline));
  // The group transaction of the two waits for A's row; the caller of A's
  // request gives up meanwhile.
  ASSERT_TRUE(PollUntil([&] { return LockWaits() == 1; }));
  gave_up->store(true);

  ASSERT_TRUE(on_b->WaitFor(kCallDeadline));
  ASSERT_TRUE(on_b->result.ok()) << on_b->result.status();
  ASSERT_TRUE(on_a->WaitFor(kCallDeadline));
  EXPECT_EQ(on_a->result.status().code(), absl::StatusCode::kCancelled)
      << on_a->result.status();
  held.Release();
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kCallDeadline));
  auto pa = store_->GetProduct(a);
  auto pb = store_->GetProduct(b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->reserved_quantity, 0);
  EXPECT_EQ(pb->reserved_quantity, 1);
}

// A batch of two requests of product A, whose row another transaction keeps
// locked, interleaved with two of product B. The batch waits for A's row one
// lock_timeout (1 s here), once: A's requests are answered CONCURRENT_UPDATE
// ("nothing changed", lockTimeout in the metadata) and B's granted, all
// well before a second lock timeout has passed. Fails if the retries after
// the first wait (the group transaction after the fast path, each request
// alone after the group transaction) wait a whole lock timeout again: A's
// and B's answers then come 2-4 s after the batch started; or if the short
// wait outlives the batch.
TEST_P(ExecutorLanesTest, ARowLockedElsewhereIsWaitedForOnce) {
  const LanesCase c = GetParam();
  if (c.batch_connections != 1) {
    GTEST_SKIP() << "one lane: the case runs once with, once without fast path";
  }
  const int64_t a = MakeProduct(10);
  const int64_t b = MakeProduct(10);
  HeldLock held = HeldLock::ProductRow(dsn(), a);
  constexpr absl::Duration kLockTimeout = absl::Seconds(1);
  BlockedLane lane;
  // One connection: the call after the batch runs on the batch's worker.
  ASSERT_NO_FATAL_FAILURE(BlockLane(&lane, c.fast_path, kLockTimeout, 1));
  ShardExecutor* executor = lane.executor();

  std::vector<std::shared_ptr<Answer<ReserveOutcome>>> to_a, to_b;
  for (int i = 0; i < 2; ++i) {
    for (int64_t product : {a, b}) {
      auto& answers = product == a ? to_a : to_b;
      answers.push_back(std::make_shared<Answer<ReserveOutcome>>());
      executor->SubmitOp(absl::Now() + kCallDeadline,
                         inventory::testing::ReserveOp(
                             absl::StrCat("once-", product, "-", i), product, 1),
                         Done(answers.back()));
    }
  }
  ASSERT_EQ(executor->queued(), 4u);
  lane.Release();
  ASSERT_TRUE(lane.on_x->WaitFor(kCallDeadline));
  const absl::Time start = lane.on_x->time;

  const absl::Time before_second_timeout = start + kLockTimeout * 1.8;
  for (auto& answer : to_a) {
    ASSERT_TRUE(answer->WaitFor(kCallDeadline));
    EXPECT_TRUE(WaitedOutALock(answer->result.status()))
        << answer->result.status();
    EXPECT_LE(answer->time, before_second_timeout)
        << "A's request was answered " << (answer->time - start)
        << " after its batch started";
  }
  for (auto& answer : to_b) {
    ASSERT_TRUE(answer->WaitFor(kCallDeadline));
    ASSERT_TRUE(answer->result.ok()) << answer->result.status();
    EXPECT_LE(answer->time, before_second_timeout)
        << "B's request was answered " << (answer->time - start)
        << " after its batch started";
  }
  // The short wait ended with that batch: the next one waits the whole
  // lock_timeout for A's row again.
  auto later = std::make_shared<Answer<ReserveOutcome>>();
  const absl::Time submitted = absl::Now();
  executor->SubmitOp(absl::Now() + kCallDeadline,
                     inventory::testing::ReserveOp(
                         absl::StrCat("later-", a), a, 1),
                     Done(later));
  ASSERT_TRUE(later->WaitFor(kCallDeadline));
  EXPECT_TRUE(WaitedOutALock(later->result.status())) << later->result.status();
  EXPECT_GE(later->time - submitted, kLockTimeout * 0.9)
      << "the next batch kept the short lock wait";
  held.Release();
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kCallDeadline));
  auto pa = store_->GetProduct(a);
  auto pb = store_->GetProduct(b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->reserved_quantity, 0);
  EXPECT_EQ(pb->reserved_quantity, 2);
}

INSTANTIATE_TEST_SUITE_P(
    Lanes, ExecutorLanesTest,
    ::testing::Values(LanesCase{1, true}, LanesCase{2, true},
                      LanesCase{1, false}, LanesCase{2, false}),
    [](const ::testing::TestParamInfo<LanesCase>& info) {
      return absl::StrCat("BatchConnections", info.param.batch_connections,
                          info.param.fast_path ? "FastPath" : "NoFastPath");
    });

}  // namespace
}  // namespace inventory::testing
