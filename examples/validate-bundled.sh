#!/usr/bin/env bash
# Validation of a trained model on the held-out data of examples/train-bundled.yaml, with all
# bands, RGB only and RGB+NIR (sensor independence), and the trivial brightness baseline.
#   examples/validate-bundled.sh runs/bundled/best.safetensors runs/bundled/validation
set -euo pipefail
weights=${1:?weights}
out=${2:?output folder}
cd "$(dirname "$0")/.."
mkdir -p "$out"
for bands in all RGBN RGB; do
  cloudmask evaluate --data examples/train-bundled.yaml --weights "$weights" --bands "$bands" \
    --device cpu --json "$out/model-$bands.json" -q
  cloudmask evaluate --data examples/train-bundled.yaml --baseline 0.3 --bands "$bands" \
    --json "$out/baseline-$bands.json" -q
done
echo "reports in $out"
