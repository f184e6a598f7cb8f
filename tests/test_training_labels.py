"""Label schemes: every dataset's codes map to the partial 7-class sets of paper Table I."""

from __future__ import annotations

import numpy as np
import pytest

from cloudmask_cli.errors import InputError
from cloudmask_cli.training.labels import (
    bits_from_possible,
    bits_of,
    bundled_schemes,
    classes_of,
    load_scheme,
    parse_scheme,
    possible_from_bits,
)

CLEAR = {"land", "water", "snow"}
CLEAR_OR_SHADOW = CLEAR | {"cloud_shadow"}
CLOUD = {"thin_cloud", "thick_cloud"}
EVERY_REAL = CLEAR_OR_SHADOW | CLOUD

# scheme -> code -> the classes a pixel with that code may be (Table I and the datasets' docs).
TABLE: dict[str, dict[int, set[str]]] = {
    "cloudsen12": {0: CLEAR, 1: {"thick_cloud"}, 2: {"thin_cloud"}, 3: {"cloud_shadow"}},
    "biome": {0: {"no_data"}, 64: {"cloud_shadow"}, 128: CLEAR_OR_SHADOW, 192: {"thin_cloud"},
              255: {"thick_cloud"}},
    "biome_with_shadow": {0: {"no_data"}, 64: {"cloud_shadow"}, 128: CLEAR, 192: {"thin_cloud"},
                          255: {"thick_cloud"}},
    "l7irish": {0: {"no_data"}, 64: {"cloud_shadow"}, 128: CLEAR_OR_SHADOW, 192: {"thin_cloud"},
                255: {"thick_cloud"}},
    "sparcs": {0: {"cloud_shadow"}, 1: {"cloud_shadow"}, 2: {"water"}, 3: {"snow"}, 4: {"land"},
               5: CLOUD, 6: {"land", "water"}},
    "cloud38": {0: CLEAR_OR_SHADOW, 1: CLOUD, 255: CLOUD},
    "cmc": {0: CLEAR, 1: CLOUD, 2: {"cloud_shadow"}, 255: set()},
    "cmc_no_shadow": {0: CLEAR_OR_SHADOW, 1: CLOUD, 2: {"cloud_shadow"}, 255: set()},
    "kappaset": {0: {"no_data"}, 1: CLEAR, 2: {"cloud_shadow"}, 3: {"thin_cloud"},
                 4: {"thick_cloud"}, 5: set()},
    "cloudperu2": {0: CLEAR_OR_SHADOW, 1: CLOUD},
    "oncloudn": {0: CLEAR_OR_SHADOW, 1: CLOUD, 255: set()},
    "scl": {0: {"no_data"}, 1: set(), 2: {"land", "water", "cloud_shadow"}, 3: {"cloud_shadow"},
            4: {"land"}, 5: {"land"}, 6: {"water"}, 7: EVERY_REAL, 8: CLOUD, 9: {"thick_cloud"},
            10: {"thin_cloud"}, 11: {"snow"}},
    "sen1floods11": {0: {"land", "snow", "thin_cloud", "thick_cloud", "cloud_shadow"},
                     1: {"water"}, 255: set()},
}  # fmt: skip


def test_every_bundled_scheme_is_in_the_table() -> None:
    assert set(bundled_schemes()) == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_scheme_maps_codes_as_table_i(name: str) -> None:
    scheme = load_scheme(name)
    assert set(scheme.codes) == set(TABLE[name])
    codes = np.array(sorted(TABLE[name]), dtype=np.uint8)
    bits = scheme.bits(codes)
    for code, b in zip(codes, bits, strict=True):
        assert set(classes_of(int(b))) == TABLE[name][int(code)], (name, code)


def test_unknown_code_is_an_error_naming_the_sample() -> None:
    with pytest.raises(InputError, match=r"sample-7: label codes \[7\] are not in scheme .sparcs."):
        load_scheme("sparcs").bits(np.array([[0, 7]], dtype=np.uint8), "sample-7")


def test_possible_round_trip() -> None:
    bits = np.array(
        [[bits_of(["land"]), bits_of(list(CLEAR))], [0, bits_of(["no_data"])]], dtype=np.uint8
    )
    possible = possible_from_bits(bits)
    assert possible.shape == (7, 2, 2)
    assert possible[:, 0, 1].sum() == 3 and not possible[:, 1, 0].any()
    np.testing.assert_array_equal(bits_from_possible(possible), bits)
    batch = np.stack([possible, possible], axis=0)
    np.testing.assert_array_equal(bits_from_possible(batch, axis=1), np.stack([bits, bits]))


def test_user_scheme_file(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ncodes:\n  7: {name: cloud, classes: [thin_cloud, thick_cloud]}\n")
    assert load_scheme(str(path)).bits(np.array([7], dtype=np.uint8))[0] == bits_of(list(CLOUD))
    with pytest.raises(InputError, match="unknown classes"):
        parse_scheme({"name": "x", "codes": {1: {"classes": ["cirrus"]}}}, "x.yaml")
    with pytest.raises(InputError, match="unknown label scheme"):
        load_scheme("no-such-scheme")
