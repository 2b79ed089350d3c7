// The run's report: a text summary in the layout users know from ghz (count,
// total, slowest, fastest, average, requests/sec, response-time histogram,
// latency distribution, status code distribution, errors), followed by the
// verification verdict; and the same figures as JSON (durations in ns, as
// ghz writes them).
#ifndef INVENTORY_LOADGEN_REPORT_H_
#define INVENTORY_LOADGEN_REPORT_H_

#include <string>
#include <vector>

#include "inventory/loadgen/driver.h"
#include "inventory/loadgen/options.h"
#include "inventory/loadgen/verify.h"

namespace inventory::loadgen {

// Everything reported about one run.
struct Report {
  const LoadOptions* options = nullptr;
  const RunResult* run = nullptr;
  const Verification* verification = nullptr;  // ran == false: not verified
  // Why the run fails (unexpected errors, violations); empty = it passes.
  std::vector<std::string> failures;
};

// Reasons the run fails: unexpected error codes, wrong answers, broken
// invariants.
std::vector<std::string> FailuresOf(const LoadOptions& options,
                                    const RunResult& run,
                                    const Verification& verification);

// The text summary.
std::string FormatSummary(const Report& report);

// The JSON document.
std::string FormatJson(const Report& report);

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_REPORT_H_
