#!/usr/bin/env bash
# Measures a code experiment kept as a patch, against the code it came from.
#
#   bench/experiments/run.sh PATCH [ab.sh options] [FLAGS...]
#
# Builds inventoryd (Release) of HEAD with PATCH applied, in a scratch copy
# under /tmp, and inventoryd and inventory-loadgen of HEAD in build/bench.
# Then bench/ab.sh alternates, on fresh shards: HEAD, the patched binary, and
# the patched binary with each FLAGS word (quote several flags as one word).
# ab.sh options (--scenario, --runs, --seconds, --concurrency, --no-verify)
# are passed on. Example, the hot-product bucket experiment:
#
#   bench/experiments/run.sh bench/experiments/hot_buckets.patch \
#     --scenario hot --runs 3 --no-verify --batch_connections=2
#
# The patches and what they showed are in bench/experiments/README.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
(($#)) || { sed -n '2,16p' "$0"; exit 2; }
PATCH=$(realpath "$1"); shift
[[ -f $PATCH ]] || { echo "run.sh: no patch $PATCH" >&2; exit 2; }
AB_OPTS=() FLAG_VARIANTS=()
while (($#)); do
  case $1 in
    --scenario|--runs|--seconds|--concurrency) AB_OPTS+=("$1" "$2"); shift 2 ;;
    --no-verify) AB_OPTS+=("$1"); shift ;;
    *) FLAG_VARIANTS+=("$1"); shift ;;
  esac
done

HEAD_BUILD=$REPO/build/bench
SCRATCH=/tmp/inventory-experiment-$(basename "$PATCH" .patch)
rm -rf "$SCRATCH/src"
mkdir -p "$SCRATCH/src"
git -C "$REPO" archive HEAD | tar -x -C "$SCRATCH/src"
git -C "$SCRATCH/src" init -q
git -C "$SCRATCH/src" apply "$PATCH"
for build in "$HEAD_BUILD:$REPO" "$SCRATCH/build:$SCRATCH/src"; do
  cmake -S "${build#*:}" -B "${build%%:*}" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DINVENTORY_BUILD_TESTS=OFF >/dev/null
done
cmake --build "$HEAD_BUILD" -j2 --target inventoryd inventory-loadgen
cmake --build "$SCRATCH/build" -j2 --target inventoryd

PATCHED=$SCRATCH/build/src/inventoryd
variants=("$HEAD_BUILD/src/inventoryd" "$PATCHED")
for flags in "${FLAG_VARIANTS[@]}"; do variants+=("$PATCHED $flags"); done
LOADGEN=$HEAD_BUILD/src/loadgen/inventory-loadgen \
  "$REPO/bench/ab.sh" "${AB_OPTS[@]}" "${variants[@]}"
