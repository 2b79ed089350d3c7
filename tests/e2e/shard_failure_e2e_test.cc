// End to end: inventoryd against 3 real shards while things break — a shard
// crash-stops, a shard hangs (SIGSTOP), the service is SIGKILLed mid-load, a
// shard is killed mid-load, the service starts with a shard down or hung, and
// a restarted shard's closed sessions are replaced without a failed call. A
// shard that is down or hung costs only its own products, every call stays
// inside its deadline, and no acknowledged reservation is lost or made twice.
//
// Products live on shard product_id mod 3; every test uses its own product
// ids and request-id prefix, since the tests share one set of shards.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpc_client.h"
#include "gtest/gtest.h"
#include "inventoryd_process.h"
#include "poll_until.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

namespace v1 = ::inventory::v1;

constexpr int kShards = 3;
constexpr int kServing = 1;
constexpr char kServiceName[] = "inventory.v1.InventoryService";

// A product id of `base` that lives on `shard`.
int64_t ProductOn(int64_t base, int shard) { return base * kShards + shard; }

// "CODE: message [reason]" for failure messages.
std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_code(), ": ", s.error_message(), " [",
                      ErrorInfoOf(s).reason(), "]");
}

// The ErrorInfo's "shard" metadata ("" if none).
std::string ShardOf(const google::rpc::ErrorInfo& info) {
  auto it = info.metadata().find("shard");
  return it == info.metadata().end() ? "" : it->second;
}

// A message must never show connection parameters.
::testing::AssertionResult LeaksNothing(const grpc::Status& s) {
  const std::string lower = absl::AsciiStrToLower(s.error_message());
  if (absl::StrContains(lower, "password") || absl::StrContains(lower, "host=")) {
    return ::testing::AssertionFailure()
           << "message shows connection parameters: " << s.error_message();
  }
  return ::testing::AssertionSuccess();
}

// UNAVAILABLE / SHARD_UNAVAILABLE, domain inventory.v1, metadata shard=`shard`,
// and a message without connection parameters.
::testing::AssertionResult IsShardUnavailable(const grpc::Status& s,
                                              int shard) {
  if (s.error_code() != grpc::StatusCode::UNAVAILABLE) {
    return ::testing::AssertionFailure()
           << "want UNAVAILABLE, got " << Describe(s);
  }
  const google::rpc::ErrorInfo info = ErrorInfoOf(s);
  if (info.reason() != "SHARD_UNAVAILABLE" || info.domain() != "inventory.v1" ||
      ShardOf(info) != absl::StrCat(shard)) {
    return ::testing::AssertionFailure()
           << "want reason SHARD_UNAVAILABLE, domain inventory.v1, shard "
           << shard << "; got reason '" << info.reason() << "', domain '"
           << info.domain() << "', shard '" << ShardOf(info) << "' ("
           << s.error_message() << ")";
  }
  return LeaksNothing(s);
}

// A hung shard's answer: UNAVAILABLE / SHARD_UNAVAILABLE, or DEADLINE_EXCEEDED
// with the service's reason (shard metadata) or none at all (the client's own
// timer fired first; the brief gives deadline errors no reason).
::testing::AssertionResult IsHungShardAnswer(const grpc::Status& s,
                                             int shard) {
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    return IsShardUnavailable(s, shard);
  }
  if (s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return ::testing::AssertionFailure()
           << "want UNAVAILABLE or DEADLINE_EXCEEDED, got " << Describe(s);
  }
  const google::rpc::ErrorInfo info = ErrorInfoOf(s);
  if (!info.reason().empty() &&
      (info.reason() != "DEADLINE_EXCEEDED" || info.domain() != "inventory.v1" ||
       ShardOf(info) != absl::StrCat(shard))) {
    return ::testing::AssertionFailure()
           << "DEADLINE_EXCEEDED with reason '" << info.reason()
           << "', domain '" << info.domain() << "', shard '" << ShardOf(info)
           << "'; want DEADLINE_EXCEEDED/inventory.v1/shard " << shard;
  }
  return LeaksNothing(s);
}

