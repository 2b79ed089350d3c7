// Database tests of the group transaction (ShardStore::ApplyBatch) on a real
// shard: one batch mixing a product's last units, duplicates of one request
// id, releases and commits decides each request exactly as one-at-a-time
// processing would, a backorder fill included; batches on several
// connections never deadlock or oversell.
#include <atomic>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/store/shard_store.h"
#include "backorder_fill.h"
#include "one_shard.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {
namespace {

class BatchTest : public OneShardTest<::testing::Test> {
 protected:
  // The same ops one at a time (each its own batch).
  std::vector<absl::StatusOr<ReserveOutcome>> OneAtATime(
      const std::vector<ReservationOp>& ops) {
    std::vector<absl::StatusOr<ReserveOutcome>> out;
    for (const auto& op : ops) {
      auto r = store_->ApplyBatch({op});
      EXPECT_TRUE(r.ok()) << r.status();
      out.push_back(r.ok() ? std::move(r->front())
                           : absl::StatusOr<ReserveOutcome>(r.status()));
    }
    return out;
  }

  // Decides `ops` as the executor does: a group transaction may decide only
  // a prefix (it stops where a backorder fill runs), and the rest goes to
  // the next. `calls` counts the group transactions.
  std::vector<absl::StatusOr<ReserveOutcome>> DecideAll(
      std::vector<ReservationOp> ops, int* calls) {
    std::vector<absl::StatusOr<ReserveOutcome>> out;
    *calls = 0;
    while (!ops.empty()) {
      auto r = store_->ApplyBatch(ops);
      ++*calls;
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok() || r->empty()) break;
      ops.erase(ops.begin(), ops.begin() + r->size());
      for (auto& a : *r) out.push_back(std::move(a));
    }
    return out;
  }

  // Builds the mixed scenario on a fresh product: stock 4, two earlier holds
  // of 1 (so 2 available), then the batch.
  std::vector<ReservationOp> MixedScenario(int64_t product,
                                           const std::string& tag) {
    NewProduct p;
    p.product_id = product;
    p.total_quantity = 4;
    EXPECT_TRUE(store_->CreateProduct(p).ok());
    auto r0 = store_->Reserve(ReserveOp(tag + "r0", product, 1).reserve);
    auto r1 = store_->Reserve(ReserveOp(tag + "r1", product, 1).reserve);
    EXPECT_TRUE(r0.ok() && r1.ok());
    ReservationRecord unknown = r0->reservation;
    unknown.row_id += 1000000;
    return {
        ReserveOp(tag + "A", product, 2),                          // last 2
        ReserveOp(tag + "B", product, 1),                          // none left
        RowOp(ReservationOp::Kind::kRelease, r0->reservation),     // frees 1
        ReserveOp(tag + "B2", product, 1),                         // takes it
        ReserveOp(tag + "A", product, 2),                          // duplicate
        ReserveOp(tag + "A", product, 3),                          // conflict
        RowOp(ReservationOp::Kind::kCommit, r1->reservation),      // sold
        RowOp(ReservationOp::Kind::kCommit, r0->reservation),      // released
        RowOp(ReservationOp::Kind::kRelease, r1->reservation),     // purchased
        ReserveOp(tag + "X", NewProductId() + 1000000, 1),         // no product
        RowOp(ReservationOp::Kind::kRelease, unknown),             // no row
        RowOp(ReservationOp::Kind::kCommit, r1->reservation),      // again OK
        RowOp(ReservationOp::Kind::kRelease, r0->reservation),     // again OK
    };
  }

};

