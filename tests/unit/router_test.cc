// Unit tests of the router (include/inventory/routing/router.h): product id to
// shard by mathematical modulo (always in [0, N), also for negative, zero and
// extreme ids), reservations following their product, and the reservation id
// format "r<product>-<row>": round trips and rejection of every malformed id
// with INVALID_ARGUMENT / reason INVALID_ARGUMENT.
#include "inventory/routing/router.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(RouterTest, ShardCountIsKept) {
  EXPECT_EQ(Router(1).shard_count(), 1);
  EXPECT_EQ(Router(7).shard_count(), 7);
}

TEST(RouterTest, SingleShardTakesEveryProduct) {
  Router router(1);
  for (int64_t id : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{42},
                     int64_t{-42}, kMax, kMin, kMax - 1, kMin + 1}) {
    EXPECT_EQ(router.ShardForProduct(id), 0) << "product " << id;
  }
}

TEST(RouterTest, SevenShardsUseModulo) {
  Router router(7);
  EXPECT_EQ(router.ShardForProduct(0), 0);
  EXPECT_EQ(router.ShardForProduct(1), 1);
  EXPECT_EQ(router.ShardForProduct(6), 6);
  EXPECT_EQ(router.ShardForProduct(7), 0);
  EXPECT_EQ(router.ShardForProduct(8), 1);
  EXPECT_EQ(router.ShardForProduct(13), 6);
  EXPECT_EQ(router.ShardForProduct(700), 0);
  EXPECT_EQ(router.ShardForProduct(1000003), 1000003 % 7);
}

TEST(RouterTest, NegativeIdsUseMathematicalModulo) {
  Router router(7);
  EXPECT_EQ(router.ShardForProduct(-1), 6);
  EXPECT_EQ(router.ShardForProduct(-6), 1);
  EXPECT_EQ(router.ShardForProduct(-7), 0);
  EXPECT_EQ(router.ShardForProduct(-8), 6);
  EXPECT_EQ(router.ShardForProduct(-14), 0);
}

TEST(RouterTest, ExtremeIds) {
  Router router(7);
  // INT64_MAX = 9223372036854775807 = 7 * 1317624576693539401.
  EXPECT_EQ(router.ShardForProduct(kMax), 0);
  EXPECT_EQ(router.ShardForProduct(kMax - 1), 6);
  // INT64_MIN = -(INT64_MAX + 1), so INT64_MIN mod 7 = 7 - 1 = 6.
  EXPECT_EQ(router.ShardForProduct(kMin), 6);
  EXPECT_EQ(router.ShardForProduct(kMin + 1), 0);
}

TEST(RouterTest, ResultAlwaysInRangeAndConsistentWithModulo) {
  for (int n : {1, 2, 3, 7, 16, 1000}) {
    Router router(n);
    std::vector<int64_t> ids = {0, 1, -1, kMax, kMin, kMax - 1, kMin + 1};
    for (int64_t i = -2000; i <= 2000; i += 3) ids.push_back(i);
    for (int64_t i = 0; i < 200; ++i) {
      ids.push_back(kMax - i);
      ids.push_back(kMin + i);
      ids.push_back(int64_t{1} << (i % 63));
      ids.push_back(-(int64_t{1} << (i % 63)));
    }
    for (int64_t id : ids) {
      const int shard = router.ShardForProduct(id);
      ASSERT_GE(shard, 0) << "n=" << n << " id=" << id;
      ASSERT_LT(shard, n) << "n=" << n << " id=" << id;
      // Mathematical modulo, computed in 128 bits where nothing overflows.
      const __int128 ref = ((static_cast<__int128>(id) % n) + n) % n;
      ASSERT_EQ(shard, static_cast<int>(ref)) << "n=" << n << " id=" << id;
    }
  }
}

TEST(RouterTest, ShardForReservationFollowsProduct) {
  Router router(7);
  for (int64_t product : {int64_t{1}, int64_t{6}, int64_t{7}, int64_t{13},
                          int64_t{123456789}, kMax}) {
    for (int64_t row : {int64_t{1}, int64_t{2}, int64_t{999}, kMax}) {
      EXPECT_EQ(router.ShardForReservation({product, row}),
                router.ShardForProduct(product))
          << "product " << product << " row " << row;
    }
  }
  // The row id never moves a reservation: same product, any row, one shard.
  EXPECT_EQ(router.ShardForReservation({10, 1}), 3);
  EXPECT_EQ(router.ShardForReservation({10, 6}), 3);
}

