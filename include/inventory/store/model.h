// Plain records of the shard store: what a product and a reservation row hold,
// and the commands that change them. No database or gRPC types in here.
#ifndef INVENTORY_STORE_MODEL_H_
#define INVENTORY_STORE_MODEL_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace inventory {

// Values equal the proto enum numbers and the smallint stored in the rows.
enum class ReservationStatus : int16_t {
  kPending = 1,
  kPurchased = 2,
  kReleased = 3,
  kExpired = 4,
};

// Values equal the proto enum numbers and the smallint stored in the rows.
enum class StockPolicy : int16_t {
  kStrict = 1,
  kBackorder = 2,
};

// One row of `products`.
struct ProductRecord {
  int64_t product_id = 0;
  int64_t total_quantity = 0;
  int64_t reserved_quantity = 0;
  int64_t purchased_quantity = 0;
  StockPolicy stock_policy = StockPolicy::kStrict;
  int64_t low_stock_threshold = 0;
  int64_t version = 0;
  absl::Time create_time;
  absl::Time update_time;

  // Units that can still be reserved (never negative).
  int64_t available() const {
    int64_t a = total_quantity - reserved_quantity - purchased_quantity;
    return a > 0 ? a : 0;
  }
};

// One row of `reservations`.
struct ReservationRecord {
  int64_t row_id = 0;
  int64_t product_id = 0;
  int64_t quantity = 0;
  ReservationStatus status = ReservationStatus::kPending;
  std::string customer_id;
  std::string request_id;
  // The hold the client asked for; zero when it took the server default.
  absl::Duration requested_ttl;
  absl::Time create_time;
  absl::Time expire_time;
  absl::Time update_time;
};

// A validated CreateProduct.
struct NewProduct {
  int64_t product_id = 0;
  int64_t total_quantity = 0;
  StockPolicy stock_policy = StockPolicy::kStrict;
  int64_t low_stock_threshold = 0;
};

// A validated ReserveItem.
struct ReserveCommand {
  std::string request_id;
  int64_t product_id = 0;
  int64_t quantity = 0;
  std::string customer_id;
  // What the client asked for (zero: server default); part of the request's
  // identity for idempotency.
  absl::Duration requested_ttl;
  // The hold actually applied (requested, or the server default).
  absl::Duration hold_ttl;
};

// The answer to a ReserveCommand.
struct ReserveOutcome {
  ReservationRecord reservation;
  // True when an earlier call with the same request id made the reservation.
  bool replayed = false;
};

// Available units of one product, for GetAvailability.
struct AvailabilityRecord {
  int64_t product_id = 0;
  int64_t available = 0;
};

}  // namespace inventory

#endif  // INVENTORY_STORE_MODEL_H_
