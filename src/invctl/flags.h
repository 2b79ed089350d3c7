// invctl's command-line flags: a small GNU-style parser (`--name=value`,
// `--name value`, `--flag` for booleans, `--` ends the flags) that knows, per
// subcommand, which flags exist and which take a value, so that a mistake is
// a usage error (exit 2) and never a guess. Typed readers turn a flag's text
// into an integer, a duration or one of a fixed set of words.
#ifndef INVENTORY_SRC_INVCTL_FLAGS_H_
#define INVENTORY_SRC_INVCTL_FLAGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace invctl {

// One flag a command accepts.
struct FlagSpec {
  std::string name;        // Long name, without the dashes.
  std::string value_name;  // Placeholder in usage ("N"); empty: a boolean.
  std::string help;        // One line for `invctl help <command>`.
  char short_name = 0;     // Optional one-letter alias (`-o`).

  bool takes_value() const { return !value_name.empty(); }
};

// The flags and positional arguments of one command line.
class ParsedArgs {
 public:
  // True if the flag was given (booleans: and not set to false).
  bool Has(absl::string_view name) const;
  // The flag's text, or `fallback` if it was not given.
  std::string Get(absl::string_view name, const std::string& fallback = "") const;
  const std::vector<std::string>& positional() const { return positional_; }

  // For the parser: records a flag (the last one given wins) or a positional.
  void Set(const std::string& name, const std::string& value) {
    values_[name] = value;
  }
  void AddPositional(const std::string& arg) { positional_.push_back(arg); }

  // Readers: a missing required flag, or a value of the wrong form, is an
  // InvalidArgument status whose message is meant for the user.
  absl::StatusOr<int64_t> RequiredInt64(absl::string_view name) const;
  absl::StatusOr<std::optional<int64_t>> OptionalInt64(absl::string_view name) const;
  absl::StatusOr<std::string> RequiredString(absl::string_view name) const;
  absl::StatusOr<std::optional<absl::Duration>> OptionalDuration(
      absl::string_view name) const;
  // The flag's value if it is one of `choices` (case-insensitive, returned
  // lower-cased); nullopt if it was not given.
  absl::StatusOr<std::optional<std::string>> OptionalChoice(
      absl::string_view name, const std::vector<std::string>& choices) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
  std::vector<std::string> positional_;
};

// Parses `args` against `specs`. With `stop_at_positional`, parsing stops at
// the first positional argument and the unparsed rest (that argument
// included) goes to *rest; otherwise positionals are collected.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     bool stop_at_positional = false,
                                     std::vector<std::string>* rest = nullptr);

// "30s", "1m30s", "250ms" (absl::ParseDuration), or a bare number of
// seconds ("30"). Negative durations are refused.
absl::StatusOr<absl::Duration> ParseDurationText(absl::string_view text);

}  // namespace invctl

#endif  // INVENTORY_SRC_INVCTL_FLAGS_H_
