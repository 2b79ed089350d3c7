#!/usr/bin/env bash
# The benchmark we judge ourselves by.
#
# Starts 4 durable local PostgreSQL shards (deploy/local/shards.sh) in a
# temporary folder and one Release inventoryd, then, at one concurrency (64):
#   - inventory-loadgen scenarios hot, uniform (100k products), cart (10k
#     products) and health (the empty-call ceiling of the same server);
#   - the raw per-request reservation SQL driven by pgbench against shard 0,
#     hot (one product) and uniform (shard 0's 25k products):
#     bench/reserve_{hot,uniform}.sql is the service's own transaction
#     (inv_apply_batch) with one request per transaction, the baseline;
#     bench/reserve_cte_*.sql the single-statement reserve the service used
#     before the group transaction, for reference.
# Then hot at four times the concurrency (no hot-row collapse), hot and
# uniform in open loop at 70 % of their closed-loop peak (latency under steady
# load), and "before": a second inventoryd of the same binary deciding one
# request per transaction (--before-flags), hot and uniform, on the same shards.
# It prints each run's throughput, its ratio to each baseline, p50/p99, CPU use
# and inventoryd's peak RSS, checks the performance targets of issue 7, and
# writes them with the machine's description into docs/benchmarks.md (between
# its BEGIN/END markers).
#
# --sweep also sweeps concurrency 1, 8, 64, 256 over two data sets (1k
# products; 1M products with 5M past reservation rows per shard, made with
# generate_series on the shards) for uniform, hot and pgbench-uniform, and
# draws docs/benchmarks-sweep.png with gnuplot.
#
# Products are bulk-loaded with SQL (psql on each shard: the same INSERT into
# products the service's CreateProduct makes, every other column left to its
# default), since creating 100k-1M products one RPC at a time would dominate
# the run; inventory-loadgen then runs with --setup=false. The hot product is
# created by the load generator itself (--setup).
#
# For a quick check of the sweep itself, the environment may shrink it:
# BENCH_BIG_PRODUCTS, BENCH_PAST_ROWS, BENCH_SWEEP_CONCURRENCY ("1 8 64 256").
#
# Everything runs on 127.0.0.1 and is bounded in time (a watchdog stops the
# whole run after --timeout). Shards and processes are cleaned up on exit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
BENCH="$REPO/bench"
SHARDS_SH="$REPO/deploy/local/shards.sh"
PGBENCH=/usr/lib/postgresql/15/bin/pgbench

usage() {
  cat <<EOF
Usage: bench/run.sh [options]
  --duration S          measured seconds per run (default 10)
  --warmup S            warm-up seconds before each measured run (default 2)
  --concurrency N       clients of every run (default 64)
  --sweep               also sweep concurrency and data size; draw the PNG
  --sweep-duration S    measured seconds per sweep point (default 5)
  --rev REV             bench inventoryd built from git revision REV
                        (default: the working tree)
  --build-dir DIR       build folder (default build/bench)
  --inventoryd PATH     use this inventoryd binary (no build)
  --loadgen PATH        use this inventory-loadgen binary (no build)
  --inventoryd-flags F  extra inventoryd flags (default: none, its defaults)
  --before-flags F      flags of the "before" inventoryd (default: one request
                        per transaction: "$BEFORE_DEFAULT"; "" skips it)
  --no-doc              do not write docs/benchmarks.md
  --cold-wal            leave the fresh shards' WAL as it is (default: make
                        64 segments ahead on each, bench/warm_wal.sh, as a
                        shard that has run a while has them)
  --wait-idle S         first wait up to S seconds for other processes to
                        leave the CPUs idle (default 0: measure and note it)
  --timeout S           stop everything after S seconds (default 1200;
                        3600 with --sweep)
EOF
}

