// invctl's output: protobuf JSON for scripts (the response message as the
// canonical proto3 JSON mapping, zero values included so every field is
// there to read) and aligned tables for people.
#ifndef INVENTORY_SRC_INVCTL_OUTPUT_H_
#define INVENTORY_SRC_INVCTL_OUTPUT_H_

#include <ostream>
#include <string>
#include <vector>

#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace invctl {

// Writes `message` as protobuf JSON and a newline: indented when `pretty`,
// else on one line (for streams: one JSON object per line).
void PrintJson(const google::protobuf::Message& message, std::ostream& out,
               bool pretty = true);

// Columns aligned on the widest cell; control characters in cells are
// escaped so that one row stays one line.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// Makes `text` safe for one table cell (newlines, tabs and other control
// characters become escapes).
std::string CellText(const std::string& text);

// Width of `text` on a terminal, counting UTF-8 code points.
size_t DisplayWidth(const std::string& text);

// "2024-05-01T12:00:00Z" (UTC, seconds), or "-" if unset.
std::string FormatTime(const google::protobuf::Timestamp& t);

// Milliseconds with two decimals ("1.25"), or "-" if zero and `dash_if_zero`.
std::string FormatMillis(const google::protobuf::Duration& d,
                         bool dash_if_zero = false);

// An enum value's name without its type prefix: RESERVATION_STATUS_PENDING
// -> "PENDING". Unknown numbers print as the number.
std::string ShortEnumName(const google::protobuf::EnumDescriptor* type,
                          int value);

}  // namespace invctl

#endif  // INVENTORY_SRC_INVCTL_OUTPUT_H_