// An outcome the client cannot know: the call may or may not have happened.
bool IsUnknownOutcome(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::CANCELLED ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// A call's status and how long it took.
struct Timed {
  grpc::Status status;
  absl::Duration elapsed;
};

// Runs `call` with a context whose deadline is `deadline` from now.
Timed TimeCall(absl::Duration deadline,
               const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  auto ctx = ContextWithTimeout(deadline);
  const absl::Time start = absl::Now();
  grpc::Status s = call(ctx.get());
  return {s, absl::Now() - start};
}

// Runs `call` with NO deadline; a watchdog cancels it after `watchdog` so a
// service that never answers fails the test instead of hanging it.
Timed TimeCallWithoutDeadline(
    absl::Duration watchdog,
    const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  grpc::ClientContext ctx;
  absl::Notification done;
  std::thread dog([&] {
    if (!done.WaitForNotificationWithTimeout(watchdog)) ctx.TryCancel();
  });
  const absl::Time start = absl::Now();
  grpc::Status s = call(&ctx);
  const absl::Duration elapsed = absl::Now() - start;
  done.Notify();
  dog.join();
  return {s, elapsed};
}

v1::ReserveItemRequest ReserveRequest(const std::string& request_id,
                                      int64_t product_id, int64_t quantity,
                                      const std::string& customer_id) {
  v1::ReserveItemRequest req;
  req.set_request_id(request_id);
  req.set_product_id(product_id);
  req.set_quantity(quantity);
  req.set_customer_id(customer_id);
  return req;
}

// ReserveItem of 1 unit and GetProduct, each with a 3 s deadline.
Timed TimedReserve(InventoryService::Stub& stub, const std::string& request_id,
                   int64_t product, const std::string& customer_id) {
  return TimeCall(absl::Seconds(3), [&](grpc::ClientContext* ctx) {
    v1::ReserveItemResponse resp;
    return stub.ReserveItem(
        ctx, ReserveRequest(request_id, product, 1, customer_id), &resp);
  });
}
Timed TimedGetProduct(InventoryService::Stub& stub, int64_t product) {
  return TimeCall(absl::Seconds(3), [&](grpc::ClientContext* ctx) {
    v1::GetProductRequest req;
    req.set_product_id(product);
    v1::Product resp;
    return stub.GetProduct(ctx, req, &resp);
  });
}

// Polls `ok` (one call per round) until it holds `streak` times in a row or
// `budget` runs out. Returns whether it did.
bool WaitForStreak(absl::Duration budget, int streak,
                   const std::function<bool()>& ok) {
  const absl::Time until = absl::Now() + budget;
  int run = 0;
  while (absl::Now() < until) {
    if (ok()) {
      if (++run >= streak) return true;
    } else {
      run = 0;
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  return false;
}

// Reserve with a client's retry policy: retried while UNAVAILABLE (retry
// later, per the brief) until `budget` runs out. *attempts counts the calls.
grpc::Status ReserveRetryingUnavailable(InventoryService::Stub& stub,
                                        const v1::ReserveItemRequest& req,
                                        v1::ReserveItemResponse* resp,
                                        absl::Duration budget,
                                        int* attempts) {
  const absl::Time until = absl::Now() + budget;
  grpc::Status s;
  *attempts = 0;
  do {
    ++*attempts;
    resp->Clear();
    auto ctx = ContextWithTimeout(absl::Seconds(3));
    s = stub.ReserveItem(ctx.get(), req, resp);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return s;
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < until);
  return s;
}

// GetReservation, retried while UNAVAILABLE until `budget` runs out.
grpc::Status GetReservationRetrying(InventoryService::Stub& stub,
                                    const std::string& reservation_id,
                                    v1::Reservation* out,
                                    absl::Duration budget) {
  const absl::Time until = absl::Now() + budget;
  v1::GetReservationRequest req;
  req.set_reservation_id(reservation_id);
  grpc::Status s;
  do {
    out->Clear();
    auto ctx = ContextWithTimeout(absl::Seconds(3));
    s = stub.GetReservation(ctx.get(), req, out);
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return s;
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < until);
  return s;
}

// Request ids whose reservation rows number more than one (invariant 3).
int64_t DuplicatedRequestIds(const std::string& dsn, const std::string& prefix) {
  return QueryInt(dsn, absl::StrCat(
                           "SELECT count(*) FROM (SELECT request_id FROM "
                           "reservations WHERE request_id LIKE '",
                           prefix, "%' GROUP BY request_id "
                           "HAVING count(*) > 1) d"));
}

// Reservation rows of a product with a given status (1 = PENDING).
int64_t RowsOf(const std::string& dsn, int64_t product_id, int status) {
  return QueryInt(dsn, absl::StrCat("SELECT count(*) FROM reservations WHERE "
                                    "product_id = ",
                                    product_id, " AND status = ", status));
}

// 1-unit reservations of one product from many threads, each with a unique
// request id, until a thread's first failure, `max_attempts` calls in all
// (so retries later cannot run out of stock), or `max_run`.
class ReserveLoad {
 public:
  struct Acked {
    std::string request_id;
    std::string reservation_id;
  };

  ReserveLoad(const std::string& address, int64_t product_id,
              std::string prefix, int threads, int max_attempts,
              absl::Duration pacing, absl::Duration max_run)
      : stub_(InventoryService::NewStub(Connect(address))),
        product_id_(product_id),
        prefix_(std::move(prefix)),
        max_attempts_(max_attempts),
        pacing_(pacing),
        until_(absl::Now() + max_run) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t] { Run(t); });
    }
  }
  ~ReserveLoad() { Join(); }

  void Join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  int acked_count() const { return acked_count_.load(); }
  const std::string& customer() const { return prefix_; }

  // Valid after Join().
  const std::vector<Acked>& acked() const { return acked_; }
  const std::vector<std::string>& unknown() const { return unknown_; }
  const std::vector<std::string>& unexpected() const { return unexpected_; }

 private:
  void Run(int thread) {
    for (int n = 0; absl::Now() < until_; ++n) {
      if (attempts_.fetch_add(1) >= max_attempts_) return;
      const std::string id = absl::StrCat(prefix_, thread, "-", n);
      v1::ReserveItemResponse resp;
      auto ctx = ContextWithTimeout(absl::Seconds(5));
      grpc::Status s = stub_->ReserveItem(
          ctx.get(), ReserveRequest(id, product_id_, 1, prefix_), &resp);
      {
        absl::MutexLock lock(&mu_);
        if (s.ok()) {
          acked_.push_back({id, resp.reservation().reservation_id()});
          acked_count_.fetch_add(1);
        } else if (IsUnknownOutcome(s)) {
          unknown_.push_back(id);
          return;
        } else {
          unexpected_.push_back(absl::StrCat(id, ": ", Describe(s)));
          return;
        }
      }
      if (pacing_ > absl::ZeroDuration()) absl::SleepFor(pacing_);
    }
  }

  std::unique_ptr<InventoryService::Stub> stub_;
  const int64_t product_id_;
  const std::string prefix_;
  const int max_attempts_;
  const absl::Duration pacing_;
  const absl::Time until_;
  std::atomic<int> attempts_{0};
  std::atomic<int> acked_count_{0};
  absl::Mutex mu_;
  std::vector<Acked> acked_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> unknown_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> unexpected_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

class ShardFailureTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = ShardCluster::Start(kShards).release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override { ASSERT_NE(cluster_, nullptr); }

  // Shows the servers' logs if the test failed, stops them, and brings every
  // shard back (resumed, started) whatever the test's assertions did.
  void TearDown() override {
    if (HasFailure()) {
      for (const auto& s : servers_) {
        std::cerr << "---- inventoryd (port " << s->port() << ") log ----\n"
                  << s->Log() << "---- end of log ----\n";
      }
    }
    servers_.clear();
    if (cluster_ == nullptr) return;
    for (int i : paused_) cluster_->Resume(i);
    paused_.clear();
    for (int i : killed_) cluster_->StartShard(i);
    killed_.clear();
  }

  // Starts an inventoryd over the cluster (owned by the fixture); nullptr and
  // a test failure if it does not serve.
  InventorydProcess* StartServer(std::vector<std::string> extra = {}) {
    extra.push_back("--sweep_interval=200ms");
    std::string log;
    auto server = InventorydProcess::Start(cluster_->DsnList(), extra, &log);
    EXPECT_NE(server, nullptr) << "inventoryd did not start:\n" << log;
    if (server == nullptr) return nullptr;
    servers_.push_back(std::move(server));
    return servers_.back().get();
  }

  // Creates each product with 10 units through an inventoryd that is then
  // stopped; false (and a test failure) if any step fails.
  bool CreateThroughATemporaryServer(std::initializer_list<int64_t> products) {
    InventorydProcess* setup = StartServer();
    if (setup == nullptr) return false;
    auto stub = InventoryService::NewStub(Connect(setup->address()));
    bool ok = true;
    for (int64_t id : products) {
      grpc::Status s = CreateProduct(*stub, id, 10);
      EXPECT_TRUE(s.ok()) << s.error_message();
      ok = ok && s.ok();
    }
    servers_.clear();
    return ok;
  }

  void PauseShard(int i) {
    paused_.insert(i);
    cluster_->Pause(i);
  }
  void ResumeShard(int i) {
    cluster_->Resume(i);
    paused_.erase(i);
  }
  void KillShard(int i) {
    killed_.insert(i);
    cluster_->Kill(i);
  }
  void StartShard(int i) {
    cluster_->StartShard(i);
    killed_.erase(i);
  }

  // Waits until GetProduct of `product_id` succeeds 5 times in a row; prints
  // how long that took and what the failures on the way said.
  static bool WaitUntilServes(InventoryService::Stub& stub, int64_t product_id,
                              absl::Duration budget) {
    const absl::Time start = absl::Now();
    std::map<std::string, int> failures;
    bool ok = WaitForStreak(budget, 5, [&] {
      v1::GetProductRequest req;
      req.set_product_id(product_id);
      v1::Product p;
      auto ctx = ContextWithTimeout(absl::Seconds(2));
      grpc::Status s = stub.GetProduct(ctx.get(), req, &p);
      if (!s.ok()) ++failures[Describe(s)];
      return s.ok();
    });
    std::cout << "[ info ] product " << product_id << " served again after "
              << absl::FormatDuration(absl::Now() - start);
    for (const auto& [what, n] : failures) std::cout << "; " << n << "x " << what;
    std::cout << "\n";
    return ok;
  }

  static ShardCluster* cluster_;
  std::vector<std::unique_ptr<InventorydProcess>> servers_;
  std::set<int> paused_;
  std::set<int> killed_;
};
ShardCluster* ShardFailureTest::cluster_ = nullptr;

