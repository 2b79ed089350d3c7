#include "inventory/store/dsn.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace inventory {
namespace {

bool IsUri(absl::string_view s) {
  return absl::StartsWith(s, "postgresql://") ||
         absl::StartsWith(s, "postgres://");
}

bool IsSpace(char c) { return absl::ascii_isspace(static_cast<unsigned char>(c)); }

// Redacts the password in keyword/value form, reading the string the way
// libpq does (conninfo_parse): white space around '=', quoted values with
// backslash escapes, backslash escapes in unquoted values too. A string libpq
// would refuse is hidden from the first entry it cannot read.
std::string RedactKeywordForm(absl::string_view s) {
  std::string out;
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    if (IsSpace(s[i])) {
      out.push_back(s[i++]);
      continue;
    }
    const size_t key_start = i;
    while (i < n && s[i] != '=' && !IsSpace(s[i])) ++i;
    const absl::string_view key = s.substr(key_start, i - key_start);
    const size_t gap = i;
    while (i < n && IsSpace(s[i])) ++i;
    if (i >= n || s[i] != '=') {
      // Malformed (libpq refuses it): show nothing from here on.
      absl::StrAppend(&out, "***");
      return out;
    }
    absl::StrAppend(&out, key, s.substr(gap, i - gap), "=");
    ++i;
    while (i < n && IsSpace(s[i])) out.push_back(s[i++]);
    const size_t value_start = i;
    if (i < n && s[i] == '\'') {
      ++i;
      while (i < n && s[i] != '\'') i += (s[i] == '\\') ? 2 : 1;
      i = std::min(i + 1, n);
    } else {
      while (i < n && !IsSpace(s[i])) i += (s[i] == '\\') ? 2 : 1;
      i = std::min(i, n);
    }
    if (absl::EqualsIgnoreCase(key, "password")) {
      absl::StrAppend(&out, "***");
    } else {
      absl::StrAppend(&out, s.substr(value_start, i - value_start));
    }
  }
  return out;
}

// Percent-decodes a URI component (as libpq does for query keys).
std::string PercentDecode(absl::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
        absl::ascii_isxdigit(s[i + 2])) {
      auto hex = [](char c) {
        return absl::ascii_isdigit(c) ? c - '0'
                                      : absl::ascii_tolower(c) - 'a' + 10;
      };
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Redacts "user:password@" and "password=" query parameters in a URI.
std::string RedactUri(absl::string_view s) {
  std::string out(s);
  size_t scheme = out.find("://");
  size_t auth_start = scheme + 3;
  // The last '@' before any query: a password may (malformed, but still
  // secret) contain '/' or '@'; redact everything between the first ':' of
  // the authority and that '@'.
  const size_t query = out.find('?', auth_start);
  size_t at = out.rfind('@', query == std::string::npos ? std::string::npos
                                                         : query);
  if (at != std::string::npos && at > auth_start &&
      (query == std::string::npos || at < query)) {
    size_t colon = out.find(':', auth_start);
    if (colon != std::string::npos && colon < at) {
      out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  size_t q = out.find('?');
  while (q != std::string::npos) {
    size_t key_start = q + 1;
    size_t eq = out.find('=', key_start);
    size_t amp = out.find('&', key_start);
    if (eq == std::string::npos) break;
    if (amp != std::string::npos && amp < eq) {
      q = amp;
      continue;
    }
    std::string key = PercentDecode(out.substr(key_start, eq - key_start));
    size_t value_end = amp == std::string::npos ? out.size() : amp;
    if (absl::EqualsIgnoreCase(key, "password")) {
      out.replace(eq + 1, value_end - eq - 1, "***");
      value_end = eq + 4;
    }
    q = out.find('&', value_end);
  }
  return out;
}

// Parses keyword=value pairs (values unquoted) for Endpoint().
std::map<std::string, std::string> KeywordPairs(absl::string_view s) {
  std::map<std::string, std::string> out;
  for (absl::string_view part :
       absl::StrSplit(s, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) continue;
    std::string value(part.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
      value = value.substr(1, value.size() - 2);
    }
    out[absl::AsciiStrToLower(part.substr(0, eq))] = value;
  }
  return out;
}

}  // namespace

std::string Dsn::Redacted() const {
  return IsUri(conninfo_) ? RedactUri(conninfo_) : RedactKeywordForm(conninfo_);
}

std::string Dsn::Endpoint() const {
  if (IsUri(conninfo_)) {
    absl::string_view s = conninfo_;
    s.remove_prefix(s.find("://") + 3);
    size_t at = s.find('@');
    size_t slash = s.find('/');
    if (at != absl::string_view::npos &&
        (slash == absl::string_view::npos || at < slash)) {
      s.remove_prefix(at + 1);
    }
    return std::string(s.substr(0, s.find('?')));
  }
  auto kv = KeywordPairs(conninfo_);
  std::string host = kv.count("host") ? kv["host"]
                     : kv.count("hostaddr") ? kv["hostaddr"]
                                            : "localhost";
  std::string port = kv.count("port") ? kv["port"] : "5432";
  std::string db = kv.count("dbname") ? kv["dbname"] : "";
  return absl::StrCat(host, ":", port, "/", db);
}

absl::StatusOr<std::vector<Dsn>> ParseDsnList(absl::string_view list) {
  std::vector<Dsn> out;
  if (absl::StripAsciiWhitespace(list).empty()) {
    return absl::InvalidArgumentError(
        "--shards is empty: give one libpq connection string per shard, "
        "separated by commas");
  }
  int index = 0;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    absl::string_view trimmed = absl::StripAsciiWhitespace(part);
    if (trimmed.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shards entry ", index, " is empty (stray comma?)"));
    }
    out.emplace_back(std::string(trimmed));
    ++index;
  }
  return out;
}

}  // namespace inventory
