"""Settings and images an outside quality pass tried: absurd bin counts, voxel sizes and NGLDM parameters must be
refused with a clear error before any memory is allocated, and a few features are checked against the IBSI
definitions by hand (Zwanenburg A et al., IBSI reference manual, arXiv:1612.07003, sections 2.7 and 3.7)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from petspect.errors import ConfigError, InputError
from petspect.radiomics import extract_features, load_settings
from petspect.radiomics.processing import discretise
from petspect.radiomics.settings import RadiomicsSettings


def _roi(shape=(6, 6, 6)):
    rng = np.random.default_rng(0)
    img = rng.random(shape) * 10
    m = np.zeros(shape, bool)
    m[1:5, 1:5, 1:5] = True
    return img, m


@pytest.mark.parametrize("bad", [
    {"discretisation": "fbn", "n_bins": 1_000_000_000},
    {"discretisation": "fbs", "bin_width": math.inf},
    {"discretisation": "fbn", "n_bins": 8, "ngldm_alpha": -1.0},
    {"discretisation": "fbn", "n_bins": 8, "ngldm_alpha": math.nan},
    {"discretisation": "fbn", "n_bins": 8, "outlier_sigma": math.inf},
])
def test_absurd_settings_are_config_errors(tmp_path, bad):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(ConfigError):
        load_settings(p)


def test_a_tiny_new_spacing_is_refused_before_allocating_the_grid():
    img, m = _roi()
    cfg = RadiomicsSettings(name="t", spacing_mm=(1e-9, 1e-9, 1e-9), discretisation="fbn", n_bins=8,
                            bin_width=None)
    with pytest.raises(InputError, match="voxels"):
        extract_features(img, m, (2.0, 2.0, 2.0), cfg)


def test_huge_integer_grey_levels_without_discretisation_are_refused():
    img, m = _roi()
    img = np.round(img * 1e7) + 1
    cfg = RadiomicsSettings(name="grey", discretisation="none", bin_width=None)
    with pytest.raises(InputError, match="grey levels"):
        extract_features(img, m, (2.0, 2.0, 2.0), cfg)


def test_fbn_and_fbs_levels_follow_the_ibsi_formulas():
    """IBSI 2.7: FBN ``floor(Nb (x - min) / (max - min)) + 1`` with the maximum in bin Nb; FBS
    ``floor((x - x_lo) / w) + 1``."""
    x = np.array([0.0, 1.0, 2.5, 3.99, 4.0]).reshape(1, 1, 5)
    m = np.ones(x.shape, bool)
    lv, n = discretise(x, m, RadiomicsSettings(name="t", discretisation="fbn", n_bins=4, bin_width=None))
    assert n == 4 and lv.ravel().tolist() == [1, 2, 3, 4, 4]
    lv, n = discretise(x, m, RadiomicsSettings(name="t", discretisation="fbs", bin_width=1.5,
                                               resegment_range=(-1.0, math.inf)))
    assert lv.ravel().tolist() == [1, 2, 3, 4, 4] and n == 4


def test_intensity_histogram_entropy_and_glszm_by_hand():
    """A 2 x 2 x 2 cube with grey levels 1 (4 voxels, one face) and 2 (the opposite face): histogram entropy
    = 1 bit (IBSI 3.4.17), two 26-connected zones of 4 voxels (IBSI 3.8: sze = 1/16, zsnu = 2, zone_perc = 2/8)."""
    img = np.ones((4, 4, 4))
    m = np.zeros(img.shape, bool)
    m[1:3, 1:3, 1:3] = True
    img[2, 1:3, 1:3] = 2.0
    f = extract_features(img, m, (1.0, 1.0, 1.0), RadiomicsSettings(name="g", discretisation="none",
                                                                     bin_width=None)).values
    assert f["ih_entropy"] == pytest.approx(1.0)
    assert f["szm_sze_3d"] == pytest.approx(1 / 16)
    assert f["szm_zsnu_3d"] == pytest.approx(2.0)
    assert f["szm_z_perc_3d"] == pytest.approx(2 / 8)
