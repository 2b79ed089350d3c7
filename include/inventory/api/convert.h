// Conversions at the API edge: store records to API messages, and
// absl::Status (with ErrorInfo / BadRequest payloads) to a gRPC status whose
// details carry a google.rpc.Status.
#ifndef INVENTORY_API_CONVERT_H_
#define INVENTORY_API_CONVERT_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/support/status.h"
#include "inventory/store/model.h"
#include "inventory/v1/inventory.pb.h"

namespace inventory {

void ToProto(const ReservationRecord& record, inventory::v1::Reservation* out);
void ToProto(const ProductRecord& record, inventory::v1::Product* out);
void ToProto(const StockAdjustmentRecord& record,
             inventory::v1::StockAdjustment* out);
// `shard` makes the event id unique across shards.
void ToProto(const InventoryEventRecord& record, int shard,
             inventory::v1::InventoryEvent* out);

// Well-known types: a time (microsecond precision, as the store keeps it)
// and a duration.
void SetTime(absl::Time t, google::protobuf::Timestamp* out);
void SetDuration(absl::Duration d, google::protobuf::Duration* out);

// The product's etag (AIP-154): changes whenever any counter changes.
std::string ProductEtag(const ProductRecord& record);

// A gRPC status with the same code and message and a google.rpc.Status in its
// details; every error carries an ErrorInfo (domain inventory.v1).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace inventory

#endif  // INVENTORY_API_CONVERT_H_
