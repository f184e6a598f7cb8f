#!/usr/bin/env bash
# Run-to-run spread of the bundled recipe: the three stages again with other seeds (stage 2
# gets seed + 1 and stage 3 seed + 2, as the configs' own seeds), each validated as the bundled
# model is, then one line of held-out cloud F1 per seed. About 45 min per seed on a 2-core CPU.
#   examples/seed-spread.sh runs/spread 31 41
set -euo pipefail
out=${1:?output folder}
shift
cd "$(dirname "$0")/.."
for seed in "${@:?seeds}"; do
  run="$out/seed$seed"
  cloudmask train examples/train-bundled.yaml --seed "$seed" --out "$run/stage1" -q
  cloudmask train examples/train-bundled-stage2.yaml --seed $((seed + 1)) \
    --init "$run/stage1/best.safetensors" --out "$run/stage2" -q
  cloudmask publish "$run/stage2/best.safetensors" \
    --config examples/train-bundled-stage2.yaml --init-config examples/train-bundled.yaml \
    --target-dir "$run/stage2/fp16" >/dev/null
  cloudmask train examples/train-bundled-stage3.yaml --seed $((seed + 2)) \
    --init "$run/stage2/fp16/cloudmask-b0.safetensors" --out "$run/stage3" -q
  examples/validate-bundled.sh "$run/stage3/best.safetensors" "$run/validation"
done
python - "$out" "$@" <<'PY'
import json, sys
from pathlib import Path
out, seeds = Path(sys.argv[1]), sys.argv[2:]
for seed in seeds:
    for bands in ("all", "RGBN", "RGB"):
        report = json.loads((out / f"seed{seed}" / "validation" / f"model-{bands}.json").read_text())
        f1 = {k: round(100 * v["cloud"]["f1"], 1) for k, v in report["datasets"].items()}
        inv = {k: round(100 * v["invalid"]["f1"], 1) for k, v in report["datasets"].items()}
        print(f"seed {seed} {bands}: cloud F1 {f1} invalid F1 {inv}")
PY
