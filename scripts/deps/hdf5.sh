#!/usr/bin/env bash
# Installs what the HDF5 parts of flow need on a fresh Debian 12 machine (runs as root):
# - libhdf5-dev: the C library the `hdf5` crate links against (its build script fails
#   without it) and pkg-config, how that build script finds it;
# - hdf5-tools: h5dump/h5ls, for looking at catalogs by hand;
# - h5py + numpy for python3: the example scripts in examples/mocks/ and the tests that run
#   them. Debian's own python3 gets Debian's packages (pip refuses to install into it, PEP
#   668); any other python3 first on PATH (pyenv, a venv) gets them from PyPI with pip.
# Idempotent: apt-get runs only when a package is missing, pip only when an import fails.
set -euo pipefail

apt_install() {
    local missing=()
    local package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
    fi
}

apt_install libhdf5-dev hdf5-tools pkg-config

if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3
fi
if ! python3 -c 'import h5py, numpy' >/dev/null 2>&1; then
    if [ "$(python3 -c 'import sys; print(sys.prefix)')" = "/usr" ]; then
        apt_install python3-h5py python3-numpy
    else
        python3 -m pip install --quiet h5py numpy
    fi
fi

python3 -c 'import h5py, numpy; print("hdf5.sh: h5py", h5py.__version__, "numpy", numpy.__version__, "HDF5", h5py.version.hdf5_version)'
pkg-config --modversion hdf5 | sed 's/^/hdf5.sh: libhdf5-dev /'
