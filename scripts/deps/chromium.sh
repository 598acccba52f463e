#!/usr/bin/env bash
# Installs what the HTML report test (`tests/report.rs`) needs on a fresh Debian 12 machine
# (runs as root): Debian's `chromium` (headless, --dump-dom / --screenshot /
# --enable-logging for console errors) and a font so text renders in screenshots.
# Idempotent: apt-get runs only when a package is missing.
set -euo pipefail

missing=()
for package in chromium fonts-dejavu-core; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}"
fi

chromium --version | sed 's/^/chromium.sh: /'
