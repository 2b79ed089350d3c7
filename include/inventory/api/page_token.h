// Page tokens of the cross-shard List calls (AIP-158): where the previous page
// stopped (a shard and a row id there) and a fingerprint of the filters, so a
// token cannot be replayed with other filters.
#ifndef INVENTORY_API_PAGE_TOKEN_H_
#define INVENTORY_API_PAGE_TOKEN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace inventory {

// A resume point: continue on `shard` after row `after_id`.
struct PagePosition {
  int shard = 0;
  int64_t after_id = 0;
};

// An opaque, URL-safe token for `position` under `filters`.
std::string EncodePageToken(absl::string_view filters,
                            const PagePosition& position);

// The position in `token`; INVALID_ARGUMENT (field page_token) if it is not
// ours, was made for other filters, or names a shard beyond `shard_count`.
absl::StatusOr<PagePosition> DecodePageToken(absl::string_view token,
                                             absl::string_view filters,
                                             int shard_count);

// The event stream's resume cursor: the last event id seen on each shard.
std::string EncodeEventCursor(const std::vector<int64_t>& last_ids);

// Empty: all zeros. INVALID_ARGUMENT (field cursor) if not ours or for
// another number of shards.
absl::StatusOr<std::vector<int64_t>> DecodeEventCursor(absl::string_view cursor,
                                                       int shard_count);

}  // namespace inventory

#endif  // INVENTORY_API_PAGE_TOKEN_H_
