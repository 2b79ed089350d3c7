#include "inventory/observability/metrics.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "inventory/common/errors.h"

namespace inventory {
namespace {

const char* const kCodeNames[17] = {
    "OK",           "Canceled",          "Unknown",          "InvalidArgument",
    "DeadlineExceeded", "NotFound",      "AlreadyExists",    "PermissionDenied",
    "ResourceExhausted", "FailedPrecondition", "Aborted",    "OutOfRange",
    "Unimplemented", "Internal",         "Unavailable",      "DataLoss",
    "Unauthenticated"};

const char* MethodType(const google::protobuf::MethodDescriptor& m) {
  if (m.client_streaming() && m.server_streaming()) return "bidi_stream";
  if (m.client_streaming()) return "client_stream";
  if (m.server_streaming()) return "server_stream";
  return "unary";
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
}

}  // namespace

Metrics::Metrics(
    int shard_count,
    const std::vector<const google::protobuf::ServiceDescriptor*>& services)
    : registry_(std::make_shared<prometheus::Registry>()) {
  auto& started = prometheus::BuildCounter()
                      .Name("grpc_server_started_total")
                      .Help("Total number of RPCs started on the server.")
                      .Register(*registry_);
  auto& handled = prometheus::BuildCounter()
                      .Name("grpc_server_handled_total")
                      .Help("Total number of RPCs completed on the server, "
                            "regardless of success or failure.")
                      .Register(*registry_);
  auto& handling = prometheus::BuildHistogram()
                       .Name("grpc_server_handling_seconds")
                       .Help("Histogram of response latency (seconds) of gRPC "
                             "that had been application-level handled by the "
                             "server.")
                       .Register(*registry_);
  for (const auto* service : services) {
    for (int i = 0; i < service->method_count(); ++i) {
      const auto* m = service->method(i);
      prometheus::Labels labels = {{"grpc_service", service->full_name()},
                                   {"grpc_method", m->name()},
                                   {"grpc_type", MethodType(*m)}};
      MethodMetrics mm;
      mm.started = &started.Add(labels);
      mm.handling = &handling.Add(labels, LatencyBuckets());
      for (int code = 0; code < 17; ++code) {
        prometheus::Labels with_code = labels;
        with_code["grpc_code"] = kCodeNames[code];
        mm.handled[code] = &handled.Add(with_code);
      }
      methods_[absl::StrCat("/", service->full_name(), "/", m->name())] = mm;
    }
  }

  auto& call_seconds = prometheus::BuildHistogram()
                           .Name("inventory_shard_call_seconds")
                           .Help("Time a worker spent on one call's database "
                                 "work, by shard.")
                           .Register(*registry_);
  auto& batch_size = prometheus::BuildHistogram()
                         .Name("inventory_shard_batch_size")
                         .Help("Requests a worker took together (one batch: "
                               "the fast path and group transactions), by "
                               "shard.")
                         .Register(*registry_);
  auto& fast_path = prometheus::BuildCounter()
                       .Name("inventory_shard_fast_path_granted_total")
                       .Help("Reserves granted by the one-statement fast "
                             "path (the rest of their batches went to the "
                             "group transaction), by shard.")
                       .Register(*registry_);
  auto& in_use = prometheus::BuildGauge()
                     .Name("inventory_shard_connections_in_use")
                     .Help("Worker connections busy with a call, by shard.")
                     .Register(*registry_);
  auto& queue = prometheus::BuildGauge()
                    .Name("inventory_shard_queue_depth")
                    .Help("Calls waiting for a worker connection, by shard.")
                    .Register(*registry_);
  auto& reachable = prometheus::BuildGauge()
                        .Name("inventory_shard_reachable")
                        .Help("1 if the shard answers, else 0.")
                        .Register(*registry_);
  for (int s = 0; s < shard_count; ++s) {
    prometheus::Labels l = {{"shard", absl::StrCat(s)}};
    shard_call_seconds_.push_back(&call_seconds.Add(l, LatencyBuckets()));
    shard_batch_size_.push_back(
        &batch_size.Add(l, prometheus::Histogram::BucketBoundaries{
                               1, 2, 4, 8, 16, 32, 64, 128, 256}));
    shard_fast_path_.push_back(&fast_path.Add(l));
    shard_in_use_.push_back(&in_use.Add(l));
    shard_queue_.push_back(&queue.Add(l));
    shard_reachable_.push_back(&reachable.Add(l));
  }

  auto& reservations = prometheus::BuildCounter()
                           .Name("inventory_reservations_total")
                           .Help("ReserveItem calls by outcome.")
                           .Register(*registry_);
  const char* outcomes[] = {"granted",  "replayed",  "out_of_stock",
                            "conflict", "not_found", "error"};
  for (int i = 0; i < 6; ++i) {
    reservations_[i] = &reservations.Add({{"outcome", outcomes[i]}});
  }
  expired_ = &prometheus::BuildCounter()
                  .Name("inventory_expired_holds_total")
                  .Help("Holds this instance's sweeper expired.")
                  .Register(*registry_)
                  .Add({});
  late_filled_ = &prometheus::BuildCounter()
                      .Name("inventory_backorder_late_fill_units_total")
                      .Help("Backordered units this instance's sweeper filled "
                            "after the fill trigger had skipped them (row "
                            "locked by another transaction at the time).")
                      .Register(*registry_)
                      .Add({});
  events_ = &prometheus::BuildCounter()
                 .Name("inventory_events_streamed_total")
                 .Help("Inventory events written to watch streams.")
                 .Register(*registry_)
                 .Add({});
}

const MethodMetrics* Metrics::Method(absl::string_view full_method) const {
  auto it = methods_.find(full_method);
  return it == methods_.end() ? nullptr : &it->second;
}

void Metrics::RpcHandled(const MethodMetrics& m, grpc::StatusCode code,
                         absl::Duration took) {
  int c = static_cast<int>(code);
  if (c < 0 || c > 16) c = 2;  // Unknown
  m.handled[c]->Increment();
  m.handling->Observe(absl::ToDoubleSeconds(took));
}

void Metrics::ObserveShardCall(int shard, absl::Duration took) {
  shard_call_seconds_[shard]->Observe(absl::ToDoubleSeconds(took));
}

void Metrics::ObserveBatch(int shard, int size) {
  shard_batch_size_[shard]->Observe(size);
}

void Metrics::ObserveFastPath(int shard, int granted) {
  shard_fast_path_[shard]->Increment(granted);
}

void Metrics::SetShardState(int shard, int in_use, size_t queued,
                            bool reachable) {
  shard_in_use_[shard]->Set(in_use);
  shard_queue_[shard]->Set(static_cast<double>(queued));
  shard_reachable_[shard]->Set(reachable ? 1 : 0);
}

void Metrics::CountReservation(ReservationOutcome outcome) {
  reservations_[static_cast<int>(outcome)]->Increment();
}

void Metrics::CountExpiredHolds(int64_t n) {
  if (n > 0) expired_->Increment(static_cast<double>(n));
}

void Metrics::CountLateFilledUnits(int64_t n) {
  if (n > 0) late_filled_->Increment(static_cast<double>(n));
}

void Metrics::CountEventStreamed() { events_->Increment(); }

ReservationOutcome ClassifyReservation(const absl::Status& status,
                                       bool replayed) {
  if (status.ok()) {
    return replayed ? ReservationOutcome::kReplayed
                    : ReservationOutcome::kGranted;
  }
  const std::string r = ErrorReason(status);
  if (r == reason::kOutOfStock) return ReservationOutcome::kOutOfStock;
  if (r == reason::kRequestIdConflict) return ReservationOutcome::kConflict;
  if (r == reason::kProductNotFound) return ReservationOutcome::kNotFound;
  return ReservationOutcome::kError;
}

}  // namespace inventory
