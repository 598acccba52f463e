#!/usr/bin/env bash
# Installs what the HDF5 parts of flow need on a fresh Debian 12 machine (runs as root):
# - libhdf5-dev: the C library the `hdf5` crate links against (its build script fails without it);
# - hdf5-tools: h5dump/h5ls, for looking at catalogs by hand;
# - pkg-config: how the `hdf5` crate's build script finds the library;
# - h5py + numpy: the example generator in examples/mocks/ and the test that runs it.
# Idempotent: apt-get runs only when a package is missing, pip only when an import fails.
set -euo pipefail

apt_packages=(libhdf5-dev hdf5-tools pkg-config)
missing=()
for package in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi

if ! python3 -c 'import h5py, numpy' >/dev/null 2>&1; then
    python3 -m pip install --quiet h5py numpy
fi

python3 -c 'import h5py, numpy; print("h5py", h5py.__version__, "numpy", numpy.__version__, "HDF5", h5py.version.hdf5_version)'
