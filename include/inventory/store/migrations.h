// The shard schema as an ordered list of SQL migrations, compiled into the
// binary from src/store/migrations/*.sql (file name NNNN_name.sql).
#ifndef INVENTORY_STORE_MIGRATIONS_H_
#define INVENTORY_STORE_MIGRATIONS_H_

#include <vector>

namespace inventory {

// One schema change; applied once per shard and recorded in
// schema_migrations.
struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Every migration, by ascending version.
const std::vector<Migration>& AllMigrations();

}  // namespace inventory

#endif  // INVENTORY_STORE_MIGRATIONS_H_
