#include "grpc_client.h"

#include "google/rpc/status.pb.h"

namespace inventory::testing {
namespace {

google::rpc::Status DetailsOf(const grpc::Status& status) {
  google::rpc::Status rpc;
  rpc.ParseFromString(status.error_details());
  return rpc;
}

}  // namespace

std::shared_ptr<grpc::Channel> Connect(const std::string& address) {
  return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
}

std::unique_ptr<grpc::ClientContext> ContextWithTimeout(
    absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status) {
  google::rpc::ErrorInfo info;
  const google::rpc::Status details = DetailsOf(status);
  for (const auto& any : details.details()) {
    if (any.type_url() == "type.googleapis.com/google.rpc.ErrorInfo") {
      info.ParseFromString(any.value());
    }
  }
  return info;
}

google::rpc::BadRequest BadRequestOf(const grpc::Status& status) {
  google::rpc::BadRequest bad;
  const google::rpc::Status details = DetailsOf(status);
  for (const auto& any : details.details()) {
    if (any.type_url() == "type.googleapis.com/google.rpc.BadRequest") {
      bad.ParseFromString(any.value());
    }
  }
  return bad;
}

int HealthStatus(const std::shared_ptr<grpc::Channel>& channel,
                 const std::string& service) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = ContextWithTimeout(absl::Seconds(5));
  grpc::Status s = stub->Check(ctx.get(), req, &resp);
  return s.ok() ? static_cast<int>(resp.status()) : -1;
}

grpc::Status CreateProduct(InventoryService::Stub& stub, int64_t product_id,
                           int64_t total, inventory::v1::Product* out) {
  inventory::v1::CreateProductRequest req;
  req.set_product_id(product_id);
  req.set_total_quantity(total);
  inventory::v1::Product resp;
  auto ctx = ContextWithTimeout();
  grpc::Status s = stub.CreateProduct(ctx.get(), req, &resp);
  if (out != nullptr) *out = resp;
  return s;
}

grpc::Status Reserve(InventoryService::Stub& stub, const std::string& request_id,
                     int64_t product_id, int64_t quantity,
                     const std::string& customer_id,
                     inventory::v1::ReserveItemResponse* out,
                     absl::Duration hold_ttl) {
  inventory::v1::ReserveItemRequest req;
  req.set_request_id(request_id);
  req.set_product_id(product_id);
  req.set_quantity(quantity);
  req.set_customer_id(customer_id);
  if (hold_ttl > absl::ZeroDuration()) {
    req.mutable_hold_ttl()->set_seconds(absl::ToInt64Seconds(hold_ttl));
    req.mutable_hold_ttl()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(hold_ttl) % 1000000000));
  }
  inventory::v1::ReserveItemResponse resp;
  auto ctx = ContextWithTimeout();
  grpc::Status s = stub.ReserveItem(ctx.get(), req, &resp);
  if (out != nullptr) *out = resp;
  return s;
}

grpc::Status GetProduct(InventoryService::Stub& stub, int64_t product_id,
                        inventory::v1::Product* out) {
  inventory::v1::GetProductRequest req;
  req.set_product_id(product_id);
  auto ctx = ContextWithTimeout();
  return stub.GetProduct(ctx.get(), req, out);
}

grpc::Status GetReservation(InventoryService::Stub& stub,
                            const std::string& reservation_id,
                            inventory::v1::Reservation* out) {
  inventory::v1::GetReservationRequest req;
  req.set_reservation_id(reservation_id);
  auto ctx = ContextWithTimeout();
  return stub.GetReservation(ctx.get(), req, out);
}

grpc::Status Release(InventoryService::Stub& stub,
                     const std::string& reservation_id) {
  inventory::v1::ReleaseItemRequest req;
  req.set_reservation_id(reservation_id);
  inventory::v1::ReleaseItemResponse resp;
  auto ctx = ContextWithTimeout();
  return stub.ReleaseItem(ctx.get(), req, &resp);
}

}  // namespace inventory::testing
