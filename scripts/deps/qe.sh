#!/usr/bin/env bash
# Installs what the flow-qe-scf tests need: Quantum ESPRESSO's pw.x (Debian package), the
# pseudopotentials Debian ships with it (/usr/share/espresso/pseudo), an MPI launcher (mpirun
# comes with quantum-espresso's Open MPI dependency) and ASE for the cross-check of the
# output parser. Idempotent; runs as root on Debian 12.
set -euo pipefail

missing=()
command -v pw.x >/dev/null 2>&1 || missing+=(quantum-espresso)
[ -f /usr/share/espresso/pseudo/Si.pz-vbc.UPF ] || missing+=(quantum-espresso-data)
command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
fi

# ASE for whichever python3 is first on PATH (the tests call `python3`).
if ! python3 -c 'import ase.io.espresso' >/dev/null 2>&1; then
    if ! python3 -m pip install -q 'ase>=3.22'; then
        # Debian's own python3 refuses pip installs (PEP 668): use its package.
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update -qq
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends python3-ase
    fi
fi

command -v pw.x
python3 -c 'import ase; print("ase", ase.__version__)'
