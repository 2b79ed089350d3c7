#include "invctl/flags.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace invctl {
namespace {

const FlagSpec* FindLong(const std::vector<FlagSpec>& specs,
                         absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<FlagSpec>& specs, char name) {
  for (const FlagSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == name) return &spec;
  }
  return nullptr;
}

absl::Status Invalid(absl::string_view name, absl::string_view value,
                     absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid --", name, " \"", value, "\": ", what));
}

}  // namespace

bool ParsedArgs::Has(absl::string_view name) const {
  auto it = values_.find(name);
  return it != values_.end() && it->second != "false";
}

std::string ParsedArgs::Get(absl::string_view name,
                            const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

absl::StatusOr<std::optional<int64_t>> ParsedArgs::OptionalInt64(
    absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::optional<int64_t>();
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return Invalid(name, it->second, "not an integer");
  }
  return std::optional<int64_t>(v);
}

absl::StatusOr<int64_t> ParsedArgs::RequiredInt64(absl::string_view name) const {
  absl::StatusOr<std::optional<int64_t>> v = OptionalInt64(name);
  if (!v.ok()) return v.status();
  if (!v->has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  }
  return **v;
}

absl::StatusOr<std::string> ParsedArgs::RequiredString(
    absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  }
  return it->second;
}

absl::StatusOr<std::optional<absl::Duration>> ParsedArgs::OptionalDuration(
    absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::optional<absl::Duration>();
  absl::StatusOr<absl::Duration> d = ParseDurationText(it->second);
  if (!d.ok()) return Invalid(name, it->second, d.status().message());
  return std::optional<absl::Duration>(*d);
}

absl::StatusOr<std::optional<std::string>> ParsedArgs::OptionalChoice(
    absl::string_view name, const std::vector<std::string>& choices) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::optional<std::string>();
  const std::string lower = absl::AsciiStrToLower(it->second);
  if (std::find(choices.begin(), choices.end(), lower) == choices.end()) {
    return Invalid(name, it->second,
                   absl::StrCat("expected one of ", absl::StrJoin(choices, ", ")));
  }
  return std::optional<std::string>(lower);
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     bool stop_at_positional,
                                     std::vector<std::string>* rest) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      if (stop_at_positional) {
        if (rest != nullptr) rest->assign(args.begin() + i, args.end());
        return parsed;
      }
      for (++i; i < args.size(); ++i) parsed.AddPositional(args[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      if (stop_at_positional) {
        if (rest != nullptr) rest->assign(args.begin() + i, args.end());
        return parsed;
      }
      parsed.AddPositional(arg);
      continue;
    }
    // A flag: --name, --name=value, -x, -x=value.
    const FlagSpec* spec = nullptr;
    std::string shown;
    absl::string_view body;
    if (absl::StartsWith(arg, "--")) {
      body = absl::string_view(arg).substr(2);
      const size_t eq = body.find('=');
      spec = FindLong(specs, body.substr(0, eq));
      shown = absl::StrCat("--", body.substr(0, eq));
    } else {
      body = absl::string_view(arg).substr(1);
      if (body.size() == 1 || (body.size() > 1 && body[1] == '=')) {
        spec = FindShort(specs, body[0]);
      }
      shown = absl::StrCat("-", body.substr(0, body.find('=')));
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", shown));
    }
    const size_t eq = body.find('=');
    if (!spec->takes_value()) {
      std::string value = "true";
      if (eq != absl::string_view::npos) {
        value = absl::AsciiStrToLower(body.substr(eq + 1));
        if (value != "true" && value != "false") {
          return absl::InvalidArgumentError(
              absl::StrCat(shown, " takes no value (or =true / =false)"));
        }
      }
      parsed.Set(spec->name, value);
      continue;
    }
    if (eq != absl::string_view::npos) {
      parsed.Set(spec->name, std::string(body.substr(eq + 1)));
      continue;
    }
    if (i + 1 >= args.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(shown, " needs a value (", spec->value_name, ")"));
    }
    parsed.Set(spec->name, args[++i]);
  }
  if (rest != nullptr) rest->clear();
  return parsed;
}

absl::StatusOr<absl::Duration> ParseDurationText(absl::string_view text) {
  absl::Duration d;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        "not a duration (examples: 30s, 1m30s, 250ms)");
  }
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError("must be a finite duration >= 0");
  }
  return d;
}

}  // namespace invctl
