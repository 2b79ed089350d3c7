// Per-method call statistics of a load run: a latency histogram and how the
// calls ended (gRPC code, with the ErrorInfo reason for our errors).
// OUT_OF_STOCK is counted on its own: for a reservation it is an expected
// answer, not a failure. One CallStats per thread, merged at the end.
#ifndef INVENTORY_LOADGEN_STATS_H_
#define INVENTORY_LOADGEN_STATS_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "grpcpp/support/status.h"
#include "inventory/loadgen/histogram.h"

namespace inventory::loadgen {

// The RPCs a load run makes.
enum class Method {
  kReserveItem,
  kGetAvailability,
  kCommitReservation,
  kReleaseItem,
  kHealthCheck,
};
inline constexpr int kMethodCount = 5;

// "ReserveItem", ..., "Check".
const char* MethodName(Method m);

// How a call ended, as the summary counts it.
struct Outcome {
  // "OK", "OUT_OF_STOCK", or the code's name with the ErrorInfo reason in
  // brackets when there is one ("UNAVAILABLE [SHARD_UNAVAILABLE]").
  std::string key;
  // True for OK, and for OUT_OF_STOCK of a ReserveItem.
  bool expected = false;
  // True for OUT_OF_STOCK (a definite "no": nothing was reserved).
  bool out_of_stock = false;
};

// Classifies a finished call of `method`.
Outcome Classify(Method method, const grpc::Status& status);

// The canonical upper-case name of a gRPC code ("DEADLINE_EXCEEDED").
const char* CodeName(grpc::StatusCode code);

// Statistics of the calls of one method.
class CallStats {
 public:
  // Adds a finished call. `error` is the call's message when unexpected.
  void Record(int64_t latency_ns, const Outcome& outcome,
              const std::string& error);
  void Merge(const CallStats& other);

  const LatencyHistogram& latency() const { return latency_; }
  // Outcome key -> calls.
  const std::map<std::string, int64_t>& outcomes() const { return outcomes_; }
  // "CODE: message" of unexpected errors -> calls (at most kMaxErrors kinds;
  // the rest are counted under "(other errors)").
  const std::map<std::string, int64_t>& errors() const { return errors_; }
  int64_t unexpected() const { return unexpected_; }
  int64_t count() const { return latency_.count(); }

  static constexpr size_t kMaxErrors = 32;

 private:
  void AddError(const std::string& key, int64_t n);

  LatencyHistogram latency_;
  std::map<std::string, int64_t> outcomes_;
  std::map<std::string, int64_t> errors_;
  int64_t unexpected_ = 0;
};

// One CallStats per method.
using MethodStats = std::array<CallStats, kMethodCount>;

}  // namespace inventory::loadgen

#endif  // INVENTORY_LOADGEN_STATS_H_
