// Database tests of the shard store (src/store/shard_store.cc) against real
// PostgreSQL 15 shards started by deploy/local/shards.sh: migrations and the
// shard identity check, products, the reservation decision and its
// idempotency, release / commit, expiry by the database clock, concurrent
// callers, the database's own CHECK guard, listings, the plans and settings
// of the service's sessions, and an unreachable shard.
//
// One cluster of two shards serves every test of this binary. Each test uses
// fresh product ids and request ids, so the tests do not depend on their
// order. Every thread uses its own ShardStore (a store is single-threaded).

#include "inventory/store/shard_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/store/dsn.h"
#include "inventory/store/migrations.h"
#include "inventory/store/model.h"
#include "poll_until.h"
#include "shard_cluster.h"
#include "sql.h"

namespace inventory {

// gtest output: status names instead of raw bytes.
static void PrintTo(ReservationStatus s, std::ostream* os) {
  *os << ReservationStatusName(s);
}

namespace {

using ::inventory::testing::CounterDrift;
using ::inventory::testing::Exec;
using ::inventory::testing::HeldLock;
using ::inventory::testing::QueryInt;
using ::inventory::testing::ShardCluster;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------- helpers

// The ErrorInfo metadata of `s` as a map (the proto map has no order).
std::map<std::string, std::string> Meta(const absl::Status& s) {
  std::map<std::string, std::string> out;
  for (auto& [k, v] : ErrorMetadataOf(s)) out[k] = v;
  return out;
}

// Success when `s` has exactly `code` and ErrorInfo reason `reason`.
::testing::AssertionResult HasError(const absl::Status& s,
                                    absl::StatusCode code,
                                    const std::string& reason) {
  if (s.code() == code && ErrorReason(s) == reason) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "expected " << absl::StatusCodeToString(code) << " / " << reason
         << ", got " << s << " (reason '" << ErrorReason(s) << "')";
}

#define ASSERT_OK(expr)                                  \
  do {                                                   \
    const absl::Status _st = (expr);                     \
    ASSERT_TRUE(_st.ok()) << #expr << " -> " << _st;     \
  } while (0)
#define ASSERT_OK_AND_ASSIGN(lhs, expr)                                 \
  auto lhs##_or = (expr);                                               \
  ASSERT_TRUE(lhs##_or.ok()) << #expr << " -> " << lhs##_or.status();  \
  auto lhs = std::move(lhs##_or).value()

// Lets N threads start their work at the same moment.
class StartGate {
 public:
  explicit StartGate(int n) : waiting_(n) {}
  void ArriveAndWait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (--waiting_ <= 0) {
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [this] { return waiting_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_;
};

// Waits here give up after 15 s.
constexpr absl::Duration kPollTimeout = absl::Seconds(15);
using ::inventory::testing::PollUntil;

std::string IdList(const std::vector<int64_t>& ids) {
  return absl::StrJoin(ids, ",");
}

// ----------------------------------------------------------------- fixture

// What MakeLagging leaves: a BACKORDER product of 1 unit whose fill the
// trigger skipped. Hold A (covered) and hold B (backordered), then A released
// while another connection holds B's row, so the product could fill B and
// has not. B's row stays locked until `held` is released.
struct LateFillCase {
  ProductRecord product;
  ReservationRecord backordered;  // B
  std::unique_ptr<HeldLock> held;
};


class ShardStorePgTest : public ::testing::Test {
 protected:
  static constexpr int kShards = 2;

  static void SetUpTestSuite() {
    cluster_ = ShardCluster::Start(kShards);
    if (cluster_ == nullptr) return;
    for (int i = 0; i < kShards; ++i) {
      ShardStore store(i, Dsn(cluster_->dsn(i)));
      absl::Status s = store.Bootstrap(kShards);
      if (!s.ok()) {
        bootstrap_error_ = absl::StrCat("shard ", i, ": ", s.ToString());
        return;
      }
    }
  }
  static void TearDownTestSuite() { cluster_.reset(); }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr) << "the shards did not start";
    ASSERT_EQ(bootstrap_error_, "") << "Bootstrap of the shards failed";
  }

  static const std::string& DsnOf(int shard) { return cluster_->dsn(shard); }

  static std::unique_ptr<ShardStore> Store(int shard) {
    return std::make_unique<ShardStore>(shard, Dsn(DsnOf(shard)));
  }

  // A product id never used before in this process that routes to `shard`
  // (product_id mod 2 == shard).
  static int64_t NewProductId(int shard) {
    static std::atomic<int64_t> next{1};
    return next.fetch_add(1) * kShards + shard;
  }

  static std::string NewRequestId(const std::string& tag = "req") {
    static std::atomic<int64_t> next{1};
    return absl::StrCat(tag, "-", next.fetch_add(1));
  }

  // A schema of `shard`'s database that nothing has touched: a "fresh
  // shard" for migration tests. Returns a DSN whose search_path is it.
  static std::string FreshSchemaDsn(int shard) {
    static std::atomic<int> next{1};
    std::string schema =
        absl::StrCat("fresh_", getpid(), "_", next.fetch_add(1));
    Exec(DsnOf(shard), absl::StrCat("CREATE SCHEMA ", schema));
    return absl::StrCat(DsnOf(shard), " options='-c search_path=", schema,
                        "'");
  }

  static ReserveCommand Command(int64_t product_id, int64_t quantity,
                                absl::Duration ttl = absl::Minutes(10),
                                const std::string& customer = "cust-1") {
    ReserveCommand c;
    c.request_id = NewRequestId();
    c.product_id = product_id;
    c.quantity = quantity;
    c.customer_id = customer;
    c.requested_ttl = ttl;
    c.hold_ttl = ttl;
    return c;
  }

  // Creates a product with fresh id on `store`'s shard.
  static absl::StatusOr<ProductRecord> MakeProduct(
      ShardStore& store, int64_t total,
      StockPolicy policy = StockPolicy::kStrict) {
    NewProduct p;
    p.product_id = NewProductId(store.shard_index());
    p.total_quantity = total;
    p.stock_policy = policy;
    return store.CreateProduct(p);
  }

  static int64_t RowsWithRequestId(int shard, const std::string& request_id) {
    pqxx::connection c(DsnOf(shard));
    pqxx::nontransaction tx(c);
    return tx
        .exec_params1("SELECT count(*) FROM reservations WHERE request_id = $1",
                      request_id)[0]
        .as<int64_t>();
  }

  // See LateFillCase.
  // `units` (1 by default) is the product's total and each hold's quantity.
  static void MakeLagging(ShardStore& store, LateFillCase* c,
                          int64_t units = 1) {
    ASSERT_OK_AND_ASSIGN(p,
                         MakeProduct(store, units, StockPolicy::kBackorder));
    ASSERT_OK_AND_ASSIGN(a, store.Reserve(Command(p.product_id, units)));
    ReserveCommand b_command = Command(p.product_id, units);
    ASSERT_OK_AND_ASSIGN(b, store.Reserve(b_command));
    ASSERT_EQ(a.reservation.backordered_quantity, 0);
    ASSERT_EQ(b.reservation.backordered_quantity, units);
    c->held = std::make_unique<HeldLock>(HeldLock::ReservationRow(
        DsnOf(store.shard_index()), b_command.request_id));
    ASSERT_OK(store.Release(p.product_id, a.reservation.row_id).status());
    ASSERT_OK_AND_ASSIGN(after, store.GetProduct(p.product_id));
    ASSERT_EQ(after.backordered_quantity, units)
        << "the trigger filled B anyway";
    ASSERT_OK_AND_ASSIGN(b_row,
                         store.GetReservation(p.product_id,
                                              b.reservation.row_id));
    ASSERT_EQ(b_row.backordered_quantity, units);
    c->product = after;
    c->backordered = b_row;
  }

  // Whether `product_id` is in its shard's late-fill queue.
  static bool Queued(int shard, int64_t product_id) {
    return QueryInt(DsnOf(shard),
                    absl::StrCat("SELECT count(*) FROM late_fills WHERE "
                                 "product_id = ",
                                 product_id)) == 1;
  }

  // Runs the late-fill queue of `store`'s shard until it is empty, so that
  // a test counts its own products only.
  static void DrainLateFills(ShardStore& store) {
    for (int i = 0; i < 20; ++i) {
      auto pass = store.FillLateBackorders(1000);
      ASSERT_TRUE(pass.ok()) << pass.status();
      if (pass->products == 0) break;
    }
    ASSERT_EQ(QueryInt(DsnOf(store.shard_index()),
                       "SELECT count(*) FROM late_fills"),
              0);
  }

  // B's backordered units and the product's, now.
  static std::pair<int64_t, int64_t> Backordered(ShardStore& store,
                                                 const LateFillCase& c) {
    auto row = store.GetReservation(c.product.product_id, c.backordered.row_id);
    auto p = store.GetProduct(c.product.product_id);
    EXPECT_TRUE(row.ok() && p.ok());
    if (!row.ok() || !p.ok()) return {-1, -1};
    return {row->backordered_quantity, p->backordered_quantity};
  }

  static std::unique_ptr<ShardCluster> cluster_;
  static std::string bootstrap_error_;
};

std::unique_ptr<ShardCluster> ShardStorePgTest::cluster_;
std::string ShardStorePgTest::bootstrap_error_;

// ------------------------------------------------- 1. bootstrap / identity

TEST_F(ShardStorePgTest, BootstrapAppliesEachMigrationOnceAndIsIdempotent) {
  const std::string dsn = FreshSchemaDsn(0);
  const auto& migrations = AllMigrations();
  ASSERT_FALSE(migrations.empty());

  ShardStore store(0, Dsn(dsn));
  ASSERT_OK(store.Bootstrap(kShards));

  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM schema_migrations"),
            static_cast<int64_t>(migrations.size()));
  for (const Migration& m : migrations) {
    pqxx::connection c(dsn);
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec_params1("SELECT count(*) FROM schema_migrations "
                              "WHERE version = $1 AND name = $2",
                              m.version, m.name)[0]
                  .as<int64_t>(),
              1)
        << "migration " << m.version << "_" << m.name;
  }
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM shard_identity "
                          "WHERE shard_index = 0 AND shard_count = 2"),
            1);
  const int64_t applied_us =
      QueryInt(dsn, "SELECT inv_us(max(applied_at)) FROM schema_migrations");
  const int64_t identity_us =
      QueryInt(dsn, "SELECT inv_us(created_at) FROM shard_identity");

