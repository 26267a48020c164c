#!/usr/bin/env bash
# Builds a Weir container image (broker or operator) without a Docker daemon or a registry:
# the image is FROM scratch, and this script stages its context — the binary, exactly the
# shared libraries `ldd` says it needs, the non-root user (65532) — then runs
# `buildah build --storage-driver vfs`.
#
# Usage: scripts/build-image.sh [COMPONENT] [options]
#   COMPONENT           broker (default) or operator: builds weir-COMPONENT from
#                       COMPONENT/Dockerfile, with COMPONENT/image/ as extra files
#   --binary PATH       use this binary instead of `cargo build --release` (e.g. a debug build)
#   --debug             cargo build without --release
#   --no-strip          keep the binary's debug info (by default the image's copy loses it
#                       with `objcopy --strip-debug`; symbols stay for backtraces)
#   --tag TAG           image name (default weir-COMPONENT:VERSION, VERSION from Cargo.toml)
#   --root DIR          buildah storage root    (default: buildah's, /var/lib/containers/storage)
#   --runroot DIR       buildah storage runroot (default: buildah's)
#   --stage-only DIR    only stage the build context into DIR (then e.g.
#                       `docker build -f COMPONENT/Dockerfile DIR`)
#
# The image stays in buildah's storage; export it with e.g.
#   buildah push weir-broker:0.1.0 docker-archive:weir-broker.tar:weir-broker:0.1.0
#       (then `docker load -i`, `kind load image-archive`, `k3s ctr images import`)
#   buildah push weir-broker:0.1.0 docker://registry.example.com/weir-broker:0.1.0
set -euo pipefail
cd "$(dirname "$0")/.."

component=broker
binary=
profile=release
tag=
root=
runroot=
stage_only=
strip=yes
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --debug) profile=debug; shift ;;
    --no-strip) strip=no; shift ;;
    --tag) tag=$2; shift 2 ;;
    --root) root=$2; shift 2 ;;
    --runroot) runroot=$2; shift 2 ;;
    --stage-only) stage_only=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-image.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) component=$1; shift ;;
  esac
done

name="weir-$component"
dockerfile="$component/Dockerfile"
if [ ! -f "$dockerfile" ]; then
  echo "build-image.sh: no $dockerfile (components: broker, operator)" >&2
  exit 2
fi
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
tag=${tag:-$name:$version}

if [ -z "$binary" ]; then
  flags=(--locked -p "$name" --bin "$name")
  [ "$profile" = release ] && flags+=(--release)
  echo "== cargo build ${flags[*]}" >&2
  cargo build --quiet "${flags[@]}"
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  binary="$target_dir/$profile/$name"
fi
if [ ! -x "$binary" ]; then
  echo "build-image.sh: $binary is not an executable" >&2
  exit 1
fi

# Stage the context.
if [ -n "$stage_only" ]; then
  context=$stage_only
  mkdir -p "$context"
  rm -rf "${context:?}/rootfs" "$context/files" "$context/data"
else
  context=$(mktemp -d "${TMPDIR:-/tmp}/weir-image.XXXXXX")
  trap 'rm -rf "$context"' EXIT
fi
rootfs="$context/rootfs"
# var/lib is staged so the Dockerfile's `COPY --chown` of the data directory creates (and
# hands to 65532) only var/lib/weir, not its parents.
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/var/lib" "$context/files" "$context/data"
install -m 0755 "$binary" "$rootfs/usr/local/bin/$name"
# A debug build is mostly DWARF (the broker: 200 MB, 40 MB without).
if [ "$strip" = yes ] && command -v objcopy >/dev/null 2>&1; then
  objcopy --strip-debug "$rootfs/usr/local/bin/$name"
fi

# The loader and libraries, each at the path ldd resolved (the loader's own default search
# path covers them, so no ld.so.cache is needed). `linux-vdso` is the kernel's.
ldd_out=$(ldd "$binary" 2>&1) || ldd_out=""   # a static binary: "not a dynamic executable"
while read -r line; do
  case "$line" in
    *"not found"*) echo "build-image.sh: $binary: $line" >&2; exit 1 ;;
    *" => /"*) lib=${line#* => }; lib=${lib%% (*} ;;
    /*) lib=${line%% (*} ;;
    *) continue ;;
  esac
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
  chmod 0755 "$rootfs$lib"
done <<<"$ldd_out"

# The non-root user, like distroless's nonroot. glibc >= 2.34 has the files and dns NSS
# modules built into libc, so nsswitch.conf needs no libnss_* files. Kubernetes (and docker)
# mount their own /etc/hosts and /etc/resolv.conf over these; ours serve plain chroots.
# localhost is IPv4 only, so binding "localhost" means one well-known address.
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/var/lib/weir:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
cat >"$rootfs/etc/hosts" <<'EOF'
127.0.0.1 localhost
::1 ip6-localhost ip6-loopback
EOF
chmod 0644 "$rootfs"/etc/*
if [ -d "$component/image" ]; then
  cp -R "$component/image/." "$context/files/"
fi

if [ -n "$stage_only" ]; then
  echo "== staged the $name context in $context; build it with:" >&2
  echo "   docker build -f $dockerfile --build-arg VERSION=$version --build-arg REVISION=$revision -t $tag $context" >&2
  exit 0
fi

if ! command -v buildah >/dev/null 2>&1; then
  echo "build-image.sh: buildah is missing; run scripts/install-tools.sh (apt-get install -y buildah)" >&2
  exit 1
fi
storage=(--storage-driver vfs)
[ -n "$root" ] && storage+=(--root "$root")
[ -n "$runroot" ] && storage+=(--runroot "$runroot")
echo "== buildah build $tag" >&2
# chroot isolation: no RUN steps need a user namespace, and root without one (CI
# containers) cannot create it.
buildah "${storage[@]}" build --quiet --isolation chroot \
  -f "$dockerfile" \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  -t "$tag" "$context" >/dev/null
echo "$tag"
