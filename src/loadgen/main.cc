// inventory-loadgen: offers load to one or more inventoryd instances, prints a
// ghz-style summary (and JSON with --json_out), then checks that nothing was
// oversold or lost. Exit code: 0 pass, 1 unexpected errors or a broken
// invariant, 2 bad flags or the run could not start.
#include <fstream>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "inventory/loadgen/driver.h"
#include "inventory/loadgen/options.h"
#include "inventory/loadgen/report.h"
#include "inventory/loadgen/tally.h"
#include "inventory/loadgen/verify.h"

ABSL_FLAG(std::string, scenario, "uniform",
          "uniform | hot | last-widget | cart | health");
ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "inventoryd address; a comma-separated list spreads calls "
          "round-robin over several instances");
ABSL_FLAG(int, concurrency, 64,
          "closed loop: clients, each with one request (cart) in flight");
ABSL_FLAG(double, rate, 0,
          "open loop when > 0: requests (carts) started per second, whatever "
          "the latency");
ABSL_FLAG(int, max_inflight, 5000,
          "open loop: most requests (carts) in flight; more are dropped and "
          "counted");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(),
          "run this long (after --warmup); 0 = 10s, or 5m with --requests");
ABSL_FLAG(int64_t, requests, 0,
          "stop after this many requests (carts, for cart); 0 = no count bound");
ABSL_FLAG(absl::Duration, warmup, absl::ZeroDuration(),
          "load offered before measuring (not in the summary; still verified)");
ABSL_FLAG(int, threads, 2, "client threads (each: own completion queue and channels)");
ABSL_FLAG(int, connections, 1, "TCP connections per target per thread");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "deadline of each call");
ABSL_FLAG(int64_t, products, 0,
          "products to spread over (uniform, cart: 1000; last-widget: 1 = one "
          "race; each further product is one more race; hot: 1)");
ABSL_FLAG(int64_t, product_base, 0,
          "first product id; 0 = derived from the clock (fresh ids each run)");
ABSL_FLAG(int64_t, stock, 0,
          "units per product (last-widget: 100; uniform, cart: 10^9; hot: 10^15)");
ABSL_FLAG(bool, backorder, false,
          "create the products as STOCK_POLICY_BACKORDER (uniform, hot, cart): "
          "nothing is refused, releases fill the waiting backorders");
ABSL_FLAG(int64_t, quantity, 1, "units per reservation");
ABSL_FLAG(double, commit_ratio, 0.5, "cart: share of carts that check out");
ABSL_FLAG(double, abandon_ratio, 0,
          "cart: share of carts that leave their hold to run out (see "
          "--hold_ttl); the carts neither checked out nor abandoned release");
ABSL_FLAG(bool, abandon_at_end, false,
          "cart: carts that reach their checkout once the run is over leave "
          "their hold (the run ends with holds open)");
ABSL_FLAG(int, browse_ids, 4, "cart: other products read with the cart's product");
ABSL_FLAG(absl::Duration, hold_ttl, absl::ZeroDuration(),
          "hold time of each reservation (0 = the server's default)");
ABSL_FLAG(std::string, health_service, "",
          "health: service name to check (\"\" = the server)");
ABSL_FLAG(uint64_t, seed, 1, "seed of the product choice and the cart coin");
ABSL_FLAG(bool, setup, true,
          "create the products first; false = they exist (e.g. bulk-loaded) "
          "and --product_base names the first");
ABSL_FLAG(bool, verify, true, "check the invariants after the run");
ABSL_FLAG(int64_t, verify_sample, 2000,
          "most reservations read back by id, and products read whole");
ABSL_FLAG(absl::Duration, fill_grace, absl::Seconds(3),
          "BACKORDER products whose stock could fill a backorder after the run "
          "are read again after this long; only those still so count (0 = "
          "not read again)");
ABSL_FLAG(std::string, json_out, "", "also write the report as JSON here");
ABSL_FLAG(int, server_pid, 0,
          "pid of a local inventoryd: report its CPU use and peak RSS");
ABSL_FLAG(std::string, run_id, "",
          "prefix of this run's request ids (default: random)");

