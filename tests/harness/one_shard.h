// A test fixture over one bootstrapped local shard, shared by every test of
// the binary; the requests of a batch and the outcome names of its answers.
// Base is ::testing::Test or ::testing::TestWithParam<T>.
#ifndef INVENTORY_TESTS_HARNESS_ONE_SHARD_H_
#define INVENTORY_TESTS_HARNESS_ONE_SHARD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/store/shard_store.h"
#include "poll_until.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory::testing {

// One shard (ShardCluster::Start(1)) for the whole binary, bootstrapped as
// shard 0 of 1; a fresh ShardStore per test; and after each test, the
// product counters must match the reservation rows (CounterDrift 0).
template <typename Base>
class OneShardTest : public Base {
 protected:
  static void SetUpTestSuite() {
    cluster_ = ShardCluster::Start(1).release();
    ASSERT_NE(cluster_, nullptr);
    ShardStore store(0, Dsn(cluster_->dsn(0)));
    ASSERT_TRUE(store.Bootstrap(1).ok());
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    store_ = std::make_unique<ShardStore>(0, Dsn(dsn()));
  }
  void TearDown() override {
    if (cluster_ != nullptr) {
      EXPECT_EQ(CounterDrift(dsn()), 0);
    }
  }

  static const std::string& dsn() { return cluster_->dsn(0); }

  // A product id not used before in this test binary.
  static int64_t NewProductId() { return next_product_id_++; }

  // A product with a fresh id and `total` units; returns its id.
  int64_t MakeProduct(int64_t total,
                      StockPolicy policy = StockPolicy::kStrict) {
    NewProduct p;
    p.product_id = NewProductId();
    p.total_quantity = total;
    p.stock_policy = policy;
    const absl::Status created = store_->CreateProduct(p).status();
    EXPECT_TRUE(created.ok()) << created;
    return p.product_id;
  }

  static inline ShardCluster* cluster_ = nullptr;
  static inline std::atomic<int64_t> next_product_id_{1};
  std::unique_ptr<ShardStore> store_;
};

// A reserve of `quantity` units of `product` for customer "cust", held 15
// minutes.
inline ReservationOp ReserveOp(const std::string& rid, int64_t product,
                               int64_t quantity) {
  ReservationOp op;
  op.kind = ReservationOp::Kind::kReserve;
  op.reserve.request_id = rid;
  op.reserve.product_id = product;
  op.reserve.quantity = quantity;
  op.reserve.customer_id = "cust";
  op.reserve.hold_ttl = absl::Minutes(15);
  return op;
}

// A release or commit (`kind`) of the reservation `r`.
inline ReservationOp RowOp(ReservationOp::Kind kind,
                           const ReservationRecord& r) {
  ReservationOp op;
  op.kind = kind;
  op.product_id = r.product_id;
  op.row_id = r.row_id;
  return op;
}

// The outcome of each answer: "OK", "OK(replayed)" or the ErrorInfo reason.
inline std::vector<std::string> OutcomeNames(
    const std::vector<absl::StatusOr<ReserveOutcome>>& answers) {
  std::vector<std::string> out;
  for (const auto& a : answers) {
    if (a.ok()) {
      out.push_back(a->replayed ? "OK(replayed)" : "OK");
    } else {
      out.push_back(ErrorReason(a.status()));
    }
  }
  return out;
}

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_ONE_SHARD_H_
