"""Dataset engine: bit-for-bit rebuild, kill-and-resume, paired thinning, noise scaling, dataset checks."""

import json
import shutil

import numpy as np
import pytest
import torch

from petspect.errors import ConfigError, OutputExistsError
from petspect.simulate.cohort import rebuild_subject, simulate_cohort, subject_seeds
from petspect.simulate.config import config_from_dict
from petspect.simulate.layout import check_dataset

pytestmark = pytest.mark.slow

TINY_SCANNER = {"modality": "pet", "preset": "wholebody", "max_ring_difference": 0, "view_mashing": 10,
                "params": {"n_rings": 4, "ring_spacing_mm": 12.0}}


def tiny_config(**over):
    base = {
        "name": "tiny", "subjects": 3, "seed": 5, "dose_percents": [100, 25], "realisations": 1,
        "phantom": {"kind": "torso", "voxel_mm": 12.0, "tracer": "fdg",
                    "params": {"shape": [4, 32, 32], "lesions": False}},
        "scanner": TINY_SCANNER,
        "acquisition": {"scan_s": 60.0, "scatter": False},
        "recon": {"algorithms": ["osem"], "iterations": 2, "subsets": 4, "nac": False},
        "split": {"train": 0.34, "validation": 0.33, "test": 0.33},
    }
    base.update(over)
    return config_from_dict(base)


def test_subject_seeds_are_distinct_and_stable():
    s = subject_seeds(7, 5)
    assert len(set(s)) == 5 and s == subject_seeds(7, 5) and s[:3] == subject_seeds(7, 3)


def test_cohort_layout_rebuild_and_check(tmp_path):
    cfg = tiny_config()
    ds = simulate_cohort(cfg, tmp_path / "ds", workers=1, show_progress=False)
    meta = json.loads(ds.read_text())
    assert meta["numTraining"] + meta["numValidation"] + meta["numTest"] == 3
    entry = meta["training"][0]
    for key in ("image", "label", "activity", "recon_d100_osem_ac", "recon_d025_osem_ac", "mu_511", "ct"):
        assert (tmp_path / "ds" / entry[key]).is_file(), key
    subs = {e["subject"] for split in ("training", "validation", "test") for e in meta[split]}
    assert subs == {"sub-000", "sub-001", "sub-002"}  # subject-wise split, each once
    # paired thinning: the 25 % prompts never exceed the full-dose prompts bin by bin
    full = np.load(tmp_path / "ds" / "sub-000" / "prompts_d100.npy")
    low = np.load(tmp_path / "ds" / "sub-000" / "prompts_d025.npy")
    assert np.all(low <= full) and 0.2 < low.sum() / full.sum() < 0.3
    assert check_dataset(tmp_path / "ds") == []
    # bit-for-bit rebuild from dataset.json
    same = rebuild_subject(tmp_path / "ds", "sub-001", tmp_path / "rebuilt")
    assert same and all(same.values()), same
    # a changed file is found by the check
    target = tmp_path / "ds" / "sub-002" / "recon_d025_osem_ac.nii.gz"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    problems = check_dataset(tmp_path / "ds")
    assert len(problems) == 1 and "checksum" in problems[0]


def test_killed_run_resumes_to_the_same_dataset(tmp_path):
    cfg = tiny_config(subjects=2)
    full = simulate_cohort(cfg, tmp_path / "a", workers=1, show_progress=False)
    # emulate a kill after the first subject: the second subject's folder and dataset.json are missing,
    # and a half-written temporary folder is left behind
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "sub-001")
    (tmp_path / "b" / "dataset.json").unlink()
    (tmp_path / "b" / ".sub-001.abc.tmp").mkdir()
    resumed = simulate_cohort(cfg, tmp_path / "b", workers=1, show_progress=False)
    assert resumed.read_bytes() == full.read_bytes()
    for f in sorted((tmp_path / "a" / "sub-001").iterdir()):
        assert (tmp_path / "b" / "sub-001" / f.name).read_bytes() == f.read_bytes(), f.name
    # another configuration into the same folder is refused
    with pytest.raises(OutputExistsError):
        simulate_cohort(tiny_config(subjects=2, seed=6), tmp_path / "b", workers=1, show_progress=False)


def test_parallel_workers_give_the_same_files(tmp_path):
    cfg = tiny_config(subjects=2)
    a = simulate_cohort(cfg, tmp_path / "a", workers=1, show_progress=False)
    b = simulate_cohort(cfg, tmp_path / "b", workers=2, show_progress=False)
    assert a.read_bytes() == b.read_bytes()


def test_noise_scales_with_count_fraction(tmp_path):
    """CV of a uniform region scales as 1/sqrt(fraction) within 15 % (issue #5).

    Noise is measured from two independent realisations at each level (disjoint multinomial splits
    of the full-dose counts): sigma = std(r0 - r1) / sqrt(2), so deterministic structure cancels.
    """
    cfg = config_from_dict({
        "name": "noise", "subjects": 1, "seed": 3, "dose_percents": [100, 50, 20, 10], "realisations": 2,
        "phantom": {"kind": "cylinder", "voxel_mm": 8.0, "params": {"radius_mm": 80.0, "length_mm": 48.0,
                                                                   "activity_bq_per_ml": 5000.0}},
        "scanner": {**TINY_SCANNER, "params": {"n_rings": 6, "ring_spacing_mm": 8.0}},
        "acquisition": {"scan_s": 120.0, "scatter": False, "randoms": False, "normalisation": False},
        "recon": {"algorithms": ["osem"], "iterations": 2, "subsets": 4, "nac": False},
        "split": {"train": 1.0, "validation": 0.0, "test": 0.0},
    })
    from petspect.simulate.subject import simulate_subject

    res = simulate_subject(cfg, 0, subject_seeds(cfg.seed, 1)[0])
    act = res.volumes["activity"].data
    region = act >= 0.999 * act.max()
    region[:1] = region[-1:] = False  # leave out end slices
    cvs = {}
    for pct in (50, 20, 10):
        r0 = res.volumes[f"recon_d{pct:03d}_osem_ac"].data[region]
        r1 = res.volumes[f"recon_d{pct:03d}_osem_ac_r1"].data[region]
        cvs[pct] = float((r0 - r1).std() / (2 ** 0.5) / (0.5 * (r0 + r1)).mean())
    for pct in (20, 10):
        expected = (50 / pct) ** 0.5
        assert cvs[pct] / cvs[50] == pytest.approx(expected, rel=0.15), cvs


