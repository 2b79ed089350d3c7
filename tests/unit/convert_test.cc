// Unit tests of the API edge conversions (include/inventory/api/convert.h):
// ToGrpcStatus keeps code and message and packs a google.rpc.Status into the
// gRPC error details, carrying the ErrorInfo (domain inventory.v1, reason,
// metadata), the BadRequest of invalid requests, and a fallback ErrorInfo for
// errors that carry none; ToProto fills every field of Reservation and
// Product (reservation id format, timestamps, non-negative availability,
// etag that follows the version).
#include "inventory/api/convert.h"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"
#include "inventory/routing/router.h"

namespace inventory {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// The google.rpc.Status in a gRPC status' error details.
google::rpc::Status RpcStatusOf(const grpc::Status& status) {
  google::rpc::Status rpc;
  EXPECT_TRUE(rpc.ParseFromString(status.error_details()))
      << "error_details is not a google.rpc.Status";
  return rpc;
}

// The single detail of type `Message` in `rpc`, if exactly one is there.
template <typename Message>
std::optional<Message> DetailOf(const google::rpc::Status& rpc) {
  std::optional<Message> found;
  int count = 0;
  for (const google::protobuf::Any& any : rpc.details()) {
    if (any.Is<Message>()) {
      ++count;
      Message m;
      if (!any.UnpackTo(&m)) return std::nullopt;
      found = m;
    }
  }
  if (count != 1) return std::nullopt;
  return found;
}

std::map<std::string, std::string> MetadataMap(
    const google::rpc::ErrorInfo& info) {
  return {info.metadata().begin(), info.metadata().end()};
}

// --- ToGrpcStatus ----------------------------------------------------------------

TEST(ToGrpcStatusTest, OkIsOk) {
  grpc::Status s = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OK);
  EXPECT_TRUE(s.error_message().empty());
  EXPECT_TRUE(s.error_details().empty());
}

TEST(ToGrpcStatusTest, ErrorInfoWithMetadata) {
  absl::Status error =
      MakeError(absl::StatusCode::kFailedPrecondition, reason::kOutOfStock,
                "product 42 has 3 units left, 5 requested",
                {{"productId", "42"}, {"requested", "5"}, {"available", "3"}});
  grpc::Status s = ToGrpcStatus(error);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "product 42 has 3 units left, 5 requested");

  google::rpc::Status rpc = RpcStatusOf(s);
  EXPECT_EQ(rpc.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_EQ(rpc.message(), s.error_message());
  EXPECT_EQ(rpc.details_size(), 1);
  auto info = DetailOf<google::rpc::ErrorInfo>(rpc);
  ASSERT_TRUE(info.has_value()) << rpc.DebugString();
  EXPECT_EQ(info->domain(), "inventory.v1");
  EXPECT_EQ(info->reason(), "OUT_OF_STOCK");
  EXPECT_THAT(MetadataMap(*info),
              UnorderedElementsAre(Pair("productId", "42"),
                                   Pair("requested", "5"),
                                   Pair("available", "3")));
  EXPECT_FALSE(DetailOf<google::rpc::BadRequest>(rpc).has_value());
}

TEST(ToGrpcStatusTest, AnyTypeUrlsAreTheStandardOnes) {
  grpc::Status s = ToGrpcStatus(InvalidArgumentError({{"quantity", "bad"}}));
  google::rpc::Status rpc = RpcStatusOf(s);
  ASSERT_EQ(rpc.details_size(), 2);
  EXPECT_EQ(rpc.details(0).type_url(),
            "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(rpc.details(1).type_url(),
            "type.googleapis.com/google.rpc.BadRequest");
}

TEST(ToGrpcStatusTest, EveryCodeKeepsItsNumber) {
  // absl and gRPC share the canonical code numbers.
  for (int code = 1; code <= 16; ++code) {
    const auto absl_code = static_cast<absl::StatusCode>(code);
    grpc::Status s = ToGrpcStatus(MakeError(absl_code, "R", "m"));
    EXPECT_EQ(static_cast<int>(s.error_code()), code);
    EXPECT_EQ(RpcStatusOf(s).code(), code);
    auto info = DetailOf<google::rpc::ErrorInfo>(RpcStatusOf(s));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->reason(), "R");
  }
}

