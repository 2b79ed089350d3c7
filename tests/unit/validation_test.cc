// Unit tests of request validation at the API edge
// (include/inventory/api/validation.h): every rule of ReserveItem (request_id,
// product_id, quantity, customer_id, hold_ttl and its default), CreateProduct
// (ids, quantities, stock policy), ValidateProductId, reservation ids and
// GetAvailability (count limits, bad ids named by index, de-duplication).
// Rejections must be INVALID_ARGUMENT with reason INVALID_ARGUMENT and a
// google.rpc.BadRequest payload naming every bad field.
#include "inventory/api/validation.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// The BadRequest payload of `status`, or nullopt if it has none.
std::optional<google::rpc::BadRequest> BadRequestOf(const absl::Status& status) {
  auto payload = status.GetPayload(kBadRequestTypeUrl);
  if (!payload.has_value()) return std::nullopt;
  google::rpc::BadRequest bad;
  if (!bad.ParseFromString(std::string(*payload))) return std::nullopt;
  return bad;
}

// The field names of the BadRequest violations in `status`, in order.
std::vector<std::string> ViolatedFields(const absl::Status& status) {
  std::vector<std::string> fields;
  auto bad = BadRequestOf(status);
  if (!bad.has_value()) return fields;
  for (const auto& v : bad->field_violations()) fields.push_back(v.field());
  return fields;
}

// Checks that `status` is INVALID_ARGUMENT / INVALID_ARGUMENT whose BadRequest
// names exactly `fields` (in order); every violation has a description.
void ExpectInvalid(const absl::Status& status,
                   const std::vector<std::string>& fields) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_EQ(ErrorReason(status), reason::kInvalidArgument) << status;
  auto bad = BadRequestOf(status);
  ASSERT_TRUE(bad.has_value()) << "no BadRequest payload: " << status;
  EXPECT_EQ(ViolatedFields(status), fields) << status;
  for (const auto& v : bad->field_violations()) {
    EXPECT_FALSE(v.description().empty()) << v.field();
    // The message names each bad field too, for humans reading logs.
    EXPECT_NE(status.message().find(v.field()), absl::string_view::npos)
        << status;
  }
}

inventory::v1::ReserveItemRequest GoodReserve() {
  inventory::v1::ReserveItemRequest r;
  r.set_request_id("req-1");
  r.set_product_id(42);
  r.set_quantity(1);
  r.set_customer_id("customer-7");
  return r;
}

void SetTtl(inventory::v1::ReserveItemRequest* r, int64_t seconds,
            int32_t nanos) {
  r->mutable_hold_ttl()->set_seconds(seconds);
  r->mutable_hold_ttl()->set_nanos(nanos);
}

// --- ReserveItem ---------------------------------------------------------------

TEST(ValidateReserveTest, GoodRequestBecomesCommand) {
  RequestLimits limits;
  auto request = GoodReserve();
  absl::StatusOr<ReserveCommand> c = ValidateReserve(request, limits);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->request_id, "req-1");
  EXPECT_EQ(c->product_id, 42);
  EXPECT_EQ(c->quantity, 1);
  EXPECT_EQ(c->customer_id, "customer-7");
}

TEST(ValidateReserveTest, RequestIdRequired) {
  auto r = GoodReserve();
  r.clear_request_id();
  ExpectInvalid(ValidateReserve(r, {}).status(), {"request_id"});
}

TEST(ValidateReserveTest, RequestIdLength) {
  RequestLimits limits;
  auto r = GoodReserve();
  r.set_request_id("a");
  EXPECT_TRUE(ValidateReserve(r, limits).ok());
  r.set_request_id(std::string(128, 'x'));
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, limits);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->request_id, std::string(128, 'x'));
  r.set_request_id(std::string(129, 'x'));
  ExpectInvalid(ValidateReserve(r, limits).status(), {"request_id"});
  r.set_request_id(std::string(10000, 'x'));
  ExpectInvalid(ValidateReserve(r, limits).status(), {"request_id"});
}

