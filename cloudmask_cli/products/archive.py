"""A product's files wherever they lie: a folder, a zip (a Sentinel-2 SAFE as ESA delivers it)
or a plain tar (a Landsat Collection 2 product as USGS delivers it), each file named by its path
relative to the product's root. Rasters are opened in place through GDAL's ``/vsizip/`` and
``/vsitar/``: an archive is never unpacked.
"""

from __future__ import annotations

import builtins
import tarfile
import zipfile
from pathlib import Path
from typing import Literal

from cloudmask_cli.errors import InputError

Kind = Literal["folder", "zip", "tar"]


class Archive:
    """The files of a product under ``root`` (a prefix inside a zip or tar, ``""`` at its top;
    a folder is its own root)."""

    def __init__(
        self,
        source: Path,
        kind: Kind = "folder",
        root: str = "",
        members: list[zipfile.ZipInfo] | list[tarfile.TarInfo] | None = None,
    ) -> None:
        """``members``: the archive's files, where the caller has listed them already (a tar's
        listing walks the whole file)."""
        self.source = Path(source)
        self.kind = kind
        self.root = root
        # archive members under the root, by relative path (None for a folder)
        self._members: dict[str, zipfile.ZipInfo | tarfile.TarInfo] | None = None
        if kind != "folder":
            if members is None:
                members = zip_members(self.source) if kind == "zip" else tar_members(self.source)
            named = ((m.filename if isinstance(m, zipfile.ZipInfo) else m.name, m) for m in members)
            self._members = {n[len(root) :]: m for n, m in named if n.startswith(root)}

    def exists(self, rel: str) -> bool:
        if self._members is None:
            return (self.source / rel).is_file()
        return rel in self._members

    def listdir(self, rel_dir: str = "") -> list[str]:
        """Names of the files directly inside a folder of the product (its root by default)."""
        if self._members is None:
            folder = self.source / rel_dir
            if not folder.is_dir():
                return []
            return sorted(p.name for p in folder.iterdir() if p.is_file())
        prefix = rel_dir.rstrip("/") + "/" if rel_dir else ""
        return sorted(
            n[len(prefix) :]
            for n in self._members
            if n.startswith(prefix) and "/" not in n[len(prefix) :]
        )

    def size(self, rel: str) -> int:
        if self._members is None:
            return (self.source / rel).stat().st_size
        m = self._members[rel]
        return m.file_size if isinstance(m, zipfile.ZipInfo) else m.size

    def read(self, rel: str, limit: int | None = None) -> bytes:
        """A file's bytes (the first ``limit`` only, if given)."""
        return self.read_at(rel, 0, -1 if limit is None else limit)

    def read_at(self, rel: str, offset: int, n: int) -> bytes:
        """``n`` bytes (all with -1) from ``offset``."""
        if self._members is None:
            with builtins.open(self.source / rel, "rb") as fh:
                fh.seek(offset)
                return fh.read(n)
        member = self._members[rel]
        if isinstance(member, zipfile.ZipInfo):
            with zipfile.ZipFile(self.source) as zf, zf.open(member) as fh:
                fh.seek(offset)  # a deflated member is inflated up to ``offset``: slow but exact
                return fh.read(n)
        with tarfile.open(self.source, "r:") as tf:
            got = tf.extractfile(member)
            if got is None:
                raise InputError(self.display(rel), "not a regular file in the archive")
            got.seek(offset)
            return got.read(n)

    def gdal_path(self, rel: str) -> str:
        """The path GDAL opens: the file itself, or ``/vsizip/`` / ``/vsitar/`` into the archive."""
        if self.kind == "folder":
            return str(self.source / rel)
        return f"/vsi{self.kind}/{self.source.resolve()}/{self.root}{rel}"

    def display(self, rel: str) -> str:
        """How errors name a file: the file, the GDAL path into a zip (so it can be inspected
        with ``gdalinfo``), or ``archive.tar:name``."""
        if self.kind == "tar":
            return f"{self.source}:{rel}"
        return self.gdal_path(rel)


def zip_members(path: Path) -> list[zipfile.ZipInfo]:
    """The files of a zip archive (folders left out)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(path, f"not a readable zip archive ({exc})") from None


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    """The regular files of a plain (uncompressed) tar: a compressed tar cannot be read in place."""
    try:
        with tarfile.open(path, "r:") as tf:
            return [m for m in tf.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError) as exc:
        raise InputError(path, f"not a readable tar archive ({exc})") from None