  // Again, by the same store and by a new one: nothing is applied twice.
  ASSERT_OK(store.Bootstrap(kShards));
  ShardStore again(0, Dsn(dsn));
  ASSERT_OK(again.Bootstrap(kShards));
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM schema_migrations"),
            static_cast<int64_t>(migrations.size()));
  EXPECT_EQ(
      QueryInt(dsn, "SELECT inv_us(max(applied_at)) FROM schema_migrations"),
      applied_us);
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM shard_identity"), 1);
  EXPECT_EQ(QueryInt(dsn, "SELECT inv_us(created_at) FROM shard_identity"),
            identity_us);

  // The schema works: a product round trip on the fresh schema.
  NewProduct p{NewProductId(0), 3, StockPolicy::kStrict, 0};
  ASSERT_OK(again.CreateProduct(p).status());
  EXPECT_EQ(QueryInt(dsn, absl::StrCat("SELECT total_quantity FROM products "
                                       "WHERE product_id = ",
                                       p.product_id)),
            3);
}

// A shard at version 8 that holds an oversold BACKORDER product (possible
// before AdjustStock had a floor for them): migration 0009 refuses it,
// naming the product, and adds nothing; once the product is restocked it
// applies.
TEST_F(ShardStorePgTest, Migration0009RefusesAnOversoldBackorderProduct) {
  const std::string dsn = FreshSchemaDsn(0);
  ShardStore store(0, Dsn(dsn));
  ASSERT_OK(store.Bootstrap(kShards));
  const Migration* m0009 = nullptr;
  for (const Migration& m : AllMigrations()) {
    if (m.version == 9) m0009 = &m;
  }
  ASSERT_NE(m0009, nullptr);
  // Back to version 8, with a product covering 5 units from a total of 3.
  Exec(dsn,
       "ALTER TABLE products DROP CONSTRAINT backorder_never_oversold;"
       "DELETE FROM schema_migrations WHERE version = 9;"
       "INSERT INTO products (product_id, total_quantity, reserved_quantity,"
       "  stock_policy) VALUES (424242, 3, 5, 2)");
  try {
    Exec(dsn, m0009->sql);
    ADD_FAILURE() << "0009 applied over an oversold product";
  } catch (const pqxx::sql_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("BACKORDER product(s) 424242 cover more"));
  }
  EXPECT_FALSE(store.Bootstrap(kShards).ok());
  const std::string constraint_count =
      "SELECT count(*) FROM pg_constraint WHERE conname = "
      "'backorder_never_oversold' AND conrelid = 'products'::regclass";
  EXPECT_EQ(QueryInt(dsn, constraint_count), 0);

  Exec(dsn, "UPDATE products SET total_quantity = 5 WHERE product_id = 424242");
  ASSERT_OK(store.Bootstrap(kShards));
  EXPECT_EQ(QueryInt(dsn, constraint_count), 1);
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM schema_migrations "
                          "WHERE version = 9"),
            1);
}

// A shard at version 10 with a backorder its fill skipped (the product was
// changed while the row was locked): migration 0011 queues it, and the late
// fill then fills it.
TEST_F(ShardStorePgTest, Migration0011QueuesTheFillsOlderVersionsSkipped) {
  const std::string dsn = FreshSchemaDsn(0);
  ASSERT_OK(ShardStore(0, Dsn(dsn)).Bootstrap(kShards));
  // Back to version 10; product 434343 has 1 unit free for its backorder.
  Exec(dsn,
       "DROP TABLE late_fills;"
       "DELETE FROM schema_migrations WHERE version = 11;"
       "INSERT INTO products (product_id, total_quantity, reserved_quantity,"
       "  backordered_quantity, stock_policy) VALUES (434343, 1, 1, 1, 2);"
       "INSERT INTO reservations (product_id, quantity, status, customer_id,"
       "  request_id, expire_time, backordered_quantity)"
       "  VALUES (434343, 1, 1, 'c', 'm11-434343', now() + interval '1 hour',"
       "          1);"
       // Not to queue: a BACKORDER product with no stock for its backorder,
       // and a STRICT one.
       "INSERT INTO products (product_id, total_quantity, reserved_quantity,"
       "  backordered_quantity, stock_policy) VALUES (434345, 1, 2, 1, 2),"
       "  (434347, 5, 0, 0, 1);"
       "INSERT INTO reservations (product_id, quantity, status, customer_id,"
       "  request_id, expire_time, backordered_quantity)"
       "  VALUES (434345, 2, 1, 'c', 'm11-434345', now() + interval '1 hour',"
       "          1)");
  ShardStore store(0, Dsn(dsn));
  ASSERT_OK(store.Bootstrap(kShards));
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM late_fills "
                          "WHERE product_id = 434343"),
            1);
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM late_fills"), 1);
  ASSERT_OK_AND_ASSIGN(pass, store.FillLateBackorders(10));
  EXPECT_EQ(pass.units, 1);
  EXPECT_EQ(QueryInt(dsn, "SELECT backordered_quantity FROM reservations "
                          "WHERE request_id = 'm11-434343'"),
            0);
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM late_fills"), 0);
}

TEST_F(ShardStorePgTest, ConcurrentBootstrapOfFreshShardAppliesOnce) {
  const std::string dsn = FreshSchemaDsn(1);
  constexpr int kThreads = 8;
  StartGate gate(kThreads);
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ShardStore store(1, Dsn(dsn));
      absl::Status connected = store.EnsureConnected();
      gate.ArriveAndWait();
      results[t] = connected.ok() ? store.Bootstrap(kShards) : connected;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(results[t].ok()) << "thread " << t << ": " << results[t];
  }
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM schema_migrations"),
            static_cast<int64_t>(AllMigrations().size()));
  EXPECT_EQ(QueryInt(dsn, "SELECT count(DISTINCT version) FROM "
                          "schema_migrations"),
            static_cast<int64_t>(AllMigrations().size()));
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM shard_identity "
                          "WHERE shard_index = 1 AND shard_count = 2"),
            1);
}

TEST_F(ShardStorePgTest, DescribeReportsVersionIdentityAndSchema) {
  const int latest = AllMigrations().back().version;
  for (int shard = 0; shard < kShards; ++shard) {
    auto store = Store(shard);
    ASSERT_OK_AND_ASSIGN(d, store->Describe());
    EXPECT_THAT(d.server_version, StartsWith("15")) << "shard " << shard;
    EXPECT_EQ(d.recorded_index, shard);
    EXPECT_EQ(d.recorded_count, kShards);
    EXPECT_EQ(d.schema_version, latest);
  }
}

TEST_F(ShardStorePgTest, BootstrapRefusesAnotherPositionOrCount) {
  // Shard 0 was recorded as 0 of 2 by SetUpTestSuite.
  const std::string dsn = DsnOf(0);
  const std::string identity_before = absl::StrCat(
      QueryInt(dsn, "SELECT shard_index FROM shard_identity"), "/",
      QueryInt(dsn, "SELECT shard_count FROM shard_identity"), "/",
      QueryInt(dsn, "SELECT inv_us(created_at) FROM shard_identity"), "/",
      QueryInt(dsn, "SELECT count(*) FROM shard_identity"));
  const std::string migrations_before = absl::StrCat(
      QueryInt(dsn, "SELECT count(*) FROM schema_migrations"), "/",
      QueryInt(dsn, "SELECT inv_us(max(applied_at)) FROM schema_migrations"));
  ASSERT_EQ(identity_before.substr(0, 4), "0/2/");
  const std::string password =
      dsn.substr(dsn.find("password=") + 9,
                 dsn.find(' ', dsn.find("password=")) - dsn.find("password=") -
                     9);
  ASSERT_FALSE(password.empty());

  // Position 1 of 2 on the shard recorded as 0 of 2.
  ShardStore wrong_index(1, Dsn(dsn));
  absl::Status s = wrong_index.Bootstrap(kShards);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("position 1"), HasSubstr("shard 0 of 2"),
                    Not(HasSubstr(password)), Not(HasSubstr("password"))));
  // The refusing store's connection is still usable.
  EXPECT_TRUE(wrong_index.Ping().ok());

  // Position 0 but of 3 shards.
  ShardStore wrong_count(0, Dsn(dsn));
  s = wrong_count.Bootstrap(3);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("position 0"), HasSubstr("shard 0 of 2"),
                    HasSubstr("of 3"), Not(HasSubstr(password)),
                    Not(HasSubstr("password"))));

  // Nothing changed.
  EXPECT_EQ(absl::StrCat(
                QueryInt(dsn, "SELECT shard_index FROM shard_identity"), "/",
                QueryInt(dsn, "SELECT shard_count FROM shard_identity"), "/",
                QueryInt(dsn, "SELECT inv_us(created_at) FROM shard_identity"),
                "/", QueryInt(dsn, "SELECT count(*) FROM shard_identity")),
            identity_before);
  EXPECT_EQ(absl::StrCat(
                QueryInt(dsn, "SELECT count(*) FROM schema_migrations"), "/",
                QueryInt(dsn, "SELECT inv_us(max(applied_at)) FROM "
                              "schema_migrations")),
            migrations_before);
  // And the right identity is still accepted.
  EXPECT_TRUE(Store(0)->Bootstrap(kShards).ok());
}

TEST_F(ShardStorePgTest, FailedIdentityCheckOnFreshShardRecordsNothing) {
  // A fresh shard claimed first as 1 of 2 keeps that identity; a later claim
  // as 0 of 2 is refused and leaves it (and the schema) as it was.
  const std::string dsn = FreshSchemaDsn(0);
  ASSERT_OK(ShardStore(1, Dsn(dsn)).Bootstrap(kShards));
  absl::Status s = ShardStore(0, Dsn(dsn)).Bootstrap(kShards);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("shard 1 of 2"));
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM shard_identity "
                          "WHERE shard_index = 1 AND shard_count = 2"),
            1);
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM shard_identity"), 1);
  EXPECT_EQ(QueryInt(dsn, "SELECT count(*) FROM schema_migrations"),
            static_cast<int64_t>(AllMigrations().size()));
}