TEST_F(BatchTest, OneMixedBatchDecidesLikeOneAtATime) {
  const int64_t batched = NewProductId();
  const int64_t single = NewProductId();
  std::vector<ReservationOp> ops = MixedScenario(batched, "b-");
  auto answers = store_->ApplyBatch(ops);
  ASSERT_TRUE(answers.ok()) << answers.status();
  ASSERT_EQ(answers->size(), ops.size());

  const std::vector<std::string> expected = {
      "OK",
      "OUT_OF_STOCK",
      "OK",
      "OK",
      "OK(replayed)",
      "REQUEST_ID_CONFLICT",
      "OK",
      "RESERVATION_NOT_PENDING",
      "RESERVATION_NOT_PENDING",
      "PRODUCT_NOT_FOUND",
      "RESERVATION_NOT_FOUND",
      "OK(replayed)",  // commit of a PURCHASED one: nothing changed
      "OK(replayed)",  // release of a RELEASED one: nothing changed
  };
  EXPECT_EQ(OutcomeNames(*answers), expected);
  // The out-of-stock answer says how many were left at that point: 0.
  std::string available;
  for (const auto& [k, v] : ErrorMetadataOf((*answers)[1].status())) {
    if (k == "available") available = v;
  }
  EXPECT_EQ(available, "0");
  // The duplicate replays the first's row.
  EXPECT_EQ((*answers)[4]->reservation.row_id, (*answers)[0]->reservation.row_id);
  auto p = store_->GetProduct(batched);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->reserved_quantity, 3);   // A (2) + B2 (1)
  EXPECT_EQ(p->purchased_quantity, 1);  // r1
  EXPECT_EQ(p->available(), 0);

  // The same requests one at a time give the same outcomes.
  std::vector<ReservationOp> again = MixedScenario(single, "s-");
  EXPECT_EQ(OutcomeNames(OneAtATime(again)), expected);
  auto q = store_->GetProduct(single);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->reserved_quantity, p->reserved_quantity);
  EXPECT_EQ(q->purchased_quantity, p->purchased_quantity);
}

// A replay answers with the reservation as it is at its turn in the batch:
// before a release or commit of the same row that comes later, after one
// that came earlier (as one request at a time would).
TEST_F(BatchTest, AReplaySeesTheBatchsEarlierReleaseOrCommitOfItsRow) {
  const int64_t product = MakeProduct(5);
  const std::string tag = absl::StrCat("replay-", product, "-");
  auto released = store_->Reserve(ReserveOp(tag + "r", product, 1).reserve);
  auto sold = store_->Reserve(ReserveOp(tag + "c", product, 1).reserve);
  ASSERT_TRUE(released.ok() && sold.ok());
  auto answers = store_->ApplyBatch({
      ReserveOp(tag + "r", product, 1),                           // PENDING
      RowOp(ReservationOp::Kind::kRelease, released->reservation),
      ReserveOp(tag + "r", product, 1),                           // RELEASED
      RowOp(ReservationOp::Kind::kCommit, sold->reservation),
      ReserveOp(tag + "c", product, 1),                           // PURCHASED
  });
  ASSERT_TRUE(answers.ok()) << answers.status();
  ASSERT_EQ(answers->size(), 5u);
  for (const auto& a : *answers) ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE((*answers)[0]->replayed);
  EXPECT_EQ((*answers)[0]->reservation.status, ReservationStatus::kPending);
  EXPECT_TRUE((*answers)[2]->replayed);
  EXPECT_EQ((*answers)[2]->reservation.status, ReservationStatus::kReleased);
  EXPECT_EQ((*answers)[2]->reservation.row_id, released->reservation.row_id);
  EXPECT_TRUE((*answers)[4]->replayed);
  EXPECT_EQ((*answers)[4]->reservation.status, ReservationStatus::kPurchased);
  // The same as the rows say afterwards.
  auto r = store_->GetReservation(product, released->reservation.row_id);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, ReservationStatus::kReleased);
}

// A release that frees stock for backorders: the later requests of the batch
// see the fill (see BackorderFill), as one at a time, and so do the rows.
// The group transaction stops after each of the two releases that fill.
TEST_F(BatchTest, ALaterRequestOfTheBatchSeesABackorderFill) {
  const BackorderFill batched =
      BackorderFill::Build(*store_, NewProductId(), "fill-b-");
  ASSERT_EQ(batched.ops.size(), 5u);
  int calls = 0;
  auto answers = DecideAll(batched.ops, &calls);
  EXPECT_EQ(BackorderFill::Describe(answers), BackorderFill::Expected());
  EXPECT_EQ(calls, 3);
  ASSERT_EQ(answers.size(), 5u);
  ASSERT_TRUE(answers[2].ok()) << answers[2].status();
  batched.ExpectFilled(*store_, answers[2]->reservation.row_id);

  const BackorderFill single =
      BackorderFill::Build(*store_, NewProductId(), "fill-s-");
  ASSERT_EQ(single.ops.size(), 5u);
  auto alone = OneAtATime(single.ops);
  EXPECT_EQ(BackorderFill::Describe(alone), BackorderFill::Expected());
  ASSERT_TRUE(alone[2].ok()) << alone[2].status();
  single.ExpectFilled(*store_, alone[2]->reservation.row_id);
}