namespace {

using namespace inventory::loadgen;  // NOLINT: the binary of this namespace

absl::StatusOr<LoadOptions> OptionsFromFlags() {
  LoadOptions o;
  auto scenario = ParseScenario(absl::GetFlag(FLAGS_scenario));
  if (!scenario) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown --scenario '", absl::GetFlag(FLAGS_scenario),
        "'; use uniform, hot, last-widget, cart or health"));
  }
  o.scenario = *scenario;
  o.targets.clear();
  for (absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_target), ',')) {
    o.targets.emplace_back(absl::StripAsciiWhitespace(t));
  }
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.rate = absl::GetFlag(FLAGS_rate);
  o.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  o.duration = absl::GetFlag(FLAGS_duration);
  o.requests = absl::GetFlag(FLAGS_requests);
  o.warmup = absl::GetFlag(FLAGS_warmup);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.connections = absl::GetFlag(FLAGS_connections);
  o.timeout = absl::GetFlag(FLAGS_timeout);
  o.products = absl::GetFlag(FLAGS_products);
  o.product_base = absl::GetFlag(FLAGS_product_base);
  o.stock = absl::GetFlag(FLAGS_stock);
  o.backorder = absl::GetFlag(FLAGS_backorder);
  o.quantity = absl::GetFlag(FLAGS_quantity);
  o.commit_ratio = absl::GetFlag(FLAGS_commit_ratio);
  o.abandon_ratio = absl::GetFlag(FLAGS_abandon_ratio);
  o.abandon_at_end = absl::GetFlag(FLAGS_abandon_at_end);
  o.browse_ids = absl::GetFlag(FLAGS_browse_ids);
  o.hold_ttl = absl::GetFlag(FLAGS_hold_ttl);
  o.health_service = absl::GetFlag(FLAGS_health_service);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.setup = absl::GetFlag(FLAGS_setup);
  o.verify = absl::GetFlag(FLAGS_verify);
  o.verify_sample = absl::GetFlag(FLAGS_verify_sample);
  o.fill_grace = absl::GetFlag(FLAGS_fill_grace);
  o.run_id = absl::GetFlag(FLAGS_run_id);
  o.server_pid = absl::GetFlag(FLAGS_server_pid);
  if (absl::Status s = Finalize(&o); !s.ok()) return s;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "inventory-loadgen --scenario=hot|uniform|last-widget|cart|health "
      "[--target=host:port[,host:port...]] [--concurrency=N | --rate=R] "
      "[--duration=10s | --requests=N]\n"
      "Load generator and invariant checker for inventoryd.");
  // As in inventoryd: Debian's Abseil checks every mutex acquisition (gRPC's
  // included) for lock-order cycles. The load generator shares the machine
  // with the service it measures, so it spends no CPU on that.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  auto options = OptionsFromFlags();
  if (!options.ok()) {
    std::cerr << "inventory-loadgen: " << options.status().message() << "\n";
    return 2;
  }
  const LoadOptions& o = *options;
  std::cerr << "inventory-loadgen: " << ScenarioName(o.scenario) << " against "
            << absl::GetFlag(FLAGS_target);
  if (UsesProducts(o.scenario)) {
    std::cerr << ", products " << o.product_base << ".."
              << o.product_base + o.products - 1 << " x " << o.stock << " units"
              << (o.backorder ? " (BACKORDER)" : "");
  }
  std::cerr << ", run id " << o.run_id << "\n";

  if (UsesProducts(o.scenario) && o.setup) {
    const absl::Time t0 = absl::Now();
    if (absl::Status s = SetupProducts(o); !s.ok()) {
      std::cerr << "inventory-loadgen: setup failed: " << s.message() << "\n";
      return 2;
    }
    std::cerr << "inventory-loadgen: created " << o.products << " product(s) in "
              << absl::FormatDuration(absl::Trunc(absl::Now() - t0, absl::Milliseconds(1)))
              << "\n";
  }
  Baseline baseline;
  const bool verify = o.verify && UsesProducts(o.scenario);
  if (verify) {
    auto b = TakeBaseline(o);
    if (!b.ok()) {
      std::cerr << "inventory-loadgen: cannot read the products before the run: "
                << b.status().message() << "\n";
      return 2;
    }
    baseline = *std::move(b);
  }

  Tally tally(UsesProducts(o.scenario) ? o.products : 0,
              o.scenario == Scenario::kCart);
  auto run = RunLoad(o, &tally);
  if (!run.ok()) {
    std::cerr << "inventory-loadgen: " << run.status().message() << "\n";
    return 2;
  }

  Verification verification;
  if (verify) verification = Verify(o, tally, *run, baseline);
  Report report;
  report.options = &o;
  report.run = &*run;
  report.verification = &verification;
  report.failures = FailuresOf(o, *run, verification);
  std::cout << FormatSummary(report) << std::flush;

  const std::string json_out = absl::GetFlag(FLAGS_json_out);
  if (!json_out.empty()) {
    std::ofstream out(json_out);
    out << FormatJson(report);
    if (!out) {
      std::cerr << "inventory-loadgen: cannot write " << json_out << "\n";
      return 2;
    }
  }
  return report.failures.empty() ? 0 : 1;
}
