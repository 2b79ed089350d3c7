#include "inventory/api/page_token.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

constexpr absl::string_view kPagePrefix = "p1|";
constexpr absl::string_view kCursorPrefix = "c1|";

absl::Status BadToken(const char* field, absl::string_view why) {
  return InvalidArgumentError({{field, std::string(why)}});
}

// A number as Encode* writes it: decimal digits only (SimpleAtoi alone would
// also take " 7" and "+7", which no token of ours contains).
template <typename Int>
bool ParseNumber(absl::string_view text, Int* out) {
  return !text.empty() && text.size() <= 19 &&
         text.find_first_not_of("0123456789") == absl::string_view::npos &&
         absl::SimpleAtoi(text, out);
}

}  // namespace

std::string EncodePageToken(absl::string_view filters,
                            const PagePosition& position) {
  return absl::WebSafeBase64Escape(absl::StrCat(
      kPagePrefix, position.shard, "|", position.after_id, "|", filters));
}

absl::StatusOr<PagePosition> DecodePageToken(absl::string_view token,
                                             absl::string_view filters,
                                             int shard_count) {
  std::string raw;
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw) ||
      !absl::StartsWith(raw, kPagePrefix)) {
    return BadToken("page_token", "is not a page token from this API");
  }
  std::vector<std::string> parts =
      absl::StrSplit(absl::string_view(raw).substr(kPagePrefix.size()),
                     absl::MaxSplits('|', 2));
  PagePosition p;
  if (parts.size() != 3 || !ParseNumber(parts[0], &p.shard) ||
      !ParseNumber(parts[1], &p.after_id) || p.shard >= shard_count) {
    return BadToken("page_token", "is not a page token from this API");
  }
  if (parts[2] != filters) {
    return BadToken("page_token",
                    "was made for other filters; keep the filters unchanged "
                    "while paging");
  }
  return p;
}

std::string EncodeEventCursor(const std::vector<int64_t>& last_ids) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kCursorPrefix, absl::StrJoin(last_ids, ",")));
}

absl::StatusOr<std::vector<int64_t>> DecodeEventCursor(absl::string_view cursor,
                                                       int shard_count) {
  if (cursor.empty()) return std::vector<int64_t>(shard_count, 0);
  std::string raw;
  if (cursor.size() > 4096 || !absl::WebSafeBase64Unescape(cursor, &raw) ||
      !absl::StartsWith(raw, kCursorPrefix)) {
    return BadToken("cursor", "is not a cursor from WatchInventoryEvents");
  }
  std::vector<int64_t> ids;
  for (absl::string_view part :
       absl::StrSplit(absl::string_view(raw).substr(kCursorPrefix.size()),
                      ',')) {
    int64_t id = 0;
    if (!ParseNumber(part, &id)) {
      return BadToken("cursor", "is not a cursor from WatchInventoryEvents");
    }
    ids.push_back(id);
  }
  if (static_cast<int>(ids.size()) != shard_count) {
    return BadToken("cursor", "was made for another number of shards");
  }
  return ids;
}

}  // namespace inventory
