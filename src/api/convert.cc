#include "inventory/api/convert.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/any.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "inventory/common/errors.h"
#include "inventory/routing/router.h"

namespace inventory {
void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t us = absl::ToUnixMicros(t);
  int64_t seconds = us / 1000000;
  int64_t micros = us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(micros * 1000));
}

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

namespace {

// The reason used when an error carries none (never expected).
const char* DefaultReason(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kDeadlineExceeded: return reason::kDeadlineExceeded;
    case absl::StatusCode::kInvalidArgument: return reason::kInvalidArgument;
    case absl::StatusCode::kUnavailable: return reason::kShardUnavailable;
    case absl::StatusCode::kUnimplemented: return reason::kUnimplemented;
    case absl::StatusCode::kCancelled: return reason::kCancelled;
    default: return reason::kInternal;
  }
}

}  // namespace

void ToProto(const ReservationRecord& r, inventory::v1::Reservation* out) {
  out->set_reservation_id(FormatReservationId({r.product_id, r.row_id}));
  out->set_product_id(r.product_id);
  out->set_quantity(r.quantity);
  out->set_status(static_cast<inventory::v1::ReservationStatus>(r.status));
  out->set_customer_id(r.customer_id);
  out->set_request_id(r.request_id);
  SetTime(r.create_time, out->mutable_create_time());
  SetTime(r.expire_time, out->mutable_expire_time());
  SetTime(r.update_time, out->mutable_update_time());
  out->set_backordered_quantity(r.backordered_quantity);
}

void ToProto(const StockAdjustmentRecord& a,
             inventory::v1::StockAdjustment* out) {
  out->set_adjustment_id(absl::StrCat("a", a.product_id, "-", a.id));
  out->set_product_id(a.product_id);
  out->set_reason(static_cast<inventory::v1::StockAdjustmentReason>(a.reason));
  out->set_total_before(a.total_before);
  out->set_total_after(a.total_after);
  out->set_actor(a.actor);
  out->set_session_id(a.session_id);
  out->set_note(a.note);
  SetTime(a.create_time, out->mutable_create_time());
}

void ToProto(const InventoryEventRecord& e, int shard,
             inventory::v1::InventoryEvent* out) {
  out->set_event_id(absl::StrCat("e", shard, "-", e.id));
  out->set_product_id(e.product_id);
  out->set_type(static_cast<inventory::v1::InventoryEventType>(e.type));
  out->set_available_quantity(e.available);
  out->set_low_stock_threshold(e.low_stock_threshold);
  SetTime(e.create_time, out->mutable_create_time());
}

std::string ProductEtag(const ProductRecord& record) {
  return absl::StrCat(record.version);
}

void ToProto(const ProductRecord& p, inventory::v1::Product* out) {
  out->set_product_id(p.product_id);
  out->set_total_quantity(p.total_quantity);
  out->set_reserved_quantity(p.reserved_quantity);
  out->set_purchased_quantity(p.purchased_quantity);
  out->set_available_quantity(p.available());
  out->set_stock_policy(static_cast<inventory::v1::StockPolicy>(p.stock_policy));
  out->set_low_stock_threshold(p.low_stock_threshold);
  out->set_etag(ProductEtag(p));
  SetTime(p.create_time, out->mutable_create_time());
  SetTime(p.update_time, out->mutable_update_time());
  out->set_backordered_quantity(p.backordered_quantity);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  google::rpc::Status rpc;
  rpc.set_code(static_cast<int>(status.code()));
  rpc.set_message(std::string(status.message()));
  auto info = status.GetPayload(kErrorInfoTypeUrl);
  google::protobuf::Any* any = rpc.add_details();
  any->set_type_url(kErrorInfoTypeUrl);
  if (info.has_value()) {
    any->set_value(std::string(*info));
  } else {
    google::rpc::ErrorInfo fallback;
    fallback.set_domain(kErrorDomain);
    fallback.set_reason(DefaultReason(status.code()));
    any->set_value(fallback.SerializeAsString());
  }
  if (auto bad = status.GetPayload(kBadRequestTypeUrl); bad.has_value()) {
    google::protobuf::Any* b = rpc.add_details();
    b->set_type_url(kBadRequestTypeUrl);
    b->set_value(std::string(*bad));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()), rpc.SerializeAsString());
}

}  // namespace inventory
