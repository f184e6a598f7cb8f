"""Partial labels: each dataset's codes -> sets of the model's 7 classes (paper III-B, Table I).

A label scheme is a data file (``schemes/<name>.yaml``, or a user's own YAML) mapping every code
a dataset uses to the set of classes a pixel with that code may be. Sets are held as 7-bit masks
(bit i = `CLASSES[i]`); an empty set means "unlabelled" (ignored by the loss and the metrics).
Codes a scheme does not list are an error naming the file: nothing is silently guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated

import numpy as np
import yaml
from pydantic import Field, field_validator

from cloudmask_cli.classes import CLASSES
from cloudmask_cli.errors import InputError
from cloudmask_cli.schema import parse, reads_on, schema

N_CLASSES = len(CLASSES)
BIT = {name: 1 << i for i, name in enumerate(CLASSES)}
NO_DATA_BITS = BIT["no_data"]
ALL_BITS = (1 << N_CLASSES) - 1
CLOUD_BITS = BIT["thin_cloud"] | BIT["thick_cloud"]
CLOUD_FREE = "+cloud_free"  # suffix of a scheme name: `LabelScheme.cloud_free` of that scheme
# A programmatic scheme whose codes ARE the 7-bit masks (0 = unlabelled): what a sample already
# turned into class sets (e.g. by `cloudmask_cli.training.rules`) is labelled in.
BITS_SCHEME = "bits"


def bits_of(classes: list[str] | tuple[str, ...] | frozenset[str]) -> int:
    """The 7-bit mask of a set of class names."""
    unknown = [c for c in classes if c not in BIT]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; expected some of {', '.join(CLASSES)}")
    out = 0
    for c in classes:
        out |= BIT[c]
    return out


def classes_of(bits: int) -> tuple[str, ...]:
    """Class names in a 7-bit mask, in `CLASSES` order."""
    return tuple(c for c in CLASSES if bits & BIT[c])


@dataclass(frozen=True)
class LabelScheme:
    """A dataset's codes and the class set of each."""

    name: str
    title: str
    codes: dict[int, tuple[str, int]]  # code -> (code name, class bits)
    path: str = ""

    @property
    def lut(self) -> np.ndarray:
        """uint8 class bits for each of the 256 codes (unlisted codes: 0)."""
        lut = np.zeros(256, dtype=np.uint8)
        for code, (_, bits) in self.codes.items():
            lut[code] = bits
        return lut

    @property
    def defined(self) -> np.ndarray:
        ok = np.zeros(256, dtype=bool)
        ok[list(self.codes)] = True
        return ok

    def bits(self, label: np.ndarray, where: str = "") -> np.ndarray:
        """uint8 class bits of a label raster in this scheme's codes."""
        if label.dtype != np.uint8:
            if label.size and (label.min() < 0 or label.max() > 255):
                raise InputError(
                    where or None, f"label values outside 0..255 for scheme {self.name}"
                )
            label = label.astype(np.uint8)
        bad = ~self.defined[label]
        if bad.any():
            found = sorted(int(v) for v in np.unique(label[bad]))
            raise InputError(
                where or None,
                f"label codes {found} are not in scheme {self.name!r} "
                f"(it lists {sorted(self.codes)})",
            )
        return self.lut[label]

    def cloud_free(self) -> LabelScheme:
        """This scheme for a sample whose labels hold no cloud anywhere: a shadow needs its
        cloud nearby (within a few km), so a code that allows shadow among other classes (a
        partial "clear") no longer does. A code that says shadow alone keeps it."""
        shadow = BIT["cloud_shadow"]
        codes = {
            code: (name, bits & ~shadow if bits & ~shadow else bits)
            for code, (name, bits) in self.codes.items()
        }
        return LabelScheme(f"{self.name}{CLOUD_FREE}", self.title, codes, self.path)

    def describe(self) -> list[dict[str, object]]:
        return [
            {"code": c, "name": n, "classes": list(classes_of(b))}
            for c, (n, b) in sorted(self.codes.items())
        ]


def possible_from_bits(bits: np.ndarray) -> np.ndarray:
    """7-bit masks ``[...]`` -> bool ``[7, ...]`` (the loss's ``possible`` tensor)."""
    shifts = np.arange(N_CLASSES, dtype=np.uint8).reshape((-1,) + (1,) * bits.ndim)
    return ((bits[None] >> shifts) & 1).astype(bool)


def bits_from_possible(possible: np.ndarray, axis: int = 0) -> np.ndarray:
    """bool with 7 classes on ``axis`` -> uint8 7-bit masks (that axis removed)."""
    possible = np.moveaxis(np.asarray(possible), axis, 0)
    weights = (1 << np.arange(N_CLASSES, dtype=np.uint16)).reshape(
        (-1,) + (1,) * (possible.ndim - 1)
    )
    return (possible.astype(np.uint16) * weights).sum(axis=0).astype(np.uint8)


@schema
class _Code:
    """One code of a scheme file: its name and the classes a pixel with it may be."""

    classes: list[str]
    name: str | int | None = None

    @field_validator("classes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bits_of(v)  # its ValueError names the unknown classes
        return v


@schema
class _SchemeFile:
    """A label scheme YAML (training/schemes/*.yaml)."""

    name: str
    codes: dict[Annotated[int, Field(strict=True, ge=0, le=255)], _Code]
    title: str | None = None

    @field_validator("codes")
    @classmethod
    def _some(cls, v: dict[int, _Code]) -> dict[int, _Code]:
        if not v:
            raise reads_on("must map each code (0..255) to its name and classes")
        return v


def parse_scheme(data: object, path: str = "<scheme>") -> LabelScheme:
    """Validate a scheme (parsed YAML) and build a `LabelScheme`."""
    if not isinstance(data, dict) or "codes" not in data or "name" not in data:
        raise InputError(path, "a label scheme is a mapping with 'name' and 'codes'")
    f = parse(_SchemeFile, data, path)
    codes = {
        c: (str(e.name if e.name is not None else c), bits_of(e.classes))
        for c, e in f.codes.items()
    }
    return LabelScheme(f.name, f.title or f.name, codes, path)


def bits_scheme() -> LabelScheme:
    """The identity scheme over codes 0..127 (`BITS_SCHEME`)."""
    codes = {b: ("+".join(classes_of(b)) or "unlabelled", b) for b in range(ALL_BITS + 1)}
    return LabelScheme(BITS_SCHEME, "7-bit class masks as codes", codes)


def _bundled_dir() -> Path:
    return Path(str(resources.files("cloudmask_cli.training"))) / "schemes"


def bundled_schemes() -> list[str]:
    """Names of the bundled label schemes."""
    return sorted(p.stem for p in _bundled_dir().glob("*.yaml"))


@lru_cache(maxsize=64)
def load_scheme(name_or_path: str) -> LabelScheme:
    """A bundled scheme by name, or a scheme YAML by path (``+cloud_free`` appended: that
    scheme's `LabelScheme.cloud_free`); ``bits``: `bits_scheme`."""
    text = str(name_or_path)
    if text.endswith(CLOUD_FREE):
        return load_scheme(text.removesuffix(CLOUD_FREE)).cloud_free()
    if text == BITS_SCHEME:
        return bits_scheme()
    path = Path(text)
    if not text.endswith((".yaml", ".yml")):
        path = _bundled_dir() / f"{text}.yaml"
        if not path.is_file():
            raise InputError(
                text, f"unknown label scheme (bundled: {', '.join(bundled_schemes())})"
            )
    if not path.is_file():
        raise InputError(path, "label scheme file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise InputError(path, "not valid YAML") from None
    return parse_scheme(data, str(path))
