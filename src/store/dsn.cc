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

// One keyword=value entry as libpq reads it (conninfo_parse): white space
// around '=', quoted values with backslash escapes, backslash escapes in
// unquoted values too. The views keep the original text, so it can be
// written back unchanged.
struct KeywordEntry {
  absl::string_view before;  // white space before the key
  absl::string_view key;
  absl::string_view gap;     // white space between the key and '='
  absl::string_view lead;    // white space after '='
  absl::string_view value;   // as written (quotes and escapes included)
};

// A keyword/value string split into entries. `malformed` if libpq would
// refuse it: `entries` then holds what came before the bad entry, and `rest`
// the white space before it; otherwise `rest` is the trailing white space.
struct KeywordForm {
  std::vector<KeywordEntry> entries;
  absl::string_view rest;
  bool malformed = false;
};

KeywordForm SplitKeywordForm(absl::string_view s) {
  KeywordForm form;
  size_t i = 0;
  const size_t n = s.size();
  while (true) {
    const size_t ws = i;
    while (i < n && IsSpace(s[i])) ++i;
    if (i >= n) {
      form.rest = s.substr(ws);
      return form;
    }
    KeywordEntry e;
    e.before = s.substr(ws, i - ws);
    const size_t key_start = i;
    while (i < n && s[i] != '=' && !IsSpace(s[i])) ++i;
    e.key = s.substr(key_start, i - key_start);
    const size_t gap = i;
    while (i < n && IsSpace(s[i])) ++i;
    if (i >= n || s[i] != '=') {
      form.rest = e.before;
      form.malformed = true;
      return form;
    }
    e.gap = s.substr(gap, i - gap);
    ++i;
    const size_t lead = i;
    while (i < n && IsSpace(s[i])) ++i;
    e.lead = s.substr(lead, i - lead);
    const size_t value_start = i;
    if (i < n && s[i] == '\'') {
      ++i;
      while (i < n && s[i] != '\'') i += (s[i] == '\\') ? 2 : 1;
      i = std::min(i + 1, n);
    } else {
      while (i < n && !IsSpace(s[i])) i += (s[i] == '\\') ? 2 : 1;
      i = std::min(i, n);
    }
    e.value = s.substr(value_start, i - value_start);
    form.entries.push_back(e);
  }
}

// A value as libpq sees it: quotes removed, backslash escapes resolved.
std::string Unquote(absl::string_view v) {
  if (!v.empty() && v.front() == '\'') {
    v.remove_prefix(1);
    if (!v.empty() && v.back() == '\'') v.remove_suffix(1);
  }
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) ++i;
    out.push_back(v[i]);
  }
  return out;
}

// Redacts the password in keyword/value form. A string libpq would refuse
// is hidden from the first entry it cannot read.
std::string RedactKeywordForm(absl::string_view s) {
  const KeywordForm form = SplitKeywordForm(s);
  std::string out;
  for (const KeywordEntry& e : form.entries) {
    absl::StrAppend(&out, e.before, e.key, e.gap, "=", e.lead,
                    absl::EqualsIgnoreCase(e.key, "password") ? "***"
                                                              : e.value);
  }
  absl::StrAppend(&out, form.rest, form.malformed ? "***" : "");
  return out;
}

// Where a URI's user info ends: the last '@' before any query (a password
// may, malformed but still secret, contain '/' or '@'), or npos. `s` starts
// after "scheme://".
size_t UserInfoEnd(absl::string_view s) {
  const size_t query = s.find('?');
  const size_t at = s.rfind('@', query);
  return at != absl::string_view::npos &&
                 (query == absl::string_view::npos || at < query)
             ? at
             : absl::string_view::npos;
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
  const size_t auth_start = out.find("://") + 3;
  // Everything between the first ':' of the user info and its end.
  const size_t at = UserInfoEnd(absl::string_view(out).substr(auth_start));
  if (at != absl::string_view::npos) {
    const size_t colon = out.find(':', auth_start);
    if (colon != std::string::npos && colon < auth_start + at) {
      out.replace(colon + 1, auth_start + at - colon - 1, "***");
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

// Whether the text after a comma of --shards starts the next connection
// string: a URI, a "keyword=" entry, or nothing (a stray comma, an error).
// Anything else continues the current one: libpq's multi-host lists
// ("host=a,b port=5432,5433", "postgresql://a:5432,b:5432/db").
bool StartsNextDsn(absl::string_view after) {
  after = absl::StripLeadingAsciiWhitespace(after);
  if (after.empty() || after.front() == ',' || IsUri(after)) return true;
  size_t i = 0;
  while (i < after.size() &&
         (absl::ascii_isalnum(static_cast<unsigned char>(after[i])) ||
          after[i] == '_')) {
    ++i;
  }
  if (i == 0) return false;
  after.remove_prefix(i);
  after = absl::StripLeadingAsciiWhitespace(after);
  return !after.empty() && after.front() == '=';
}

}  // namespace

std::string Dsn::Redacted() const {
  return IsUri(conninfo_) ? RedactUri(conninfo_) : RedactKeywordForm(conninfo_);
}

std::string Dsn::Endpoint() const {
  if (IsUri(conninfo_)) {
    absl::string_view s = conninfo_;
    s.remove_prefix(s.find("://") + 3);
    if (size_t at = UserInfoEnd(s); at != absl::string_view::npos) {
      s.remove_prefix(at + 1);
    }
    return std::string(s.substr(0, s.find('?')));
  }
  std::map<std::string, std::string> kv;
  for (const KeywordEntry& e : SplitKeywordForm(conninfo_).entries) {
    kv[absl::AsciiStrToLower(e.key)] = Unquote(e.value);
  }
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
  // In keyword form a value that starts with a quote runs to the closing
  // quote (backslash escapes), as libpq reads it: its commas never separate.
  // Other commas separate only where the next string starts.
  std::vector<absl::string_view> parts;
  size_t start = 0;
  bool quoted = false;
  char last = '\0';  // the last character outside white space
  for (size_t i = 0; i < list.size(); ++i) {
    const char c = list[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '\'') {
        quoted = false;
      }
    } else if (c == '\'' && last == '=' &&
               !IsUri(absl::StripLeadingAsciiWhitespace(
                   list.substr(start, i - start)))) {
      quoted = true;
    } else if (c == ',' && StartsNextDsn(list.substr(i + 1))) {
      parts.push_back(list.substr(start, i - start));
      start = i + 1;
    }
    if (!IsSpace(c)) last = c;
  }
  parts.push_back(list.substr(start));
  int index = 0;
  for (absl::string_view part : parts) {
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
