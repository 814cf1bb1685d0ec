#!/usr/bin/env bash
# One-time set-up of a development machine (Debian/Ubuntu): the PostgreSQL server and client the
# tests and the demo start throwaway clusters from, then the npm dependencies (which bring Node 24).
# Safe to run again: it installs only what is missing. It never stops, starts or changes a
# PostgreSQL cluster or service that was there before it ran.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg() {
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_dump" ] && [ -x "$dir/psql" ] && return 0
  done
  return 1
}

# "<version>/<name>" of the machine's Debian PostgreSQL clusters: all, or those running.
clusters() {
  if command -v pg_lsclusters >/dev/null; then pg_lsclusters -h 2>/dev/null | awk -v only="${1:-}" 'only == "" || $4 == only {print $1"/"$2}'; fi
}

apt_packages=()
have_pg || apt_packages+=(postgresql postgresql-client)
command -v gzip >/dev/null || apt_packages+=(gzip)
command -v docker-compose >/dev/null || apt_packages+=(docker-compose)
command -v curl >/dev/null || apt_packages+=(curl)
# The stock tools whose formats the tests prove ours against: zstd (zstd -dc | psql) and age (age -d).
command -v zstd >/dev/null || apt_packages+=(zstd)
command -v age >/dev/null || apt_packages+=(age)
# Headless Chromium for the /docs page test (driven by playwright-core, which downloads no browser).
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
# debootstrap builds the Debian trixie/sid roots that the version-matrix test runs the PostgreSQL
# 17 and 18 clients in (test/harness/pg-clients.ts); /usr/sbin may not be on a non-root PATH.
[ -x /usr/sbin/debootstrap ] || apt_packages+=(debootstrap)

if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: please install these Debian packages first: ${apt_packages[*]}" >&2; exit 1
  fi
  echo "setup: installing ${apt_packages[*]}"
  clusters_before="$(clusters)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
  # Debian's postgresql package creates and starts a "main" cluster, which the project never uses
  # (it starts throwaway clusters of its own). Stop only a cluster this install just created.
  for c in $(clusters online); do
    if ! grep -qxF "$c" <<<"$clusters_before"; then
      echo "setup: stopping PostgreSQL cluster $c, which the package install just created (the project does not use it)"
      $SUDO pg_ctlcluster "${c%/*}" "${c#*/}" stop || true
    fi
  done
fi

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm runs on this machine's Node, which may be older than the project's engines (>= 22.15): npm
  # would warn about that for every package. The project's scripts run on the Node 24 that the
  # `node` devDependency installs, so only errors are shown.
  echo "setup: npm ci (on Node $(node --version); the project brings and runs on its own Node 24)"
  # SCARF_ANALYTICS=false: swagger-ui-dist's install-time telemetry stays off even with an npm that
  # ignores package.json's allowScripts (which denies it) and scarfSettings.
  SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
fi
