#!/usr/bin/env bash
# Builds a local stand-in for the official Node 24 slim image (Debian trixie + Node.js 24 + npm) for
# machines that cannot pull public base images: a `debootstrap --variant=minbase` root filesystem from
# the Debian mirror this machine's apt already uses (for a suite the apt configuration lacks, e.g.
# trixie on a bookworm machine: the same mirrors as its own release's sources), plus the Node 24
# binary the project's root devDependency `node` installed (node_modules/node/bin/node) and npm
# packed from the npm registry.
# Imported with `podman import`; nothing is pulled from an image registry.
#
#   bash docker/build-local-base.sh [IMAGE]      # prints the image name on the last line of stdout
#
#   SUITE=bookworm bash docker/build-local-base.sh   # another Debian suite (default trixie)
#
# Skips the build when IMAGE already exists (FORCE=1 rebuilds). Needs root, podman, debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE="${SUITE:-trixie}"
NPM_SPEC="${NPM_SPEC:-npm@11}"
NODE_BIN="${NODE_BIN:-node_modules/node/bin/node}"

log() { echo "[local-base] $*" >&2; }
die() { echo "[local-base] ERROR: $*" >&2; exit 1; }

[ -x "$NODE_BIN" ] || die "$NODE_BIN not found: run 'bash scripts/setup.sh' (npm ci) first"
NODE_VERSION="$("$NODE_BIN" --version)"
case "$NODE_VERSION" in v24.*) ;; *) die "$NODE_BIN is $NODE_VERSION, expected Node 24" ;; esac
ARCH="$(dpkg --print-architecture)"
IMAGE="${1:-localhost/db-backup-service-base:node${NODE_VERSION#v}-${SUITE}-${ARCH}}"

if [ "${FORCE:-0}" != 1 ] && podman image exists "$IMAGE"; then
  log "reusing cached $IMAGE"
  echo "$IMAGE"
  exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"

