#!/usr/bin/env bash
# What a fresh shard's new WAL segments cost its commits (about 1.5 minutes).
#
#   bash bench/wal_stall.sh [--seconds S] [--rounds N]
#
# Two durable local shards (deploy/local/shards.sh), one left fresh and one
# given its WAL segments ahead (bench/warm_wal.sh). pgbench drives each in
# turn, N rounds of S seconds (default 3 of 10), with 8 clients each inserting
# a 900-byte row per transaction (a segment fills every 1-2 s) and every
# transaction's latency logged. On the fresh shard each filled segment makes
# PostgreSQL create and zero-fill the next one while it holds the WAL write
# lock (no checkpoint comes within the run to recycle old ones); the warmed
# one reuses the segments made ahead. For each run it prints the
# transactions/s, how many took over 5 and over 10 ms and the slowest, and for
# each segment file created during the run (its birth time, when the
# zero-fill began) the slowest transaction that ended within 200 ms after.
# KEEP=1 keeps the shards and the logs in /tmp/inventory-walstall-*.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SECS=10 ROUNDS=3
while (($#)); do
  case $1 in
    --seconds|--rounds)
      (($# >= 2)) || { echo "wal_stall.sh: $1 needs a value" >&2; exit 2; }
      if [[ $1 == --seconds ]]; then SECS=$2; else ROUNDS=$2; fi
      shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "wal_stall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for v in "$SECS" "$ROUNDS"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "wal_stall.sh: --seconds and --rounds take a whole number" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/inventory-walstall-XXXXXX)
chmod 755 "$WORK"
cleanup() {
  [[ ${KEEP:-0} == 1 ]] && { echo "wal_stall.sh: kept $WORK" >&2; return 0; }
  local d
  for d in fresh warmed; do
    "$REPO/deploy/local/shards.sh" destroy --dir "$WORK/$d" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

for v in $(compgen -e | grep '^PG' || true); do unset "$v"; done
echo "INSERT INTO wal_probe (pad) SELECT repeat('x', 900);" >"$WORK/insert.sql"
export PGPASSWORD
for d in fresh warmed; do
  "$REPO/deploy/local/shards.sh" start --dir "$WORK/$d" --count 1 >/dev/null 2>"$WORK/$d.log" ||
    { echo "wal_stall.sh: could not start the $d shard:" >&2; cat "$WORK/$d.log" >&2; exit 1; }
  PGPASSWORD=$(cat "$WORK/$d/password")
  psql -X -q -h 127.0.0.1 -p "$(cat "$WORK/$d/shard-0/port")" -U inventory -d inventory \
    -c "CREATE TABLE wal_probe (id bigserial PRIMARY KEY, pad text)"
done
"$REPO/bench/warm_wal.sh" --dir "$WORK/warmed"

run() {  # SHARDS ROUND
  local shards=$WORK/$1 dir=$WORK/$1-run-$2 births t0
  mkdir -p "$dir"
  chmod 777 "$dir"
  PGPASSWORD=$(cat "$shards/password")
  t0=$(date +%s.%N)
  (cd "$dir" && /usr/lib/postgresql/15/bin/pgbench -n -h 127.0.0.1 \
     -p "$(cat "$shards/shard-0/port")" -U inventory -c 8 -j 2 -T "$SECS" \
     -f "$WORK/insert.sql" -l inventory >"$dir/out" 2>&1) ||
    { cat "$dir/out" >&2; exit 1; }
  # Birth times (seconds since the epoch) of the segment files made during
  # the run; a reused segment keeps its older birth time.
  births=$(stat -c '%.6W' "$shards"/shard-0/data/pg_wal/0* 2>/dev/null | sort -n |
           awk -v t0="$t0" '$1 > t0' | tr '\n' ' ')
  # pgbench log: client tx latency_us script epoch_s epoch_us
  cat "$dir"/pgbench_log.* | awk -v births="$births" -v label="$1 $2" \
      -v tps="$(awk '/^tps/{print $3}' "$dir/out")" '
    BEGIN { nb = split(births, b, " ") }
    { lat = $3 / 1000; if (lat > 5) s5++; if (lat > 10) s10++
      if (lat > max) max = lat
      end = $5 + $6 / 1e6
      for (i = 1; i <= nb; i++)
        if (end >= b[i] && end - b[i] < 0.2 && lat > after[i]) after[i] = lat }
    END { printf "%-8s %6.0f tx/s  over 5 ms: %5d  over 10 ms: %5d  slowest %6.1f ms  new segments: %2d",
                 label, tps, s5, s10, max, nb
          if (nb) { printf ", slowest within 200 ms after each:"
                    for (i = 1; i <= nb; i++) printf " %.1f", after[i]; printf " ms" }
          printf "\n" }'
}

for ((r = 1; r <= ROUNDS; r++)); do
  run fresh "$r"
  run warmed "$r"
done
