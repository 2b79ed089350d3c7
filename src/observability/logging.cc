#include "inventory/observability/logging.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"
#include "inventory/observability/log_sink.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/spdlog.h"

namespace inventory {
namespace {

std::atomic<bool> g_json{false};

// How much access log may wait in memory, and for how long at most.
constexpr size_t kAccessLogBufferBytes = 64 * 1024;
constexpr std::chrono::seconds kAccessLogFlushInterval{1};

const char* const kCodeNames[17] = {
    "OK",           "CANCELLED",          "UNKNOWN",          "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",     "ALREADY_EXISTS",   "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",   "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",      "DATA_LOSS",
    "UNAUTHENTICATED"};

const char* CodeName(grpc::StatusCode code) {
  int c = static_cast<int>(code);
  return c >= 0 && c < 17 ? kCodeNames[c] : "UNKNOWN";
}

// The length of the valid UTF-8 sequence at s[i], or 0 if invalid.
size_t Utf8Length(absl::string_view s, size_t i) {
  const unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3
                          : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  }
  // Overlong forms and surrogates.
  if (n == 2 && c < 0xc2) return 0;
  if (n == 3) {
    unsigned char c1 = s[i + 1];
    if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return 0;
  }
  if (n == 4) {
    unsigned char c1 = s[i + 1];
    if ((c == 0xf0 && c1 < 0x90) || c > 0xf4 || (c == 0xf4 && c1 >= 0x90)) {
      return 0;
    }
  }
  return n;
}

// Writes {"ts":..,"level":..,"msg":..} (or, for the "rpc" logger, the
// record's fields) per line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    const absl::Time t = absl::FromChrono(msg.time);
    std::string line = absl::StrCat(
        "{\"ts\":\"",
        absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()),
        "\",\"level\":\"",
        absl::string_view(spdlog::level::to_string_view(msg.level).data(),
                          spdlog::level::to_string_view(msg.level).size()),
        "\",");
    absl::string_view payload(msg.payload.data(), msg.payload.size());
    if (msg.logger_name == "rpc") {
      absl::StrAppend(&line, payload);  // already escaped fields
    } else {
      absl::StrAppend(&line, "\"msg\":\"", JsonEscape(payload), "\"");
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

std::shared_ptr<spdlog::logger> RpcLogger() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>(
        "rpc", spdlog::default_logger()->sinks().begin(),
        spdlog::default_logger()->sinks().end());
    return l;
  }();
  return logger;
}

// Library messages (protobuf, gRPC core) go through our logger, so every line
// on stderr has the configured format.
void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  const auto lvl = level >= google::protobuf::LOGLEVEL_ERROR
                       ? spdlog::level::warn
                       : spdlog::level::debug;
  spdlog::log(lvl, "protobuf {}:{}: {}", file, line, message);
}

void GrpcLog(gpr_log_func_args* args) {
  const auto lvl = args->severity == GPR_LOG_SEVERITY_ERROR
                       ? spdlog::level::warn
                       : args->severity == GPR_LOG_SEVERITY_INFO
                             ? spdlog::level::info
                             : spdlog::level::debug;
  spdlog::log(lvl, "grpc {}:{}: {}", args->file, args->line, args->message);
}

}  // namespace

std::string JsonEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: absl::StrAppendFormat(&out, "\\u%04x", c);
      }
      ++i;
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
      ++i;
    } else {
      size_t n = Utf8Length(s, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.data() + i, n);
        i += n;
      }
    }
  }
  return out;
}

absl::Status ConfigureLogging(absl::string_view format,
                              absl::string_view level) {
  const std::string lvl(level);
  auto parsed = spdlog::level::from_str(lvl);
  if (parsed == spdlog::level::off && lvl != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown --log_level '", level,
                     "': use trace, debug, info, warn, error, critical, off"));
  }
  if (format != "text" && format != "json") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown --log_format '", format, "': use text or json"));
  }
  // Access-log lines are written to stderr in bulk (log_sink.h); the
  // periodic flush bounds how long one waits.
  auto sink = std::make_shared<BufferedFdSink>(STDERR_FILENO, "rpc",
                                               kAccessLogBufferBytes);
  auto logger = std::make_shared<spdlog::logger>("inventoryd", sink);
  g_json = format == "json";
  if (g_json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::flush_every(kAccessLogFlushInterval);
  google::protobuf::SetLogHandler(&ProtobufLog);
  gpr_set_log_function(&GrpcLog);
  RpcLogger()->sinks() = logger->sinks();
  RpcLogger()->set_formatter(g_json ? std::unique_ptr<spdlog::formatter>(
                                          std::make_unique<JsonFormatter>())
                                    : std::make_unique<spdlog::pattern_formatter>(
                                          "[%Y-%m-%d %H:%M:%S.%e] [%l] %v"));
  RpcLogger()->set_level(parsed);
  return absl::OkStatus();
}

void FlushLogs() {
  // The sink ConfigureLogging gave every logger (none before it ran).
  for (const auto& sink : spdlog::default_logger()->sinks()) {
    if (auto ours = std::dynamic_pointer_cast<BufferedFdSink>(sink)) {
      ours->WriteThrough();
    }
  }
}

void LogRpc(const RpcLogRecord& r) {
  auto logger = RpcLogger();
  if (!logger->should_log(spdlog::level::info)) return;
  if (g_json) {
    std::string fields = absl::StrCat(
        "\"event\":\"rpc\",\"method\":\"", JsonEscape(r.method),
        "\",\"code\":\"", CodeName(r.code), "\",\"duration_ms\":",
        absl::StrFormat("%.3f", r.duration_ms), ",\"request_id\":\"",
        JsonEscape(r.request_id), "\",\"shard\":",
        r.shard >= 0 ? absl::StrCat(r.shard) : std::string("null"),
        ",\"peer\":\"", JsonEscape(r.peer), "\"");
    if (!r.error.empty()) {
      absl::StrAppend(&fields, ",\"error\":\"", JsonEscape(r.error), "\"");
    }
    logger->log(spdlog::level::info, spdlog::string_view_t(fields));
  } else {
    logger->info("rpc {} {} {:.3f}ms request_id={} shard={} peer={}{}",
                 r.method, CodeName(r.code), r.duration_ms,
                 JsonEscape(r.request_id), r.shard, r.peer,
                 r.error.empty() ? "" : " error=" + JsonEscape(r.error));
  }
}

}  // namespace inventory