// ------------------------------------------------------------- 2. products

TEST_F(ShardStorePgTest, CreateProductThenGetProductRoundTrip) {
  auto store = Store(1);
  NewProduct p;
  p.product_id = NewProductId(1);
  p.total_quantity = 25;
  p.stock_policy = StockPolicy::kBackorder;
  p.low_stock_threshold = 4;
  ASSERT_OK_AND_ASSIGN(created, store->CreateProduct(p));
  EXPECT_EQ(created.product_id, p.product_id);
  EXPECT_EQ(created.total_quantity, 25);
  EXPECT_EQ(created.reserved_quantity, 0);
  EXPECT_EQ(created.purchased_quantity, 0);
  EXPECT_EQ(created.stock_policy, StockPolicy::kBackorder);
  EXPECT_EQ(created.low_stock_threshold, 4);
  EXPECT_EQ(created.available(), 25);
  EXPECT_EQ(created.create_time, created.update_time);
  EXPECT_LT(absl::AbsDuration(created.create_time - absl::Now()),
            absl::Minutes(1));

  ASSERT_OK_AND_ASSIGN(got, store->GetProduct(p.product_id));
  EXPECT_EQ(got.product_id, created.product_id);
  EXPECT_EQ(got.total_quantity, created.total_quantity);
  EXPECT_EQ(got.reserved_quantity, 0);
  EXPECT_EQ(got.purchased_quantity, 0);
  EXPECT_EQ(got.stock_policy, created.stock_policy);
  EXPECT_EQ(got.low_stock_threshold, created.low_stock_threshold);
  EXPECT_EQ(got.version, created.version);
  EXPECT_EQ(got.create_time, created.create_time);
  EXPECT_EQ(got.update_time, created.update_time);
}

TEST_F(ShardStorePgTest, CreateProductTwiceIsAlreadyExistsAndKeepsTheFirst) {
  auto store = Store(0);
  NewProduct p{NewProductId(0), 10, StockPolicy::kStrict, 2};
  ASSERT_OK(store->CreateProduct(p).status());

  NewProduct dup = p;
  dup.total_quantity = 99;
  dup.stock_policy = StockPolicy::kBackorder;
  absl::Status s = store->CreateProduct(dup).status();
  EXPECT_TRUE(
      HasError(s, absl::StatusCode::kAlreadyExists, reason::kProductExists));
  EXPECT_EQ(Meta(s)["productId"], absl::StrCat(p.product_id));

  ASSERT_OK_AND_ASSIGN(got, store->GetProduct(p.product_id));
  EXPECT_EQ(got.total_quantity, 10);
  EXPECT_EQ(got.stock_policy, StockPolicy::kStrict);
  EXPECT_EQ(got.low_stock_threshold, 2);
}

TEST_F(ShardStorePgTest, GetUnknownProductIsNotFound) {
  auto store = Store(0);
  const int64_t unknown = NewProductId(0);
  absl::Status s = store->GetProduct(unknown).status();
  EXPECT_TRUE(
      HasError(s, absl::StatusCode::kNotFound, reason::kProductNotFound));
  EXPECT_EQ(Meta(s)["productId"], absl::StrCat(unknown));
}

TEST_F(ShardStorePgTest, GetAvailabilityReturnsOnlyKnownProducts) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(a, MakeProduct(*store, 10));
  ASSERT_OK_AND_ASSIGN(b, MakeProduct(*store, 4));
  ASSERT_OK_AND_ASSIGN(c, MakeProduct(*store, 2, StockPolicy::kBackorder));
  ASSERT_OK_AND_ASSIGN(untouched, MakeProduct(*store, 6));
  ASSERT_OK(store->Reserve(Command(a.product_id, 3)).status());
  ASSERT_OK_AND_ASSIGN(held, store->Reserve(Command(b.product_id, 4)));
  ASSERT_OK(store->Commit(b.product_id, held.reservation.row_id).status());
  // BACKORDER: more than the total can be held; available stays >= 0.
  ASSERT_OK(store->Reserve(Command(c.product_id, 5)).status());

  const int64_t unknown = NewProductId(0);
  ASSERT_OK_AND_ASSIGN(
      got, store->GetAvailability({a.product_id, unknown, b.product_id,
                                   c.product_id, untouched.product_id,
                                   a.product_id}));
  std::map<int64_t, int64_t> by_id;
  for (const auto& r : got) {
    EXPECT_TRUE(by_id.emplace(r.product_id, r.available).second)
        << "product " << r.product_id << " reported twice";
  }
  EXPECT_EQ(by_id, (std::map<int64_t, int64_t>{{a.product_id, 7},
                                               {b.product_id, 0},
                                               {c.product_id, 0},
                                               {untouched.product_id, 6}}));

  ASSERT_OK_AND_ASSIGN(none, store->GetAvailability({unknown}));
  EXPECT_TRUE(none.empty());
  ASSERT_OK_AND_ASSIGN(empty, store->GetAvailability({}));
  EXPECT_TRUE(empty.empty());
}

// ------------------------------------------- 3. reserve / release / commit

TEST_F(ShardStorePgTest, ReserveTakesUnitsUntilOutOfStock) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 10));

  ReserveCommand first = Command(p.product_id, 7, absl::Minutes(10), "alice");
  ASSERT_OK_AND_ASSIGN(out, store->Reserve(first));
  EXPECT_FALSE(out.replayed);
  const ReservationRecord& r = out.reservation;
  EXPECT_GT(r.row_id, 0);
  EXPECT_EQ(r.product_id, p.product_id);
  EXPECT_EQ(r.quantity, 7);
  EXPECT_EQ(r.status, ReservationStatus::kPending);
  EXPECT_EQ(r.customer_id, "alice");
  EXPECT_EQ(r.request_id, first.request_id);
  EXPECT_EQ(r.requested_ttl, absl::Minutes(10));
  EXPECT_EQ(r.expire_time - r.create_time, absl::Minutes(10));
  ASSERT_OK_AND_ASSIGN(after, store->GetProduct(p.product_id));
  EXPECT_EQ(after.reserved_quantity, 7);
  EXPECT_EQ(after.available(), 3);
  EXPECT_GT(after.version, p.version);

  // One more than available: refused with exact numbers, nothing written.
  ReserveCommand too_many = Command(p.product_id, 4);
  absl::Status s = store->Reserve(too_many).status();
  EXPECT_TRUE(
      HasError(s, absl::StatusCode::kFailedPrecondition, reason::kOutOfStock));
  EXPECT_EQ(Meta(s), (std::map<std::string, std::string>{
                         {"productId", absl::StrCat(p.product_id)},
                         {"requested", "4"},
                         {"available", "3"}}));
  EXPECT_EQ(RowsWithRequestId(0, too_many.request_id), 0);
  ASSERT_OK_AND_ASSIGN(unchanged, store->GetProduct(p.product_id));
  EXPECT_EQ(unchanged.reserved_quantity, 7);
  EXPECT_EQ(unchanged.version, after.version);

  // Exactly what is left: granted.
  ASSERT_OK_AND_ASSIGN(rest, store->Reserve(Command(p.product_id, 3)));
  EXPECT_FALSE(rest.replayed);
  // Purchased units count too.
  ASSERT_OK(store->Commit(p.product_id, rest.reservation.row_id).status());
  s = store->Reserve(Command(p.product_id, 1)).status();
  EXPECT_TRUE(
      HasError(s, absl::StatusCode::kFailedPrecondition, reason::kOutOfStock));
  EXPECT_EQ(Meta(s)["requested"], "1");
  EXPECT_EQ(Meta(s)["available"], "0");

  ASSERT_OK_AND_ASSIGN(end, store->GetProduct(p.product_id));
  EXPECT_EQ(end.reserved_quantity, 7);
  EXPECT_EQ(end.purchased_quantity, 3);
  EXPECT_EQ(CounterDrift(DsnOf(0)), 0);
}

TEST_F(ShardStorePgTest, BackorderProductMayBeHeldBeyondItsTotal) {
  auto store = Store(1);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 2, StockPolicy::kBackorder));
  ASSERT_OK_AND_ASSIGN(out, store->Reserve(Command(p.product_id, 5)));
  EXPECT_FALSE(out.replayed);
  ASSERT_OK_AND_ASSIGN(got, store->GetProduct(p.product_id));
  EXPECT_EQ(got.reserved_quantity, 5);
  EXPECT_EQ(got.available(), 0);
}

TEST_F(ShardStorePgTest, ReserveUnknownProductIsNotFound) {
  auto store = Store(1);
  const int64_t unknown = NewProductId(1);
  ReserveCommand c = Command(unknown, 1);
  absl::Status s = store->Reserve(c).status();
  EXPECT_TRUE(
      HasError(s, absl::StatusCode::kNotFound, reason::kProductNotFound));
  EXPECT_EQ(Meta(s)["productId"], absl::StrCat(unknown));
  EXPECT_EQ(RowsWithRequestId(1, c.request_id), 0);
}