TEST(ToGrpcStatusTest, InvalidArgumentCarriesErrorInfoAndBadRequest) {
  absl::Status error = InvalidArgumentError(
      {{"quantity", "must be between 1 and 10000, got 0"},
       {"customer_id", "is required"}});
  grpc::Status s = ToGrpcStatus(error);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), std::string(error.message()));

  google::rpc::Status rpc = RpcStatusOf(s);
  EXPECT_EQ(rpc.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  auto info = DetailOf<google::rpc::ErrorInfo>(rpc);
  ASSERT_TRUE(info.has_value()) << rpc.DebugString();
  EXPECT_EQ(info->domain(), "inventory.v1");
  EXPECT_EQ(info->reason(), "INVALID_ARGUMENT");

  auto bad = DetailOf<google::rpc::BadRequest>(rpc);
  ASSERT_TRUE(bad.has_value()) << rpc.DebugString();
  ASSERT_EQ(bad->field_violations_size(), 2);
  EXPECT_EQ(bad->field_violations(0).field(), "quantity");
  EXPECT_EQ(bad->field_violations(0).description(),
            "must be between 1 and 10000, got 0");
  EXPECT_EQ(bad->field_violations(1).field(), "customer_id");
  EXPECT_EQ(bad->field_violations(1).description(), "is required");
}

