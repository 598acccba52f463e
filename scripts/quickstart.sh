#!/usr/bin/env bash
# The main job (README.md): build flow and run the quickstart campaign on this machine with
# the local executor and the embedded SQLite state. Installs what it needs when missing
# (libhdf5 to build, uv to make the Python environment). Run it twice: the second run does
# nothing, because everything is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps/hdf5.sh >/dev/null
bash scripts/deps/uv.sh >/dev/null
hash -r
cargo build --release -q -p flow-engine --bin flow
./target/release/flow plan examples/quickstart.yaml
./target/release/flow run examples/quickstart.yaml
./target/release/flow status examples/quickstart.yaml
