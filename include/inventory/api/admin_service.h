// The API edge of inventory.v1.AdminService: operator tools that look at every
// shard at once (reconciliation of counters against reservation rows).
#ifndef INVENTORY_API_ADMIN_SERVICE_H_
#define INVENTORY_API_ADMIN_SERVICE_H_

#include <vector>

#include "absl/time/time.h"
#include "inventory/executor/shard_executor.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory {

// gRPC callback service for AdminService.
class AdminServiceImpl final
    : public inventory::v1::AdminService::CallbackService {
 public:
  // `executors[i]` runs shard i; they must outlive the service.
  AdminServiceImpl(std::vector<ShardExecutor*> executors,
                   absl::Duration default_deadline);

  grpc::ServerUnaryReactor* VerifyInventory(
      grpc::CallbackServerContext* context,
      const inventory::v1::VerifyInventoryRequest* request,
      inventory::v1::VerifyInventoryResponse* response) override;

 private:
  const std::vector<ShardExecutor*> executors_;
  const absl::Duration default_deadline_;
};

}  // namespace inventory

#endif  // INVENTORY_API_ADMIN_SERVICE_H_
