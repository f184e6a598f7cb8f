#!/usr/bin/env bash
# Mask every Sentinel-2 SAFE (folder or .zip) under a folder, two products at a time.
# Re-running skips what is done; a failed product is listed in the report and the rest go on.
#   examples/batch-safe-folder.sh /data/S2 /data/S2-masks
set -euo pipefail
src=${1:?folder of .SAFE or .zip products}
dst=${2:?output folder}
shopt -s nullglob
products=("$src"/*.SAFE "$src"/*.zip)
(( ${#products[@]} )) || { echo "no products in $src" >&2; exit 2; }
cloudmask batch "${products[@]}" --out-dir "$dst" --workers 2 --resolution 20 \
  --style 7class --report "$dst/report.csv"