TEST(RouterDeathTest, ZeroShardsAborts) {
  EXPECT_DEATH({ Router router(0); (void)router; }, "");
  EXPECT_DEATH({ Router router(-3); (void)router; }, "");
}

TEST(ReservationIdTest, FormatIsRProductDashRow) {
  EXPECT_EQ(FormatReservationId({42, 1007}), "r42-1007");
  EXPECT_EQ(FormatReservationId({1, 1}), "r1-1");
  EXPECT_EQ(FormatReservationId({kMax, kMax}),
            "r9223372036854775807-9223372036854775807");
}

TEST(ReservationIdTest, RoundTrip) {
  const std::vector<ReservationKey> keys = {
      {1, 1}, {42, 1007}, {7, 123456789}, {kMax, 1}, {1, kMax},
      {kMax, kMax}, {1000000000000, 999999999999}};
  for (const ReservationKey& key : keys) {
    const std::string id = FormatReservationId(key);
    absl::StatusOr<ReservationKey> parsed = ParseReservationId(id);
    ASSERT_TRUE(parsed.ok()) << id << ": " << parsed.status();
    EXPECT_EQ(parsed->product_id, key.product_id) << id;
    EXPECT_EQ(parsed->row_id, key.row_id) << id;
    EXPECT_EQ(FormatReservationId(*parsed), id);
  }
}

TEST(ReservationIdTest, ParsesIssuedId) {
  absl::StatusOr<ReservationKey> key = ParseReservationId("r42-1007");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->product_id, 42);
  EXPECT_EQ(key->row_id, 1007);
}

void ExpectRejected(const std::string& id) {
  absl::StatusOr<ReservationKey> key = ParseReservationId(id);
  ASSERT_FALSE(key.ok()) << "accepted \"" << id << "\" as product "
                         << key->product_id << " row " << key->row_id;
  EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument) << id;
  EXPECT_EQ(ErrorReason(key.status()), reason::kInvalidArgument) << id;
}

TEST(ReservationIdTest, RejectsMalformedIds) {
  const std::vector<std::string> bad = {
      "",
      "r",
      "r1",
      "r1-",
      "r-1",
      "r0-1",
      "r01-2",
      "r1-0",
      "r1-01",
      "x1-2",
      "R1-2",
      "1-2",
      "r1-2-3",
      "r1-2 ",
      " r1-2",
      "r1 -2",
      "r+1-2",
      "r1-+2",
      "r-5-2",
      "r1--2",
      "r1_2",
      "r1.5-2",
      "r0x1-2",
      "r１-2",  // full-width digit one (UTF-8)
      "r99999999999999999999-1",   // 20 digits: overflows int64
      "r1-99999999999999999999",   // 20 digits: overflows int64
      "r9223372036854775808-1",    // INT64_MAX + 1
      "r1-9223372036854775808",    // INT64_MAX + 1
      "r9999999999999999999-1",    // 19 digits, above INT64_MAX
  };
  for (const std::string& id : bad) {
    SCOPED_TRACE("id=\"" + id + "\"");
    ExpectRejected(id);
  }
}

TEST(ReservationIdTest, RejectsVeryLongId) {
  std::string id = "r1-" + std::string(997, '1');
  ASSERT_EQ(id.size(), 1000u);
  ExpectRejected(id);
  // Long run of leading characters before a valid-looking tail.
  ExpectRejected(std::string(998, 'r') + "-1");
}

TEST(ReservationIdTest, RejectsEmbeddedNul) {
  ExpectRejected(std::string("r1\0-2", 5));
  ExpectRejected(std::string("r1-2\0", 5));
  ExpectRejected(std::string("r1-\0" "2", 5));
  ExpectRejected(std::string("\0r1-2", 5));
}

TEST(ReservationIdTest, ErrorNamesTheField) {
  absl::StatusOr<ReservationKey> key = ParseReservationId("nope");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("reservation_id"),
            absl::string_view::npos)
      << key.status();
}

}  // namespace
}  // namespace inventory
