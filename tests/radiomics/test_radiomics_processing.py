"""IBSI image processing: discretisation, resampling, re-segmentation, settings, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from petspect.errors import ConfigError, InputError
from petspect.radiomics import Discretisation, Family, RadiomicsSettings, extract_features, load_settings
from petspect.radiomics.processing import discretise, intensity_mask, process, resample


def _blob(seed=0, shape=(12, 14, 16)):
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) - (n - 1) / 2 for n in shape], indexing="ij")
    mask = (z / 4.5) ** 2 + (y / 5.5) ** 2 + (x / 6.5) ** 2 <= 1
    img = 5.0 + 3.0 * np.exp(-(x ** 2 + y ** 2 + z ** 2) / 20) + rng.normal(0, 0.3, shape)
    return img, mask


def test_fbn_uses_every_bin_and_puts_the_maximum_in_the_last():
    img = np.arange(1, 11, dtype=float).reshape(1, 1, 10)
    lv, n = discretise(img, np.ones_like(img, bool), RadiomicsSettings(discretisation="fbn", n_bins=5, bin_width=None))
    assert n == 5 and lv.ravel().tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_fbs_bins_from_the_lower_resegmentation_bound():
    """IBSI 2.7: x_d = floor((x - x_lo) / w) + 1 with x_lo the lower re-segmentation bound."""
    img = np.array([0.1, 0.3, 0.55, 1.0]).reshape(1, 1, 4)
    s = RadiomicsSettings(discretisation="fbs", bin_width=0.25, resegment_range=(0.0, math.inf))
    lv, n = discretise(img, np.ones_like(img, bool), s)
    assert lv.ravel().tolist() == [1, 2, 3, 5] and n == 5


def test_none_discretisation_refuses_measured_intensities():
    img = np.array([1.5, 2.0]).reshape(1, 1, 2)
    with pytest.raises(InputError, match="integer"):
        discretise(img, np.ones_like(img, bool), load_settings("ibsi-digital-phantom"))


def test_resegmentation_and_outlier_filter():
    img = np.array([1.0, 2.0, 3.0, 100.0] + [2.0] * 20).reshape(1, 1, 24)
    m = np.ones_like(img, bool)
    assert intensity_mask(img, m, resegment_range=(1.5, math.inf)).sum() == 23
    assert intensity_mask(img, m, outlier_sigma=3.0).sum() == 23  # 100 is > 3 sd from the mean
    with pytest.raises(InputError, match="no voxel"):
        intensity_mask(img, m, resegment_range=(200, 300))


def test_resampling_keeps_a_constant_image_and_the_roi_volume():
    img = np.full((10, 10, 10), 7.0)
    z, y, x = np.meshgrid(*[np.arange(10) - 4.5] * 3, indexing="ij")
    mask = x ** 2 + y ** 2 + z ** 2 <= 16
    out, m2, sp = resample(img, mask, (2.0, 2.0, 2.0), (1.0, 1.0, 1.0))
    assert sp == (1.0, 1.0, 1.0) and out.shape == (20, 20, 20)
    assert np.allclose(out, 7.0)
    assert m2.sum() * 1.0 == pytest.approx(mask.sum() * 8.0, rel=0.1)


def test_features_are_invariant_to_translation_and_padding():
    img, mask = _blob()
    s = load_settings("pet-suv-fbs0.25")
    a = extract_features(img, mask, (2.0, 2.0, 2.0), s).values
    big = np.pad(img, ((3, 1), (2, 5), (0, 4)), constant_values=5.0)
    bm = np.pad(mask, ((3, 1), (2, 5), (0, 4)))
    b = extract_features(big, bm, (2.0, 2.0, 2.0), s).values
    for tag in ("morph_volume", "stat_mean", "cm_contrast_d1_3d_avg", "rlm_sre_3d_v_mrg", "szm_sze_3d",
                "dzm_sde_3d", "ngt_coarseness_3d", "ngl_hde_d1_a0.0_3d", "ivh_v10"):
        assert a[tag] == pytest.approx(b[tag], rel=1e-9), tag


def test_in_plane_rotation_leaves_direction_averaged_2d_features_unchanged():
    img, mask = _blob(1)
    s = load_settings("pet-suv-fbs0.25")
    a = extract_features(img, mask, (2.0, 2.0, 2.0), s).values
    b = extract_features(np.rot90(img, axes=(1, 2)).copy(), np.rot90(mask, axes=(1, 2)).copy(), (2.0, 2.0, 2.0), s).values
    for tag in ("cm_joint_entr_d1_2d_avg", "rlm_lre_2d_s_mrg", "szm_zs_var_2d", "ngt_busyness_2d", "morph_area_mesh"):
        assert a[tag] == pytest.approx(b[tag], rel=1e-6), tag


def test_mesh_volume_of_a_ball_approaches_the_sphere():
    z, y, x = np.meshgrid(*[np.arange(40) - 19.5] * 3, indexing="ij")
    mask = x ** 2 + y ** 2 + z ** 2 <= 15 ** 2
    img = np.where(mask, 3.0, 0.0) + 1.0
    s = RadiomicsSettings(discretisation="fbn", n_bins=8, bin_width=None, families=(Family.MORPHOLOGY,))
    f = extract_features(img, mask, (1.0, 1.0, 1.0), s).values
    assert f["morph_volume"] == pytest.approx(4 / 3 * math.pi * 15 ** 3, rel=0.02)
    assert f["morph_sphericity"] > 0.9


def test_constant_roi_gives_defined_or_nan_features_never_a_crash():
    img = np.ones((5, 5, 5)) * 2.0
    mask = np.zeros_like(img, bool)
    mask[1:4, 1:4, 1:4] = True
    f = extract_features(img, mask, (1, 1, 1), load_settings("pet-suv-fbs0.25")).values
    assert f["stat_var"] == 0.0 and f["cm_joint_max_d1_3d_avg"] == 1.0
    assert all(isinstance(v, float) for v in f.values())


@pytest.mark.parametrize("bad, match", [
    (dict(image=np.ones((3, 3)), mask=np.ones((3, 3))), "3D"),
    (dict(image=np.ones((3, 3, 3)), mask=np.ones((3, 3, 4))), "shape"),
    (dict(image=np.ones((3, 3, 3)), mask=np.zeros((3, 3, 3))), "empty"),
    (dict(image=np.full((3, 3, 3), np.nan), mask=np.ones((3, 3, 3))), "NaN"),
])
def test_bad_inputs_raise_input_errors(bad, match):
    with pytest.raises(InputError, match=match):
        process(bad["image"], bad["mask"], (1, 1, 1), load_settings("pet-suv-fbs0.25"))


def test_settings_by_name_file_and_errors(tmp_path):
    assert load_settings("IBSI-Digital-Phantom").discretisation is Discretisation.NONE
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"base": "pet-suv-fbs0.25", "bin_width": 0.5, "families": ["stat", "cm"]}))
    s = load_settings(p)
    assert s.bin_width == 0.5 and s.families == (Family.STATISTICS, Family.GLCM) and s.resegment_range[0] == 0.0
    p.write_text(json.dumps({"bin_widht": 0.5}))
    with pytest.raises(ConfigError, match="unknown"):
        load_settings(p)
    with pytest.raises(ConfigError):
        load_settings("no-such-settings")
    with pytest.raises(ConfigError, match="n_bins"):
        RadiomicsSettings(discretisation="fbn", n_bins=None)
    with pytest.raises(ConfigError, match="spacing"):
        RadiomicsSettings(spacing_mm=(1, 0, 1))
    s2 = RadiomicsSettings.from_dict(s.to_dict())
    assert s2 == s


@pytest.mark.parametrize("roi", ["slice", "row", "voxel"])
def test_degenerate_rois_give_the_same_tags_with_nan_where_undefined(roi):
    img = np.random.default_rng(0).uniform(1, 5, (5, 9, 9))
    s = load_settings("pet-suv-fbs0.25")
    full = extract_features(img, np.ones_like(img, bool), (2, 2, 2), s).values
    m = np.zeros_like(img, bool)
    m[{"slice": (2, slice(2, 6), slice(2, 6)), "row": (2, 4, slice(2, 7)), "voxel": (2, 4, 4)}[roi]] = True
    f = extract_features(img, m, (2, 2, 2), s).values
    assert list(f) == list(full)
    assert f["morph_vol_approx"] == pytest.approx(m.sum() * 8.0)
    if roi == "voxel":
        assert math.isnan(f["cm_contrast_d1_3d_avg"])
    if roi == "slice":
        assert math.isnan(f["cm_contrast_d1_3d_avg"]) is False and np.isfinite(f["cm_contrast_d1_2d_avg"])
