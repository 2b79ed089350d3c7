// Prometheus metrics of one inventoryd: the grpc-ecosystem server metrics
// (pre-initialised for every method), per-shard pool and latency figures, and
// business counters. No label has unbounded cardinality (no product ids).
#ifndef INVENTORY_OBSERVABILITY_METRICS_H_
#define INVENTORY_OBSERVABILITY_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace inventory {

// What became of a ReserveItem call (inventory_reservations_total{outcome}).
enum class ReservationOutcome {
  kGranted,
  kReplayed,
  kOutOfStock,
  kConflict,
  kNotFound,
  kError,
};

// The metric handles of one gRPC method.
struct MethodMetrics {
  prometheus::Counter* started = nullptr;
  prometheus::Histogram* handling = nullptr;
  std::array<prometheus::Counter*, 17> handled{};  // by grpc status code
};

// Every metric of the process. Thread-safe; handles are created up front so
// recording never looks anything up under a lock.
class Metrics {
 public:
  // Creates the families and pre-initialises per-method series for every
  // method of `services` and per-shard series for `shard_count` shards.
  Metrics(int shard_count,
          const std::vector<const google::protobuf::ServiceDescriptor*>&
              services);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // The handles of "/package.Service/Method" (nullptr if unknown).
  const MethodMetrics* Method(absl::string_view full_method) const;

  // gRPC server metrics.
  void RpcStarted(const MethodMetrics& m) { m.started->Increment(); }
  void RpcHandled(const MethodMetrics& m, grpc::StatusCode code,
                  absl::Duration took);

  // Per-shard figures.
  void ObserveShardCall(int shard, absl::Duration took);
  void ObserveBatch(int shard, int size);
  void ObserveFastPath(int shard, int granted);
  void SetShardState(int shard, int in_use, size_t queued, bool reachable);

  // Business counters.
  void CountReservation(ReservationOutcome outcome);
  void CountExpiredHolds(int64_t n);
  void CountLateFilledUnits(int64_t n);
  void CountEventStreamed();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  absl::flat_hash_map<std::string, MethodMetrics> methods_;
  std::vector<prometheus::Histogram*> shard_call_seconds_;
  std::vector<prometheus::Histogram*> shard_batch_size_;
  std::vector<prometheus::Counter*> shard_fast_path_;
  std::vector<prometheus::Gauge*> shard_in_use_;
  std::vector<prometheus::Gauge*> shard_queue_;
  std::vector<prometheus::Gauge*> shard_reachable_;
  std::array<prometheus::Counter*, 6> reservations_{};
  prometheus::Counter* expired_ = nullptr;
  prometheus::Counter* late_filled_ = nullptr;
  prometheus::Counter* events_ = nullptr;
};

// The outcome of a ReserveItem call with `status` (ok: granted or replayed).
ReservationOutcome ClassifyReservation(const absl::Status& status,
                                       bool replayed);

}  // namespace inventory

#endif  // INVENTORY_OBSERVABILITY_METRICS_H_