TEST(ValidateReserveTest, RequestIdAllowedCharacters) {
  auto r = GoodReserve();
  r.set_request_id(
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, {});
  EXPECT_TRUE(c.ok()) << c.status();
  r.set_request_id("550e8400-e29b-41d4-a716-446655440000");
  EXPECT_TRUE(ValidateReserve(r, {}).ok());
  r.set_request_id("order:17.line_2");
  EXPECT_TRUE(ValidateReserve(r, {}).ok());
}

TEST(ValidateReserveTest, RequestIdBadCharacters) {
  for (const std::string& id :
       {std::string("has space"), std::string("a/b"), std::string("a\\b"),
        std::string("caf\xc3\xa9"), std::string("\xe2\x82\xac"),
        std::string("a+b"), std::string("a=b"), std::string("a,b"),
        std::string("a\tb"), std::string("a\nb"), std::string("a\0b", 3),
        std::string(" "), std::string("a'b"), std::string("a\"b"),
        std::string("a%b"), std::string("a@b"), std::string("x ")}) {
    SCOPED_TRACE("request_id=\"" + id + "\"");
    auto r = GoodReserve();
    r.set_request_id(id);
    ExpectInvalid(ValidateReserve(r, {}).status(), {"request_id"});
  }
}

TEST(ValidateReserveTest, ProductIdMustBePositive) {
  for (int64_t id : {int64_t{0}, int64_t{-1}, kInt64Min}) {
    auto r = GoodReserve();
    r.set_product_id(id);
    SCOPED_TRACE(id);
    ExpectInvalid(ValidateReserve(r, {}).status(), {"product_id"});
  }
  auto r = GoodReserve();
  r.set_product_id(1);
  EXPECT_TRUE(ValidateReserve(r, {}).ok());
  r.set_product_id(kInt64Max);
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->product_id, kInt64Max);
}

TEST(ValidateReserveTest, QuantityRange) {
  RequestLimits limits;
  limits.max_quantity = 50;
  for (int64_t q : {int64_t{1}, int64_t{2}, int64_t{50}}) {
    auto r = GoodReserve();
    r.set_quantity(q);
    absl::StatusOr<ReserveCommand> c = ValidateReserve(r, limits);
    ASSERT_TRUE(c.ok()) << q << ": " << c.status();
    EXPECT_EQ(c->quantity, q);
  }
  for (int64_t q : {int64_t{0}, int64_t{-1}, int64_t{51}, kInt64Max,
                    kInt64Min}) {
    auto r = GoodReserve();
    r.set_quantity(q);
    SCOPED_TRACE(q);
    ExpectInvalid(ValidateReserve(r, limits).status(), {"quantity"});
  }
}

TEST(ValidateReserveTest, QuantityDefaultLimit) {
  RequestLimits limits;  // max_quantity = 10000
  auto r = GoodReserve();
  r.set_quantity(limits.max_quantity);
  EXPECT_TRUE(ValidateReserve(r, limits).ok());
  r.set_quantity(limits.max_quantity + 1);
  ExpectInvalid(ValidateReserve(r, limits).status(), {"quantity"});
}

TEST(ValidateReserveTest, CustomerIdRequired) {
  auto r = GoodReserve();
  r.clear_customer_id();
  ExpectInvalid(ValidateReserve(r, {}).status(), {"customer_id"});
}

TEST(ValidateReserveTest, CustomerIdLengthInBytes) {
  auto r = GoodReserve();
  r.set_customer_id(std::string(128, 'c'));
  EXPECT_TRUE(ValidateReserve(r, {}).ok());
  r.set_customer_id(std::string(129, 'c'));
  ExpectInvalid(ValidateReserve(r, {}).status(), {"customer_id"});
  // 64 two-byte characters = 128 bytes: accepted; one more byte: rejected.
  std::string accents;
  for (int i = 0; i < 64; ++i) accents += "\xc3\xa9";
  r.set_customer_id(accents);
  EXPECT_TRUE(ValidateReserve(r, {}).ok());
  r.set_customer_id(accents + "x");
  ExpectInvalid(ValidateReserve(r, {}).status(), {"customer_id"});
}

