"""SPECT scatter: simulated cases, TEW, the network's inputs and residual, reconstruction, Chang, the study and CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.ac.spect_scatter import (INPUTS_WINDOWS, chang_image, make_spect_case, mu_line_integrals,
                                       predict_scatter, reconstruct_spect, scatter_inputs, scatter_nrmse_pct,
                                       tew_estimate)
from petspect.cli.main import app


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def case():
    return make_spect_case("mdp", 4, voxel_mm=12.0, shape=(2, 32, 32), n_views=8)


def test_case_scatter_fraction_and_tew_are_physical(case):
    """Photopeak scatter fraction of a Tc-99m torso slab in the Monte Carlo range for water phantoms (~0.1-0.35,
    Ljungberg & Strand, Comput Methods Programs Biomed 29 (1989) 257); TEW recovers the total scatter within 20 %
    (its trapezoid misses the spectrum's shape and counts primaries leaking into the lower window)."""
    assert 0.05 < case.info["scatter_fraction"] < 0.4
    tew = tew_estimate(case.projections, 24.0)
    assert tew.shape == case.scatter_true.shape and float(tew.min()) >= 0
    assert abs(float(tew.sum() / case.scatter_true.sum()) - 1.0) < 0.2
    assert scatter_nrmse_pct(tew, case.scatter_true) < scatter_nrmse_pct(tew_estimate(case.projections, 0.0),
                                                                         case.scatter_true)  # smoothing removes noise
    assert scatter_nrmse_pct(case.scatter_true, case.scatter_true) == 0.0
    with pytest.raises(Exception):
        scatter_nrmse_pct(tew[:1], case.scatter_true)


def test_drawn_scatter_model_is_seeded(case):
    again = make_spect_case("mdp", 4, voxel_mm=12.0, shape=(2, 32, 32), n_views=8)
    other = make_spect_case("mdp", 5, voxel_mm=12.0, shape=(2, 32, 32), n_views=8)
    assert again.info["scatter_model"] == case.info["scatter_model"] != other.info["scatter_model"]
    torch.testing.assert_close(again.projections.counts, case.projections.counts)


def test_line_integrals_of_a_water_cylinder():
    """The central ray through a water cylinder of radius R integrates 2 R mu; a ray missing it integrates 0."""
    from petspect.geometry.spect import get_spect_system
    from petspect.geometry.spect_data import SpectProjections

    n, vox, radius_mm, mu_w = 64, 4.0, 80.0, 0.0154
    yy, xx = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) - (n - 1) / 2,) * 2, indexing="ij")
    mu = ((yy ** 2 + xx ** 2) * vox ** 2 <= radius_mm ** 2).to(torch.float32)[None].repeat(2, 1, 1) * mu_w
    sysm = get_spect_system("spect-lehr")
    proj = SpectProjections(counts=torch.zeros(1, 4, 2, n), angles_deg=torch.tensor([0.0, 45.0, 90.0, 135.0]),
                            radius_mm=torch.full((4,), 250.0), pixel_spacing_mm=(vox, vox),
                            energy_windows=[sysm.energy_windows[0]])
    li = mu_line_integrals(proj, mu, (vox, vox, vox))
    centre = li[:, :, n // 2 - 1: n // 2 + 1].mean(-1)
    np.testing.assert_allclose(centre.numpy(), 2 * radius_mm * mu_w, rtol=0.05)
    assert float(li[:, :, :3].abs().max()) < 1e-6


def test_inputs_are_count_normalised(case):
    x, norm = scatter_inputs(case.projections, inputs=INPUTS_WINDOWS, mu_per_mm=case.mu_per_mm,
                             voxel_mm=case.data.grid.spacing_mm)
    rows = case.projections.counts.shape[2]
    assert x.shape == (rows, 4, 8, 32)
    assert float(x[:, 0].mean()) == pytest.approx(1.0, rel=1e-5)
    assert norm == pytest.approx(float(case.projections.photopeak.mean()), rel=1e-6)
    with pytest.raises(Exception, match="--mu"):
        scatter_inputs(case.projections, inputs=INPUTS_WINDOWS)


class _Zero(torch.nn.Module):
    def forward(self, x):
        return x[:, :1] * 0.0


def test_residual_model_with_zero_correction_is_tew(case):
    """A TEW-residual network that predicts no correction returns the TEW estimate of the same smoothing."""
    from petspect.ac.networks import AcModel

    m = AcModel("spect_scatter", 2, {"in_channels": 2}, 1.0,
                {"inputs": ["photopeak", "tew"], "residual": "tew", "tew_smooth_fwhm_mm": 24.0}, _Zero())
    torch.testing.assert_close(predict_scatter(m, case.projections), tew_estimate(case.projections, 24.0))
    m.task = "nac_sct"
    with pytest.raises(Exception, match="not a SPECT scatter model"):
        predict_scatter(m, case.projections)


def test_scatter_correction_and_chang(case):
    """Without scatter correction the image is biased up; Chang's correction of the non-AC image and the AC OSEM
    agree on the mean body activity within 25 % (Chang is first order)."""
    ref = reconstruct_spect(case.data, case.scatter_true, iterations=2, subsets=4)
    none = reconstruct_spect(case.data, None, iterations=2, subsets=4)
    body = case.mu_per_mm > 0.005
    assert float(none[body].mean()) > 1.03 * float(ref[body].mean())
    ch = chang_image(case.data, case.scatter_true, case.mu_per_mm, iterations=2, subsets=4)
    assert torch.isfinite(ch).all()
    assert abs(float(ch[body].mean() / ref[body].mean()) - 1.0) < 0.25
    nac = reconstruct_spect(case.data, case.scatter_true, attenuation=False, iterations=2, subsets=4)
    assert float(nac[body].mean()) < 0.7 * float(ref[body].mean())  # attenuation removes most counts


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("spect_scatter") / "study"
    res = _run(["study", "spect-scatter", "--preset", "tiny", "--out", out])
    assert res.exit_code == 0, res.output
    return out


def test_study_reports_every_method_with_intervals(study):
    metrics = json.loads((study / "metrics.json").read_text())
    for m in ("tew", "dl_scatter", "dl_scatter_emission", "no_scatter", "chang"):
        assert len(metrics[m]["suv_bias_pct_max_abs_ci95"]) == 2 and math.isfinite(metrics[m]["suv_bias_pct_mean"])
    for m in ("tew", "dl_scatter", "dl_scatter_emission"):
        assert metrics[m]["scatter_nrmse_pct"] > 0 and "scatter_nrmse_pct_ci95" in metrics[m]
    assert "delta_scatter_nrmse_pct_ci95" in metrics["dl_scatter"]
    summary = json.loads((study / "summary.json").read_text())
    assert summary["inverse_crime"] is False and summary["test_scored"] == 1
    assert summary["tuned"]["tew"]["search"]["budget"]["split"] == "validation"
    assert len(summary["checks"]) == 4 and set(summary["by_tracer"]) == {"mdp", "sestamibi"}
    model = json.loads((study / "models" / "dl_scatter" / "model.json").read_text())
    assert model["task"] == "spect_scatter" and model["trained_on"]["residual"] == "tew"
    assert model["trained_on"]["pixel_mm"] == 12.0
    assert (study / "report" / "index.html").stat().st_size > 1000
    again = _run(["study", "spect-scatter", "--preset", "tiny", "--out", study])
    assert again.exit_code == 2  # no silent overwrite


def test_cli_applies_the_network_to_interfile_projections(study, case, tmp_path):
    from petspect.io.interfile import write_interfile_projections
    from petspect.io.nifti import read_nifti, write_nifti

    hs = write_interfile_projections(case.projections, tmp_path / "proj.hs")
    mu = write_nifti(case.data.grid.volume(case.mu_per_mm, unit="1/mm"), tmp_path / "mu.nii.gz")
    out = tmp_path / "out"
    res = _run(["ac", "spect-scatter", hs, "--model", study / "models" / "dl_scatter", "--mu", mu, "--recon",
                "--collimator", "siemens-lehr", "--iterations", 1, "--subsets", 4, "--out", out])
    assert res.exit_code == 0, res.output
    est = np.load(out / "scatter_dl.npy")
    assert est.shape == tuple(case.scatter_true.shape) and est.min() >= 0
    rec = json.loads((out / "scatter.json").read_text())
    assert rec["scatter_dl_counts"] == pytest.approx(float(est.sum()), rel=1e-5)
    img = read_nifti(out / "spect_dl_scatter.nii.gz")
    assert img.shape == case.data.grid.shape and float(img.data.sum()) > 0
    no_mu = _run(["ac", "spect-scatter", hs, "--model", study / "models" / "dl_scatter", "--collimator",
                  "siemens-lehr", "--out", tmp_path / "o2"])
    assert no_mu.exit_code == 2 and "--mu" in no_mu.output and not (tmp_path / "o2").exists()
    emission = _run(["ac", "spect-scatter", hs, "--model", study / "models" / "dl_scatter_emission",
                     "--collimator", "siemens-lehr", "--out", tmp_path / "o3"])
    assert emission.exit_code == 0, emission.output
    from dataclasses import replace

    fine = write_interfile_projections(replace(case.projections, pixel_spacing_mm=(6.0, 6.0)), tmp_path / "fine.hs")
    other_pixels = _run(["ac", "spect-scatter", fine, "--model", study / "models" / "dl_scatter_emission",
                         "--collimator", "siemens-lehr", "--out", tmp_path / "o5"])
    assert other_pixels.exit_code == 2 and "pixels" in other_pixels.output
    not_proj = _run(["ac", "spect-scatter", mu, "--model", study / "models" / "dl_scatter", "--mu", mu,
                     "--out", tmp_path / "o4"])
    assert not_proj.exit_code == 2 and "Traceback" not in not_proj.output
