// Database tests of the fast path of a batch of reserves
// (ShardStore::GrantWholeProducts) on a real shard. They prove that:
//  * a product whose stock covers all its requests of the batch has them all
//    granted at once (one counter update, one PENDING row each), and a
//    product whose stock does not is left exactly as it was, so the group
//    transaction (ApplyBatch) decides its requests first come first served:
//    fast path + group transaction = one at a time;
//  * a batch the fast path cannot decide as a whole (a request id used
//    before, a release or commit, a request id twice) changes nothing at all;
//  * an unknown product or a BACKORDER product short of stock is left to the
//    group transaction, the rest is granted;
//  * a request id committed by another transaction while the statement runs
//    makes it give up cleanly (all nullopt, nothing applied), not fail;
//  * many connections running fast path + group transaction, the way the
//    executor does, never oversell, never lose or invent a row, and keep the
//    counters equal to the rows.
// The database's own CHECK (strict_never_oversold) would turn an oversell
// into an error, which the concurrency test counts as a failure; its
// reserved <= total, granted units == reserved and row-by-row comparisons
// catch an oversell, a lost row and a phantom grant on their own.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/store/shard_store.h"
#include "one_shard.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

using Granted = std::vector<std::optional<ReservationRecord>>;

// application_name of the stores whose lock waits the race tests watch.
constexpr char kRaceApp[] = "fast_path_pgtest_race";


// How many of `g` are set.
int CountGranted(const Granted& g) {
  return static_cast<int>(
      std::count_if(g.begin(), g.end(), [](const auto& r) { return r; }));
}

class FastPathTest : public OneShardTest<::testing::Test> {
 protected:
  ProductRecord Product(int64_t id) {
    auto p = store_->GetProduct(id);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *p : ProductRecord{};
  }

  // Unique per call: request ids never collide across tests.
  static std::string Rid(const std::string& tag) {
    return absl::StrCat("fp-", tag, "-", next_rid_++);
  }


  static int64_t Reservations() {
    return QueryInt(dsn(), "SELECT count(*) FROM reservations");
  }
  static int64_t RowsOf(const std::string& rid) {
    return QueryInt(dsn(), absl::StrCat(
                               "SELECT count(*) FROM reservations WHERE "
                               "request_id = '", rid, "'"));
  }

  // Expects `rec` to be the fresh PENDING hold `op` asked for.
  static void ExpectHoldOf(const std::optional<ReservationRecord>& rec,
                           const ReservationOp& op) {
    ASSERT_TRUE(rec.has_value()) << op.reserve.request_id << " not granted";
    EXPECT_GT(rec->row_id, 0);
    EXPECT_EQ(rec->request_id, op.reserve.request_id);
    EXPECT_EQ(rec->product_id, op.reserve.product_id);
    EXPECT_EQ(rec->quantity, op.reserve.quantity);
    EXPECT_EQ(rec->customer_id, op.reserve.customer_id);
    EXPECT_EQ(rec->status, ReservationStatus::kPending);
    EXPECT_EQ(rec->backordered_quantity, 0);
    // Held for hold_ttl from the database's now.
    EXPECT_NEAR(absl::ToDoubleSeconds(rec->expire_time - rec->create_time),
                absl::ToDoubleSeconds(op.reserve.hold_ttl), 1.0);
  }

  static std::atomic<int64_t> next_rid_;
};
std::atomic<int64_t> FastPathTest::next_rid_{1};

