// End to end: stock administration through a real inventoryd on 3 real
// shards — AdjustStock with etags and the operator session window, the
// STRICT floor, adjustments racing reservations, backorders filled oldest
// first, low-stock events streamed and resumed from a cursor, the audit
// trail, cross-shard pagination, and the reconciliation (drift) report.
#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpc_client.h"
#include "gtest/gtest.h"
#include "inventory/api/page_token.h"
#include "inventoryd_process.h"
#include "poll_until.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

namespace v1 = ::inventory::v1;
using ::testing::ElementsAre;

constexpr int kShards = 3;

void ExpectError(const grpc::Status& s, grpc::StatusCode code,
                 const std::string& reason) {
  EXPECT_EQ(s.error_code(), code) << s.error_message();
  EXPECT_EQ(ErrorInfoOf(s).reason(), reason) << s.error_message();
}

std::string Meta(const grpc::Status& s, const std::string& key) {
  auto info = ErrorInfoOf(s);
  auto it = info.metadata().find(key);
  return it == info.metadata().end() ? "" : it->second;
}

class StockAdminTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = ShardCluster::Start(kShards).release();
    ASSERT_NE(cluster_, nullptr);
    std::string log;
    server_ = InventorydProcess::Start(
                  cluster_->DsnList(),
                  {"--etag_session_window=1500ms", "--log_level=warn"}, &log)
                  .release();
    ASSERT_NE(server_, nullptr) << log;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete cluster_;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    channel_ = Connect(server_->address());
    stub_ = v1::InventoryService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }
  void TearDown() override {
    for (int i = 0; i < kShards; ++i) {
      EXPECT_EQ(CounterDrift(cluster_->dsn(i)), 0) << "shard " << i;
    }
  }

  static int64_t NewProductId() { return next_id_++; }

  const std::string& ShardDsn(int64_t product_id) {
    return cluster_->dsn(static_cast<int>(product_id % kShards));
  }

  grpc::Status Adjust(int64_t product, std::optional<int64_t> delta,
                      std::optional<int64_t> new_total,
                      const std::string& etag, const std::string& session,
                      v1::Product* out = nullptr,
                      const std::string& actor = "") {
    v1::AdjustStockRequest req;
    req.set_product_id(product);
    if (delta) req.set_delta(*delta);
    if (new_total) req.set_new_total(*new_total);
    req.set_reason(v1::STOCK_ADJUSTMENT_REASON_CORRECTION);
    req.set_etag(etag);
    req.set_session_id(session);
    v1::Product resp;
    auto ctx = ContextWithTimeout();
    if (!actor.empty()) ctx->AddMetadata("inventory-actor", actor);
    grpc::Status s = stub_->AdjustStock(ctx.get(), req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }

  // The backordered units of the reservation `r` made, read now.
  int64_t BackorderedNow(const v1::ReserveItemResponse& r) {
    v1::Reservation out;
    EXPECT_TRUE(
        GetReservation(*stub_, r.reservation().reservation_id(), &out).ok());
    return out.backordered_quantity();
  }

  v1::Product Product(int64_t id) {
    v1::Product p;
    EXPECT_TRUE(GetProduct(*stub_, id, &p).ok());
    return p;
  }

  grpc::Status Create(int64_t id, int64_t total, v1::StockPolicy policy,
                      int64_t threshold) {
    v1::CreateProductRequest req;
    req.set_product_id(id);
    req.set_total_quantity(total);
    req.set_stock_policy(policy);
    req.set_low_stock_threshold(threshold);
    v1::Product resp;
    auto ctx = ContextWithTimeout();
    return stub_->CreateProduct(ctx.get(), req, &resp);
  }

  static ShardCluster* cluster_;
  static InventorydProcess* server_;
  static std::atomic<int64_t> next_id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::InventoryService::Stub> stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};
ShardCluster* StockAdminTest::cluster_ = nullptr;
InventorydProcess* StockAdminTest::server_ = nullptr;
std::atomic<int64_t> StockAdminTest::next_id_{5000};

// ------------------------------------------------------------------ etags

TEST_F(StockAdminTest, EtagMatchAppliesMismatchIsAborted) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  const std::string etag = Product(id).etag();
  v1::Product after;
  ASSERT_TRUE(Adjust(id, 5, std::nullopt, etag, "", &after).ok());
  EXPECT_EQ(after.total_quantity(), 15);
  EXPECT_NE(after.etag(), etag);
  // The old etag is stale now.
  grpc::Status s = Adjust(id, 5, std::nullopt, etag, "");
  ExpectError(s, grpc::StatusCode::ABORTED, "ETAG_MISMATCH");
  EXPECT_EQ(Meta(s, "currentEtag"), after.etag());
  EXPECT_EQ(Product(id).total_quantity(), 15);
  // A reservation changes the etag too (every counter does).
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("etag-", id), id, 1, "c").ok());
  ExpectError(Adjust(id, std::nullopt, 20, after.etag(), ""),
              grpc::StatusCode::ABORTED, "ETAG_MISMATCH");
  // Without an etag a delta always applies.
  ASSERT_TRUE(Adjust(id, -2, std::nullopt, "", "").ok());
  EXPECT_EQ(Product(id).total_quantity(), 13);
}

