// What one inventory-loadgen run does: the scenario, how load is offered
// (closed loop at a concurrency, or open loop at a rate), how long, against
// which inventoryd instances and products. Filled from flags by main.cc.
#ifndef INVENTORY_LOADGEN_OPTIONS_H_
#define INVENTORY_LOADGEN_OPTIONS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace inventory::loadgen {

// The traffic shapes the load generator offers.
enum class Scenario {
  // ReserveItem of one unit of a product picked uniformly from --products.
  kUniform,
  // ReserveItem of one unit of a single product with a huge stock.
  kHot,
  // --concurrency clients race for the --stock units of one product; then
  // the next product (--products rounds). Exactly --stock must be granted.
  kLastWidget,
  // A storefront cart: GetAvailability, ReserveItem, GetAvailability, then
  // CommitReservation (at --commit_ratio) or ReleaseItem.
  kCart,
  // grpc.health.v1.Health/Check: the empty-call ceiling of the server.
  kHealth,
};

// The scenario named `name` ("uniform", "hot", "last-widget", "cart",
// "health"), or nullopt.
std::optional<Scenario> ParseScenario(absl::string_view name);
// The flag spelling of `s`.
const char* ScenarioName(Scenario s);
// True if the scenario creates and reserves products.
bool UsesProducts(Scenario s);

// Everything a run needs; defaults are those of the flags.
struct LoadOptions {
  Scenario scenario = Scenario::kUniform;
  // host:port of each inventoryd; calls go round-robin across them.
  std::vector<std::string> targets = {"127.0.0.1:50051"};

  // Closed loop: clients each with one call (or cart) in flight at a time.
  int concurrency = 64;
  // Open loop when > 0: new requests (or carts) per second, whatever the
  // latency; latency is measured from the scheduled start.
  double rate = 0;
  // Open loop: at most this many requests (carts) in flight; beyond it a
  // scheduled request is dropped and counted.
  int max_inflight = 5000;

  // Bounds: the run stops at whichever comes first. A zero duration means
  // 10 s, or 5 min when `requests` is set.
  absl::Duration duration = absl::ZeroDuration();
  // Requests (carts, for `cart`) to issue in all; 0 = no count bound.
  int64_t requests = 0;
  // Calls started before this much time has passed are not in the summary
  // (they still count for verification). Duration-bound runs only.
  absl::Duration warmup = absl::ZeroDuration();

  // Client threads, each with its own completion queue and channels.
  int threads = 2;
  // Channels (TCP connections) per target per thread.
  int connections = 1;
  // Deadline of each call.
  absl::Duration timeout = absl::Seconds(5);

  // Products: ids product_base .. product_base + products - 1.
  int64_t products = 0;  // 0 = the scenario's default
  int64_t product_base = 0;  // 0 = derived from the clock (unique per run)
  // Units each product is created with (0 = the scenario's default).
  int64_t stock = 0;
  // Create the products with STOCK_POLICY_BACKORDER: no reservation is
  // refused, units beyond the stock are backordered, and a release gives its
  // units to the waiting backorders (uniform, hot, cart).
  bool backorder = false;
  // Units per reservation.
  int64_t quantity = 1;
  // Cart: fraction of carts that check out, and fraction that leave their
  // hold to run out (abandoned carts); the rest release.
  double commit_ratio = 0.5;
  double abandon_ratio = 0;
  // Cart: the carts that reach their checkout once the run is over (time
  // up, or every --requests cart started) leave their hold, so the run ends
  // with holds open.
  bool abandon_at_end = false;
  // Cart: other product ids read with the cart's product ("browsing").
  int browse_ids = 4;
  // Hold time sent with each reservation; zero = the server's default.
  absl::Duration hold_ttl = absl::ZeroDuration();
  // Health: the service name to check ("" = the whole server).
  std::string health_service;
  // Seeds the product choice and the commit/release coin.
  uint64_t seed = 1;

  // Create the products before the run (CreateProduct); otherwise they must
  // exist (e.g. bulk-loaded with SQL) and be used by nobody else.
  bool setup = true;
  // Check the invariants after the run.
  bool verify = true;
  // At most this many acknowledged reservations are read back by id, and at
  // most this many products are read whole with GetProduct.
  int64_t verify_sample = 2000;
  // BACKORDER products whose stock could fill a backorder after the run are
  // read again after this long (the service's sweeper fills them within a
  // sweep); zero = not read again.
  absl::Duration fill_grace = absl::Seconds(3);

  // A local server process (inventoryd) whose CPU use and peak RSS are
  // reported for the measured window; 0 = none.
  int server_pid = 0;

  // Prefix of every request id of this run (unique per run).
  std::string run_id;

  // The run's effective duration bound.
  absl::Duration EffectiveDuration() const;
};

// Fills scenario defaults (products, stock) and checks the options; the
// message says which flag is wrong.
absl::Status Finalize(LoadOptions* options);

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_OPTIONS_H_