TEST_F(ShardStorePgTest, ReplayOfTheSameCommandReservesNothingMore) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 5));
  ReserveCommand c = Command(p.product_id, 2, absl::Seconds(90), "bob");
  ASSERT_OK_AND_ASSIGN(first, store->Reserve(c));
  ASSERT_FALSE(first.replayed);

  auto expect_same = [&](const ReserveOutcome& again) {
    EXPECT_TRUE(again.replayed);
    EXPECT_EQ(again.reservation.row_id, first.reservation.row_id);
    EXPECT_EQ(again.reservation.product_id, p.product_id);
    EXPECT_EQ(again.reservation.quantity, 2);
    EXPECT_EQ(again.reservation.customer_id, "bob");
    EXPECT_EQ(again.reservation.request_id, c.request_id);
    EXPECT_EQ(again.reservation.requested_ttl, absl::Seconds(90));
    EXPECT_EQ(again.reservation.create_time, first.reservation.create_time);
    EXPECT_EQ(again.reservation.expire_time, first.reservation.expire_time);
  };

  // Plain retry, from another store (another connection) too.
  ASSERT_OK_AND_ASSIGN(again, store->Reserve(c));
  expect_same(again);
  EXPECT_EQ(again.reservation.status, ReservationStatus::kPending);
  ASSERT_OK_AND_ASSIGN(again2, Store(0)->Reserve(c));
  expect_same(again2);
  ASSERT_OK_AND_ASSIGN(got, store->GetProduct(p.product_id));
  EXPECT_EQ(got.reserved_quantity, 2);
  EXPECT_EQ(RowsWithRequestId(0, c.request_id), 1);

  // Retry when the product has run out: still the same reservation.
  ASSERT_OK(store->Reserve(Command(p.product_id, 3)).status());
  ASSERT_OK_AND_ASSIGN(when_empty, store->Reserve(c));
  expect_same(when_empty);

  // Retry after release: the released reservation, nothing held again.
  ASSERT_OK(store->Release(p.product_id, first.reservation.row_id).status());
  ASSERT_OK_AND_ASSIGN(after_release, store->Reserve(c));
  expect_same(after_release);
  EXPECT_EQ(after_release.reservation.status, ReservationStatus::kReleased);
  ASSERT_OK_AND_ASSIGN(end, store->GetProduct(p.product_id));
  EXPECT_EQ(end.reserved_quantity, 3);
  EXPECT_EQ(RowsWithRequestId(0, c.request_id), 1);
  EXPECT_EQ(CounterDrift(DsnOf(0)), 0);
}

TEST_F(ShardStorePgTest, SameRequestIdWithOtherParametersIsAConflict) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 10));
  ASSERT_OK_AND_ASSIGN(other, MakeProduct(*store, 10));
  ReserveCommand c = Command(p.product_id, 2, absl::Seconds(60), "carol");
  ASSERT_OK_AND_ASSIGN(first, store->Reserve(c));
  ASSERT_OK_AND_ASSIGN(p_before, store->GetProduct(p.product_id));
  ASSERT_OK_AND_ASSIGN(other_before, store->GetProduct(other.product_id));

  std::vector<std::pair<std::string, ReserveCommand>> variants;
  {
    ReserveCommand v = c;
    v.quantity = 3;
    variants.emplace_back("quantity", v);
  }
  {
    ReserveCommand v = c;
    v.customer_id = "mallory";
    variants.emplace_back("customer_id", v);
  }
  {
    ReserveCommand v = c;
    v.requested_ttl = v.hold_ttl = absl::Seconds(61);
    variants.emplace_back("requested_ttl", v);
  }
  {
    ReserveCommand v = c;
    v.requested_ttl = absl::ZeroDuration();  // the server default this time
    variants.emplace_back("requested_ttl default", v);
  }
  {
    ReserveCommand v = c;
    v.product_id = other.product_id;
    variants.emplace_back("product_id", v);
  }
  for (const auto& [what, v] : variants) {
    SCOPED_TRACE(what);
    absl::Status s = store->Reserve(v).status();
    EXPECT_TRUE(HasError(s, absl::StatusCode::kFailedPrecondition,
                         reason::kRequestIdConflict));
    EXPECT_EQ(Meta(s)["requestId"], c.request_id);
  }

  // Nothing changed: counters, versions, the one row.
  ASSERT_OK_AND_ASSIGN(p_after, store->GetProduct(p.product_id));
  ASSERT_OK_AND_ASSIGN(other_after, store->GetProduct(other.product_id));
  EXPECT_EQ(p_after.reserved_quantity, 2);
  EXPECT_EQ(p_after.version, p_before.version);
  EXPECT_EQ(other_after.reserved_quantity, 0);
  EXPECT_EQ(other_after.version, other_before.version);
  EXPECT_EQ(RowsWithRequestId(0, c.request_id), 1);
  ASSERT_OK_AND_ASSIGN(row,
                       store->GetReservation(p.product_id,
                                             first.reservation.row_id));
  EXPECT_EQ(row.quantity, 2);
  EXPECT_EQ(row.customer_id, "carol");
  EXPECT_EQ(row.requested_ttl, absl::Seconds(60));
  EXPECT_EQ(row.status, ReservationStatus::kPending);
  EXPECT_EQ(row.update_time, first.reservation.update_time);
  // The original command still replays.
  ASSERT_OK_AND_ASSIGN(again, store->Reserve(c));
  EXPECT_TRUE(again.replayed);
}

TEST_F(ShardStorePgTest, ReleaseAndCommitFollowTheReservationLifecycle) {
  auto store = Store(1);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 10));
  const int64_t id = p.product_id;

  // Release PENDING -> RELEASED, units back.
  ASSERT_OK_AND_ASSIGN(held, store->Reserve(Command(id, 4)));
  ASSERT_OK_AND_ASSIGN(released, store->Release(id, held.reservation.row_id));
  EXPECT_EQ(released.row_id, held.reservation.row_id);
  EXPECT_EQ(released.status, ReservationStatus::kReleased);
  EXPECT_EQ(released.quantity, 4);
  ASSERT_OK_AND_ASSIGN(after_release, store->GetProduct(id));
  EXPECT_EQ(after_release.reserved_quantity, 0);
  EXPECT_EQ(after_release.available(), 10);

  // Release again: OK, nothing changes.
  ASSERT_OK_AND_ASSIGN(released2, store->Release(id, held.reservation.row_id));
  EXPECT_EQ(released2.status, ReservationStatus::kReleased);
  EXPECT_EQ(released2.update_time, released.update_time);
  ASSERT_OK_AND_ASSIGN(after_release2, store->GetProduct(id));
  EXPECT_EQ(after_release2.reserved_quantity, 0);
  EXPECT_EQ(after_release2.version, after_release.version);

  // Commit of a RELEASED hold is refused.
  absl::Status s = store->Commit(id, held.reservation.row_id).status();
  EXPECT_TRUE(HasError(s, absl::StatusCode::kFailedPrecondition,
                       reason::kReservationNotPending));
  EXPECT_EQ(Meta(s)["status"], "RELEASED");
  ASSERT_OK_AND_ASSIGN(still_released,
                       store->GetReservation(id, held.reservation.row_id));
  EXPECT_EQ(still_released.status, ReservationStatus::kReleased);

  // Commit PENDING -> PURCHASED: reserved units become purchased.
  ASSERT_OK_AND_ASSIGN(buy, store->Reserve(Command(id, 3)));
  ASSERT_OK_AND_ASSIGN(reserved_state, store->GetProduct(id));
  EXPECT_EQ(reserved_state.reserved_quantity, 3);
  ASSERT_OK_AND_ASSIGN(committed, store->Commit(id, buy.reservation.row_id));
  EXPECT_EQ(committed.status, ReservationStatus::kPurchased);
  ASSERT_OK_AND_ASSIGN(after_commit, store->GetProduct(id));
  EXPECT_EQ(after_commit.reserved_quantity, 0);
  EXPECT_EQ(after_commit.purchased_quantity, 3);
  EXPECT_EQ(after_commit.available(), 7);

  // Commit again: OK, nothing changes.
  ASSERT_OK_AND_ASSIGN(committed2, store->Commit(id, buy.reservation.row_id));
  EXPECT_EQ(committed2.status, ReservationStatus::kPurchased);
  EXPECT_EQ(committed2.update_time, committed.update_time);
  ASSERT_OK_AND_ASSIGN(after_commit2, store->GetProduct(id));
  EXPECT_EQ(after_commit2.purchased_quantity, 3);
  EXPECT_EQ(after_commit2.reserved_quantity, 0);
  EXPECT_EQ(after_commit2.version, after_commit.version);

  // Release of a PURCHASED hold is refused and changes nothing.
  s = store->Release(id, buy.reservation.row_id).status();
  EXPECT_TRUE(HasError(s, absl::StatusCode::kFailedPrecondition,
                       reason::kReservationNotPending));
  EXPECT_EQ(Meta(s)["status"], "PURCHASED");
  ASSERT_OK_AND_ASSIGN(still_purchased, store->GetProduct(id));
  EXPECT_EQ(still_purchased.purchased_quantity, 3);
  EXPECT_EQ(still_purchased.version, after_commit.version);
  ASSERT_OK_AND_ASSIGN(row, store->GetReservation(id, buy.reservation.row_id));
  EXPECT_EQ(row.status, ReservationStatus::kPurchased);
  EXPECT_EQ(CounterDrift(DsnOf(1)), 0);
}

TEST_F(ShardStorePgTest, UnknownReservationOrOtherProductIsNotFound) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 5));
  ASSERT_OK_AND_ASSIGN(q, MakeProduct(*store, 5));
  ASSERT_OK_AND_ASSIGN(held, store->Reserve(Command(p.product_id, 2)));
  const int64_t row = held.reservation.row_id;
  const int64_t unknown_row =
      QueryInt(DsnOf(0), "SELECT coalesce(max(id), 0) FROM reservations") +
      1000000;

  struct Case {
    std::string what;
    int64_t product_id;
    int64_t row_id;
  };
  for (const Case& c : {Case{"unknown row id", p.product_id, unknown_row},
                        Case{"row of another product", q.product_id, row}}) {
    SCOPED_TRACE(c.what);
    absl::Status s = store->Release(c.product_id, c.row_id).status();
    EXPECT_TRUE(HasError(s, absl::StatusCode::kNotFound,
                         reason::kReservationNotFound));
    s = store->Commit(c.product_id, c.row_id).status();
    EXPECT_TRUE(HasError(s, absl::StatusCode::kNotFound,
                         reason::kReservationNotFound));
    s = store->GetReservation(c.product_id, c.row_id).status();
    EXPECT_TRUE(HasError(s, absl::StatusCode::kNotFound,
                         reason::kReservationNotFound));
  }

  // The real reservation and both products are untouched.
  ASSERT_OK_AND_ASSIGN(r, store->GetReservation(p.product_id, row));
  EXPECT_EQ(r.status, ReservationStatus::kPending);
  ASSERT_OK_AND_ASSIGN(p_now, store->GetProduct(p.product_id));
  EXPECT_EQ(p_now.reserved_quantity, 2);
  EXPECT_EQ(p_now.purchased_quantity, 0);
  ASSERT_OK_AND_ASSIGN(q_now, store->GetProduct(q.product_id));
  EXPECT_EQ(q_now.reserved_quantity, 0);
  EXPECT_EQ(q_now.purchased_quantity, 0);
  EXPECT_EQ(q_now.version, q.version);
}

