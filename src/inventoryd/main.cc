// inventoryd: parses flags (each also settable as INVENTORY_<FLAG> in the
// environment), wires an App and serves until SIGINT/SIGTERM.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <pthread.h>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "inventory/observability/logging.h"
#include "inventory/server/app.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051", "host:port to serve gRPC on");
ABSL_FLAG(std::string, shards, "",
          "comma-separated libpq connection strings, one per shard; list "
          "order is the shard index (product_id mod N)");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error, critical or off");
ABSL_FLAG(std::string, log_format, "text",
          "text, or json (one JSON object per line)");
ABSL_FLAG(bool, log_rpcs, true, "write one access-log line per RPC");
ABSL_FLAG(std::string, metrics_listen, "",
          "host:port to serve Prometheus /metrics on (empty: off)");
ABSL_FLAG(absl::Duration, default_hold_ttl, absl::Minutes(15),
          "hold time of a reservation whose request sets no hold_ttl");
ABSL_FLAG(int64_t, max_quantity, 10000, "largest quantity of one reservation");
ABSL_FLAG(absl::Duration, default_deadline, absl::Seconds(5),
          "deadline of a call whose client sets none");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "how long SIGTERM waits for in-flight calls");
ABSL_FLAG(int, shard_connections, 2,
          "worker connections per shard");
ABSL_FLAG(int, batch_connections, 1,
          "of those, how many may run group transactions (reserve / release "
          "/ commit) at once; the rest serve reads and administration "
          "meanwhile (one makes the biggest batches; see docs/benchmarks.md)");
ABSL_FLAG(int, max_batch, 256,
          "most reserve/release/commit calls of one shard taken together "
          "(the fast path decides them in one statement, the group "
          "transaction in transactions of at most 32; 1: no coalescing)");
ABSL_FLAG(bool, fast_path, true,
          "grant batches of reserves whose products have stock for all of "
          "them with one plain statement before the group transaction "
          "(false: the group transaction decides everything)");
ABSL_FLAG(absl::Duration, sweep_interval, absl::Seconds(1),
          "how often each shard is swept for expired holds and backorder "
          "fills the fill trigger skipped");
ABSL_FLAG(int, sweep_batch, 500, "holds expired per shard per sweep");
ABSL_FLAG(absl::Duration, statement_timeout, absl::Seconds(5),
          "server-side bound of one SQL statement");
ABSL_FLAG(int, max_message_bytes, 1 << 20, "largest request accepted");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "calls one client connection may have in progress at once; more "
          "wait in the client (bounds the memory an overload takes)");
ABSL_FLAG(absl::Duration, etag_session_window, absl::Seconds(5),
          "AdjustStock: an operator session's own edits this close together "
          "skip the etag check");
ABSL_FLAG(std::string, port_file, "",
          "write the bound port to this file once serving (for --listen :0)");

namespace {

// Whether `file` is this file: its flags are the service's own (listed by
// --help, settable from the environment).
bool IsOwnFlagFile(absl::string_view file) {
  return absl::StrContains(file, "inventoryd/main.cc");
}

// Applies INVENTORY_<NAME> environment variables to this file's flags; the
// command line (parsed afterwards) wins.
bool ApplyEnvironment() {
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsOwnFlagFile(flag->Filename())) continue;
    std::string var = absl::StrCat("INVENTORY_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(var.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::cerr << "inventoryd: bad " << var << ": " << error << "\n";
      return false;
    }
  }
  return true;
}

// The rules of the flags' values that `c` breaks, each naming its flag.
std::vector<std::string> BrokenRules(const inventory::AppConfig& c) {
  const inventory::RequestLimits& limits = c.service.limits;
  const absl::Duration zero = absl::ZeroDuration();
  const struct {
    bool broken;
    const char* rule;
  } rules[] = {
      {limits.default_hold_ttl < limits.min_hold_ttl ||
           limits.default_hold_ttl > limits.max_hold_ttl,
       "--default_hold_ttl must be 1s..24h"},
      {limits.max_quantity < 1, "--max_quantity must be positive"},
      {c.executor.connections < 1, "--shard_connections must be positive"},
      {c.executor.batch_connections < 1 ||
           c.executor.batch_connections > c.executor.connections,
       "--batch_connections must be 1..--shard_connections"},
      {c.executor.max_batch < 1, "--max_batch must be positive"},
      {c.sweeper.interval < absl::Milliseconds(10),
       "--sweep_interval must be at least 10ms"},
      {c.sweeper.batch < 1, "--sweep_batch must be positive"},
      {c.service.default_deadline <= zero,
       "--default_deadline must be positive"},
      {c.store.statement_timeout <= zero,
       "--statement_timeout must be positive"},
      {c.drain_timeout < zero, "--drain_timeout must not be negative"},
      {c.max_message_bytes < 1024, "--max_message_bytes must be at least 1024"},
      {c.max_concurrent_streams < 1,
       "--max_concurrent_streams must be positive"},
      {c.service.session_window < zero,
       "--etag_session_window must not be negative"},
  };
  std::vector<std::string> broken;
  for (const auto& r : rules) {
    if (r.broken) broken.push_back(r.rule);
  }
  return broken;
}

}  // namespace

