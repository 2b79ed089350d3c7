// invctl, the operator's command-line client of inventoryd, in the style of
// grpcurl / etcdctl: `invctl [global flags] <command> [flags] [args]`.
//
// This header holds the command model (a Command is a path of words, its
// flags and a run function) and the Invocation a command runs with: the
// global options, the parsed flags, the output streams and the channel.
// RunCli() is the whole program minus process start-up, so it can be driven
// with any streams.
//
// Exit codes: 0 success; 1 a check found a problem (health: not serving;
// shards: a shard unreachable or with a mismatched identity; verify: drift or
// an unreachable shard); 2 usage error; 64 + gRPC status code when a call
// fails (69 NOT_FOUND, 73 FAILED_PRECONDITION, 78 UNAVAILABLE, ...).
#ifndef INVENTORY_SRC_INVCTL_CLI_H_
#define INVENTORY_SRC_INVCTL_CLI_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "invctl/flags.h"

namespace invctl {

constexpr int kExitOk = 0;
// The call worked and its answer shows a problem (see the header comment).
constexpr int kExitCheckFailed = 1;
constexpr int kExitUsage = 2;

// Flags every command accepts, before or after the command words.
struct GlobalOptions {
  std::string addr;    // --addr, $INVCTL_ADDR, else 127.0.0.1:50051.
  bool json = false;   // --output json (else table).
  std::optional<absl::Duration> timeout;  // --timeout, if given; 0 = none.
  std::string actor;   // --actor, else $USER / login: `inventory-actor`.
};

class Invocation;

// One subcommand.
struct Command {
  std::vector<std::string> path;         // {"product", "create"}
  std::string synopsis;                  // What follows the path in usage.
  std::string summary;                   // One line for `invctl help`.
  std::vector<FlagSpec> flags;           // Its own flags (globals apart).
  std::vector<std::string> positional;   // Names of required arguments.
  // Deadline of each call when --timeout is not given; infinite = none.
  absl::Duration default_timeout = absl::Seconds(5);
  int (*run)(Invocation&) = nullptr;
  // Extra paragraph for `invctl help <command>` (exit codes, ...).
  std::string details;

  std::string Name() const;  // "product create"
};

// One run of a command.
class Invocation {
 public:
  Invocation(const Command& command, GlobalOptions options, ParsedArgs args,
             std::ostream& out, std::ostream& err);

  const Command& command() const { return command_; }
  const GlobalOptions& options() const { return options_; }
  const ParsedArgs& args() const { return args_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  bool json() const { return options_.json; }

  // The channel to --addr, made on first use.
  std::shared_ptr<grpc::Channel> channel();
  // The deadline calls get: --timeout, else the command's default; infinite
  // means none.
  absl::Duration timeout() const;
  // Replaces the command's default deadline (not an explicit --timeout).
  void set_default_timeout(absl::Duration d) { default_timeout_ = d; }
  // A context for one call: the deadline and the actor metadata.
  std::unique_ptr<grpc::ClientContext> NewContext() const;

  // Prints `message` and the command's usage to stderr; returns 2.
  int UsageError(absl::string_view message);
  // Prints the failure to stderr; returns 64 + its code.
  int RpcFailed(const grpc::Status& status);

 private:
  const Command& command_;
  GlobalOptions options_;
  ParsedArgs args_;
  std::ostream& out_;
  std::ostream& err_;
  absl::Duration default_timeout_;
  std::shared_ptr<grpc::Channel> channel_;
};

// Commands of the admin side (health, shards, verify) and of the inventory
// side (products, reservations, adjustments, events).
std::vector<Command> AdminCommands();
std::vector<Command> InventoryCommands();

// Runs invctl with `args` (argv without the program name), data to `out`,
// problems to `err`; returns the exit code.
int RunCli(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err);

}  // namespace invctl

#endif  // INVENTORY_SRC_INVCTL_CLI_H_
