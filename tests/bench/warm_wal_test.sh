#!/usr/bin/env bash
# bench/warm_wal.sh on a real local shard: the segments it makes ahead are
# there afterwards, named after the one being written, and bad
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
expect_rc 2 "$WARM" --dir "$WORK" --segments 08
expect_rc 2 "$WARM" --dir "$WORK" --segments 0
expect_rc 2 "$WARM" --dir "$WORK" --bogus
expect_rc 2 "$WARM" --dir
expect_rc 1 "$WARM" --dir "$WORK"        # no shards here

"$SHARDS" start --dir "$WORK/shards" --count 1 >/dev/null
PGDATA_WAL=$WORK/shards/shard-0/data/pg_wal
PORT=$(cat "$WORK/shards/shard-0/port")
# Segments ready ahead: files named after the one being written now (names
# sort in WAL order on one timeline). Used segments do not count: they are
# what a shard that never ran a checkpoint has too.
ahead() {
  local current
  current=$(PGPASSWORD=$(cat "$WORK/shards/superuser-password") psql -X -At \
    -h 127.0.0.1 -p "$PORT" -U postgres -d postgres \
    -c 'SELECT pg_walfile_name(pg_current_wal_insert_lsn())')
  find "$PGDATA_WAL" -maxdepth 1 -type f -name '0*' -printf '%f\n' |
    awk -v c="$current" '($0 "") > (c "")' | wc -l  # compared as strings
}
before=$(ahead)
"$WARM" --dir "$WORK/shards" --segments 6
after=$(ahead)
((after >= 6)) || fail "expected at least 6 WAL segments ahead after warming 6, found $after (before: $before)"
min=$(PGPASSWORD=$(cat "$WORK/shards/password") psql -X -At -h 127.0.0.1 \
  -p "$PORT" -U inventory -d inventory -c 'SHOW min_wal_size')
[[ $min == 1GB ]] || fail "min_wal_size is $min, expected 1GB"
echo "warm_wal_test: ok ($before segments ahead before, $after after)"
