// Unit tests of ShardExecutor (include/inventory/executor/shard_executor.h)
// without a database: plain work lambdas never touch their store, and the
// reserve / release / commit tests rely on the store failing to connect to a
// closed port. Covers: exactly-once answers carrying the work's value;
// DEADLINE_EXCEEDED for slow work (promptly, and never a second answer when
// the work ends) and for calls that wait too long in the queue; immediate
// refusal of past deadlines; SHARD_UNAVAILABLE for unverified, failed or hung
// shards (also for calls already waiting) and feedback of shard failures into
// ShardHealth; the queue limit; Shutdown draining queued calls, refusing later
// ones, and giving up on a hung worker; calls the caller gave up on being
// skipped; waiting ops coalesced up to max_batch; exactly-once answers under
// many concurrent submitters.
#include "inventory/executor/shard_executor.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/health/shard_health.h"
#include "inventory/store/dsn.h"
#include "inventory/store/shard_store.h"

namespace inventory {
namespace {

constexpr int kShard = 2;
// Upper bound for anything that should happen "soon"; only hit on failure.
constexpr absl::Duration kPatience = absl::Seconds(20);

// A store of shard kShard pointing at a port nobody listens on. Plain work
// never touches it; only the reserve / release / commit tests make it try
// (and fail) to connect.
std::unique_ptr<ShardStore> UnusedStore() {
  return std::make_unique<ShardStore>(
      kShard, Dsn("host=127.0.0.1 port=1 dbname=x connect_timeout=1"));
}

// Records the answers one submitted call gets. Shared with the lambdas it
// hands out, so it outlives them whatever order things are torn down in.
struct Probe {
  absl::Notification answered;
  std::atomic<int> answers{0};
  std::atomic<bool> work_started{false};
  std::atomic<bool> work_finished{false};
  // Written by the first answer only, before `answered` is notified.
  absl::StatusOr<int> result = absl::UnknownError("never answered");
  std::thread::id answer_thread;
  absl::Time answer_time;

  bool Wait() { return answered.WaitForNotificationWithTimeout(kPatience); }
};
using ProbePtr = std::shared_ptr<Probe>;

ProbePtr NewProbe() { return std::make_shared<Probe>(); }

// The `done` callback for `p`.
std::function<void(absl::StatusOr<int>)> Done(ProbePtr p) {
  return [p](absl::StatusOr<int> r) {
    if (p->answers.fetch_add(1) == 0) {
      p->result = std::move(r);
      p->answer_thread = std::this_thread::get_id();
      p->answer_time = absl::Now();
      p->answered.Notify();
    }
  };
}

// Work returning `value` at once.
std::function<absl::StatusOr<int>(ShardStore&)> Returns(ProbePtr p,
                                                        int value) {
  return [p, value](ShardStore&) -> absl::StatusOr<int> {
    p->work_started = true;
    p->work_finished = true;
    return value;
  };
}

// Holds work back until opened; opens itself when it goes out of scope, so a
// failing test never leaves a worker blocked behind it.
class Gate {
 public:
  Gate() : n_(std::make_shared<absl::Notification>()) {}
  ~Gate() { Open(); }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  void Open() {
    if (!n_->HasBeenNotified()) n_->Notify();
  }
  std::shared_ptr<absl::Notification> get() const { return n_; }

