#!/usr/bin/env bash
# Runs Weir's whole test suite on a fresh machine, installing what it needs.
# Usage: scripts/test.sh            (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (install Rust stable with rustup)" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== python client packages (for broker/tests/python_clients.rs)"
python3 -m pip install --quiet --disable-pip-version-check -r broker/tests/python/requirements.txt

echo "== tools for the image and chart tests (buildah, helm, kubernetes-validate)"
scripts/install-tools.sh

echo "== tests"
cargo nextest run --workspace --locked --profile ci