DURATION=10 WARMUP=2 CONC=64 SWEEP=0 SWEEP_DURATION=5 SWEEP_WARMUP=1
REV="" BUILD_DIR="$REPO/build/bench" INVENTORYD="" LOADGEN="" INV_FLAGS=""
BEFORE_DEFAULT="--max_batch=1 --fast_path=false --batch_connections=2"
BEFORE_FLAGS=$BEFORE_DEFAULT
WRITE_DOC=1 TIMEOUT="" WAIT_IDLE=0 WARM_WAL=1
while (($#)); do
  case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --sweep) SWEEP=1; shift ;;
    --sweep-duration) SWEEP_DURATION=$2; shift 2 ;;
    --rev) REV=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --inventoryd) INVENTORYD=$2; shift 2 ;;
    --loadgen) LOADGEN=$2; shift 2 ;;
    --inventoryd-flags) INV_FLAGS=$2; shift 2 ;;
    --before-flags) BEFORE_FLAGS=$2; shift 2 ;;
    --no-doc) WRITE_DOC=0; shift ;;
    --cold-wal) WARM_WAL=0; shift ;;
    --wait-idle) WAIT_IDLE=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
for v in DURATION WARMUP CONC SWEEP_DURATION WAIT_IDLE; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench/run.sh: --${v,,} must be a whole number" >&2; exit 2; }
done
[[ -n $TIMEOUT ]] || TIMEOUT=$((SWEEP ? 3600 : 1200))

# Data sets (ids are multiples of 4 plus the shard index: product_id mod 4).
SHARD_COUNT=4
UNIFORM_BASE=1000000000 UNIFORM_PRODUCTS=100000
CART_BASE=2000000000 CART_PRODUCTS=10000
PG_UNIFORM_BASE=3000000000           # pgbench uniform: shard 0's share
PG_CTE_UNIFORM_BASE=3500000000       # the same for the CTE reference
PG_HOT=3900000000                    # pgbench hot products, on shard 0
PG_CTE_HOT=3900000004
SMALL_BASE=4000000000 SMALL_PRODUCTS=1000         # sweep: 1k products
PG_SMALL_BASE=4100000000
BIG_BASE=5000000000 BIG_PRODUCTS=${BENCH_BIG_PRODUCTS:-1000000}  # sweep: 1M
PG_BIG_BASE=6000000000
PAST_ROWS=${BENCH_PAST_ROWS:-5000000}             # sweep: per shard
SWEEP_CONCURRENCY=${BENCH_SWEEP_CONCURRENCY:-1 8 64 256}
STOCK=1000000000

