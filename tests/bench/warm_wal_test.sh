#!/usr/bin/env bash
# bench/warm_wal.sh on a real local shard: the segments it makes ahead are
# there afterwards (kept for reuse by the shard's min_wal_size), and bad
# arguments are refused with exit 2, a folder that holds no shards with 1.
#
# Usage: warm_wal_test.sh REPO
set -euo pipefail

REPO=${1:?usage: $0 REPO}
WARM=$REPO/bench/warm_wal.sh
SHARDS=$REPO/deploy/local/shards.sh
WORK=$(mktemp -d /tmp/inventory-warmwal-XXXXXX)
chmod 755 "$WORK"
cleanup() { "$SHARDS" destroy --dir "$WORK/shards" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

fail() { echo "warm_wal_test: FAIL: $*" >&2; exit 1; }
expect_rc() {  # RC COMMAND...
  local want=$1 rc=0; shift
  "$@" >/dev/null 2>"$WORK/err" || rc=$?
  ((rc == want)) || fail "'$*' exited $rc, expected $want ($(cat "$WORK/err"))"
}

expect_rc 2 "$WARM"
expect_rc 2 "$WARM" --dir "$WORK" --segments many
expect_rc 2 "$WARM" --dir "$WORK" --bogus
expect_rc 2 "$WARM" --dir
expect_rc 1 "$WARM" --dir "$WORK"        # no shards here

"$SHARDS" start --dir "$WORK/shards" --count 1 >/dev/null
PGDATA_WAL=$WORK/shards/shard-0/data/pg_wal
segments() { find "$PGDATA_WAL" -maxdepth 1 -type f -name '0*' | wc -l; }
before=$(segments)
"$WARM" --dir "$WORK/shards" --segments 6
after=$(segments)
# The checkpoint keeps the used segments as future ones instead of deleting
# them; with PostgreSQL's default min_wal_size (80 MB) it keeps at most 5.
((after >= 7)) || fail "expected at least 7 WAL segments after warming 6, found $after (before: $before)"
min=$(PGPASSWORD=$(cat "$WORK/shards/password") psql -X -At -h 127.0.0.1 \
  -p "$(cat "$WORK/shards/shard-0/port")" -U inventory -d inventory -c 'SHOW min_wal_size')
[[ $min == 1GB ]] || fail "min_wal_size is $min, expected 1GB"
echo "warm_wal_test: ok ($before segments before, $after after)"
