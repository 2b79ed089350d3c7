// The API edge of inventory.v1.AdminService: operator tools that look at every
// shard at once (reconciliation of counters against reservation rows).
#ifndef INVENTORY_API_ADMIN_SERVICE_H_
#define INVENTORY_API_ADMIN_SERVICE_H_

#include <vector>

#include "absl/time/time.h"
#include "inventory/executor/shard_executor.h"
#include "inventory/health/shard_health.h"
#include "inventory/store/dsn.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory {

// What AdminService sees of one shard; the pointers outlive the service.
struct ShardView {
  Dsn dsn;
  ShardExecutor* executor;
  const ShardHealth* health;
  int pool_size;
};

// gRPC callback service for AdminService.
class AdminServiceImpl final
    : public inventory::v1::AdminService::CallbackService {
 public:
  // `shards[i]` is shard i.
  AdminServiceImpl(std::vector<ShardView> shards,
                   absl::Duration default_deadline);

  grpc::ServerUnaryReactor* CheckShards(
      grpc::CallbackServerContext* context,
      const inventory::v1::CheckShardsRequest* request,
      inventory::v1::CheckShardsResponse* response) override;

  grpc::ServerUnaryReactor* VerifyInventory(
      grpc::CallbackServerContext* context,
      const inventory::v1::VerifyInventoryRequest* request,
      inventory::v1::VerifyInventoryResponse* response) override;

 private:
  const std::vector<ShardView> shards_;
  const absl::Duration default_deadline_;
};

}  // namespace inventory

#endif  // INVENTORY_API_ADMIN_SERVICE_H_
