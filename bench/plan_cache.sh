#!/usr/bin/env bash
# What PostgreSQL's plan cache costs the fast path's statement.
#
#   bash bench/plan_cache.sh [--statements N] [--reps R]
#
# Starts one durable shard (deploy/local/shards.sh, in a temporary folder),
# loads 25k products, and runs the fast path's statement (`grant_whole` of
# src/store/shard_store.cc, copied below) N times (default 2000) through psql
# with batches of 6 reservations on random products, the batch size uniform
# reaches at concurrency 64 over 4 shards. Three sessions, alternating, R
# times (default 3):
#
#   auto, small first   plan_cache_mode = auto, and the session's first five
#                       executions had one reservation each
#   auto, big first     plan_cache_mode = auto, first five with 20 each
#   generic             plan_cache_mode = force_generic_plan (what inventoryd
#                       sets on its sessions)
#
# Prints the wall time per statement (one round trip, one durable commit) and
# how many generic / custom plans the session used. In auto mode PostgreSQL
# plans the first five executions for their parameters and then keeps
# planning anew at each execution while those plans were cheaper than the
# generic one: what a session gets depends on its first batches. Cleans up
# after itself; about a minute.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
N=2000 REPS=3
while (($#)); do
  case $1 in
    --statements) N=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "plan_cache.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d /tmp/inventory-plancache-XXXXXX)
chmod 755 "$WORK"
inv=""
cleanup() {
  [[ -n $inv ]] && kill -TERM "$inv" 2>/dev/null && wait "$inv" 2>/dev/null
  "$REPO/deploy/local/shards.sh" destroy --dir "$WORK/shards" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

dsn=$("$REPO/deploy/local/shards.sh" start --dir "$WORK/shards" --count 1 2>"$WORK/shards.log") ||
  { cat "$WORK/shards.log" >&2; exit 1; }
[[ $dsn =~ port=([0-9]+) ]] && PORT=${BASH_REMATCH[1]}
export PGPASSWORD
PGPASSWORD=$(cat "$WORK/shards/password")
sql() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U inventory -d inventory "$@"; }

# The schema: inventoryd applies its migrations when it first reaches the
# shard; start it, wait for them, stop it.
INV=${INVENTORYD:-$REPO/build/bench/src/inventoryd}
[[ -x $INV ]] || { echo "plan_cache.sh: $INV missing (build it, or INVENTORYD=...)" >&2; exit 1; }
INVENTORY_SHARDS="$dsn" "$INV" --listen 127.0.0.1:0 --port_file "$WORK/port" \
  >"$WORK/inventoryd.log" 2>&1 &
inv=$!
migrated=0
for _ in $(seq 100); do
  sql -Atc "SELECT count(*) FROM schema_migrations" 2>/dev/null | grep -q '^[1-9]' &&
    { migrated=1; break; }
  kill -0 "$inv" 2>/dev/null || break
  sleep 0.2
done
kill -TERM "$inv" 2>/dev/null; wait "$inv" 2>/dev/null || true; inv=""
((migrated)) || { echo "plan_cache.sh: the schema was not applied:" >&2;
                  cat "$WORK/inventoryd.log" >&2; exit 1; }
sql -c "INSERT INTO products (product_id, total_quantity)
          SELECT g, 1000000000 FROM generate_series(1, 25000) g; ANALYZE products;"

# One session's script: settings, the statement, 5 first executions of
# FIRST reservations each, N of 6, then the session's plan counts.
script() {  # MODE FIRST TAG
  cat <<EOF
SET enable_seqscan = off; SET jit = off; SET plan_cache_mode = $1;
PREPARE grant_whole(bigint[], bigint[], text[], text[], bigint[], bigint[]) AS
WITH req AS (
  SELECT * FROM unnest(\$1::bigint[], \$2::bigint[], \$3::text[],
    \$4::text[], \$5::bigint[], \$6::bigint[])
    AS t(product_id, quantity, customer_id, request_id,
         requested_ttl_ms, hold_ms)
), locked AS MATERIALIZED (
  SELECT product_id FROM products WHERE product_id = ANY(\$1::bigint[])
  ORDER BY product_id FOR NO KEY UPDATE
), want AS (
  SELECT r.product_id, sum(r.quantity)::bigint AS total
  FROM req r JOIN locked l USING (product_id) GROUP BY r.product_id
), take AS (
  UPDATE products p SET reserved_quantity = p.reserved_quantity + w.total,
    version = p.version + 1, update_time = now()
  FROM want w
  WHERE p.product_id = w.product_id
    AND (SELECT count(*) FROM locked) > 0
    AND NOT EXISTS (SELECT 1 FROM reservations x
                    WHERE x.request_id = ANY(\$4::text[]))
    AND p.total_quantity - p.reserved_quantity - p.purchased_quantity
        >= w.total
  RETURNING p.product_id
) INSERT INTO reservations (product_id, quantity, status, customer_id,
    request_id, requested_ttl_ms, expire_time)
  SELECT r.product_id, r.quantity, 1, r.customer_id, r.request_id,
    r.requested_ttl_ms,
    now() + make_interval(secs => r.hold_ms::double precision / 1000)
  FROM req r JOIN take t USING (product_id) ORDER BY r.request_id
  RETURNING id, product_id, quantity, status, customer_id, request_id,
    requested_ttl_ms, inv_us(create_time), inv_us(expire_time),
    inv_us(update_time), backordered_quantity;
EOF
  awk -v first="$2" -v n="$N" -v tag="$3" -v seed="$RANDOM" '
    function batch(k, name,   i, ids, rids, ones, zeros, holds, custs) {
      for (i = 1; i <= k; i++) {
        ids = ids (i > 1 ? "," : "") (1 + int(rand() * 25000))
        rids = rids (i > 1 ? "," : "") "'\''" tag "-" name "-" i "'\''"
        ones = ones (i > 1 ? "," : "") "1"
        zeros = zeros (i > 1 ? "," : "") "0"
        holds = holds (i > 1 ? "," : "") "900000"
        custs = custs (i > 1 ? "," : "") "'\''c'\''"
      }
      printf "EXECUTE grant_whole(ARRAY[%s]::bigint[], ARRAY[%s]::bigint[], " \
             "ARRAY[%s]::text[], ARRAY[%s]::text[], ARRAY[%s]::bigint[], " \
             "ARRAY[%s]::bigint[]);\n", ids, ones, custs, rids, zeros, holds
    }
    BEGIN {
      srand(seed)
      print "\\o /dev/null"
      for (j = 1; j <= 5; j++) batch(first, "w" j)
      print "SELECT clock_timestamp() AS t0 \\gset"
      for (j = 1; j <= n; j++) batch(6, "s" j)
      print "\\o"
      print "SELECT round(extract(epoch FROM clock_timestamp() - :'\''t0'\''::timestamptz) * 1e6 / " n ") AS us_per_statement, generic_plans, custom_plans FROM pg_prepared_statements;"
    }'
}

printf '%-18s %5s %18s %13s %12s\n' session rep "us per statement" generic_plans custom_plans
SESSIONS=("auto 1 auto-small-first" "auto 20 auto-big-first"
          "force_generic_plan 1 generic")
for ((rep = 1; rep <= REPS; rep++)); do
  # Rotate the order: reservations grows, and no session should always
  # run on the biggest table.
  for ((k = 0; k < 3; k++)); do
    read -r mode first name <<<"${SESSIONS[(k + rep - 1) % 3]}"
    script "$mode" "$first" "$name-$rep" >"$WORK/s.sql"
    sql -At -F ' ' -f "$WORK/s.sql" | tail -1 |
      awk -v s="$name" -v r="$rep" '{printf "%-18s %5d %18s %13s %12s\n", s, r, $1, $2, $3}'
  done
done
