#!/usr/bin/env bash
# What this machine charges for the three things every reservation pays for:
# waking a sleeping thread, flushing the WAL at commit, and an empty gRPC call
# at a light and at a full load. These bound what bench/run.sh can show
# (docs/benchmarks.md, "What the machine costs"); rerun it on another machine
# before comparing figures.
#
#   bash bench/machine_costs.sh [--seconds S]
#
# Builds bench/probes/*.c* with the system compilers, starts one durable shard
# (deploy/local/shards.sh) and one inventoryd (build/bench, Release; built if
# missing) in a temporary folder, and prints one line per measurement:
#   - hand-off: two threads taking turns through a condition variable, on
#     both CPUs and on one (bench/probes/handoff.cc); on a KVM guest whose
#     idle CPUs do not poll before halting (guest_halt_poll_ns 0, as on this
#     VM) and when run as root, once more with 200 us of polling (restored
#     afterwards), to show how much of a wake-up is the halted CPU's exit;
#   - fsync: an 8 kB write + fdatasync on the shard's disk
#     (bench/probes/fsync_cost.c);
#   - pgbench, one client, S seconds each: SELECT 1 (a round trip), a
#     one-row UPDATE with a durable commit, the same UPDATE with
#     synchronous_commit = off (the difference is what the commit's flush
#     costs), and the durable UPDATE at 64 clients (their commits share
#     flushes);
#   - the empty gRPC call (grpc.health.v1 Check, inventory-loadgen) at
#     concurrency 64 (closed loop) and at 8000 calls/s (open loop): calls/s,
#     p50 / p99, and per call the CPU of inventoryd, of the load generator
#     and of the whole machine, and the machine's context switches
#     (inventoryd runs with --log_rpcs=false here: gRPC's own cost).
# CPU is the whole machine's busy time (/proc/stat: user, nice, system, irq,
# softirq, steal) over the measured window, divided by the operations done;
# for the gRPC calls also inventoryd's and the load generator's own CPU
# (/proc/PID/stat, getrusage). On this VM the two do not always agree: at a
# light load the processes' own figures can add up to more than the machine's
# busy time (tick-sampled), so compare like with like.
# About a minute and a half; cleans up after itself.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SECONDS_=5
while (($#)); do
  case $1 in
    --seconds) SECONDS_=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) echo "machine_costs.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $SECONDS_ =~ ^[1-9][0-9]*$ ]] || { echo "machine_costs.sh: --seconds must be a positive whole number" >&2; exit 2; }

PGBENCH=/usr/lib/postgresql/15/bin/pgbench
BUILD=$REPO/build/bench
INV=$BUILD/src/inventoryd
LOADGEN=$BUILD/src/loadgen/inventory-loadgen
if [[ ! -x $INV || ! -x $LOADGEN ]]; then
  cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DINVENTORY_BUILD_TESTS=OFF >/dev/null
  cmake --build "$BUILD" -j2 --target inventoryd inventory-loadgen >/dev/null
fi

