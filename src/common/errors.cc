#include "inventory/common/errors.h"

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"

namespace inventory {

absl::Status MakeError(absl::StatusCode code, absl::string_view reason,
                       absl::string_view message, ErrorMetadata metadata) {
  absl::Status status(code, message);
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(kErrorDomain);
  for (auto& [key, value] : metadata) (*info.mutable_metadata())[key] = value;
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

absl::Status InvalidArgumentError(std::vector<FieldViolation> violations) {
  std::string message = "invalid request:";
  google::rpc::BadRequest bad;
  for (const auto& v : violations) {
    absl::StrAppend(&message, " ", v.field, ": ", v.description, ";");
    auto* fv = bad.add_field_violations();
    fv->set_field(v.field);
    fv->set_description(v.description);
  }
  if (!message.empty() && message.back() == ';') message.pop_back();
  absl::Status status = MakeError(absl::StatusCode::kInvalidArgument,
                                  reason::kInvalidArgument, message);
  status.SetPayload(kBadRequestTypeUrl, absl::Cord(bad.SerializeAsString()));
  return status;
}

absl::Status ShardUnavailableError(int shard, absl::string_view why) {
  return MakeError(absl::StatusCode::kUnavailable, reason::kShardUnavailable,
                   absl::StrCat("shard ", shard, " is unavailable: ", why,
                                "; retry later"),
                   {{"shard", absl::StrCat(shard)}});
}

namespace {
bool ParseInfo(const absl::Status& status, google::rpc::ErrorInfo* info) {
  auto payload = status.GetPayload(kErrorInfoTypeUrl);
  if (!payload.has_value()) return false;
  return info->ParseFromString(std::string(*payload));
}
}  // namespace

std::string ErrorReason(const absl::Status& status) {
  google::rpc::ErrorInfo info;
  return ParseInfo(status, &info) ? info.reason() : std::string();
}

ErrorMetadata ErrorMetadataOf(const absl::Status& status) {
  google::rpc::ErrorInfo info;
  ErrorMetadata out;
  if (!ParseInfo(status, &info)) return out;
  for (const auto& [k, v] : info.metadata()) out.emplace_back(k, v);
  return out;
}

bool WaitedOutALock(const absl::Status& status) {
  if (ErrorReason(status) != reason::kConcurrentUpdate) return false;
  for (const auto& [key, value] : ErrorMetadataOf(status)) {
    if (key == kLockTimeoutKey) return value == "true";
  }
  return false;
}

}  // namespace inventory
