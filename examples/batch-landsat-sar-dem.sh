#!/usr/bin/env bash
# Mask a list of Landsat tars, each with the Sentinel-1 raster closest in time (within
# MAX_DAYS) whose footprint overlaps it, and one DEM mosaic for all.
#   examples/batch-landsat-sar-dem.sh landsat-list.txt /data/S1 /data/dem.vrt masks/
# S1 files are named with their date (e.g. S1A_IW_GRDH_..._20220311T..._vv_vh_db.tif), one
# GeoTIFF per acquisition with VV and VH bands described "VV"/"VH" (README: Sentinel-1 and DEM).
set -euo pipefail
list=${1:?text file with one Landsat .tar per line}
s1dir=${2:?folder of Sentinel-1 GeoTIFFs}
dem=${3:?DEM raster (any CRS, e.g. a VRT mosaic)}
out=${4:?output folder}
MAX_DAYS=${MAX_DAYS:-6}
mkdir -p "$out"
status=0
while read -r product; do
  [[ -z "$product" || "$product" == \#* ]] && continue
  name=$(basename "$product" .tar)
  [[ -f "$out/$name.tif.json" ]] && { echo "done    $name"; continue; }
  date=$(echo "$name" | cut -d_ -f4)                     # LC08_L1TP_PPPRRR_YYYYMMDD_...
  bounds=$(cloudmask info "$product" --json | python3 -c \
    'import json,sys; g=json.load(sys.stdin)["grid"]; print(g["crs"], *g["bounds"])')
  best=""; best_days=$((MAX_DAYS + 1))
  for s1 in "$s1dir"/*.tif; do
    s1date=$(basename "$s1" | grep -oE '20[0-9]{6}' | head -1) || continue
    days=$(( ( $(date -d "$s1date" +%s) - $(date -d "$date" +%s) ) / 86400 ))
    days=${days#-}
    (( days < best_days )) || continue
    # footprint: the S1 bounds, reprojected, must intersect the product's
    if python3 - "$s1" $bounds <<'PY'
import sys
import rasterio
from rasterio.warp import transform_bounds
path, crs, *b = sys.argv[1:]
with rasterio.open(path) as ds:
    l, bo, r, t = transform_bounds(ds.crs, crs, *ds.bounds)
L, B, R, T = map(float, b)
sys.exit(0 if (l < R and r > L and bo < T and t > B) else 1)
PY
    then best=$s1; best_days=$days; fi
  done
  sar=(); [[ -n "$best" ]] && sar=(--sar "$best")
  echo "run     $name ${best:+with $(basename "$best") ($best_days d)}"
  cloudmask run "$product" -o "$out/$name.tif" "${sar[@]}" --dem "$dem" --overwrite -q || status=1
done < "$list"
exit $status
