#!/usr/bin/env bash
# Local PostgreSQL 15 shards for development and tests.
#
# Each shard i of DIR lives in DIR/shard-$i:
#   data/          the cluster (PGDATA), owned by the postgres user
#   port           the TCP port recorded for the shard (reused on restart)
#   postgres.log   the server log
#   initialized    marker written once the role and database exist
# DIR/password holds the password of the `inventory` role (same for all
# shards of DIR), DIR/dsns the DSN line, DIR/count the number of shards.
#
# Run `shards.sh -h` for the commands.
set -euo pipefail

PROG=${0##*/}
PGBIN=/usr/lib/postgresql/15/bin
MARKER=.inventory-shards        # proves DIR was made by this script (destroy)
SOCK_MAX=107                    # max length of a unix socket path

usage() {
  cat <<EOF
Usage: $PROG COMMAND --dir DIR [options]

Commands:
  start       --dir DIR --count N [--fast]
                Create (if needed) and start N shards; print the DSN line
                (comma-separated, shard order) on stdout and in DIR/dsns.
                Idempotent: running shards are skipped, data and ports reused.
                --fast sets fsync=off full_page_writes=off (tests only).
  stop        --dir DIR             Stop all shards (paused ones too).
  status      --dir DIR             One line per shard: index port state datadir.
                                    Exit 0 if all are running, 3 otherwise.
  dsns        --dir DIR             Print the DSN line.
  pause       --dir DIR --shard I   SIGSTOP the shard's postmaster and all its
                                    children (connections hang).
  resume      --dir DIR --shard I   SIGCONT them.
  kill        --dir DIR --shard I   Crash-stop one shard (pg_ctl stop -m immediate).
  start-shard --dir DIR --shard I   Start one shard again on its recorded port.
  destroy     --dir DIR             Stop all shards and delete DIR.

Exit codes: 0 ok, 1 error, 2 usage error, 3 (status) not all running.
EOF
}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s\n\n' "$PROG" "$*" >&2; usage >&2; exit 2; }

# Connection variables of the caller must not steer our psql/pg_ctl.
for v in $(compgen -e | grep '^PG' || true); do unset "$v"; done

# ---------------------------------------------------------------- arguments
CMD=${1:-}
[[ -z $CMD ]] && usage_error "missing command"
[[ $CMD == -h || $CMD == --help || $CMD == help ]] && { usage; exit 0; }
shift
DIR="" COUNT="" SHARD="" FAST=0
while (($#)); do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dir|--count|--shard)
      (($# >= 2)) || usage_error "$1 needs a value"
      case $1 in --dir) DIR=$2 ;; --count) COUNT=$2 ;; --shard) SHARD=$2 ;; esac
      shift 2 ;;
    --dir=*) DIR=${1#*=}; shift ;;
    --count=*) COUNT=${1#*=}; shift ;;
    --shard=*) SHARD=${1#*=}; shift ;;
    --fast) FAST=1; shift ;;
    *) usage_error "unknown argument: $1" ;;
  esac
done

case $CMD in
  start|stop|status|dsns|pause|resume|kill|start-shard|destroy) ;;
  *) usage_error "unknown command: $CMD" ;;
esac
[[ -n $DIR ]] || usage_error "$CMD needs --dir DIR"
if [[ $CMD == start ]]; then
  [[ $COUNT =~ ^[1-9][0-9]*$ ]] || usage_error "start needs --count N (N >= 1)"
else
  [[ -z $COUNT ]] || usage_error "--count is only for start"
  ((FAST == 0)) || usage_error "--fast is only for start"
fi
case $CMD in
  pause|resume|kill|start-shard)
    [[ $SHARD =~ ^[0-9]+$ ]] || usage_error "$CMD needs --shard I (a shard index)" ;;
  *) [[ -z $SHARD ]] || usage_error "--shard is not for $CMD" ;;
esac
[[ $DIR == *$'\n'* ]] && usage_error "--dir must not contain a newline"
DIR=$(realpath -m -- "$DIR")

# ------------------------------------------------------- running as postgres
# PostgreSQL refuses to run as root: as root we run it as `postgres`,
# otherwise as ourselves.
if ((EUID == 0)); then
  PGUSER_NAME=postgres
  id -u postgres >/dev/null 2>&1 ||
    die "no 'postgres' user; install postgresql-15 (scripts/install-deps.sh)"
else
  PGUSER_NAME=$(id -un)
