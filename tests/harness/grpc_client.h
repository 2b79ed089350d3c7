// Test harness: gRPC client helpers — stubs for a running inventoryd and the
// rich error details (ErrorInfo, BadRequest) of a failed call.
#ifndef INVENTORY_TESTS_HARNESS_GRPC_CLIENT_H_
#define INVENTORY_TESTS_HARNESS_GRPC_CLIENT_H_

#include <map>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory::testing {

using inventory::v1::InventoryService;

// A channel to `address` (insecure, loopback).
std::shared_ptr<grpc::Channel> Connect(const std::string& address);

// A context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithTimeout(
    absl::Duration timeout = absl::Seconds(10));

// The ErrorInfo in a failed status' details (empty message if none).
google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status);
// The BadRequest in a failed status' details (empty message if none).
google::rpc::BadRequest BadRequestOf(const grpc::Status& status);

// grpc.health.v1 Check of `service` ("" = the whole server); returns the
// serving status, or -1 if the call failed.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                 const std::string& service);

// Convenience calls with a 10 s deadline.
grpc::Status CreateProduct(InventoryService::Stub& stub, int64_t product_id,
                           int64_t total, inventory::v1::Product* out = nullptr);
grpc::Status Reserve(InventoryService::Stub& stub, const std::string& request_id,
                     int64_t product_id, int64_t quantity,
                     const std::string& customer_id,
                     inventory::v1::ReserveItemResponse* out = nullptr,
                     absl::Duration hold_ttl = absl::ZeroDuration());
grpc::Status GetProduct(InventoryService::Stub& stub, int64_t product_id,
                        inventory::v1::Product* out);
grpc::Status GetReservation(InventoryService::Stub& stub,
                            const std::string& reservation_id,
                            inventory::v1::Reservation* out);
grpc::Status Release(InventoryService::Stub& stub,
                     const std::string& reservation_id);

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_GRPC_CLIENT_H_