int main(int argc, char** argv) {
  // --help lists this file's flags (Abseil otherwise looks for a file named
  // after the binary's main module).
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = IsOwnFlagFile;
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "inventoryd --shards='host=... dbname=...,host=...' [--listen=...]\n"
      "Inventory reservation service over sharded PostgreSQL.");
  // Signals are taken by a thread of our own (sigwait), never in a handler;
  // blocked first, so that every thread started later (the log flusher's
  // too) inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Debian's Abseil checks every mutex acquisition for lock-order cycles;
  // that costs on every call and is for debugging builds.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (!ApplyEnvironment()) return 2;
  absl::ParseCommandLine(argc, argv);

  if (absl::Status s = inventory::ConfigureLogging(
          absl::GetFlag(FLAGS_log_format), absl::GetFlag(FLAGS_log_level));
      !s.ok()) {
    std::cerr << "inventoryd: " << s.message() << "\n";
    return 2;
  }

  auto dsns = inventory::ParseDsnList(absl::GetFlag(FLAGS_shards));
  if (!dsns.ok()) {
    std::cerr << "inventoryd: " << dsns.status().message() << "\n";
    return 2;
  }

  inventory::AppConfig config;
  config.listen = absl::GetFlag(FLAGS_listen);
  config.shards = *std::move(dsns);
  config.service.limits.default_hold_ttl =
      absl::GetFlag(FLAGS_default_hold_ttl);
  config.service.limits.max_quantity = absl::GetFlag(FLAGS_max_quantity);
  config.service.default_deadline = absl::GetFlag(FLAGS_default_deadline);
  config.service.session_window = absl::GetFlag(FLAGS_etag_session_window);
  config.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  config.executor.connections = absl::GetFlag(FLAGS_shard_connections);
  config.executor.batch_connections = absl::GetFlag(FLAGS_batch_connections);
  config.executor.max_batch = absl::GetFlag(FLAGS_max_batch);
  config.executor.fast_path = absl::GetFlag(FLAGS_fast_path);
  config.sweeper.interval = absl::GetFlag(FLAGS_sweep_interval);
  config.sweeper.batch = absl::GetFlag(FLAGS_sweep_batch);
  config.store.statement_timeout = absl::GetFlag(FLAGS_statement_timeout);
  config.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  config.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  config.port_file = absl::GetFlag(FLAGS_port_file);
  config.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  config.log_rpcs = absl::GetFlag(FLAGS_log_rpcs);
  if (std::vector<std::string> broken = BrokenRules(config); !broken.empty()) {
    std::cerr << "inventoryd: " << absl::StrJoin(broken, "; ") << "\n";
    return 2;
  }

  inventory::App app(std::move(config));
  if (absl::Status s = app.Start(); !s.ok()) {
    spdlog::critical("inventoryd cannot start: {}", std::string(s.message()));
    inventory::FlushLogs();
    std::_Exit(1);
  }
  // The first SIGINT / SIGTERM asks for a graceful stop (drain, exit 0); a
  // second one, during the drain, exits at once. `main_done` tells the
  // thread, woken by main itself, that `app` is going away.
  std::atomic<bool> main_done{false};
  std::thread signal_thread([&app, &main_done, signals] {
    for (int received = 1;; ++received) {
      int sig = 0;
      sigwait(&signals, &sig);
      if (main_done.load()) return;
      const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
      if (received == 1) {
        spdlog::info("received {}, shutting down (a second one stops at once)",
                     name);
        app.RequestStop(0);
        continue;
      }
      spdlog::warn("received {} again: exiting now, without draining", name);
      inventory::FlushLogs();
      std::_Exit(128 + sig);
    }
  });

  const int code = app.Wait();
  const bool clean = app.Shutdown();
  main_done.store(true);
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  // Everything still held is written, and any later line at once (a thread
  // left on a hung shard may still log; spdlog::shutdown() would leave it a
  // null logger).
  inventory::FlushLogs();
  if (!clean) std::_Exit(code);
  return code;
}