TEST_F(StockAdminTest, SessionWindowSkipsTheEtagForTheSameSessionOnly) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  const std::string etag0 = Product(id).etag();
  // The operator's first edit, with a fresh etag.
  ASSERT_TRUE(Adjust(id, std::nullopt, 12, etag0, "ui-session-A").ok());
  // Typing fast: the second edit still carries etag0 (stale) — the same
  // session within the window is let through.
  v1::Product after;
  ASSERT_TRUE(Adjust(id, std::nullopt, 13, etag0, "ui-session-A", &after).ok());
  EXPECT_EQ(after.total_quantity(), 13);
  // Another session with the stale etag is checked.
  grpc::Status s = Adjust(id, std::nullopt, 99, etag0, "ui-session-B");
  ExpectError(s, grpc::StatusCode::ABORTED, "ETAG_MISMATCH");
  // No session at all is checked.
  ExpectError(Adjust(id, std::nullopt, 99, etag0, ""),
              grpc::StatusCode::ABORTED, "ETAG_MISMATCH");
  EXPECT_EQ(Product(id).total_quantity(), 13);
}

TEST_F(StockAdminTest, SessionWindowExpires) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  const std::string etag0 = Product(id).etag();
  ASSERT_TRUE(Adjust(id, std::nullopt, 11, etag0, "ui-slow").ok());
  // The server's window is 1.5 s: wait it out (by the database clock).
  for (int i = 0; i < 40; ++i) {
    if (QueryInt(ShardDsn(id),
                 absl::StrCat("SELECT count(*) FROM products WHERE product_id = ",
                              id, " AND last_session_time < now() - "
                                  "interval '1600 ms'")) == 1) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  ExpectError(Adjust(id, std::nullopt, 12, etag0, "ui-slow"),
              grpc::StatusCode::ABORTED, "ETAG_MISMATCH");
  EXPECT_EQ(Product(id).total_quantity(), 11);
}

TEST_F(StockAdminTest, StrictTotalCannotFallBelowWhatIsHeldOrSold) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("floor-", id), id, 6, "c").ok());
  grpc::Status s = Adjust(id, std::nullopt, 5, "", "");
  ExpectError(s, grpc::StatusCode::FAILED_PRECONDITION,
              "STOCK_BELOW_COMMITTED");
  EXPECT_EQ(Meta(s, "committed"), "6");
  ExpectError(Adjust(id, -5, std::nullopt, "", ""),
              grpc::StatusCode::FAILED_PRECONDITION, "STOCK_BELOW_COMMITTED");
  ASSERT_TRUE(Adjust(id, -4, std::nullopt, "", "").ok());
  EXPECT_EQ(Product(id).available_quantity(), 0);
}

// A row lock held elsewhere for longer than the lock wait: the answer is
// CONCURRENT_UPDATE ("nothing changed"), not DEADLINE_EXCEEDED ("outcome
// unknown"), with the default flags. The lock wait (4/5 of
// --statement_timeout) must end before the statement's own bound does.
TEST_F(StockAdminTest, ALockHeldTooLongIsConcurrentUpdateAndChangesNothing) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  const std::string marker = absl::StrCat("hold-lock-", id);
  std::thread holder([&] {
    Exec(ShardDsn(id),
         absl::StrCat("WITH l AS (SELECT product_id FROM products WHERE "
                      "product_id = ", id, " FOR UPDATE) SELECT pg_sleep(5.5), '",
                      marker, "' FROM l"));
  });
  // Wait until the lock is held (the statement is sleeping).
  const bool held = PollUntil(
      [&] {
        return QueryInt(ShardDsn(id),
                        absl::StrCat("SELECT count(*) FROM pg_stat_activity "
                                     "WHERE wait_event = 'PgSleep' AND query "
                                     "LIKE '%", marker, "%'")) > 0;
      },
      absl::Seconds(4));
  // Adjust's deadline (10 s) is well beyond both bounds.
  const absl::Time start = absl::Now();
  grpc::Status s = Adjust(id, 5, std::nullopt, "", "");
  const absl::Duration took = absl::Now() - start;
  holder.join();
  ASSERT_TRUE(held) << "the row lock was never taken";
  ExpectError(s, grpc::StatusCode::ABORTED, "CONCURRENT_UPDATE");
  EXPECT_LT(took, absl::Seconds(5)) << "the lock wait outlasted its bound";
  EXPECT_EQ(Product(id).total_quantity(), 10);
}