// Two backorders of one batch share its create_time; the fill that covers
// one of them takes the first to arrive, whatever the request ids' order.
TEST_F(BatchTest, BackordersOfOneBatchAreFilledInArrivalOrder) {
  const int64_t product = MakeProduct(1, StockPolicy::kBackorder);
  const std::string tag = absl::StrCat("order-", product, "-");
  auto held = store_->Reserve(ReserveOp(tag + "p", product, 1).reserve);
  ASSERT_TRUE(held.ok()) << held.status();
  int calls = 0;
  auto answers = DecideAll(
      {
          ReserveOp(tag + "z", product, 1),  // first, backordered
          ReserveOp(tag + "a", product, 1),  // second, backordered
          RowOp(ReservationOp::Kind::kRelease, held->reservation),
      },
      &calls);
  ASSERT_EQ(answers.size(), 3u);
  for (const auto& a : answers) ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(answers[0]->reservation.backordered_quantity, 1);
  EXPECT_EQ(answers[1]->reservation.backordered_quantity, 1);
  auto first = store_->GetReservation(product, answers[0]->reservation.row_id);
  auto second = store_->GetReservation(product, answers[1]->reservation.row_id);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->backordered_quantity, 0) << "the first to arrive is filled";
  EXPECT_EQ(second->backordered_quantity, 1);
  auto after = store_->GetProduct(product);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->backordered_quantity, 1);
}

// A release that lets a backorder fill run ends the group transaction's
// statement only if a later request of the batch concerns the same product
// (migration 0010). Product X (BACKORDER, stock 1) has a covered hold and a
// backordered one, W. [release the covered hold, reserve Y, reserve Y] is
// decided in one statement, and W is filled all the same; [release, commit
// W, reserve Y] takes two, and the commit answers W filled, as one at a
// time would. Fails if every fill splits the batch (0008 alone: two
// statements for the first), or if none does (the commit would answer W
// still backordered).
TEST_F(BatchTest, AFillEndsTheStatementOnlyIfALaterRequestSeesIt) {
  for (const bool later_on_x : {false, true}) {
    SCOPED_TRACE(later_on_x ? "a later request on X" : "none on X");
    const int64_t x = MakeProduct(1, StockPolicy::kBackorder);
    const int64_t y = MakeProduct(10);
    const std::string tag = absl::StrCat("seen-", x, "-");
    auto covered = store_->Reserve(ReserveOp(tag + "c", x, 1).reserve);
    auto waiting = store_->Reserve(ReserveOp(tag + "w", x, 1).reserve);
    ASSERT_TRUE(covered.ok() && waiting.ok());
    ASSERT_EQ(waiting->reservation.backordered_quantity, 1);

    int calls = 0;
    auto answers = DecideAll(
        {
            RowOp(ReservationOp::Kind::kRelease, covered->reservation),
            later_on_x
                ? RowOp(ReservationOp::Kind::kCommit, waiting->reservation)
                : ReserveOp(tag + "next", y, 1),
            ReserveOp(tag + "y", y, 1),
        },
        &calls);
    ASSERT_EQ(answers.size(), 3u);
    for (const auto& a : answers) ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(calls, later_on_x ? 2 : 1);
    EXPECT_EQ(answers[0]->reservation.status, ReservationStatus::kReleased);
    EXPECT_EQ(answers[1]->reservation.status,
              later_on_x ? ReservationStatus::kPurchased
                         : ReservationStatus::kPending);
    EXPECT_EQ(answers[1]->reservation.backordered_quantity, 0);
    auto filled = store_->GetReservation(x, waiting->reservation.row_id);
    ASSERT_TRUE(filled.ok()) << filled.status();
    EXPECT_EQ(filled->backordered_quantity, 0) << "the waiting hold is filled";
    auto after = store_->GetProduct(x);
    ASSERT_TRUE(after.ok()) << after.status();
    EXPECT_EQ(after->backordered_quantity, 0);
    EXPECT_EQ(after->reserved_quantity, later_on_x ? 0 : 1);
    EXPECT_EQ(after->purchased_quantity, later_on_x ? 1 : 0);
  }
}

