#include "inventory/observability/rpc_observer.h"

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/server_context.h"
#include "inventory/observability/logging.h"

namespace inventory {
namespace {

using grpc::experimental::InterceptionHookPoints;

// Observes one call from its start to the status it sends.
class RpcObserver final : public grpc::experimental::Interceptor {
 public:
  RpcObserver(grpc::experimental::ServerRpcInfo* info, Metrics* metrics,
              const Router& router, bool log_rpcs)
      : info_(info),
        metrics_(metrics),
        router_(router),
        log_rpcs_(log_rpcs),
        start_(absl::Now()) {
    if (metrics_ != nullptr) {
      method_ = metrics_->Method(info_->method());
      if (method_ != nullptr) metrics_->RpcStarted(*method_);
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // Only our own services' messages are known to be protobuf messages
    // (the built-in health service, for one, uses raw byte buffers).
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE) &&
        log_rpcs_ &&
        absl::StartsWith(info_->method(), "/inventory.v1.")) {
      NoteRequest(static_cast<const google::protobuf::Message*>(
          methods->GetRecvMessage()));
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      const absl::Duration took = absl::Now() - start_;
      if (method_ != nullptr) {
        metrics_->RpcHandled(*method_, status.error_code(), took);
      }
      if (log_rpcs_) {
        RpcLogRecord r;
        r.method = info_->method();
        r.code = status.error_code();
        r.duration_ms = absl::ToDoubleMilliseconds(took);
        r.request_id = std::move(request_id_);
        r.shard = shard_;
        r.peer = info_->server_context()->peer();
        if (!status.ok()) r.error = status.error_message();
        LogRpc(r);
      }
    }
    methods->Proceed();
  }

 private:
  // Picks the request id and the shard out of the first request message.
  void NoteRequest(const google::protobuf::Message* message) {
    if (message == nullptr || noted_) return;
    noted_ = true;
    const auto* d = message->GetDescriptor();
    const auto* r = message->GetReflection();
    if (const auto* f = d->FindFieldByName("request_id");
        f != nullptr && f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      request_id_ = r->GetString(*message, f).substr(0, 160);
    }
    if (const auto* f = d->FindFieldByName("product_id");
        f != nullptr && f->type() == google::protobuf::FieldDescriptor::TYPE_INT64 &&
        !f->is_repeated()) {
      const int64_t id = r->GetInt64(*message, f);
      if (id > 0) shard_ = router_.ShardForProduct(id);
    } else if (const auto* f = d->FindFieldByName("reservation_id");
               f != nullptr &&
               f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
      auto key = ParseReservationId(r->GetString(*message, f));
      if (key.ok()) shard_ = router_.ShardForReservation(*key);
    }
  }

  grpc::experimental::ServerRpcInfo* const info_;
  Metrics* const metrics_;
  const Router& router_;
  const bool log_rpcs_;
  const absl::Time start_;
  const MethodMetrics* method_ = nullptr;
  bool noted_ = false;
  std::string request_id_;
  int shard_ = -1;
};

}  // namespace

grpc::experimental::Interceptor* RpcObserverFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcObserver(info, metrics_, router_, log_rpcs_);
}

}  // namespace inventory
