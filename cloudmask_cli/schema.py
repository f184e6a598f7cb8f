"""Schemas for the YAML the user writes: pydantic dataclasses, and one adapter to the house's
one-line `InputError` naming the file and the key.

A schema is a ``@schema`` dataclass: its fields' types are checked and coerced by pydantic,
unknown keys are errors (a typo never falls back silently to a default), and checks across
fields live in its ``__post_init__`` (run after the types are checked), raising ``ValueError``
with a message in the house style ("select_on must be loss, f1 or last, got 'x'"); a field's
own check is a pydantic ``field_validator`` raising ``ValueError`` (rendered "key: message")
or `reads_on` (rendered "key must ...").
`parse` validates a parsed YAML mapping into one; `problem` renders a `ValidationError` as
the one line that follows the file name. `Number`, `Probability` and `Span` with `span` are the
field types of augmentation settings: a number, one in [0, 1], a [min, max] drawn from (one
number: both ends); `Settings.from_config` builds such a section from its mapping.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from os import PathLike
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError
from typing_extensions import dataclass_transform  # typing's own is Python 3.11+

from cloudmask_cli.errors import InputError

T = TypeVar("T")

# extra keys are errors; arbitrary types for fields that hold the project's own objects
CONFIG = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


@dataclass_transform(frozen_default=True)
def schema(cls: type[T]) -> type[T]:
    """A frozen pydantic dataclass that forbids unknown keys."""
    return dataclass(frozen=True, config=CONFIG)(cls)  # type: ignore[return-value]


_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")


def _where(loc: tuple[Any, ...]) -> str:
    """``("datasets", 0, "weight")`` -> ``datasets[0].weight``."""
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's mark of an error in a mapping's key, not its value
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(cls: Any, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the schema found at ``loc`` below ``cls`` (empty when none is)."""
    for part in loc:
        if isinstance(part, int):
            continue
        if not _is_schema(cls) or part not in {f.name for f in dataclasses.fields(cls)}:
            return []
        cls = _inner_schema(cls, part)
    return [f.name for f in dataclasses.fields(cls)] if _is_schema(cls) else []


def _is_schema(cls: Any) -> bool:
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def _inner_schema(owner: Any, name: str) -> Any:
    """The schema class that field ``name`` of ``owner`` holds (``X``, ``tuple[X, ...]``,
    ``X | None``), or None."""
    stack = [typing.get_type_hints(owner)[name]]
    while stack:
        a = stack.pop()
        if _is_schema(a):
            return a
        stack.extend(typing.get_args(a))
    return None


def problem(exc: ValidationError, cls: Any, where: str = "") -> str:
    """The first error of ``exc`` as one line: ``key: what is wrong``; unknown keys together,
    with the keys that are known there."""
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] in _UNKNOWN]
    prefix = f"{where}: " if where else ""
    if unknown:
        parent = unknown[0]["loc"][:-1]
        keys = sorted(str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == parent)
        at = _where(parent)
        place = f" in {where}" if where else ""
        place += f" in {at}" if at else ""
        return f"unknown key(s) {keys}{place} (known: {sorted(_fields_at(cls, parent))})"
    e = errors[0]
    at = prefix + _where(tuple(e["loc"])) if e["loc"] else where
    if e["type"] == "literal_error":  # "select_on must be loss, f1 or last, got 'iou'"
        return f"{at} must be {e['ctx']['expected'].replace(chr(39), '')}, got {e['input']!r}"
    msg = str(e["msg"]).removeprefix("Value error, ")
    if e["type"] == "missing":
        msg = "missing"
    elif e["type"] not in ("value_error", _READS_ON):
        msg = f"{msg}, got {e['input']!r}"
    if not at:
        return msg
    return f"{at} {msg}" if e["type"] == _READS_ON else f"{at}: {msg}"


_READS_ON = "reads_on"


def reads_on(message: str) -> PydanticCustomError:
    """A field validator's error whose message reads on from the key: raised as
    ``reads_on("must list rule names")``, rendered "datasets[0].rules must list rule names"
    (a plain ``ValueError`` renders "datasets[0].rules: its message"). No braces in it."""
    return PydanticCustomError(_READS_ON, message)


def parse(cls: type[T], data: Any, path: str | PathLike[str] | None, where: str = "") -> T:
    """``data`` (a parsed YAML mapping) validated into ``cls``; an `InputError` naming
    ``path`` and the key otherwise. ``where``: the key ``data`` sits under in its file."""
    if not isinstance(data, dict):
        raise InputError(path, f"{where or 'the file'} must be a mapping")
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise InputError(path, problem(exc, cls, where)) from None


def validated(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """``data`` validated into ``cls``; a one-line ``ValueError`` otherwise (for callers that
    add the file name themselves)."""
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise ValueError(problem(exc, cls, where)) from None


def checked(build: Callable[[], T], path: str | PathLike[str] | None, cls: Any = None) -> T:
    """``build()`` (e.g. `dataclasses.replace` on a schema), its `ValidationError` as an
    `InputError` naming ``path``."""
    try:
        return build()
    except ValidationError as exc:
        raise InputError(path, problem(exc, cls)) from None


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type[T]) -> TypeAdapter[T]:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def _probability(v: float) -> float:
    if not 0.0 <= v <= 1.0:
        raise reads_on(f"must be in [0, 1], got {v}")
    return v


# numbers as YAML writes them (an int is a float; a bool or a quoted string is not)
Number = Annotated[float, Strict()]
Probability = Annotated[float, Strict(), AfterValidator(_probability)]
Span = tuple[float, float]  # annotated with `span(lo, hi)`


def span(lo: float, hi: float) -> BeforeValidator:
    """A ``tuple[float, float]`` field's check: ``[min, max]`` within ``[lo, hi]``, or one
    number (both ends)."""

    def check(v: Any) -> tuple[float, float]:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = (v, v)
        if (
            not isinstance(v, (list, tuple))
            or len(v) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ):
            raise reads_on(f"must be a number or [min, max], got {v!r}")
        a, b = float(v[0]), float(v[1])
        if not lo <= a <= b <= hi:
            raise reads_on(f"must satisfy {lo} <= min <= max <= {hi}, got {list(v)}")
        return a, b

    return BeforeValidator(check)


class Settings:
    """A training config section built from its mapping by ``from_config`` (a ``@schema``
    class naming itself in ``WHAT``, which starts each error: "bright ground: p must be ...")."""

    WHAT: typing.ClassVar[str] = "settings"

    @classmethod
    def from_config(cls: type[T], config: dict[str, Any] | None) -> T:
        try:
            return validated(cls, dict(config or {}))
        except ValueError as exc:
            raise ValueError(f"{cls.WHAT}: {exc}") from None  # type: ignore[attr-defined]