TEST_F(BatchTest, ExpiredHoldInABatchIsRefusedAndReturned) {
  const int64_t product = MakeProduct(5);
  ReservationOp short_hold = ReserveOp("exp-" + std::to_string(product),
                                       product, 2);
  short_hold.reserve.hold_ttl = absl::Seconds(1);
  short_hold.reserve.requested_ttl = absl::Seconds(1);
  auto held = store_->Reserve(short_hold.reserve);
  ASSERT_TRUE(held.ok());
  const std::string dsn = cluster_->dsn(0);
  for (int i = 0; i < 40 && QueryInt(dsn, absl::StrCat(
                                "SELECT count(*) FROM reservations WHERE id = ",
                                held->reservation.row_id,
                                " AND expire_time <= now()")) == 0;
       ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  auto answers = store_->ApplyBatch(
      {RowOp(ReservationOp::Kind::kCommit, held->reservation),
       ReserveOp("after-exp-" + std::to_string(product), product, 5)});
  ASSERT_TRUE(answers.ok());
  EXPECT_EQ(ErrorReason((*answers)[0].status()), "RESERVATION_NOT_PENDING");
  // Its 2 units came back in time for the next request of the same batch.
  EXPECT_TRUE((*answers)[1].ok()) << (*answers)[1].status();
}

TEST_F(BatchTest, ConcurrentBatchesNeverDeadlockOrOversell) {
  // Three products, four connections, each sending mixed batches that touch
  // the products in random order, with releases and commits of their own
  // earlier holds.
  std::vector<int64_t> products;
  for (int i = 0; i < 3; ++i) {
    products.push_back(MakeProduct(150));
  }
  std::atomic<int> granted{0};
  std::atomic<int> purchased{0};
  std::atomic<int> released{0};
  std::atomic<int> batch_errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      ShardStore store(0, Dsn(cluster_->dsn(0)));
      std::mt19937 rng(t);
      std::vector<ReservationRecord> mine;
      for (int b = 0; b < 40; ++b) {
        std::vector<ReservationOp> ops;
        for (int k = 0; k < 12; ++k) {
          const int pick = rng() % 10;
          if (pick < 7 || mine.empty()) {
            ops.push_back(ReserveOp(absl::StrCat("c-", t, "-", b, "-", k),
                                    products[rng() % 3], 1 + rng() % 2));
          } else {
            const ReservationRecord r = mine.back();
            mine.pop_back();
            ops.push_back(RowOp(pick < 9 ? ReservationOp::Kind::kRelease
                                         : ReservationOp::Kind::kCommit,
                                r));
          }
        }
        auto answers = store.ApplyBatch(ops);
        if (!answers.ok()) {
          ++batch_errors;
          continue;
        }
        for (size_t i = 0; i < ops.size(); ++i) {
          const auto& a = (*answers)[i];
          if (!a.ok()) continue;
          if (ops[i].kind == ReservationOp::Kind::kReserve) {
            ++granted;
            mine.push_back(a->reservation);
          } else if (ops[i].kind == ReservationOp::Kind::kRelease) {
            ++released;
          } else {
            ++purchased;
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(batch_errors.load(), 0);
  EXPECT_GT(granted.load(), 0);
  for (int64_t id : products) {
    auto p = store_->GetProduct(id);
    ASSERT_TRUE(p.ok());
    EXPECT_LE(p->reserved_quantity + p->purchased_quantity, p->total_quantity);
  }
}

}  // namespace
}  // namespace inventory::testing