// A BACKORDER product's total may fall to the units held from stock, not
// below: backordered units do not count, and `committed` is that floor.
TEST_F(StockAdminTest, BackorderTotalCannotFallBelowWhatIsHeldFromStock) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 10, v1::STOCK_POLICY_BACKORDER, 0).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("bofloor-a-", id), id, 5, "c").ok());
  grpc::Status s = Adjust(id, std::nullopt, 2, "", "");
  ExpectError(s, grpc::StatusCode::FAILED_PRECONDITION,
              "STOCK_BELOW_COMMITTED");
  EXPECT_EQ(Meta(s, "committed"), "5");
  // 8 more: 5 from stock, 3 backordered. The floor is now 10, not 13.
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("bofloor-b-", id), id, 8, "c").ok());
  EXPECT_EQ(Product(id).backordered_quantity(), 3);
  s = Adjust(id, -1, std::nullopt, "", "");
  ExpectError(s, grpc::StatusCode::FAILED_PRECONDITION,
              "STOCK_BELOW_COMMITTED");
  EXPECT_EQ(Meta(s, "committed"), "10");
  EXPECT_EQ(Meta(s, "requestedTotal"), "9");
  EXPECT_EQ(Product(id).total_quantity(), 10);
  ASSERT_TRUE(Adjust(id, std::nullopt, 10, "", "").ok());
  EXPECT_EQ(Product(id).backordered_quantity(), 3);
}

TEST_F(StockAdminTest, TotalCannotRiseAboveTheLimit) {
  constexpr int64_t kMax = int64_t{1} << 50;  // the largest total (api.md)
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, kMax - 1).ok());
  ASSERT_TRUE(Adjust(id, 1, std::nullopt, "", "").ok());  // exactly the limit
  const std::string etag = Product(id).etag();
  grpc::Status s = Adjust(id, 1, std::nullopt, "", "");
  ExpectError(s, grpc::StatusCode::FAILED_PRECONDITION, "STOCK_ABOVE_LIMIT");
  EXPECT_EQ(Meta(s, "requestedTotal"), absl::StrCat(kMax + 1));
  EXPECT_EQ(Meta(s, "maxTotal"), absl::StrCat(kMax));
  // The largest delta, again and again: refused every time, never wrapping.
  for (int i = 0; i < 3; ++i) {
    ExpectError(Adjust(id, kMax, std::nullopt, "", ""),
                grpc::StatusCode::FAILED_PRECONDITION, "STOCK_ABOVE_LIMIT");
  }
  EXPECT_EQ(Product(id).total_quantity(), kMax);
  EXPECT_EQ(Product(id).etag(), etag) << "a refused adjustment changed the row";
}

TEST_F(StockAdminTest, BadAdjustmentsAreRejected) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  auto call = [&](v1::AdjustStockRequest req) {
    v1::Product resp;
    auto ctx = ContextWithTimeout();
    return stub_->AdjustStock(ctx.get(), req, &resp);
  };
  v1::AdjustStockRequest req;
  req.set_product_id(id);
  req.set_reason(v1::STOCK_ADJUSTMENT_REASON_RESTOCK);
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");  // no change
  req.set_delta(0);
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");  // zero delta
  req.set_new_total(-1);
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  req.set_delta(1);
  req.set_reason(v1::STOCK_ADJUSTMENT_REASON_UNSPECIFIED);
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  req.set_reason(static_cast<v1::StockAdjustmentReason>(77));
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  req.set_reason(v1::STOCK_ADJUSTMENT_REASON_RESTOCK);
  // PostgreSQL text cannot hold a NUL byte: it would be cut there.
  req.set_note(std::string("ab\0cd", 5));
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  req.clear_note();
  req.set_session_id(std::string("s\0", 2));
  ExpectError(call(req), grpc::StatusCode::INVALID_ARGUMENT,
              "INVALID_ARGUMENT");
  req.clear_session_id();
  req.set_product_id(NewProductId());
  ExpectError(call(req), grpc::StatusCode::NOT_FOUND, "PRODUCT_NOT_FOUND");
  EXPECT_EQ(Product(id).total_quantity(), 10);
}

// ------------------------------------------------- adjustments vs reserves