TEST(ToGrpcStatusTest, ShardUnavailableCarriesShard) {
  grpc::Status s = ToGrpcStatus(ShardUnavailableError(3, "connection refused"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  auto info = DetailOf<google::rpc::ErrorInfo>(RpcStatusOf(s));
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "SHARD_UNAVAILABLE");
  EXPECT_THAT(MetadataMap(*info), UnorderedElementsAre(Pair("shard", "3")));
}

TEST(ToGrpcStatusTest, PlainErrorGetsFallbackErrorInfo) {
  grpc::Status s = ToGrpcStatus(absl::InternalError("something broke"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(s.error_message(), "something broke");
  google::rpc::Status rpc = RpcStatusOf(s);
  EXPECT_EQ(rpc.code(), static_cast<int>(grpc::StatusCode::INTERNAL));
  EXPECT_EQ(rpc.message(), "something broke");
  EXPECT_EQ(rpc.details_size(), 1);
  auto info = DetailOf<google::rpc::ErrorInfo>(rpc);
  ASSERT_TRUE(info.has_value()) << rpc.DebugString();
  EXPECT_EQ(info->domain(), "inventory.v1");
  EXPECT_EQ(info->reason(), "INTERNAL");
  EXPECT_TRUE(info->metadata().empty());
}

TEST(ToGrpcStatusTest, FallbackReasonFollowsCode) {
  struct Case {
    absl::Status status;
    grpc::StatusCode code;
    const char* reason;
  };
  for (const Case& c :
       {Case{absl::DeadlineExceededError("late"),
             grpc::StatusCode::DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"},
        Case{absl::InvalidArgumentError("bad"),
             grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT"},
        Case{absl::UnavailableError("down"), grpc::StatusCode::UNAVAILABLE,
             "SHARD_UNAVAILABLE"},
        Case{absl::UnimplementedError("no"), grpc::StatusCode::UNIMPLEMENTED,
             "UNIMPLEMENTED"},
        Case{absl::UnknownError("?"), grpc::StatusCode::UNKNOWN, "INTERNAL"},
        Case{absl::DataLossError("x"), grpc::StatusCode::DATA_LOSS,
             "INTERNAL"}}) {
    SCOPED_TRACE(c.status.ToString());
    grpc::Status s = ToGrpcStatus(c.status);
    EXPECT_EQ(s.error_code(), c.code);
    EXPECT_EQ(s.error_message(), std::string(c.status.message()));
    auto info = DetailOf<google::rpc::ErrorInfo>(RpcStatusOf(s));
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->domain(), "inventory.v1");
    EXPECT_EQ(info->reason(), c.reason);
  }
}

// --- ToProto(ReservationRecord) --------------------------------------------------

ReservationRecord SampleReservation() {
  ReservationRecord r;
  r.row_id = 1007;
  r.product_id = 42;
  r.quantity = 3;
  r.status = ReservationStatus::kPending;
  r.customer_id = "customer-7";
  r.request_id = "req-1";
  r.requested_ttl = absl::Minutes(5);
  r.create_time = absl::FromUnixSeconds(1700000000) + absl::Microseconds(123456);
  r.expire_time = absl::FromUnixSeconds(1700000300) + absl::Microseconds(123456);
  r.update_time = absl::FromUnixSeconds(1700000001) + absl::Microseconds(1);
  return r;
}

TEST(ToProtoReservationTest, FillsEveryField) {
  inventory::v1::Reservation out;
  ToProto(SampleReservation(), &out);
  EXPECT_EQ(out.reservation_id(), "r42-1007");
  EXPECT_EQ(out.product_id(), 42);
  EXPECT_EQ(out.quantity(), 3);
  EXPECT_EQ(out.status(), inventory::v1::RESERVATION_STATUS_PENDING);
  EXPECT_EQ(out.customer_id(), "customer-7");
  EXPECT_EQ(out.request_id(), "req-1");
  ASSERT_TRUE(out.has_create_time());
  EXPECT_EQ(out.create_time().seconds(), 1700000000);
  EXPECT_EQ(out.create_time().nanos(), 123456000);
  ASSERT_TRUE(out.has_expire_time());
  EXPECT_EQ(out.expire_time().seconds(), 1700000300);
  EXPECT_EQ(out.expire_time().nanos(), 123456000);
  ASSERT_TRUE(out.has_update_time());
  EXPECT_EQ(out.update_time().seconds(), 1700000001);
  EXPECT_EQ(out.update_time().nanos(), 1000);
}

TEST(ToProtoReservationTest, ReservationIdParsesBack) {
  ReservationRecord r = SampleReservation();
  r.product_id = std::numeric_limits<int64_t>::max();
  r.row_id = 99;
  inventory::v1::Reservation out;
  ToProto(r, &out);
  EXPECT_EQ(out.reservation_id(), "r9223372036854775807-99");
  absl::StatusOr<ReservationKey> key = ParseReservationId(out.reservation_id());
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->product_id, r.product_id);
  EXPECT_EQ(key->row_id, 99);
}

TEST(ToProtoReservationTest, EveryStatusMaps) {
  struct Case {
    ReservationStatus in;
    inventory::v1::ReservationStatus out;
  };
  for (const Case& c :
       {Case{ReservationStatus::kPending,
             inventory::v1::RESERVATION_STATUS_PENDING},
        Case{ReservationStatus::kPurchased,
             inventory::v1::RESERVATION_STATUS_PURCHASED},
        Case{ReservationStatus::kReleased,
             inventory::v1::RESERVATION_STATUS_RELEASED},
        Case{ReservationStatus::kExpired,
             inventory::v1::RESERVATION_STATUS_EXPIRED}}) {
    ReservationRecord r = SampleReservation();
    r.status = c.in;
    inventory::v1::Reservation out;
    ToProto(r, &out);
    EXPECT_EQ(out.status(), c.out);
  }
}

TEST(ToProtoReservationTest, TimestampsBeforeEpochAreNormalised) {
  // google.protobuf.Timestamp: nanos in [0, 1e9) also for negative seconds.
  ReservationRecord r = SampleReservation();
  r.create_time = absl::FromUnixMicros(-1);
  r.expire_time = absl::FromUnixMicros(-1500000);
  r.update_time = absl::UnixEpoch();
  inventory::v1::Reservation out;
  ToProto(r, &out);
  EXPECT_EQ(out.create_time().seconds(), -1);
  EXPECT_EQ(out.create_time().nanos(), 999999000);
  EXPECT_EQ(out.expire_time().seconds(), -2);
  EXPECT_EQ(out.expire_time().nanos(), 500000000);
  EXPECT_EQ(out.update_time().seconds(), 0);
  EXPECT_EQ(out.update_time().nanos(), 0);
}

// --- ToProto(ProductRecord) ------------------------------------------------------

ProductRecord SampleProduct() {
  ProductRecord p;
  p.product_id = 9;
  p.total_quantity = 100;
  p.reserved_quantity = 30;
  p.purchased_quantity = 20;
  p.stock_policy = StockPolicy::kBackorder;
  p.low_stock_threshold = 5;
  p.version = 17;
  p.create_time = absl::FromUnixSeconds(1600000000) + absl::Milliseconds(250);
  p.update_time = absl::FromUnixSeconds(1600000100) + absl::Microseconds(7);
  return p;
}

TEST(ToProtoProductTest, FillsEveryField) {
  inventory::v1::Product out;
  ToProto(SampleProduct(), &out);
  EXPECT_EQ(out.product_id(), 9);
  EXPECT_EQ(out.total_quantity(), 100);
  EXPECT_EQ(out.reserved_quantity(), 30);
  EXPECT_EQ(out.purchased_quantity(), 20);
  EXPECT_EQ(out.available_quantity(), 50);
  EXPECT_EQ(out.stock_policy(), inventory::v1::STOCK_POLICY_BACKORDER);
  EXPECT_EQ(out.low_stock_threshold(), 5);
  EXPECT_FALSE(out.etag().empty());
  EXPECT_EQ(out.etag(), ProductEtag(SampleProduct()));
  ASSERT_TRUE(out.has_create_time());
  EXPECT_EQ(out.create_time().seconds(), 1600000000);
  EXPECT_EQ(out.create_time().nanos(), 250000000);
  ASSERT_TRUE(out.has_update_time());
  EXPECT_EQ(out.update_time().seconds(), 1600000100);
  EXPECT_EQ(out.update_time().nanos(), 7000);
}

TEST(ToProtoProductTest, StrictPolicyMaps) {
  ProductRecord p = SampleProduct();
  p.stock_policy = StockPolicy::kStrict;
  inventory::v1::Product out;
  ToProto(p, &out);
  EXPECT_EQ(out.stock_policy(), inventory::v1::STOCK_POLICY_STRICT);
}

TEST(ToProtoProductTest, AvailableNeverNegative) {
  // A BACKORDER product may hold more than its total.
  ProductRecord p = SampleProduct();
  p.total_quantity = 10;
  p.reserved_quantity = 8;
  p.purchased_quantity = 7;
  inventory::v1::Product out;
  ToProto(p, &out);
  EXPECT_EQ(out.available_quantity(), 0);
  EXPECT_EQ(out.reserved_quantity(), 8);
  EXPECT_EQ(out.purchased_quantity(), 7);

  p.reserved_quantity = 10;
  p.purchased_quantity = 0;
  ToProto(p, &out);
  EXPECT_EQ(out.available_quantity(), 0);

  p.reserved_quantity = 9;
  ToProto(p, &out);
  EXPECT_EQ(out.available_quantity(), 1);
}

TEST(ToProtoProductTest, EtagFollowsVersion) {
  ProductRecord a = SampleProduct();
  ProductRecord b = a;
  EXPECT_EQ(ProductEtag(a), ProductEtag(b));
  b.version = a.version + 1;
  EXPECT_NE(ProductEtag(a), ProductEtag(b));
  inventory::v1::Product pa, pb;
  ToProto(a, &pa);
  ToProto(b, &pb);
  EXPECT_NE(pa.etag(), pb.etag());
  // Distinct across a range of versions.
  std::set<std::string> etags;
  for (int64_t v = 0; v < 1000; ++v) {
    a.version = v;
    etags.insert(ProductEtag(a));
  }
  EXPECT_EQ(etags.size(), 1000u);
}

}  // namespace
}  // namespace inventory
