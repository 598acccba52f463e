#!/usr/bin/env bash
# Installs what flow-mlip's tests need: `uv` on PATH and a CPython 3.x interpreter with venv
# support (uv builds environments against the machine's Python; it never downloads one here).
# Idempotent; runs as root on a fresh Debian 12 machine.
set -euo pipefail

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if ((${#need_apt[@]})); then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi

if command -v uv >/dev/null 2>&1; then
    echo "uv already present: $(uv --version)"
    exit 0
fi

# Debian 12's system Python is "externally managed" (PEP 668): pip refuses a plain install
# there, so allow it explicitly for this one tool.
python3 -m pip install -q --break-system-packages uv 2>/dev/null \
    || python3 -m pip install -q uv
hash -r
if ! command -v uv >/dev/null 2>&1; then
    # pip may have put the script where PATH does not look (e.g. ~/.local/bin); link it.
    uv_bin="$(python3 -c 'import sysconfig,os; print(os.path.join(sysconfig.get_path("scripts"), "uv"))')"
    [ -x "$uv_bin" ] || uv_bin="$HOME/.local/bin/uv"
    ln -sf "$uv_bin" /usr/local/bin/uv
fi
echo "uv installed: $(uv --version)"
