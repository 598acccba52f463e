#!/usr/bin/env bash
# Installs what the Kubernetes manifest tests need on a fresh Debian 12 machine (runs as root):
# - kubernetes-validate (PyPI): the official Kubernetes JSON schemas (1.25 to 1.37) and a CLI
#   that validates manifests offline, in strict mode; executors/tests/k8s_manifests.rs runs it
#   for 1.29.0 and 1.33.0.
# Debian's own python3 refuses pip installs (PEP 668) and has no Debian package of the tool, so
# there pip gets python3-pip and --break-system-packages; any other python3 first on PATH
# (pyenv, a venv) gets a plain pip install.
# Idempotent: apt-get runs only when a package is missing, pip only when the command is absent.
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

if ! command -v python3 >/dev/null 2>&1; then
    apt_install python3
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
    if [ "$(python3 -c 'import sys; print(sys.prefix)')" = "/usr" ]; then
        apt_install python3-pip
        python3 -m pip install --quiet --break-system-packages kubernetes-validate
    else
        python3 -m pip install --quiet kubernetes-validate
    fi
fi

kubernetes-validate --version | sed 's/^/k8s.sh: kubernetes-validate /'