TEST(ValidateReserveTest, CustomerIdIsOpaqueButPrintable) {
  auto r = GoodReserve();
  // Opaque: spaces, punctuation and UTF-8 are fine.
  r.set_customer_id("Jos\xc3\xa9 O'Brien / shop#1");
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->customer_id, "Jos\xc3\xa9 O'Brien / shop#1");
  for (const std::string& id :
       {std::string("a\nb"), std::string("a\tb"), std::string("a\rb"),
        std::string("\x01"), std::string("a\x1f"), std::string("a\x7f"),
        std::string("a\0b", 3)}) {
    SCOPED_TRACE(testing::PrintToString(id));
    r.set_customer_id(id);
    ExpectInvalid(ValidateReserve(r, {}).status(), {"customer_id"});
  }
}

TEST(ValidateReserveTest, HoldTtlUnsetTakesDefault) {
  RequestLimits limits;
  limits.default_hold_ttl = absl::Minutes(7);
  auto r = GoodReserve();
  ASSERT_FALSE(r.has_hold_ttl());
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, limits);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hold_ttl, absl::Minutes(7));
  EXPECT_EQ(c->requested_ttl, absl::ZeroDuration());
}

TEST(ValidateReserveTest, HoldTtlBoundsAccepted) {
  RequestLimits limits;
  auto r = GoodReserve();
  SetTtl(&r, 1, 0);
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, limits);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hold_ttl, absl::Seconds(1));
  EXPECT_EQ(c->requested_ttl, absl::Seconds(1));

  SetTtl(&r, 24 * 3600, 0);
  c = ValidateReserve(r, limits);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hold_ttl, absl::Hours(24));
  EXPECT_EQ(c->requested_ttl, absl::Hours(24));

  SetTtl(&r, 90, 250000000);
  c = ValidateReserve(r, limits);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hold_ttl, absl::Milliseconds(90250));
  EXPECT_EQ(c->requested_ttl, absl::Milliseconds(90250));
}

TEST(ValidateReserveTest, HoldTtlKeptToTheMillisecond) {
  auto r = GoodReserve();
  SetTtl(&r, 2, 123456789);
  absl::StatusOr<ReserveCommand> c = ValidateReserve(r, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->requested_ttl, absl::Milliseconds(2123));
  EXPECT_EQ(c->hold_ttl, absl::Milliseconds(2123));
}

TEST(ValidateReserveTest, HoldTtlOutOfRangeRejected) {
  RequestLimits limits;
  struct Case {
    int64_t seconds;
    int32_t nanos;
  };
  for (const Case& c : {Case{0, 999000000},      // 999ms
                        Case{0, 0},              // zero
                        Case{0, 1},              // 1ns
                        Case{86400, 1},          // 24h + 1ns
                        Case{86401, 0},          // 24h + 1s
                        Case{-1, 0},             // negative
                        Case{-5, -500000000},    // negative, well formed
                        Case{kInt64Max, 0},      // huge
                        Case{kInt64Min, 0}}) {   // hugely negative
    SCOPED_TRACE(testing::Message() << c.seconds << "s " << c.nanos << "ns");
    auto r = GoodReserve();
    SetTtl(&r, c.seconds, c.nanos);
    ExpectInvalid(ValidateReserve(r, limits).status(), {"hold_ttl"});
  }
}

TEST(ValidateReserveTest, HoldTtlMalformedRejected) {
  struct Case {
    int64_t seconds;
    int32_t nanos;
  };
  // Not valid google.protobuf.Duration values; most would be in range if
  // seconds + nanos were taken at face value.
  for (const Case& c : {Case{10, 1000000000},    // nanos == 1e9
                        Case{10, 2000000000},    // nanos > 1e9
                        Case{10, -1000000000},   // nanos == -1e9
                        Case{10, -1},            // sign mismatch
                        Case{2, -500000000},     // sign mismatch: 1.5s
                        Case{-1, 999999999}}) {  // sign mismatch
    SCOPED_TRACE(testing::Message() << c.seconds << "s " << c.nanos << "ns");
    auto r = GoodReserve();
    SetTtl(&r, c.seconds, c.nanos);
    ExpectInvalid(ValidateReserve(r, {}).status(), {"hold_ttl"});
  }
}

