// Maps a product id, or a reservation id, to the index of the shard that owns
// it: shard = product_id mod N (mathematical modulo, never negative).
#ifndef INVENTORY_ROUTING_ROUTER_H_
#define INVENTORY_ROUTING_ROUTER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace inventory {

// A reservation's identity: the product it belongs to (which picks the shard)
// and its row id on that shard.
struct ReservationKey {
  int64_t product_id = 0;
  int64_t row_id = 0;
};

// Formats the opaque reservation id clients see, e.g. "r42-1007".
std::string FormatReservationId(const ReservationKey& key);

// Parses a reservation id; INVALID_ARGUMENT if it is not one we issued.
absl::StatusOr<ReservationKey> ParseReservationId(absl::string_view id);

// Routes ids to shards for a fixed shard count. Immutable; thread-safe.
class Router {
 public:
  // `shard_count` must be >= 1.
  explicit Router(int shard_count);

  // The number of shards.
  int shard_count() const { return shard_count_; }

  // The shard of a product: product_id mod N, in [0, N) for any id.
  int ShardForProduct(int64_t product_id) const;

  // The shard of a reservation: the shard of its product.
  int ShardForReservation(const ReservationKey& key) const {
    return ShardForProduct(key.product_id);
  }

 private:
  int shard_count_;
};

}  // namespace inventory

#endif  // INVENTORY_ROUTING_ROUTER_H_
