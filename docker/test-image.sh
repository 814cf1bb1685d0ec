#!/usr/bin/env bash
# Image smoke test (npm run test:image): builds the container image and checks it end to end against a
# throwaway PostgreSQL: health, a backup through the API, its download, `db-restore --force latest`
# inside the running container (the `docker exec` path of the docs), the restored data, a non-root
# service process, and a clean exit on SIGTERM. Then it removes the container, the volume and the
# PostgreSQL cluster it made.
#
#   bash docker/test-image.sh [--clean-all] [--keep-on-failure]
#
#   --clean-all         also remove the built image and the cached local base image
#   --keep-on-failure   leave the container, volume and cluster in place when a check fails
#
# Environment:
#   TEST_IMAGE_BASE=local   (default) build on a local Debian bookworm + Node 24 base made with
#                           debootstrap (docker/build-local-base.sh), PostgreSQL client from Debian
#                           (PG_MAJOR 15): for machines that cannot pull public images.
#   TEST_IMAGE_BASE=public  build on BASE_IMAGE (default node:24-bookworm-slim) with the PostgreSQL
#                           project's apt repository (PG_MAJOR 17), as the published image is built.
#   IMAGE                   tag to build (default localhost/db-backup-service:test)
#
# Runs as root (podman, debootstrap, and an initdb run as the postgres user). Installs podman, runc,
# debootstrap, curl and jq with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT="$(pwd)"

CLEAN_ALL=0
KEEP_ON_FAILURE=0
for arg in "$@"; do
  case "$arg" in
    --clean-all) CLEAN_ALL=1 ;;
    --keep-on-failure) KEEP_ON_FAILURE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
  esac
done

MODE="${TEST_IMAGE_BASE:-local}"
case "$MODE" in local|public) ;; *) echo "TEST_IMAGE_BASE must be local or public, got '$MODE'" >&2; exit 2 ;; esac
IMAGE="${IMAGE:-localhost/db-backup-service:test}"
RUN_ID="$$"
CONTAINER="dbbs-image-test-$RUN_ID"
VOLUME="dbbs-image-test-backups-$RUN_ID"
T0=$SECONDS
PASSED=0
FAILED=0
WORK=""
PG_BIN=""
PG_DATA=""
BASE_IMAGE_USED=""

elapsed() { echo "$((SECONDS - T0))s"; }
step() { echo; echo "==> $* [$(elapsed)]"; }
info() { echo "    $*"; }
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() {
  FAILED=$((FAILED + 1)); echo "FAIL: $*"
  if [ -n "${CONTAINER_STARTED:-}" ]; then
    echo "---- last container log lines ----"; podman logs --tail 40 "$CONTAINER" 2>&1 | sed 's/^/    /' || true
  fi
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ "$KEEP_ON_FAILURE" = 1 ]; then
    echo "Kept for inspection: container $CONTAINER, volume $VOLUME, cluster $PG_DATA (pg_ctl -D ... stop)"
  else
    podman rm -f -t 5 "$CONTAINER" >/dev/null 2>&1
    podman volume rm -f "$VOLUME" >/dev/null 2>&1
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
    fi
    [ -n "$WORK" ] && rm -rf "$WORK"
    if [ "$CLEAN_ALL" = 1 ]; then
      podman rmi -f "$IMAGE" >/dev/null 2>&1
      [ "$MODE" = local ] && [ -n "$BASE_IMAGE_USED" ] && podman rmi -f "$BASE_IMAGE_USED" >/dev/null 2>&1
      podman image prune -f >/dev/null 2>&1
    fi
  fi
  echo
  echo "test:image: took $(elapsed)$([ "$rc" -eq 0 ] || echo ", exit code $rc")"
  if [ "$rc" -eq 0 ]; then
    echo "test:image: $PASSED passed, 0 failed"
  else
    echo "test:image: $PASSED passed, $((FAILED > 0 ? FAILED : 1)) failed"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------------------------------
