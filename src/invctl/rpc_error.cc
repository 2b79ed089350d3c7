#include "invctl/rpc_error.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace invctl {
namespace {

constexpr char kErrorInfoType[] = "type.googleapis.com/google.rpc.ErrorInfo";
constexpr char kBadRequestType[] = "type.googleapis.com/google.rpc.BadRequest";

}  // namespace

int ExitCodeFor(const grpc::Status& status) {
  return kExitRpcBase + static_cast<int>(status.error_code());
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

std::string DescribeFailure(const grpc::Status& status) {
  std::string out = absl::StrCat("ERROR: ", CodeName(status.error_code()), ": ",
                                 status.error_message(), "\n");
  // Parse into a named object first: the loops below walk its members.
  google::rpc::Status details;
  if (status.error_details().empty() ||
      !details.ParseFromString(status.error_details())) {
    return out;
  }
  for (const google::protobuf::Any& any : details.details()) {
    if (any.type_url() == kErrorInfoType) {
      google::rpc::ErrorInfo info;
      if (!any.UnpackTo(&info)) continue;
      absl::StrAppend(&out, "  reason: ", info.reason(), "\n");
      if (!info.domain().empty()) {
        absl::StrAppend(&out, "  domain: ", info.domain(), "\n");
      }
      // Sorted, so the output does not depend on hash-map order.
      const std::map<std::string, std::string> metadata(
          info.metadata().begin(), info.metadata().end());
      for (const auto& [key, value] : metadata) {
        absl::StrAppend(&out, "  metadata: ", key, "=", value, "\n");
      }
    } else if (any.type_url() == kBadRequestType) {
      google::rpc::BadRequest bad;
      if (!any.UnpackTo(&bad)) continue;
      for (const auto& v : bad.field_violations()) {
        absl::StrAppend(&out, "  field ", v.field(), ": ", v.description(), "\n");
      }
    }
  }
  return out;
}

}  // namespace invctl