section() { printf '\n==> %s\n' "$*" >&2; }
log() { printf 'bench: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ build
if [[ -z $LOADGEN || -z $INVENTORYD ]]; then
  section "Build (Release, $BUILD_DIR)"
  cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DINVENTORY_BUILD_TESTS=OFF >/dev/null
  targets=(inventory-loadgen)
  [[ -z $INVENTORYD && -z $REV ]] && targets+=(inventoryd)
  cmake --build "$BUILD_DIR" -j2 --target "${targets[@]}"
  [[ -n $LOADGEN ]] || LOADGEN="$BUILD_DIR/src/loadgen/inventory-loadgen"
  [[ -n $INVENTORYD || -n $REV ]] || INVENTORYD="$BUILD_DIR/src/inventoryd"
fi
REVISION="working tree of $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
if [[ -n $REV ]]; then
  sha=$(git -C "$REPO" rev-parse --short "$REV")
  REVISION="commit $sha"
  if [[ -z $INVENTORYD ]]; then
    section "Build inventoryd of $REV ($sha)"
    src="$BUILD_DIR/rev-$sha/src"
    if [[ ! -f $src/CMakeLists.txt ]]; then
      mkdir -p "$src"
      git -C "$REPO" archive "$sha" | tar -x -C "$src"
    fi
    cmake -S "$src" -B "$BUILD_DIR/rev-$sha/build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DINVENTORY_BUILD_TESTS=OFF >/dev/null
    cmake --build "$BUILD_DIR/rev-$sha/build" -j2 --target inventoryd
    INVENTORYD="$BUILD_DIR/rev-$sha/build/src/inventoryd"
  fi
fi
[[ -x $INVENTORYD && -x $LOADGEN ]] || { log "missing binaries"; exit 1; }
[[ -x $PGBENCH ]] || { log "$PGBENCH not found (postgresql-15)"; exit 1; }
if ((SWEEP)) && ! command -v gnuplot >/dev/null; then
  log "--sweep draws with gnuplot: apt-get install -y gnuplot-nox (scripts/install-deps.sh)"
  exit 1
fi

# ---------------------------------------------------------- work and cleanup
WORK=$(mktemp -d /tmp/inventory-bench-XXXXXX)
chmod 755 "$WORK"   # the postgres user must reach the shard folders
SHARD_DIR="$WORK/shards"
RESULTS="$WORK/results.jsonl"
SWEEP_RESULTS="$WORK/sweep.jsonl"
INV_PID="" WATCHDOG="" BEFORE_PID="" MAIN_PID=""
COMMANDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # (if-statements, not `[[ ]] && cmd`: under set -e a failing cmd there
  # would end the cleanup before the shards are destroyed.)
  if [[ -n $WATCHDOG ]]; then kill "$WATCHDOG" 2>/dev/null || true; fi
  if [[ -n $BEFORE_PID ]]; then kill -KILL "$BEFORE_PID" 2>/dev/null || true; fi
  # The main inventoryd while the "before" one is measured.
  if [[ -n $MAIN_PID ]]; then INV_PID=$MAIN_PID; fi
  if [[ -n $INV_PID ]] && kill -0 "$INV_PID" 2>/dev/null; then
    kill -TERM "$INV_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$INV_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$INV_PID" 2>/dev/null || true
  fi
  "$SHARDS_SH" destroy --dir "$SHARD_DIR" >/dev/null 2>&1 || true
  if ((rc != 0)); then
    log "failed (exit $rc); inventoryd log tail:"
    tail -n 20 "$WORK/inventoryd.log" >&2 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM
# The watchdog stops the script and its direct children (by pid) so that a
# stuck child cannot hold the script's traps back.
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT" &
  sleeper=$!
  wait "$sleeper"
  log "watchdog: run exceeded $TIMEOUT s, stopping"
  for pid in $(ps -o pid= --ppid $$); do
    [[ $pid != "$BASHPID" ]] && kill -TERM "$pid" 2>/dev/null
  done
  kill -TERM $$
) &
WATCHDOG=$!