step "prerequisites"
[ "$(id -u)" -eq 0 ] || { echo "test:image needs root (rootful podman, debootstrap, initdb as postgres): sudo npm run test:image" >&2; exit 2; }
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
[ "$MODE" = local ] && ! command -v debootstrap >/dev/null && need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  info "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -f /etc/containers/containers.conf ]; then
  # Rootful podman in a container-like sandbox: runc, and ulimits it may set (see STACK-NOTES).
  info "writing /etc/containers/containers.conf"
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
fi
find_pg_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/psql" ]; then echo "$dir"; return 0; fi
  done
}
PG_BIN="$(find_pg_bin)"
# The project's set-up (PostgreSQL server for the throwaway cluster; npm ci, whose root devDependency
# `node` is the Node 24 binary of the local base), only when something it provides is missing.
if [ -z "$PG_BIN" ] || { [ "$MODE" = local ] && [ ! -x node_modules/node/bin/node ]; }; then
  info "running scripts/setup.sh"
  bash scripts/setup.sh
  PG_BIN="$(find_pg_bin)"
fi
[ -n "$PG_BIN" ] || fail "no PostgreSQL server under /usr/lib/postgresql/*/bin"
id postgres >/dev/null 2>&1 || fail "the postgres system user is missing (Debian's postgresql package creates it)"
info "podman $(podman version --format '{{.Client.Version}}'), PostgreSQL server $("$PG_BIN/postgres" --version | awk '{print $3}')"
WORK="$(mktemp -d /tmp/dbbs-image-test.XXXXXX)"
chmod 0755 "$WORK"
pass "prerequisites"

# --------------------------------------------------------------------------------------------------
case "$MODE" in
  local)
    step "local base image (debootstrap; cached after the first run)"
    BASE_IMAGE_USED="$(bash docker/build-local-base.sh | tail -n 1)" || fail "local base image (docker/build-local-base.sh)"
    PG_CLIENT_SOURCE=debian
    PG_MAJOR="${PG_MAJOR:-15}"
    ;;
  public)
    BASE_IMAGE_USED="${BASE_IMAGE:-node:24-bookworm-slim}"
    PG_CLIENT_SOURCE=pgdg
    PG_MAJOR="${PG_MAJOR:-17}"
    ;;
esac
info "base image: $BASE_IMAGE_USED"

