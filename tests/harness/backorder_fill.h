// The backorder-fill scenario shared by the group-transaction tests (db and
// executor): one batch in which a release frees stock for backorders that
// later requests of the same batch concern, and the answers it must get.
#ifndef INVENTORY_TESTS_HARNESS_BACKORDER_FILL_H_
#define INVENTORY_TESTS_HARNESS_BACKORDER_FILL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/store/shard_store.h"
#include "one_shard.h"

namespace inventory::testing {

// A BACKORDER product with stock 2 and three earlier holds: P1 of 2 (covered),
// P2 and P3 of 1 each (backordered). The batch:
//   release P1   frees 2 units: one at a time, P2 and P3 are filled now;
//   commit P2    so P2 is sold with nothing backordered;
//   reserve Q 1  no stock left: Q is backordered;
//   release P3   frees P3's unit (no longer backordered): Q is filled;
//   replay P2's reserve: PURCHASED, nothing backordered.
struct BackorderFill {
  int64_t product = 0;
  std::vector<ReservationRecord> prior;  // P1, P2, P3
  std::vector<ReservationOp> ops;

  // Creates the product and the holds; `tag` makes the request ids unique.
  static BackorderFill Build(ShardStore& store, int64_t product,
                             const std::string& tag) {
    BackorderFill s;
    s.product = product;
    NewProduct p;
    p.product_id = product;
    p.total_quantity = 2;
    p.stock_policy = StockPolicy::kBackorder;
    EXPECT_TRUE(store.CreateProduct(p).ok());
    const std::string rid = absl::StrCat(tag, product, "-");
    for (auto [name, quantity] :
         {std::pair<const char*, int64_t>{"P1", 2}, {"P2", 1}, {"P3", 1}}) {
      auto r = store.Reserve(ReserveOp(rid + name, product, quantity).reserve);
      EXPECT_TRUE(r.ok()) << r.status();
      if (r.ok()) s.prior.push_back(r->reservation);
    }
    if (s.prior.size() != 3) return s;
    EXPECT_EQ(s.prior[1].backordered_quantity, 1);
    EXPECT_EQ(s.prior[2].backordered_quantity, 1);
    s.ops = {
        RowOp(ReservationOp::Kind::kRelease, s.prior[0]),
        RowOp(ReservationOp::Kind::kCommit, s.prior[1]),
        ReserveOp(rid + "Q", product, 1),
        RowOp(ReservationOp::Kind::kRelease, s.prior[2]),
        ReserveOp(rid + "P2", product, 1),
    };
    return s;
  }

  // What one request at a time answers: outcome, status, backordered units.
  static std::vector<std::string> Expected() {
    return {"OK RELEASED bo=0", "OK PURCHASED bo=0", "OK PENDING bo=1",
            "OK RELEASED bo=0", "OK(replayed) PURCHASED bo=0"};
  }

  // Answers as Expected() spells them: OutcomeNames, then for an answer
  // with a reservation its status and backordered units.
  static std::vector<std::string> Describe(
      const std::vector<absl::StatusOr<ReserveOutcome>>& answers) {
    std::vector<std::string> out = OutcomeNames(answers);
    for (size_t i = 0; i < answers.size(); ++i) {
      if (!answers[i].ok()) continue;
      const ReservationRecord& r = answers[i]->reservation;
      absl::StrAppend(&out[i], " ", ReservationStatusName(r.status),
                      " bo=", r.backordered_quantity);
    }
    return out;
  }

  // Afterwards: nothing is backordered, on the product or on any row (P1,
  // P2, P3 and Q's, `q_row`); Q is reserved and P2 sold.
  void ExpectFilled(ShardStore& store, int64_t q_row) const {
    auto p = store.GetProduct(product);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->reserved_quantity, 1);
    EXPECT_EQ(p->purchased_quantity, 1);
    EXPECT_EQ(p->backordered_quantity, 0);
    std::vector<int64_t> rows = {q_row};
    for (const auto& r : prior) rows.push_back(r.row_id);
    for (int64_t row : rows) {
      auto r = store.GetReservation(product, row);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->backordered_quantity, 0) << "row " << row;
    }
  }
};

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_BACKORDER_FILL_H_