TEST_F(ShardFailureTest, ShardDownAnswersUnavailableOthersKeepWorking) {
  InventorydProcess* server = StartServer({"--default_deadline=2s"});
  ASSERT_NE(server, nullptr);
  auto stub = InventoryService::NewStub(Connect(server->address()));
  int64_t p[kShards];
  for (int s = 0; s < kShards; ++s) {
    p[s] = ProductOn(1000, s);
    ASSERT_TRUE(CreateProduct(*stub, p[s], 100).ok()) << "product " << p[s];
  }
  v1::ReserveItemResponse held;
  grpc::Status made = Reserve(*stub, "t1-held", p[1], 2, "cust-t1", &held);
  ASSERT_TRUE(made.ok()) << Describe(made);
  const std::string held_id = held.reservation().reservation_id();

  KillShard(1);

  // Every call for shard 1 answers SHARD_UNAVAILABLE well inside its 3 s.
  const absl::Duration kDeadline = absl::Seconds(3);
  const absl::Duration kFast = absl::Seconds(1);
  // `call` (one RPC on shard 1) answers SHARD_UNAVAILABLE within kFast.
  auto expect_fast_unavailable =
      [&](const char* rpc,
          const std::function<grpc::Status(grpc::ClientContext*)>& call) {
        Timed t = TimeCall(kDeadline, call);
        EXPECT_TRUE(IsShardUnavailable(t.status, 1)) << rpc;
        EXPECT_LT(t.elapsed, kFast) << rpc;
      };
  v1::ReserveItemResponse during;
  expect_fast_unavailable("ReserveItem", [&](grpc::ClientContext* ctx) {
    return stub->ReserveItem(
        ctx, ReserveRequest("t1-during", p[1], 1, "cust-t1"), &during);
  });
  v1::GetProductRequest get_product;
  get_product.set_product_id(p[1]);
  v1::Product read;
  expect_fast_unavailable("GetProduct", [&](grpc::ClientContext* ctx) {
    return stub->GetProduct(ctx, get_product, &read);
  });
  v1::ReleaseItemRequest release;
  release.set_reservation_id(held_id);
  v1::ReleaseItemResponse released;
  expect_fast_unavailable("ReleaseItem", [&](grpc::ClientContext* ctx) {
    return stub->ReleaseItem(ctx, release, &released);
  });
  v1::CommitReservationRequest commit;
  commit.set_reservation_id(held_id);
  v1::CommitReservationResponse committed;
  expect_fast_unavailable("CommitReservation", [&](grpc::ClientContext* ctx) {
    return stub->CommitReservation(ctx, commit, &committed);
  });
  v1::GetReservationRequest get_reservation;
  get_reservation.set_reservation_id(held_id);
  v1::Reservation reservation;
  expect_fast_unavailable("GetReservation", [&](grpc::ClientContext* ctx) {
    return stub->GetReservation(ctx, get_reservation, &reservation);
  });

  // Shards 0 and 2 keep working.
  for (int s : {0, 2}) {
    v1::ReserveItemResponse resp;
    Timed t = TimeCall(kDeadline, [&](grpc::ClientContext* ctx) {
      return stub->ReserveItem(
          ctx, ReserveRequest(absl::StrCat("t1-other-", s), p[s], 1, "cust-t1"),
          &resp);
    });
    EXPECT_TRUE(t.status.ok()) << "shard " << s << ": " << Describe(t.status);
    EXPECT_LT(t.elapsed, kFast) << "shard " << s;
  }

  // GetAvailability answers the reachable shards and names shard 1's ids.
  {
    v1::GetAvailabilityRequest req;
    for (int s = 0; s < kShards; ++s) req.add_product_ids(p[s]);
    v1::GetAvailabilityResponse resp;
    Timed t = TimeCall(kDeadline, [&](grpc::ClientContext* ctx) {
      return stub->GetAvailability(ctx, req, &resp);
    });
    ASSERT_TRUE(t.status.ok()) << Describe(t.status);
    EXPECT_LT(t.elapsed, kFast);
    ASSERT_EQ(resp.availabilities_size(), 2) << resp.DebugString();
    EXPECT_EQ(resp.availabilities(0).product_id(), p[0]);
    EXPECT_EQ(resp.availabilities(0).available_quantity(), 99);
    EXPECT_EQ(resp.availabilities(1).product_id(), p[2]);
    EXPECT_EQ(resp.availabilities(1).available_quantity(), 99);
    EXPECT_THAT(resp.unavailable_product_ids(), ElementsAre(p[1]));
    EXPECT_THAT(resp.not_found_product_ids(), IsEmpty());
  }

  // The sweeps (every 200 ms) that found shard 1 down logged nothing above
  // debug: its monitor reports the shard, and a warning per sweep would
  // flood the log.
  absl::SleepFor(absl::Milliseconds(600));
  const std::string log = server->Log();
  for (const char* step : {"sweep", "expiry", "late backorder fill"}) {
    const std::string line = absl::StrCat("shard 1: ", step, " failed");
    EXPECT_FALSE(absl::StrContains(log, line)) << line;  // TearDown shows log
  }

  // Back up: shard 1 serves again, and the reservation acknowledged before
  // the crash is still there, untouched by the release/commit that failed.
  StartShard(1);
  ASSERT_TRUE(WaitUntilServes(*stub, p[1], absl::Seconds(10)))
      << "shard 1 did not serve again within 10 s of its restart";
  v1::Reservation after;
  grpc::Status got =
      GetReservationRetrying(*stub, held_id, &after, absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << Describe(got);
  EXPECT_EQ(after.status(), v1::RESERVATION_STATUS_PENDING);
  EXPECT_EQ(after.quantity(), 2);
  EXPECT_EQ(after.request_id(), "t1-held");
  v1::ReserveItemResponse again;
  int attempts = 0;
  grpc::Status reserved = ReserveRetryingUnavailable(
      *stub, ReserveRequest("t1-after", p[1], 1, "cust-t1"), &again,
      absl::Seconds(5), &attempts);
  EXPECT_TRUE(reserved.ok()) << Describe(reserved);
  v1::Product product;
  ASSERT_TRUE(GetProduct(*stub, p[1], &product).ok());
  EXPECT_EQ(product.reserved_quantity(), 3);
  EXPECT_EQ(RowsOf(cluster_->dsn(1), p[1], 1), 2);
  // "t1-during" failed while the shard was down: it reserved nothing.
  EXPECT_EQ(QueryInt(cluster_->dsn(1),
                     "SELECT count(*) FROM reservations WHERE request_id = "
                     "'t1-during'"),
            0);
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(CounterDrift(cluster_->dsn(s)), 0) << "shard " << s;
  }
}