step "build $IMAGE (PG_CLIENT_SOURCE=$PG_CLIENT_SOURCE, PG_MAJOR=$PG_MAJOR)"
VERSION="$(jq -r .version package.json)"
build_args=(
  --format docker --network=host --ignorefile docker/Dockerfile.dockerignore -f docker/Dockerfile
  --build-arg "BASE_IMAGE=$BASE_IMAGE_USED"
  --build-arg "PG_CLIENT_SOURCE=$PG_CLIENT_SOURCE"
  --build-arg "PG_MAJOR=$PG_MAJOR"
  --build-arg "VERSION=$VERSION"
  --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  -t "$IMAGE"
)
# HTTPS inside the build (npm, apt over https) behind a TLS-intercepting proxy needs this machine's
# locally added CA certificates: passed as a build secret, never stored in a layer.
shopt -s nullglob globstar
local_cas=(/usr/local/share/ca-certificates/**/*.crt)
shopt -u nullglob globstar
if [ ${#local_cas[@]} -gt 0 ]; then
  cat "${local_cas[@]}" > "$WORK/extra-ca.pem"
  build_args+=(--secret "id=extra_ca_certs,src=$WORK/extra-ca.pem")
  info "passing ${#local_cas[@]} locally added CA certificate(s) as a build secret"
fi
t=$SECONDS
if ! podman build "${build_args[@]}" . > "$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log"
  fail "podman build (log above)"
fi
info "built in $((SECONDS - t)) s"
pass "image built: $IMAGE"

# --------------------------------------------------------------------------------------------------
step "image contents"
size_bytes="$(podman image inspect "$IMAGE" --format '{{.Size}}')"
IMAGE_SIZE_MB=$((size_bytes / 1000 / 1000))
info "image size: ${IMAGE_SIZE_MB} MB"
label_version="$(podman image inspect "$IMAGE" --format '{{index .Labels "org.opencontainers.image.version"}}')"
[ "$label_version" = "$VERSION" ] || fail "label org.opencontainers.image.version is '$label_version', expected $VERSION"
image_user="$(podman image inspect "$IMAGE" --format '{{.User}}')"
[ "$image_user" = "10001:10001" ] || fail "image USER is '$image_user', expected 10001:10001"
podman image inspect "$IMAGE" --format '{{json .HealthCheck}}' | grep -q '/health' || fail "image has no HEALTHCHECK on /health"
podman image inspect "$IMAGE" --format '{{json .Config.ExposedPorts}}' | grep -q '8080/tcp' || fail "image does not EXPOSE 8080"
podman run --rm --network=none --entrypoint /bin/bash "$IMAGE" -c '
  set -e
  for t in pg_dump pg_restore psql; do "$PG_BIN_DIR/$t" --version; done
  for t in gzip bash curl jq tini db-backup-service db-restore node; do command -v "$t" >/dev/null || { echo "missing: $t"; exit 1; }; done
  node --version | grep -q "^v24\." || { echo "node is not 24: $(node --version)"; exit 1; }
  [ "$(readlink -f /usr/local/bin/db-restore)" = /app/cli/dist/bin.js ] || { echo "db-restore is not the CLI"; exit 1; }
  [ "$(readlink -f /usr/local/bin/db-backup-service)" = /app/server/bin/db-backup-service.js ] || { echo "db-backup-service is not the service"; exit 1; }
  db-restore --version >/dev/null
  for d in /app/*/src /app/node_modules/typescript /app/node_modules/vitest /app/node_modules/node; do
    [ ! -e "$d" ] || { echo "should not be in the image: $d"; exit 1; }
  done
  ! find /app/contract /app/server /app/sdk /app/cli -name "*.ts" -o -name "*.map" | grep -q . || { echo "TypeScript sources or maps in /app"; exit 1; }
' > "$WORK/contents.log" 2>&1 || { cat "$WORK/contents.log"; fail "image contents"; }
info "$(grep -m1 pg_dump "$WORK/contents.log")"
pass "image: pg_dump/pg_restore/psql, gzip, bash, curl, jq, tini, db-restore, Node 24; USER 10001; HEALTHCHECK; no sources or dev dependencies"

# --------------------------------------------------------------------------------------------------
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}

step "throwaway PostgreSQL ($PG_BIN)"
PG_PORT="$(free_port)"
PG_DATA="$WORK/pg/data"
mkdir -p "$WORK/pg"
chown postgres "$WORK/pg"
chmod 0700 "$WORK/pg"
DB_PASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SUPER_PASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$SUPER_PASSWORD" > "$WORK/pg/superpw"
chown postgres "$WORK/pg/superpw"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$WORK/pg/superpw" \
  --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 > "$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log"; fail "initdb"; }
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/postgres.log" -w -t 60 \
  -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start > /dev/null \
  || { cat "$WORK/pg/postgres.log"; fail "pg_ctl start"; }
psql_super() { PGPASSWORD="$SUPER_PASSWORD" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql_app() { PGPASSWORD="$DB_PASSWORD" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U app -d appdb "$@"; }
psql_super -d postgres -c "CREATE ROLE app LOGIN CREATEDB PASSWORD '$DB_PASSWORD'" -c "CREATE DATABASE appdb OWNER app"
psql_app <<'SQL'
CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, payload jsonb, created timestamptz NOT NULL DEFAULT now());
INSERT INTO items (id, name, payload)
  SELECT g, 'item-' || g, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b'))
  FROM generate_series(1, 5000) AS g;
INSERT INTO items (id, name) VALUES (0, 'image-test-marker');
CREATE VIEW item_count AS SELECT count(*) AS n FROM items;
SQL
SOURCE_FINGERPRINT="$(psql_app -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
info "PostgreSQL on 127.0.0.1:$PG_PORT, database appdb: items $SOURCE_FINGERPRINT"
pass "throwaway PostgreSQL with sample data"

# --------------------------------------------------------------------------------------------------
step "run the container"
HTTP_PORT="$(free_port)"
API_TOKEN="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$WORK/secrets"
printf '%s' "$DB_PASSWORD" > "$WORK/secrets/db_password"
printf '%s' "$API_TOKEN" > "$WORK/secrets/api_token"
chown -R 10001:10001 "$WORK/secrets"
chmod 0400 "$WORK/secrets"/*
podman volume create "$VOLUME" > /dev/null
# --health-interval=disable: podman schedules health checks with systemd timers, which a machine without
# systemd lacks; the image's HEALTHCHECK is run explicitly below with `podman healthcheck run`.
# --read-only (tmpfs /tmp, as the Kubernetes examples' readOnlyRootFilesystem with an emptyDir /tmp).
podman run -d --name "$CONTAINER" --network=host --health-interval=disable --read-only \
  -e DB_HOST=127.0.0.1 -e DB_PORT="$PG_PORT" -e DB_NAME=appdb -e DB_USER=app \
  -e DB_PASSWORD_FILE=/run/secrets/db_password -e API_TOKEN_FILE=/run/secrets/api_token \
  -e STORAGE_BACKEND=local -e BACKUP_LOCAL_DIR=/backups -e HTTP_PORT="$HTTP_PORT" \
  -v "$WORK/secrets/db_password:/run/secrets/db_password:ro" \
  -v "$WORK/secrets/api_token:/run/secrets/api_token:ro" \
  -v "$VOLUME:/backups" \
  "$IMAGE" > /dev/null 2> "$WORK/run.err" || { cat "$WORK/run.err"; fail "podman run"; }
CONTAINER_STARTED=1
BASE_URL="http://127.0.0.1:$HTTP_PORT"
AUTH=(-H "Authorization: Bearer $API_TOKEN")

deadline=$((SECONDS + 90))
until curl -fsS -o "$WORK/health.json" "$BASE_URL/health" 2>/dev/null; do
  [ "$(podman inspect "$CONTAINER" --format '{{.State.Running}}')" = true ] || fail "the container exited: $(podman inspect "$CONTAINER" --format '{{.State.ExitCode}}')"
  [ $SECONDS -lt $deadline ] || fail "/health not 200 within 90 s: $(curl -sS "$BASE_URL/health" 2>&1 | head -c 400)"
  sleep 1
done
info "/health: $(head -c 300 "$WORK/health.json")"
pass "/health is 200"
# The image's own HEALTHCHECK command, run once inside the container (works without systemd timers).
podman healthcheck run "$CONTAINER" > "$WORK/hc.log" 2>&1 || { cat "$WORK/hc.log"; fail "HEALTHCHECK command reports unhealthy"; }
pass "the image's HEALTHCHECK (curl -fsS /health) passes inside the container"

step "non-root"
SERVICE_PID="$(podman exec "$CONTAINER" sh -c 'for p in /proc/[0-9]*; do
  case "$(tr "\0" " " < "$p/cmdline" 2>/dev/null)" in node\ /usr/local/bin/db-backup-service*) echo "${p#/proc/}"; break ;; esac; done')"
[ -n "$SERVICE_PID" ] || fail "service process not found in the container"
SERVICE_UID="$(podman exec "$CONTAINER" awk '/^Uid:/ { print $2 }' "/proc/$SERVICE_PID/status")"
PID1="$(podman exec "$CONTAINER" sh -c 'tr "\0" " " < /proc/1/cmdline')"
info "PID 1: $PID1; service pid $SERVICE_PID runs as uid $SERVICE_UID"
[ "$SERVICE_UID" != 0 ] || fail "the service runs as root"
[ "$SERVICE_UID" = 10001 ] || fail "the service runs as uid $SERVICE_UID, expected 10001"
case "$PID1" in *tini*) ;; *) fail "PID 1 is not tini: $PID1" ;; esac
pass "service process runs as uid $SERVICE_UID (non-root) under tini as PID 1"
SERVICE_ARENAS="$(podman exec "$CONTAINER" sh -c "tr '\\0' '\\n' < /proc/$SERVICE_PID/environ" | sed -n 's/^MALLOC_ARENA_MAX=//p')"
[ "$SERVICE_ARENAS" = 2 ] || fail "the service runs without MALLOC_ARENA_MAX=2 (got '${SERVICE_ARENAS}')"
pass "service process has MALLOC_ARENA_MAX=2 (glibc arenas bounded)"

# --------------------------------------------------------------------------------------------------
step "backup through the API"
http_code="$(curl -sS -o "$WORK/trigger.json" -w '%{http_code}' -X POST "${AUTH[@]}" "$BASE_URL/api/v1/backups")"
case "$http_code" in
  202) ;;
  409) info "a scheduled backup is already running; following that job" ;;
  *) fail "POST /api/v1/backups: HTTP $http_code $(head -c 300 "$WORK/trigger.json")" ;;
esac
JOB_ID="$(jq -r '.jobId' "$WORK/trigger.json")"
[ -n "$JOB_ID" ] && [ "$JOB_ID" != null ] || fail "no jobId in $(cat "$WORK/trigger.json")"
deadline=$((SECONDS + 180))
while :; do
  curl -fsS "${AUTH[@]}" -o "$WORK/job.json" "$BASE_URL/api/v1/backups/jobs/$JOB_ID" || fail "GET job $JOB_ID"
  status="$(jq -r .status "$WORK/job.json")"
  case "$status" in
    succeeded) break ;;
    failed) fail "backup job failed: $(jq -r .errorMessage "$WORK/job.json")" ;;
  esac
  [ $SECONDS -lt $deadline ] || fail "backup job still $status after 180 s"
  sleep 1
done
BACKUP_ID="$(jq -r .backupId "$WORK/job.json")"
info "job $JOB_ID succeeded in $(jq -r .durationMs "$WORK/job.json") ms: $BACKUP_ID"
curl -fsS "${AUTH[@]}" -o "$WORK/list.json" "$BASE_URL/api/v1/backups" || fail "GET /api/v1/backups"
jq -e --arg id "$BACKUP_ID" 'map(.id) | index($id) != null' "$WORK/list.json" > /dev/null || fail "$BACKUP_ID not listed: $(head -c 300 "$WORK/list.json")"
pass "backup $BACKUP_ID taken through the API and listed"

step "download"
curl -fsS "${AUTH[@]}" -o "$WORK/latest.json" "$BASE_URL/api/v1/backups/latest" || fail "GET latest"
curl -fsS "${AUTH[@]}" -o "$WORK/download.sql.gz" "$BASE_URL/api/v1/backups/latest/download" || fail "GET latest/download"
expected_sha="$(jq -r .sha256 "$WORK/latest.json")"
actual_sha="$(sha256sum "$WORK/download.sql.gz" | awk '{print $1}')"
[ "$expected_sha" = "$actual_sha" ] || fail "downloaded SHA-256 $actual_sha != listed $expected_sha"
gzip -t "$WORK/download.sql.gz" || fail "download is not valid gzip"
gzip -dc "$WORK/download.sql.gz" | grep -q 'image-test-marker' || fail "download lacks the sample data"
gzip -dc "$WORK/download.sql.gz" | grep -q -- '-- PostgreSQL database dump complete' || fail "download lacks pg_dump's completion trailer"
info "$(stat -c %s "$WORK/download.sql.gz") bytes, sha256 $actual_sha"
pass "download matches its SHA-256, gunzips, holds the data and pg_dump's trailer"

# --------------------------------------------------------------------------------------------------
step "db-restore inside the container (podman exec)"
psql_app <<'SQL'
DELETE FROM items WHERE id % 2 = 0;
UPDATE items SET name = 'changed after the backup' WHERE id = 1;
CREATE TABLE not_in_backup (x int);
SQL
changed="$(psql_app -At -c "SELECT count(*) FROM items")"
info "after changing data: items count $changed, extra table not_in_backup"
podman exec "$CONTAINER" db-restore > "$WORK/list.txt" 2>&1 || { cat "$WORK/list.txt"; fail "db-restore (list)"; }
grep -q "$BACKUP_ID" "$WORK/list.txt" || { cat "$WORK/list.txt"; fail "db-restore list does not show $BACKUP_ID"; }
info "db-restore lists: $(grep -m1 "$BACKUP_ID" "$WORK/list.txt")"
t=$SECONDS
if ! podman exec "$CONTAINER" db-restore --force latest > "$WORK/restore.log" 2>&1; then
  cat "$WORK/restore.log"; fail "db-restore --force latest exited non-zero"
fi
sed 's/^/    | /' "$WORK/restore.log" | tail -n 15
RESTORED_FINGERPRINT="$(psql_app -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
[ "$RESTORED_FINGERPRINT" = "$SOURCE_FINGERPRINT" ] || fail "restored items $RESTORED_FINGERPRINT != backed-up $SOURCE_FINGERPRINT"
[ "$(psql_app -At -c "SELECT to_regclass('public.not_in_backup') IS NULL")" = t ] || fail "not_in_backup survived the restore"
[ "$(psql_app -At -c "SELECT n FROM item_count")" = 5001 ] || fail "view item_count missing or wrong after restore"
info "restored in $((SECONDS - t)) s: items $RESTORED_FINGERPRINT"
pass "db-restore --force latest inside the container restored the backed-up data (changes after the backup are gone)"

# --------------------------------------------------------------------------------------------------
step "SIGTERM"
t=$SECONDS
podman stop -t 30 "$CONTAINER" > /dev/null 2> "$WORK/stop.err" || { cat "$WORK/stop.err"; fail "podman stop"; }
stop_s=$((SECONDS - t))
exit_code="$(podman inspect "$CONTAINER" --format '{{.State.ExitCode}}')"
podman logs "$CONTAINER" > "$WORK/container.log" 2>&1
info "stopped in ${stop_s} s, exit code $exit_code; last log line: $(tail -n 1 "$WORK/container.log" | head -c 200)"
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM, expected 0"
grep -Eq '"message":"stopped"|[[:space:]]stopped$' "$WORK/container.log" || fail "no 'stopped' log line after SIGTERM"
[ "$stop_s" -lt 30 ] || fail "stop took ${stop_s} s: SIGTERM was not handled (podman had to SIGKILL)"
pass "SIGTERM: clean exit (code 0, 'stopped' logged) in ${stop_s} s"
if grep -F -q -e "$DB_PASSWORD" -e "$API_TOKEN" "$WORK/container.log" "$WORK/restore.log"; then
  fail "a secret appears in the container log or db-restore output"
fi
pass "no secret in the container log or db-restore output"

echo
echo "image: $IMAGE (${IMAGE_SIZE_MB} MB, base $BASE_IMAGE_USED, PostgreSQL client $PG_CLIENT_SOURCE $PG_MAJOR)"
if [ "$CLEAN_ALL" = 1 ]; then echo "removing the image and the base image (--clean-all)"; else
  echo "kept: $IMAGE and the cached base image (remove both with --clean-all)"; fi
