// Before and after a load run, through the public API only: creates the run's
// products, snapshots their counters, and afterwards checks what the server
// acknowledged against what the products show:
//  - no STRICT product oversold (GetProduct: reserved + purchased <= total),
//    and no BACKORDER product covering more units from stock than its total;
//  - per product, the stock consumed equals the units granted net of
//    releases, and the counters moved by exactly the acknowledged calls;
//  - last-widget: a sold-out product granted exactly its stock;
//  - every acknowledged reservation (or a sample) readable by id, in the
//    state the run left it in.
// It assumes nobody else touches the run's products meanwhile.
#ifndef INVENTORY_LOADGEN_VERIFY_H_
#define INVENTORY_LOADGEN_VERIFY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inventory/loadgen/driver.h"
#include "inventory/loadgen/options.h"
#include "inventory/loadgen/tally.h"

namespace inventory::loadgen {

// Creates products product_base .. +products-1 with `stock` units each.
// A product that already exists is an error: the ids must be fresh.
absl::Status SetupProducts(const LoadOptions& options);

// A product's counters as GetProduct shows them.
struct ProductState {
  bool found = false;
  bool strict = true;
  int64_t total = 0;
  int64_t reserved = 0;
  int64_t purchased = 0;
  int64_t available = 0;
  int64_t backordered = 0;
};

// The products' state before the run.
struct Baseline {
  // GetAvailability of every product, by index.
  std::vector<int64_t> available;
  // Indexes of the products read whole (GetProduct), and their state.
  std::vector<int64_t> sampled;
  std::vector<ProductState> sampled_state;
};

// Reads the baseline; fails if a product does not exist or a shard does not
// answer.
absl::StatusOr<Baseline> TakeBaseline(const LoadOptions& options);

// The verdict.
struct Verification {
  bool ran = false;
  // Units the server granted / released / committed (acknowledged calls).
  int64_t granted_units = 0;
  int64_t released_units = 0;
  int64_t committed_units = 0;
  // Units of holds the carts left to run out (--abandon_ratio).
  int64_t abandoned_units = 0;
  // Calls whose effect is unknown (errors other than OUT_OF_STOCK).
  int64_t uncertain_calls = 0;
  // Stock consumed: drop of available units over all products.
  int64_t consumed_units = 0;
  int64_t products_checked = 0;
  int64_t products_read = 0;
  int64_t reservations_checked = 0;
  int64_t sold_out_products = 0;
  // BACKORDER products read whole whose backorders stock could still fill
  // (a fill skipped a row locked at the time; the next change fills it),
  // still so when read again after --fill_grace.
  int64_t lagging_fills = 0;
  // Units backordered on the BACKORDER products read whole, after the run.
  int64_t backordered_units = 0;
  // One line per broken invariant (at most kMaxListed), and how many.
  std::vector<std::string> violations;
  int64_t violation_count = 0;
  // Facts worth printing that are not failures.
  std::vector<std::string> notes;

  bool passed() const { return violation_count == 0; }
  void Violation(std::string what);
  static constexpr size_t kMaxListed = 50;
};

// Checks the invariants after a run.
Verification Verify(const LoadOptions& options, const Tally& tally,
                    const RunResult& run, const Baseline& baseline);

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_VERIFY_H_
