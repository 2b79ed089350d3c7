// The API edge of inventory.v1.InventoryService: each handler validates its
// request, routes it to a shard, hands the work to that shard's executor and
// finishes the call when the answer comes. No handler blocks on a database.
#ifndef INVENTORY_API_INVENTORY_SERVICE_H_
#define INVENTORY_API_INVENTORY_SERVICE_H_

#include <atomic>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "inventory/api/validation.h"
#include "inventory/executor/shard_executor.h"
#include "inventory/observability/metrics.h"
#include "inventory/routing/router.h"
#include "inventory/v1/inventory.grpc.pb.h"

namespace inventory {

// Settings of the API edge.
struct ServiceOptions {
  RequestLimits limits;
  // Deadline of a call whose client sets none.
  absl::Duration default_deadline = absl::Seconds(5);
  // AdjustStock: a session's own edits this close together skip the etag.
  absl::Duration session_window = absl::Seconds(5);
  // WatchInventoryEvents: how often each shard's outbox is read.
  absl::Duration event_poll_interval = absl::Milliseconds(200);
  // Business counters; may be null.
  Metrics* metrics = nullptr;
};

class EventWatch;

// gRPC callback service for InventoryService.
class InventoryServiceImpl final
    : public inventory::v1::InventoryService::CallbackService {
 public:
  // `executors[i]` runs shard i; they must outlive the service.
  InventoryServiceImpl(Router router, std::vector<ShardExecutor*> executors,
                       ServiceOptions options);
  ~InventoryServiceImpl() override;

  // Ends every open WatchInventoryEvents stream (at shutdown) and waits for
  // them to finish.
  void StopWatchers();

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
  grpc::ServerUnaryReactor* AdjustStock(
      grpc::CallbackServerContext* context,
      const inventory::v1::AdjustStockRequest* request,
      inventory::v1::Product* response) override;
  grpc::ServerUnaryReactor* UpdateProduct(
      grpc::CallbackServerContext* context,
      const inventory::v1::UpdateProductRequest* request,
      inventory::v1::Product* response) override;
  grpc::ServerUnaryReactor* ListReservations(
      grpc::CallbackServerContext* context,
      const inventory::v1::ListReservationsRequest* request,
      inventory::v1::ListReservationsResponse* response) override;
  grpc::ServerUnaryReactor* ListStockAdjustments(
      grpc::CallbackServerContext* context,
      const inventory::v1::ListStockAdjustmentsRequest* request,
      inventory::v1::ListStockAdjustmentsResponse* response) override;
  grpc::ServerWriteReactor<inventory::v1::WatchInventoryEventsResponse>*
  WatchInventoryEvents(
      grpc::CallbackServerContext* context,
      const inventory::v1::WatchInventoryEventsRequest* request) override;

  // Called by a watch when it is done (it is deleted right after).
  void WatchDone(EventWatch* watch);

  // May be null.
  Metrics* metrics() const { return options_.metrics; }

 private:
  // The call's deadline, or now + the default when the client set none.
  absl::Time DeadlineOf(const grpc::CallbackServerContext* context) const;

  const Router router_;
  const std::vector<ShardExecutor*> executors_;
  const ServiceOptions options_;
  const RequestLimits& limits_ = options_.limits;

  absl::Mutex watches_mu_;
  absl::flat_hash_set<EventWatch*> watches_ ABSL_GUARDED_BY(watches_mu_);
  bool stopping_ ABSL_GUARDED_BY(watches_mu_) = false;
};

// The caller identity for the audit trail: the `inventory-actor` request
// metadata if set (printable, at most 128 bytes), else the peer address.
std::string CallerIdentity(const grpc::CallbackServerContext* context);

}  // namespace inventory

#endif  // INVENTORY_API_INVENTORY_SERVICE_H_