TEST(ValidateReserveTest, CustomLimitsApply) {
  RequestLimits limits;
  limits.min_hold_ttl = absl::Seconds(30);
  limits.max_hold_ttl = absl::Minutes(5);
  auto r = GoodReserve();
  SetTtl(&r, 29, 0);
  ExpectInvalid(ValidateReserve(r, limits).status(), {"hold_ttl"});
  SetTtl(&r, 30, 0);
  EXPECT_TRUE(ValidateReserve(r, limits).ok());
  SetTtl(&r, 300, 0);
  EXPECT_TRUE(ValidateReserve(r, limits).ok());
  SetTtl(&r, 300, 1000000);
  ExpectInvalid(ValidateReserve(r, limits).status(), {"hold_ttl"});
}

TEST(ValidateReserveTest, EveryBadFieldIsReported) {
  inventory::v1::ReserveItemRequest r;  // all empty
  SetTtl(&r, 0, 5);
  absl::Status s = ValidateReserve(r, {}).status();
  ExpectInvalid(s, {"request_id", "product_id", "quantity", "customer_id",
                    "hold_ttl"});

  auto r2 = GoodReserve();
  r2.set_request_id("bad id");
  r2.set_quantity(0);
  r2.set_customer_id(std::string(129, 'c'));
  absl::Status s2 = ValidateReserve(r2, {}).status();
  ExpectInvalid(s2, {"request_id", "quantity", "customer_id"});
  auto bad = BadRequestOf(s2);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 3);
  EXPECT_NE(bad->field_violations(1).description().find("got 0"),
            std::string::npos)
      << bad->field_violations(1).description();
}

// --- reservation ids -----------------------------------------------------------

TEST(ValidateReservationIdTest, AcceptsIssuedIds) {
  absl::StatusOr<ReservationKey> k = ValidateReservationId("r42-1007");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->product_id, 42);
  EXPECT_EQ(k->row_id, 1007);
}

TEST(ValidateReservationIdTest, RejectsOthersNamingTheField) {
  for (const char* id : {"", "r0-1", "abc", "r1-2-3"}) {
    SCOPED_TRACE(id);
    ExpectInvalid(ValidateReservationId(id).status(), {"reservation_id"});
  }
}

// --- CreateProduct -------------------------------------------------------------

inventory::v1::CreateProductRequest GoodCreate() {
  inventory::v1::CreateProductRequest r;
  r.set_product_id(9);
  r.set_total_quantity(100);
  r.set_stock_policy(inventory::v1::STOCK_POLICY_STRICT);
  r.set_low_stock_threshold(5);
  return r;
}

