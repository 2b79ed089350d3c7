// Wires one inventoryd: shard stores, monitors, executors, the expiry sweeper
// and the gRPC server (InventoryService, health, reflection), and takes it all
// down again in order. main() only turns flags into an AppConfig.
#ifndef INVENTORY_SERVER_APP_H_
#define INVENTORY_SERVER_APP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "inventory/api/admin_service.h"
#include "inventory/api/inventory_service.h"
#include "inventory/api/validation.h"
#include "inventory/executor/shard_executor.h"
#include "inventory/expiry/sweeper.h"
#include "inventory/health/shard_health.h"
#include "inventory/health/shard_monitor.h"
#include "inventory/observability/metrics.h"
#include "prometheus/exposer.h"
#include "inventory/store/dsn.h"

namespace inventory {

// Everything inventoryd is told at start.
struct AppConfig {
  std::string listen = "127.0.0.1:50051";
  std::vector<Dsn> shards;
  ServiceOptions service;
  absl::Duration drain_timeout = absl::Seconds(10);
  absl::Duration probe_interval = absl::Seconds(1);
  // How long start-up waits for a shard's first probe (its bootstrap). A
  // shard still silent then is served once its probe finishes.
  absl::Duration startup_probe_wait = absl::Seconds(10);
  ExpirySweeper::Options sweeper;
  ShardExecutor::Options executor;
  ShardStoreOptions store;
  int max_message_bytes = 1 << 20;
  // Calls one client connection may have in progress at once (HTTP/2
  // SETTINGS_MAX_CONCURRENT_STREAMS); further calls wait in the client.
  int max_concurrent_streams = 256;
  // Written with the bound port once serving (for --listen host:0).
  std::string port_file;
  // Prometheus /metrics address ("" = off; port 0 picks one).
  std::string metrics_listen;
  // One access-log line per RPC.
  bool log_rpcs = true;
};

// One running inventoryd.
class App {
 public:
  explicit App(AppConfig config);
  ~App();

  // Bootstraps every reachable shard (migrations, identity) and starts
  // serving. FAILED_PRECONDITION if a shard's identity does not match its
  // place in the list; other errors if the server cannot listen.
  absl::Status Start();

  // The port the server listens on.
  int port() const { return port_; }
  // The port /metrics is served on (0 if off).
  int metrics_port() const { return metrics_port_; }

  // Asks the app to stop (from a signal, say); Wait() then returns.
  void RequestStop(int exit_code);

  // Blocks until RequestStop(); returns its exit code.
  int Wait();

  // NOT_SERVING, drain in-flight calls until the drain timeout, stop the
  // rest. Returns false if some thread is stuck on a hung shard (the process
  // should then exit without running destructors).
  bool Shutdown();

 private:
  // Readiness and the per-shard gauges, every 250 ms.
  void UpdateReadiness();

  AppConfig config_;
  std::vector<std::unique_ptr<ShardHealth>> health_;
  std::vector<std::unique_ptr<ShardMonitor>> monitors_;
  std::vector<std::unique_ptr<ShardExecutor>> executors_;
  std::unique_ptr<ExpirySweeper> sweeper_;
  std::unique_ptr<InventoryServiceImpl> service_;
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int64_t expired_reported_ = 0;
  int64_t late_filled_reported_ = 0;
  int port_ = 0;
  int metrics_port_ = 0;
  std::thread readiness_thread_;
  std::atomic<bool> stop_notified_{false};  // Notify() exactly once
  absl::Notification stop_requested_;
  std::atomic<int> exit_code_{0};
  bool shut_down_ = false;
};

}  // namespace inventory

#endif  // INVENTORY_SERVER_APP_H_
