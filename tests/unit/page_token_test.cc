// Unit tests of the List calls' page tokens and the event stream's cursor
// (src/api/page_token.cc): round trips, and every way a token is refused.
#include "inventory/api/page_token.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

using ::testing::ElementsAre;

// `raw` encoded the way the tokens are (web-safe base64).
std::string Token(const std::string& raw) {
  return absl::WebSafeBase64Escape(raw);
}

void ExpectRefused(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(ErrorReason(s), reason::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(field)) << s;
}

TEST(PageTokenTest, RoundTripsUnderTheSameFilters) {
  const std::string token = EncodePageToken("product=7", {2, 1234});
  absl::StatusOr<PagePosition> p = DecodePageToken(token, "product=7", 4);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->shard, 2);
  EXPECT_EQ(p->after_id, 1234);
}

TEST(PageTokenTest, OtherFiltersAreRefused) {
  const std::string token = EncodePageToken("product=7", {0, 5});
  absl::StatusOr<PagePosition> p = DecodePageToken(token, "product=8", 4);
  ExpectRefused(p.status(), "page_token");
  EXPECT_THAT(std::string(p.status().message()),
              ::testing::HasSubstr("other filters"));
}

TEST(PageTokenTest, MalformedTokensAreRefused) {
  for (const std::string& token : {
           std::string("not base64 !"),
           Token("x1|0|5|f"),                  // another prefix
           Token("p1|0|5"),                    // no filters part
           Token("p1|4|5|f"),                  // shard beyond the count
           Token("p1|-1|5|f"), Token("p1|0|-5|f"),
           Token("p1| 0|5|f"), Token("p1|+0|5|f"), Token("p1|0|+5|f"),
           Token("p1|0| 5|f"), Token("p1||5|f"), Token("p1|0|5x|f"),
           Token("p1|0|99999999999999999999|f"),  // beyond int64
           std::string(513, 'A'),              // too long
       }) {
    SCOPED_TRACE(token);
    ExpectRefused(DecodePageToken(token, "f", 4).status(), "page_token");
  }
}

TEST(EventCursorTest, RoundTripsAndEmptyMeansTheStart) {
  absl::StatusOr<std::vector<int64_t>> ids =
      DecodeEventCursor(EncodeEventCursor({3, 0, 17}), 3);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(3, 0, 17));
  ids = DecodeEventCursor("", 2);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(0, 0));
}

TEST(EventCursorTest, MalformedCursorsAreRefused) {
  for (const std::string& cursor : {
           std::string("garbage!"), Token("p1|1,2"), Token("c1|1,,2"),
           Token("c1|1,-2"), Token("c1| 1,2"), Token("c1|+1,2"),
           Token("c1|1,2 "), Token("c1|1,99999999999999999999"),
           std::string(4097, 'A'),
       }) {
    SCOPED_TRACE(cursor);
    ExpectRefused(DecodeEventCursor(cursor, 2).status(), "cursor");
  }
  absl::StatusOr<std::vector<int64_t>> other =
      DecodeEventCursor(EncodeEventCursor({1, 2, 3}), 2);
  ExpectRefused(other.status(), "cursor");
  EXPECT_THAT(std::string(other.status().message()),
              ::testing::HasSubstr("another number of shards"));
}

}  // namespace
}  // namespace inventory