TEST_F(StockAdminTest, ConcurrentAdjustmentsAndReservationsLoseNothing) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 200).ok());
  std::atomic<int> granted{0};
  std::atomic<int64_t> added{0};
  std::atomic<int> adjustments{0};
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; ++t) {
    threads.emplace_back([&, t] {
      auto stub = v1::InventoryService::NewStub(Connect(server_->address()));
      for (int i = 0; i < 40; ++i) {
        grpc::Status s = Reserve(*stub, absl::StrCat("mix-", id, "-", t, "-", i),
                                 id, 1, "c");
        if (s.ok()) {
          ++granted;
        } else if (ErrorInfoOf(s).reason() != "OUT_OF_STOCK") {
          ++unexpected;
        }
      }
    });
  }
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const int64_t delta = (i % 3 == 0) ? -2 : 3;
        grpc::Status s = Adjust(id, delta, std::nullopt, "", "");
        if (s.ok()) {
          added += delta;
          ++adjustments;
        } else if (ErrorInfoOf(s).reason() != "STOCK_BELOW_COMMITTED") {
          ++unexpected;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  v1::Product p = Product(id);
  EXPECT_EQ(p.total_quantity(), 200 + added.load());
  EXPECT_EQ(p.reserved_quantity(), granted.load());
  EXPECT_LE(p.reserved_quantity() + p.purchased_quantity(), p.total_quantity());
  EXPECT_EQ(QueryInt(ShardDsn(id),
                     absl::StrCat("SELECT count(*) FROM stock_adjustments "
                                  "WHERE product_id = ", id)),
            adjustments.load());
}

// -------------------------------------------------------------- backorders

TEST_F(StockAdminTest, BackordersAreFilledOldestFirst) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 2, v1::STOCK_POLICY_BACKORDER, 0).ok());
  v1::ReserveItemResponse first, second, third;
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("bo1-", id), id, 3, "c1", &first).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("bo2-", id), id, 2, "c2", &second).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("bo3-", id), id, 1, "c3", &third).ok());
  EXPECT_EQ(first.reservation().backordered_quantity(), 1);
  EXPECT_EQ(second.reservation().backordered_quantity(), 2);
  EXPECT_EQ(third.reservation().backordered_quantity(), 1);
  v1::Product p = Product(id);
  EXPECT_EQ(p.backordered_quantity(), 4);
  EXPECT_EQ(p.available_quantity(), 0);
  // A restock of 2 fills the oldest backorders first: all of #1, one of #2.
  v1::Product after;
  ASSERT_TRUE(Adjust(id, 2, std::nullopt, "", "", &after).ok());
  EXPECT_EQ(after.backordered_quantity(), 2);
  EXPECT_EQ(BackorderedNow(first), 0);
  EXPECT_EQ(BackorderedNow(second), 1);
  EXPECT_EQ(BackorderedNow(third), 1);
  // Releasing a backordered hold takes its backorder away too.
  ASSERT_TRUE(Release(*stub_, third.reservation().reservation_id()).ok());
  EXPECT_EQ(Product(id).backordered_quantity(), 1);
  // Switching to STRICT while backordered is refused.
  v1::UpdateProductRequest up;
  up.mutable_product()->set_product_id(id);
  up.mutable_product()->set_stock_policy(v1::STOCK_POLICY_STRICT);
  up.mutable_update_mask()->add_paths("stock_policy");
  v1::Product up_resp;
  auto ctx2 = ContextWithTimeout();
  ExpectError(stub_->UpdateProduct(ctx2.get(), up, &up_resp),
              grpc::StatusCode::FAILED_PRECONDITION, "STOCK_BELOW_COMMITTED");
  // Verify: rows and counters agree, backorders included.
  v1::VerifyInventoryRequest vreq;
  v1::VerifyInventoryResponse vresp;
  auto ctx3 = ContextWithTimeout();
  ASSERT_TRUE(admin_->VerifyInventory(ctx3.get(), vreq, &vresp).ok());
  EXPECT_EQ(vresp.drifts_size(), 0);
}

