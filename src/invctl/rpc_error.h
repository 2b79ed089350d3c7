// invctl's report of a failed call: the exit code (64 + gRPC status code, as
// grpcurl does) and a description for stderr with the code name, the
// message, and the rich error details the service attaches
// (google.rpc.ErrorInfo reason / domain / metadata, google.rpc.BadRequest
// field violations).
#ifndef INVENTORY_SRC_INVCTL_RPC_ERROR_H_
#define INVENTORY_SRC_INVCTL_RPC_ERROR_H_

#include <string>

#include "grpcpp/support/status.h"

namespace invctl {

// Exit code of the first failed call: 64 + its gRPC status code.
constexpr int kExitRpcBase = 64;

// 64 + status code (e.g. 69 for NOT_FOUND, 78 for UNAVAILABLE).
int ExitCodeFor(const grpc::Status& status);

// "NOT_FOUND", "FAILED_PRECONDITION", ... ("CODE_<n>" if unknown).
std::string CodeName(grpc::StatusCode code);

// Several lines ending in a newline, starting "ERROR: <CODE>: <message>".
std::string DescribeFailure(const grpc::Status& status);

}  // namespace invctl

#endif  // INVENTORY_SRC_INVCTL_RPC_ERROR_H_