# The Debian mirrors this machine's apt is configured with (any sources format), read at run time:
# "<repo-uri> <suite> <component>" for every configured source (from the index URIs apt would fetch,
# so sources whose lists were never downloaded count too; else from the downloaded index targets).
mapfile -t CONFIGURED < <( { apt-get --print-uris update 2>/dev/null \
    | sed -n "s#^'\(.*\)/dists/\([^/]*\)/\([^/]*\)/binary-${ARCH}/Packages[^']*'.*#\1 \2 \3#p"
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' 2>/dev/null; } \
  | awk 'NF == 3 { sub("/$", "", $1); print }' | sort -u)
[ ${#CONFIGURED[@]} -gt 0 ] || die "no Debian source in this machine's apt configuration (run apt-get update?)"
# The suite and its -updates / -security companions, as configured.
mapfile -t SOURCES < <(printf '%s\n' "${CONFIGURED[@]}" \
  | awk -v s="$SUITE" '$2 == s || $2 == s"-updates" || $2 == s"-security"' | sort -u)
if ! printf '%s\n' "${SOURCES[@]}" | awk -v s="$SUITE" '$2 == s && $3 == "main" { f = 1 } END { exit !f }'; then
  # Not configured here (e.g. trixie on a bookworm machine): the same mirrors as this machine's own
  # release, other suite. Each "<uri> <release>[-updates|-security] <component>" becomes
  # "<uri> <SUITE>[-updates|-security] <component>"; sid/unstable have no -updates or -security.
  HOST_SUITE="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
  if ! printf '%s\n' "${CONFIGURED[@]}" | awk -v s="$HOST_SUITE" '$2 == s && $3 == "main" { f = 1 } END { exit !f }'; then
    HOST_SUITE="$(printf '%s\n' "${CONFIGURED[@]}" | awk '$2 !~ /-/ && $3 == "main" { print $2; exit }')"
  fi
  [ -n "$HOST_SUITE" ] || die "no '$SUITE main' source and no Debian '<release> main' source to derive it from in this machine's apt configuration"
  mapfile -t SOURCES < <(printf '%s\n' "${CONFIGURED[@]}" | awk -v h="$HOST_SUITE" -v s="$SUITE" '
    $2 == h { print $1, s, $3 }
    $2 == h"-updates" || $2 == h"-security" { if (s != "sid" && s != "unstable") { sub("^" h, s, $2); print $1, $2, $3 } }' | sort -u)
  log "no '$SUITE' source in the apt configuration: using the mirrors of its '$HOST_SUITE' sources"
  # A derived companion suite the mirror does not serve would break apt-get update in the image.
  if command -v curl >/dev/null; then
    kept=()
    for line in "${SOURCES[@]}"; do
      read -r uri suite _ <<<"$line"
      case "$uri" in
        http://*|https://*)
          if [ "$suite" != "$SUITE" ] && ! curl -fsSI -m 20 -o /dev/null "$uri/dists/$suite/InRelease" 2>/dev/null; then
            log "skipping $uri $suite: the mirror does not serve it"; continue
          fi ;;
      esac
      kept+=("$line")
    done
    SOURCES=("${kept[@]}")
  fi
fi
MIRROR="$(printf '%s\n' "${SOURCES[@]}" | awk -v s="$SUITE" '$2 == s && $3 == "main" { print $1; exit }')"
[ -n "$MIRROR" ] || die "no Debian '$SUITE main' source in this machine's apt configuration (run apt-get update?)"
log "Debian mirror: $MIRROR; apt sources of the base: $(printf '%s, ' "${SOURCES[@]}" | sed 's/, $//')"

WORK="$(mktemp -d /var/tmp/db-backup-service-base.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

include="libstdc++6"   # Node's only library beyond libc/libgcc
https=0
case " ${SOURCES[*]}" in *" https://"*) https=1; include="$include,ca-certificates" ;; esac

log "debootstrap --variant=minbase $SUITE (a few minutes) ..."
start=$SECONDS
debootstrap --variant=minbase --include="$include" "$SUITE" "$ROOTFS" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
  || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
log "debootstrap done in $((SECONDS - start)) s"

# apt sources: the same mirrors as this machine.
rm -f "$ROOTFS/etc/apt/sources.list"
: > "$ROOTFS/etc/apt/sources.list.d/debian.list"
for line in "${SOURCES[@]}"; do
  read -r uri suite component <<<"$line"
  echo "deb $uri $suite $component" >> "$ROOTFS/etc/apt/sources.list.d/debian.list"
done
# An https mirror behind a TLS-intercepting proxy needs this machine's locally added CA certificates.
if [ "$https" = 1 ] && [ -d /usr/local/share/ca-certificates ]; then
  cp -R /usr/local/share/ca-certificates/. "$ROOTFS/usr/local/share/ca-certificates/"
  chroot "$ROOTFS" update-ca-certificates >/dev/null
fi
# Like Debian's slim images: no documentation, manual pages or translations from later installs.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
rm -rf "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* \
       "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/var/log/* "$ROOTFS"/tmp/*
find "$ROOTFS/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true

# Node 24 and npm, laid out like the official image (/usr/local/bin/{node,npm,npx}).
log "adding Node $NODE_VERSION and $NPM_SPEC"
install -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
( cd "$WORK" && npm pack "$NPM_SPEC" --loglevel=error >/dev/null )
NPM_TGZ="$(ls "$WORK"/npm-*.tgz)"
mkdir -p "$ROOTFS/usr/local/lib/node_modules/npm"
tar -xzf "$NPM_TGZ" -C "$ROOTFS/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
chroot "$ROOTFS" /usr/local/bin/node --version >/dev/null || die "Node does not run in the new root filesystem"

log "importing as $IMAGE"
tar -C "$ROOTFS" -c . | podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
  --change 'CMD ["node"]' \
  - "$IMAGE" >/dev/null
podman run --rm --network=none "$IMAGE" sh -c 'echo "node $(node --version), npm $(npm --version)"' >&2 \
  || { podman rmi -f "$IMAGE" >/dev/null 2>&1; die "the imported $IMAGE does not run (removed it again)"; }
echo "$IMAGE"