def test_config_errors_reach_the_user(tmp_path):
    with pytest.raises(ConfigError):
        tiny_config(subjects=0)
    with pytest.raises(ConfigError, match="unknown scanner.params"):
        cfg = tiny_config(subjects=1)
        cfg.scanner.params = {"n_ringz": 3}
        simulate_cohort(cfg, tmp_path / "x", workers=1, show_progress=False)


def test_spect_cohort_subject_is_quantitative_with_tew_and_ac():
    """A uniform Tc-99m water cylinder: AC + TEW OSEM within 5 % of the true Bq/mL; NAC far below."""
    from petspect.simulate.subject import simulate_subject

    cfg = config_from_dict({
        "name": "spect-tiny", "subjects": 1, "seed": 1, "dose_percents": [100, 25],
        "phantom": {"kind": "cylinder", "voxel_mm": 8.0, "params": {"radius_mm": 80.0, "length_mm": 48.0,
                   "activity_bq_per_ml": 50000.0, "energies_kev": [140.5]}},
        "scanner": {"modality": "spect", "preset": "spect-lehr", "n_views": 32, "radius_mm": 200.0},
        "acquisition": {"scan_s": 32 * 20.0},
        "recon": {"algorithms": ["osem"], "iterations": 3, "subsets": 4, "nac": True},
        "split": {"train": 1.0, "validation": 0.0, "test": 0.0}})
    res = simulate_subject(cfg, 0, 5)
    assert res.arrays["prompts_d100"].shape[0] == 3  # photopeak + two TEW windows
    assert res.record["system"]["expected_scatter_photopeak"] > 0
    act = res.volumes["activity"].data
    region = act > 0.99 * act.max()
    region[:1] = region[-1:] = False
    for pct in (100, 25):
        ac = float(res.volumes[f"recon_d{pct:03d}_osem_ac"].data[region].mean())
        nac = float(res.volumes[f"recon_d{pct:03d}_osem_nac"].data[region].mean())
        assert ac == pytest.approx(50000.0, rel=0.05)
        assert nac < 0.6 * ac


def test_time_points_share_anatomy_and_follow_kinetics(tmp_path):
    """Therapy time points: one anatomy, activity per time point from the tracer's kinetics, scanned on the
    Lu-177 (medium-energy) SPECT camera; every key written parses with the one key grammar."""
    from petspect.simulate.layout import DatasetKey

    cfg = tiny_config(subjects=1, time_points_h=[4.0, 96.0], dose_percents=[100],
                      phantom={"kind": "torso", "voxel_mm": 12.0, "tracer": "lu177-psma",
                               "params": {"shape": [4, 32, 32], "lesions": False}},
                      scanner={"modality": "spect", "preset": "spect-me", "n_views": 16, "radius_mm": 250.0})
    from petspect.simulate.subject import simulate_subject

    res = simulate_subject(cfg, 0, 11)
    assert res.record["system"]["nuclide"] == "Lu-177"
    for key in [*res.volumes, *res.arrays]:
        assert DatasetKey.parse(key).format() == key
    for key in ("labels", "ct", "activity_h004", "activity_h096", "recon_d100_osem_ac_h004",
                "recon_d100_osem_ac_h096"):
        assert key in res.volumes, key
    assert "activity" not in res.volumes and "prompts_d100_h004" in res.arrays
    a4, a96 = res.volumes["activity_h004"].data, res.volumes["activity_h096"].data
    assert float(a4.sum()) > float(a96.sum())  # washout and decay
    assert res.record["image_key"] == "recon_d100_osem_ac_h004"
    with pytest.raises(ConfigError, match="kinetics"):
        tiny_config(time_points_h=[1.0], phantom={"kind": "cylinder", "voxel_mm": 8.0})


def test_activity_outside_the_field_of_view_is_refused():
    cfg = tiny_config(subjects=1)
    cfg.scanner.params = {"n_rings": 4, "ring_spacing_mm": 12.0, "n_radial": 64}  # FOV radius ~54 mm
    from petspect.simulate.subject import simulate_subject

    with pytest.raises(ConfigError, match="field of view"):
        simulate_subject(cfg, 0, 1)


def test_post_filter_smooths_cohort_reconstructions():
    from petspect.simulate.subject import simulate_subject

    plain = simulate_subject(tiny_config(subjects=1), 0, 4)
    cfg = tiny_config(subjects=1)
    cfg.recon.post_filter_fwhm_mm = 24.0
    smooth = simulate_subject(cfg, 0, 4)
    a, b = plain.volumes["recon_d025_osem_ac"].data, smooth.volumes["recon_d025_osem_ac"].data
    inside = plain.volumes["activity"].data > 0
    assert float(b[inside].std()) < float(a[inside].std())
    assert float(b[inside].mean()) == pytest.approx(float(a[inside].mean()), rel=0.1)
