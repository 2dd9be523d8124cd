"""The IBSI chapter 1 digital phantom against the IBSI reference values.

Reference: Zwanenburg A et al., "The Image Biomarker Standardization Initiative", Radiology 2020;295:328-338,
reference manual arXiv:1612.07003, tables "dig. phantom" (values with tolerances, shipped in
petspect/data/ibsi/digital_phantom_reference.csv); phantom from theibsi/data_sets (CC BY 4.0).
"""

from __future__ import annotations

import numpy as np
import pytest

from petspect.radiomics import extract_features, load_settings
from petspect.radiomics.reference import ReferenceValue, compare, digital_phantom, digital_phantom_reference


@pytest.fixture(scope="module")
def phantom_features():
    img, mask, sp = digital_phantom()
    return extract_features(img, mask, sp, load_settings("ibsi-digital-phantom"))


def test_phantom_data_is_the_ibsi_phantom():
    img, mask, sp = digital_phantom()
    assert img.shape == (4, 4, 5) and mask.shape == (4, 4, 5) and sp == (2.0, 2.0, 2.0)
    assert mask.sum() == 74  # 592 mm^3 of 8 mm^3 voxels (IBSI morph_vol_approx)
    vals = img[mask]
    assert (np.bincount(vals.astype(int)) == [0, 50, 0, 1, 16, 0, 7]).all()


def test_at_least_95_percent_of_at_least_150_features_match(phantom_features):
    cmp = compare(phantom_features.values)
    assert cmp.n_computed >= 150
    assert cmp.n_referenced >= 150
    assert cmp.fraction_matched >= 0.95, cmp.mismatches


@pytest.mark.parametrize("family", ["morph", "loc", "stat", "ih", "ivh", "cm", "rlm", "szm", "dzm", "ngt", "ngl"])
def test_every_family_is_computed_and_matches(phantom_features, family):
    ref = {k: v for k, v in digital_phantom_reference().items() if k.startswith(family + "_")}
    got = {k: v for k, v in phantom_features.values.items() if k.startswith(family + "_")}
    assert set(ref) <= set(got), sorted(set(ref) - set(got))
    cmp = compare(got, ref)
    assert cmp.fraction_matched >= 0.95, cmp.mismatches


@pytest.mark.parametrize("tag", ["morph_volume", "stat_mean", "cm_joint_max_d1_2d_avg", "rlm_sre_3d_v_mrg",
                                 "szm_lze_2.5d", "ngl_dc_energy_d1_a0.0_3d"])
def test_named_tags(phantom_features, tag):
    ref = digital_phantom_reference()[tag]
    assert ref.matches(phantom_features.values[tag])


def test_comparison_can_fail():
    r = ReferenceValue("stat_mean", 2.15, 0.0)
    assert r.matches(2.1549) and not r.matches(2.156) and not r.matches(float("nan"))
    wrong = dict(digital_phantom_reference())
    cmp = compare({"stat_mean": 2.3, "stat_var": 3.05}, wrong)
    assert cmp.n_matched == 1 and "stat_mean" in cmp.mismatches and cmp.failing_families() == {"stat": 1}


def test_phantom_processing_is_not_tuned_to_the_answer():
    """A shifted copy of the phantom (+1 grey level) changes intensity features but not the mesh."""
    img, mask, sp = digital_phantom()
    fs = extract_features(img + 1, mask, sp, load_settings("ibsi-digital-phantom"))
    ref = digital_phantom_reference()
    assert ref["morph_volume"].matches(fs.values["morph_volume"])
    assert not ref["stat_mean"].matches(fs.values["stat_mean"])
    assert fs.values["stat_mean"] == pytest.approx(159 / 74 + 1)
