#!/usr/bin/env bash
# The checks and benchmark rows that need a GPU, in one go (not run by CI: it has none).
#   bash benchmarks/on_gpu.sh OUT     # OUT: a folder for the log, gpu_check.json, results.md
# Needs the project importable (installed, or PYTHONPATH) and ../shared (or CLOUDMASK_SHARED)
# for the benchmark products' real metadata. Each step has its own time limit, most telling
# first; GPU_CHECK_SKIP names gpu_check.py checks to leave out (e.g. "train").
set -uo pipefail
out=${1:?usage: on_gpu.sh OUT}
bench=${BENCH:-/tmp/bench}
mkdir -p "$out" "$bench"
export PYTHONUNBUFFERED=1
step() { local limit=$1; shift; echo "== $*"; timeout "$limit" "$@" 2>&1 | tee -a "$out/log.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/log.txt"
# shellcheck disable=SC2086
step 150 python3 benchmarks/gpu_check.py --out "$out" --skip ${GPU_CHECK_SKIP:-}
step 60 python3 benchmarks/make_product.py landsat8 "$bench"
step 90 python3 benchmarks/run.py "$bench"/LC08_L1TP_* --resolution 30 --device cuda
step 150 python3 benchmarks/make_product.py sentinel2 "$bench"
step 100 python3 benchmarks/run.py "$bench"/S2A_*.SAFE --resolution 20 --device cuda
cp benchmarks/results.md "$out/results.md"
