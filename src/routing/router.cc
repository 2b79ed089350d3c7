#include "inventory/routing/router.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

constexpr absl::string_view kPrefix = "r";
constexpr size_t kMaxIdLength = 64;

// Parses a positive decimal int64 with no sign, no leading zeros.
bool ParsePositive(absl::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 19 || s[0] == '0') return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(s, out) && *out > 0;
}

}  // namespace

std::string FormatReservationId(const ReservationKey& key) {
  return absl::StrCat(kPrefix, key.product_id, "-", key.row_id);
}

absl::StatusOr<ReservationKey> ParseReservationId(absl::string_view id) {
  auto bad = [] {
    return InvalidArgumentError(
        {{"reservation_id",
          "must be a reservation id returned by ReserveItem, like r42-1007"}});
  };
  if (id.empty()) {
    return InvalidArgumentError({{"reservation_id", "is required"}});
  }
  if (id.size() > kMaxIdLength || !absl::ConsumePrefix(&id, kPrefix)) {
    return bad();
  }
  size_t dash = id.find('-');
  if (dash == absl::string_view::npos) return bad();
  ReservationKey key;
  if (!ParsePositive(id.substr(0, dash), &key.product_id) ||
      !ParsePositive(id.substr(dash + 1), &key.row_id)) {
    return bad();
  }
  return key;
}

Router::Router(int shard_count) : shard_count_(shard_count) {
  if (shard_count_ < 1) std::abort();
}

int Router::ShardForProduct(int64_t product_id) const {
  int64_t r = product_id % shard_count_;
  if (r < 0) r += shard_count_;
  return static_cast<int>(r);
}

}  // namespace inventory