TEST(ValidateCreateProductTest, GoodRequestBecomesNewProduct) {
  absl::StatusOr<NewProduct> p = ValidateCreateProduct(GoodCreate(), {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->product_id, 9);
  EXPECT_EQ(p->total_quantity, 100);
  EXPECT_EQ(p->stock_policy, StockPolicy::kStrict);
  EXPECT_EQ(p->low_stock_threshold, 5);
}

TEST(ValidateCreateProductTest, ZeroQuantitiesAllowed) {
  auto r = GoodCreate();
  r.set_total_quantity(0);
  r.set_low_stock_threshold(0);
  absl::StatusOr<NewProduct> p = ValidateCreateProduct(r, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->total_quantity, 0);
  EXPECT_EQ(p->low_stock_threshold, 0);
}

TEST(ValidateCreateProductTest, ProductIdMustBePositive) {
  for (int64_t id : {int64_t{0}, int64_t{-1}, kInt64Min}) {
    auto r = GoodCreate();
    r.set_product_id(id);
    SCOPED_TRACE(id);
    ExpectInvalid(ValidateCreateProduct(r, {}).status(), {"product_id"});
  }
}

TEST(ValidateCreateProductTest, TotalQuantityRange) {
  RequestLimits limits;
  auto r = GoodCreate();
  r.set_total_quantity(-1);
  ExpectInvalid(ValidateCreateProduct(r, limits).status(), {"total_quantity"});
  r.set_total_quantity(kInt64Min);
  ExpectInvalid(ValidateCreateProduct(r, limits).status(), {"total_quantity"});
  r.set_total_quantity(limits.max_total_quantity);
  EXPECT_TRUE(ValidateCreateProduct(r, limits).ok());
  r.set_total_quantity(limits.max_total_quantity + 1);
  ExpectInvalid(ValidateCreateProduct(r, limits).status(), {"total_quantity"});
  r.set_total_quantity(kInt64Max);
  ExpectInvalid(ValidateCreateProduct(r, limits).status(), {"total_quantity"});
}

TEST(ValidateCreateProductTest, LowStockThresholdRange) {
  RequestLimits limits;
  auto r = GoodCreate();
  r.set_low_stock_threshold(-1);
  ExpectInvalid(ValidateCreateProduct(r, limits).status(),
                {"low_stock_threshold"});
  r.set_low_stock_threshold(limits.max_total_quantity + 1);
  ExpectInvalid(ValidateCreateProduct(r, limits).status(),
                {"low_stock_threshold"});
  r.set_low_stock_threshold(limits.max_total_quantity);
  EXPECT_TRUE(ValidateCreateProduct(r, limits).ok());
}

TEST(ValidateCreateProductTest, StockPolicy) {
  auto r = GoodCreate();
  r.set_stock_policy(inventory::v1::STOCK_POLICY_UNSPECIFIED);
  absl::StatusOr<NewProduct> p = ValidateCreateProduct(r, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->stock_policy, StockPolicy::kStrict);

  r.set_stock_policy(inventory::v1::STOCK_POLICY_BACKORDER);
  p = ValidateCreateProduct(r, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->stock_policy, StockPolicy::kBackorder);

  r.set_stock_policy(inventory::v1::STOCK_POLICY_STRICT);
  p = ValidateCreateProduct(r, {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->stock_policy, StockPolicy::kStrict);
}

TEST(ValidateCreateProductTest, UnknownStockPolicyRejected) {
  for (int value : {99, 3, -1}) {
    auto r = GoodCreate();
    // An open proto3 enum keeps unknown numbers a newer client sends.
    r.set_stock_policy(static_cast<inventory::v1::StockPolicy>(value));
    SCOPED_TRACE(value);
    absl::Status s = ValidateCreateProduct(r, {}).status();
    ExpectInvalid(s, {"stock_policy"});
    EXPECT_NE(s.message().find(std::to_string(value)), absl::string_view::npos)
        << s;
  }
}

TEST(ValidateCreateProductTest, EveryBadFieldIsReported) {
  inventory::v1::CreateProductRequest r;
  r.set_product_id(-3);
  r.set_total_quantity(-1);
  r.set_low_stock_threshold(-1);
  r.set_stock_policy(static_cast<inventory::v1::StockPolicy>(99));
  ExpectInvalid(ValidateCreateProduct(r, {}).status(),
                {"product_id", "total_quantity", "low_stock_threshold",
                 "stock_policy"});
}

// --- ValidateProductId ---------------------------------------------------------

TEST(ValidateProductIdTest, PositiveAccepted) {
  EXPECT_TRUE(ValidateProductId(1).ok());
  EXPECT_TRUE(ValidateProductId(kInt64Max).ok());
}

TEST(ValidateProductIdTest, ZeroAndNegativeRejected) {
  for (int64_t id : {int64_t{0}, int64_t{-1}, kInt64Min}) {
    SCOPED_TRACE(id);
    ExpectInvalid(ValidateProductId(id), {"product_id"});
  }
}

// --- GetAvailability -----------------------------------------------------------

inventory::v1::GetAvailabilityRequest Ids(const std::vector<int64_t>& ids) {
  inventory::v1::GetAvailabilityRequest r;
  for (int64_t id : ids) r.add_product_ids(id);
  return r;
}

TEST(ValidateAvailabilityTest, NoIdsRejected) {
  ExpectInvalid(ValidateAvailability(Ids({}), {}).status(), {"product_ids"});
}

TEST(ValidateAvailabilityTest, TooManyIdsRejected) {
  RequestLimits limits;
  ASSERT_EQ(limits.max_availability_ids, 1000u);
  std::vector<int64_t> ids;
  for (int64_t i = 1; i <= 1000; ++i) ids.push_back(i);
  absl::StatusOr<std::vector<int64_t>> ok = ValidateAvailability(Ids(ids), limits);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 1000u);
  ids.push_back(1001);
  absl::Status s = ValidateAvailability(Ids(ids), limits).status();
  ExpectInvalid(s, {"product_ids"});
  EXPECT_NE(s.message().find("1001"), absl::string_view::npos) << s;
}

TEST(ValidateAvailabilityTest, CountLimitIsOnTheRequestNotTheUniqueIds) {
  // 1001 copies of one id are still 1001 ids to read off the wire.
  RequestLimits limits;
  std::vector<int64_t> ids(1001, 5);
  ExpectInvalid(ValidateAvailability(Ids(ids), limits).status(),
                {"product_ids"});
}

TEST(ValidateAvailabilityTest, BadIdsNamedByIndex) {
  absl::Status s =
      ValidateAvailability(Ids({5, -1, 6, 0, kInt64Min}), {}).status();
  ExpectInvalid(s, {"product_ids[1]", "product_ids[3]", "product_ids[4]"});
}

TEST(ValidateAvailabilityTest, DuplicatesRemovedKeepingOrder) {
  absl::StatusOr<std::vector<int64_t>> ids =
      ValidateAvailability(Ids({7, 3, 7, 9, 3, 3, 1, 9}), {});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(7, 3, 9, 1));
}