// ------------------------------------------- 4. expiry by the DB clock

TEST_F(ShardStorePgTest, CommitAfterExpiryByDatabaseClockExpiresTheHold) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 5));
  ASSERT_OK_AND_ASSIGN(held,
                       store->Reserve(Command(p.product_id, 2, absl::Seconds(1))));
  const int64_t row = held.reservation.row_id;
  EXPECT_EQ(held.reservation.expire_time - held.reservation.create_time,
            absl::Seconds(1));

  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(DsnOf(0),
                    absl::StrCat("SELECT count(*) FROM reservations WHERE id = ",
                                 row, " AND expire_time < now()")) == 1;
  }, kPollTimeout)) << "the database clock never passed expire_time";
  // No sweep has run: the hold is still PENDING in the table.
  ASSERT_EQ(QueryInt(DsnOf(0),
                     absl::StrCat("SELECT status FROM reservations WHERE id = ",
                                  row)),
            1);

  absl::Status s = store->Commit(p.product_id, row).status();
  EXPECT_TRUE(HasError(s, absl::StatusCode::kFailedPrecondition,
                       reason::kReservationNotPending));
  EXPECT_EQ(Meta(s)["status"], "EXPIRED");
  ASSERT_OK_AND_ASSIGN(r, store->GetReservation(p.product_id, row));
  EXPECT_EQ(r.status, ReservationStatus::kExpired);
  ASSERT_OK_AND_ASSIGN(got, store->GetProduct(p.product_id));
  EXPECT_EQ(got.reserved_quantity, 0);
  EXPECT_EQ(got.purchased_quantity, 0);
  EXPECT_EQ(got.available(), 5);

  // Committing again is still refused; releasing an EXPIRED hold is OK.
  s = store->Commit(p.product_id, row).status();
  EXPECT_TRUE(HasError(s, absl::StatusCode::kFailedPrecondition,
                       reason::kReservationNotPending));
  ASSERT_OK_AND_ASSIGN(rel, store->Release(p.product_id, row));
  EXPECT_EQ(rel.status, ReservationStatus::kExpired);
  ASSERT_OK_AND_ASSIGN(end, store->GetProduct(p.product_id));
  EXPECT_EQ(end.reserved_quantity, 0);
  EXPECT_EQ(CounterDrift(DsnOf(0)), 0);
}

TEST_F(ShardStorePgTest, ConcurrentSweepersExpireEveryDueHoldExactlyOnce) {
  constexpr int kShard = 1;
  constexpr int kProducts = 10;
  constexpr int kHolds = 300;
  constexpr int kSweepers = 4;
  constexpr int kBatch = 50;
  const std::string dsn = DsnOf(kShard);
  auto store = Store(kShard);

  // Holds other tests may have left due would be counted too: clear them.
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK_AND_ASSIGN(n, store->ExpireDue(1000));
    if (n == 0) break;
  }

  std::vector<int64_t> ids;
  for (int i = 0; i < kProducts; ++i) {
    ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 1000));
    ids.push_back(p.product_id);
  }
  std::map<int64_t, int64_t> held_units;
  for (int i = 0; i < kHolds; ++i) {
    const int64_t id = ids[i % kProducts];
    const int64_t quantity = 1 + i % 3;
    ASSERT_OK(store->Reserve(Command(id, quantity, absl::Seconds(1))).status());
    held_units[id] += quantity;
  }
  for (int64_t id : ids) {
    ASSERT_OK_AND_ASSIGN(p, store->GetProduct(id));
    ASSERT_EQ(p.reserved_quantity, held_units[id]);
  }
  const std::string mine =
      absl::StrCat("product_id IN (", IdList(ids), ")");
  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(dsn, absl::StrCat("SELECT count(*) FROM reservations "
                                      "WHERE ", mine,
                                      " AND expire_time >= now()")) == 0;
  }, kPollTimeout)) << "the holds never became due by the database clock";

  StartGate gate(kSweepers);
  std::vector<int> expired(kSweepers, 0);
  std::vector<int> largest_batch(kSweepers, 0);
  std::vector<std::string> errors(kSweepers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kSweepers; ++t) {
    threads.emplace_back([&, t] {
      ShardStore sweeper(kShard, Dsn(dsn));
      absl::Status connected = sweeper.EnsureConnected();
      gate.ArriveAndWait();
      if (!connected.ok()) {
        errors[t] = connected.ToString();
        return;
      }
      for (int round = 0; round < 1000; ++round) {
        absl::StatusOr<int> n = sweeper.ExpireDue(kBatch);
        if (!n.ok()) {
          errors[t] = n.status().ToString();
          return;
        }
        if (*n == 0) return;
        expired[t] += *n;
        largest_batch[t] = std::max(largest_batch[t], *n);
      }
      errors[t] = "never reported 0";
    });
  }
  for (auto& th : threads) th.join();

  int total = 0;
  for (int t = 0; t < kSweepers; ++t) {
    EXPECT_EQ(errors[t], "") << "sweeper " << t;
    EXPECT_LE(largest_batch[t], kBatch) << "sweeper " << t;
    total += expired[t];
  }
  EXPECT_EQ(total, kHolds);
  EXPECT_EQ(QueryInt(dsn, absl::StrCat("SELECT count(*) FROM reservations "
                                       "WHERE ", mine, " AND status = 4")),
            kHolds);
  EXPECT_EQ(QueryInt(dsn, absl::StrCat("SELECT count(*) FROM reservations "
                                       "WHERE ", mine, " AND status <> 4")),
            0);
  for (int64_t id : ids) {
    ASSERT_OK_AND_ASSIGN(p, store->GetProduct(id));
    EXPECT_EQ(p.reserved_quantity, 0) << "product " << id;
    EXPECT_EQ(p.purchased_quantity, 0) << "product " << id;
  }
  EXPECT_EQ(CounterDrift(dsn), 0);
  // Nothing is left for a later sweep.
  ASSERT_OK_AND_ASSIGN(left, store->ExpireDue(kBatch));
  EXPECT_EQ(left, 0);
}

// --------------------------------------------------- 4b. late backorder fill

TEST_F(ShardStorePgTest, ABackorderTheTriggerSkippedIsFilledLate) {
  auto store = Store(0);
  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  LateFillCase c;
  ASSERT_NO_FATAL_FAILURE(MakeLagging(*store, &c));
  EXPECT_TRUE(Queued(0, c.product.product_id)) << "the trigger skipped B";

  // While B's row is locked, the late fill skips it again (a wait would
  // fail the call at the session's lock_timeout) and it stays queued.
  ASSERT_OK_AND_ASSIGN(locked, store->FillLateBackorders(100));
  EXPECT_EQ(locked.products, 1);
  EXPECT_EQ(locked.units, 0);
  EXPECT_EQ(Backordered(*store, c), std::make_pair(int64_t{1}, int64_t{1}));
  EXPECT_TRUE(Queued(0, c.product.product_id));
  ASSERT_OK_AND_ASSIGN(unchanged, store->GetProduct(c.product.product_id));
  EXPECT_EQ(unchanged.version, c.product.version) << "nothing was filled";

  // Once it is free, the next pass fills it and the product's etag changes.
  c.held->Release();
  ASSERT_OK_AND_ASSIGN(filled, store->FillLateBackorders(100));
  EXPECT_EQ(filled.products, 1);
  EXPECT_EQ(filled.filled_products, 1);
  EXPECT_EQ(filled.units, 1);
  EXPECT_EQ(Backordered(*store, c), std::make_pair(int64_t{0}, int64_t{0}));
  EXPECT_FALSE(Queued(0, c.product.product_id));
  ASSERT_OK_AND_ASSIGN(p, store->GetProduct(c.product.product_id));
  EXPECT_EQ(p.version, c.product.version + 1);
  EXPECT_EQ(p.reserved_quantity, 1);
  EXPECT_EQ(p.available(), 0);

  // Nothing is left to fill.
  ASSERT_OK_AND_ASSIGN(again, store->FillLateBackorders(100));
  EXPECT_EQ(again.products, 0);
  EXPECT_EQ(again.units, 0);
}

// One pass over three queued products: each is filled by its own units and
// only those filled get a new version.
TEST_F(ShardStorePgTest, OnePassFillsEachProductByItsOwnUnits) {
  auto store = Store(0);
  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  LateFillCase two, one, still_locked;
  ASSERT_NO_FATAL_FAILURE(MakeLagging(*store, &two, 2));
  ASSERT_NO_FATAL_FAILURE(MakeLagging(*store, &one));
  ASSERT_NO_FATAL_FAILURE(MakeLagging(*store, &still_locked, 3));
  two.held->Release();
  one.held->Release();

  ASSERT_OK_AND_ASSIGN(pass, store->FillLateBackorders(100));
  EXPECT_EQ(pass.products, 3);
  EXPECT_EQ(pass.filled_products, 2);
  EXPECT_EQ(pass.units, 3);
  EXPECT_EQ(Backordered(*store, two), std::make_pair(int64_t{0}, int64_t{0}));
  EXPECT_EQ(Backordered(*store, one), std::make_pair(int64_t{0}, int64_t{0}));
  EXPECT_EQ(Backordered(*store, still_locked),
            std::make_pair(int64_t{3}, int64_t{3}));
  for (const LateFillCase* c : {&two, &one, &still_locked}) {
    ASSERT_OK_AND_ASSIGN(p, store->GetProduct(c->product.product_id));
    EXPECT_EQ(p.version, c->product.version + (c == &still_locked ? 0 : 1))
        << "product " << p.product_id;
  }
  EXPECT_FALSE(Queued(0, two.product.product_id));
  EXPECT_TRUE(Queued(0, still_locked.product.product_id));
  still_locked.held->Release();
  ASSERT_OK_AND_ASSIGN(last, store->FillLateBackorders(100));
  EXPECT_EQ(last.units, 3);
}

