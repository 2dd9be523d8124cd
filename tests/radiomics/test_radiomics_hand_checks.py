"""Features recomputed by hand on tiny ROIs, and bad inputs found by an outside quality pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import ConfigError, InputError
from petspect.io import save
from petspect.radiomics import extract_features, load_settings
from petspect.radiomics.settings import RadiomicsSettings
from petspect.volume import Volume

runner = CliRunner()
GREY = RadiomicsSettings(name="grey", discretisation="none", bin_width=None)


def test_cube_volume_and_statistics_by_hand():
    img = np.full((7, 7, 7), 3.0)
    m = np.zeros(img.shape, bool)
    m[2:5, 2:5, 2:5] = True
    img[m] = np.arange(1, 28)
    f = extract_features(img, m, (2.0, 1.0, 1.0), GREY).values
    assert f["morph_vol_approx"] == pytest.approx(27 * 2.0)
    # marching cubes at 0.5 around a 3^3 voxel cube: core 8 + 6 face slabs 2*2*0.5 + 12 edge prisms
    # 2*0.125 + 8 corner tetrahedra 1/48, in voxels of 2 mm^3
    assert f["morph_volume"] == pytest.approx((8 + 12 + 3 + 8 / 48) * 2.0)
    assert f["stat_mean"] == pytest.approx(14.0)
    assert f["stat_var"] == pytest.approx((27**2 - 1) / 12)  # population variance of 1..27
    assert f["stat_median"] == pytest.approx(14.0) and f["stat_min"] == 1 and f["stat_max"] == 27


def test_glcm_entries_of_an_alternating_row_by_hand():
    img = np.zeros((3, 3, 6))
    m = np.zeros(img.shape, bool)
    img[1, 1, 1:5] = [1, 2, 1, 2]
    m[1, 1, 1:5] = True
    f = extract_features(img, m, (2.0, 2.0, 2.0), GREY).values
    # the only neighbour pairs are along x: symmetric GLCM p(1,2) = p(2,1) = 1/2
    for agg in ("3d_v_mrg", "3d_avg", "2d_s_mrg"):
        assert f[f"cm_joint_max_d1_{agg}"] == pytest.approx(0.5)
        assert f[f"cm_joint_avg_d1_{agg}"] == pytest.approx(1.5)
        assert f[f"cm_contrast_d1_{agg}"] == pytest.approx(1.0)
        assert f[f"cm_joint_entr_d1_{agg}"] == pytest.approx(1.0)
        assert f[f"cm_energy_d1_{agg}"] == pytest.approx(0.5)


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (3.0, 3.0, 3.0)])
def test_nan_next_to_the_roi_is_refused_not_smeared_or_crashing(spacing):
    rng = np.random.default_rng(0)
    img = rng.random((12, 12, 12)) * 5
    m = np.zeros(img.shape, bool)
    m[4:8, 4:8, 4:8] = True
    img[8, 5, 5] = np.nan  # one voxel outside the ROI, inside the local-intensity sphere's reach
    cfg = RadiomicsSettings(name="t", spacing_mm=spacing, discretisation="fbn", n_bins=8, bin_width=None)
    with pytest.raises(InputError, match="next to the ROI"):
        extract_features(img, m, (2.0, 2.0, 2.0), cfg)
    far = rng.random((40, 12, 12))
    far[39, 0, 0] = np.nan  # far from the ROI (outside a field of view): allowed
    mf = np.zeros(far.shape, bool)
    mf[4:8, 4:8, 4:8] = True
    assert np.isfinite(extract_features(far, mf, (2.0, 2.0, 2.0), cfg).values["loc_peak_glob"])


@pytest.mark.parametrize("bad", [
    {"discretisation": "fbn", "n_bins": "64"}, {"discretisation": "fbn", "n_bins": 64.7},
    {"discretisation": "fbn", "n_bins": True}, {"glcm_distance": 1.5}, {"outlier_sigma": "3"},
    {"round_intensities": "no"}, {"name": 5}, {"families": []}, {"families": "cm"},
    {"resegment_range": [1]}, {"resegment_range": 5}, {"resegment_range": ["a", 2]}, {"spacing_mm": 2},
    {"mask_threshold": "0.5"},
])
def test_settings_json_with_wrong_types_is_refused(tmp_path, bad):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(ConfigError):
        load_settings(p)


def _write(tmp_path, mask, name):
    rng = np.random.default_rng(1)
    img = rng.random(mask.shape).astype("float32") * 5
    ip, mp = tmp_path / "img.nii.gz", tmp_path / name
    save(Volume(torch.tensor(img), (2.0, 2.0, 2.0), unit="Bq/mL"), ip, overwrite=True)
    save(Volume(torch.tensor(mask), (2.0, 2.0, 2.0), unit="label"), mp)
    return ip, mp


def test_cli_refuses_several_labels_without_label_and_a_fractional_mask(tmp_path):
    m = np.zeros((8, 9, 10), "float32")
    m[2:5, 2:6, 2:6] = 1
    m[5:7, 2:6, 2:6] = 2
    ip, mp = _write(tmp_path, m, "labels.nii.gz")
    args = ["--settings", "pet-iso2mm-fbn64", "--out", str(tmp_path / "f.csv")]
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(mp), *args])
    assert res.exit_code == 2 and "2 labels" in res.output and "--label" in res.output
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(mp), "--label", "2", *args])
    assert res.exit_code == 0, res.output
    _, fp = _write(tmp_path, (m > 0).astype("float32") * 0.5, "frac.nii.gz")
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(fp), *args[:-1], str(tmp_path / "g.csv")])
    assert res.exit_code == 2 and "non-integer" in res.output


def test_cli_errors_name_the_image_and_suggest_pet_settings(tmp_path):
    m = np.zeros((8, 9, 10), "float32")
    m[2:5, 2:6, 2:6] = 1
    ip, mp = _write(tmp_path, m, "mask.nii.gz")
    res = runner.invoke(app, ["radiomics", str(ip), "--mask", str(mp), "--out", str(tmp_path / "f.csv")])
    assert res.exit_code == 2 and str(ip) in res.output and "pet-iso2mm-fbn64" in res.output
    assert not (tmp_path / "f.csv").exists()


def test_extract_features_takes_a_preset_name_and_refuses_other_settings():
    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 8))
    m = np.zeros(img.shape, bool)
    m[2:5, 2:5, 2:5] = True
    by_name = extract_features(img, m, (2.0, 2.0, 2.0), "pet-iso2mm-fbn64").values
    by_obj = extract_features(img, m, (2.0, 2.0, 2.0), load_settings("pet-iso2mm-fbn64")).values
    assert by_name["stat_mean"] == by_obj["stat_mean"]
    with pytest.raises(ConfigError):
        extract_features(img, m, (2.0, 2.0, 2.0), {"n_bins": 8})


def test_delta_of_an_unknown_kind_is_an_input_error():
    from petspect.radiomics.delta import delta_features

    rng = np.random.default_rng(0)
    img = rng.random((8, 8, 8))
    m = np.zeros(img.shape, bool)
    m[2:5, 2:5, 2:5] = True
    fs = extract_features(img, m, (2.0, 2.0, 2.0), "pet-iso2mm-fbn64")
    assert delta_features(fs, fs, "absolute")["delta_stat_mean"] == 0.0
    with pytest.raises(InputError, match="unknown delta kind"):
        delta_features(fs, fs, "percent")
