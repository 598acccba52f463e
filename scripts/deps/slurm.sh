#!/usr/bin/env bash
# Installs what the Slurm executor's tests need: Debian's slurm-wlm (slurmctld, slurmd,
# sbatch, squeue, scontrol, scancel, sacct), slurmdbd with MariaDB (so sacct answers as on
# real clusters), munge, and jq (the tests' stand-in for
# `flow task run-manifest` reads the manifest with it). Packages only: starting the daemons
# is scripts/slurm-dev.sh's job. Idempotent; runs as root on Debian 12.
set -euo pipefail

missing=()
for program in slurmctld slurmd slurmdbd sbatch squeue scontrol scancel sacct munged mariadbd jq; do
    if ! command -v "$program" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$program" ]; then
        missing+=("$program")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show slurm-wlm >/dev/null 2>&1; then
    apt-get update -q
fi
if ! apt-get install -y -q --no-install-recommends slurm-wlm slurm-client slurmdbd munge mariadb-server jq; then
    # Stale package lists: refresh once and try again.
    apt-get update -q
    apt-get install -y -q --no-install-recommends slurm-wlm slurm-client slurmdbd munge mariadb-server jq
fi
