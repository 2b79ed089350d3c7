#include "invctl/output.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace invctl {

void PrintJson(const google::protobuf::Message& message, std::ostream& out,
               bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a generated message whose types are all linked in cannot fail;
  // if it ever did, the text form still tells the user something.
  if (!google::protobuf::util::MessageToJsonString(message, &json, options)
           .ok()) {
    json = message.ShortDebugString();
  }
  while (!json.empty() && json.back() == '\n') json.pop_back();
  out << json << '\n';
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  for (std::string& c : cells) c = CellText(c);
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], DisplayWidth(row[i]));
    }
  };
  measure(headers_);
  for (const auto& row : rows_) measure(row);
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) {
        line.append(width[i] - DisplayWidth(row[i]) + 2, ' ');
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << '\n';
  };
  print(headers_);
  for (const auto& row : rows_) print(row);
}

std::string CellText(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\x%02x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

size_t DisplayWidth(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++n;  // Not a UTF-8 continuation byte.
  }
  return n;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string FormatMillis(const google::protobuf::Duration& d,
                         bool dash_if_zero) {
  if (dash_if_zero && d.seconds() == 0 && d.nanos() == 0) return "-";
  const double ms = static_cast<double>(d.seconds()) * 1e3 +
                    static_cast<double>(d.nanos()) / 1e6;
  return absl::StrFormat("%.2f", ms);
}

std::string ShortEnumName(const google::protobuf::EnumDescriptor* type,
                          int value) {
  const google::protobuf::EnumValueDescriptor* v = type->FindValueByNumber(value);
  if (v == nullptr) return absl::StrFormat("%d", value);
  // The prefix is the type name in UPPER_SNAKE_CASE: the name of the zero
  // value minus "UNSPECIFIED".
  std::string name = v->name();
  const std::string zero = type->value(0)->name();
  if (absl::EndsWith(zero, "UNSPECIFIED")) {
    const std::string prefix = zero.substr(0, zero.size() - 11);
    if (absl::StartsWith(name, prefix)) name = name.substr(prefix.size());
  }
  return name;
}

}  // namespace invctl