// The fill trigger skips a backordered row another transaction holds
// locked and queues the fill; the sweeper (every second by default) tries
// it again and fills it once the row is free, without the product changing.
TEST_F(StockAdminTest, ABackorderSkippedWhileLockedIsFilledByTheSweeper) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 1, v1::STOCK_POLICY_BACKORDER, 0).ok());
  v1::ReserveItemResponse a, b;
  const std::string b_request = absl::StrCat("late-b-", id);
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("late-a-", id), id, 1, "c1", &a).ok());
  ASSERT_TRUE(Reserve(*stub_, b_request, id, 1, "c2", &b).ok());
  ASSERT_EQ(b.reservation().backordered_quantity(), 1);
  HeldLock held = HeldLock::ReservationRow(ShardDsn(id), b_request);
  ASSERT_TRUE(Release(*stub_, a.reservation().reservation_id()).ok());
  // A's unit is free, but B's row was locked: not filled, and queued.
  EXPECT_EQ(Product(id).backordered_quantity(), 1);
  const std::string queued_at = absl::StrCat(
      "SELECT coalesce(inv_us(queued_at), 0) FROM late_fills "
      "WHERE product_id = ", id);
  const int64_t first_queued = QueryInt(ShardDsn(id), queued_at);
  ASSERT_GT(first_queued, 0) << "the skipped fill was not queued";
  // A sweep tries it while B is still locked: skipped again, queued again.
  EXPECT_TRUE(PollUntil(
      [&] { return QueryInt(ShardDsn(id), queued_at) > first_queued; },
      absl::Seconds(10), absl::Milliseconds(50)))
      << "no sweep tried the queued fill";
  EXPECT_EQ(BackorderedNow(b), 1);
  const std::string etag = Product(id).etag();

  held.Release();
  EXPECT_TRUE(PollUntil([&] { return BackorderedNow(b) == 0; },
                        absl::Seconds(10), absl::Milliseconds(100)))
      << "B is still backordered";
  const v1::Product p = Product(id);
  EXPECT_EQ(p.backordered_quantity(), 0);
  EXPECT_EQ(p.reserved_quantity(), 1);
  EXPECT_EQ(p.available_quantity(), 0);
  EXPECT_NE(p.etag(), etag) << "the fill changed the product";
}

// A product whose counter was edited by hand to backorder a unit no
// reservation has can never be filled: a sweep takes it out of the
// late-fill queue and names it in a warning, instead of rewriting it at
// every sweep.
TEST_F(StockAdminTest, ADriftedProductLeavesTheLateFillsWithAWarning) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 1, v1::STOCK_POLICY_BACKORDER, 0).ok());
  v1::ReserveItemResponse covered;
  ASSERT_TRUE(
      Reserve(*stub_, absl::StrCat("drift-", id), id, 1, "c1", &covered).ok());
  auto set_backordered = [&](int units) {
    Exec(ShardDsn(id), absl::StrCat("UPDATE products SET "
                                    "backordered_quantity = ", units,
                                    " WHERE product_id = ", id));
  };
  set_backordered(1);
  // The edit's fill queued it (not asserted: a sweep may already have
  // dropped it); the warning naming it shows that.
  const std::string queued =
      absl::StrCat("SELECT count(*) FROM late_fills WHERE product_id = ", id);
  const std::string warning = absl::StrCat(
      "product(s) ", id, " backorder more units than their reservations do");
  EXPECT_TRUE(PollUntil(
      [&] {
        return absl::StrContains(server_->Log(), warning) &&
               QueryInt(ShardDsn(id), queued) == 0;
      },
      absl::Seconds(10), absl::Milliseconds(50)))
      << server_->Log();
  EXPECT_EQ(Product(id).backordered_quantity(), 1);
  set_backordered(0);  // the counter as it was, for TearDown's check
}

// A sweep step that fails for another reason than a shard down is logged as
// a warning (a shard down is debug only, its monitor has said so:
// ShardFailureTest checks that). Here the late fill cannot lock its queue.
TEST_F(StockAdminTest, ALateFillThatFailsIsLoggedAsAWarning) {
  HeldLock queue = HeldLock::Table(cluster_->dsn(0), "late_fills");
  EXPECT_TRUE(PollUntil(
      [&] {
        return absl::StrContains(
            server_->Log(), "shard 0: late backorder fill failed: ABORTED");
      },
      absl::Seconds(15), absl::Milliseconds(100)))
      << server_->Log();
  queue.Release();
}

TEST_F(StockAdminTest, UpdateProductChangesPolicyAndThreshold) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  v1::UpdateProductRequest up;
  up.mutable_product()->set_product_id(id);
  up.mutable_product()->set_low_stock_threshold(4);
  up.mutable_product()->set_stock_policy(v1::STOCK_POLICY_BACKORDER);
  up.mutable_update_mask()->add_paths("low_stock_threshold");
  v1::Product out;
  auto ctx = ContextWithTimeout();
  ASSERT_TRUE(stub_->UpdateProduct(ctx.get(), up, &out).ok());
  EXPECT_EQ(out.low_stock_threshold(), 4);
  EXPECT_EQ(out.stock_policy(), v1::STOCK_POLICY_STRICT);  // not in the mask
  // The same update again changes nothing, so the etag stays.
  const std::string etag = out.etag();
  auto again = ContextWithTimeout();
  ASSERT_TRUE(stub_->UpdateProduct(again.get(), up, &out).ok());
  EXPECT_EQ(out.etag(), etag);
  EXPECT_EQ(Product(id).etag(), etag);
  up.mutable_update_mask()->add_paths("total_quantity");
  auto ctx2 = ContextWithTimeout();
  const grpc::Status refused = stub_->UpdateProduct(ctx2.get(), up, &out);
  ExpectError(refused, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
  EXPECT_THAT(refused.error_message(),
              ::testing::HasSubstr("'total_quantity' cannot be updated here "
                                   "(only stock_policy and "
                                   "low_stock_threshold"));
  up.mutable_update_mask()->Clear();
  up.mutable_update_mask()->add_paths("stock_policy");
  up.mutable_product()->set_etag("not-the-etag");
  auto ctx3 = ContextWithTimeout();
  ExpectError(stub_->UpdateProduct(ctx3.get(), up, &out),
              grpc::StatusCode::ABORTED, "ETAG_MISMATCH");
  up.mutable_product()->set_etag(Product(id).etag());
  auto ctx4 = ContextWithTimeout();
  ASSERT_TRUE(stub_->UpdateProduct(ctx4.get(), up, &out).ok());
  EXPECT_EQ(out.stock_policy(), v1::STOCK_POLICY_BACKORDER);
}