// A restart closes every worker's session while it is idle. Once the shard
// is back, no call may fail for that: a worker sees its closed session
// before it sends anything and reconnects, so even AdjustStock, which is
// not retried after a broken connection, succeeds on its first try. (Before
// that, each stale connection cost one call UNAVAILABLE "connection lost".)
TEST_F(ShardFailureTest, AfterAShardRestartNoCallFailsOnAStaleConnection) {
  constexpr int kConnections = 4;
  InventorydProcess* server = StartServer(
      {absl::StrCat("--shard_connections=", kConnections)});
  ASSERT_NE(server, nullptr);
  auto stub = InventoryService::NewStub(Connect(server->address()));
  const int64_t product = ProductOn(2600, 1);
  ASSERT_TRUE(CreateProduct(*stub, product, 10).ok());
  const std::string sessions =
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
      "'inventoryd'";

  // Bursts of concurrent AdjustStock(+1) calls, each from its own thread;
  // returns what each answered.
  auto burst = [&](int calls) {
    std::vector<grpc::Status> out(calls);
    std::vector<std::thread> threads;
    for (int i = 0; i < calls; ++i) {
      threads.emplace_back([&, i] {
        v1::AdjustStockRequest req;
        req.set_product_id(product);
        req.set_delta(1);
        req.set_reason(v1::STOCK_ADJUSTMENT_REASON_RESTOCK);
        v1::Product resp;
        // Beyond --statement_timeout (5 s): every call runs under that
        // same bound, so no SET statement_timeout precedes the call's own
        // statement (a SET would meet the closed session first, and the
        // call would then reconnect anyway).
        auto ctx = ContextWithTimeout(absl::Seconds(10));
        out[i] = stub->AdjustStock(ctx.get(), req, &resp);
      });
    }
    for (auto& t : threads) t.join();
    return out;
  };
  // Every worker connection is open (they open on first use), plus the
  // health monitor's.
  int64_t applied = 0;
  ASSERT_TRUE(PollUntil([&] {
    for (const grpc::Status& s : burst(2 * kConnections)) {
      EXPECT_TRUE(s.ok()) << Describe(s);
      applied += s.ok();
    }
    return QueryInt(cluster_->dsn(1), sessions) >= kConnections + 1;
  }, absl::Seconds(20)));

  KillShard(1);
  StartShard(1);
  // The monitor reconnects first (it probes every second); the workers'
  // sessions are the closed ones until calls reach them.
  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(cluster_->dsn(1), sessions) >= 1;
  }, absl::Seconds(20)));

  // Until the monitor has marked the shard reachable again, calls are
  // refused without reaching a worker ("not reachable"). After that, every
  // call must succeed: three bursts in a row, and none on the way may say
  // "connection lost".
  int lost = 0, clean_bursts = 0;
  const absl::Time until = absl::Now() + absl::Seconds(15);
  while (clean_bursts < 3 && absl::Now() < until) {
    bool clean = true;
    for (const grpc::Status& s : burst(2 * kConnections)) {
      applied += s.ok();
      if (s.ok()) continue;
      clean = false;
      if (absl::StrContains(s.error_message(), "connection lost")) {
        ++lost;
        ADD_FAILURE() << "after the restart: " << Describe(s);
      } else {
        EXPECT_TRUE(IsShardUnavailable(s, 1)) << Describe(s);
        EXPECT_EQ(clean_bursts, 0) << "a failure after a clean burst: "
                                   << Describe(s);
      }
    }
    clean_bursts = clean ? clean_bursts + 1 : 0;
  }
  EXPECT_EQ(clean_bursts, 3);
  EXPECT_EQ(lost, 0);
  // Each success added exactly one unit; no failure added any.
  v1::Product after;
  ASSERT_TRUE(GetProduct(*stub, product, &after).ok());
  EXPECT_EQ(after.total_quantity(), 10 + applied);
}

// One call made around the time a shard froze: when it started, how it ended.
struct Probe {
  std::string request_id;
  absl::Time start;
  Timed result;
};