TEST_F(ShardStorePgTest, OnlyFillsThatSkippedARowAreQueued) {
  auto store = Store(1);
  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  // Backordered with no stock to give: the fill has nothing to do.
  ASSERT_OK_AND_ASSIGN(waiting, MakeProduct(*store, 1, StockPolicy::kBackorder));
  ASSERT_OK(store->Reserve(Command(waiting.product_id, 3)).status());
  // A restock the fill hands out in full.
  ASSERT_OK_AND_ASSIGN(restocked,
                       MakeProduct(*store, 0, StockPolicy::kBackorder));
  ASSERT_OK(store->Reserve(Command(restocked.product_id, 2)).status());
  AdjustStockCommand restock;
  restock.product_id = restocked.product_id;
  restock.delta = 2;
  restock.reason = 1;
  restock.actor = "test";
  ASSERT_OK_AND_ASSIGN(after, store->AdjustStock(restock));
  EXPECT_EQ(after.backordered_quantity, 0);
  EXPECT_FALSE(Queued(1, waiting.product_id));
  EXPECT_FALSE(Queued(1, restocked.product_id));
  ASSERT_OK_AND_ASSIGN(pass, store->FillLateBackorders(100));
  EXPECT_EQ(pass.products, 0);
}

TEST_F(ShardStorePgTest, ALockedProductIsSkippedAndGoesToTheEndOfTheQueue) {
  auto store = Store(1);
  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  LateFillCase first, second, third;
  for (LateFillCase* c : {&first, &second, &third}) {
    ASSERT_NO_FATAL_FAILURE(MakeLagging(*store, c));
    c->held->Release();
  }
  HeldLock product_held =
      HeldLock::ProductRow(DsnOf(1), first.product.product_id);

  // One entry per pass, oldest first. The first's product is locked: it is
  // skipped, not waited for, and goes behind the others.
  ASSERT_OK_AND_ASSIGN(pass1, store->FillLateBackorders(1));
  EXPECT_EQ(pass1.products, 0);
  EXPECT_TRUE(Queued(1, first.product.product_id));
  ASSERT_OK_AND_ASSIGN(pass2, store->FillLateBackorders(1));
  EXPECT_EQ(pass2.units, 1);
  EXPECT_EQ(Backordered(*store, second), std::make_pair(int64_t{0}, int64_t{0}));
  ASSERT_OK_AND_ASSIGN(pass3, store->FillLateBackorders(1));
  EXPECT_EQ(pass3.units, 1);
  EXPECT_EQ(Backordered(*store, third), std::make_pair(int64_t{0}, int64_t{0}));
  EXPECT_EQ(Backordered(*store, first), std::make_pair(int64_t{1}, int64_t{1}));

  // Once the first product is free, its turn comes again.
  product_held.Release();
  ASSERT_OK_AND_ASSIGN(pass4, store->FillLateBackorders(10));
  EXPECT_EQ(pass4.products, 1);
  EXPECT_EQ(pass4.units, 1);
  EXPECT_EQ(Backordered(*store, first), std::make_pair(int64_t{0}, int64_t{0}));
  EXPECT_EQ(QueryInt(DsnOf(1), "SELECT count(*) FROM late_fills"), 0);
  EXPECT_EQ(CounterDrift(DsnOf(1)), 0);
}

// A product whose counter backorders more than its rows do (edited by
// hand) can never be filled: the pass takes it out of the queue and names
// it, instead of rewriting it at each of its turns. In the same pass, a
// product whose backordered row is only locked stays queued.
TEST_F(ShardStorePgTest, ADriftedProductLeavesTheQueueAndIsNamed) {
  auto store = Store(1);
  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 1, StockPolicy::kBackorder));
  ASSERT_OK(store->Reserve(Command(p.product_id, 1)).status());  // covered
  // By hand: a backordered unit no row has. The edit runs the fill, which
  // finds no row to give the free unit to, and queues the product.
  auto set_backordered = [&](int units) {
    Exec(DsnOf(1), absl::StrCat("UPDATE products SET backordered_quantity = ",
                                units, " WHERE product_id = ", p.product_id));
  };
  set_backordered(1);
  ASSERT_TRUE(Queued(1, p.product_id));
  ASSERT_OK_AND_ASSIGN(drifted, store->GetProduct(p.product_id));
  LateFillCase locked;
  ASSERT_NO_FATAL_FAILURE(MakeLagging(*store, &locked));

  ASSERT_OK_AND_ASSIGN(pass, store->FillLateBackorders(100));
  EXPECT_EQ(pass.products, 2);
  EXPECT_EQ(pass.units, 0);
  EXPECT_THAT(pass.dropped, ::testing::ElementsAre(p.product_id));
  EXPECT_FALSE(Queued(1, p.product_id));
  EXPECT_TRUE(Queued(1, locked.product.product_id)) << "only locked";
  ASSERT_OK_AND_ASSIGN(after, store->GetProduct(p.product_id));
  EXPECT_EQ(after.backordered_quantity, 1);
  EXPECT_EQ(after.version, drifted.version);

  // The next pass has only the locked product's fill left.
  locked.held->Release();
  ASSERT_OK_AND_ASSIGN(next, store->FillLateBackorders(100));
  EXPECT_EQ(next.products, 1);
  EXPECT_EQ(next.units, 1);
  EXPECT_THAT(next.dropped, ::testing::IsEmpty());
  EXPECT_EQ(QueryInt(DsnOf(1), "SELECT count(*) FROM late_fills"), 0);
  set_backordered(0);
  EXPECT_EQ(CounterDrift(DsnOf(1)), 0);
}

// Reserves and releases on two BACKORDER products race late-fill passes,
// while another connection keeps locking a product's backordered rows for a
// moment so that fills skip them. Once the locks stop and the queue is drained, every
// backorder the stock can cover is covered and the counters match the rows.
TEST_F(ShardStorePgTest, LateFillsRacingReservationsLeaveNothingUnfilled) {
  constexpr int kProducts = 2;
  constexpr int kWorkers = 4;
  const absl::Duration kRun = absl::Seconds(2);
  auto store = Store(1);
  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  std::vector<int64_t> ids;
  for (int i = 0; i < kProducts; ++i) {
    ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 1, StockPolicy::kBackorder));
    ids.push_back(p.product_id);
  }
  const std::string mine = absl::StrCat("product_id IN (", IdList(ids), ")");
  std::atomic<bool> stop{false};
  std::atomic<int64_t> late_products{0};
  std::vector<std::string> errors(kWorkers + 2);
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      ShardStore s(1, Dsn(DsnOf(1)));
      // Two holds each, the oldest released first: 8 holds on 2 units,
      // so most are backordered and each release of a covered one fills.
      std::deque<ReservationRecord> held;
      for (int i = 0; !stop.load(); ++i) {
        if (held.size() >= 2) {
          auto r = s.Release(held.front().product_id, held.front().row_id);
          if (!r.ok()) errors[t] = r.status().ToString();
          held.pop_front();
        } else {
          auto r = s.Reserve(Command(ids[(i + t) % kProducts], 1));
          if (!r.ok()) errors[t] = r.status().ToString();
          if (r.ok()) held.push_back(r->reservation);
        }
      }
    });
  }
  threads.emplace_back([&] {
    ShardStore s(1, Dsn(DsnOf(1)));
    while (!stop.load()) {
      auto pass = s.FillLateBackorders(100);
      if (!pass.ok()) errors[kWorkers] = pass.status().ToString();
      if (pass.ok()) late_products += pass->products;
      // The counters never drift here: a drop would lose a fill.
      if (pass.ok() && !pass->dropped.empty()) {
        errors[kWorkers] = absl::StrCat("dropped product ", pass->dropped[0]);
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  threads.emplace_back([&] {
    try {
      pqxx::connection c(DsnOf(1));
      while (!stop.load()) {
        // Every backordered hold of one product: a fill meanwhile can
        // give its units to none of them.
        pqxx::work tx(c);
        tx.exec(absl::StrCat(
            "SELECT id FROM reservations WHERE product_id = ",
            ids[std::rand() % kProducts],
            " AND status = 1 AND backordered_quantity > 0"
            " FOR UPDATE SKIP LOCKED"));
        absl::SleepFor(absl::Milliseconds(20));
        tx.commit();
      }
    } catch (const std::exception& e) {
      errors[kWorkers + 1] = e.what();
    }
  });
  absl::SleepFor(kRun);
  stop = true;
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < errors.size(); ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
  }

  EXPECT_GT(late_products.load(), 0)
      << "no fill was queued: the race did not happen";

  // The race may have ended with every skipped fill already made by a later
  // change. End it with one that only the late fill can make: on each
  // product, a covered hold released while its backorders are locked.
  int lagging = 0;
  for (int64_t id : ids) {
    const int64_t covered = QueryInt(DsnOf(1), absl::StrCat(
        "SELECT id FROM reservations WHERE product_id = ", id,
        " AND status = 1 AND backordered_quantity = 0 LIMIT 1"));
    const int64_t waiting = QueryInt(DsnOf(1), absl::StrCat(
        "SELECT count(*) FROM reservations WHERE product_id = ", id,
        " AND status = 1 AND backordered_quantity > 0"));
    if (covered == 0 || waiting == 0) continue;
    HeldLock backorders(DsnOf(1),
                        "SELECT id FROM reservations WHERE product_id = "
                        "$1::bigint AND status = 1 AND backordered_quantity > 0"
                        " FOR UPDATE",
                        absl::StrCat(id));
    ASSERT_OK(store->Release(id, covered).status());
    backorders.Release();
    ++lagging;
  }
  ASSERT_GT(lagging, 0) << "no product ended with a covered and a backordered "
                           "hold";

  ASSERT_NO_FATAL_FAILURE(DrainLateFills(*store));
  EXPECT_EQ(QueryInt(DsnOf(1), absl::StrCat(
                "SELECT count(*) FROM products WHERE ", mine,
                " AND backordered_quantity > greatest(0, reserved_quantity"
                " + purchased_quantity - total_quantity)")),
            0)
      << "a backorder the stock covers was left unfilled";
  EXPECT_EQ(QueryInt(DsnOf(1), absl::StrCat(
                "SELECT count(*) FROM products p WHERE ", mine,
                " AND backordered_quantity <> (SELECT coalesce(sum("
                "r.backordered_quantity), 0) FROM reservations r WHERE"
                " r.product_id = p.product_id AND r.status IN (1, 2))")),
            0);
  EXPECT_EQ(CounterDrift(DsnOf(1)), 0);
}

// --------------------------------------------------- 5./6. concurrency

TEST_F(ShardStorePgTest, LastUnitRaceNeverOversells) {
  constexpr int kStock = 50;
  constexpr int kThreads = 16;
  constexpr int kAttempts = 10;
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, kStock));

  StartGate gate(kThreads);
  std::vector<int> granted(kThreads, 0), out_of_stock(kThreads, 0);
  std::vector<std::string> unexpected(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ShardStore s(0, Dsn(DsnOf(0)));
      absl::Status connected = s.EnsureConnected();
      gate.ArriveAndWait();
      if (!connected.ok()) {
        unexpected[t] = connected.ToString();
        return;
      }
      for (int i = 0; i < kAttempts; ++i) {
        auto r = s.Reserve(Command(p.product_id, 1));
        if (r.ok() && !r->replayed) {
          ++granted[t];
        } else if (!r.ok() && r.status().code() ==
                                  absl::StatusCode::kFailedPrecondition &&
                   ErrorReason(r.status()) == reason::kOutOfStock) {
          ++out_of_stock[t];
        } else {
          unexpected[t] = r.ok() ? "a replay" : r.status().ToString();
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  int total_granted = 0, total_refused = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(unexpected[t], "") << "thread " << t;
    total_granted += granted[t];
    total_refused += out_of_stock[t];
  }
  EXPECT_EQ(total_granted, kStock);
  EXPECT_EQ(total_refused, kThreads * kAttempts - kStock);
  ASSERT_OK_AND_ASSIGN(end, store->GetProduct(p.product_id));
  EXPECT_EQ(end.reserved_quantity, kStock);
  EXPECT_EQ(QueryInt(DsnOf(0),
                     absl::StrCat("SELECT count(*) FROM reservations WHERE "
                                  "product_id = ",
                                  p.product_id)),
            kStock);
  EXPECT_EQ(CounterDrift(DsnOf(0)), 0);
}

TEST_F(ShardStorePgTest, ConcurrentDuplicateRequestIdReservesOnce) {
  constexpr int kThreads = 12;
  auto store = Store(1);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 100));
  const ReserveCommand c = Command(p.product_id, 3);

  StartGate gate(kThreads);
  std::vector<absl::StatusOr<ReserveOutcome>> results(
      kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ShardStore s(1, Dsn(DsnOf(1)));
      absl::Status connected = s.EnsureConnected();
      gate.ArriveAndWait();
      results[t] = connected.ok() ? s.Reserve(c)
                                  : absl::StatusOr<ReserveOutcome>(connected);
    });
  }
  for (auto& th : threads) th.join();

  int fresh = 0;
  std::set<int64_t> row_ids;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(results[t].ok()) << "thread " << t << ": "
                                 << results[t].status();
    if (!results[t]->replayed) ++fresh;
    row_ids.insert(results[t]->reservation.row_id);
    EXPECT_EQ(results[t]->reservation.quantity, 3);
    EXPECT_EQ(results[t]->reservation.request_id, c.request_id);
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(row_ids.size(), 1u);
  EXPECT_EQ(RowsWithRequestId(1, c.request_id), 1);
  ASSERT_OK_AND_ASSIGN(end, store->GetProduct(p.product_id));
  EXPECT_EQ(end.reserved_quantity, 3);
  EXPECT_EQ(CounterDrift(DsnOf(1)), 0);
}