WORK=$(mktemp -d /tmp/inventory-costs-XXXXXX)
chmod 755 "$WORK"
INV_PID=""
HALT_POLL=/sys/module/haltpoll/parameters/guest_halt_poll_ns HALT_POLL_SAVED=""
cleanup() {
  if [[ -n $HALT_POLL_SAVED ]]; then echo "$HALT_POLL_SAVED" >"$HALT_POLL" || true; fi
  if [[ -n $INV_PID ]]; then kill -TERM "$INV_PID" 2>/dev/null || true; wait "$INV_PID" 2>/dev/null || true; fi
  "$REPO/deploy/local/shards.sh" destroy --dir "$WORK/shards" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
ctxt() { awk '/^ctxt/{print $2}' /proc/stat; }
TICK=$(getconf CLK_TCK)

g++ -O2 -pthread -o "$WORK/handoff" "$REPO/bench/probes/handoff.cc"
cc -O2 -o "$WORK/fsync_cost" "$REPO/bench/probes/fsync_cost.c"

echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
printf 'threads on both CPUs:  '; "$WORK/handoff"
printf 'threads on one CPU:    '; taskset -c 0 "$WORK/handoff"
if [[ -w $HALT_POLL && $(cat "$HALT_POLL") == 0 ]]; then
  HALT_POLL_SAVED=0
  echo 200000 >"$HALT_POLL"
  printf 'both CPUs, idle CPUs polling up to 200 us before halting: '; "$WORK/handoff"
  echo 0 >"$HALT_POLL"
  HALT_POLL_SAVED=""
fi

dsn=$("$REPO/deploy/local/shards.sh" start --dir "$WORK/shards" --count 1 2>"$WORK/shards.log") ||
  { cat "$WORK/shards.log" >&2; exit 1; }
[[ $dsn =~ port=([0-9]+) ]] && PORT=${BASH_REMATCH[1]}
printf 'shard disk:            '; "$WORK/fsync_cost" "$WORK/shards/shard-0/fsync-probe"

export PGPASSWORD
PGPASSWORD=$(cat "$WORK/shards/password")
psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U inventory -d inventory -c \
  "CREATE TABLE cost_probe (id int PRIMARY KEY, v bigint NOT NULL);
   INSERT INTO cost_probe SELECT g, 0 FROM generate_series(1, 10000) g;"
echo 'SELECT 1;' >"$WORK/select.sql"
printf '%s\n' '\set id random(1, 10000)' 'UPDATE cost_probe SET v = v + 1 WHERE id = :id;' >"$WORK/update.sql"

# pgbench_line NAME CLIENTS SCRIPT [PGOPTIONS]: CPU over the whole pgbench
# run (its connections included) per transaction it made.
pgbench_line() {
  local b0 b1 n
  b0=$(busy)
  if ! PGOPTIONS=${4:-} "$PGBENCH" -n -M prepared -c "$2" -j 1 -T "$SECONDS_" \
         -f "$3" -h 127.0.0.1 -p "$PORT" -U inventory inventory \
         >"$WORK/pgbench.out" 2>&1; then
    cat "$WORK/pgbench.out" >&2
    exit 1
  fi
  b1=$(busy)
  n=$(awk '/number of transactions actually processed/{split($NF, a, "/"); print a[1]}' "$WORK/pgbench.out")
  awk -v name="$1" -v n="$n" -v c=$((b1 - b0)) -v hz="$TICK" -v s="$SECONDS_" \
    'BEGIN{printf "%-40s %8.0f tx/s, %5.0f us of machine CPU per tx\n", name, n / s, c / hz / n * 1e6}'
}
pgbench_line "pgbench SELECT 1, 1 client:" 1 "$WORK/select.sql"
pgbench_line "pgbench UPDATE, durable, 1 client:" 1 "$WORK/update.sql"
pgbench_line "pgbench UPDATE, no flush wait, 1 client:" 1 "$WORK/update.sql" "-c synchronous_commit=off"
pgbench_line "pgbench UPDATE, durable, 64 clients:" 64 "$WORK/update.sql"

INVENTORY_SHARDS="$dsn" "$INV" --listen 127.0.0.1:0 --port_file "$WORK/port" \
  --log_rpcs=false >"$WORK/inventoryd.log" 2>&1 &
INV_PID=$!
for _ in $(seq 100); do [[ -s $WORK/port ]] && break; sleep 0.1; done
[[ -s $WORK/port ]] || { cat "$WORK/inventoryd.log" >&2; exit 1; }

# health_line NAME LOADGEN-ARGS...: the empty call, measured over the
# load generator's window (it reports its own and inventoryd's CPU).
health_line() {
  local name=$1 c0 c1 t0 t1 out
  shift
  c0=$(ctxt); t0=$(date +%s%N)
  out=$("$LOADGEN" --target "127.0.0.1:$(cat "$WORK/port")" --scenario health \
          --duration "${SECONDS_}s" --warmup 1s --server_pid "$INV_PID" "$@" 2>&1) ||
    { printf '%s\n' "$out" >&2; exit 1; }
  c1=$(ctxt); t1=$(date +%s%N)
  # (context switches over the whole run, warm-up included, per call at the
  # measured rate)
  awk -v n="$name" -v cs=$((c1 - c0)) -v s="$(( (t1 - t0) / 1000000 ))e-3" '
    /Requests\/sec/ {r = $2}
    /50 % in/ {p50 = $4} /99 % in/ {p99 = $4}
    /load generator:/ {lg = $3} /server \(pid/ {sv = $4} /machine busy:/ {mb = $3}
    END {printf "%-40s %8.0f calls/s, p50 %s / p99 %s ms; per call: inventoryd %.0f us, load generator %.0f us, machine %.0f us, %.1f context switches\n",
                n, r, p50, p99, sv / r * 1e6, lg / r * 1e6, mb / r * 1e6, cs / s / r}' <<<"$out"
}
health_line "empty gRPC call, concurrency 64:" --concurrency 64
health_line "empty gRPC call, open loop 8000/s:" --rate 8000
