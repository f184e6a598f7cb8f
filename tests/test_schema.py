"""schema.py: pydantic dataclasses for the YAML the user writes, errors as one line naming the
file and the key."""

from __future__ import annotations

import pytest
from pydantic import field_validator

from cloudmask_cli.errors import InputError
from cloudmask_cli.schema import parse, reads_on, schema


@schema
class Inner:
    p: float = 0.0
    kind: str = "a"

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in ("a", "b"):
            raise reads_on(f"must be a or b, got {v!r}")
        return v

    def __post_init__(self) -> None:
        if not 0 <= self.p <= 1:
            raise ValueError(f"p must be in [0, 1], got {self.p!r}")


@schema
class Outer:
    name: str
    items: tuple[Inner, ...] = ()
    inner: Inner = Inner()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "nmae": 1, "oops": 2},
         "f.yaml: unknown key(s) ['nmae', 'oops'] (known: ['inner', 'items', 'name'])"),
        ({"name": "x", "inner": {"q": 1}}, "f.yaml: unknown key(s) ['q'] in inner (known: ['kind', 'p'])"),
        ({"name": "x", "items": [{}, {"p": 2}]}, "f.yaml: items[1]: p must be in [0, 1], got 2.0"),
        ({"name": "x", "inner": {"kind": "c"}}, "f.yaml: inner.kind must be a or b, got 'c'"),
        ({"name": "x", "inner": {"p": "lots"}},
         "f.yaml: inner.p: Input should be a valid number, unable to parse string as a number, got 'lots'"),
        ({}, "f.yaml: name: missing"),
        ([1], "f.yaml: the file must be a mapping"),
    ],
)  # fmt: skip
def test_errors_are_one_line_naming_file_and_key(data: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse(Outer, data, "f.yaml")
    assert str(err.value) == message


def test_a_valid_mapping_is_typed() -> None:
    out = parse(Outer, {"name": "x", "items": [{"p": 1}], "inner": {"kind": "b"}}, "f.yaml")
    assert out.items == (Inner(p=1.0),) and isinstance(out.items[0].p, float)
    assert out.inner.kind == "b"


def test_where_names_the_part_of_the_file() -> None:
    with pytest.raises(InputError, match=r"^f.yaml: band 'red': p must be in"):
        parse(Inner, {"p": 3}, "f.yaml", where="band 'red'")
