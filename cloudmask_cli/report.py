"""The HTML batch report: one self-contained page (inline CSS and JS, thumbnails as ``data:``
URIs or relative links to the quicklooks), a row per product, a summary with a cloud-fraction
histogram on top. It is rewritten atomically after every product, and refreshes itself while
the batch runs, so it can be left open in a browser during a long batch.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudmask_cli.classes import COLOURS

REFRESH_S = 20  # while the batch runs
BINS = 10  # cloud-fraction histogram: 0-10 %, ..., 90-100 %

_CSS = """
body{font:14px/1.35 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}
.summary{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-end;margin-bottom:12px}
.summary dl{display:grid;grid-template-columns:auto auto;gap:2px 12px;margin:0}
.summary dt{color:#666}.summary dd{margin:0;font-weight:600}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th button{font:inherit;font-weight:600;border:0;background:none;cursor:pointer;padding:0}
th button::after{content:" \\2195";color:#aaa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed{background:#fff0f0}tr.pending td{color:#999}
.status{font-weight:600}.failed .status{color:#b00}.done .status{color:#060}
.bar{display:flex;width:160px;height:12px;border:1px solid #999}
.bar span{display:block;height:100%}
.err{color:#b00;font-family:monospace;max-width:420px;word-break:break-word}
img.thumb{max-width:340px;max-height:180px;display:block}
.product{font-family:monospace;word-break:break-all;max-width:360px}
svg text{font-size:10px;fill:#444}
"""

# Sort by a column (numbers as numbers, empty last); the choice lives in the URL's hash so the
# page's own refresh keeps it. data-ready marks that the script ran (checked in the tests).
_JS = """
(function(){
  var body=document.querySelector('#rows');
  function key(tr,k){var v=tr.dataset[k];if(k==='name'||k==='status')return v;
    return v===''?null:parseFloat(v);}
  function sort(k,dir){
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=key(a,k),y=key(b,k);
      if(x===null&&y===null)return 0;if(x===null)return 1;if(y===null)return -1;
      return (x<y?-1:x>y?1:0)*dir;});
    rows.forEach(function(r){body.appendChild(r);});
    document.body.dataset.sort=k+(dir<0?'-desc':'-asc');
  }
  document.querySelectorAll('th button[data-key]').forEach(function(b){
    b.addEventListener('click',function(){
      var k=b.dataset.key,now=document.body.dataset.sort||'';
      var dir=now===k+'-desc'?1:-1;sort(k,dir);
      history.replaceState(null,'','#sort='+k+(dir<0?'-desc':'-asc'));});});
  var m=/sort=(\\w+)-(asc|desc)/.exec(location.hash);
  if(m)sort(m[1],m[2]==='desc'?-1:1);
  document.body.dataset.ready='1';
})();
"""


def _rel(path: str, folder: Path) -> str:
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
    except ValueError:  # another drive (Windows): an absolute file URL
        return Path(os.path.abspath(path)).as_uri()
    return "/".join(rel.split(os.sep))


def _fractions_bar(fractions: dict[str, float]) -> str:
    spans = "".join(
        f'<span style="width:{100 * v:.2f}%;background:rgb{COLOURS.get(k, (128, 128, 128))}" '
        f'title="{html.escape(k)} {v:.1%}"></span>'
        for k, v in fractions.items()
        if v > 0
    )
    text = ", ".join(f"{k.replace('_', ' ')} {v:.1%}" for k, v in fractions.items() if v > 0)
    return f'<div class="bar">{spans}</div><small>{html.escape(text)}</small>'


def _histogram(clouds: Sequence[float]) -> str:
    """An inline SVG histogram of the products' cloud fractions."""
    counts = [0] * BINS
    for c in clouds:
        counts[min(BINS - 1, int(c * BINS))] += 1
    top = max(counts) or 1
    w, h, bw = 300, 100, 30
    bars = []
    for i, n in enumerate(counts):
        bh = round(60 * n / top)
        x = i * bw
        label = f"{i * 100 // BINS}-{(i + 1) * 100 // BINS}%"
        bars.append(
            f'<rect class="bin" x="{x + 2}" y="{80 - bh}" width="{bw - 4}" height="{bh}" '
            f'fill="#5a8fd0"><title>{label}: {n}</title></rect>'
            f'<text x="{x + bw / 2}" y="{76 - bh}" text-anchor="middle">{n or ""}</text>'
            f'<text x="{x + bw / 2}" y="94" text-anchor="middle">{i * 100 // BINS}</text>'
        )
    return (
        f'<figure style="margin:0"><svg width="{w}" height="{h}" role="img" '
        f'aria-label="cloud fraction histogram">{"".join(bars)}</svg>'
        "<figcaption><small>products per cloud fraction (%)</small></figcaption></figure>"
    )


def _row(r: Any, folder: Path) -> str:
    esc = html.escape
    name = Path(str(r.product).split("#")[-1]).name or str(r.product)
    cloud = "" if r.cloud_fraction is None else f"{r.cloud_fraction:.6f}"
    if r.quicklook and os.path.isfile(r.quicklook):
        src = _rel(r.quicklook, folder)
        thumb = f'<a href="{esc(src)}"><img class="thumb" src="{esc(src)}" alt="quicklook"></a>'
    elif r.thumbnail:
        thumb = f'<img class="thumb" src="{r.thumbnail}" alt="quicklook">'
    else:
        thumb = ""
    links = []
    if r.status in ("done", "skipped"):
        links.append(f'<a href="{esc(_rel(r.output, folder))}">mask</a>')
        links.append(f'<a href="{esc(_rel(r.output + ".json", folder))}">sidecar</a>')
    fractions = _fractions_bar(r.class_fractions) if r.class_fractions else ""
    cloud_text = "" if r.cloud_fraction is None else f"{r.cloud_fraction:.1%}"
    seconds = f"{r.seconds:.1f}" if r.status in ("done", "failed") else ""
    return (
        f'<tr class="row {esc(r.status)}" data-name="{esc(name)}" data-status="{esc(r.status)}" '
        f'data-cloud="{cloud}" data-seconds="{seconds}">'
        f"<td>{thumb}</td>"
        f'<td class="product" title="{esc(str(r.product))}">{esc(name)}</td>'
        f'<td class="status">{esc(r.status)}</td>'
        f'<td class="num cloud">{cloud_text}</td>'
        f"<td>{fractions}</td>"
        f'<td class="num">{seconds}</td>'
        f"<td>{' '.join(links)}</td>"
        f'<td class="err">{esc(r.error)}</td></tr>'
    )


def render_html(
    results: Sequence[Any], path: Path, *, finished: bool, started: float | None = None
) -> str:
    """The report page for ``results`` (batch `Result`s, ``pending`` ones included)."""
    folder = Path(path).parent
    status = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    pending = len(results) - sum(status.values())
    clouds = [r.cloud_fraction for r in results if r.cloud_fraction is not None]
    product_s = sum(r.seconds for r in results)
    wall = f"{time.time() - started:.0f} s" if started else ""
    state = "finished" if finished else f"running ({pending} to go; this page refreshes)"
    facts = [
        ("products", len(results)),
        ("done", status["done"]),
        ("skipped (complete before)", status["skipped"]),
        ("failed", status["failed"]),
        ("time, summed over products", f"{product_s:.1f} s"),
        ("elapsed", wall),
        ("mean cloud fraction", f"{sum(clouds) / len(clouds):.1%}" if clouds else "-"),
    ]
    summary = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts)
    refresh = "" if finished else f'<meta http-equiv="refresh" content="{REFRESH_S}">'
    rows = "".join(_row(r, folder) for r in results)
    heads = [
        ("quicklook", None), ("product", "name"), ("status", "status"), ("cloud", "cloud"),
        ("class fractions", None), ("seconds", "seconds"), ("files", None), ("error", None),
    ]  # fmt: skip
    th = "".join(
        f'<th><button type="button" data-key="{k}">{t}</button></th>' if k else f"<th>{t}</th>"
        for t, k in heads
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>cloudmask batch report</title><style>{_CSS}</style></head><body>"
        f"<h1>cloudmask batch: {len(results)} products</h1>"
        f'<p id="state">{html.escape(state)} · written {time.strftime("%Y-%m-%d %H:%M:%S")}</p>'
        f'<div class="summary"><dl>{summary}</dl>{_histogram(clouds)}</div>'
        f'<table><thead><tr>{th}</tr></thead><tbody id="rows">{rows}</tbody></table>'
        f"<script>{_JS}</script></body></html>"
    )


def write_html(
    results: Sequence[Any], path: Path, *, finished: bool = True, started: float | None = None
) -> None:
    """Write the report atomically: a reader never sees half a page."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(render_html(results, path, finished=finished, started=started), "utf-8")
    os.replace(tmp, path)
