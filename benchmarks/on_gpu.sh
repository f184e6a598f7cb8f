#!/usr/bin/env bash
# The checks and benchmark rows that need a GPU, in one go (not run by CI: it has none).
#   bash benchmarks/on_gpu.sh OUT     # OUT: a folder for the logs, gpu_check.json, results.md
# Needs the project importable (installed, or PYTHONPATH) and ../shared (or CLOUDMASK_SHARED)
# for the benchmark products' real metadata. Each step has its own time limit, most telling first.
set -uo pipefail
out=${1:?usage: on_gpu.sh OUT}
bench=${BENCH:-/tmp/bench}
mkdir -p "$out" "$bench"
export PYTHONUNBUFFERED=1
step() { local limit=$1; shift; echo "== $*"; timeout "$limit" "$@" 2>&1 | tee -a "$out/log.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/log.txt"
step 200 python3 benchmarks/gpu_check.py --out "$out"
step 60 python3 benchmarks/make_product.py landsat8 "$bench"
for threads in 2 8; do
  step 90 python3 benchmarks/run.py "$bench"/LC08_L1TP_* --resolution 30 --device cuda --read-threads $threads
done
step 150 python3 benchmarks/make_product.py sentinel2 "$bench"
for threads in 8 2; do
  step 100 python3 benchmarks/run.py "$bench"/S2A_*.SAFE --resolution 20 --device cuda --read-threads $threads
done
cp benchmarks/results.md "$out/results.md"
