// Test harness: real PostgreSQL 15 shards started by deploy/local/shards.sh in
// a fresh temporary folder on free loopback ports, destroyed afterwards.
#ifndef INVENTORY_TESTS_HARNESS_SHARD_CLUSTER_H_
#define INVENTORY_TESTS_HARNESS_SHARD_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

namespace inventory::testing {

// Runs `command` through /bin/sh; returns its exit code and stdout.
int RunCommand(const std::string& command, std::string* output = nullptr);

// N local shards for one test binary.
class ShardCluster {
 public:
  // Starts `count` shards (fsync off: tests only). Returns nullptr and prints
  // why if the launcher fails.
  static std::unique_ptr<ShardCluster> Start(int count);
  ~ShardCluster();

  int size() const { return static_cast<int>(dsns_.size()); }
  const std::string& dsn(int i) const { return dsns_[i]; }
  const std::vector<std::string>& dsns() const { return dsns_; }
  // The --shards value: DSNs comma-joined, in shard order.
  std::string DsnList() const;
  // A --shards value with the DSNs in the given order.
  std::string DsnList(const std::vector<int>& order) const;

  // Freeze / thaw every process of shard i (connections hang).
  void Pause(int i);
  void Resume(int i);
  // Crash-stop shard i / start it again on the same port.
  void Kill(int i);
  void StartShard(int i);

 private:
  explicit ShardCluster(std::string dir) : dir_(std::move(dir)) {}
  void Shards(const std::string& args);

  std::string dir_;
  std::vector<std::string> dsns_;
};

}  // namespace inventory::testing

#endif  // INVENTORY_TESTS_HARNESS_SHARD_CLUSTER_H_
