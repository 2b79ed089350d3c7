// A gRPC server interceptor that counts and times every RPC (Prometheus) and
// writes its access-log line: method, code, duration, request_id, shard, peer.
#ifndef INVENTORY_OBSERVABILITY_RPC_OBSERVER_H_
#define INVENTORY_OBSERVABILITY_RPC_OBSERVER_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "inventory/observability/metrics.h"
#include "inventory/routing/router.h"

namespace inventory {

// Makes one observer per call. `metrics` may be null (no metrics); it must
// outlive the server.
class RpcObserverFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcObserverFactory(Metrics* metrics, Router router, bool log_rpcs)
      : metrics_(metrics), router_(router), log_rpcs_(log_rpcs) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* const metrics_;
  const Router router_;
  const bool log_rpcs_;
};

}  // namespace inventory

#endif  // INVENTORY_OBSERVABILITY_RPC_OBSERVER_H_
