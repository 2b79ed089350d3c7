#include "shard_cluster.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#ifndef INVENTORY_SHARDS_SCRIPT
#error "INVENTORY_SHARDS_SCRIPT must name deploy/local/shards.sh"
#endif

namespace inventory::testing {

int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  std::string out;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  if (output != nullptr) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::unique_ptr<ShardCluster> ShardCluster::Start(int count) {
  // A path that does not exist yet: the launcher creates it reachable by the
  // postgres user (mkdtemp's 0700 folder would not be).
  char tmpl[] = "/tmp/inventory-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return nullptr;
  std::string dir = absl::StrCat(tmpl, "/shards");
  chmod(tmpl, 0755);
  std::unique_ptr<ShardCluster> cluster(new ShardCluster(dir));
  std::string out;
  int rc = RunCommand(absl::StrCat(INVENTORY_SHARDS_SCRIPT, " start --dir ",
                                   dir, " --count ", count, " --fast"),
                      &out);
  if (rc != 0) {
    std::cerr << "shards.sh start failed (" << rc << ")\n";
    return nullptr;
  }
  for (absl::string_view d :
       absl::StrSplit(absl::StripAsciiWhitespace(out), ',')) {
    cluster->dsns_.emplace_back(d);
  }
  if (cluster->size() != count) return nullptr;
  // A watchdog removes the shards if this process dies without running its
  // destructors (a crash), so no test leaves servers behind.
  RunCommand(absl::StrCat("nohup sh -c 'while kill -0 ", getpid(),
                          " 2>/dev/null; do sleep 1; done; ",
                          INVENTORY_SHARDS_SCRIPT, " destroy --dir ", dir,
                          "' >/dev/null 2>&1 &"));
  return cluster;
}

ShardCluster::~ShardCluster() {
  RunCommand(absl::StrCat(INVENTORY_SHARDS_SCRIPT, " destroy --dir ", dir_,
                          " >/dev/null 2>&1"));
  std::string parent(dir_.substr(0, dir_.rfind('/')));
  rmdir(parent.c_str());
}

std::string ShardCluster::DsnList() const { return absl::StrJoin(dsns_, ","); }

std::string ShardCluster::DsnList(const std::vector<int>& order) const {
  std::vector<std::string> out;
  for (int i : order) out.push_back(dsns_[i]);
  return absl::StrJoin(out, ",");
}

void ShardCluster::Shards(const std::string& args) {
  int rc = RunCommand(absl::StrCat(INVENTORY_SHARDS_SCRIPT, " ", args,
                                   " --dir ", dir_, " >/dev/null"));
  if (rc != 0) std::cerr << "shards.sh " << args << " failed: " << rc << "\n";
}

void ShardCluster::Pause(int i) { Shards(absl::StrCat("pause --shard ", i)); }
void ShardCluster::Resume(int i) { Shards(absl::StrCat("resume --shard ", i)); }
void ShardCluster::Kill(int i) { Shards(absl::StrCat("kill --shard ", i)); }
void ShardCluster::StartShard(int i) {
  Shards(absl::StrCat("start-shard --shard ", i));
}

}  // namespace inventory::testing
