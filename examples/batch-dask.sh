#!/usr/bin/env bash
# Mask an archive on a Dask distributed cluster: each product is one task, each worker process
# loads the model once. Start the cluster first (or use an existing one):
#   dask scheduler --port 8786 &
#   dask worker tcp://HOST:8786 --nworkers 1 --nthreads 1 --resources GPU=1 &   # one per GPU
#   dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1 &                      # CPU nodes
# then:
#   examples/batch-dask.sh tcp://HOST:8786 "/archive/S2/*.zip" /archive/masks
# Needs `pip install "cloudmask[dask]"` on the client and the workers, and the products and the
# output folder on a file system every worker sees.
set -euo pipefail
scheduler=${1:?scheduler address, e.g. tcp://host:8786}
pattern=${2:?glob of products (quoted)}
out=${3:?output folder (shared file system)}
device=${DEVICE:-auto}     # DEVICE=cuda asks for one GPU resource per task
cloudmask batch "$pattern" --out-dir "$out" --scheduler "$scheduler" --device "$device" \
  --report "$out/report.json"
