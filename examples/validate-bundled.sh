#!/usr/bin/env bash
# Validation of a trained model on the held-out data of examples/train-bundled.yaml, with all
# bands, RGB only and RGB+NIR (sensor independence), and the trivial brightness baseline
# (samples the config excludes are not scored).
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
# On Cloud N's val chips as they come, the 4 whose labels failed review included (see the
# config's `exclude`): how much the figure depends on the labels
oncloudn="${CLOUDMASK_SHARED:-../shared}/data/labelled/sentinel2-oncloudn"
cloudmask evaluate --data "$oncloudn" --kind oncloudn --split val --weights "$weights" \
  --device cpu --json "$out/unreviewed-all.json" -q
cloudmask evaluate --data "$oncloudn" --kind oncloudn --split val --baseline 0.3 \
  --json "$out/unreviewed_baseline-all.json" -q
echo "reports in $out"
