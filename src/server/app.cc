#include "inventory/server/app.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "google/protobuf/descriptor.h"
#include "inventory/observability/rpc_observer.h"
#include "spdlog/spdlog.h"

namespace inventory {
namespace {

constexpr char kServiceName[] = "inventory.v1.InventoryService";

}  // namespace

App::App(AppConfig config) : config_(std::move(config)) {}

App::~App() {
  if (!shut_down_) Shutdown();
}

absl::Status App::Start() {
  const int n = static_cast<int>(config_.shards.size());
  if (n == 0) return absl::InvalidArgumentError("no shards configured");
  config_.store.expected_shard_count = n;
  for (int i = 0; i < n; ++i) {
    spdlog::info("shard {}: {}", i, config_.shards[i].Redacted());
    health_.push_back(std::make_unique<ShardHealth>());
  }

  // Every shard's monitor bootstraps it at once, in parallel. A shard that
  // is down, or has not answered by the wait's end (hung), is bootstrapped
  // by its monitor once it does; until then its products answer
  // UNAVAILABLE, and the other shards serve.
  for (int i = 0; i < n; ++i) {
    monitors_.push_back(std::make_unique<ShardMonitor>(
        std::make_unique<ShardStore>(i, config_.shards[i], config_.store), n,
        health_[i].get(), config_.probe_interval,
        [this](const absl::Status&) { RequestStop(1); }));
    monitors_.back()->Start();
  }
  const absl::Time wait_until = absl::Now() + config_.startup_probe_wait;
  for (int i = 0; i < n; ++i) {
    absl::Status s = monitors_[i]->WaitForFirstProbe(
        std::max(absl::ZeroDuration(), wait_until - absl::Now()));
    if (s.code() == absl::StatusCode::kFailedPrecondition) return s;
    if (!s.ok()) {
      spdlog::warn("shard {} ({}) is not reachable at start: {}; its products "
                   "answer UNAVAILABLE until it is",
                   i, config_.shards[i].Redacted(), std::string(s.message()));
    }
  }
  // A mismatch found by a probe above already asked us to stop.
  if (stop_requested_.HasBeenNotified()) {
    return absl::FailedPreconditionError("shard identity mismatch");
  }

  // Metrics for every method the server offers.
  std::vector<const google::protobuf::ServiceDescriptor*> services;
  for (const char* name :
       {"inventory.v1.InventoryService", "inventory.v1.AdminService",
        "grpc.health.v1.Health"}) {
    const auto* d =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    if (d != nullptr) services.push_back(d);
  }
  metrics_ = std::make_unique<Metrics>(n, services);
  if (!config_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics_listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "cannot serve metrics on ", config_.metrics_listen, ": ", e.what()));
    }
    exposer_->RegisterCollectable(metrics_->registry());
    metrics_port_ = exposer_->GetListeningPorts().empty()
                        ? 0
                        : exposer_->GetListeningPorts().front();
  }
  config_.service.metrics = metrics_.get();

  std::vector<ShardExecutor*> executors;
  for (int i = 0; i < n; ++i) {
    ShardExecutor::Options exec_options = config_.executor;
    exec_options.observe_call = [m = metrics_.get(), i](absl::Duration d) {
      m->ObserveShardCall(i, d);
    };
    exec_options.observe_batch = [m = metrics_.get(), i](int size) {
      m->ObserveBatch(i, size);
    };
    exec_options.observe_fast_path = [m = metrics_.get(), i](int granted) {
      m->ObserveFastPath(i, granted);
    };
    executors_.push_back(std::make_unique<ShardExecutor>(
        i,
        [i, dsn = config_.shards[i], opts = config_.store] {
          return std::make_unique<ShardStore>(i, dsn, opts);
        },
        health_[i].get(), exec_options));
    executors_.back()->Start();
    executors.push_back(executors_.back().get());
  }
  sweeper_ = std::make_unique<ExpirySweeper>(executors, config_.sweeper);
  sweeper_->Start();

  service_ = std::make_unique<InventoryServiceImpl>(Router(n), executors,
                                                    config_.service);
  std::vector<ShardView> views;
  for (int i = 0; i < n; ++i) {
    views.push_back({config_.shards[i], executors[i], health_[i].get(),
                     config_.executor.connections});
  }
  admin_ = std::make_unique<AdminServiceImpl>(
      std::move(views), config_.service.default_deadline);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second inventoryd on a taken port
  // would start and take half the new connections. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config_.listen, grpc::InsecureServerCredentials(),
                           &port_);
  builder.RegisterService(service_.get());
  builder.RegisterService(admin_.get());
  builder.SetMaxReceiveMessageSize(config_.max_message_bytes);
  // Every call in progress holds memory (about 30 KB measured): a client
  // that opens calls faster than they are served queues them on its side
  // beyond this many per connection, so an overload cannot grow the
  // server's memory without bound (docs/benchmarks.md).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             config_.max_concurrent_streams);
  // Clients reconnect now and then, so instances added later get traffic
  // too (open streams keep their connection: no grace limit).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 5 * 60 * 1000);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<RpcObserverFactory>(
      metrics_.get(), Router(n), config_.log_rpcs));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config_.listen));
  }
  UpdateReadiness();
  readiness_thread_ = std::thread([this] {
    while (!stop_requested_.WaitForNotificationWithTimeout(
        absl::Milliseconds(250))) {
      UpdateReadiness();
    }
  });
  if (!config_.port_file.empty()) {
    std::string tmp = config_.port_file + ".tmp";
    std::ofstream(tmp) << port_ << "\n";
    std::rename(tmp.c_str(), config_.port_file.c_str());
  }
  spdlog::info("inventoryd serving on {} (port {}) with {} shard(s){}",
               config_.listen, port_, n,
               exposer_ != nullptr
                   ? absl::StrCat("; metrics on port ", metrics_port_)
                   : std::string());
  return absl::OkStatus();
}

