// The API edge of inventory.v1.InventoryService: each handler validates its
// request, routes it to a shard, hands the work to that shard's executor and
// finishes the call when the answer comes. No handler blocks on a database.
#ifndef INVENTORY_API_INVENTORY_SERVICE_H_
#define INVENTORY_API_INVENTORY_SERVICE_H_

#include <vector>

#include "absl/time/time.h"
#include "inventory/api/validation.h"
#include "inventory/executor/shard_executor.h"
#include "inventory/routing/router.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory {

// gRPC callback service for InventoryService.
class InventoryServiceImpl final
    : public inventory::v1::InventoryService::CallbackService {
 public:
  // `executors[i]` runs shard i; they must outlive the service.
  InventoryServiceImpl(Router router, std::vector<ShardExecutor*> executors,
                       RequestLimits limits, absl::Duration default_deadline);

  grpc::ServerUnaryReactor* ReserveItem(
      grpc::CallbackServerContext* context,
      const inventory::v1::ReserveItemRequest* request,
      inventory::v1::ReserveItemResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseItem(
      grpc::CallbackServerContext* context,
      const inventory::v1::ReleaseItemRequest* request,
      inventory::v1::ReleaseItemResponse* response) override;
  grpc::ServerUnaryReactor* CommitReservation(
      grpc::CallbackServerContext* context,
      const inventory::v1::CommitReservationRequest* request,
      inventory::v1::CommitReservationResponse* response) override;
  grpc::ServerUnaryReactor* GetReservation(
      grpc::CallbackServerContext* context,
      const inventory::v1::GetReservationRequest* request,
      inventory::v1::Reservation* response) override;
  grpc::ServerUnaryReactor* CreateProduct(
      grpc::CallbackServerContext* context,
      const inventory::v1::CreateProductRequest* request,
      inventory::v1::Product* response) override;
  grpc::ServerUnaryReactor* GetProduct(
      grpc::CallbackServerContext* context,
      const inventory::v1::GetProductRequest* request,
      inventory::v1::Product* response) override;
  grpc::ServerUnaryReactor* GetAvailability(
      grpc::CallbackServerContext* context,
      const inventory::v1::GetAvailabilityRequest* request,
      inventory::v1::GetAvailabilityResponse* response) override;

 private:
  // The call's deadline, or now + the default when the client set none.
  absl::Time DeadlineOf(const grpc::CallbackServerContext* context) const;

  const Router router_;
  const std::vector<ShardExecutor*> executors_;
  const RequestLimits limits_;
  const absl::Duration default_deadline_;
};

}  // namespace inventory

#endif  // INVENTORY_API_INVENTORY_SERVICE_H_