// Every product's stock covers its requests: the whole batch is granted, one
// counter update per product, one PENDING row per request.
TEST_F(FastPathTest, StockCoveringEverythingGrantsTheWholeBatch) {
  const int64_t a = MakeProduct(10);
  const int64_t b = MakeProduct(10);
  const int64_t c = MakeProduct(10);
  const ProductRecord a0 = Product(a), b0 = Product(b), c0 = Product(c);
  const std::vector<ReservationOp> ops = {
      ReserveOp(Rid("all"), a, 1), ReserveOp(Rid("all"), b, 2),
      ReserveOp(Rid("all"), a, 2), ReserveOp(Rid("all"), c, 4),
      ReserveOp(Rid("all"), a, 3),
  };
  auto granted = store_->GrantWholeProducts(ops);
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_EQ(granted->size(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) ExpectHoldOf((*granted)[i], ops[i]);

  const ProductRecord a1 = Product(a), b1 = Product(b), c1 = Product(c);
  EXPECT_EQ(a1.reserved_quantity, 6);
  EXPECT_EQ(b1.reserved_quantity, 2);
  EXPECT_EQ(c1.reserved_quantity, 4);
  // One update per product, however many of its requests.
  EXPECT_EQ(a1.version, a0.version + 1);
  EXPECT_EQ(b1.version, b0.version + 1);
  EXPECT_EQ(c1.version, c0.version + 1);
  for (const ReservationOp& op : ops) {
    EXPECT_EQ(RowsOf(op.reserve.request_id), 1) << op.reserve.request_id;
  }
  // The answers are the rows as stored.
  for (const auto& rec : *granted) {
    auto stored = store_->GetReservation(rec->product_id, rec->row_id);
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(stored->request_id, rec->request_id);
    EXPECT_EQ(stored->quantity, rec->quantity);
    EXPECT_EQ(stored->status, ReservationStatus::kPending);
  }
}

// A product short of stock for the sum of its requests is left untouched;
// the others are granted. The group transaction then decides the leftovers
// in order, which gives what one-at-a-time gives.
TEST_F(FastPathTest, ProductShortOfStockIsLeftForTheGroupTransaction) {
  const int64_t a = MakeProduct(5);
  const int64_t b = MakeProduct(100);
  const ProductRecord a0 = Product(a);
  const std::vector<ReservationOp> ops = {
      ReserveOp(Rid("short"), a, 3), ReserveOp(Rid("short"), b, 1),
      ReserveOp(Rid("short"), a, 3), ReserveOp(Rid("short"), b, 2),
  };
  auto granted = store_->GrantWholeProducts(ops);
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_EQ(granted->size(), ops.size());
  EXPECT_FALSE((*granted)[0].has_value());
  EXPECT_FALSE((*granted)[2].has_value());
  ExpectHoldOf((*granted)[1], ops[1]);
  ExpectHoldOf((*granted)[3], ops[3]);

  const ProductRecord a1 = Product(a);
  EXPECT_EQ(a1.reserved_quantity, a0.reserved_quantity);
  EXPECT_EQ(a1.version, a0.version);
  EXPECT_EQ(a1.update_time, a0.update_time);
  EXPECT_EQ(RowsOf(ops[0].reserve.request_id), 0);
  EXPECT_EQ(RowsOf(ops[2].reserve.request_id), 0);
  EXPECT_EQ(Product(b).reserved_quantity, 3);

  // The leftovers, in order: first come first served.
  auto rest = store_->ApplyBatch({ops[0], ops[2]});
  ASSERT_TRUE(rest.ok()) << rest.status();
  const std::vector<std::string> expected = {"OK", "OUT_OF_STOCK"};
  EXPECT_EQ(OutcomeNames(*rest), expected);
  EXPECT_EQ(Product(a).reserved_quantity, 3);

  // The same requests one at a time, on a twin product: the same answers.
  const int64_t twin = MakeProduct(5);
  std::vector<std::string> alone;
  for (int64_t q : {3, 3}) {
    auto r = store_->ApplyBatch({ReserveOp(Rid("short-twin"), twin, q)});
    ASSERT_TRUE(r.ok()) << r.status();
    alone.push_back(OutcomeNames(*r).front());
  }
  EXPECT_EQ(alone, expected);
  EXPECT_EQ(Product(twin).reserved_quantity, Product(a).reserved_quantity);
}

// One request id of the batch was used before: nothing at all is granted
// (the group transaction must answer that one as a replay or conflict).
TEST_F(FastPathTest, RequestIdUsedBeforeGrantsNothing) {
  const int64_t a = MakeProduct(10);
  const int64_t b = MakeProduct(10);
  const ReservationOp used = ReserveOp(Rid("used"), a, 1);
  auto first = store_->Reserve(used.reserve);
  ASSERT_TRUE(first.ok()) << first.status();
  const ProductRecord a0 = Product(a), b0 = Product(b);
  const int64_t rows0 = Reservations();

  // The same request again (a replay) and with other parameters (a
  // conflict): both leave the whole batch to the group transaction.
  ReservationOp conflict = used;
  conflict.reserve.quantity = 2;
  for (const ReservationOp& again : {used, conflict}) {
    const std::vector<ReservationOp> ops = {ReserveOp(Rid("used"), b, 1),
                                            again,
                                            ReserveOp(Rid("used"), a, 1)};
    auto granted = store_->GrantWholeProducts(ops);
    ASSERT_TRUE(granted.ok()) << granted.status();
    ASSERT_EQ(granted->size(), ops.size());
    EXPECT_EQ(CountGranted(*granted), 0);
    EXPECT_EQ(Reservations(), rows0);
    for (const ProductRecord& before : {a0, b0}) {
      const ProductRecord now = Product(before.product_id);
      EXPECT_EQ(now.reserved_quantity, before.reserved_quantity);
      EXPECT_EQ(now.version, before.version);
    }
  }
  // The group transaction answers it as the replay it is.
  auto replay = store_->ApplyBatch({used});
  ASSERT_TRUE(replay.ok()) << replay.status();
  ASSERT_TRUE(replay->front().ok()) << replay->front().status();
  EXPECT_TRUE(replay->front()->replayed);
  EXPECT_EQ(replay->front()->reservation.row_id, first->reservation.row_id);
}

// Releases and commits are left to the group transaction (the hold stays
// PENDING here) while the reserves around them are granted; a request id used
// twice leaves every request of the products it names (changing nothing of
// them), and the other products are still granted.
TEST_F(FastPathTest, ReleaseCommitOrDuplicateRequestIdLeaveTheirProducts) {
  const int64_t a = MakeProduct(10);
  const int64_t b = MakeProduct(10);
  const int64_t c = MakeProduct(10);
  auto held = store_->Reserve(ReserveOp(Rid("mixed"), a, 2).reserve);
  ASSERT_TRUE(held.ok()) << held.status();
  const ReservationRecord hold = held->reservation;
  auto row_op = [&](ReservationOp::Kind kind) {
    ReservationOp op;
    op.kind = kind;
    op.product_id = hold.product_id;
    op.row_id = hold.row_id;
    return op;
  };
  const std::string twice = Rid("mixed");
  const std::string both = Rid("mixed");
  struct Case {
    std::vector<ReservationOp> ops;
    std::vector<bool> granted;  // per op
    int64_t left_out;           // a product that must stay untouched
  };
  const std::vector<Case> cases = {
      // A release of A's hold is left; the reserves of A and B granted.
      {{ReserveOp(Rid("mixed"), b, 1), ReserveOp(Rid("mixed"), a, 1),
        row_op(ReservationOp::Kind::kRelease)},
       {true, true, false},
       c},
      // A commit of A's hold: the same.
      {{row_op(ReservationOp::Kind::kCommit), ReserveOp(Rid("mixed"), a, 1),
        ReserveOp(Rid("mixed"), b, 1)},
       {false, true, true},
       c},
      // One request id twice on B: B is left, A granted.
      {{ReserveOp(twice, b, 1), ReserveOp(Rid("mixed"), a, 1),
        ReserveOp(twice, b, 1), ReserveOp(Rid("mixed"), b, 1)},
       {false, true, false, false},
       b},
      // One request id on B and on C (a conflict): both left, A granted.
      {{ReserveOp(both, b, 1), ReserveOp(both, c, 1),
        ReserveOp(Rid("mixed"), a, 1)},
       {false, false, true},
       c},
  };
  for (const Case& k : cases) {
    const ProductRecord before = Product(k.left_out);
    const int64_t rows_before = Reservations();
    auto granted = store_->GrantWholeProducts(k.ops);
    ASSERT_TRUE(granted.ok()) << granted.status();
    ASSERT_EQ(granted->size(), k.ops.size());
    int64_t n = 0;
    for (size_t i = 0; i < k.ops.size(); ++i) {
      EXPECT_EQ((*granted)[i].has_value(), k.granted[i]) << i;
      if (k.granted[i]) {
        ExpectHoldOf((*granted)[i], k.ops[i]);
        ++n;
      }
    }
    EXPECT_EQ(Reservations(), rows_before + n);
    const ProductRecord now = Product(k.left_out);
    EXPECT_EQ(now.reserved_quantity, before.reserved_quantity);
    EXPECT_EQ(now.purchased_quantity, before.purchased_quantity);
    EXPECT_EQ(now.version, before.version);
    auto still = store_->GetReservation(hold.product_id, hold.row_id);
    ASSERT_TRUE(still.ok()) << still.status();
    EXPECT_EQ(still->status, ReservationStatus::kPending);
  }
  EXPECT_EQ(RowsOf(twice), 0);
  EXPECT_EQ(RowsOf(both), 0);
  // The hold of 2, plus A's four grants and B's two.
  EXPECT_EQ(Product(a).reserved_quantity, 2 + 4);
  EXPECT_EQ(Product(b).reserved_quantity, 2);
  EXPECT_EQ(Product(c).reserved_quantity, 0);
}

// A mixed batch decided as the executor does (fast path, then the group
// transaction for what it left, in order) gets the outcomes and counters of
// the same requests one at a time, on a twin pair of products: Q's reserves
// fit and go through the fast path; P's do not (one is refused until the
// release in the batch frees a unit), so P's requests and the release are
// decided by the group transaction, in order.
TEST_F(FastPathTest, MixedBatchThroughBothPathsDecidesLikeOneAtATime) {
  struct Twin {
    int64_t p, q;
    std::vector<ReservationOp> ops;
  };
  auto make = [&]() {
    Twin t{MakeProduct(3), MakeProduct(6), {}};
    auto hold = store_->Reserve(ReserveOp(Rid("twin"), t.p, 1).reserve);
    EXPECT_TRUE(hold.ok()) << hold.status();
    ReservationOp release;
    release.kind = ReservationOp::Kind::kRelease;
    release.product_id = t.p;
    release.row_id = hold.ok() ? hold->reservation.row_id : 0;
    t.ops = {ReserveOp(Rid("twin"), t.q, 2), ReserveOp(Rid("twin"), t.p, 2),
             ReserveOp(Rid("twin"), t.p, 1), ReserveOp(Rid("twin"), t.q, 3),
             release,
             ReserveOp(Rid("twin"), t.p, 1), ReserveOp(Rid("twin"), t.q, 1)};
    return t;
  };
  const Twin batched = make();
  const Twin single = make();

  // As the executor: the fast path, then the rest in order.
  std::vector<absl::StatusOr<ReserveOutcome>> got(batched.ops.size());
  auto granted = store_->GrantWholeProducts(batched.ops);
  ASSERT_TRUE(granted.ok()) << granted.status();
  std::vector<size_t> rest;
  std::vector<ReservationOp> rest_ops;
  for (size_t i = 0; i < batched.ops.size(); ++i) {
    if ((*granted)[i].has_value()) {
      got[i] = ReserveOutcome{*(*granted)[i], false};
    } else {
      rest.push_back(i);
      rest_ops.push_back(batched.ops[i]);
    }
  }
  EXPECT_EQ(rest, (std::vector<size_t>{1, 2, 4, 5}))
      << "Q through the fast path, P and the release through the group "
         "transaction";
  auto decided = store_->ApplyBatch(rest_ops);
  ASSERT_TRUE(decided.ok()) << decided.status();
  for (size_t k = 0; k < rest.size(); ++k) got[rest[k]] = (*decided)[k];

  std::vector<absl::StatusOr<ReserveOutcome>> alone;
  for (const ReservationOp& op : single.ops) {
    auto r = store_->ApplyBatch({op});
    ASSERT_TRUE(r.ok()) << r.status();
    alone.push_back(r->front());
  }
  const std::vector<std::string> expected = {
      "OK", "OK", "OUT_OF_STOCK", "OK", "OK", "OK", "OK"};
  EXPECT_EQ(OutcomeNames(got), expected);
  EXPECT_EQ(OutcomeNames(alone), expected);
  for (auto [a, b] : {std::pair{batched.p, single.p}, {batched.q, single.q}}) {
    const ProductRecord x = Product(a), y = Product(b);
    EXPECT_EQ(x.reserved_quantity, y.reserved_quantity) << a;
    EXPECT_EQ(x.purchased_quantity, y.purchased_quantity) << a;
  }
  EXPECT_EQ(Product(batched.p).reserved_quantity, 3);
  EXPECT_EQ(Product(batched.q).reserved_quantity, 6);
}

// An unknown product's request is left to the group transaction (which
// answers PRODUCT_NOT_FOUND); the others are granted.
TEST_F(FastPathTest, UnknownProductIsLeftTheOthersGranted) {
  const int64_t known = MakeProduct(10);
  const int64_t unknown = NewProductId() + 1000000;
  const std::vector<ReservationOp> ops = {ReserveOp(Rid("unk"), unknown, 1),
                                          ReserveOp(Rid("unk"), known, 2)};
  auto granted = store_->GrantWholeProducts(ops);
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_EQ(granted->size(), 2u);
  EXPECT_FALSE((*granted)[0].has_value());
  ExpectHoldOf((*granted)[1], ops[1]);
  EXPECT_EQ(Product(known).reserved_quantity, 2);
  EXPECT_EQ(RowsOf(ops[0].reserve.request_id), 0);

  auto rest = store_->ApplyBatch({ops[0]});
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(OutcomeNames(*rest), std::vector<std::string>{"PRODUCT_NOT_FOUND"});
}

// A call deadline set before the store has connected bounds the first
// statement of the connection it opens: a grant blocked on a row lock gives
// up at the call's deadline, not at the configured 30 s bound. (A worker's
// first batch used to wait for the configured bound.)
TEST_F(FastPathTest, CallDeadlineBoundsTheFirstStatementOfANewConnection) {
  const int64_t locked = MakeProduct(10);
  pqxx::connection raw(dsn());
  pqxx::work holder(raw);
  holder.exec(absl::StrCat("SELECT 1 FROM products WHERE product_id = ",
                           locked, " FOR UPDATE"));
  ShardStoreOptions options;
  options.statement_timeout = absl::Seconds(30);
  options.lock_timeout = absl::Seconds(30);
  ShardStore fresh(0, Dsn(dsn()), options);
  const absl::Time start = absl::Now();
  fresh.SetCallDeadline(start + absl::Milliseconds(500));
  auto granted = fresh.GrantWholeProducts({ReserveOp(Rid("fresh"), locked, 1)});
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(granted.ok());
  EXPECT_EQ(ErrorReason(granted.status()), reason::kDeadlineExceeded)
      << granted.status();
  EXPECT_LT(took, absl::Seconds(5)) << absl::FormatDuration(took);
  holder.abort();
  EXPECT_EQ(Product(locked).reserved_quantity, 0);
}

// A BACKORDER product is granted by the fast path only from stock (nothing
// backordered); short of stock it is left to the group transaction, which
// backorders what stock does not cover.
TEST_F(FastPathTest, BackorderProductIsGrantedOnlyFromStock) {
  const int64_t enough = MakeProduct(5, StockPolicy::kBackorder);
  const int64_t shortp = MakeProduct(2, StockPolicy::kBackorder);
  const ProductRecord short0 = Product(shortp);
  const std::vector<ReservationOp> ops = {
      ReserveOp(Rid("bo"), enough, 2), ReserveOp(Rid("bo"), shortp, 3),
      ReserveOp(Rid("bo"), enough, 3)};
  auto granted = store_->GrantWholeProducts(ops);
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_EQ(granted->size(), 3u);
  ExpectHoldOf((*granted)[0], ops[0]);
  ExpectHoldOf((*granted)[2], ops[2]);
  EXPECT_FALSE((*granted)[1].has_value());
  const ProductRecord e1 = Product(enough);
  EXPECT_EQ(e1.reserved_quantity, 5);
  EXPECT_EQ(e1.backordered_quantity, 0);
  const ProductRecord s1 = Product(shortp);
  EXPECT_EQ(s1.reserved_quantity, short0.reserved_quantity);
  EXPECT_EQ(s1.version, short0.version);

  auto rest = store_->ApplyBatch({ops[1]});
  ASSERT_TRUE(rest.ok()) << rest.status();
  ASSERT_TRUE(rest->front().ok()) << rest->front().status();
  EXPECT_EQ(rest->front()->reservation.backordered_quantity, 1);
  EXPECT_EQ(Product(shortp).backordered_quantity, 1);
}

// The race on a request id: another transaction inserts request id X
// (uncommitted) while the fast path runs a batch holding X; it commits while
// the fast path waits. The fast path must give up on the whole batch
// (all nullopt, no error, nothing applied), and the group transaction then
// answers X as the replay / conflict it is. If the other transaction rolls
// back instead, the batch is granted.
enum class RaceKind {
  // The other transaction also holds X's product (counters bumped): the
  // fast path waits on the product's row lock.
  kSameProduct,
  // It holds X for another product: the fast path waits on the unique
  // index of request_id.
  kOtherProduct,
  // As kOtherProduct, but the other transaction rolls back.
  kOtherRollsBack,
};

// gtest output: the case's name instead of raw bytes.
void PrintTo(RaceKind kind, std::ostream* os) {
  switch (kind) {
    case RaceKind::kSameProduct: *os << "SameProduct"; return;
    case RaceKind::kOtherProduct: *os << "OtherProduct"; return;
    case RaceKind::kOtherRollsBack: *os << "OtherRollsBack"; return;
  }
  *os << "RaceKind(" << static_cast<int>(kind) << ")";
}

class FastPathRaceTest : public FastPathTest,
                         public ::testing::WithParamInterface<RaceKind> {};

TEST_P(FastPathRaceTest, RequestIdTakenMeanwhileGivesUpCleanly) {
  const RaceKind kind = GetParam();
  const int64_t p = MakeProduct(10);
  const int64_t q = MakeProduct(10);
  const int64_t r = MakeProduct(10);
  // The product the other transaction's row belongs to.
  const int64_t theirs = kind == RaceKind::kSameProduct ? p : r;
  const std::string x = Rid("race-x");
  const std::string y = Rid("race-y");
  const ProductRecord p0 = Product(p), q0 = Product(q), r0 = Product(r);

  pqxx::connection raw(dsn());
  auto other = std::make_unique<pqxx::work>(raw);
  other->exec(absl::StrCat(
      "INSERT INTO reservations (product_id, quantity, status, customer_id, "
      "request_id, expire_time) VALUES (", theirs, ", 2, 1, 'cust', ",
      other->quote(x), ", now() + interval '1 hour')"));
  other->exec(absl::StrCat(
      "UPDATE products SET reserved_quantity = reserved_quantity + 2, "
      "version = version + 1 WHERE product_id = ", theirs));

  const std::vector<ReservationOp> ops = {ReserveOp(x, p, 2),
                                          ReserveOp(y, q, 1)};
  ShardStoreOptions options;
  options.application_name = kRaceApp;
  options.lock_timeout = absl::Seconds(30);
  options.statement_timeout = absl::Seconds(30);
  ShardStore racer(0, Dsn(dsn()), options);
  absl::StatusOr<Granted> granted = absl::UnknownError("not run");
  std::thread call([&] { granted = racer.GrantWholeProducts(ops); });
  // It waits for the other transaction (row lock or unique index).
  const bool waiting = PollUntil([&] {
    return QueryInt(dsn(), absl::StrCat(
                               "SELECT count(*) FROM pg_stat_activity WHERE "
                               "application_name = '", kRaceApp,
                               "' AND wait_event_type = 'Lock'")) > 0;
  });
  if (kind == RaceKind::kOtherRollsBack) {
    other->abort();
  } else {
    other->commit();
  }
  other.reset();
  call.join();
  ASSERT_TRUE(waiting) << "the fast path never waited for the other "
                          "transaction";
  ASSERT_TRUE(granted.ok()) << granted.status();
  ASSERT_EQ(granted->size(), ops.size());

  if (kind == RaceKind::kOtherRollsBack) {
    ExpectHoldOf((*granted)[0], ops[0]);
    ExpectHoldOf((*granted)[1], ops[1]);
    EXPECT_EQ(Product(p).reserved_quantity, p0.reserved_quantity + 2);
    EXPECT_EQ(Product(q).reserved_quantity, q0.reserved_quantity + 1);
    EXPECT_EQ(Product(r).version, r0.version);
    return;
  }
  EXPECT_EQ(CountGranted(*granted), 0);
  // Only the other transaction's change is there: no Y, nothing on Q.
  EXPECT_EQ(RowsOf(x), 1);
  EXPECT_EQ(RowsOf(y), 0);
  const ProductRecord p1 = Product(p), q1 = Product(q);
  EXPECT_EQ(p1.reserved_quantity,
            p0.reserved_quantity + (theirs == p ? 2 : 0));
  EXPECT_EQ(p1.version, p0.version + (theirs == p ? 1 : 0));
  EXPECT_EQ(q1.reserved_quantity, q0.reserved_quantity);
  EXPECT_EQ(q1.version, q0.version);
  EXPECT_EQ(CounterDrift(dsn()), 0);

  // The group transaction then decides the batch one at a time.
  auto rest = store_->ApplyBatch(ops);
  ASSERT_TRUE(rest.ok()) << rest.status();
  const std::vector<std::string> expected = {
      kind == RaceKind::kSameProduct ? "OK(replayed)" : "REQUEST_ID_CONFLICT",
      "OK"};
  EXPECT_EQ(OutcomeNames(*rest), expected);
}

INSTANTIATE_TEST_SUITE_P(
    Races, FastPathRaceTest,
    ::testing::Values(RaceKind::kSameProduct, RaceKind::kOtherProduct,
                      RaceKind::kOtherRollsBack),
    [](const ::testing::TestParamInfo<RaceKind>& info) -> std::string {
      switch (info.param) {
        case RaceKind::kSameProduct: return "SameProduct";
        case RaceKind::kOtherProduct: return "OtherProduct";
        case RaceKind::kOtherRollsBack: return "OtherRollsBack";
      }
      return "Unknown";
    });

// Many connections doing exactly what the executor does with a batch (fast
// path, then the group transaction for what it left) on a few hot products:
// no STRICT product is oversold, every granted answer has exactly its row
// and no row lacks an answer, the counters equal the rows, backorders are
// exactly the units beyond stock.
TEST_F(FastPathTest, ConcurrentFastPathAndGroupTransactionsStayExact) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 3;
  constexpr int kBatchesPerThread = 20;
  int64_t fast_total = 0;
  int64_t slow_total = 0;
  int64_t aborted_total = 0;
  // The store retries a deadlock silently, so the lock order is checked
  // where PostgreSQL counts them.
  const std::string kDeadlocks =
      "SELECT deadlocks FROM pg_stat_database WHERE datname = "
      "current_database()";
  const int64_t deadlocks_before = QueryInt(dsn(), kDeadlocks);
  // The workers' sessions, by their application_name.
  ShardStoreOptions worker_options;
  worker_options.application_name = "fp-conc-worker";
  const std::string kWorkerSessions = absl::StrCat(
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = '",
      worker_options.application_name, "'");
  for (int round = 0; round < kRounds; ++round) {
    const std::vector<int64_t> products = {
        MakeProduct(50), MakeProduct(50),
        MakeProduct(50, StockPolicy::kBackorder)};
    absl::Mutex mu;
    // request id -> (product, quantity) of every granted answer.
    std::map<std::string, std::pair<int64_t, int64_t>> granted;
    std::vector<std::string> errors;
    std::atomic<int64_t> fast{0}, slow{0}, aborted{0}, replayed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ShardStore store(0, Dsn(dsn()), worker_options);
        std::mt19937 rng(round * 100 + t);
        auto grant = [&](const ReservationOp& op, const ReservationRecord& r) {
          absl::MutexLock lock(&mu);
          if (r.request_id != op.reserve.request_id ||
              r.product_id != op.reserve.product_id ||
              r.quantity != op.reserve.quantity ||
              !granted.emplace(r.request_id,
                               std::make_pair(r.product_id, r.quantity))
                   .second) {
            errors.push_back(absl::StrCat("wrong or second answer for ",
                                          op.reserve.request_id));
          }
        };
        auto error = [&](const absl::Status& s) {
          if (s.code() == absl::StatusCode::kAborted &&
              ErrorReason(s) == reason::kConcurrentUpdate) {
            ++aborted;
            return;
          }
          absl::MutexLock lock(&mu);
          errors.push_back(s.ToString());
        };
        for (int b = 0; b < kBatchesPerThread; ++b) {
          std::vector<ReservationOp> ops;
          const int n = 1 + rng() % 8;
          for (int k = 0; k < n; ++k) {
            ops.push_back(ReserveOp(absl::StrCat("fp-conc-", round, "-", t,
                                                 "-", b, "-", k),
                                    products[rng() % products.size()],
                                    1 + rng() % 3));
          }
          // The executor's RunBatch: fast path, then the rest (or, if the
          // fast path failed, everything) through the group transaction.
          std::vector<ReservationOp> rest;
          auto fast_answer = store.GrantWholeProducts(ops);
          if (fast_answer.ok()) {
            for (size_t i = 0; i < ops.size(); ++i) {
              if ((*fast_answer)[i].has_value()) {
                ++fast;
                grant(ops[i], *(*fast_answer)[i]);
              } else {
                rest.push_back(ops[i]);
              }
            }
          } else {
            error(fast_answer.status());
            rest = ops;
          }
          if (rest.empty()) continue;
          auto answers = store.ApplyBatch(rest);
          if (!answers.ok()) {
            error(answers.status());
            continue;
          }
          for (size_t i = 0; i < rest.size(); ++i) {
            const auto& a = (*answers)[i];
            if (a.ok() && a->replayed) {
              // Would mean the fast path applied a request it reported
              // as not granted.
              ++replayed;
            } else if (a.ok()) {
              ++slow;
              grant(rest[i], a->reservation);
            } else if (ErrorReason(a.status()) != reason::kOutOfStock) {
              absl::MutexLock lock(&mu);
              errors.push_back(a.status().ToString());
            }
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: "
                                << (errors.empty() ? "" : errors.front());
    EXPECT_EQ(replayed.load(), 0);
    fast_total += fast.load();
    slow_total += slow.load();
    aborted_total += aborted.load();

    // The rows, as stored.
    std::map<std::string, std::pair<int64_t, int64_t>> rows;
    std::map<int64_t, int64_t> pending_units;
    {
      pqxx::connection c(dsn());
      pqxx::nontransaction tx(c);
      pqxx::result r = tx.exec(absl::StrCat(
          "SELECT request_id, product_id, quantity, status FROM reservations "
          "WHERE product_id IN (", products[0], ",", products[1], ",",
          products[2], ")"));
      for (const auto& row : r) {
        const auto product = row[1].as<int64_t>();
        const auto quantity = row[2].as<int64_t>();
        EXPECT_EQ(row[3].as<int>(), 1) << "a hold that is not PENDING";
        rows.emplace(row[0].as<std::string>(),
                     std::make_pair(product, quantity));
        pending_units[product] += quantity;
      }
    }
    // Every granted answer has its row and every row its answer.
    EXPECT_EQ(rows, granted);
    std::map<int64_t, int64_t> granted_units;
    for (const auto& [rid, pq] : granted) granted_units[pq.first] += pq.second;
    for (int64_t id : products) {
      const ProductRecord p = Product(id);
      EXPECT_EQ(p.reserved_quantity, granted_units[id]) << id;
      EXPECT_EQ(p.reserved_quantity, pending_units[id]) << id;
      if (p.stock_policy == StockPolicy::kStrict) {
        EXPECT_LE(p.reserved_quantity, p.total_quantity) << id;
        // Demand far exceeds stock: everything was sold.
        EXPECT_EQ(p.reserved_quantity, p.total_quantity) << id;
        EXPECT_EQ(p.backordered_quantity, 0) << id;
      } else {
        // Backordered: exactly the units beyond stock.
        EXPECT_EQ(p.backordered_quantity,
                  std::max<int64_t>(0, p.reserved_quantity - p.total_quantity))
            << id;
        EXPECT_EQ(p.backordered_quantity,
                  QueryInt(dsn(), absl::StrCat(
                                      "SELECT sum(backordered_quantity) FROM "
                                      "reservations WHERE product_id = ", id)))
            << id;
      }
    }
    EXPECT_EQ(CounterDrift(dsn()), 0);
  }
  // A backend flushes its statistics as it exits: wait until the workers'
  // backends (their stores are gone) have all exited.
  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(dsn(), kWorkerSessions) == 0;
  }, absl::Seconds(10))) << "the workers' sessions did not end";
  EXPECT_EQ(QueryInt(dsn(), kDeadlocks), deadlocks_before)
      << "batches deadlocked (and were retried): the lock order is broken";
  // Both paths were exercised; collisions are rare.
  EXPECT_GT(fast_total, 0);
  EXPECT_GT(slow_total, 0);
  EXPECT_LE(aborted_total, kRounds * kThreads * kBatchesPerThread / 20)
      << "too many CONCURRENT_UPDATE";
  std::printf("fast path granted %lld, group transaction %lld, aborted %lld\n",
              static_cast<long long>(fast_total),
              static_cast<long long>(slow_total),
              static_cast<long long>(aborted_total));
}

}  // namespace
}  // namespace inventory::testing