// ------------------------------------------------------------------ events

struct SeenEvent {
  int64_t product_id;
  v1::InventoryEventType type;
  int64_t available;
  std::string cursor;
};

// Reads events from `cursor` until `want` of `product` arrived or `timeout`.
std::vector<SeenEvent> WatchFor(const std::string& address,
                                const std::string& cursor, int64_t product,
                                size_t want,
                                absl::Duration timeout = absl::Seconds(10)) {
  auto stub = v1::InventoryService::NewStub(Connect(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  v1::WatchInventoryEventsRequest req;
  req.set_cursor(cursor);
  auto reader = stub->WatchInventoryEvents(&ctx, req);
  std::vector<SeenEvent> seen;
  v1::WatchInventoryEventsResponse msg;
  while (seen.size() < want && reader->Read(&msg)) {
    if (msg.event().product_id() != product) continue;
    seen.push_back({msg.event().product_id(), msg.event().type(),
                    msg.event().available_quantity(), msg.cursor()});
  }
  ctx.TryCancel();
  reader->Finish();
  return seen;
}

TEST_F(StockAdminTest, EventsAreStreamedOnceAndAgainAfterResume) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 10, v1::STOCK_POLICY_STRICT, 3).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("ev1-", id), id, 7, "c").ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("ev2-", id), id, 3, "c").ok());
  ASSERT_TRUE(Adjust(id, 10, std::nullopt, "", "").ok());
  auto events = WatchFor(server_->address(), "", id, 3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, v1::INVENTORY_EVENT_TYPE_LOW_STOCK);
  EXPECT_EQ(events[0].available, 3);
  EXPECT_EQ(events[1].type, v1::INVENTORY_EVENT_TYPE_OUT_OF_STOCK);
  EXPECT_EQ(events[1].available, 0);
  EXPECT_EQ(events[2].type, v1::INVENTORY_EVENT_TYPE_RESTOCKED);
  EXPECT_EQ(events[2].available, 10);
  // Each event once: a stream from the start shows no duplicate for this
  // product (read everything currently there with a short deadline).
  auto all = WatchFor(server_->address(), "", id, 100, absl::Seconds(2));
  EXPECT_EQ(all.size(), 3u);
  // Resume after the first: the other two come again.
  auto resumed = WatchFor(server_->address(), events[0].cursor, id, 2);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_EQ(resumed[0].type, v1::INVENTORY_EVENT_TYPE_OUT_OF_STOCK);
  EXPECT_EQ(resumed[1].type, v1::INVENTORY_EVENT_TYPE_RESTOCKED);
}

TEST_F(StockAdminTest, AWatcherThatComesBackMissesNothing) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 5, v1::STOCK_POLICY_STRICT, 2).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("wb1-", id), id, 3, "c").ok());
  auto first = WatchFor(server_->address(), "", id, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].type, v1::INVENTORY_EVENT_TYPE_LOW_STOCK);
  // While the watcher is away: out of stock, restocked, low again.
  v1::ReserveItemResponse r;
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("wb2-", id), id, 2, "c", &r).ok());
  ASSERT_TRUE(Adjust(id, 5, std::nullopt, "", "").ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("wb3-", id), id, 3, "c").ok());
  auto back = WatchFor(server_->address(), first[0].cursor, id, 3);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].type, v1::INVENTORY_EVENT_TYPE_OUT_OF_STOCK);
  EXPECT_EQ(back[1].type, v1::INVENTORY_EVENT_TYPE_RESTOCKED);
  EXPECT_EQ(back[2].type, v1::INVENTORY_EVENT_TYPE_LOW_STOCK);
}

