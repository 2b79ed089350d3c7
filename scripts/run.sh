#!/usr/bin/env bash
# Build inventoryd and run it locally against 4 local PostgreSQL shards.
#
#   bash scripts/run.sh [--keep-shards] [inventoryd args...]
#
# INVENTORY_LISTEN overrides the listen address (default 127.0.0.1:50051).
# Ctrl-C / SIGTERM stops inventoryd, then the shards (their data is kept;
# --keep-shards leaves them running). Exits with inventoryd's exit code.
# shellcheck disable=SC2317  # stop_shards/forward are called from traps
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

KEEP_SHARDS=0
ARGS=()
for a in "$@"; do
  case $a in
    --keep-shards) KEEP_SHARDS=1 ;;
    *) ARGS+=("$a") ;;
  esac
done
LISTEN=${INVENTORY_LISTEN:-127.0.0.1:50051}
SHARDS_SH="$REPO/deploy/local/shards.sh"
BIN="$REPO/build/release/src/inventoryd"

section() { printf '\n==> %s\n' "$*" >&2; }

section "Dependencies"
bash "$REPO/scripts/install-deps.sh"

section "Build (build/release)"
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DINVENTORY_BUILD_TESTS=OFF
cmake --build build/release -j2 --target inventoryd invctl

# Shard data lives in .data/ unless the postgres user cannot reach the repo
# (e.g. a checkout under /root): then under /var/lib/inventory-local.
section "Shards"
DATA="$REPO/.data/shards"
mkdir -p "$REPO/.data"
if ((EUID == 0)) && ! runuser -u postgres -- test -x "$REPO/.data" 2>/dev/null; then
  DATA="/var/lib/inventory-local/$(printf '%s' "$REPO" | sha256sum | cut -c1-12)/shards"
  mkdir -p "$(dirname "$DATA")"
  chmod 755 /var/lib/inventory-local "$(dirname "$DATA")"
  echo "note: the postgres user cannot reach $REPO/.data; shard data goes to $DATA" >&2
fi
DSNS=$(bash "$SHARDS_SH" start --dir "$DATA" --count 4)

stop_shards() {
  if ((KEEP_SHARDS)); then
    echo "shards left running: bash deploy/local/shards.sh stop --dir '$DATA'" >&2
  else
    section "Stopping shards (data kept in $DATA)"
    bash "$SHARDS_SH" stop --dir "$DATA" || true
  fi
}
trap stop_shards EXIT

cat >&2 <<EOF

==> inventoryd on $LISTEN, 4 shards (data: $DATA)
How to call it (grpcurl-style; grpcurl is not packaged by Debian, any gRPC client works):
  grpcurl -plaintext $LISTEN grpc.health.v1.Health/Check
  P="-plaintext -import-path proto -proto inventory/v1/inventory.proto"
  grpcurl \$P -d '{"product_id": 42, "total_quantity": 100, "stock_policy": "STOCK_POLICY_STRICT"}' \\
      $LISTEN inventory.v1.InventoryService/CreateProduct
  grpcurl \$P -d '{"request_id": "req-1", "product_id": 42, "quantity": 1, "customer_id": "cust-1"}' \\
      $LISTEN inventory.v1.InventoryService/ReserveItem
  grpcurl \$P -d '{"product_id": 42}' $LISTEN inventory.v1.InventoryService/GetProduct
Python alternative (Debian's /usr/bin/python3 has python3-grpcio): generate the messages with
  protoc -Iproto --python_out=OUT inventory/v1/inventory.proto google/rpc/*.proto
  and call with channel.unary_unary('/inventory.v1.InventoryService/ReserveItem', ...),
  as tests/client_py/acceptance_test.py does (grpc_tools is not installed).
Shards: bash deploy/local/shards.sh status --dir '$DATA'
Stop: Ctrl-C (stops the shards too; --keep-shards leaves them running).

EOF

# Start inventoryd in its own process group (set -m), so a terminal Ctrl-C
# reaches only this script, which forwards it once; a background job of a
# script would otherwise also start with SIGINT ignored.
set -m
# The DSNs (with their password) go through the environment, not argv, so
# `ps` does not show them.
INVENTORY_SHARDS="$DSNS" "$BIN" --listen "$LISTEN" "${ARGS[@]}" &
CHILD=$!
set +m
forward() { kill "-$1" "$CHILD" 2>/dev/null || true; }
trap 'forward INT' INT
trap 'forward TERM' TERM HUP

# wait returns early (>128) when a trapped signal arrives: wait again until
# inventoryd itself has exited.
while :; do
  rc=0
  wait "$CHILD" || rc=$?
  if ((rc > 128)) && kill -0 "$CHILD" 2>/dev/null; then continue; fi
  break
done
echo "inventoryd exited with code $rc" >&2
exit "$rc"