# ------------------------------------------------------------------ shards
section "Starting $SHARD_COUNT durable shards in $SHARD_DIR"
DSNS=$("$SHARDS_SH" start --dir "$SHARD_DIR" --count $SHARD_COUNT)
IFS=, read -ra DSN <<<"$DSNS"
port_of() { [[ ${DSN[$1]} =~ port=([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
PASSWORD=$(cat "$SHARD_DIR/password")
MAX_CONNECTIONS=200
if ((SWEEP)); then
  # pgbench at 256 clients needs more than the launcher's 200 connections.
  MAX_CONNECTIONS=400
  for i in "${!DSN[@]}"; do
    PGPASSWORD=$(cat "$SHARD_DIR/superuser-password") psql -X -q -h 127.0.0.1 \
      -p "$(port_of "$i")" -U postgres -d postgres \
      -c "ALTER SYSTEM SET max_connections = $MAX_CONNECTIONS" >/dev/null
  done
  "$SHARDS_SH" stop --dir "$SHARD_DIR" 2>/dev/null
  "$SHARDS_SH" start --dir "$SHARD_DIR" --count $SHARD_COUNT >/dev/null 2>&1
fi

# psql_shard I SQL...: runs SQL on shard I as the service's role.
psql_shard() {
  local i=$1; shift
  PGPASSWORD=$PASSWORD psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
    -p "$(port_of "$i")" -U inventory -d inventory "$@"
}

# ---------------------------------------------------------------- inventoryd
section "Starting inventoryd ($INVENTORYD)"
# shellcheck disable=SC2086  # INV_FLAGS is a list of flags
INVENTORY_SHARDS="$DSNS" "$INVENTORYD" --listen 127.0.0.1:0 \
  --port_file "$WORK/port" $INV_FLAGS >"$WORK/inventoryd.log" 2>&1 &
INV_PID=$!
for _ in $(seq 300); do [[ -s $WORK/port ]] && break; sleep 0.1; done
[[ -s $WORK/port ]] || { log "inventoryd did not start"; exit 1; }
TARGET="127.0.0.1:$(cat "$WORK/port")"
log "inventoryd pid $INV_PID serving on $TARGET"
COMMANDS+=("bash deploy/local/shards.sh start --dir \$DIR --count $SHARD_COUNT   # durable")
COMMANDS+=("INVENTORY_SHARDS=\"\$DSNS\" inventoryd --listen 127.0.0.1:0 --port_file \$DIR/port${INV_FLAGS:+ $INV_FLAGS}")

# load_products BASE COUNT: bulk-inserts products BASE..BASE+COUNT-1 on their
# shards (the service's migrations have made the tables by now).
load_products() {
  local base=$1 count=$2 i pids=()
  for ((i = 0; i < SHARD_COUNT; i++)); do
    psql_shard "$i" -c "INSERT INTO products (product_id, total_quantity)
      SELECT g, $STOCK FROM generate_series($base + $i, $base + $count - 1, $SHARD_COUNT) g;
      ANALYZE products;" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done
}
# load_shard0 BASE COUNT: products BASE, BASE+4, ... (COUNT of them) on shard 0.
load_shard0() {
  psql_shard 0 -c "INSERT INTO products (product_id, total_quantity)
    SELECT $1 + $SHARD_COUNT * g, $STOCK FROM generate_series(0, $2 - 1) g;
    ANALYZE products;"
}

section "Bulk-loading products with SQL"
t0=$SECONDS
load_products $UNIFORM_BASE $UNIFORM_PRODUCTS
load_products $CART_BASE $CART_PRODUCTS
load_shard0 $PG_UNIFORM_BASE $((UNIFORM_PRODUCTS / SHARD_COUNT))
load_shard0 $PG_CTE_UNIFORM_BASE $((UNIFORM_PRODUCTS / SHARD_COUNT))
psql_shard 0 -c "INSERT INTO products (product_id, total_quantity)
  VALUES ($PG_HOT, 1000000000000000), ($PG_CTE_HOT, 1000000000000000)"
log "loaded $((UNIFORM_PRODUCTS + CART_PRODUCTS + UNIFORM_PRODUCTS / 2 + 2)) products in $((SECONDS - t0)) s"
COMMANDS+=("# on each shard i (psql \$DSNi), for the uniform and cart sets:")
COMMANDS+=("INSERT INTO products (product_id, total_quantity) SELECT g, $STOCK FROM generate_series(BASE + i, BASE + COUNT - 1, $SHARD_COUNT) g;")

# Fresh shards would stall every commit for 10-30 ms at each new 16 MB WAL
# segment (zero-filled under the WAL write lock); a shard that has been
# running reuses its old segments instead. Make them ahead, as it has them.
warm_wal() {
  ((WARM_WAL)) || return 0
  local t0=$SECONDS
  "$BENCH/warm_wal.sh" --dir "$SHARD_DIR"
  log "WAL segments made ahead on each shard in $((SECONDS - t0)) s (bench/warm_wal.sh)"
}
warm_wal
if ((WARM_WAL)); then
  COMMANDS+=("bash bench/warm_wal.sh --dir \$DIR   # 64 WAL segments made ahead per shard")
else
  COMMANDS+=("# --cold-wal: the shards' WAL segments were not made ahead")
fi

busy_seconds() {  # busy CPU seconds of the whole machine so far
  awk -v tick="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8+$9)/tick; exit}' /proc/stat
}
# background_load: cores busy over 3 s while the bench itself is idle.
background_load() {
  local b0 b1; b0=$(busy_seconds); sleep 3; b1=$(busy_seconds)
  awk -v a="$b0" -v b="$b1" 'BEGIN{printf "%.2f", (b-a)/3}'
}
BACKGROUND=$(background_load)
waited=0
while awk -v x="$BACKGROUND" 'BEGIN{exit !(x > 0.3)}' && ((waited < WAIT_IDLE)); do
  log "other processes keep $BACKGROUND cores busy; waiting for quiet (${waited}/${WAIT_IDLE} s)"
  sleep 7; waited=$((waited + 10))
  BACKGROUND=$(background_load)
done
log "background load before the runs: $BACKGROUND cores"

# ------------------------------------------------------------------- runs
# loadgen NAME RESULTS DATA ARGS...: one inventory-loadgen run, recorded.
loadgen() {
  local name=$1 results=$2 data=$3; shift 3
  local args=(--target "$TARGET" --server_pid "$INV_PID"
              --json_out "$WORK/$name.json" "$@")
  # Peak RSS of this run only (clear_refs 5 resets VmHWM; root only).
  echo 5 >"/proc/$INV_PID/clear_refs" 2>/dev/null || true
  log "loadgen $name: $*"
  if ! timeout 900 "$LOADGEN" "${args[@]}" >"$WORK/$name.txt" 2>"$WORK/$name.err"; then
    log "$name: inventory-loadgen reported a failure:"
    sed -n '/^Status code distribution/,$p' "$WORK/$name.txt" >&2
    cat "$WORK/$name.err" >&2
  fi
  [[ -f $WORK/$name.json ]] || { log "$name: no JSON report"; exit 1; }
  python3 "$BENCH/report.py" loadgen "$results" "$name" "$WORK/$name.json" "data=$data"
  [[ $results == "$RESULTS" ]] &&
    COMMANDS+=("inventory-loadgen --target \$TARGET --server_pid \$PID $*") || true
  kill -0 "$INV_PID" 2>/dev/null || { log "inventoryd died"; exit 1; }
}

# pgbench_run NAME RESULTS DATA CLIENTS DURATION SCRIPT -D...: one pgbench
# run against shard 0, recorded from its per-transaction logs.
pgbench_run() {
  local name=$1 results=$2 data=$3 clients=$4 duration=$5 script=$6; shift 6
  local warm=$WARMUP; [[ $results == "$SWEEP_RESULTS" ]] && warm=$SWEEP_WARMUP
  local threads=$((clients < 2 ? 1 : 2)) b0 b1
  rm -f "$WORK/pgb_$name".*
  log "pgbench $name: -c $clients -T $((duration + warm)) -f $(basename "$script") $*"
  b0=$(busy_seconds)
  (cd "$WORK" && PGPASSWORD=$PASSWORD timeout $((duration + warm + 60)) "$PGBENCH" -n \
     -M prepared -c "$clients" -j "$threads" -T $((duration + warm)) \
     -f "$script" "$@" -l --log-prefix="pgb_$name" \
     -h 127.0.0.1 -p "$(port_of 0)" -U inventory inventory \
     >"$WORK/$name.txt" 2>&1) || { log "pgbench $name failed:"; tail -n 20 "$WORK/$name.txt" >&2; exit 1; }
  b1=$(busy_seconds)
  python3 "$BENCH/report.py" pgbench "$results" "$name" "$WORK/pgb_$name" "$warm" "$duration" \
    "$(awk -v a="$b0" -v b="$b1" -v d=$((duration + warm)) 'BEGIN{print (b-a)/d}')" \
    "concurrency=$clients" "data=$data"
  [[ $results == "$RESULTS" ]] &&
    COMMANDS+=("pgbench -n -M prepared -c $clients -j $threads -T $((duration + warm)) -f bench/$(basename "$script") $* -l -h 127.0.0.1 -p \$PORT0 -U inventory inventory   # first ${warm} s of the log dropped") || true
}

COMMON=(--concurrency "$CONC" --duration "${DURATION}s" --warmup "${WARMUP}s")
section "Scenarios at concurrency $CONC (${WARMUP} s warm-up + ${DURATION} s each)"
loadgen hot "$RESULTS" base --scenario hot "${COMMON[@]}"
loadgen uniform "$RESULTS" 100k --scenario uniform "${COMMON[@]}" --setup=false \
  --product_base $UNIFORM_BASE --products $UNIFORM_PRODUCTS
loadgen cart "$RESULTS" 10k --scenario cart "${COMMON[@]}" --setup=false \
  --product_base $CART_BASE --products $CART_PRODUCTS
loadgen health "$RESULTS" - --scenario health "${COMMON[@]}"

# No hot-row collapse: the hot product at four times the concurrency.
loadgen hot-c$((CONC * 4)) "$RESULTS" base --scenario hot \
  --concurrency $((CONC * 4)) --duration "${DURATION}s" --warmup "${WARMUP}s"

# Latency under a steady load: open loop at 70 % of each closed-loop peak.
rate_of() {  # NAME -> 70 % of its calls/s
  python3 - "$RESULTS" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["name"] == sys.argv[2]:
        print(max(1, int(r["rps"] * 0.7)))
PY
}
section "Open loop at 70 % of the closed-loop peak"
OPEN=(--duration "${DURATION}s" --warmup "${WARMUP}s")
loadgen hot-open70 "$RESULTS" base --scenario hot --rate "$(rate_of hot)" "${OPEN[@]}"
loadgen uniform-open70 "$RESULTS" 100k --scenario uniform --rate "$(rate_of uniform)" \
  "${OPEN[@]}" --setup=false --product_base $UNIFORM_BASE --products $UNIFORM_PRODUCTS
# The same for the empty call: the latency floor of this machine and client.
loadgen health-open70 "$RESULTS" - --scenario health --rate "$(rate_of health)" "${OPEN[@]}"

# Before: the same binary deciding one request per transaction, as before
# the group transaction (no coalescing, no fast path, both connections
# running reservation transactions), against the same shards.
if [[ -n $BEFORE_FLAGS ]]; then
  section "Before: one request per transaction ($BEFORE_FLAGS)"
  # shellcheck disable=SC2086  # flag lists
  INVENTORY_SHARDS="$DSNS" "$INVENTORYD" --listen 127.0.0.1:0 \
    --port_file "$WORK/port-before" $INV_FLAGS $BEFORE_FLAGS >"$WORK/inventoryd-before.log" 2>&1 &
  BEFORE_PID=$!
  for _ in $(seq 300); do [[ -s $WORK/port-before ]] && break; sleep 0.1; done
  [[ -s $WORK/port-before ]] || { log "the before inventoryd did not start"; exit 1; }
  MAIN_TARGET=$TARGET MAIN_PID=$INV_PID
  TARGET="127.0.0.1:$(cat "$WORK/port-before")" INV_PID=$BEFORE_PID
  loadgen before-hot "$RESULTS" base --scenario hot "${COMMON[@]}"
  loadgen before-uniform "$RESULTS" 100k --scenario uniform "${COMMON[@]}" --setup=false \
    --product_base $UNIFORM_BASE --products $UNIFORM_PRODUCTS
  kill -TERM "$BEFORE_PID"; wait "$BEFORE_PID" 2>/dev/null || true
  BEFORE_PID=""
  TARGET=$MAIN_TARGET INV_PID=$MAIN_PID MAIN_PID=""
  COMMANDS+=("# before: a second inventoryd, same binary and shards, with $BEFORE_FLAGS")
fi

section "Baseline: raw per-request reservation SQL (pgbench, shard 0)"
pgbench_run pgbench-hot "$RESULTS" hot "$CONC" "$DURATION" "$BENCH/reserve_hot.sql" -D pid=$PG_HOT
pgbench_run pgbench-uniform "$RESULTS" 25k "$CONC" "$DURATION" "$BENCH/reserve_uniform.sql" \
  -D base=$PG_UNIFORM_BASE -D stride=$SHARD_COUNT -D n=$((UNIFORM_PRODUCTS / SHARD_COUNT))
# Reference: plain per-request SQL (the single-statement reserve of before
# the group transaction).
pgbench_run pgbench-cte-hot "$RESULTS" hot "$CONC" "$DURATION" "$BENCH/reserve_cte_hot.sql" -D pid=$PG_CTE_HOT
pgbench_run pgbench-cte-uniform "$RESULTS" 25k "$CONC" "$DURATION" "$BENCH/reserve_cte_uniform.sql" \
  -D base=$PG_CTE_UNIFORM_BASE -D stride=$SHARD_COUNT -D n=$((UNIFORM_PRODUCTS / SHARD_COUNT))

# ------------------------------------------------------------------- sweep
if ((SWEEP)); then
  sweep_points() {  # DATA BASE PRODUCTS PG_BASE
    local data=$1 base=$2 products=$3 pg_base=$4 c
    for c in $SWEEP_CONCURRENCY; do
      local common=(--concurrency "$c" --duration "${SWEEP_DURATION}s"
                    --warmup "${SWEEP_WARMUP}s" --verify_sample 500)
      loadgen "sweep-uniform-$data-c$c" "$SWEEP_RESULTS" "$data" --scenario uniform \
        "${common[@]}" --setup=false --product_base "$base" --products "$products"
      loadgen "sweep-hot-$data-c$c" "$SWEEP_RESULTS" "$data" --scenario hot "${common[@]}"
      pgbench_run "sweep-pgbench-uniform-$data-c$c" "$SWEEP_RESULTS" "$data" "$c" "$SWEEP_DURATION" \
        "$BENCH/reserve_uniform.sql" -D base="$pg_base" -D stride=$SHARD_COUNT \
        -D n=$((products / SHARD_COUNT))
    done
  }
  section "Sweep: 1k products"
  load_products $SMALL_BASE $SMALL_PRODUCTS
  load_shard0 $PG_SMALL_BASE $((SMALL_PRODUCTS / SHARD_COUNT))
  sweep_points 1k $SMALL_BASE $SMALL_PRODUCTS $PG_SMALL_BASE

  BIG_LABEL=1M; ((BIG_PRODUCTS == 1000000)) || BIG_LABEL=$BIG_PRODUCTS
  section "Sweep: $BIG_PRODUCTS products and $PAST_ROWS past reservations per shard (generating)"
  t0=$SECONDS
  load_products $BIG_BASE $BIG_PRODUCTS
  load_shard0 $PG_BIG_BASE $((BIG_PRODUCTS / SHARD_COUNT))
  pids=()
  for ((i = 0; i < SHARD_COUNT; i++)); do
    # Past reservations (PURCHASED / RELEASED / EXPIRED) of the shard's
    # products; purchased counters then agree with them (invariant 2).
    psql_shard "$i" <<SQL &
INSERT INTO reservations (product_id, quantity, status, customer_id, request_id,
    requested_ttl_ms, create_time, expire_time, update_time)
  SELECT $BIG_BASE + $i + $SHARD_COUNT * (g % ($BIG_PRODUCTS / $SHARD_COUNT)), 1,
         (2 + g % 3)::smallint, 'past-' || (g % 100000), 'past-$i-' || g, 0,
         now() - interval '30 days' + g * interval '0.4 s',
         now() - interval '30 days' + g * interval '0.4 s' + interval '15 min',
         now() - interval '30 days' + g * interval '0.4 s' + interval '1 min'
  FROM generate_series(1, $PAST_ROWS) g;
UPDATE products p SET purchased_quantity = s.units
  FROM (SELECT product_id, sum(quantity) AS units FROM reservations
        WHERE status = 2 GROUP BY product_id) s
  WHERE p.product_id = s.product_id;
VACUUM ANALYZE reservations;
VACUUM ANALYZE products;
SQL
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  log "generated in $((SECONDS - t0)) s"
  warm_wal
  sweep_points "$BIG_LABEL" $BIG_BASE $BIG_PRODUCTS $PG_BIG_BASE
fi

# ------------------------------------------------------------------ report
BACKGROUND_AFTER=$(background_load)
section "Results (concurrency $CONC, 4 shards, one inventoryd)"
log "background load: $BACKGROUND cores before the runs, $BACKGROUND_AFTER after"
python3 "$BENCH/report.py" table "$RESULTS"

META="$WORK/meta.json"
COMMANDS_JSON=$(printf '%s\n' "${COMMANDS[@]}" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read().splitlines()))')
python3 - "$META" <<PY
import json, sys
meta = {
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "revision": "$REVISION",
  "nproc": "$(nproc)",
  "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')",
  "memory": "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)",
  "kernel": "Linux $(uname -r)",
  "os": "$(. /etc/os-release && echo "$PRETTY_NAME")",
  "postgres": "$(/usr/lib/postgresql/15/bin/postgres --version)",
  "grpc": "$(pkg-config --modversion grpc++ 2>/dev/null || echo '?')",
  "protobuf": "$(pkg-config --modversion protobuf 2>/dev/null || echo '?')",
  "shards": $SHARD_COUNT,
  "max_connections": $MAX_CONNECTIONS,
  "inventoryd_flags": "${INV_FLAGS:-default flags}",
  "wal": "$( ((WARM_WAL)) && echo "64 WAL segments made ahead per shard (bench/warm_wal.sh)" || echo "fresh WAL, no segments made ahead (--cold-wal)")",
  "halt_poll": "$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo "n/a")",
  "background": "$BACKGROUND", "background_after": "$BACKGROUND_AFTER",
  "concurrency": $CONC, "duration": $DURATION, "warmup": $WARMUP,
  "sweep_duration": $SWEEP_DURATION, "sweep_warmup": $SWEEP_WARMUP,
  "commands": $COMMANDS_JSON,
}
json.dump(meta, open(sys.argv[1], "w"))
PY
if ((WRITE_DOC)); then
  doc_args=()
  if ((SWEEP)); then
    python3 "$BENCH/report.py" plot "$SWEEP_RESULTS" "$REPO/docs/benchmarks-sweep.png"
    doc_args=(--sweep "$SWEEP_RESULTS" --png "$REPO/docs/benchmarks-sweep.png")
    python3 - "$SWEEP_RESULTS" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"  {r.get('data',''):>3} {r['name']:<28} {r['rps']:>9.0f}/s  p99 {r.get('p99_ms') or 0:8.2f} ms")
PY
  fi
  python3 "$BENCH/report.py" doc "$RESULTS" "$META" "$REPO/docs/benchmarks.md" "${doc_args[@]}"
  log "wrote docs/benchmarks.md"
fi
# Keep the raw reports next to the doc's figures for a look afterwards.
mkdir -p "$REPO/build/bench-last"
cp "$WORK"/*.json "$WORK"/*.txt "$WORK"/*.jsonl "$REPO/build/bench-last/" 2>/dev/null || true
log "raw reports in build/bench-last/"
# A run that broke an invariant or met unexpected errors fails the bench.
if ! python3 - "$RESULTS" "$SWEEP_RESULTS" <<'PY'
import json, os, sys
bad = []
for path in sys.argv[1:]:
    if os.path.exists(path):
        bad += [json.loads(l)["name"] for l in open(path) if not json.loads(l)["passed"]]
if bad:
    print("bench: runs with unexpected errors or broken invariants: " + ", ".join(bad),
          file=sys.stderr)
    sys.exit(1)
PY
then
  exit 1
fi
