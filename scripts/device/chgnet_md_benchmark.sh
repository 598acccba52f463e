#!/usr/bin/env bash
# flow md-benchmark with CHGNet on CUDA, for the GPU machine (no network there).
#
# Runs flow-mlip's shipped driver (engine/steps/mlip/python/md_benchmark.py) with the recipe
# environment file recipes/environments/chgnet.py, using the machine's own python3 (which has
# torch+CUDA) plus CHGNet and its pure/small dependencies carried as wheels (torch is not carried).
#
# Prepare on a machine with PyPI access, from the repo root (the folder is git-ignored):
#   mkdir -p .device/wheels && python3 -m pip download --no-deps --only-binary=:all: \
#     --python-version 3.12 --implementation cp --platform manylinux2014_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
#     -d .device/wheels chgnet ase pymatgen pymatgen-core monty orjson palettable ruamel.yaml \
#     ruamel.yaml.clib spglib uncertainties plotly
#   python3 -m pip wheel --no-deps -w .device/wheels 'bibtexparser<2'   # pymatgen-core pins <2; sdist only
#   python3 -m pip wheel --no-deps -w .device/wheels nvidia-ml-py3   # sdist only on PyPI; chgnet imports nvidia_smi
# Run (device tool): command `bash scripts/device/chgnet_md_benchmark.sh`, carry [".device"].
# Dry run on a CPU with a built chgnet env: NO_WHEELS=1 PY=ENV/bin/python DEVICE=cpu CAL_ATOMS=32 \
#   MAIN_ATOMS=32 LARGE_ATOMS=108 MAIN_BUDGET_S=10 bash scripts/device/chgnet_md_benchmark.sh
#
# Budget: a calibration run (~1,000 atoms, 20 steps), then the main run sized from it to take
# about MAIN_BUDGET_S seconds (3 repeats per mode), then a larger cell if time is left.
set -uo pipefail
OUT=${OUT:-/tmp/flow-device-out}
mkdir -p "$OUT"
WHEELS=${WHEELS:-.device/wheels}
MAIN_BUDGET_S=${MAIN_BUDGET_S:-150}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
CAL_ATOMS=${CAL_ATOMS:-1000} MAIN_ATOMS=${MAIN_ATOMS:-1000} LARGE_ATOMS=${LARGE_ATOMS:-4000}
DRIVER=engine/steps/mlip/python/md_benchmark.py
ENVFILE=${ENVFILE:-recipes/environments/chgnet.py}
SUMMARY="$OUT/summary.txt"
started=$(date +%s)

if [ "${NO_WHEELS:-0}" != 1 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$WHEELS"/*.whl || { echo "wheel install failed" | tee "$SUMMARY"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore::SyntaxWarning

{
    echo "== machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    nproc
    "$PY" -c "import sys, importlib; v = {m: getattr(importlib.import_module(m), '__version__', '?') for m in ('torch', 'chgnet', 'ase', 'numpy', 'pymatgen.core')}; import torch; print('python', sys.version.split()[0], v, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
} 2>&1 | tee "$SUMMARY"

run() { # name atoms steps repeats limit_s
    local name=$1 atoms=$2 steps=$3 repeats=$4 limit=$5
    echo "== $name: atoms~$atoms steps=$steps repeats=$repeats (limit ${limit}s)" | tee -a "$SUMMARY"
    timeout "$limit" "$PY" "$DRIVER" --environment-file "$ENVFILE" --model "" --device "$DEVICE" \
        --element Cu --atoms "$atoms" --steps "$steps" --repeats "$repeats" \
        > "$OUT/$name.stdout" 2> "$OUT/$name.log"
    local rc=$?
    echo "rc=$rc wall=$(( $(date +%s) - started ))s" | tee -a "$SUMMARY"
    tail -n 1 "$OUT/$name.stdout" | tee -a "$SUMMARY"
    [ $rc -eq 0 ] || tail -n 30 "$OUT/$name.log" | tee -a "$SUMMARY"
    return $rc
}

per_step() { # seconds per MD step (IPC median) from a result file
    "$PY" -c "import json,sys; r=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); print(max(r['ipc_median_s'], r['direct_median_s'])/r['steps'])" "$1"
}

run calibrate "$CAL_ATOMS" 20 1 150 || exit 1
step_s=$(per_step "$OUT/calibrate.stdout")
# 3 repeats x 2 modes in MAIN_BUDGET_S seconds, between 50 and 5,000 steps.
steps=$("$PY" -c "print(max(50, min(5000, int($MAIN_BUDGET_S / (6 * $step_s)))))")
echo "calibration: ${step_s}s per step -> $steps steps" | tee -a "$SUMMARY"
run main "$MAIN_ATOMS" "$steps" 3 $(( MAIN_BUDGET_S * 2 + 60 ))

elapsed=$(( $(date +%s) - started ))
if [ "$elapsed" -lt 330 ]; then
    big_steps=$("$PY" -c "print(max(20, min(1000, int(80 / (6 * 4 * $step_s)))))")
    run large "$LARGE_ATOMS" "$big_steps" 3 $(( 450 - elapsed ))
fi
echo "== done in $(( $(date +%s) - started ))s" | tee -a "$SUMMARY"