TEST(ValidateAvailabilityTest, SingleAndExtremeIds) {
  absl::StatusOr<std::vector<int64_t>> ids =
      ValidateAvailability(Ids({kInt64Max}), {});
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(kInt64Max));
}

TEST(ValidateAvailabilityTest, CustomLimit) {
  RequestLimits limits;
  limits.max_availability_ids = 2;
  EXPECT_TRUE(ValidateAvailability(Ids({1, 2}), limits).ok());
  ExpectInvalid(ValidateAvailability(Ids({1, 2, 3}), limits).status(),
                {"product_ids"});
}


TEST(ToDurationTest, WellFormedDurationsConvert) {
  google::protobuf::Duration d;
  d.set_seconds(1);
  d.set_nanos(500000000);
  EXPECT_EQ(ToDuration(d), absl::Milliseconds(1500));
  d.set_seconds(-1);
  d.set_nanos(-5);
  EXPECT_EQ(ToDuration(d), -(absl::Seconds(1) + absl::Nanoseconds(5)));
  d.set_seconds(0);
  d.set_nanos(-5);
  EXPECT_EQ(ToDuration(d), -absl::Nanoseconds(5));
}

TEST(ToDurationTest, MalformedDurationsAreRefused) {
  google::protobuf::Duration d;
  d.set_seconds(1);
  d.set_nanos(-5);  // signs differ
  EXPECT_EQ(ToDuration(d), std::nullopt);
  d.set_seconds(-1);
  d.set_nanos(5);
  EXPECT_EQ(ToDuration(d), std::nullopt);
  d.set_seconds(0);
  d.set_nanos(1000000000);  // nanos out of range
  EXPECT_EQ(ToDuration(d), std::nullopt);
  d.set_nanos(-1000000000);
  EXPECT_EQ(ToDuration(d), std::nullopt);
}

}  // namespace
}  // namespace inventory
