#include "invctl/cli.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "invctl/rpc_error.h"

namespace invctl {
namespace {

constexpr char kDefaultAddr[] = "127.0.0.1:50051";

std::vector<FlagSpec> GlobalFlags() {
  return {
      {"addr", "HOST:PORT",
       "inventoryd address (default $INVCTL_ADDR, else 127.0.0.1:50051)"},
      {"output", "table|json", "output format (default table)", 'o'},
      {"timeout", "DURATION",
       "deadline of each call, e.g. 5s, 500ms; 0 = none (default 5s; verify "
       "30s; events watch none)"},
      {"actor", "NAME",
       "who you are, sent as `inventory-actor` metadata for the audit trail "
       "(default $USER, else the login name)"},
      {"help", "", "show help", 'h'},
  };
}

const std::vector<Command>& AllCommands() {
  static const std::vector<Command>* commands = [] {
    auto* all = new std::vector<Command>(AdminCommands());
    std::vector<Command> inventory = InventoryCommands();
    all->insert(all->end(), inventory.begin(), inventory.end());
    return all;
  }();
  return *commands;
}

std::string FlagLine(const FlagSpec& f) {
  std::string name = absl::StrCat("--", f.name);
  if (f.short_name != 0) name = absl::StrCat("-", std::string(1, f.short_name), ", ", name);
  if (f.takes_value()) absl::StrAppend(&name, " ", f.value_name);
  return absl::StrFormat("  %-28s %s\n", name, f.help);
}

std::string MainUsage() {
  std::string s =
      "invctl: the operator's client of inventoryd (inventory.v1).\n\n"
      "Usage: invctl [global flags] <command> [flags] [args]\n\n"
      "Commands:\n";
  for (const Command& c : AllCommands()) {
    absl::StrAppend(&s, absl::StrFormat("  %-22s %s\n", c.Name(), c.summary));
  }
  absl::StrAppend(&s, "  help [command]         show help for a command\n",
                  "\nGlobal flags (before or after the command):\n");
  for (const FlagSpec& f : GlobalFlags()) absl::StrAppend(&s, FlagLine(f));
  absl::StrAppend(
      &s,
      "\nOutput: data on stdout, errors on stderr. --output json prints each "
      "response\nmessage as protobuf JSON (events watch: one object per line).\n"
      "\nExit codes:\n"
      "  0      success\n"
      "  1      the call worked but a check failed (health: not serving;\n"
      "         shards: unreachable or identity mismatch; verify: drift or an\n"
      "         unreachable shard)\n"
      "  2      usage error\n"
      "  64+N   the call failed with gRPC status code N, as grpcurl does\n"
      "         (69 NOT_FOUND, 70 ALREADY_EXISTS, 73 FAILED_PRECONDITION,\n"
      "         74 ABORTED, 68 DEADLINE_EXCEEDED, 78 UNAVAILABLE)\n"
      "\nRun `invctl help <command>` for a command's flags.\n");
  return s;
}

std::string CommandUsage(const Command& c) {
  std::string s = absl::StrCat("Usage: invctl ", c.Name());
  if (!c.synopsis.empty()) absl::StrAppend(&s, " ", c.synopsis);
  absl::StrAppend(&s, "\n\n", c.summary, "\n");
  if (!c.flags.empty()) {
    absl::StrAppend(&s, "\nFlags:\n");
    for (const FlagSpec& f : c.flags) absl::StrAppend(&s, FlagLine(f));
  }
  if (!c.details.empty()) absl::StrAppend(&s, "\n", c.details, "\n");
  absl::StrAppend(&s, "\nGlobal flags: --addr, --output/-o, --timeout, --actor "
                      "(see `invctl help`).\n");
  return s;
}

// Subcommand names of a command group ("product" -> create, get, ...).
std::vector<std::string> GroupMembers(const std::string& group) {
  std::vector<std::string> names;
  for (const Command& c : AllCommands()) {
    if (c.path.size() == 2 && c.path[0] == group) names.push_back(c.path[1]);
  }
  return names;
}

// The command named by the first words of `words`; *used is how many words
// it took. nullptr if none matches.
const Command* FindCommand(const std::vector<std::string>& words,
                           size_t* used) {
  for (const Command& c : AllCommands()) {
    if (words.size() < c.path.size()) continue;
    bool match = true;
    for (size_t i = 0; i < c.path.size(); ++i) {
      match = match && words[i] == c.path[i];
    }
    if (match) {
      *used = c.path.size();
      return &c;
    }
  }
  return nullptr;
}

int MainUsageError(std::ostream& err, absl::string_view message) {
  err << "invctl: " << message << "\n\n"
      << "Usage: invctl [global flags] <command> [flags] [args]\n"
      << "Run `invctl help` for the commands and flags.\n";
  return kExitUsage;
}

// A group named without (or with an unknown) subcommand: its usage lines.
int GroupUsageError(std::ostream& err, const std::string& group,
                    absl::string_view message) {
  err << "invctl: " << message << "\n\nUsage:\n";
  for (const Command& c : AllCommands()) {
    if (c.path.size() == 2 && c.path[0] == group) {
      err << "  invctl " << c.Name() << " " << c.synopsis << "\n";
    }
  }
  return kExitUsage;
}

bool PrintableAscii(absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// Applies the global flags found in `args` over `options`.
absl::Status ApplyGlobals(const ParsedArgs& args, GlobalOptions* options) {
  if (args.Has("addr")) options->addr = args.Get("addr");
  if (options->addr.empty()) {
    return absl::InvalidArgumentError("--addr must not be empty");
  }
  absl::StatusOr<std::optional<std::string>> output =
      args.OptionalChoice("output", {"table", "json"});
  if (!output.ok()) return output.status();
  if (output->has_value()) options->json = **output == "json";
  absl::StatusOr<std::optional<absl::Duration>> timeout =
      args.OptionalDuration("timeout");
  if (!timeout.ok()) return timeout.status();
  if (timeout->has_value()) options->timeout = **timeout;
  if (args.Has("actor")) options->actor = args.Get("actor");
  if (!PrintableAscii(options->actor) || options->actor.size() > 256) {
    return absl::InvalidArgumentError(
        "--actor must be at most 256 printable ASCII characters");
  }
  return absl::OkStatus();
}

}  // namespace

std::string Command::Name() const { return absl::StrJoin(path, " "); }

Invocation::Invocation(const Command& command, GlobalOptions options,
                       ParsedArgs args, std::ostream& out, std::ostream& err)
    : command_(command),
      options_(std::move(options)),
      args_(std::move(args)),
      out_(out),
      err_(err),
      default_timeout_(command.default_timeout) {}

std::shared_ptr<grpc::Channel> Invocation::channel() {
  if (channel_ == nullptr) {
    channel_ = grpc::CreateChannel(options_.addr,
                                   grpc::InsecureChannelCredentials());
  }
  return channel_;
}

absl::Duration Invocation::timeout() const {
  if (options_.timeout.has_value()) {
    return *options_.timeout == absl::ZeroDuration() ? absl::InfiniteDuration()
                                                     : *options_.timeout;
  }
  return default_timeout_;
}

std::unique_ptr<grpc::ClientContext> Invocation::NewContext() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  const absl::Duration t = timeout();
  if (t != absl::InfiniteDuration()) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + t));
  }
  if (!options_.actor.empty()) {
    ctx->AddMetadata("inventory-actor", options_.actor);
  }
  return ctx;
}

