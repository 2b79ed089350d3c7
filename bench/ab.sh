#!/usr/bin/env bash
# A/B comparison of inventoryd binaries or flags, alternating, on fresh shards.
#
#   bench/ab.sh [--scenario hot|uniform|cart|health] [--runs N] [--seconds S]
#               [--concurrency C] [--rate R] [--no-verify] [--cold-wal]
#               [--loadgen-flags "FLAGS..."] VARIANT...
#
# A VARIANT is "BINARY" or "BINARY FLAGS..." (one shell word: quote it), e.g.
#   bench/ab.sh --scenario uniform --runs 3 \
#     "build/bench/src/inventoryd" \
#     "build/bench/src/inventoryd --fast_path=false"
#
# For each run and each variant in turn: 4 fresh durable shards
# (deploy/local/shards.sh), 100k uniform products bulk-loaded with SQL, the
# variant's inventoryd, then one inventory-loadgen run. Prints calls/s, p99,
# and the CPU each process group used per call (from /proc/*/stat over the
# run; "machine" is the whole machine from /proc/stat, so machine minus the
# others is mostly the load generator): this VM's throughput drifts by ±20 %
# between minutes, so alternate and repeat, and read the per-call CPU as much
# as the throughput. This is how the changes listed in docs/benchmarks.md were
# measured. --rate R drives the load open loop at R calls/s (as the bench's
# *-open70 runs do), so the p99 column compares tails at the same rate.
# --no-verify skips the load generator's invariant check, for
# experiments that do not keep the books (bench/experiments/).
# The shards' WAL segments are made ahead (bench/warm_wal.sh), as in
# bench/run.sh; --cold-wal leaves them fresh (each new 16 MB segment then
# stalls the shard's commits while it is zero-filled).
# --loadgen-flags adds flags to every inventory-loadgen run, e.g. the cart on
# a few BACKORDER products whose releases fill backorders:
#   bench/ab.sh --scenario cart \
#     --loadgen-flags "--backorder --products 16 --stock 4 --commit_ratio 0" ...
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
LOADGEN=${LOADGEN:-$REPO/build/bench/src/loadgen/inventory-loadgen}
SCENARIO=uniform RUNS=2 SECONDS_=8 CONC=64 VERIFY=(--verify_sample 200) RATE=()
LG_FLAGS=()
WARM_WAL=1
while (($#)); do
  case $1 in
    --scenario) SCENARIO=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --rate) RATE=(--rate "$2"); shift 2 ;;
    --no-verify) VERIFY=(--verify=false); shift ;;
    --cold-wal) WARM_WAL=0; shift ;;
    --loadgen-flags) read -ra LG_FLAGS <<<"$2"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    --*) echo "ab.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
(($#)) || { echo "ab.sh: give at least one variant (see --help)" >&2; exit 2; }
[[ -x $LOADGEN ]] || { echo "ab.sh: $LOADGEN missing (LOADGEN=...)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/inventory-ab-XXXXXX)
chmod 755 "$WORK"
INV_PID=""
cleanup() {
  if [[ -n $INV_PID ]]; then
    kill -TERM "$INV_PID" 2>/dev/null || true
    wait "$INV_PID" 2>/dev/null || true
  fi
  "$REPO/deploy/local/shards.sh" destroy --dir "$WORK/shards" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# CPU ticks of postgres, of inventoryd and of the whole machine.
ticks() {
  local p f comm
  for p in /proc/[0-9]*; do
    read -r -a f 2>/dev/null <"$p/stat" || continue
    read -r comm 2>/dev/null <"$p/comm" || continue
    case $comm in
      postgres|inventoryd) echo "$comm $((f[13] + f[14]))" ;;
    esac
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}'
  # Busy ticks of the whole machine: user nice system irq softirq steal.
  awk '/^cpu /{print "machine", $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

start() {  # BINARY FLAGS...
  [[ -n $INV_PID ]] && { kill -TERM "$INV_PID"; wait "$INV_PID" 2>/dev/null || true; }
  "$REPO/deploy/local/shards.sh" destroy --dir "$WORK/shards" >/dev/null 2>&1 || true
  local dsns port i
  dsns=$("$REPO/deploy/local/shards.sh" start --dir "$WORK/shards" --count 4 2>/dev/null)
  rm -f "$WORK/port"
  # shellcheck disable=SC2068  # the variant's flags are words
  INVENTORY_SHARDS="$dsns" $@ --listen 127.0.0.1:0 --port_file "$WORK/port" \
    >"$WORK/inventoryd.log" 2>&1 &
  INV_PID=$!
  for _ in $(seq 100); do [[ -s $WORK/port ]] && break; sleep 0.1; done
  [[ -s $WORK/port ]] || { cat "$WORK/inventoryd.log" >&2; exit 1; }
  IFS=, read -ra dsn <<<"$dsns"
  for i in 0 1 2 3; do
    [[ ${dsn[$i]} =~ port=([0-9]+) ]] && port=${BASH_REMATCH[1]}
    PGPASSWORD=$(cat "$WORK/shards/password") psql -X -q -h 127.0.0.1 -p "$port" \
      -U inventory -d inventory -c "INSERT INTO products (product_id, total_quantity)
        SELECT g, 1000000000 FROM generate_series(1000000000 + $i, 1000099999, 4) g;
        ANALYZE products;"
  done
  if ((WARM_WAL)); then "$REPO/bench/warm_wal.sh" --dir "$WORK/shards"; fi
}

for ((run = 1; run <= RUNS; run++)); do
  for variant in "$@"; do
    # shellcheck disable=SC2086  # a variant is a binary and its flags
    start $variant
    args=(--target "127.0.0.1:$(cat "$WORK/port")" --scenario "$SCENARIO"
          --concurrency "$CONC" --duration "${SECONDS_}s" "${VERIFY[@]}"
          "${RATE[@]}" "${LG_FLAGS[@]}")
    [[ $SCENARIO == uniform ]] &&
      args+=(--setup=false --product_base 1000000000 --products 100000)
    before=$(ticks | sort); t0=$(date +%s.%N)
    "$LOADGEN" "${args[@]}" >"$WORK/lg.txt" 2>&1 || { tail "$WORK/lg.txt" >&2; exit 1; }
    t1=$(date +%s.%N); after=$(ticks | sort)
    rps=$(awk '/Requests\/sec/{print $2}' "$WORK/lg.txt")
    p99=$(awk '/99 % in/{print $4}' "$WORK/lg.txt")
    cpu=$(join <(echo "$before") <(echo "$after") | awk -v t="$(getconf CLK_TCK)" \
      -v s="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" -v r="$rps" \
      '{c = ($3 - $2) / t / s; printf " %s %.2f cores (%.0f us/call)", $1, c, c / r * 1e6}')
    printf 'run %d  %-60s %9s calls/s  p99 %7s ms %s\n' "$run" "$variant" "$rps" "$p99" "$cpu"
  done
done
