#include "inventory/loadgen/stats.h"

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace inventory::loadgen {
namespace {

constexpr char kErrorInfoType[] = "type.googleapis.com/google.rpc.ErrorInfo";

// The ErrorInfo reason in a failed call's details ("" if none).
std::string ReasonOf(const grpc::Status& status) {
  if (status.error_details().empty()) return "";
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return "";
  for (const auto& any : details.details()) {
    if (any.type_url() != kErrorInfoType) continue;
    google::rpc::ErrorInfo info;
    if (info.ParseFromString(any.value())) return info.reason();
  }
  return "";
}

}  // namespace

const char* MethodName(Method m) {
  switch (m) {
    case Method::kReserveItem: return "ReserveItem";
    case Method::kGetAvailability: return "GetAvailability";
    case Method::kCommitReservation: return "CommitReservation";
    case Method::kReleaseItem: return "ReleaseItem";
    case Method::kHealthCheck: return "Check";
  }
  return "?";
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    default: return "CODE_?";
  }
}

Outcome Classify(Method method, const grpc::Status& status) {
  Outcome o;
  if (status.ok()) {
    o.key = "OK";
    o.expected = true;
    return o;
  }
  const std::string reason = ReasonOf(status);
  if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
      reason == "OUT_OF_STOCK") {
    o.key = "OUT_OF_STOCK";
    o.out_of_stock = true;
    o.expected = method == Method::kReserveItem;
    return o;
  }
  o.key = CodeName(status.error_code());
  if (!reason.empty() && reason != o.key) absl::StrAppend(&o.key, " [", reason, "]");
  return o;
}

void CallStats::Record(int64_t latency_ns, const Outcome& outcome,
                       const std::string& error) {
  latency_.Record(latency_ns);
  ++outcomes_[outcome.key];
  if (!outcome.expected) {
    ++unexpected_;
    AddError(absl::StrCat(outcome.key, ": ", error), 1);
  }
}

void CallStats::AddError(const std::string& key, int64_t n) {
  auto it = errors_.find(key);
  if (it != errors_.end()) {
    it->second += n;
  } else if (errors_.size() < kMaxErrors) {
    errors_.emplace(key, n);
  } else {
    errors_["(other errors)"] += n;
  }
}

void CallStats::Merge(const CallStats& other) {
  latency_.Merge(other.latency_);
  for (const auto& [k, n] : other.outcomes_) outcomes_[k] += n;
  for (const auto& [k, n] : other.errors_) AddError(k, n);
  unexpected_ += other.unexpected_;
}

}  // namespace inventory::loadgen