TEST_F(ShardFailureTest, HungShardCostsOnlyItsOwnProducts) {
  InventorydProcess* server = StartServer({"--default_deadline=2s"});
  ASSERT_NE(server, nullptr);
  auto channel = Connect(server->address());
  auto stub = InventoryService::NewStub(channel);
  int64_t p[kShards];
  for (int s = 0; s < kShards; ++s) {
    p[s] = ProductOn(2000, s);
    ASSERT_TRUE(CreateProduct(*stub, p[s], 100000).ok()) << "product " << p[s];
    grpc::Status warm =
        Reserve(*stub, absl::StrCat("t2-warm-", s), p[s], 1, "cust-t2");
    ASSERT_TRUE(warm.ok()) << Describe(warm);
  }

  // The launcher takes seconds to freeze a shard, so the calls run all along,
  // from before the freeze until the service has noticed it: shard-1
  // reserves with a 1 s deadline, shard-1 reads with no deadline at all, and
  // reserves for shards 0 and 2 from 10 threads.
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::vector<Probe> with_deadline;     // guarded by mu
  std::vector<Probe> without_deadline;  // guarded by mu
  std::vector<Probe> others;            // guarded by mu
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int n = 0; !stop.load(); ++n) {
      Probe probe{absl::StrCat("t2-hung-", n), absl::Now(), {}};
      v1::ReserveItemResponse resp;
      probe.result = TimeCall(absl::Seconds(1), [&](grpc::ClientContext* ctx) {
        return stub->ReserveItem(
            ctx, ReserveRequest(probe.request_id, p[1], 1, "cust-t2"), &resp);
      });
      {
        absl::MutexLock lock(&mu);
        with_deadline.push_back(std::move(probe));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  threads.emplace_back([&] {
    while (!stop.load()) {
      Probe probe{"", absl::Now(), {}};
      v1::GetProductRequest req;
      req.set_product_id(p[1]);
      v1::Product resp;
      probe.result = TimeCallWithoutDeadline(
          absl::Seconds(10), [&](grpc::ClientContext* ctx) {
            return stub->GetProduct(ctx, req, &resp);
          });
      {
        absl::MutexLock lock(&mu);
        without_deadline.push_back(std::move(probe));
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
  });
  for (int t = 0; t < 10; ++t) {
    threads.emplace_back([&, t] {
      for (int n = 0; !stop.load(); ++n) {
        Probe probe{absl::StrCat("t2-fast-", t, "-", n), absl::Now(), {}};
        const int64_t product = p[(t + n) % 2 == 0 ? 0 : 2];
        v1::ReserveItemResponse resp;
        probe.result = TimeCall(absl::Seconds(5), [&](grpc::ClientContext* ctx) {
          return stub->ReserveItem(
              ctx, ReserveRequest(probe.request_id, product, 1, "cust-t2"),
              &resp);
        });
        {
          absl::MutexLock lock(&mu);
          others.push_back(std::move(probe));
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
  }
  auto ok_count = [&] {
    absl::MutexLock lock(&mu);
    return std::count_if(with_deadline.begin(), with_deadline.end(),
                         [](const Probe& pr) { return pr.result.status.ok(); });
  };
  const bool warmed = WaitForStreak(absl::Seconds(5), 1, [&] {
    absl::SleepFor(absl::Milliseconds(10));
    return ok_count() >= 3;
  });

  PauseShard(1);
  const absl::Time paused = absl::Now();
  int not_serving = 0;
  const bool noticed = WaitForStreak(absl::Seconds(10), 1, [&] {
    absl::SleepFor(absl::Milliseconds(50));
    not_serving += HealthStatus(channel, kServiceName) != kServing;
    absl::MutexLock lock(&mu);
    const bool fails_fast = std::any_of(
        with_deadline.begin(), with_deadline.end(), [&](const Probe& pr) {
          return pr.start > paused &&
                 pr.result.status.error_code() ==
                     grpc::StatusCode::UNAVAILABLE &&
                 pr.result.elapsed < absl::Milliseconds(200);
        });
    const bool read_after = std::any_of(
        without_deadline.begin(), without_deadline.end(),
        [&](const Probe& pr) { return pr.start > paused; });
    return fails_fast && read_after;
  });
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_TRUE(warmed) << "shard-1 reserves did not succeed before the pause";
  EXPECT_TRUE(noticed) << "10 s after the freeze, shard-1 calls still did not "
                          "fail fast (or a no-deadline call never returned)";
  EXPECT_EQ(not_serving, 0)
      << "readiness dropped while only shard 1 was hung";

  // 1 s calls: each answered within ~1.5 s; once frozen, UNAVAILABLE or
  // DEADLINE_EXCEEDED. At least one was caught by the freeze (hung until its
  // deadline), or this test did not exercise a hung shard.
  absl::Time hung_from = absl::InfiniteFuture();
  std::map<std::string, int> answers;
  for (const Probe& pr : with_deadline) {
    const grpc::Status& st = pr.result.status;
    EXPECT_LT(pr.result.elapsed, absl::Milliseconds(1500)) << pr.request_id;
    if (pr.start > paused || !st.ok()) {
      EXPECT_TRUE(IsHungShardAnswer(st, 1)) << pr.request_id;
    }
    if (!st.ok() && pr.result.elapsed >= absl::Milliseconds(800)) {
      hung_from = std::min(hung_from, pr.start);
      ++answers[absl::StrCat("hung until the deadline: ", Describe(st))];
    } else if (!st.ok()) {
      ++answers[absl::StrCat("at once: ", Describe(st))];
    }
  }
  EXPECT_NE(hung_from, absl::InfiniteFuture())
      << "no 1 s call was caught by the freeze";
  std::cout << "[ info ] shard-1 calls with a 1 s deadline ("
            << with_deadline.size() << "):";
  for (const auto& [what, n] : answers) std::cout << "\n    " << n << "x " << what;
  std::cout << "\n";

  // No-deadline calls: bounded by --default_deadline=2s (+1 s margin).
  absl::Duration longest_read;
  for (const Probe& pr : without_deadline) {
    EXPECT_LT(pr.result.elapsed, absl::Seconds(3))
        << "a call without a deadline ran past --default_deadline=2s: "
        << Describe(pr.result.status);
    if (pr.start > paused || !pr.result.status.ok()) {
      EXPECT_TRUE(IsHungShardAnswer(pr.result.status, 1)) << "no-deadline call";
    }
    if (!pr.result.status.ok() && pr.result.elapsed > longest_read) {
      longest_read = pr.result.elapsed;
      std::cout << "[ info ] no-deadline call answered after "
                << absl::FormatDuration(pr.result.elapsed) << ": "
                << Describe(pr.result.status) << "\n";
    }
  }
  EXPECT_GE(longest_read, absl::Milliseconds(1500))
      << "no no-deadline call was caught by the freeze";

  // Shards 0 and 2: every reserve succeeded in under 1 s, at least 50 of them
  // while shard-1 calls hung.
  int during_hang = 0;
  absl::Duration slowest;
  for (const Probe& pr : others) {
    EXPECT_TRUE(pr.result.status.ok())
        << pr.request_id << ": " << Describe(pr.result.status);
    EXPECT_LT(pr.result.elapsed, absl::Seconds(1)) << pr.request_id;
    slowest = std::max(slowest, pr.result.elapsed);
    during_hang += pr.start >= hung_from;
  }
  EXPECT_GE(during_hang, 50);
  std::cout << "[ info ] " << others.size() << " reserves on shards 0/2 ("
            << during_hang << " during the hang), slowest "
            << absl::FormatDuration(slowest) << "\n";

  // Still hung: shard 1 now fails at once, even without a deadline; the
  // service stays ready; shards 0 and 2 serve.
  EXPECT_EQ(HealthStatus(channel, kServiceName), kServing);
  EXPECT_EQ(HealthStatus(channel, ""), kServing);
  {
    v1::GetProductRequest req;
    req.set_product_id(p[1]);
    v1::Product resp;
    Timed late = TimeCallWithoutDeadline(
        absl::Seconds(10), [&](grpc::ClientContext* ctx) {
          return stub->GetProduct(ctx, req, &resp);
        });
    EXPECT_TRUE(IsShardUnavailable(late.status, 1)) << "late no-deadline call";
    EXPECT_LT(late.elapsed, absl::Milliseconds(500)) << "late no-deadline call";
  }
  for (int s : {0, 2}) {
    Timed t =
        TimedReserve(*stub, absl::StrCat("t2-later-", s), p[s], "cust-t2");
    EXPECT_TRUE(t.status.ok()) << "shard " << s << ": " << Describe(t.status);
    EXPECT_LT(t.elapsed, absl::Seconds(1)) << "shard " << s;
  }

  ResumeShard(1);
  ASSERT_TRUE(WaitUntilServes(*stub, p[1], absl::Seconds(10)))
      << "shard 1 did not serve again within 10 s of its resume";

  // The shard-1 reserves that failed had an unknown outcome (a frozen
  // statement runs when the shard thaws): a retry with the same request id
  // succeeds and never reserves twice.
  int replayed = 0;
  for (const Probe& pr : with_deadline) {
    if (pr.result.status.ok()) continue;
    v1::ReserveItemResponse resp;
    int attempts = 0;
    grpc::Status s = ReserveRetryingUnavailable(
        *stub, ReserveRequest(pr.request_id, p[1], 1, "cust-t2"), &resp,
        absl::Seconds(5), &attempts);
    EXPECT_TRUE(s.ok()) << "retry of " << pr.request_id << ": " << Describe(s);
    replayed += resp.replayed();
    // The first answer was an error, yet the reservation was made: that
    // answer must have said the outcome was unknown (DEADLINE_EXCEEDED, or
    // an UNAVAILABLE that says so), never a plain "not reachable".
    if (resp.replayed() &&
        pr.result.status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      const std::string& m = pr.result.status.error_message();
      EXPECT_TRUE(absl::StrContains(m, "outcome is unknown") ||
                  absl::StrContains(m, "connection lost"))
          << pr.request_id << " was applied after: " << Describe(pr.result.status);
    }
  }
  std::cout << "[ info ] " << replayed
            << " retried shard-1 reserves were replays\n";
  EXPECT_EQ(DuplicatedRequestIds(cluster_->dsn(1), "t2-"), 0);
  v1::Product product;
  ASSERT_TRUE(GetProduct(*stub, p[1], &product).ok());
  EXPECT_EQ(product.reserved_quantity(), RowsOf(cluster_->dsn(1), p[1], 1));
  EXPECT_EQ(product.reserved_quantity(),
            1 + static_cast<int64_t>(with_deadline.size()));
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(CounterDrift(cluster_->dsn(s)), 0) << "shard " << s;
  }
}

TEST_F(ShardFailureTest, CallInFlightOnAHungShardSaysItsOutcomeIsUnknown) {
  InventorydProcess* server = StartServer();
  ASSERT_NE(server, nullptr);
  auto stub = InventoryService::NewStub(Connect(server->address()));
  const int64_t product = ProductOn(2500, 1);
  ASSERT_TRUE(CreateProduct(*stub, product, 1000).ok());
  ASSERT_TRUE(Reserve(*stub, "t5-warm", product, 1, "cust-t5").ok());

  // Reserves with a deadline longer than the hang detection (about 3 s),
  // sent while the shard freezes: some reach the frozen shard and are
  // answered when the hang is noticed; their statements run at the thaw.
  PauseShard(1);
  std::vector<Probe> probes(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < probes.size(); ++i) {
    threads.emplace_back([&, i] {
      absl::SleepFor(absl::Milliseconds(100) * static_cast<int>(i));
      probes[i].request_id = absl::StrCat("t5-", i);
      v1::ReserveItemResponse resp;
      probes[i].result = TimeCall(absl::Seconds(10), [&](grpc::ClientContext* ctx) {
        return stub->ReserveItem(
            ctx, ReserveRequest(probes[i].request_id, product, 1, "cust-t5"),
            &resp);
      });
    });
  }
  for (auto& t : threads) t.join();
  ResumeShard(1);
  ASSERT_TRUE(WaitUntilServes(*stub, product, absl::Seconds(10)));

  int applied_after_an_error = 0;
  for (const Probe& pr : probes) {
    v1::ReserveItemResponse resp;
    int attempts = 0;
    grpc::Status s = ReserveRetryingUnavailable(
        *stub, ReserveRequest(pr.request_id, product, 1, "cust-t5"), &resp,
        absl::Seconds(5), &attempts);
    ASSERT_TRUE(s.ok()) << "retry of " << pr.request_id << ": " << Describe(s);
    if (pr.result.status.ok() || !resp.replayed()) continue;
    // Answered with an error, and yet made: the answer must have said so.
    ++applied_after_an_error;
    EXPECT_EQ(pr.result.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << pr.request_id << ": " << Describe(pr.result.status);
    EXPECT_TRUE(absl::StrContains(pr.result.status.error_message(),
                                  "outcome is unknown"))
        << pr.request_id << " was made after: " << Describe(pr.result.status);
  }
  EXPECT_GE(applied_after_an_error, 1)
      << "no reserve reached the frozen shard; the test did not exercise it";
  EXPECT_EQ(DuplicatedRequestIds(cluster_->dsn(1), "t5-"), 0);
  EXPECT_EQ(CounterDrift(cluster_->dsn(1)), 0);
}

TEST_F(ShardFailureTest, ServiceKilledMidFlightLosesNothing) {
  InventorydProcess* a = StartServer();
  InventorydProcess* b = StartServer();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto stub_b = InventoryService::NewStub(Connect(b->address()));
  const int64_t product = ProductOn(3000, 2);
  constexpr int64_t kStock = 5000;
  ASSERT_TRUE(CreateProduct(*stub_b, product, kStock).ok());

  // 16 clients reserve through A with no pause between calls (so calls are
  // in flight when A dies); A is SIGKILLed once 150 are acknowledged. At most
  // 4000 attempts in all, so retrying the unknown ones cannot run out of
  // stock, and so many that A dies long before the load could end (with 400,
  // a fast batch lane once served them all before the kill landed).
  ReserveLoad load(a->address(), product, "t3-", 16, /*max_attempts=*/4000,
                   absl::ZeroDuration(), absl::Seconds(5));
  const bool reached = WaitForStreak(absl::Seconds(5), 1, [&] {
    absl::SleepFor(absl::Milliseconds(1));
    return load.acked_count() >= 150;
  });
  a->Signal(SIGKILL);
  load.Join();
  EXPECT_TRUE(reached) << "A acknowledged only " << load.acked_count()
                       << " reservations in 5 s";
  EXPECT_NE(a->WaitExit(absl::Seconds(5)), -1);
  EXPECT_THAT(load.unexpected(), IsEmpty());
  std::cout << "[ info ] through A: " << load.acked().size()
            << " acknowledged, " << load.unknown().size()
            << " unknown outcome\n";
  ASSERT_FALSE(load.acked().empty());
  EXPECT_FALSE(load.unknown().empty()) << "A died after the load had ended";

  // Through B: every acknowledged reservation exists, PENDING.
  std::set<std::string> reservations;
  for (const auto& ack : load.acked()) {
    v1::Reservation r;
    grpc::Status s =
        GetReservationRetrying(*stub_b, ack.reservation_id, &r, absl::Seconds(5));
    ASSERT_TRUE(s.ok()) << ack.request_id << " -> " << ack.reservation_id
                        << ": " << Describe(s);
    EXPECT_EQ(r.status(), v1::RESERVATION_STATUS_PENDING) << ack.request_id;
    EXPECT_EQ(r.request_id(), ack.request_id);
    EXPECT_EQ(r.product_id(), product);
    EXPECT_TRUE(reservations.insert(ack.reservation_id).second)
        << "two acknowledged requests got reservation " << ack.reservation_id;
  }
  // Every unknown outcome, retried through B with the same parameters,
  // succeeds: a replay if A's call had landed, a fresh reservation if not.
  int replayed = 0;
  for (const std::string& id : load.unknown()) {
    v1::ReserveItemResponse resp;
    int attempts = 0;
    grpc::Status s = ReserveRetryingUnavailable(
        *stub_b, ReserveRequest(id, product, 1, load.customer()), &resp,
        absl::Seconds(5), &attempts);
    ASSERT_TRUE(s.ok()) << "retry of " << id << ": " << Describe(s);
    replayed += resp.replayed();
    EXPECT_EQ(resp.reservation().request_id(), id);
    EXPECT_TRUE(reservations.insert(resp.reservation().reservation_id()).second)
        << id << " got reservation " << resp.reservation().reservation_id()
        << " already acknowledged to another request";
  }
  std::cout << "[ info ] retries through B: " << replayed << " replayed, "
            << load.unknown().size() - replayed << " fresh\n";

  const std::string& dsn = cluster_->dsn(2);
  EXPECT_EQ(DuplicatedRequestIds(dsn, "t3-"), 0);
  v1::Product p;
  grpc::Status got = GetProduct(*stub_b, product, &p);
  ASSERT_TRUE(got.ok()) << Describe(got);
  EXPECT_EQ(p.reserved_quantity(), static_cast<int64_t>(reservations.size()));
  EXPECT_EQ(RowsOf(dsn, product, 1), static_cast<int64_t>(reservations.size()))
      << "reservation rows the clients never heard of";
  EXPECT_LE(p.reserved_quantity() + p.purchased_quantity(), kStock);
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(CounterDrift(cluster_->dsn(s)), 0) << "shard " << s;
  }
}

TEST_F(ShardFailureTest, ShardKilledMidFlightLosesNothing) {
  InventorydProcess* server = StartServer({"--default_deadline=2s"});
  ASSERT_NE(server, nullptr);
  auto stub = InventoryService::NewStub(Connect(server->address()));
  const int64_t product = ProductOn(4000, 0);
  constexpr int64_t kStock = 500;
  ASSERT_TRUE(CreateProduct(*stub, product, kStock).ok());

  // Paced (16 clients, ~100 calls/s) so the load goes on for ~4 s, while the
  // launcher takes a second or more to crash-stop the shard, without using up
  // the stock the retries need.
  ReserveLoad load(server->address(), product, "t4-", 16, /*max_attempts=*/450,
                   absl::Milliseconds(150), absl::Seconds(8));
  const bool reached = WaitForStreak(absl::Seconds(5), 1, [&] {
    absl::SleepFor(absl::Milliseconds(1));
    return load.acked_count() >= 32;
  });
  KillShard(0);
  load.Join();
  EXPECT_TRUE(reached) << "only " << load.acked_count()
                       << " reservations acknowledged in 5 s";
  EXPECT_THAT(load.unexpected(), IsEmpty());
  std::cout << "[ info ] before/while shard 0 died: " << load.acked().size()
            << " acknowledged, " << load.unknown().size()
            << " unknown outcome\n";
  ASSERT_FALSE(load.acked().empty());
  EXPECT_FALSE(load.unknown().empty())
      << "the shard died after the load had ended";

  StartShard(0);
  ASSERT_TRUE(WaitUntilServes(*stub, product, absl::Seconds(10)))
      << "shard 0 did not serve again within 10 s of its restart";

  std::set<std::string> reservations;
  for (const auto& ack : load.acked()) {
    v1::Reservation r;
    grpc::Status s =
        GetReservationRetrying(*stub, ack.reservation_id, &r, absl::Seconds(5));
    ASSERT_TRUE(s.ok()) << "acknowledged " << ack.request_id << " -> "
                        << ack.reservation_id << " lost: " << Describe(s);
    EXPECT_EQ(r.status(), v1::RESERVATION_STATUS_PENDING) << ack.request_id;
    EXPECT_EQ(r.request_id(), ack.request_id);
    EXPECT_TRUE(reservations.insert(ack.reservation_id).second)
        << "two acknowledged requests got reservation " << ack.reservation_id;
  }
  int replayed = 0;
  for (const std::string& id : load.unknown()) {
    v1::ReserveItemResponse resp;
    int attempts = 0;
    grpc::Status s = ReserveRetryingUnavailable(
        *stub, ReserveRequest(id, product, 1, load.customer()), &resp,
        absl::Seconds(5), &attempts);
    ASSERT_TRUE(s.ok()) << "retry of " << id << ": " << Describe(s);
    replayed += resp.replayed();
    EXPECT_TRUE(reservations.insert(resp.reservation().reservation_id()).second)
        << id << " got reservation " << resp.reservation().reservation_id()
        << " already acknowledged to another request";
  }
  std::cout << "[ info ] retries: " << replayed << " replayed, "
            << load.unknown().size() - replayed << " fresh\n";

  const std::string& dsn = cluster_->dsn(0);
  EXPECT_EQ(DuplicatedRequestIds(dsn, "t4-"), 0);
  v1::Product p;
  grpc::Status got = GetProduct(*stub, product, &p);
  ASSERT_TRUE(got.ok()) << Describe(got);
  EXPECT_EQ(p.reserved_quantity(), static_cast<int64_t>(reservations.size()));
  EXPECT_EQ(RowsOf(dsn, product, 1), static_cast<int64_t>(reservations.size()));
  EXPECT_LE(p.reserved_quantity() + p.purchased_quantity(), kStock);
  for (int s = 0; s < kShards; ++s) {
    EXPECT_EQ(CounterDrift(cluster_->dsn(s)), 0) << "shard " << s;
  }
}

// A worker stuck on a hung shard makes the graceful stop wait out its drain
// (--drain_timeout plus a second). A second SIGTERM during that wait exits at
// once, with 128 + SIGTERM; one SIGTERM alone still waits, then exits.
TEST_F(ShardFailureTest, ASecondSigtermDuringTheDrainExitsAtOnce) {
  InventorydProcess* server = StartServer({"--drain_timeout=5s"});
  ASSERT_NE(server, nullptr);
  auto stub = InventoryService::NewStub(Connect(server->address()));
  const int64_t product = ProductOn(2700, 1);
  ASSERT_TRUE(CreateProduct(*stub, product, 10).ok());

  // A reserve reaches the frozen shard: its worker is stuck in the
  // statement until the thaw (the call itself is answered "outcome
  // unknown" once the hang is noticed).
  PauseShard(1);
  v1::ReserveItemResponse resp;
  Timed t = TimeCall(absl::Seconds(10), [&](grpc::ClientContext* ctx) {
    return stub->ReserveItem(
        ctx, ReserveRequest("t7-stuck", product, 1, "cust-t7"), &resp);
  });
  EXPECT_FALSE(t.status.ok());

  server->Signal(SIGTERM);
  EXPECT_EQ(server->WaitExit(absl::Seconds(2)), -1)
      << "one SIGTERM waits for the stuck worker";
  const absl::Time second = absl::Now();
  server->Signal(SIGTERM);
  EXPECT_EQ(server->WaitExit(absl::Seconds(3)), 128 + SIGTERM) << server->Log();
  EXPECT_LT(absl::Now() - second, absl::Seconds(2));
  EXPECT_THAT(server->Log(), HasSubstr("received SIGTERM again: exiting now"));
  ResumeShard(1);
  // What the stuck statement did at the thaw stays consistent.
  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(cluster_->dsn(1),
                    "SELECT count(*) FROM pg_stat_activity WHERE "
                    "application_name = 'inventoryd'") == 0;
  }, absl::Seconds(10)));
  EXPECT_EQ(CounterDrift(cluster_->dsn(1)), 0);
}

// A shard that hangs after accepting the start-up bootstrap's connection
// (here: the bootstrap waits for its advisory lock, held elsewhere, when the
// shard is SIGSTOPped) must not keep the service from starting: start-up
// waits 10 s for each shard's first probe, then serves the others, and the
// hung shard is bootstrapped and served once it answers.
TEST_F(ShardFailureTest, ServiceStartsWhileAShardHangsInItsBootstrap) {
  const int64_t p0 = ProductOn(5100, 0);
  const int64_t p2 = ProductOn(5100, 2);
  ASSERT_TRUE(CreateThroughATemporaryServer({p0, p2}));

  // The holder takes the bootstrap lock for 3 s; the watcher freezes shard 2
  // as soon as the new instance's bootstrap waits for that lock.
  const std::string marker = absl::StrCat("hold-bootstrap-", getpid());
  std::thread holder([&] {
    Exec(cluster_->dsn(2),
         absl::StrCat("SELECT pg_advisory_lock(", 0x1a7e4e0001,
                      "), pg_sleep(3), '", marker, "'"));
  });
  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(cluster_->dsn(2),
                    absl::StrCat("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE wait_event = 'PgSleep' AND query LIKE "
                                 "'%", marker, "%'")) > 0;
  }, absl::Seconds(5)));
  std::atomic<bool> froze{false};
  std::thread watcher([&] {
    froze = PollUntil([&] {
      return QueryInt(cluster_->dsn(2),
                      "SELECT count(*) FROM pg_stat_activity WHERE "
                      "application_name = 'inventoryd' AND wait_event_type = "
                      "'Lock'") > 0;
    }, absl::Seconds(3));
    if (froze) PauseShard(2);
  });
  const absl::Time start = absl::Now();
  InventorydProcess* server = StartServer({"--default_deadline=2s"});
  const absl::Duration took = absl::Now() - start;
  watcher.join();
  ASSERT_TRUE(froze) << "the bootstrap never waited for the lock";
  ASSERT_NE(server, nullptr) << "inventoryd must start with shard 2 hung";
  EXPECT_LT(took, absl::Seconds(20));
  std::cout << "[ info ] started in " << absl::FormatDuration(took)
            << " with shard 2 hung\n";
  auto channel = Connect(server->address());
  auto stub = InventoryService::NewStub(channel);
  EXPECT_EQ(HealthStatus(channel, kServiceName), kServing);
  {
    Timed t = TimedReserve(*stub, "t6-0", p0, "cust-t6");
    EXPECT_TRUE(t.status.ok()) << Describe(t.status);
  }
  {
    Timed t = TimedGetProduct(*stub, p2);
    EXPECT_TRUE(IsShardUnavailable(t.status, 2)) << "GetProduct";
    EXPECT_LT(t.elapsed, absl::Seconds(1));
  }
  EXPECT_THAT(server->Log(), HasSubstr("its first probe has had no answer"));

  // Thawed, the holder's sleep ends and frees the lock: the monitor's
  // bootstrap goes through and shard 2 serves.
  ResumeShard(2);
  holder.join();
  ASSERT_TRUE(WaitUntilServes(*stub, p2, absl::Seconds(15)))
      << "shard 2 did not serve within 15 s of its resume";
  v1::ReserveItemResponse resp;
  grpc::Status s = Reserve(*stub, "t6-2", p2, 1, "cust-t6", &resp);
  EXPECT_TRUE(s.ok()) << Describe(s);
  EXPECT_EQ(CounterDrift(cluster_->dsn(2)), 0);
}

