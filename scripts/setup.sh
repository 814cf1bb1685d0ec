#!/usr/bin/env bash
# One-time set-up of a development machine (Debian/Ubuntu): the PostgreSQL server and client the
# tests and the demo start throwaway clusters from, then the npm dependencies (which bring Node 24).
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg() {
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_dump" ] && [ -x "$dir/psql" ] && return 0
  done
  return 1
}

apt_packages=()
have_pg || apt_packages+=(postgresql postgresql-client)
command -v gzip >/dev/null || apt_packages+=(gzip)
command -v docker-compose >/dev/null || apt_packages+=(docker-compose)
command -v curl >/dev/null || apt_packages+=(curl)
# Headless Chromium for the /docs page test (driven by playwright-core, which downloads no browser).
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)

if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: please install these Debian packages first: ${apt_packages[*]}" >&2; exit 1
  fi
  echo "setup: installing ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # The Debian package starts a cluster of its own; the project never uses it.
  if command -v pg_ctlcluster >/dev/null; then
    for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do $SUDO pg_ctlcluster ${c%/*} ${c#*/} stop 2>/dev/null || true; done
  fi
fi

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