// ------------------------------------------- 7. the database's own guard

TEST_F(ShardStorePgTest, CheckConstraintsGuardTheCountersInTheDatabase) {
  auto store = Store(0);
  ASSERT_OK_AND_ASSIGN(strict, MakeProduct(*store, 10));
  ASSERT_OK_AND_ASSIGN(backorder,
                       MakeProduct(*store, 10, StockPolicy::kBackorder));
  const std::string dsn = DsnOf(0);
  auto where = [](int64_t id) {
    return absl::StrCat(" WHERE product_id = ", id);
  };

  // STRICT: one unit over the total is refused by strict_never_oversold,
  // through either counter.
  try {
    Exec(dsn, "UPDATE products SET reserved_quantity = total_quantity + 1" +
                  where(strict.product_id));
    ADD_FAILURE() << "STRICT reserved_quantity > total was accepted";
  } catch (const pqxx::check_violation& e) {
    EXPECT_THAT(e.what(), HasSubstr("strict_never_oversold"));
  }
  try {
    Exec(dsn,
         "UPDATE products SET reserved_quantity = 6, purchased_quantity = 5" +
             where(strict.product_id));
    ADD_FAILURE() << "STRICT reserved + purchased > total was accepted";
  } catch (const pqxx::check_violation& e) {
    EXPECT_THAT(e.what(), HasSubstr("strict_never_oversold"));
  }

  // BACKORDER: the units covered by stock (held + sold - backordered) may
  // not exceed the total, and no more units than held or sold may be
  // backordered; both are refused by backorder_never_oversold.
  for (const char* set :
       {"reserved_quantity = total_quantity + 1",
        "reserved_quantity = 6, purchased_quantity = 6, "
        "backordered_quantity = 1",
        "reserved_quantity = 1, backordered_quantity = 2"}) {
    SCOPED_TRACE(set);
    try {
      Exec(dsn, absl::StrCat("UPDATE products SET ", set) +
                    where(backorder.product_id));
      ADD_FAILURE() << "BACKORDER update accepted";
    } catch (const pqxx::check_violation& e) {
      EXPECT_THAT(e.what(), HasSubstr("backorder_never_oversold"));
    }
  }

  // Exactly the total is fine (in a transaction that is rolled back), and a
  // BACKORDER product holds any number of units beyond its stock as long as
  // they are backordered.
  {
    pqxx::connection c(dsn);
    pqxx::work tx(c);
    pqxx::result r = tx.exec(
        "UPDATE products SET reserved_quantity = 6, purchased_quantity = 4" +
        where(strict.product_id) + " RETURNING reserved_quantity");
    EXPECT_EQ(r.affected_rows(), 1u);
    r = tx.exec(
        "UPDATE products SET reserved_quantity = 1000, purchased_quantity = 10, "
        "backordered_quantity = 1000" +
        where(backorder.product_id) + " RETURNING reserved_quantity");
    ASSERT_EQ(r.affected_rows(), 1u);
    EXPECT_EQ(r[0][0].as<int64_t>(), 1000);
    tx.abort();
  }

  // Negative counters are refused whatever the policy.
  for (int64_t id : {strict.product_id, backorder.product_id}) {
    SCOPED_TRACE(id);
    for (const char* set :
         {"reserved_quantity = -1", "purchased_quantity = -1",
          "total_quantity = -1"}) {
      EXPECT_THROW(Exec(dsn, absl::StrCat("UPDATE products SET ", set) +
                                 where(id)),
                   pqxx::check_violation)
          << set;
    }
  }

  // A request id maps to at most one reservation row.
  ASSERT_OK_AND_ASSIGN(held, store->Reserve(Command(backorder.product_id, 1)));
  {
    pqxx::connection c(dsn);
    pqxx::work tx(c);
    EXPECT_THROW(
        tx.exec_params(
            "INSERT INTO reservations (product_id, quantity, status, "
            "customer_id, request_id, expire_time) "
            "VALUES ($1, 1, 1, 'x', $2, now())",
            backorder.product_id, held.reservation.request_id),
        pqxx::unique_violation);
  }

  // Nothing of the above stuck.
  ASSERT_OK_AND_ASSIGN(s_now, store->GetProduct(strict.product_id));
  EXPECT_EQ(s_now.reserved_quantity, 0);
  EXPECT_EQ(s_now.purchased_quantity, 0);
  EXPECT_EQ(s_now.total_quantity, 10);
  ASSERT_OK_AND_ASSIGN(b_now, store->GetProduct(backorder.product_id));
  EXPECT_EQ(b_now.reserved_quantity, 1);
  EXPECT_EQ(b_now.total_quantity, 10);
  EXPECT_EQ(CounterDrift(dsn), 0);
}

// ------------------------- 8. listings, plans and session settings

// Listings with and without a product filter are separate statements
// (generic plans): each shape returns exactly its rows, in id order, and
// pages after an id.
TEST_F(ShardStorePgTest, ListingsFilterByProductAndStatusAndPage) {
  auto store = Store(1);
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(*store, 10));
  ASSERT_OK_AND_ASSIGN(other, MakeProduct(*store, 10));
  std::vector<int64_t> held;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(out, store->Reserve(Command(p.product_id, 1)));
    held.push_back(out.reservation.row_id);
  }
  ASSERT_OK_AND_ASSIGN(o, store->Reserve(Command(other.product_id, 1)));
  ASSERT_OK(store->Commit(p.product_id, held[0]).status());
  auto ids = [](const std::vector<ReservationRecord>& rows) {
    std::vector<int64_t> out;
    for (const auto& r : rows) out.push_back(r.row_id);
    return out;
  };
  const int pending = static_cast<int>(ReservationStatus::kPending);
  const int purchased = static_cast<int>(ReservationStatus::kPurchased);

  ASSERT_OK_AND_ASSIGN(of_p, store->ListReservations({p.product_id, 0}, 0, 10));
  EXPECT_THAT(ids(of_p), ::testing::ElementsAre(held[0], held[1], held[2]));
  ASSERT_OK_AND_ASSIGN(p_pending,
                       store->ListReservations({p.product_id, pending}, 0, 10));
  EXPECT_THAT(ids(p_pending), ::testing::ElementsAre(held[1], held[2]));
  ASSERT_OK_AND_ASSIGN(p_page,
                       store->ListReservations({p.product_id, 0}, held[0], 1));
  EXPECT_THAT(ids(p_page), ::testing::ElementsAre(held[1]));

  // No product filter: every product of the shard from the first hold on.
  ASSERT_OK_AND_ASSIGN(all, store->ListReservations({0, 0}, held[0] - 1, 100));
  const std::vector<int64_t> all_ids = ids(all);
  EXPECT_THAT(all_ids, ::testing::IsSupersetOf(
                           {held[0], held[1], held[2], o.reservation.row_id}));
  EXPECT_TRUE(std::is_sorted(all_ids.begin(), all_ids.end()));
  ASSERT_OK_AND_ASSIGN(bought,
                       store->ListReservations({0, purchased}, held[0] - 1, 100));
  for (const auto& r : bought) {
    EXPECT_EQ(r.status, ReservationStatus::kPurchased);
  }
  EXPECT_THAT(ids(bought), ::testing::Contains(held[0]));
  EXPECT_THAT(ids(bought), Not(::testing::Contains(held[1])));

  // Stock adjustments: of one product, and of every product.
  AdjustStockCommand adjust;
  adjust.product_id = p.product_id;
  adjust.delta = 5;
  adjust.reason = 1;
  adjust.actor = "test";
  ASSERT_OK(store->AdjustStock(adjust).status());
  adjust.product_id = other.product_id;
  ASSERT_OK(store->AdjustStock(adjust).status());
  ASSERT_OK_AND_ASSIGN(adj_p, store->ListStockAdjustments(p.product_id, 0, 10));
  ASSERT_EQ(adj_p.size(), 1u);
  EXPECT_EQ(adj_p[0].product_id, p.product_id);
  EXPECT_EQ(adj_p[0].total_after, 15);
  ASSERT_OK_AND_ASSIGN(adj_all,
                       store->ListStockAdjustments(0, adj_p[0].id - 1, 10));
  ASSERT_GE(adj_all.size(), 2u);
  EXPECT_EQ(adj_all[0].id, adj_p[0].id);
  EXPECT_EQ(adj_all[1].product_id, other.product_id);
}