TEST_F(ShardFailureTest, ServiceStartsWithAShardDown) {
  const int64_t p0 = ProductOn(5000, 0);
  const int64_t p2 = ProductOn(5000, 2);
  ASSERT_TRUE(CreateThroughATemporaryServer({p0, p2}));

  KillShard(2);
  const absl::Time start = absl::Now();
  InventorydProcess* server = StartServer({"--default_deadline=2s"});
  ASSERT_NE(server, nullptr) << "inventoryd must start with 2 of 3 shards up";
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  auto channel = Connect(server->address());
  auto stub = InventoryService::NewStub(channel);
  EXPECT_EQ(HealthStatus(channel, ""), kServing);
  EXPECT_EQ(HealthStatus(channel, kServiceName), kServing);

  {
    Timed t = TimedReserve(*stub, "t5-0", p0, "cust-t5");
    EXPECT_TRUE(t.status.ok()) << Describe(t.status);
  }
  {
    Timed t = TimedReserve(*stub, "t5-2-down", p2, "cust-t5");
    EXPECT_TRUE(IsShardUnavailable(t.status, 2)) << "ReserveItem";
    EXPECT_LT(t.elapsed, absl::Seconds(1));
  }
  {
    Timed t = TimedGetProduct(*stub, p2);
    EXPECT_TRUE(IsShardUnavailable(t.status, 2)) << "GetProduct";
    EXPECT_LT(t.elapsed, absl::Seconds(1));
  }

  StartShard(2);
  ASSERT_TRUE(WaitUntilServes(*stub, p2, absl::Seconds(10)))
      << "shard 2 did not serve within 10 s of coming up";
  v1::ReserveItemResponse resp;
  grpc::Status s = Reserve(*stub, "t5-2-up", p2, 1, "cust-t5", &resp);
  EXPECT_TRUE(s.ok()) << Describe(s);
  v1::Product product;
  ASSERT_TRUE(GetProduct(*stub, p2, &product).ok());
  EXPECT_EQ(product.total_quantity(), 10);
  EXPECT_EQ(product.reserved_quantity(), 1);
  EXPECT_EQ(QueryInt(cluster_->dsn(2),
                     "SELECT count(*) FROM reservations WHERE request_id = "
                     "'t5-2-down'"),
            0);
  EXPECT_EQ(CounterDrift(cluster_->dsn(2)), 0);
  EXPECT_EQ(HealthStatus(channel, kServiceName), kServing);
  // The log names the down shard without its password.
  const std::string& dsn = cluster_->dsn(2);
  const size_t at = dsn.find("password=");
  ASSERT_NE(at, std::string::npos);
  const std::string password = dsn.substr(at + 9, dsn.find(' ', at) - at - 9);
  ASSERT_FALSE(password.empty());
  // Stopped first: access-log lines (errors included) reach the log in bulk.
  server->Signal(SIGTERM);
  EXPECT_EQ(server->WaitExit(absl::Seconds(20)), 0);
  EXPECT_THAT(server->Log(), Not(HasSubstr(password)));
}

}  // namespace
}  // namespace inventory::testing
