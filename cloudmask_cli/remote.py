"""Remote rasters: STAC hrefs -> GDAL paths, and the GDAL settings for windowed HTTP reads.

COGs are never downloaded: GDAL's ``/vsicurl/`` (``/vsis3/``, ``/vsigs/``, ``/vsiaz/`` for the
cloud schemes) fetches the header and then only the byte ranges of the tiles a window needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import rasterio

from cloudmask_cli.errors import InputError

SCHEMES = ("file", "http", "https", "s3", "gs", "az")
_VSI = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/",
        "az": "/vsiaz/"}  # fmt: skip

# One place for how remote COGs are read. A user's own environment variable wins.
# - EMPTY_DIR: never list the "folder" of a URL, and so never probe .aux.xml/.ovr/.msk sidecars
#   (this is also why CPL_VSIL_CURL_ALLOWED_EXTENSIONS is not set: it would refuse signed or
#   extension-less hrefs, and the sidecar probes it exists to avoid are already gone);
# - retries with GDAL's exponential back-off on 429/5xx, bounded timeouts, and merged ranges;
# - VSI_CACHE: the tiles two overlapping windows share are fetched once.
GDAL_REMOTE = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(64 << 20),
}

# GDAL's block cache defaults to 5 % of RAM (1.2 GB on a 24 GB machine). Each window is read
# once, and only tiles shared by overlapping windows are read again, so a smaller cache keeps
# the memory flat at no cost. It is set for the run, not on import: rasterio.Env applies it at
# once (GDALSetCacheMax64, in bytes), the CLI's entry sets the variable (in MB) for every command.
CACHE_MB = 384


def is_url(text: str | os.PathLike[str]) -> bool:
    """``http(s)://``, ``s3://``, ``gs://``, ``az://`` (not a local path)."""
    scheme = urlsplit(str(text)).scheme.lower()
    return scheme in SCHEMES and scheme != "file"


def gdal_path(href: str, where: str) -> str:
    """The path GDAL opens for an asset href; other schemes are refused (``where`` names the
    asset in the message). A local path is returned as is."""
    parts = urlsplit(href)
    scheme = parts.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme and scheme not in SCHEMES:
        raise InputError(
            where, f"href scheme {scheme!r} is not read (file, http, https, s3, gs, az): {href}"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InputError(where, f"file:// href on another host is not read: {href}")
        href = unquote(parts.path)
        scheme = ""
    if not scheme:
        # a path that GDAL would itself treat as a virtual file system is not a plain file
        if href.lstrip("/").startswith("vsi"):
            raise InputError(where, f"href names a GDAL virtual file system: {href}")
        return href
    if not parts.netloc:
        raise InputError(where, f"href has no host or bucket: {href}")
    if scheme in ("http", "https"):
        return _VSI[scheme] + href
    return _VSI[scheme] + parts.netloc + parts.path


def display(path: str) -> str:
    """A GDAL path as the user wrote the href (for messages)."""
    return path.removeprefix("/vsicurl/")


@contextlib.contextmanager
def gdal_env() -> Iterator[None]:
    """GDAL settings for a run's reads, local and remote (GDAL config is process-wide, so the
    read threads see it too); a user's own environment variable wins."""
    run: dict[str, object] = {"GDAL_CACHEMAX": CACHE_MB << 20}
    options = {k: v for k, v in (GDAL_REMOTE | run).items() if k not in os.environ}
    with rasterio.Env(**options):
        yield
