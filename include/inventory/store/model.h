// Plain records of the shard store: what a product and a reservation row hold,
// and the commands that change them. No database or gRPC types in here.
#ifndef INVENTORY_STORE_MODEL_H_
#define INVENTORY_STORE_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace inventory {

// Values equal the proto enum numbers and the smallint stored in the rows.
enum class ReservationStatus : int16_t {
  kPending = 1,
  kPurchased = 2,
  kReleased = 3,
  kExpired = 4,
};

// The API's name of `s` ("PENDING", ...), for messages; "UNKNOWN" for a value
// outside the enum.
inline const char* ReservationStatusName(ReservationStatus s) {
  switch (s) {
    case ReservationStatus::kPending: return "PENDING";
    case ReservationStatus::kPurchased: return "PURCHASED";
    case ReservationStatus::kReleased: return "RELEASED";
    case ReservationStatus::kExpired: return "EXPIRED";
  }
  return "UNKNOWN";
}

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
  int64_t backordered_quantity = 0;
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
  // Units not covered by stock (BACKORDER products).
  int64_t backordered_quantity = 0;
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

// One request of a group transaction (ShardStore::ApplyBatch).
struct ReservationOp {
  enum class Kind : int16_t { kReserve = 1, kRelease = 2, kCommit = 3 };
  Kind kind = Kind::kReserve;
  // kReserve.
  ReserveCommand reserve;
  // kRelease / kCommit: the reservation (its product picks the shard).
  int64_t product_id = 0;
  int64_t row_id = 0;
};

// Available units of one product, for GetAvailability.
struct AvailabilityRecord {
  int64_t product_id = 0;
  int64_t available = 0;
};

// A validated AdjustStock.
struct AdjustStockCommand {
  int64_t product_id = 0;
  // Exactly one of the two is set.
  std::optional<int64_t> delta;
  std::optional<int64_t> new_total;
  // StockAdjustmentReason enum number (1..6).
  int reason = 0;
  // Empty: no etag check.
  std::string etag;
  // Empty: no operator session.
  std::string session_id;
  // Who asked (request metadata or peer).
  std::string actor;
  std::string note;
  // Within this long after the session's own last adjustment, the session
  // skips the etag check.
  absl::Duration session_window = absl::Seconds(5);
  // The largest total a delta may lead to (the service's total limit).
  int64_t max_total = int64_t{1} << 50;
};

// A validated UpdateProduct (only the fields in the mask are set).
struct ProductUpdate {
  int64_t product_id = 0;
  std::optional<StockPolicy> stock_policy;
  std::optional<int64_t> low_stock_threshold;
  // Empty: no etag check.
  std::string etag;
};

// One row of `stock_adjustments` (the audit trail).
struct StockAdjustmentRecord {
  int64_t id = 0;
  int64_t product_id = 0;
  int reason = 0;
  int64_t total_before = 0;
  int64_t total_after = 0;
  std::string actor;
  std::string session_id;
  std::string note;
  absl::Time create_time;
};

// One row of a shard's event outbox.
struct InventoryEventRecord {
  int64_t id = 0;
  int64_t product_id = 0;
  // 1 LOW_STOCK, 2 OUT_OF_STOCK, 3 RESTOCKED (the proto enum numbers).
  int type = 0;
  int64_t available = 0;
  int64_t low_stock_threshold = 0;
  absl::Time create_time;
};

// One counter that differs from the sum of its reservation rows.
struct DriftRecord {
  int64_t product_id = 0;
  std::string field;
  int64_t recorded = 0;
  int64_t computed = 0;
};

// VerifyCounters' answer for one shard.
struct ShardVerification {
  int64_t products_checked = 0;
  std::vector<DriftRecord> drifts;
};

// FillLateBackorders' answer for one pass over a shard's late-fill queue.
struct LateFill {
  int products = 0;         // products whose fill ran again
  int filled_products = 0;  // those of them it gave units to
  int64_t units = 0;        // backordered units it filled
  // Products whose backordered counter is above what their rows backorder
  // (counters edited by hand): their fill falls short at every turn, so they
  // left the queue instead of cycling in it. VerifyInventory reports them.
  std::vector<int64_t> dropped;
};

// Which reservations ListReservations wants from one shard.
struct ReservationFilter {
  int64_t product_id = 0;  // 0: any
  int status = 0;          // 0: any
};

}  // namespace inventory

#endif  // INVENTORY_STORE_MODEL_H_
