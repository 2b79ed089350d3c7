#!/usr/bin/env bash
# Experiment: inventoryd reaching its shards over their unix sockets instead
# of TCP on 127.0.0.1. A bench/ab.sh variant wrapper, not a feature:
#
#   bench/ab.sh --scenario uniform --runs 3 build/bench/src/inventoryd \
#     "bench/experiments/unix_socket_dsn.sh build/bench/src/inventoryd"
#
# ab.sh starts the shards in the folder of --port_file (WORK/shards, whose
# socket directories are the short shard folders) and passes their TCP DSNs
# in INVENTORY_SHARDS; this rewrites each host=127.0.0.1 to its shard's
# socket directory (local connections are trusted there) and runs the
# binary. Four seconds in, it prints to inventoryd's log how shard 0's
# backends are connected, so a run shows that the sockets were used.
set -euo pipefail
bin=$1; shift
port_file="" prev=""
for a in "$@"; do [[ $prev == --port_file ]] && port_file=$a; prev=$a; done
[[ -n $port_file ]] || { echo "unix_socket_dsn.sh: needs --port_file" >&2; exit 2; }
shards="$(dirname "$port_file")/shards"
IFS=, read -ra tcp <<<"$INVENTORY_SHARDS"
unix=""
for i in "${!tcp[@]}"; do
  unix+="${unix:+,}${tcp[$i]/host=127.0.0.1/host=$shards/shard-$i}"
done
(sleep 4; psql -X -At "${unix%%,*}" -c "SELECT 'shard 0 backends: unix '
   || count(*) FILTER (WHERE client_addr IS NULL) || ', tcp '
   || count(*) FILTER (WHERE client_addr IS NOT NULL) FROM pg_stat_activity
   WHERE usename = 'inventory' AND pid <> pg_backend_pid()" >&2 || true) &
INVENTORY_SHARDS=$unix exec "$bin" "$@"
