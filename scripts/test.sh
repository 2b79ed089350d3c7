#!/usr/bin/env bash
# Build everything with tests, lint the protos and run the test suite.
# Tests start their own shards (deploy/local/shards.sh) in temp dirs.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$REPO"

section() { printf '\n==> %s\n' "$*"; }

section "Dependencies"
bash scripts/install-deps.sh

section "Configure (build/test)"
cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DINVENTORY_BUILD_TESTS=ON

section "Build"
cmake --build build/test -j2

section "buf lint (proto/)"
[[ -f proto/buf.yaml ]] || { echo "proto/buf.yaml is missing" >&2; exit 1; }
(cd proto && buf lint)
echo "buf lint: ok"

section "Tests (ctest)"
# --no-tests=error: a suite that finds no test is a failure, not a pass.
ctest --test-dir build/test --output-on-failure -j2 --timeout 900 --no-tests=error
