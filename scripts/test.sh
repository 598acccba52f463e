#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need (idempotent; as root
# on Debian 12: libhdf5, pw.x + pseudopotentials, uv, Slurm + munge, Kubernetes built from
# source once per machine), starts the one-node Slurm and the one-node Kubernetes, then runs
# every test of the workspace against the real tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not on PATH: install Rust (https://rustup.rs) first" >&2
    exit 1
fi
for deps in scripts/deps/*.sh; do
    echo "== $deps"
    bash "$deps"
done
hash -r
if [ -x scripts/slurm-dev.sh ] || [ -f scripts/slurm-dev.sh ]; then
    echo "== scripts/slurm-dev.sh up"
    bash scripts/slurm-dev.sh up
fi
if [ -f scripts/k8s-dev.sh ]; then
    echo "== scripts/k8s-dev.sh up"
    bash scripts/k8s-dev.sh up
fi
echo "== cargo test --workspace"
cargo test --workspace --no-fail-fast "$@"
