#!/usr/bin/env bash
# Install the build, test and run dependencies on Debian 12 (as root).
# Idempotent and offline when everything is already there.
set -euo pipefail

PKGS=(
  ca-certificates cmake ninja-build pkg-config g++ make
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libpqxx-dev libpq-dev libabsl-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  postgresql-15 postgresql-client-15
  python3 python3-grpcio python3-protobuf python3-yaml
  procps iproute2 util-linux gnuplot-nox
)
# Node may come from elsewhere (with its own npm); use Debian's only if
# there is no npm at all, or the two would conflict.
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

log() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for p in "${PKGS[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
  if ((EUID != 0)); then
    log "missing packages: ${missing[*]}"
    log "run this script as root (or: sudo apt-get install ${missing[*]})"
    exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# buf (protobuf linter) comes from the npm registry.
if ! command -v buf >/dev/null 2>&1; then
  log "installing buf (npm install -g @bufbuild/buf)"
  npm install -g --no-fund --no-audit @bufbuild/buf
  command -v buf >/dev/null 2>&1 || { log "buf is still not on PATH ($(npm prefix -g)/bin)"; exit 1; }
fi

log "all dependencies present"
