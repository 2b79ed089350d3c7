#!/usr/bin/env bash
# Gives freshly made local shards the WAL segment files a shard that has been
# running for a while already has, so that a benchmark measures steady state.
#
#   bench/warm_wal.sh --dir SHARDS_DIR [--segments N]
#
# Why: a new cluster has one 16 MB WAL segment. Each time a shard's WAL fills
# one, PostgreSQL creates the next file and writes 16 MB of zeros into it and
# syncs it, holding the WAL write lock: every commit on that shard waits, here
# 60-90 ms (the hot scenario fills a segment every 1-3 s). A shard that has
# run through a checkpoint renames its old segments for reuse instead (as many
# as min_wal_size allows; deploy/local/shards.sh sets 1 GB), and never waits
# for a zero-fill. This script writes N segments' worth of switches on each
# shard of SHARDS_DIR (superuser, over 127.0.0.1) and runs a checkpoint, which
# turns them into N ready segments. It also writes out the pages dirtied so far
# (the bulk loads), as any checkpoint would. Default N: 64 (1 GB per shard).
# docs/benchmarks.md ("Fresh shards stall on new WAL segments") has the
# measurement.
set -euo pipefail

DIR="" SEGMENTS=64
while (($#)); do
  case $1 in
    --dir|--segments)
      (($# >= 2)) || { echo "warm_wal.sh: $1 needs a value" >&2; exit 2; }
      if [[ $1 == --dir ]]; then DIR=$2; else SEGMENTS=$2; fi
      shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "warm_wal.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $DIR ]] || { echo "warm_wal.sh: --dir is required" >&2; exit 2; }
[[ $SEGMENTS =~ ^[1-9][0-9]*$ ]] || { echo "warm_wal.sh: --segments must be a whole number from 1 (no leading zero)" >&2; exit 2; }
[[ -s $DIR/count && -s $DIR/superuser-password ]] ||
  { echo "warm_wal.sh: $DIR is not a shards folder (deploy/local/shards.sh)" >&2; exit 1; }

# libpq settings of the caller's environment would change where and how psql
# connects (as in deploy/local/shards.sh).
for v in $(compgen -e | grep '^PG' || true); do unset "$v"; done

warm_one() {  # I
  local port sql i
  port=$(cat "$DIR/shard-$1/port")
  # Each switch needs a WAL record since the previous one; a logical message
  # is the cheapest record there is. N switches leave N used segments, which
  # the checkpoint renames into N segments ahead of the current one.
  sql=$(for ((i = 0; i < SEGMENTS; i++)); do
          echo "SELECT pg_logical_emit_message(false, 'warm_wal', '');"
          echo "SELECT pg_switch_wal();"
        done; echo "CHECKPOINT;")
  PGPASSWORD=$(cat "$DIR/superuser-password") psql -X -q -At -v ON_ERROR_STOP=1 \
    -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null <<<"$sql"
}

pids=()
for ((s = 0; s < $(cat "$DIR/count"); s++)); do
  warm_one "$s" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