// Sessions plan each statement once, for any parameters
// (plan_cache_mode = force_generic_plan): every statement's generic plan must
// find its rows by index, and a page of one product's listing must read only
// that page (no sort of the product's whole history, which for a hot
// product is millions of rows).
TEST_F(ShardStorePgTest, GenericPlanOfEveryStatementUsesIndexes) {
  pqxx::connection c(DsnOf(0));
  pqxx::nontransaction tx(c);
  tx.exec(PlannerSettings());
  const auto statements = PreparedStatements();
  ASSERT_GT(statements.size(), 10u);
  for (const auto& [name, sql] : statements) {
    SCOPED_TRACE(name);
    tx.exec(absl::StrCat("PREPARE ", name, " AS ", sql));
    const int params =
        tx.exec1(absl::StrCat("SELECT coalesce(array_length(parameter_types, "
                              "1), 0) FROM pg_prepared_statements WHERE name = ",
                              tx.quote(name)))[0]
            .as<int>();
    std::vector<std::string> nulls(params, "NULL");
    std::string plan;
    for (const auto& row :
         tx.exec(absl::StrCat("EXPLAIN EXECUTE ", name, "(",
                              absl::StrJoin(nulls, ", "), ")"))) {
      absl::StrAppend(&plan, row[0].as<std::string>(), "\n");
    }
    EXPECT_THAT(plan, Not(HasSubstr("Seq Scan"))) << plan;
    if (name == "list_product_reservations" ||
        name == "list_product_adjustments") {
      EXPECT_THAT(plan, Not(HasSubstr("Sort"))) << plan;
    }
    if (name == "late_fill_pick") {  // the queue, oldest first
      EXPECT_THAT(plan, HasSubstr("late_fills_queued")) << plan;
      EXPECT_THAT(plan, Not(HasSubstr("Sort"))) << plan;
    }
    if (name == "late_fill_drop_drifted") {  // the backordered rows only
      EXPECT_THAT(plan, HasSubstr("reservations_backordered")) << plan;
    }
    if (name == "late_fill_run" || name == "late_fill_mark") {
      EXPECT_THAT(plan, HasSubstr("Index Cond: (product_id = ANY")) << plan;
    }
  }
}

// The memory map of a local backend, as the lines naming PostgreSQL's JIT
// provider (llvmjit.so); nullopt if the map cannot be read (another user's
// process without CAP_SYS_PTRACE).
std::optional<std::string> JitLinesOf(int64_t pid) {
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  std::string line;
  if (!maps.is_open() || !std::getline(maps, line)) return std::nullopt;
  std::string jit;
  do {
    if (line.find("llvmjit") != std::string::npos) jit += line;
  } while (std::getline(maps, line));
  return jit;
}

// With sequential scans off, the probe's read of the one-row shard_identity
// and the event trigger's update of inventory_event_seq were costed at 1e10
// and compiled by LLVM at every execution (8-50 ms of CPU each). The backend
// of a store that has probed its shard and emitted an event must never have
// loaded PostgreSQL's JIT provider. The shards run on this machine, so
// backends' memory maps can be read here; a control session that forces JIT
// shows the check can see it.
TEST_F(ShardStorePgTest, ServiceStatementsNeverStartTheJitCompiler) {
  {
    pqxx::connection c(DsnOf(0));
    pqxx::nontransaction tx(c);
    tx.exec("SET jit = on; SET jit_above_cost = 0");
    tx.exec("SELECT sum(product_id) FROM products");
    const auto control =
        JitLinesOf(tx.exec1("SELECT pg_backend_pid()")[0].as<int64_t>());
    if (!control.has_value() || control->empty()) {
      GTEST_SKIP() << "this machine cannot show a backend's JIT provider "
                      "(no llvmjit, or the maps of the postgres user's "
                      "processes are not readable)";
    }
  }
  ShardStoreOptions options;
  options.application_name = absl::StrCat("jit-probe-", getpid());
  ShardStore store(0, Dsn(DsnOf(0)), options);
  ASSERT_OK(store.CheckIdentity(kShards));
  ASSERT_OK_AND_ASSIGN(p, MakeProduct(store, 1));
  const int64_t events_before = QueryInt(
      DsnOf(0), "SELECT last_id FROM inventory_event_seq");
  // The last unit: OUT_OF_STOCK, written by the products trigger.
  ASSERT_OK(store.Reserve(Command(p.product_id, 1)).status());
  ASSERT_OK(store.CheckIdentity(kShards));
  EXPECT_GT(QueryInt(DsnOf(0), "SELECT last_id FROM inventory_event_seq"),
            events_before);

  const int64_t pid = QueryInt(
      DsnOf(0), absl::StrCat("SELECT pid FROM pg_stat_activity "
                             "WHERE application_name = '",
                             options.application_name, "'"));
  const auto jit = JitLinesOf(pid);
  ASSERT_TRUE(jit.has_value()) << "backend " << pid;
  EXPECT_EQ(*jit, "") << "backend " << pid << " loaded the JIT provider";
}

// -------------------------------------------------- 9. unreachable shard

// A shard restart closes every session. A call that must not run twice
// (CreateProduct, AdjustStock, UpdateProduct) has no retry after a broken
// connection, so the store must see the closed session before it sends the
// call's first statement: the call then runs on a new connection and
// succeeds, instead of failing UNAVAILABLE "connection lost".
TEST_F(ShardStorePgTest, NonIdempotentCallAfterTheServerClosedTheSessionRuns) {
  ShardStoreOptions options;
  options.application_name = absl::StrCat("closed-by-server-", getpid());
  ShardStore store(1, Dsn(DsnOf(1)), options);
  ASSERT_OK_AND_ASSIGN(first, MakeProduct(store, 5));
  const std::string mine = absl::StrCat(
      "FROM pg_stat_activity WHERE application_name = '",
      options.application_name, "'");
  const int64_t old_pid = QueryInt(DsnOf(1), absl::StrCat("SELECT pid ", mine));
  ASSERT_GT(old_pid, 0);
  ASSERT_EQ(QueryInt(DsnOf(1),
                     absl::StrCat("SELECT count(*) FROM (SELECT "
                                  "pg_terminate_backend(pid) ",
                                  mine, ") t")),
            1);
  // The backend sends its goodbye and closes the socket.
  ASSERT_TRUE(PollUntil([&] {
    return QueryInt(DsnOf(1), absl::StrCat("SELECT count(*) ", mine)) == 0;
  }, kPollTimeout));

  absl::StatusOr<ProductRecord> second = MakeProduct(store, 7);
  ASSERT_OK(second.status());
  EXPECT_EQ(second->total_quantity, 7);
  AdjustStockCommand adjust;
  adjust.product_id = first.product_id;
  adjust.delta = 3;
  adjust.reason = 1;
  ASSERT_OK_AND_ASSIGN(adjusted, store.AdjustStock(adjust));
  EXPECT_EQ(adjusted.total_quantity, 8);
  const int64_t new_pid = QueryInt(DsnOf(1), absl::StrCat("SELECT pid ", mine));
  EXPECT_GT(new_pid, 0);
  EXPECT_NE(new_pid, old_pid);
}

TEST_F(ShardStorePgTest, UnreachableShardIsUnavailableWithoutLeakingTheDsn) {
  // A loopback port that is bound but not listening: connections to it are
  // refused, and nobody else can take it while we hold it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  const std::string secret = "Sup3rS3cret-pw";
  ShardStore store(5, Dsn(absl::StrCat("host=127.0.0.1 port=", port,
                                       " dbname=x user=x password=", secret,
                                       " connect_timeout=1")));
  auto check = [&](const absl::Status& s, const char* what) {
    SCOPED_TRACE(what);
    EXPECT_TRUE(HasError(s, absl::StatusCode::kUnavailable,
                         reason::kShardUnavailable));
    EXPECT_EQ(Meta(s)["shard"], "5");
    EXPECT_THAT(std::string(s.message()),
                AllOf(Not(HasSubstr(secret)), Not(HasSubstr("password")),
                      Not(HasSubstr("host="))));
    for (const auto& [k, v] : ErrorMetadataOf(s)) {
      EXPECT_THAT(v, Not(HasSubstr(secret))) << k;
    }
  };
  const absl::Time start = absl::Now();
  check(store.Ping(), "Ping");
  check(store.Reserve(Command(NewProductId(1), 1)).status(), "Reserve");
  check(store.GetProduct(NewProductId(1)).status(), "GetProduct");
  check(store.Bootstrap(kShards), "Bootstrap");
  // Refused connections fail fast; nothing waits for a timeout.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  close(fd);
}

}  // namespace
}  // namespace inventory