 private:
  std::shared_ptr<absl::Notification> n_;
};

// Work that blocks until `gate` opens, then returns `value`.
std::function<absl::StatusOr<int>(ShardStore&)> BlocksUntil(
    ProbePtr p, const Gate& gate, int value) {
  return [p, n = gate.get(), value](ShardStore&) -> absl::StatusOr<int> {
    p->work_started = true;
    n->WaitForNotificationWithTimeout(absl::Minutes(1));
    p->work_finished = true;
    return value;
  };
}

// Polls `condition` until it holds or kPatience runs out.
bool Eventually(const std::function<bool()>& condition) {
  const absl::Time limit = absl::Now() + kPatience;
  while (!condition()) {
    if (absl::Now() > limit) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// The ErrorInfo metadata value for `key`, or "<none>".
std::string Meta(const absl::Status& s, const std::string& key) {
  for (const auto& [k, v] : ErrorMetadataOf(s)) {
    if (k == key) return v;
  }
  return "<none>";
}

void ExpectShardUnavailable(const absl::Status& s) {
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(ErrorReason(s), reason::kShardUnavailable) << s;
  EXPECT_EQ(Meta(s, "shard"), std::to_string(kShard)) << s;
}

class ShardExecutorTest : public ::testing::Test {
 protected:
  // Starts an executor for shard kShard with `options`.
  std::unique_ptr<ShardExecutor> Start(ShardExecutor::Options options = {}) {
    auto e = std::make_unique<ShardExecutor>(kShard, &UnusedStore, &health_,
                                             options);
    e->Start();
    return e;
  }

  static absl::Time Later() { return absl::Now() + absl::Seconds(30); }

  // Declared first: outlives the executors the tests create.
  ShardHealth health_;
};

TEST_F(ShardExecutorTest, DoneRunsOnceWithTheWorksValue) {
  health_.MarkVerified();
  auto executor = Start();
  ProbePtr p = NewProbe();
  executor->Submit<int>(Later(), Returns(p, 42), Done(p));
  ASSERT_TRUE(p->Wait());
  ASSERT_TRUE(p->result.ok()) << p->result.status();
  EXPECT_EQ(*p->result, 42);
  EXPECT_TRUE(p->work_finished.load());
  EXPECT_NE(p->answer_thread, std::this_thread::get_id())
      << "work ran on the caller's thread";
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(p->answers.load(), 1);
}

TEST_F(ShardExecutorTest, WorkErrorIsPassedThrough) {
  health_.MarkVerified();
  auto executor = Start();
  ProbePtr p = NewProbe();
  executor->Submit<int>(
      Later(),
      [](ShardStore&) -> absl::StatusOr<int> {
        return MakeError(absl::StatusCode::kNotFound,
                         reason::kProductNotFound, "product 5 not found",
                         {{"productId", "5"}});
      },
      Done(p));
  ASSERT_TRUE(p->Wait());
  EXPECT_EQ(p->result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorReason(p->result.status()), reason::kProductNotFound);
  EXPECT_EQ(p->result.status().message(), "product 5 not found");
  EXPECT_EQ(Meta(p->result.status(), "productId"), "5");
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(p->answers.load(), 1);
  // A business error is a successful round trip.
  EXPECT_TRUE(health_.Reachable(absl::Now()));
}

TEST_F(ShardExecutorTest, SlowWorkGetsDeadlineExceededPromptly) {
  health_.MarkVerified();
  auto executor = Start();
  Gate gate;
  ProbePtr p = NewProbe();
  const absl::Time submitted = absl::Now();
  executor->Submit<int>(submitted + absl::Milliseconds(300),
                        BlocksUntil(p, gate, 7), Done(p));
  ASSERT_TRUE(p->Wait()) << "no answer although the deadline passed";
  // Answered while the work is still running.
  EXPECT_TRUE(p->work_started.load());
  EXPECT_FALSE(p->work_finished.load());
  EXPECT_EQ(p->result.status().code(), absl::StatusCode::kDeadlineExceeded)
      << p->result.status();
  EXPECT_EQ(ErrorReason(p->result.status()), reason::kDeadlineExceeded);
  EXPECT_EQ(Meta(p->result.status(), "shard"), std::to_string(kShard));
  // Not long before the deadline, not long after it.
  EXPECT_GE(p->answer_time - submitted, absl::Milliseconds(250));
  EXPECT_LT(p->answer_time - submitted, absl::Seconds(2));

  // The work ends later: no second answer.
  gate.Open();
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_TRUE(p->work_finished.load());
  EXPECT_EQ(p->answers.load(), 1);
  EXPECT_EQ(p->result.status().code(), absl::StatusCode::kDeadlineExceeded);
  // The slow call was not the shard's fault.
  EXPECT_TRUE(health_.Reachable(absl::Now()));
}

TEST_F(ShardExecutorTest, QueuedCallPastItsDeadlineIsAnsweredAndNeverRun) {
  health_.MarkVerified();
  ShardExecutor::Options options;
  options.connections = 1;
  auto executor = Start(options);
  Gate gate;
  ProbePtr blocker = NewProbe();
  executor->Submit<int>(Later(), BlocksUntil(blocker, gate, 1), Done(blocker));
  ASSERT_TRUE(Eventually([&] { return blocker->work_started.load(); }));

  ProbePtr waiting = NewProbe();
  executor->Submit<int>(absl::Now() + absl::Milliseconds(200),
                        Returns(waiting, 2), Done(waiting));
  ASSERT_TRUE(waiting->Wait());
  EXPECT_EQ(waiting->result.status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrorReason(waiting->result.status()), reason::kDeadlineExceeded);
  EXPECT_EQ(executor->queued(), 0u) << "expired call still queued";

  gate.Open();
  ASSERT_TRUE(blocker->Wait());
  ASSERT_TRUE(blocker->result.ok()) << blocker->result.status();
  EXPECT_EQ(*blocker->result, 1);
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_FALSE(waiting->work_started.load())
      << "work ran after its caller was told DEADLINE_EXCEEDED";
  EXPECT_EQ(waiting->answers.load(), 1);
  EXPECT_EQ(blocker->answers.load(), 1);
}

TEST_F(ShardExecutorTest, PastDeadlineIsRefusedAtOnce) {
  health_.MarkVerified();
  auto executor = Start();
  for (absl::Time deadline :
       {absl::Now() - absl::Seconds(1), absl::InfinitePast(), absl::Now()}) {
    ProbePtr p = NewProbe();
    executor->Submit<int>(deadline, Returns(p, 1), Done(p));
    // Answered inline, before Submit returned.
    ASSERT_TRUE(p->answered.HasBeenNotified());
    EXPECT_EQ(p->answer_thread, std::this_thread::get_id());
    EXPECT_EQ(p->result.status().code(), absl::StatusCode::kDeadlineExceeded)
        << p->result.status();
    EXPECT_EQ(ErrorReason(p->result.status()), reason::kDeadlineExceeded);
    EXPECT_FALSE(p->work_started.load());
    EXPECT_EQ(p->answers.load(), 1);
  }
  EXPECT_EQ(executor->queued(), 0u);
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
}

TEST_F(ShardExecutorTest, UnverifiedShardIsRefusedUnavailable) {
  // No MarkVerified(): the shard's identity was never checked.
  auto executor = Start();
  ProbePtr p = NewProbe();
  executor->Submit<int>(Later(), Returns(p, 1), Done(p));
  ASSERT_TRUE(p->answered.HasBeenNotified()) << "not refused at once";
  ExpectShardUnavailable(p->result.status());
  EXPECT_FALSE(p->work_started.load());
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(p->answers.load(), 1);
}

TEST_F(ShardExecutorTest, FailedShardIsRefusedUnavailable) {
  health_.MarkVerified();
  health_.ReportFailure("connection refused");
  auto executor = Start();
  ProbePtr p = NewProbe();
  executor->Submit<int>(Later(), Returns(p, 1), Done(p));
  ASSERT_TRUE(p->answered.HasBeenNotified()) << "not refused at once";
  ExpectShardUnavailable(p->result.status());
  EXPECT_FALSE(p->work_started.load());

  // Once the shard answers again, calls go through.
  health_.ReportSuccess();
  ProbePtr q = NewProbe();
  executor->Submit<int>(Later(), Returns(q, 5), Done(q));
  ASSERT_TRUE(q->Wait());
  ASSERT_TRUE(q->result.ok()) << q->result.status();
  EXPECT_EQ(*q->result, 5);
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(p->answers.load(), 1);
  EXPECT_EQ(q->answers.load(), 1);
}

TEST_F(ShardExecutorTest, ShardFailureFromWorkMarksHealth) {
  health_.MarkVerified();
  auto executor = Start();
  ProbePtr p = NewProbe();
  executor->Submit<int>(
      Later(),
      [](ShardStore&) -> absl::StatusOr<int> {
        return ShardUnavailableError(kShard, "server closed the connection");
      },
      Done(p));
  ASSERT_TRUE(p->Wait());
  ExpectShardUnavailable(p->result.status());
  // The worker reports after answering; poll for it.
  ASSERT_TRUE(Eventually([&] { return !health_.Reachable(absl::Now()); }))
      << "a SHARD_UNAVAILABLE outcome did not mark the shard unreachable";
  EXPECT_NE(health_.LastFailure(absl::Now()).what.find("server closed the connection"),
            std::string::npos)
      << health_.LastFailure(absl::Now()).what;

  ProbePtr q = NewProbe();
  executor->Submit<int>(Later(), Returns(q, 1), Done(q));
  ASSERT_TRUE(q->answered.HasBeenNotified());
  ExpectShardUnavailable(q->result.status());
  EXPECT_FALSE(q->work_started.load());
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
}

// Submits a call blocked on `gate` and one queued behind it, makes the shard
// unreachable with `break_shard`, and expects both answered UNAVAILABLE long
// before their deadlines, the queued one never run, and no second answer.
void ExpectWaitingCallsFailFast(ShardExecutor& executor, ShardHealth& health,
                                const std::function<void()>& break_shard) {
  health.MarkVerified();
  Gate gate;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  ProbePtr running = NewProbe();
  executor.Submit<int>(deadline, BlocksUntil(running, gate, 1), Done(running));
  ASSERT_TRUE(Eventually([&] { return running->work_started.load(); }));
  ProbePtr queued = NewProbe();
  executor.Submit<int>(deadline, Returns(queued, 2), Done(queued));
  ASSERT_FALSE(queued->answered.HasBeenNotified());

  const absl::Time broken = absl::Now();
  break_shard();
  ASSERT_TRUE(running->Wait());
  ASSERT_TRUE(queued->Wait());
  EXPECT_LT(absl::Now() - broken, absl::Seconds(5))
      << "callers waited for their deadline on a shard known to be down";
  ExpectShardUnavailable(running->result.status());
  ExpectShardUnavailable(queued->result.status());
  // The running call's statement may have reached the shard: its answer
  // must not read as "not done". The queued one never left the service.
  EXPECT_TRUE(absl::StrContains(running->result.status().message(),
                                 "outcome is unknown"))
      << running->result.status();
  // It is no reserve, release or commit: no advice about request ids.
  EXPECT_FALSE(absl::StrContains(running->result.status().message(),
                                  "request_id"))
      << running->result.status();
  EXPECT_FALSE(absl::StrContains(queued->result.status().message(),
                                  "outcome is unknown"))
      << queued->result.status();

  gate.Open();
  ASSERT_TRUE(Eventually([&] { return executor.busy() == 0; }));
  EXPECT_TRUE(running->work_finished.load());
  EXPECT_FALSE(queued->work_started.load());
  EXPECT_EQ(running->answers.load(), 1);
  EXPECT_EQ(queued->answers.load(), 1);
}

TEST_F(ShardExecutorTest, WaitingCallsFailFastWhenShardReportedDown) {
  ShardExecutor::Options options;
  options.connections = 1;
  auto executor = Start(options);
  ExpectWaitingCallsFailFast(*executor, health_, [&] {
    health_.ReportFailure("connection refused");
  });
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
}

TEST_F(ShardExecutorTest, WaitingCallsFailFastWhenShardHangs) {
  ShardExecutor::Options options;
  options.connections = 1;
  auto executor = Start(options);
  ExpectWaitingCallsFailFast(*executor, health_, [&] {
    // The monitor's probe has been running for longer than hang_after (2s).
    health_.ProbeStarted(absl::Now() - absl::Seconds(10));
  });
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
}

TEST_F(ShardExecutorTest, QueueLimitRefusesOverflow) {
  health_.MarkVerified();
  ShardExecutor::Options options;
  options.connections = 1;
  options.max_queue = 2;
  auto executor = Start(options);
  Gate gate;
  ProbePtr first = NewProbe();
  executor->Submit<int>(Later(), BlocksUntil(first, gate, 1), Done(first));
  ASSERT_TRUE(Eventually([&] { return first->work_started.load(); }));
  EXPECT_EQ(executor->busy(), 1);

  ProbePtr second = NewProbe(), third = NewProbe(), overflow = NewProbe();
  executor->Submit<int>(Later(), Returns(second, 2), Done(second));
  executor->Submit<int>(Later(), Returns(third, 3), Done(third));
  EXPECT_EQ(executor->queued(), 2u);
  EXPECT_FALSE(second->answered.HasBeenNotified());
  EXPECT_FALSE(third->answered.HasBeenNotified());

  executor->Submit<int>(Later(), Returns(overflow, 4), Done(overflow));
  ASSERT_TRUE(overflow->answered.HasBeenNotified()) << "overflow not refused";
  ExpectShardUnavailable(overflow->result.status());
  EXPECT_EQ(executor->queued(), 2u);

  gate.Open();
  int expected = 1;
  for (const ProbePtr& p : {first, second, third}) {
    ASSERT_TRUE(p->Wait());
    ASSERT_TRUE(p->result.ok()) << p->result.status();
    EXPECT_EQ(*p->result, expected++);
  }
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_FALSE(overflow->work_started.load());
  for (const ProbePtr& p : {first, second, third, overflow}) {
    EXPECT_EQ(p->answers.load(), 1);
  }
}

TEST_F(ShardExecutorTest, ShutdownDrainsQueuedCalls) {
  health_.MarkVerified();
  ShardExecutor::Options options;
  options.connections = 1;
  auto executor = Start(options);
  Gate gate;
  ProbePtr blocker = NewProbe();
  executor->Submit<int>(Later(), BlocksUntil(blocker, gate, 100),
                        Done(blocker));
  ASSERT_TRUE(Eventually([&] { return blocker->work_started.load(); }));
  std::vector<ProbePtr> queued;
  for (int i = 0; i < 5; ++i) {
    queued.push_back(NewProbe());
    executor->Submit<int>(Later(), Returns(queued.back(), i),
                          Done(queued.back()));
  }
  ASSERT_EQ(executor->queued(), 5u);

  std::atomic<bool> shutdown_result{false};
  std::atomic<bool> shutdown_returned{false};
  std::thread stopper([&] {
    shutdown_result = executor->Shutdown(absl::Now() + kPatience);
    shutdown_returned = true;
  });
  // Wait until the executor has stopped taking calls: a probe call is then
  // refused at once. Probes accepted before that are queued like the others.
  std::vector<ProbePtr> accepted_probes;
  ProbePtr refused;
  const absl::Time limit = absl::Now() + kPatience;
  while (refused == nullptr && absl::Now() < limit) {
    ProbePtr probe = NewProbe();
    executor->Submit<int>(Later(), Returns(probe, -1), Done(probe));
    if (probe->answered.HasBeenNotified()) {
      refused = probe;
    } else {
      accepted_probes.push_back(probe);
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  const bool returned_while_running = shutdown_returned.load();
  gate.Open();
  stopper.join();

  ASSERT_NE(refused, nullptr) << "Shutdown never stopped taking calls";
  ExpectShardUnavailable(refused->result.status());
  EXPECT_FALSE(refused->work_started.load());
  EXPECT_FALSE(returned_while_running)
      << "Shutdown returned while a call was still running";
  EXPECT_TRUE(shutdown_result.load());
  ASSERT_TRUE(blocker->answered.HasBeenNotified());
  ASSERT_TRUE(blocker->result.ok()) << blocker->result.status();
  EXPECT_EQ(*blocker->result, 100);
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    const Probe& p = *queued[i];
    ASSERT_TRUE(p.answered.HasBeenNotified()) << "queued call dropped";
    EXPECT_TRUE(p.work_started.load()) << "queued call not run";
    ASSERT_TRUE(p.result.ok()) << p.result.status();
    EXPECT_EQ(*p.result, i);
    EXPECT_EQ(p.answers.load(), 1);
  }
  for (const ProbePtr& p : accepted_probes) {
    ASSERT_TRUE(p->answered.HasBeenNotified());
    EXPECT_TRUE(p->result.ok()) << p->result.status();
    EXPECT_EQ(p->answers.load(), 1);
  }
  EXPECT_EQ(executor->queued(), 0u);
  EXPECT_EQ(executor->busy(), 0);
}

TEST_F(ShardExecutorTest, CallsAfterShutdownAreRefused) {
  health_.MarkVerified();
  auto executor = Start();
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  ProbePtr p = NewProbe();
  executor->Submit<int>(Later(), Returns(p, 1), Done(p));
  ASSERT_TRUE(p->answered.HasBeenNotified()) << "not refused at once";
  ExpectShardUnavailable(p->result.status());
  EXPECT_FALSE(p->work_started.load());
  EXPECT_EQ(p->answers.load(), 1);
  EXPECT_EQ(executor->queued(), 0u);
  // A second Shutdown is harmless.
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
}

// A one-connection executor whose only worker is stuck in `hung`'s work
// until `gate` opens.
struct HungExecutor {
  ShardExecutor* executor;
  std::shared_ptr<Gate> gate;
  ProbePtr hung;
};

// The executor and its health are leaked on purpose: Shutdown() returning
// false means the executor must not be destroyed (its abandoned threads
// still use it).
HungExecutor StartHungExecutor() {
  auto* health = new ShardHealth();
  health->MarkVerified();
  ShardExecutor::Options options;
  options.connections = 1;
  auto* executor = new ShardExecutor(kShard, &UnusedStore, health, options);
  executor->Start();
  HungExecutor h{executor, std::make_shared<Gate>(), NewProbe()};
  executor->Submit<int>(absl::Now() + absl::Minutes(5),
                        BlocksUntil(h.hung, *h.gate, 1), Done(h.hung));
  return h;
}

TEST(ShardExecutorHungTest, ShutdownGivesUpOnHungWorker) {
  auto [executor, gate, hung] = StartHungExecutor();
  ASSERT_TRUE(Eventually([&] { return hung->work_started.load(); }));
  ProbePtr queued = NewProbe();
  executor->Submit<int>(absl::Now() + absl::Minutes(5), Returns(queued, 2),
                        Done(queued));

  const absl::Time start = absl::Now();
  EXPECT_FALSE(executor->Shutdown(absl::Now() + absl::Milliseconds(200)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // Both the queued and the running call are answered UNAVAILABLE.
  ASSERT_TRUE(queued->answered.HasBeenNotified());
  ExpectShardUnavailable(queued->result.status());
  EXPECT_FALSE(queued->work_started.load());
  ASSERT_TRUE(hung->answered.HasBeenNotified());
  ExpectShardUnavailable(hung->result.status());

  // The worker comes back: no second answer, and it winds down.
  gate->Open();
  ASSERT_TRUE(Eventually([&] { return executor->busy() == 0; }));
  EXPECT_TRUE(hung->work_finished.load());
  EXPECT_EQ(hung->answers.load(), 1);
  EXPECT_EQ(queued->answers.load(), 1);
  EXPECT_FALSE(queued->work_started.load());
}

// The answers Shutdown gives the calls it abandons run outside the
// executor's lock: a callback may ask the executor about itself (here
// queued() and busy()) without deadlocking the shutdown.
TEST(ShardExecutorHungTest, AbandonedCallsAnswerOutsideTheLock) {
  auto [executor, gate, hung] = StartHungExecutor();
  ASSERT_TRUE(Eventually([&] { return hung->work_started.load(); }));
  ProbePtr queued = NewProbe();
  std::atomic<int> seen_busy{-1};
  executor->Submit<int>(absl::Now() + absl::Minutes(5), Returns(queued, 2),
                        [executor, &seen_busy, done = Done(queued)](
                            absl::StatusOr<int> r) {
                          seen_busy = executor->busy() +
                                      static_cast<int>(executor->queued());
                          done(std::move(r));
                        });

  auto finished = std::make_shared<absl::Notification>();
  std::thread([executor, finished] {
    executor->Shutdown(absl::Now() + absl::Milliseconds(200));
    finished->Notify();
  }).detach();
  if (!finished->WaitForNotificationWithTimeout(kPatience)) {
    ADD_FAILURE() << "Shutdown deadlocked answering a call that asked the "
                     "executor about itself";
    std::cerr.flush();
    std::_Exit(1);  // the stuck threads could not be joined
  }
  ASSERT_TRUE(queued->answered.HasBeenNotified());
  ExpectShardUnavailable(queued->result.status());
  EXPECT_EQ(seen_busy.load(), 1);  // the hung worker; nothing queued
  gate->Open();
  ASSERT_TRUE(Eventually([&] { return executor->busy() == 0; }));
}

// --- cancellation and coalescing ------------------------------------------------

// A caller's "have I given up?" flag, as the `cancelled` callback reads it.
std::function<bool()> CancelledWhen(std::shared_ptr<std::atomic<bool>> flag) {
  return [flag] { return flag->load(); };
}

TEST_F(ShardExecutorTest, CallGivenUpBeforeItStartsIsSkipped) {
  health_.MarkVerified();
  ShardExecutor::Options options;
  options.connections = 1;
  auto executor = Start(options);
  Gate gate;
  ProbePtr blocker = NewProbe();
  executor->Submit<int>(Later(), BlocksUntil(blocker, gate, 1), Done(blocker));
  ASSERT_TRUE(Eventually([&] { return blocker->work_started.load(); }));

  auto gave_up = std::make_shared<std::atomic<bool>>(false);
  auto still_there = std::make_shared<std::atomic<bool>>(false);
  ProbePtr abandoned = NewProbe(), wanted = NewProbe();
  executor->Submit<int>(Later(), Returns(abandoned, 2), Done(abandoned),
                        CancelledWhen(gave_up));
  executor->Submit<int>(Later(), Returns(wanted, 3), Done(wanted),
                        CancelledWhen(still_there));
  gave_up->store(true);  // the first caller hangs up while waiting
  gate.Open();

  ASSERT_TRUE(abandoned->Wait());
  ASSERT_TRUE(wanted->Wait());
  EXPECT_EQ(abandoned->result.status().code(), absl::StatusCode::kCancelled)
      << abandoned->result.status();
  ASSERT_TRUE(wanted->result.ok()) << wanted->result.status();
  EXPECT_EQ(*wanted->result, 3);
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_FALSE(abandoned->work_started.load())
      << "work ran for a caller that had given up";
  EXPECT_EQ(abandoned->answers.load(), 1);
  EXPECT_EQ(wanted->answers.load(), 1);
}

// Records the answer of one SubmitOp call.
struct OpProbe {
  absl::Notification answered;
  std::atomic<int> answers{0};
  absl::Status status = absl::UnknownError("never answered");
  std::thread::id answer_thread;

  bool Wait() { return answered.WaitForNotificationWithTimeout(kPatience); }
};
using OpProbePtr = std::shared_ptr<OpProbe>;

std::function<void(absl::StatusOr<ReserveOutcome>)> OpDone(OpProbePtr p) {
  return [p](absl::StatusOr<ReserveOutcome> r) {
    if (p->answers.fetch_add(1) == 0) {
      p->status = r.status();
      p->answer_thread = std::this_thread::get_id();
      p->answered.Notify();
    }
  };
}

ReservationOp ReserveOp(int64_t product_id, const std::string& request_id) {
  ReservationOp op;
  op.kind = ReservationOp::Kind::kReserve;
  op.reserve.request_id = request_id;
  op.reserve.product_id = product_id;
  op.reserve.quantity = 1;
  op.reserve.customer_id = "c";
  op.reserve.hold_ttl = absl::Minutes(15);
  return op;
}

// The sizes observe_batch was told, shared with the executor's threads.
struct BatchLog {
  absl::Mutex mu;
  std::vector<int> sizes ABSL_GUARDED_BY(mu);
  std::vector<int> Sizes() {
    absl::MutexLock lock(&mu);
    return sizes;
  }
};

ShardExecutor::Options LoggingOptions(std::shared_ptr<BatchLog> log) {
  ShardExecutor::Options options;
  options.connections = 1;
  options.observe_batch = [log](int n) {
    absl::MutexLock lock(&log->mu);
    log->sizes.push_back(n);
  };
  return options;
}

TEST_F(ShardExecutorTest, OpsRefusedAtOnceLikeOtherCalls) {
  auto executor = Start();
  // Unverified shard.
  OpProbePtr unverified = std::make_shared<OpProbe>();
  executor->SubmitOp(Later(), ReserveOp(1, "a"), OpDone(unverified));
  ASSERT_TRUE(unverified->answered.HasBeenNotified());
  ExpectShardUnavailable(unverified->status);
  // Past deadline.
  health_.MarkVerified();
  OpProbePtr late = std::make_shared<OpProbe>();
  executor->SubmitOp(absl::Now() - absl::Seconds(1), ReserveOp(1, "b"),
                     OpDone(late));
  ASSERT_TRUE(late->answered.HasBeenNotified());
  EXPECT_EQ(late->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrorReason(late->status), reason::kDeadlineExceeded);
  EXPECT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(unverified->answers.load(), 1);
  EXPECT_EQ(late->answers.load(), 1);
}

TEST_F(ShardExecutorTest, OpsGivenUpWhileQueuedNeverTouchTheStore) {
  // The stores point at a closed port: had any op reached its store, the
  // connection attempt would have failed and marked the shard unreachable.
  health_.MarkVerified();
  auto log = std::make_shared<BatchLog>();
  auto executor = Start(LoggingOptions(log));
  Gate gate;
  ProbePtr blocker = NewProbe();
  executor->Submit<int>(Later(), BlocksUntil(blocker, gate, 1), Done(blocker));
  ASSERT_TRUE(Eventually([&] { return blocker->work_started.load(); }));

  auto gave_up = std::make_shared<std::atomic<bool>>(false);
  std::vector<OpProbePtr> ops;
  for (int i = 0; i < 3; ++i) {
    ops.push_back(std::make_shared<OpProbe>());
    executor->SubmitOp(Later(), ReserveOp(7, "req-" + std::to_string(i)),
                       OpDone(ops.back()), CancelledWhen(gave_up));
  }
  gave_up->store(true);
  gate.Open();
  for (const OpProbePtr& op : ops) {
    ASSERT_TRUE(op->Wait());
    EXPECT_EQ(op->status.code(), absl::StatusCode::kCancelled) << op->status;
  }
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_TRUE(health_.Reachable(absl::Now()))
      << "a cancelled op reached the database";
  EXPECT_TRUE(log->Sizes().empty()) << "a batch ran with only cancelled ops";
  for (const OpProbePtr& op : ops) EXPECT_EQ(op->answers.load(), 1);
}

TEST_F(ShardExecutorTest, WaitingOpsAreCoalescedUpToMaxBatch) {
  health_.MarkVerified();
  auto log = std::make_shared<BatchLog>();
  ShardExecutor::Options options = LoggingOptions(log);
  options.max_batch = 4;
  auto executor = Start(options);
  Gate gate;
  ProbePtr blocker = NewProbe();
  executor->Submit<int>(Later(), BlocksUntil(blocker, gate, 1), Done(blocker));
  ASSERT_TRUE(Eventually([&] { return blocker->work_started.load(); }));

  // Queue: op0 op1 plain op2 op3 op4 op5.
  std::vector<OpProbePtr> ops;
  auto submit_op = [&] {
    ops.push_back(std::make_shared<OpProbe>());
    executor->SubmitOp(Later(),
                       ReserveOp(7, "req-" + std::to_string(ops.size())),
                       OpDone(ops.back()));
  };
  submit_op();
  submit_op();
  ProbePtr plain = NewProbe();
  executor->Submit<int>(Later(), Returns(plain, 9), Done(plain));
  for (int i = 0; i < 4; ++i) submit_op();
  ASSERT_EQ(executor->queued(), 7u);
  gate.Open();

  // The worker takes op0..op3 (skipping the plain call) into one batch. Its
  // store cannot connect (closed port), so the batch fails SHARD_UNAVAILABLE,
  // the shard is marked unreachable and everything else is answered so too.
  for (const OpProbePtr& op : ops) {
    ASSERT_TRUE(op->Wait());
    ExpectShardUnavailable(op->status);
  }
  ASSERT_TRUE(plain->Wait());
  ExpectShardUnavailable(plain->result.status());
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(log->Sizes(), std::vector<int>{4});
  EXPECT_FALSE(health_.Reachable(absl::Now()));
  EXPECT_FALSE(plain->work_started.load());
  for (const OpProbePtr& op : ops) EXPECT_EQ(op->answers.load(), 1);
  EXPECT_EQ(plain->answers.load(), 1);
}

TEST_F(ShardExecutorTest, LoneOpIsNotHeldBack) {
  health_.MarkVerified();
  auto log = std::make_shared<BatchLog>();
  auto executor = Start(LoggingOptions(log));
  OpProbePtr op = std::make_shared<OpProbe>();
  const absl::Time start = absl::Now();
  executor->SubmitOp(Later(), ReserveOp(7, "alone"), OpDone(op));
  ASSERT_TRUE(op->Wait());
  // Decided (here: refused, the store cannot connect) without waiting for
  // company and long before its deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  ExpectShardUnavailable(op->status);
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(log->Sizes(), std::vector<int>{1});
  EXPECT_EQ(op->answers.load(), 1);
}

// Counters shared by the concurrent submitters and their callbacks.
struct LoadState {
  explicit LoadState(int calls) : answers(calls), runs(calls), calls(calls) {}
  std::vector<std::atomic<int>> answers;
  std::vector<std::atomic<int>> runs;
  const int calls;
  std::atomic<int> ok{0}, deadline{0}, unavailable{0}, other{0};
  std::atomic<int> total{0};
  absl::Notification all_answered;

  void Record(int id, const absl::StatusOr<int>& r) {
    answers[id].fetch_add(1);
    if (r.ok()) {
      (*r == id ? ok : other).fetch_add(1);
    } else if (r.status().code() == absl::StatusCode::kDeadlineExceeded &&
               ErrorReason(r.status()) == reason::kDeadlineExceeded) {
      deadline.fetch_add(1);
    } else if (r.status().code() == absl::StatusCode::kUnavailable &&
               ErrorReason(r.status()) == reason::kShardUnavailable) {
      unavailable.fetch_add(1);
    } else {
      other.fetch_add(1);
    }
    if (total.fetch_add(1) + 1 == calls) all_answered.Notify();
  }

  int NotAnsweredOnce() const {
    int n = 0;
    for (const auto& a : answers) n += a.load() != 1;
    return n;
  }
};

TEST_F(ShardExecutorTest, ManyConcurrentSubmittersEachGetOneAnswer) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  auto state = std::make_shared<LoadState>(kThreads * kPerThread);
  health_.MarkVerified();
  ShardExecutor::Options options;
  options.connections = 4;
  auto executor = Start(options);
  std::atomic<bool> go{false};

  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        executor->Submit<int>(
            absl::Now() + absl::Seconds(60),
            [state, id](ShardStore&) -> absl::StatusOr<int> {
              state->runs[id].fetch_add(1);
              return id;
            },
            [state, id](absl::StatusOr<int> r) { state->Record(id, r); });
      }
    });
  }
  go.store(true);
  for (auto& th : submitters) th.join();
  ASSERT_TRUE(
      state->all_answered.WaitForNotificationWithTimeout(absl::Seconds(60)))
      << state->total.load() << " of " << state->calls << " answered";
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(state->total.load(), state->calls);
  EXPECT_EQ(state->ok.load(), state->calls);
  EXPECT_EQ(state->other.load(), 0);
  EXPECT_EQ(state->NotAnsweredOnce(), 0);
  int not_run_once = 0;
  for (const auto& r : state->runs) not_run_once += r.load() != 1;
  EXPECT_EQ(not_run_once, 0);
}

TEST_F(ShardExecutorTest, MixedOutcomesUnderLoadStillAnswerOnce) {
  // A tiny queue and short deadlines: every answer path (value, queue full,
  // deadline in the queue, deadline while running) races with the others.
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;
  auto state = std::make_shared<LoadState>(kThreads * kPerThread);
  health_.MarkVerified();
  ShardExecutor::Options options;
  options.connections = 2;
  options.max_queue = 16;
  options.deadline_scan = absl::Milliseconds(1);
  auto executor = Start(options);

  // Each submitter keeps a few calls in flight: together more than the
  // queue holds, so some are refused while others queue or run.
  constexpr int kInFlightPerThread = 3;
  auto in_flight = std::make_shared<std::vector<std::atomic<int>>>(kThreads);
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * kPerThread + i;
        // (Bounded: a lost answer must fail the test, not hang it.)
        while ((*in_flight)[t].load() >= kInFlightPerThread &&
               absl::Now() < give_up) {
          std::this_thread::yield();
        }
        (*in_flight)[t].fetch_add(1);
        const absl::Duration budget = absl::Milliseconds(21 + (id % 40));
        executor->Submit<int>(
            absl::Now() + budget,
            [state, id](ShardStore&) -> absl::StatusOr<int> {
              state->runs[id].fetch_add(1);
              // A slow database now and then; sometimes slower than the
              // caller's whole budget.
              if (id % 7 == 0) absl::SleepFor(absl::Milliseconds(3));
              if (id % 97 == 0) absl::SleepFor(absl::Milliseconds(40));
              return id;
            },
            [state, id, in_flight, t](absl::StatusOr<int> r) {
              state->Record(id, r);
              (*in_flight)[t].fetch_sub(1);
            });
      }
    });
  }
  for (auto& th : submitters) th.join();
  ASSERT_TRUE(
      state->all_answered.WaitForNotificationWithTimeout(absl::Seconds(60)))
      << state->total.load() << " of " << state->calls << " answered";
  ASSERT_TRUE(executor->Shutdown(absl::Now() + kPatience));
  EXPECT_EQ(state->total.load(), state->calls);
  EXPECT_EQ(state->other.load(), 0);
  EXPECT_EQ(state->ok.load() + state->deadline.load() +
                state->unavailable.load(),
            state->calls);
  EXPECT_GT(state->ok.load(), 0);
  EXPECT_EQ(state->NotAnsweredOnce(), 0);
  RecordProperty("ok", state->ok.load());
  RecordProperty("deadline_exceeded", state->deadline.load());
  RecordProperty("unavailable", state->unavailable.load());
  int ran_more_than_once = 0;
  for (const auto& r : state->runs) ran_more_than_once += r.load() > 1;
  EXPECT_EQ(ran_more_than_once, 0);
}

}  // namespace
}  // namespace inventory
