// Waiting in tests for something another thread or process brings about:
// PollUntil checks a condition every 5 ms (or `every`) until it holds or time
// runs out.
#ifndef INVENTORY_TESTS_HARNESS_POLL_UNTIL_H_
#define INVENTORY_TESTS_HARNESS_POLL_UNTIL_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace inventory::testing {

// Polls `condition` every `every` until it holds or `timeout` passes;
// returns whether it held. A condition that costs an RPC to the service
// under test polls less often.
inline bool PollUntil(const std::function<bool()>& condition,
                      absl::Duration timeout = absl::Seconds(20),
                      absl::Duration every = absl::Milliseconds(5)) {
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    if (condition()) return true;
    absl::SleepFor(every);
  }
  return condition();
}

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_POLL_UNTIL_H_