void App::UpdateReadiness() {
  bool any = false;
  const absl::Time now = absl::Now();
  for (size_t i = 0; i < health_.size(); ++i) {
    const bool up = health_[i]->Reachable(now);
    any = any || up;
    metrics_->SetShardState(static_cast<int>(i), executors_[i]->busy(),
                            executors_[i]->queued(), up);
  }
  const int64_t expired = sweeper_->expired_total();
  metrics_->CountExpiredHolds(expired - expired_reported_);
  expired_reported_ = expired;
  const int64_t late_filled = sweeper_->late_filled_total();
  metrics_->CountLateFilledUnits(late_filled - late_filled_reported_);
  late_filled_reported_ = late_filled;
  server_->GetHealthCheckService()->SetServingStatus(kServiceName, any);
}

void App::RequestStop(int exit_code) {
  if (exit_code != 0) exit_code_.store(exit_code);
  if (!stop_notified_.exchange(true)) stop_requested_.Notify();
}

int App::Wait() {
  stop_requested_.WaitForNotification();
  return exit_code_.load();
}

bool App::Shutdown() {
  if (shut_down_) return true;
  shut_down_ = true;
  if (!stop_notified_.exchange(true)) stop_requested_.Notify();
  if (readiness_thread_.joinable()) readiness_thread_.join();
  const absl::Time deadline = absl::Now() + config_.drain_timeout;
  if (server_ != nullptr) {
    // Health first, so load balancers stop sending; then drain.
    server_->GetHealthCheckService()->Shutdown();
    // Event streams never end by themselves: end them first.
    service_->StopWatchers();
    spdlog::info("draining in-flight calls (up to {})",
                 absl::FormatDuration(config_.drain_timeout));
    server_->Shutdown(absl::ToChronoTime(deadline));
  }
  if (sweeper_ != nullptr) sweeper_->Stop();
  bool clean = true;
  for (auto& e : executors_) {
    clean = e->Shutdown(deadline + absl::Seconds(1)) && clean;
  }
  for (auto& m : monitors_) clean = m->Stop(absl::Seconds(1)) && clean;
  if (server_ != nullptr) server_->Wait();
  spdlog::info("inventoryd stopped{}", clean ? "" : " (a shard was hung)");
  return clean;
}

}  // namespace inventory