int Invocation::UsageError(absl::string_view message) {
  err_ << "invctl " << command_.Name() << ": " << message << "\n\n"
       << CommandUsage(command_);
  return kExitUsage;
}

int Invocation::RpcFailed(const grpc::Status& status) {
  err_ << DescribeFailure(status);
  err_.flush();
  return ExitCodeFor(status);
}

int RunCli(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err) {
  const std::vector<FlagSpec> globals = GlobalFlags();
  GlobalOptions options;
  if (const char* env = std::getenv("INVCTL_ADDR"); env != nullptr && *env) {
    options.addr = env;
  } else {
    options.addr = kDefaultAddr;
  }
  if (const char* user = std::getenv("USER"); user != nullptr && *user) {
    options.actor = user;
  } else if (const passwd* pw = getpwuid(getuid()); pw != nullptr) {
    options.actor = pw->pw_name;  // cron, containers: no $USER.
  }

  // Global flags up to the command words.
  std::vector<std::string> rest;
  absl::StatusOr<ParsedArgs> leading =
      ParseArgs(args, globals, /*stop_at_positional=*/true, &rest);
  if (!leading.ok()) return MainUsageError(err, leading.status().message());
  if (rest.empty()) {
    if (leading->Has("help")) {
      out << MainUsage();
      return kExitOk;
    }
    return MainUsageError(err, "no command given");
  }
  if (rest[0] == "--") rest.erase(rest.begin());

  if (!rest.empty() && rest[0] == "help") {
    if (rest.size() == 1) {
      out << MainUsage();
      return kExitOk;
    }
    std::vector<std::string> words(rest.begin() + 1, rest.end());
    size_t used = 0;
    if (const Command* c = FindCommand(words, &used); c != nullptr) {
      out << CommandUsage(*c);
      return kExitOk;
    }
    std::vector<std::string> members = GroupMembers(words[0]);
    if (!members.empty()) {
      out << "invctl " << words[0] << " <" << absl::StrJoin(members, "|")
          << ">: run `invctl help " << words[0] << " <command>`\n";
      return kExitOk;
    }
    return MainUsageError(err, absl::StrCat("unknown command \"",
                                            absl::StrJoin(words, " "), "\""));
  }

  size_t used = 0;
  const Command* command = FindCommand(rest, &used);
  if (command == nullptr) {
    std::vector<std::string> members = GroupMembers(rest[0]);
    if (members.empty()) {
      return MainUsageError(err,
                            absl::StrCat("unknown command \"", rest[0], "\""));
    }
    const bool asked_help =
        rest.size() > 1 && (rest[1] == "--help" || rest[1] == "-h");
    const std::string msg = absl::StrCat(
        rest[0], " needs a subcommand: ", absl::StrJoin(members, ", "));
    if (asked_help) {
      out << "invctl " << rest[0] << ": " << msg << "\n";
      return kExitOk;
    }
    if (rest.size() > 1) {
      return GroupUsageError(err, rest[0],
                             absl::StrCat("unknown command \"", rest[0], " ",
                                          rest[1], "\"; ", msg));
    }
    return GroupUsageError(err, rest[0], msg);
  }

  // The command's own flags, with the globals allowed among them.
  std::vector<FlagSpec> specs = globals;
  specs.insert(specs.end(), command->flags.begin(), command->flags.end());
  const std::vector<std::string> tail(rest.begin() + used, rest.end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(tail, specs);
  Invocation usage_only(*command, options, ParsedArgs(), out, err);
  if (!parsed.ok()) return usage_only.UsageError(parsed.status().message());
  if (leading->Has("help") || parsed->Has("help")) {
    out << CommandUsage(*command);
    return kExitOk;
  }
  for (const ParsedArgs* a : {&*leading, &*parsed}) {
    if (absl::Status s = ApplyGlobals(*a, &options); !s.ok()) {
      return usage_only.UsageError(s.message());
    }
  }
  if (parsed->positional().size() != command->positional.size()) {
    if (command->positional.empty()) {
      return usage_only.UsageError(absl::StrCat(
          "unexpected argument \"", parsed->positional()[0], "\""));
    }
    return usage_only.UsageError(
        absl::StrCat("expects ", command->positional.size(), " argument(s): ",
                     absl::StrJoin(command->positional, " ")));
  }
  for (size_t i = 0; i < parsed->positional().size(); ++i) {
    if (parsed->positional()[i].empty()) {
      return usage_only.UsageError(
          absl::StrCat(command->positional[i], " must not be empty"));
    }
  }
  Invocation invocation(*command, std::move(options), *std::move(parsed), out,
                        err);
  return command->run(invocation);
}

}  // namespace invctl