fi
[[ -x $PGBIN/pg_ctl ]] || die "$PGBIN/pg_ctl not found; install postgresql-15"

# Run a command as the postgres user from /, with no inherited file
# descriptors above 2 (pg_ctl start leaves a daemon behind that must not
# hold our lock file or a caller's pipes open).
as_pg() {
  (
    cd /
    for fd in "/proc/$BASHPID/fd/"*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    if ((EUID == 0)); then exec runuser -u postgres -- "$@"; else exec "$@"; fi
  )
}

# ------------------------------------------------------------- shard paths
shard_dir() { echo "$DIR/shard-$1"; }
pgdata()    { echo "$DIR/shard-$1/data"; }
portfile()  { echo "$DIR/shard-$1/port"; }
logfile()   { echo "$DIR/shard-$1/postgres.log"; }

# Socket directory: the shard dir, or a short one under /tmp if the socket
# path would exceed the kernel's limit.
sock_dir() {
  local d="$DIR/shard-$1" sock
  sock="$d/.s.PGSQL.65535"
  if ((${#sock} <= SOCK_MAX)); then
    echo "$d"
  else
    echo "/tmp/invpg-$(printf '%s' "$DIR" | sha256sum | cut -c1-12)-$1"
  fi
}
tmp_sock_dirs() {
  echo "/tmp/invpg-$(printf '%s' "$DIR" | sha256sum | cut -c1-12)-"*
}

shard_count() {
  [[ -f $DIR/count ]] || die "no shards in $DIR (run: $PROG start --dir $DIR --count N)"
  cat "$DIR/count"
}
check_index() {
  local n; n=$(shard_count)
  ((SHARD < n)) || die "shard $SHARD does not exist in $DIR (shards 0..$((n - 1)))"
}

# PID of the shard's postmaster if it is alive (running or paused), else "".
postmaster_pid() {
  local f pid
  f="$(pgdata "$1")/postmaster.pid"
  [[ -r $f ]] || return 0
  pid=$(head -n1 "$f" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  # Guard against PID reuse: the postmaster's cwd is its data directory.
  [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(pgdata "$1")" ]] && echo "$pid"
  return 0
}

# The postmaster and all its descendants, parent first.
proc_tree() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" || true); do proc_tree "$p"; done
}

# A postmaster killed by SIGKILL can linger as a zombie until init reaps it;
# postgres would take it for a live postmaster. Give it a few seconds.
wait_stale_pid() {
  local f pid n=0
  f="$(pgdata "$1")/postmaster.pid"
  [[ -r $f ]] || return 0
  pid=$(head -n1 "$f" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  while [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && ((n++ < 50)); do
    sleep 0.1
  done
}

is_paused() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == [Tt] ]]; }

signal_tree() { # SIGNAL PID
  local p
  for p in $(proc_tree "$2"); do kill "-$1" "$p" 2>/dev/null || true; done
}

# ------------------------------------------------------------------- ports
port_busy() { # PORT: true if anything uses the loopback TCP port
  local p=$1
  if command -v ss >/dev/null; then
    # Listening sockets only: connections left in TIME_WAIT after a stop do
    # not keep postgres (SO_REUSEADDR) from binding the port again.
    [[ -n $(ss -Htln "( sport = :$p )" 2>/dev/null) ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null
  fi
}

# Ports recorded by other shards of DIR (a stopped shard keeps its claim).
other_ports() {
  local f
  for f in "$DIR"/shard-*/port; do
    [[ -f $f && $f != "$(portfile "$1")" ]] && cat "$f"
  done
  return 0
}

# A random free port below the kernel's ephemeral range (so outgoing
# connections do not take it later).
random_port() {
  local lo=20000 hi eph taken p tries=0
  eph=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  hi=$((eph - 1)); ((hi - lo >= 1000)) || hi=60999
  taken=" $(other_ports "$1" | tr '\n' ' ') "
  while ((tries++ < 200)); do
    p=$(shuf -i "$lo-$hi" -n 1)
    [[ $taken == *" $p "* ]] && continue
    port_busy "$p" || { echo "$p"; return 0; }
  done
  die "no free port found in $lo-$hi"
}

# ---------------------------------------------------------- start one shard
# Settings live in PGDATA/inventory-shard.conf (included by postgresql.conf),
# rewritten before every start.
write_conf() { # I PORT FAST
  local sock; sock=$(sock_dir "$1")
  local dur=on; (($3)) && dur=off
  local f; f="$(pgdata "$1")/inventory-shard.conf"
  cat >"$f" <<EOF
# Written by deploy/local/shards.sh before each start; edits are lost.
listen_addresses = '127.0.0.1'
port = $2
unix_socket_directories = '${sock//\'/\'\'}'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 128MB
fsync = $dur
full_page_writes = $dur
# Keep up to 1 GB of used WAL segments for reuse at each checkpoint, so that a
# busy shard does not create and zero-fill a new 16 MB segment (every commit
# waits for that) every few seconds.
min_wal_size = 1GB
max_wal_size = 2GB
EOF
  ((EUID == 0)) && chown postgres: "$f"
  return 0
}

prepare_sock_dir() {
  local s; s=$(sock_dir "$1")
  [[ $s == "$(shard_dir "$1")" ]] && return 0
  if [[ ! -d $s ]]; then
    mkdir -m 700 "$s"
    ((EUID == 0)) && chown postgres: "$s"
  fi
  [[ $(stat -c %U "$s") == "$PGUSER_NAME" ]] || die "$s is not owned by $PGUSER_NAME"
}

# start_one I FAST STRICT: start shard I; STRICT=1 insists on the recorded port.
start_one() {
  local i=$1 fast=$2 strict=$3 port="" tries=0 off out
  [[ -f $(portfile "$i") ]] && port=$(cat "$(portfile "$i")")
  prepare_sock_dir "$i"
  wait_stale_pid "$i"
  while :; do
    if [[ -z $port ]] || port_busy "$port"; then
      if ((strict)) && [[ -n $port ]]; then
        die "shard $i: recorded port $port is in use by another process"
      fi
      [[ -n $port ]] && log "shard $i: port $port is in use, choosing another"
      port=$(random_port "$i")
    fi
    echo "$port" >"$(portfile "$i")"
    write_conf "$i" "$port" "$fast"
    off=$(stat -c %s "$(logfile "$i")" 2>/dev/null || echo 0)
    if out=$(as_pg "$PGBIN/pg_ctl" -D "$(pgdata "$i")" -l "$(logfile "$i")" \
               -s -w -t 60 start 2>&1); then
      return 0
    fi
    # Lost a race for the port? Try another one.
    if ((!strict)) && ((++tries < 20)) &&
       tail -c "+$((off + 1))" "$(logfile "$i")" 2>/dev/null | grep -q 'Address already in use'; then
      log "shard $i: port $port was taken meanwhile, retrying"
      port=""
      continue
    fi
    printf '%s\n' "$out" >&2
    tail -n 20 "$(logfile "$i")" >&2 2>/dev/null || true
    die "shard $i failed to start (log: $(logfile "$i"))"
  done
}

# ------------------------------------------------------ create one shard
random_secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

init_one() { # I FAST: initdb only (may run in parallel for several shards)
  local i=$1 fast=$2 sd data pw
  sd=$(shard_dir "$i"); data=$(pgdata "$i")
  # A half-made shard (no marker) is thrown away and made again.
  if [[ -d $data ]]; then
    log "shard $i: incomplete initialisation found, starting over"
    as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate -s -w stop >/dev/null 2>&1 || true
    rm -rf "$data"
  fi
  mkdir -p "$sd"
  chmod 700 "$sd"
  ((EUID == 0)) && chown postgres: "$sd"
  # Superuser password, via a file only the postgres user can read.
  pw="$sd/.pwfile"
  (umask 077; cat "$DIR/superuser-password" >"$pw")
  ((EUID == 0)) && chown postgres: "$pw"
  local nosync=(); ((fast)) && nosync=(--no-sync)
  if ! as_pg "$PGBIN/initdb" -D "$data" -U postgres --pwfile="$pw" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C \
        "${nosync[@]}" >"$sd/initdb.log" 2>&1; then
    rm -f "$pw"
    cat "$sd/initdb.log" >&2
    die "initdb failed for shard $i"
  fi
  rm -f "$pw"
  echo "include_if_exists = 'inventory-shard.conf'" >>"$data/postgresql.conf"
}

create_db() { # I: role + database over the unix socket, as postgres
  local i=$1 port; port=$(cat "$(portfile "$i")")
  as_pg "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$(sock_dir "$i")" -p "$port" \
    -U postgres -d postgres >/dev/null <<SQL || die "shard $i: creating role/database failed"
CREATE ROLE inventory LOGIN PASSWORD '$(cat "$DIR/password")';
CREATE DATABASE inventory OWNER inventory;
SQL
  touch "$(shard_dir "$i")/initialized"
}

# ------------------------------------------------------------------ DSNs
dsn_line() {
  local n i pw line=""
  n=$(shard_count); pw=$(cat "$DIR/password")
  for ((i = 0; i < n; i++)); do
    [[ -f $(portfile "$i") ]] || die "shard $i has no recorded port"
    line+="${line:+,}host=127.0.0.1 port=$(cat "$(portfile "$i")") dbname=inventory user=inventory password=$pw connect_timeout=3"
  done
  echo "$line"
}
write_dsns() {
  local line; line=$(dsn_line)
  (umask 077; echo "$line" >"$DIR/dsns")
  echo "$line"
}

# Say which directory on the way to DIR the postgres user cannot pass.
check_reachable() {
  ((EUID == 0)) || return 0
  runuser -u postgres -- test -x "$DIR" -a -r "$DIR" 2>/dev/null && return 0
  local p="" part blocker="$DIR"
  IFS=/ read -ra parts <<<"${DIR#/}"
  for part in "${parts[@]}"; do
    p+="/$part"
    if ! runuser -u postgres -- test -x "$p" 2>/dev/null; then blocker=$p; break; fi
  done
  die "the postgres user cannot reach $DIR (no access to $blocker, mode $(stat -c %a "$blocker" 2>/dev/null || echo '?')).
PostgreSQL runs as 'postgres' and needs every parent directory to be searchable.
Use a directory it can reach, e.g. --dir /var/lib/inventory-local/shards or a new
path under /tmp (not a mktemp -d dir, which is mode 700), or: chmod o+x $blocker"
}

lock_dir() { exec 9>"$DIR/.lock"; flock 9; }

# ---------------------------------------------------------------- commands
cmd_start() {
  local n=$COUNT i t0=$SECONDS
  # Never move into (and later destroy) a directory that holds other things.
  if [[ -d $DIR && ! -f $DIR/$MARKER && -n $(ls -A "$DIR") ]]; then
    die "$DIR is not empty and was not made by $PROG; use a new or empty directory"
  fi
  # A DIR we create must be searchable by postgres whatever the umask.
  [[ -d $DIR ]] || (umask 022 && mkdir -p "$DIR")
  [[ -w $DIR ]] || die "cannot write to $DIR"
  touch "$DIR/$MARKER"
  check_reachable
  lock_dir
  # The shard count is fixed once made: shard i's data belongs to index i.
  local have=""
  if [[ -f $DIR/count ]]; then
    have=$(cat "$DIR/count")
  else
    local dirs=("$DIR"/shard-*); [[ -e ${dirs[0]} ]] && have=${#dirs[@]}
  fi
  if [[ -n $have && $have != "$n" ]]; then
    die "$DIR holds $have shards but --count is $n; a shard's data belongs to its index in a list of fixed length. Use --count $have, or another --dir (or destroy this one)."
  fi
  echo "$n" >"$DIR/count"
  (umask 077
   [[ -s $DIR/password ]] || random_secret >"$DIR/password"
   [[ -s $DIR/superuser-password ]] || random_secret >"$DIR/superuser-password")

  # initdb the new shards in parallel (the slow part), then start in order.
  local pids=() new=() rc=0
  for ((i = 0; i < n; i++)); do
    [[ -f $(shard_dir "$i")/initialized ]] && continue
    new+=("$i")
    log "shard $i: initialising $(pgdata "$i")"
    init_one "$i" "$FAST" & pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  ((rc == 0)) || die "initialisation failed"

  for ((i = 0; i < n; i++)); do
    local pid; pid=$(postmaster_pid "$i")
    if [[ -n $pid ]]; then
      if is_paused "$pid"; then log "shard $i: already running (PAUSED; use resume)"
      else log "shard $i: already running"; fi
      continue
    fi
    start_one "$i" "$FAST" 0
    log "shard $i: started on 127.0.0.1:$(cat "$(portfile "$i")")"
  done
  for i in "${new[@]}"; do create_db "$i"; done
  ((FAST)) && log "fast mode: fsync=off full_page_writes=off (not crash-safe)"
  log "$n shard(s) ready in $((SECONDS - t0)) s; DSNs in $DIR/dsns"
  write_dsns
}

stop_shard() { # I MODE
  local pid; pid=$(postmaster_pid "$1")
  [[ -n $pid ]] || return 0
  signal_tree CONT "$pid"            # a paused shard cannot shut down
  if ! as_pg "$PGBIN/pg_ctl" -D "$(pgdata "$1")" -m "$2" -s -w -t 60 stop >/dev/null; then
    log "shard $1: '$2' stop failed, using immediate"
    as_pg "$PGBIN/pg_ctl" -D "$(pgdata "$1")" -m immediate -s -w -t 30 stop >/dev/null ||
      die "shard $1 would not stop (pid $pid)"
  fi
}

cmd_stop() {
  [[ -f $DIR/count ]] || { log "nothing to stop in $DIR"; return 0; }
  lock_dir
  local n i; n=$(shard_count)
  for ((i = 0; i < n; i++)); do
    if [[ -n $(postmaster_pid "$i") ]]; then stop_shard "$i" fast; log "shard $i: stopped"; fi
  done
}

cmd_status() {
  local n i pid state port all=0; n=$(shard_count)
  for ((i = 0; i < n; i++)); do
    pid=$(postmaster_pid "$i"); port=$(cat "$(portfile "$i")" 2>/dev/null || echo -)
    if [[ -z $pid ]]; then state=stopped; all=3
    elif is_paused "$pid"; then state=paused; all=3
    else state=running; fi
    printf '%s\t%s\t%s\t%s\n' "$i" "$port" "$state" "$(pgdata "$i")"
  done
  return $all
}

cmd_dsns() { [[ -f $DIR/password ]] || die "no password in $DIR"; dsn_line; }

cmd_pause() {
  check_index
  local pid; pid=$(postmaster_pid "$SHARD")
  [[ -n $pid ]] || die "shard $SHARD is not running"
  # Postmaster first (no new children after that), then all descendants;
  # a second pass catches anything forked in between.
  signal_tree STOP "$pid"; signal_tree STOP "$pid"
  log "shard $SHARD: paused ($(proc_tree "$pid" | wc -l) processes)"
}

cmd_resume() {
  check_index
  local pid; pid=$(postmaster_pid "$SHARD")
  [[ -n $pid ]] || die "shard $SHARD is not running"
  signal_tree CONT "$pid"
  log "shard $SHARD: resumed"
}

cmd_kill() {
  check_index
  lock_dir
  local pid; pid=$(postmaster_pid "$SHARD")
  [[ -n $pid ]] || { log "shard $SHARD: already stopped"; return 0; }
  signal_tree CONT "$pid"
  as_pg "$PGBIN/pg_ctl" -D "$(pgdata "$SHARD")" -m immediate -s -w -t 30 stop >/dev/null ||
    die "shard $SHARD: immediate stop failed"
  log "shard $SHARD: killed (immediate stop)"
}

cmd_start_shard() {
  check_index
  check_reachable
  lock_dir
  [[ -f $(shard_dir "$SHARD")/initialized ]] || die "shard $SHARD is not initialised (use start)"
  if [[ -n $(postmaster_pid "$SHARD") ]]; then log "shard $SHARD: already running"; return 0; fi
  # Keep the fsync setting of the last start.
  local fast=0
  grep -q '^fsync = off' "$(pgdata "$SHARD")/inventory-shard.conf" 2>/dev/null && fast=1
  start_one "$SHARD" "$fast" 1
  log "shard $SHARD: started on 127.0.0.1:$(cat "$(portfile "$SHARD")")"
}

cmd_destroy() {
  [[ -e $DIR ]] || { log "$DIR does not exist"; return 0; }
  [[ -f $DIR/$MARKER ]] || [[ -z $(ls -A "$DIR") ]] ||
    die "$DIR was not made by $PROG (no $MARKER file); refusing to delete it"
  if [[ -f $DIR/count ]]; then
    lock_dir
    local n i; n=$(shard_count)
    for ((i = 0; i < n; i++)); do stop_shard "$i" immediate; done
  fi
  rm -rf -- "$DIR"
  # shellcheck disable=SC2046
  rm -rf -- $(tmp_sock_dirs)
  log "destroyed $DIR"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  dsns) cmd_dsns ;;
  pause) cmd_pause ;;
  resume) cmd_resume ;;
  kill) cmd_kill ;;
  start-shard) cmd_start_shard ;;
  destroy) cmd_destroy ;;
esac
