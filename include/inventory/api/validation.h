// Request validation at the API edge: turns a proto request into a checked
// command, or INVALID_ARGUMENT naming every bad field. Nothing reaches a shard
// before it passes here.
#ifndef INVENTORY_API_VALIDATION_H_
#define INVENTORY_API_VALIDATION_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inventory/routing/router.h"
#include "inventory/store/model.h"
#include "inventory/v1/inventory.pb.h"

namespace inventory {

// Limits a request must respect (set from flags).
struct RequestLimits {
  int64_t max_quantity = 10000;
  absl::Duration default_hold_ttl = absl::Minutes(15);
  absl::Duration min_hold_ttl = absl::Seconds(1);
  absl::Duration max_hold_ttl = absl::Hours(24);
  size_t max_availability_ids = 1000;
  int64_t max_total_quantity = int64_t{1} << 50;
};

absl::StatusOr<ReserveCommand> ValidateReserve(
    const inventory::v1::ReserveItemRequest& request,
    const RequestLimits& limits);

// Checks a reservation id the client sent (its form, and the shard it names).
absl::StatusOr<ReservationKey> ValidateReservationId(absl::string_view id);

absl::StatusOr<NewProduct> ValidateCreateProduct(
    const inventory::v1::CreateProductRequest& request,
    const RequestLimits& limits);

// A product id must be > 0.
absl::Status ValidateProductId(int64_t product_id);

// 1..max ids, each > 0; returns them without duplicates, in request order.
absl::StatusOr<std::vector<int64_t>> ValidateAvailability(
    const inventory::v1::GetAvailabilityRequest& request,
    const RequestLimits& limits);

// AdjustStock: exactly one of delta / new_total, a reason, bounded strings.
// `actor` comes from the request metadata.
absl::StatusOr<AdjustStockCommand> ValidateAdjustStock(
    const inventory::v1::AdjustStockRequest& request, std::string actor,
    absl::Duration session_window, const RequestLimits& limits);

// UpdateProduct: a field mask of "stock_policy" and/or "low_stock_threshold".
absl::StatusOr<ProductUpdate> ValidateUpdateProduct(
    const inventory::v1::UpdateProductRequest& request,
    const RequestLimits& limits);

// A page size: 0 -> 50; 1..1000; anything else INVALID_ARGUMENT.
absl::StatusOr<int> ValidatePageSize(int32_t page_size);

// A google.protobuf.Duration as an absl::Duration, or nullopt if it is not
// well formed (nanos beyond +-999999999, or of the other sign than seconds).
std::optional<absl::Duration> ToDuration(const google::protobuf::Duration& d);

}  // namespace inventory

#endif  // INVENTORY_API_VALIDATION_H_