TEST_F(StockAdminTest, ABadCursorIsRejected) {
  auto stub = v1::InventoryService::NewStub(Connect(server_->address()));
  for (const std::string& cursor : {std::string("garbage"),
                                    std::string("YzF8MSwy")}) {  // "c1|1,2"
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    v1::WatchInventoryEventsRequest req;
    req.set_cursor(cursor);
    auto reader = stub->WatchInventoryEvents(&ctx, req);
    v1::WatchInventoryEventsResponse msg;
    EXPECT_FALSE(reader->Read(&msg));
    ExpectError(reader->Finish(), grpc::StatusCode::INVALID_ARGUMENT,
                "INVALID_ARGUMENT");
  }
}

// A well-formed cursor past a shard's newest event (forged, another
// cluster's, or older than a backup the shard was restored from) would skip
// that shard's next events without a word: it is refused instead.
TEST_F(StockAdminTest, ACursorBeyondAShardsNewestEventIsRejected) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(Create(id, 5, v1::STOCK_POLICY_STRICT, 2).ok());
  std::vector<int64_t> ahead(kShards, 0);
  ahead[id % kShards] = int64_t{1} << 40;
  auto stub = v1::InventoryService::NewStub(Connect(server_->address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  v1::WatchInventoryEventsRequest req;
  req.set_cursor(EncodeEventCursor(ahead));
  auto reader = stub->WatchInventoryEvents(&ctx, req);
  v1::WatchInventoryEventsResponse msg;
  EXPECT_FALSE(reader->Read(&msg));
  const grpc::Status refused = reader->Finish();
  ExpectError(refused, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
  EXPECT_THAT(refused.error_message(),
              ::testing::HasSubstr(absl::StrCat(
                  "is beyond shard ", id % kShards, "'s newest event")));
  // A cursor at a shard's newest event (a watcher that had caught up) is
  // good: the stream stays open, waiting for the next one. (Other shards may
  // still have other tests' events after it.)
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("cb-", id), id, 4, "c").ok());
  auto events = WatchFor(server_->address(), "", id, 1);
  ASSERT_EQ(events.size(), 1u);
  grpc::ClientContext caught_up;
  caught_up.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  req.set_cursor(events[0].cursor);
  auto open = stub->WatchInventoryEvents(&caught_up, req);
  while (open->Read(&msg)) EXPECT_NE(msg.event().product_id(), id);
  EXPECT_EQ(open->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

// ------------------------------------------------- audit trail, pagination

TEST_F(StockAdminTest, AuditTrailRecordsWhoWhyBeforeAfter) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  ASSERT_TRUE(Adjust(id, 5, std::nullopt, "", "sess-1", nullptr,
                     "alice@warehouse").ok());
  ASSERT_TRUE(Adjust(id, std::nullopt, 12, "", "", nullptr, "").ok());
  v1::ListStockAdjustmentsRequest req;
  req.set_product_id(id);
  v1::ListStockAdjustmentsResponse resp;
  auto ctx = ContextWithTimeout();
  ASSERT_TRUE(stub_->ListStockAdjustments(ctx.get(), req, &resp).ok());
  ASSERT_EQ(resp.stock_adjustments_size(), 2);
  const auto& a = resp.stock_adjustments(0);
  EXPECT_EQ(a.actor(), "alice@warehouse");
  EXPECT_EQ(a.reason(), v1::STOCK_ADJUSTMENT_REASON_CORRECTION);
  EXPECT_EQ(a.total_before(), 10);
  EXPECT_EQ(a.total_after(), 15);
  EXPECT_EQ(a.session_id(), "sess-1");
  EXPECT_GT(a.create_time().seconds(), 0);
  const auto& b = resp.stock_adjustments(1);
  EXPECT_EQ(b.total_before(), 15);
  EXPECT_EQ(b.total_after(), 12);
  EXPECT_THAT(b.actor(), ::testing::StartsWith("peer:"));
  EXPECT_TRUE(resp.next_page_token().empty());
}

// Pages through ListReservations (no filter: every shard) and returns the
// reservation ids, checking each page's size.
std::vector<std::string> PageAll(v1::InventoryService::Stub& stub,
                                 int page_size, int status, int* pages) {
  std::vector<std::string> ids;
  std::string token;
  *pages = 0;
  do {
    v1::ListReservationsRequest req;
    req.set_page_size(page_size);
    req.set_page_token(token);
    req.set_status(static_cast<v1::ReservationStatus>(status));
    v1::ListReservationsResponse resp;
    auto ctx = ContextWithTimeout();
    grpc::Status s = stub.ListReservations(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok()) break;
    EXPECT_LE(resp.reservations_size(), page_size);
    for (const auto& r : resp.reservations()) ids.push_back(r.reservation_id());
    token = resp.next_page_token();
    ++*pages;
  } while (!token.empty() && *pages < 10000);
  return ids;
}

TEST_F(StockAdminTest, PaginationAcrossThreeShards) {
  // Reservations on every shard.
  for (int i = 0; i < 9; ++i) {
    const int64_t id = NewProductId();
    ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
    for (int k = 0; k < 2 + i % 3; ++k) {
      ASSERT_TRUE(Reserve(*stub_, absl::StrCat("page-", id, "-", k), id, 1, "c")
                      .ok());
    }
  }
  int64_t expected = 0;
  for (int s = 0; s < kShards; ++s) {
    expected += QueryInt(cluster_->dsn(s), "SELECT count(*) FROM reservations");
  }
  for (int page_size : {1, 7, 1000}) {
    SCOPED_TRACE(page_size);
    int pages = 0;
    std::vector<std::string> ids = PageAll(*stub_, page_size, 0, &pages);
    EXPECT_EQ(static_cast<int64_t>(ids.size()), expected);
    std::set<std::string> unique(ids.begin(), ids.end());
    EXPECT_EQ(unique.size(), ids.size()) << "a reservation appeared twice";
    EXPECT_GE(pages, static_cast<int>((expected + page_size - 1) / page_size));
  }
  // A status filter pages too, and only returns that status.
  int pages = 0;
  int64_t pending = 0;
  for (int s = 0; s < kShards; ++s) {
    pending += QueryInt(cluster_->dsn(s),
                        "SELECT count(*) FROM reservations WHERE status = 1");
  }
  EXPECT_EQ(static_cast<int64_t>(PageAll(*stub_, 7, 1, &pages).size()),
            pending);
}

TEST_F(StockAdminTest, PageTokensAreCheckedAgainstTheirFilters) {
  v1::ListReservationsRequest req;
  req.set_page_size(1);
  v1::ListReservationsResponse resp;
  auto ctx = ContextWithTimeout();
  ASSERT_TRUE(stub_->ListReservations(ctx.get(), req, &resp).ok());
  ASSERT_FALSE(resp.next_page_token().empty());
  // Same token, other filter.
  req.set_page_token(resp.next_page_token());
  req.set_status(v1::RESERVATION_STATUS_PURCHASED);
  auto ctx2 = ContextWithTimeout();
  ExpectError(stub_->ListReservations(ctx2.get(), req, &resp),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
  req.set_page_token("not-a-token");
  auto ctx3 = ContextWithTimeout();
  ExpectError(stub_->ListReservations(ctx3.get(), req, &resp),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
  req.set_page_token("");
  req.set_page_size(1001);
  auto ctx4 = ContextWithTimeout();
  ExpectError(stub_->ListReservations(ctx4.get(), req, &resp),
              grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT");
}

// ---------------------------------------------------------- reconciliation

TEST_F(StockAdminTest, VerifyInventoryReportsACorruptedCounter) {
  const int64_t id = NewProductId();
  ASSERT_TRUE(CreateProduct(*stub_, id, 10).ok());
  ASSERT_TRUE(Reserve(*stub_, absl::StrCat("drift-", id), id, 2, "c").ok());
  v1::VerifyInventoryRequest req;
  v1::VerifyInventoryResponse clean;
  auto ctx = ContextWithTimeout();
  ASSERT_TRUE(admin_->VerifyInventory(ctx.get(), req, &clean).ok());
  EXPECT_EQ(clean.drifts_size(), 0);
  EXPECT_GT(clean.products_checked(), 0);
  EXPECT_EQ(clean.unreachable_shards_size(), 0);
  // Corrupt the counter behind the service's back.
  Exec(ShardDsn(id), absl::StrCat("UPDATE products SET reserved_quantity = 5 "
                                  "WHERE product_id = ", id));
  v1::VerifyInventoryResponse dirty;
  auto ctx2 = ContextWithTimeout();
  ASSERT_TRUE(admin_->VerifyInventory(ctx2.get(), req, &dirty).ok());
  ASSERT_EQ(dirty.drifts_size(), 1);
  EXPECT_EQ(dirty.drifts(0).product_id(), id);
  EXPECT_EQ(dirty.drifts(0).shard(), id % kShards);
  EXPECT_EQ(dirty.drifts(0).field(), "reserved_quantity");
  EXPECT_EQ(dirty.drifts(0).recorded(), 5);
  EXPECT_EQ(dirty.drifts(0).computed(), 2);
  // Repair, so the invariant checks after this test hold.
  Exec(ShardDsn(id), absl::StrCat("UPDATE products SET reserved_quantity = 2 "
                                  "WHERE product_id = ", id));
}

}  // namespace
}  // namespace inventory::testing
